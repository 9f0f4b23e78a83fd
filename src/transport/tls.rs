//! TLS settings for stream connections (RFC 3261 §26.2, RFC 5630): rustls
//! client and server configurations, built once per run and shared
//! read-only by the workers. The per-connection state
//! (`ClientConnection`/`ServerConnection`) lives in each worker's
//! connection table and is driven sans-IO by `stream` (`read_tls` on the
//! bytes the loop received, `write_tls` into the connection's write
//! queue); nothing here touches a socket.
//!
//! The crypto provider is `ring` (it builds with a C compiler alone; the
//! default aws-lc-rs needs CMake and NASM). TLS 1.2 and 1.3 are both
//! offered. Session resumption: the client keeps an in-memory session
//! cache per worker when resumption is on; the server issues stateless
//! tickets under one process-wide ticket key, so a client resumes whichever
//! server worker its new connection lands on.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Where the client's trust comes from and what it presents.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// Trusted CA certificates (`--tls-ca FILE`); empty: the system's
    /// bundle ([`SYSTEM_CA_FILES`]).
    pub ca: Vec<CertificateDer<'static>>,
    /// Skip verification of the server's certificate (`--tls-insecure`).
    /// Signatures of the handshake are still checked.
    pub insecure: bool,
    /// Server name to send (SNI) and to verify (`--tls-sni`); `None`: the
    /// target's address (an IP address is verified against the
    /// certificate's IP SANs and sends no SNI, RFC 6066 §3).
    pub sni: Option<String>,
    /// Client certificate chain and key (`--tls-cert`/`--tls-key`).
    pub client_cert: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// Resume sessions (`--tls-resume`): tickets or session ids are kept
    /// per worker and offered on new connections.
    pub resume: bool,
}

/// Where the system's CA bundle is on Debian and Red Hat family systems.
pub const SYSTEM_CA_FILES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// A TLS setup error: which file or setting and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(path: &Path, problem: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, e))
}

/// rustls 0.23.48 deprecates ring's provider for lacking post-quantum key
/// exchange; the alternative (aws-lc-rs) does not build here without CMake
/// and NASM, and SIP peers (Kamailio with OpenSSL, SIPp) negotiate X25519
/// or P-256 anyway.
///
/// Key exchange prefers X25519, then P-256 (RFC 8446 §9.1): this rustls
/// release lists P-384 first for ring, which made every full handshake of a
/// storm cost four times the CPU (P-384 in ring has no assembly).
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::kx_group;
    let mut p = rustls::crypto::ring::default_provider();
    p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(p)
}

const VERSIONS: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

/// How many TLS 1.3 tickets a worker keeps per server (resumption on).
const TICKETS_PER_SERVER: usize = 4096;

/// A worker's client session store. rustls' own in-memory store keeps at
/// most 8 TLS 1.3 tickets per server name, and each ticket resumes one
/// connection (RFC 8446 §C.4), so in a storm of concurrent new connections
/// to one server almost none would resume. This one keeps up to
/// [`TICKETS_PER_SERVER`] per server, newest first; each ticket is handed
/// out once. One per worker (the `Mutex` is never contended: its worker
/// is its only user).
#[derive(Debug, Default)]
struct SessionStore {
    inner: std::sync::Mutex<SessionMaps>,
}

#[derive(Debug, Default)]
struct SessionMaps {
    kx: std::collections::HashMap<ServerName<'static>, rustls::NamedGroup>,
    tls12: std::collections::HashMap<ServerName<'static>, rustls::client::Tls12ClientSessionValue>,
    tls13: std::collections::HashMap<
        ServerName<'static>,
        std::collections::VecDeque<rustls::client::Tls13ClientSessionValue>,
    >,
}

impl SessionStore {
    fn with<T>(&self, f: impl FnOnce(&mut SessionMaps) -> T) -> T {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }
}

impl rustls::client::ClientSessionStore for SessionStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.with(|m| m.kx.insert(server_name, group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.with(|m| m.kx.get(&server_name.to_owned()).copied())
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.with(|m| m.tls12.insert(server_name, value));
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.with(|m| m.tls12.get(&server_name.to_owned()).cloned())
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.with(|m| m.tls12.remove(server_name));
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.with(|m| {
            let q = m.tls13.entry(server_name).or_default();
            if q.len() >= TICKETS_PER_SERVER {
                q.pop_back();
            }
            q.push_front(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.with(|m| m.tls13.get_mut(server_name)?.pop_front())
    }
}

impl ClientTls {
    /// The rustls client configuration of one worker (each worker builds
    /// its own, so its session cache is its own).
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        if self.ca.is_empty() {
            for f in SYSTEM_CA_FILES {
                if let Ok(iter) = CertificateDer::pem_file_iter(f) {
                    roots.add_parsable_certificates(iter.flatten());
                    break;
                }
            }
        } else {
            let (_, bad) = roots.add_parsable_certificates(self.ca.iter().cloned());
            if bad > 0 && roots.is_empty() {
                return Err(TlsError::Config(
                    "--tls-ca: no usable CA certificate".into(),
                ));
            }
        }
        let builder = builder.with_root_certificates(roots);
        let mut cfg = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| TlsError::Config(format!("--tls-cert/--tls-key: {e}")))?,
        };
        if self.insecure {
            cfg.dangerous()
                .set_certificate_verifier(Arc::new(AcceptAnyCertificate(
                    provider().signature_verification_algorithms,
                )));
        }
        cfg.resumption = if self.resume {
            rustls::client::Resumption::store(Arc::new(SessionStore::default()))
        } else {
            rustls::client::Resumption::disabled()
        };
        Ok(Arc::new(cfg))
    }

    /// The name a connection to `peer` sends and verifies.
    pub fn server_name(&self, peer: std::net::SocketAddr) -> Result<ServerName<'static>, TlsError> {
        match &self.sni {
            Some(n) => ServerName::try_from(n.clone())
                .map_err(|e| TlsError::Config(format!("--tls-sni {n}: {e}"))),
            None => Ok(ServerName::IpAddress(peer.ip().into())),
        }
    }
}

/// `--tls-insecure`: any certificate is accepted; handshake signatures
/// are still verified, so the session is encrypted to whoever holds the
/// presented key.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A server certificate chain and its key.
#[derive(Debug)]
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The certificate was generated at start (no `--tls-cert`).
    pub generated: bool,
}

impl ServerIdentity {
    /// `--tls-cert`/`--tls-key` when given, else a self-signed certificate
    /// generated in memory for `localhost`, `127.0.0.1` and `::1` (and
    /// `extra_names`).
    pub fn load_or_generate(
        cert: Option<&Path>,
        key: Option<&Path>,
        extra_names: &[String],
    ) -> Result<ServerIdentity, TlsError> {
        match (cert, key) {
            (Some(c), Some(k)) => Ok(ServerIdentity {
                chain: load_certs(c)?,
                key: load_key(k)?,
                generated: false,
            }),
            (None, None) => Self::self_signed(extra_names),
            _ => Err(TlsError::Config(
                "--tls-cert and --tls-key go together".into(),
            )),
        }
    }

    /// A self-signed certificate made with rcgen.
    pub fn self_signed(extra_names: &[String]) -> Result<ServerIdentity, TlsError> {
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        for n in extra_names {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Config(format!("generating a certificate: {e}")))?;
        Ok(ServerIdentity {
            chain: vec![ck.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into()),
            generated: true,
        })
    }

    /// The private key as PEM (PKCS#8), to write a key file for a peer
    /// under test (SIPp, Kamailio) or for `serve --tls-key`.
    pub fn key_pem(&self) -> String {
        pem("PRIVATE KEY", self.key.secret_der())
    }

    /// The certificate as PEM (to hand to a client as its CA).
    pub fn cert_pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| pem("CERTIFICATE", c.as_ref()))
            .collect()
    }

    /// The server configuration every worker shares (read-only: the
    /// per-connection state is in each worker). Client certificates are
    /// not requested.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("server certificate: {e}")))?;
        cfg.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| TlsError::Config(format!("ticket key: {e}")))?;
        // Stateless tickets only: no per-session memory on the server.
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 2;
        Ok(Arc::new(cfg))
    }
}

/// One PEM block (RFC 7468): base64 in lines of 64.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_round_trip_through_pem() {
        let id = ServerIdentity::self_signed(&["sip.example".into()]).unwrap();
        assert!(id.generated);
        let dir = std::env::temp_dir().join(format!("sipstorm-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, id.cert_pem()).unwrap();
        let certs = load_certs(&ca).unwrap();
        assert_eq!(certs, id.chain);
        id.server_config().unwrap();
        let client = ClientTls {
            ca: certs,
            resume: true,
            ..ClientTls::default()
        };
        client.build().unwrap();
        let peer: std::net::SocketAddr = "127.0.0.1:5061".parse().unwrap();
        assert!(matches!(
            client.server_name(peer).unwrap(),
            ServerName::IpAddress(_)
        ));
        let named = ClientTls {
            sni: Some("sip.example".into()),
            ..client
        };
        assert!(matches!(
            named.server_name(peer).unwrap(),
            ServerName::DnsName(_)
        ));
        // Files that are not what they should be name the file.
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let e = load_certs(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.pem"), "{e}");
        assert!(load_key(&junk).is_err());
        assert!(
            ServerIdentity::load_or_generate(Some(&ca), None, &[])
                .unwrap_err()
                .to_string()
                .contains("--tls-key")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
