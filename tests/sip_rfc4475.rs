//! RFC 4475 torture messages (close reproductions, long runs shortened where
//! the RFC uses its <repeat> notation) and the verdict the RFC asks for, plus
//! tables of unusual-but-valid and malformed messages.

mod sip_common;

use sip_common::{exercise, wire};
use sipstorm::sip::{self, CSeq, Contact, Method, ParseError};

/// RFC 4475 §3.1.1.1 "wsinv": a short tortuous INVITE.
const WSINV: &str = r#"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : {CL}
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:"Quoted string \"\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.3
s=-
c=IN IP4 192.0.2.4
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"#;

/// RFC 4475 §3.1.1.2 "intmeth": unusual characters everywhere they are legal.
fn intmeth() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(b"!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n");
    m.extend_from_slice(b"Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\r\n");
    m.extend_from_slice(b"To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\r\n");
    m.extend_from_slice(b"From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\xD1\x80\xD0\xB0\xD0\xB1\xD0\xBE\xD1\x82\xD0\xB0\xD1\x8E\xD1\x89\xD0\xB8\xD0\xB9\";tag=_token~1'+`*%!-.\r\n");
    m.extend_from_slice(b"Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n");
    m.extend_from_slice(b"CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\n");
    m.extend_from_slice(b"Max-Forwards: 255\r\n");
    m.extend_from_slice(
        b"extensionHeader-!.%*+_`'~:\xEF\xBB\xBF\xE5\xA4\xA7\xE5\x81\x9C\xE9\x9B\xBB\r\n",
    );
    m.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    m
}

/// RFC 4475 §3.1.1.3 "esc01": valid use of % escaping.
const ESC01: &str = "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: {CL}

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
";

/// RFC 4475 §3.1.1.4 "escnull": escaped NULs in URIs.
const ESCNULL: &str = "REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkjkn
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0

";

/// RFC 4475 §3.1.1.6 "lwsdisp": no LWS between display name and `<`.
const LWSDISP: &str = "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

";

/// RFC 4475 §3.1.1.7 "longreq": long values, many Vias, long unknown header.
fn longreq() -> Vec<u8> {
    let ext = "extreme".repeat(10);
    let long = "Long".repeat(20);
    let mut s = format!(
        "INVITE sip:user@example.com SIP/2.0\n\
To: \"I have a user name of {ext} proportion\"<sip:user@example.com:6000;unknownparam1=very{ext}longvalue;longparam{ext}name=shortvalue;very{ext}longParameterNameWithNoValue>\n\
F: sip:{caller}@example.net;tag=12{tag}424;unknownheaderparam{ext}name=unknowheader{ext}value;unknownValuelessparam{ext}name\n\
Call-ID: longreq.one{really}longcallid\n\
CSeq: 3882340 INVITE\n\
Unknown-{long}-Name: unknown-{long}-value; unknown-{long}-parameter-name = unknown-{long}-parameter-value\n",
        caller = "amazinglylongcallername".repeat(5),
        tag = "982".repeat(50),
        really = "really".repeat(20),
    );
    for i in (1..=34).rev() {
        let name = ["Via", "v", "V", "VIA"][i % 4];
        s.push_str(&format!(
            "{name}: SIP/2.0/TCP sip{i}.example.com;branch=z9hG4bK{i}{ext}\n"
        ));
    }
    s.push_str(
        "Via: SIP/2.0/TCP sip0.example.com, SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKv6\n",
    );
    s.push_str("Max-Forwards: 68\nRecord-Route: ");
    let rr: Vec<String> = (1..=20)
        .map(|i| format!("<sip:{ext}{i}@example.com;lr>"))
        .collect();
    s.push_str(&rr.join(", "));
    s.push_str("\nContact: <sip:amazinglylongcallername@host5.example.net>\nContent-Type: application/sdp\nl: {CL}\n\nv=0\no=mhandley 29739 7272939 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 49217 RTP/AVP 0 12\n");
    wire(&s)
}

/// RFC 4475 §3.1.1.8 "dblreq": two requests in one datagram; the second is ignored.
const DBLREQ: &str = "REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0

INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 10

v=0
s=-
";

/// RFC 4475 §3.1.1.9 "semiuri": semicolons in the user part of the Request-URI.
const SEMIURI: &str = "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

";

/// RFC 4475 §3.1.1.10 "transports": unknown transports in Via.
const TRANSPORTS: &str = "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

";

/// RFC 4475 §3.1.1.13 "unkscm": an unknown URI scheme in To, §3.1.1.14 "novelsc" in the R-URI.
const UNKSCM: &str = "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0
To: nobodyKnowsThisScheme:totallyopaquecontent
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0

";

/// RFC 4475 §3.1.1.12 "noreason": a response with an empty reason phrase.
const NOREASON: &str = "SIP/2.0 100 
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

";

/// RFC 4475 §3.1.1.16 "zeromf", §3.1.1.17 "inv2543": an RFC 2543 INVITE (no
/// branch, no Max-Forwards, no From tag).
const INV2543: &str = "INVITE sip:UserB@example.com SIP/2.0
Via: SIP/2.0/UDP iftgw.example.com
From: <sip:+13035551111@ift.client.example.net;user=phone>
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>
To: sip:+16505552222@ss1.example.net;user=phone
Call-ID: inv2543.1717@ift.client.example.com
CSeq: 56 INVITE
Content-Type: application/sdp

v=0
";

/// The valid torture messages: (name, bytes).
fn valid() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("wsinv", wire(WSINV)),
        ("intmeth", intmeth()),
        ("esc01", wire(ESC01)),
        ("escnull", wire(ESCNULL)),
        ("lwsdisp", wire(LWSDISP)),
        ("longreq", longreq()),
        ("dblreq", wire(DBLREQ)),
        ("semiuri", wire(SEMIURI)),
        ("transports", wire(TRANSPORTS)),
        ("unkscm", wire(UNKSCM)),
        ("noreason", wire(NOREASON)),
        ("inv2543", wire(INV2543)),
    ]
}

#[test]
fn valid_torture_messages_parse() {
    for (name, bytes) in valid() {
        let m = sip::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.validate_all(), Ok(()), "{name}");
        assert!(exercise(&bytes) > 0, "{name}");
        assert!(m.top_via().is_some(), "{name}");
    }
}

#[test]
fn wsinv_details() {
    let b = wire(WSINV);
    let m = sip::parse(&b).unwrap();
    assert_eq!(
        m.uri(),
        Some(&b"sip:vivekg@chair-dnrc.example.com;unknownparam"[..])
    );
    assert_eq!(m.to().unwrap().tag, Some(&b"1918181833n"[..]));
    assert_eq!(m.to().unwrap().uri, b"sip:vivekg@chair-dnrc.example.com");
    let from = m.from().unwrap();
    assert_eq!(from.display, Some(&br#"J Rosenberg \\\""#[..]));
    assert_eq!(from.tag, Some(&b"98asjd8"[..]));
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(
        m.cseq(),
        Some(CSeq {
            seq: 9,
            method: Method::Invite
        })
    );
    let vias: Vec<_> = m
        .vias()
        .map(|v| (v.host, v.transport, v.branch.unwrap()))
        .collect();
    assert_eq!(
        vias,
        [
            (&b"192.0.2.2"[..], &b"UDP"[..], &b"390skdjuw"[..]),
            (b"spindle.example.com", b"TCP", b"z9hG4bK9ikj8"),
            (b"192.168.255.111", b"UDP", b"z9hG4bK30239"),
        ]
    );
    assert_eq!(m.header(b"Subject"), Some(&b""[..]));
    assert_eq!(
        m.header(b"newfangledheader"),
        Some(&b"newfangled value\r\n continued newfangled value"[..])
    );
    assert_eq!(
        m.header(b"UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );
    let routes: Vec<_> = m.routes().collect();
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0].uri,
        b"sip:services.example.com;lr;unknownwith=value;unknown-no-value"
    );
    let contacts: Vec<_> = m.contacts().collect();
    match contacts[..] {
        [
            Contact::Addr {
                addr,
                q,
                expires: None,
            },
        ] => {
            assert_eq!(addr.display, Some(&br#"Quoted string \"\""#[..]));
            assert_eq!(q, Some(&b"0.33"[..]));
            assert_eq!(addr.param(b"newparam"), Some(&b"newvalue"[..]));
        }
        _ => panic!("{contacts:?}"),
    }
    assert_eq!(m.content_length(), Some(m.body().len() as u32));
    assert!(m.body().starts_with(b"v=0\r\n"));
}

#[test]
fn intmeth_esc01_escnull_semiuri_lwsdisp_details() {
    let b = intmeth();
    let m = sip::parse(&b).unwrap();
    assert_eq!(
        m.method(),
        Some(Method::Other(
            b"!interesting-Method0123456789_*+`.%indeed'~"
        ))
    );
    assert_eq!(m.cseq().unwrap().method, m.method().unwrap());
    assert_eq!(m.from().unwrap().tag, Some(&b"_token~1'+`*%!-."[..]));
    assert_eq!(
        m.from().unwrap().display,
        Some(&b"token1~` token2'+_ token3*%!.-"[..])
    );
    assert_eq!(
        m.to().unwrap().uri,
        b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com"
    );
    assert_eq!(
        m.header(b"extensionHeader-!.%*+_`'~"),
        Some(&b"\xEF\xBB\xBF\xE5\xA4\xA7\xE5\x81\x9C\xE9\x9B\xBB"[..])
    );
    let u = sip::parse_uri(m.uri().unwrap()).unwrap();
    assert_eq!(u.host, b"example.com");
    assert_eq!(
        u.user,
        Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
    );

    let b = wire(ESC01);
    let m = sip::parse(&b).unwrap();
    assert_eq!(
        sip::parse_uri(m.uri().unwrap()).unwrap().user,
        Some(&b"sips%3Auser%40example.com"[..])
    );
    assert_eq!(m.content_type(), Some(&b"application/sdp"[..]));
    assert_eq!(
        m.call_id(),
        Some(&b"esc01.239409asdfakjkn23onasd0-3234"[..])
    );

    let b = wire(ESCNULL);
    let m = sip::parse(&b).unwrap();
    assert_eq!(m.contacts().count(), 2);
    assert_eq!(m.content_length(), Some(0));

    let b = wire(SEMIURI);
    let m = sip::parse(&b).unwrap();
    let u = sip::parse_uri(m.uri().unwrap()).unwrap();
    assert_eq!(
        (u.user, u.host),
        (Some(&b"user;par=u%40example.net"[..]), &b"example.com"[..])
    );

    let b = wire(LWSDISP);
    let m = sip::parse(&b).unwrap();
    assert_eq!(m.from().unwrap().display, Some(&b"caller"[..]));
    assert_eq!(m.from().unwrap().tag, Some(&b"323"[..]));
}

#[test]
fn longreq_dblreq_transports_noreason_inv2543_details() {
    let b = longreq();
    assert!(b.len() > 4000, "{}", b.len());
    let m = sip::parse(&b).unwrap();
    assert_eq!(m.vias().count(), 36);
    assert_eq!(m.top_via().unwrap().host, b"sip34.example.com");
    assert_eq!(m.vias().last().unwrap().host, b"[2001:db8::1]");
    assert_eq!(m.record_routes().count(), 20);
    assert_eq!(m.header(b"f"), m.header(b"From"));
    assert!(
        m.to()
            .unwrap()
            .display
            .unwrap()
            .starts_with(b"I have a user name of extremeextreme")
    );
    assert_eq!(
        m.header(&format!("unknown-{}-name", "long".repeat(20)).into_bytes())
            .map(<[u8]>::len),
        Some(306)
    );

    let b = wire(DBLREQ);
    let m = sip::parse(&b).unwrap();
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.body(), b"");
    assert!(m.as_bytes().ends_with(b"Content-Length: 0\r\n\r\n"));

    let b = wire(TRANSPORTS);
    let m = sip::parse(&b).unwrap();
    let t: Vec<_> = m.vias().map(|v| v.transport).collect();
    assert_eq!(t, [&b"UDP"[..], b"SCTP", b"TLS", b"UNKNOWN", b"TCP"]);

    let b = wire(NOREASON);
    let m = sip::parse(&b).unwrap();
    assert_eq!((m.status(), m.reason()), (Some(100), Some(&b""[..])));

    let b = wire(INV2543);
    let m = sip::parse(&b).unwrap();
    assert_eq!(m.max_forwards(), None);
    assert_eq!(m.top_via().unwrap().branch, None);
    assert_eq!(m.from().unwrap().tag, None);
    assert_eq!(m.content_length(), None);
    assert_eq!(m.body(), b"v=0\r\n");
}

/// The invalid torture messages and the error each must give.
fn invalid() -> Vec<(&'static str, Vec<u8>, ParseError)> {
    use ParseError::*;
    let sdp = "v=0\no=mhandley 29739 7272939 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 49217 RTP/AVP 0\n";
    let w = |s: &str| wire(s);
    let avail = wire(sdp).len() as u32;
    vec![
        // §3.1.2.1 badinv01: extraneous `;` and `,` separators.
        (
            "badinv01",
            w(&format!(
                "INVITE sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;;tag=134161461246\nMax-Forwards: 7\nCall-ID: badinv01.0ha0isndaksdjasdf3234nas\nCSeq: 8 INVITE\nVia: SIP/2.0/UDP 192.0.2.15;;,;,,\nContact: \"Joe\" <sip:joe@example.org>;;;;\nContent-Length: {{CL}}\nContent-Type: application/sdp\n\n{sdp}"
            )),
            BadHeaderValue("Via"),
        ),
        // §3.1.2.2 clerr: Content-Length larger than the message.
        (
            "clerr",
            w(&format!(
                "INVITE sip:user@example.com SIP/2.0\nMax-Forwards: 80\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=93942939o2\nContact: <sip:caller@hungry.example.net>\nCall-ID: clerr.0ha0isndaksdjweiafasdk3\nCSeq: 8 INVITE\nVia: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\nContent-Type: application/sdp\nContent-Length: 9999\n\n{sdp}"
            )),
            BodyTruncated {
                declared: 9999,
                available: avail,
            },
        ),
        // §3.1.2.3 ncl: negative Content-Length.
        (
            "ncl",
            w(&format!(
                "INVITE sip:user@example.com SIP/2.0\nMax-Forwards: 254\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=32394234\nCall-ID: ncl.0ha0isndaksdj2193423r542w35\nCSeq: 0 INVITE\nVia: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw\nContact: <sip:caller@example53.example.net>\nContent-Type: application/sdp\nContent-Length: -999\n\n{sdp}"
            )),
            BadContentLength,
        ),
        // §3.1.2.4 scalar02: overlarge CSeq (also Max-Forwards, Expires, expires).
        (
            "scalar02",
            w(&format!(
                "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\nTo: <sip:user@example.com>\nFrom: <sip:user@example.com>;tag=239232jh3\nCSeq: 36893488147419103232 REGISTER\nCall-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\nMax-Forwards: 300\nExpires: 1{}\nContact: <sip:user@host129.example.com>;expires=280297596632815\nContent-Length: 0\n\n",
                "0".repeat(100)
            )),
            BadHeaderValue("CSeq"),
        ),
        // §3.1.2.6 quotbal: unterminated quoted string in a display name.
        (
            "quotbal",
            w(&format!(
                "INVITE sip:user@example.com SIP/2.0\nTo: \"Mr. J. User <sip:j.user@example.com>\nFrom: sip:caller@example.net;tag=93334\nMax-Forwards: 10\nCall-ID: quotbal.aksdj\nContact: <sip:caller@host59.example.net>\nCSeq: 8 INVITE\nVia: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\nContent-Type: application/sdp\nContent-Length: {{CL}}\n\n{sdp}"
            )),
            BadHeaderValue("To"),
        ),
        // §3.1.2.7 ltgtruri: Request-URI in angle brackets.
        (
            "ltgtruri",
            w(&format!(
                "INVITE <sip:user@example.com> SIP/2.0\nTo: sip:user@example.com\nFrom: sip:caller@example.net;tag=39291\nMax-Forwards: 23\nCall-ID: ltgtruri.1@192.0.2.5\nCSeq: 1 INVITE\nVia: SIP/2.0/UDP 192.0.2.5\nContact: <sip:caller@host5.example.net>\nContent-Type: application/sdp\nContent-Length: {{CL}}\n\n{sdp}"
            )),
            BadUri,
        ),
        // §3.1.2.8 lwsruri: embedded LWS in the Request-URI.
        (
            "lwsruri",
            w(
                "INVITE sip:user@example.com; lr SIP/2.0\nTo: sip:user@example.com;tag=3xfe-9921883-z9f\nFrom: sip:caller@example.net;tag=231413434\nMax-Forwards: 5\nCall-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\nCSeq: 2130706432 INVITE\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395\nContact: <sip:caller@host1.example.net>\nContent-Length: 0\n\n",
            ),
            BadUri,
        ),
        // §3.1.2.9 lwsstart: multiple SP separating Request-Line elements.
        (
            "lwsstart",
            w(
                "INVITE  sip:user@example.com  SIP/2.0\nMax-Forwards: 8\nTo: sip:user@example.com\nFrom: sip:caller@example.net;tag=8814\nCall-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com\nCSeq: 1893884 INVITE\nVia: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923\nContent-Length: 0\n\n",
            ),
            BadUri,
        ),
        // §3.1.2.10 trws: trailing SP after the version.
        (
            "trws",
            w(
                "OPTIONS sip:remote-target@example.com SIP/2.0  \nVia: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093\nTo: <sip:remote-target@example.com>\nFrom: <sip:local-resource@example.com>;tag=329429089\nCall-ID: trws.oicu34958239neffasdhr2345r\nAccept: application/sdp\nCSeq: 238923 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n",
            ),
            BadStartLine,
        ),
        // §3.1.2.11 escruri: headers in the Request-URI.
        (
            "escruri",
            w(
                "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\nTo: sip:user@example.com\nFrom: sip:caller@example.net;tag=341518\nMax-Forwards: 7\nContact: <sip:caller@host39923.example.net>\nCall-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5\nCSeq: 39234 INVITE\nVia: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw\nContent-Length: 0\n\n",
            ),
            BadUri,
        ),
        // §3.1.2.13 regbadct: `?` in a Contact addr-spec without angle brackets.
        (
            "regbadct",
            w(
                "REGISTER sip:example.com SIP/2.0\nTo: sip:user@example.com\nFrom: sip:user@example.com;tag=998332\nMax-Forwards: 70\nCall-ID: regbadct.k345asrl3fdbv@10.0.0.1\nCSeq: 1 REGISTER\nVia: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw\nContact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\nl: 0\n\n",
            ),
            BadHeaderValue("Contact"),
        ),
        // §3.1.2.14 badaspec: SP inside the angle brackets.
        (
            "badaspec",
            w(
                "OPTIONS sip:user@example.org SIP/2.0\nVia: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\nMax-Forwards: 70\nFrom: \"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423\nTo: \"Watson, Thomas\" < sip:t.watson@example.org >\nCall-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\nAccept: application/sdp\nCSeq: 3923239 OPTIONS\nl: 0\n\n",
            ),
            BadHeaderValue("To"),
        ),
        // §3.1.2.15 baddn: unquoted display name with a comma.
        (
            "baddn",
            w(
                "OPTIONS sip:t.watson@example.org SIP/2.0\nVia:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\nMax-Forwards:      70\nFrom:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\nTo:      Watson, Thomas <sip:t.watson@example.org>\nCall-ID: baddn.31415@c.example.com\nAccept: application/sdp\nCSeq:    3923239 OPTIONS\nl: 0\n\n",
            ),
            BadHeaderValue("From"),
        ),
        // §3.1.2.16 badvers: SIP/7.0.
        (
            "badvers",
            w(
                "OPTIONS sip:t.watson@example.org SIP/7.0\nVia:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\nMax-Forwards:     70\nFrom:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\nTo:      T. Watson <sip:t.watson@example.org>\nCall-ID: badvers.31417@c.example.com\nCSeq:    1 OPTIONS\nl: 0\n\n",
            ),
            BadVersion,
        ),
        // §3.1.2.17 mismatch01: CSeq method differs from the Request-Line method.
        (
            "mismatch01",
            w(
                "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\nFrom: sip:caller@example.org;tag=34525\nMax-Forwards: 6\nCall-ID: mismatch01.dj0234sxdfl3\nCSeq: 8 INVITE\nVia: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n",
            ),
            CSeqMismatch,
        ),
        // §3.1.2.18 mismatch02: the same with an unknown method.
        (
            "mismatch02",
            w(
                "NEWMETHOD sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\nFrom: sip:caller@example.org;tag=34525\nMax-Forwards: 6\nCall-ID: mismatch02.dj0234sxdfl3\nCSeq: 8 INVITE\nContact: <sip:caller@host.example.org>\nVia: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\nl: 0\n\n",
            ),
            CSeqMismatch,
        ),
        // §3.1.2.19 bigcode: a status code that is not three digits.
        (
            "bigcode",
            w(
                "SIP/2.0 4294967301 better not break the receiver\nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\nCall-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\nCSeq: 353494 INVITE\nFrom: <sip:user@example.com>;tag=39ansfi3\nTo: <sip:user@example.edu>;tag=902jndnke3\nContent-Length: 0\nContact: <sip:user@host105.example.com>\n\n",
            ),
            BadStatus,
        ),
        // §3.1.2.? multi01: single-valued headers repeated.
        (
            "multi01",
            w(
                "INVITE sip:user@company.com SIP/2.0\nContact: <sip:caller@host25.example.net>\nVia: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKvas\nMax-Forwards: 70\nTo: \"Mr. User\" <sip:user@example.com>\nCall-ID: multi01.98asdh@192.0.2.1\nCSeq: 59 INVITE\nCall-ID: multi01.98asdh@192.0.2.2\nFrom: sip:caller@example.com;tag=3413415\nTo: sip:user@example.com\nTo: sip:other@example.net\nFrom: sip:caller@example.net;tag=2923420123\nContent-Type: application/sdp\nl: 0\n\n",
            ),
            DuplicateHeader("From"),
        ),
        // §3.1.2.? insuf: mandatory headers missing.
        (
            "insuf",
            w(&format!(
                "INVITE sip:user@example.com SIP/2.0\nCSeq: 193942 INVITE\nVia: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\nContent-Type: application/sdp\nl: {{CL}}\n\n{sdp}"
            )),
            MissingHeader("From"),
        ),
    ]
}

/// Comma-separated elements in `v`, commas inside quotes or `<>` ignored:
/// the naive oracle for how many elements a list accessor should yield.
fn elements(v: &[u8]) -> usize {
    let (mut n, mut quoted, mut angle, mut esc) = (1, false, false, false);
    for &b in v {
        match b {
            _ if esc => esc = false,
            b'\\' if quoted => esc = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => n += 1,
            _ => {}
        }
    }
    n
}

/// Why `bytes` is rejected: `parse`'s error, or, for the headers `parse`
/// validates lazily (lower Vias, Contact, Route, Record-Route), the error of
/// `Message::validate_all`. In the lazy case the matching accessor must also
/// show the problem: it stops early, yielding fewer elements than the header
/// lines hold.
fn rejection(bytes: &[u8]) -> Option<ParseError> {
    let m = match sip::parse(bytes) {
        Err(e) => return Some(e),
        Ok(m) => m,
    };
    let err = m.validate_all().err()?;
    let (name, got) = match err {
        ParseError::BadHeaderValue("Via") => ("Via", m.vias().count()),
        ParseError::BadHeaderValue("Contact") => ("Contact", m.contacts().count()),
        ParseError::BadHeaderValue("Route") => ("Route", m.routes().count()),
        ParseError::BadHeaderValue("Record-Route") => ("Record-Route", m.record_routes().count()),
        other => panic!("validate_all returned {other:?}, which parse should have"),
    };
    let written: usize = m.headers(name.as_bytes()).map(elements).sum();
    assert!(
        got < written,
        "{name}: accessor yields {got} of {written} elements despite {err:?}"
    );
    Some(err)
}

#[test]
fn invalid_torture_messages_are_rejected_with_the_right_error() {
    for (name, bytes, want) in invalid() {
        assert_eq!(rejection(&bytes), Some(want), "{name}");
        exercise(&bytes);
    }
}

const BASE: &str = "OPTIONS sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbase
From: <sip:alice@example.com>;tag=1
To: <sip:bob@example.com>
Call-ID: base-1@192.0.2.1
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

";

/// `BASE` with line `find` replaced by `repl` (or appended when `find` is empty).
fn variant(find: &str, repl: &str) -> Vec<u8> {
    let s = if find.is_empty() {
        BASE.replacen("Content-Length", &format!("{repl}\nContent-Length"), 1)
    } else {
        assert!(BASE.contains(find), "{find}");
        BASE.replacen(find, repl, 1)
    };
    wire(&s)
}

#[test]
fn unusual_but_valid_table() {
    // (what, message, check)
    type Check = fn(&sip::Message<'_>) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "tabs around colon",
            variant("Call-ID: ", "Call-ID\t:\t"),
            |m| m.call_id() == Some(b"base-1@192.0.2.1"),
        ),
        (
            "lower-case names",
            variant("Max-Forwards", "max-forwards"),
            |m| m.max_forwards() == Some(70),
        ),
        ("compact i", variant("Call-ID:", "i:"), |m| {
            m.header(b"Call-ID") == Some(b"base-1@192.0.2.1")
        }),
        (
            "compact v f t",
            wire(
                &BASE
                    .replace("Via:", "v:")
                    .replace("From:", "f:")
                    .replace("To:", "t:"),
            ),
            |m| m.from().unwrap().tag == Some(b"1"),
        ),
        ("compact l", variant("Content-Length:", "l:"), |m| {
            m.content_length() == Some(0)
        }),
        (
            "compact m k s e o u r x c",
            variant(
                "",
                "m: <sip:a@b>\nk: 100rel\ns: hi\ne: gzip\no: presence\nu: dialog\nr: <sip:c@d>\nx: 1800\nc: text/plain",
            ),
            |m| {
                m.contacts().count() == 1
                    && m.header(b"Supported") == Some(b"100rel")
                    && m.header(b"Subject") == Some(b"hi")
                    && m.header(b"Content-Encoding") == Some(b"gzip")
                    && m.header(b"Event") == Some(b"presence")
                    && m.header(b"Allow-Events") == Some(b"dialog")
                    && m.header(b"Refer-To") == Some(b"<sip:c@d>")
                    && m.header(b"Session-Expires") == Some(b"1800")
                    && m.content_type() == Some(b"text/plain")
            },
        ),
        (
            "long name finds compact and back",
            variant("", "k: timer"),
            |m| m.header(b"SUPPORTED") == Some(b"timer") && m.header(b"K") == Some(b"timer"),
        ),
        (
            "folded value",
            variant(
                "To: <sip:bob@example.com>",
                "To:\n  <sip:bob@example.com>\n\t;tag=x",
            ),
            |m| m.to().unwrap().tag == Some(b"x"),
        ),
        (
            "comma-joined vias",
            variant(
                "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbase",
                "Via: SIP/2.0/UDP a;branch=z9hG4bK1 , SIP/2.0/TCP b:5061;branch=z9hG4bK2,SIP/2.0/UDP c;branch=z9hG4bK3",
            ),
            |m| m.vias().count() == 3 && m.top_via().unwrap().host == b"a",
        ),
        (
            "IPv6 everywhere",
            variant(
                "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbase",
                "Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK6;received=[2001:db8::2];rport=5062",
            ),
            |m| {
                let v = m.top_via().unwrap();
                v.host == b"[2001:db8::1]"
                    && v.port == Some(5060)
                    && v.received == Some(b"[2001:db8::2]")
                    && v.rport == Some(Some(5062))
            },
        ),
        (
            "IPv6 request-URI",
            wire(&BASE.replace(
                "sip:bob@example.com SIP",
                "sip:bob@[2001:db8::9]:5070;transport=udp SIP",
            )),
            |m| {
                let u = sip::parse_uri(m.uri().unwrap()).unwrap();
                u.host == b"[2001:db8::9]" && u.port == Some(5070) && u.params == b";transport=udp"
            },
        ),
        (
            "quoted display with escapes",
            variant(
                "From: <sip:alice@example.com>;tag=1",
                r#"From: "Al \"the\" \\ Ice" <sip:alice@example.com>;tag=1"#,
            ),
            |m| m.from().unwrap().display == Some(br#"Al \"the\" \\ Ice"#),
        ),
        (
            "contact star",
            wire(&BASE.replace("OPTIONS", "REGISTER").replacen(
                "Content-Length",
                "Contact: *\nExpires: 0\nContent-Length",
                1,
            )),
            |m| m.contacts().collect::<Vec<_>>() == [Contact::Star] && m.expires() == Some(0),
        ),
        (
            "contact list expires q",
            variant(
                "",
                "Contact: <sip:a@b>;expires=60;q=0.7, \"B\" <sip:c@d>;q=1\nContact: sip:e@f",
            ),
            |m| {
                let c: Vec<_> = m.contacts().collect();
                c.len() == 3
                    && matches!(
                        c[0],
                        Contact::Addr {
                            expires: Some(60),
                            q: Some(b"0.7"),
                            ..
                        }
                    )
            },
        ),
        (
            "record-route split",
            variant(
                "",
                "Record-Route: <sip:p1;lr>, <sip:p2;lr>\nRecord-Route: <sip:p3;lr>",
            ),
            |m| {
                m.record_routes().count() == 3
                    && m.record_routes()
                        .all(|r| sip::parse_uri(r.uri).unwrap().params == b";lr")
            },
        ),
        (
            "unknown headers kept",
            variant("", "X-Weird_Name.1: a,b;c\nX-Empty:"),
            |m| m.header(b"x-weird_name.1") == Some(b"a,b;c") && m.header(b"X-EMPTY") == Some(b""),
        ),
        (
            "repeated unknown header",
            variant("", "X-A: 1\nX-A: 2"),
            |m| m.headers(b"x-a").collect::<Vec<_>>() == [b"1", b"2"],
        ),
        (
            "auth headers",
            variant(
                "",
                "Authorization: Digest username=\"a\", realm=\"r\"\nProxy-Authorization: Digest x=1",
            ),
            |m| {
                m.authorization() == Some(br#"Digest username="a", realm="r""#)
                    && m.proxy_authorization() == Some(b"Digest x=1")
            },
        ),
        ("leading CRLFs ignored", wire(&format!("\n\n{BASE}")), |m| {
            m.as_bytes().starts_with(b"OPTIONS")
        }),
        ("bare LF line ends", BASE.as_bytes().to_vec(), |m| {
            m.call_id() == Some(b"base-1@192.0.2.1")
        }),
        (
            "lower-case version",
            wire(&BASE.replace("SIP/2.0\n", "sip/2.0\n")),
            |m| m.is_request(),
        ),
        (
            "no Content-Length: body is the rest",
            wire(&BASE.replace("Content-Length: 0\n\n", "\nhello")),
            |m| m.body() == b"hello",
        ),
        (
            "extra bytes after body dropped",
            wire(&BASE.replace("Content-Length: 0\n\n", "Content-Length: 2\n\nhello")),
            |m| m.body() == b"he",
        ),
        (
            "response without reason",
            wire(&BASE.replace("OPTIONS sip:bob@example.com SIP/2.0", "SIP/2.0 200")),
            |m| m.status() == Some(200) && m.reason() == Some(b""),
        ),
        (
            "expires and min-expires",
            wire(
                &BASE
                    .replace(
                        "OPTIONS sip:bob@example.com SIP/2.0",
                        "SIP/2.0 423 Interval Too Brief",
                    )
                    .replacen("Content-Length", "Min-Expires: 3600\nContent-Length", 1),
            ),
            |m| m.min_expires() == Some(3600),
        ),
        (
            "www-authenticate",
            wire(
                &BASE
                    .replace(
                        "OPTIONS sip:bob@example.com SIP/2.0",
                        "SIP/2.0 401 Unauthorized",
                    )
                    .replacen(
                        "Content-Length",
                        "WWW-Authenticate: Digest realm=\"x\", nonce=\"y\"\nContent-Length",
                        1,
                    ),
            ),
            |m| m.www_authenticate() == Some(br#"Digest realm="x", nonce="y""#),
        ),
        (
            "tel URI in To",
            variant("To: <sip:bob@example.com>", "To: <tel:+1-201-555-0123>"),
            |m| sip::parse_uri(m.to().unwrap().uri).unwrap().user == Some(b"+1-201-555-0123"),
        ),
    ];
    for (what, bytes, check) in cases {
        let m = sip::parse(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(m.validate_all(), Ok(()), "{what}");
        assert!(check(&m), "{what}: {m:?}");
        exercise(&bytes);
    }
}

#[test]
fn malformed_table() {
    use ParseError::*;
    let many: String = (0..200).map(|i| format!("X-H{i}: v\n")).collect();
    let cases: Vec<(&str, Vec<u8>, ParseError)> = vec![
        ("empty", vec![], Empty),
        ("only CRLF", b"\r\n\r\n".to_vec(), Empty),
        ("no blank line", wire(BASE.trim_end()), Truncated),
        (
            "start line only",
            b"OPTIONS sip:a@b SIP/2.0".to_vec(),
            Truncated,
        ),
        (
            "header without colon",
            variant("", "NoColonHere"),
            BadHeader,
        ),
        (
            "space in header name",
            variant("", "Bad Name: x"),
            BadHeader,
        ),
        (
            "continuation first",
            wire(&BASE.replacen("\nVia", "\n Via", 1)),
            BadHeader,
        ),
        (
            "too many headers",
            variant("", many.trim_end()),
            TooManyHeaders,
        ),
        ("too large", vec![b'a'; sip::MAX_MESSAGE + 1], TooLarge),
        (
            "status 99",
            wire(&BASE.replace("OPTIONS sip:bob@example.com SIP/2.0", "SIP/2.0 099 x")),
            BadStatus,
        ),
        (
            "status 700",
            wire(&BASE.replace("OPTIONS sip:bob@example.com SIP/2.0", "SIP/2.0 700 x")),
            BadStatus,
        ),
        (
            "status glued to reason",
            wire(&BASE.replace("OPTIONS sip:bob@example.com SIP/2.0", "SIP/2.0 200OK")),
            BadStatus,
        ),
        (
            "bad response version",
            wire(&BASE.replace("OPTIONS sip:bob@example.com SIP/2.0", "SIP/3.0 200 OK")),
            BadVersion,
        ),
        (
            "bad method",
            wire(&BASE.replace("OPTIONS sip", "OPT@ONS sip")),
            BadMethod,
        ),
        (
            "no version",
            wire(&BASE.replace(" SIP/2.0\n", "\n")),
            BadStartLine,
        ),
        (
            "HTTP",
            wire(&BASE.replace(" SIP/2.0\n", " HTTP/1.1\n")),
            BadStartLine,
        ),
        (
            "no scheme",
            wire(&BASE.replace("sip:bob@example.com SIP", "bob@example.com SIP")),
            BadUri,
        ),
        (
            "missing Via",
            wire(&BASE.replace("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbase\n", "")),
            MissingHeader("Via"),
        ),
        (
            "missing To",
            wire(&BASE.replace("To: <sip:bob@example.com>\n", "")),
            MissingHeader("To"),
        ),
        (
            "missing Call-ID",
            wire(&BASE.replace("Call-ID: base-1@192.0.2.1\n", "")),
            MissingHeader("Call-ID"),
        ),
        (
            "missing CSeq",
            wire(&BASE.replace("CSeq: 1 OPTIONS\n", "")),
            MissingHeader("CSeq"),
        ),
        (
            "empty Call-ID",
            variant("Call-ID: base-1@192.0.2.1", "Call-ID:"),
            BadHeaderValue("Call-ID"),
        ),
        (
            "Call-ID with space",
            variant("Call-ID: base-1@192.0.2.1", "Call-ID: a b"),
            BadHeaderValue("Call-ID"),
        ),
        (
            "Max-Forwards 256",
            variant("Max-Forwards: 70", "Max-Forwards: 256"),
            BadHeaderValue("Max-Forwards"),
        ),
        (
            "Max-Forwards text",
            variant("Max-Forwards: 70", "Max-Forwards: seventy"),
            BadHeaderValue("Max-Forwards"),
        ),
        (
            "Expires negative",
            variant("", "Expires: -1"),
            BadHeaderValue("Expires"),
        ),
        (
            "CSeq no method",
            variant("CSeq: 1 OPTIONS", "CSeq: 1"),
            BadHeaderValue("CSeq"),
        ),
        (
            "Content-Length text",
            variant("Content-Length: 0", "Content-Length: 12abc"),
            BadContentLength,
        ),
        (
            "Content-Length overflow",
            variant("Content-Length: 0", "Content-Length: 99999999999"),
            BadContentLength,
        ),
        (
            "two Content-Lengths",
            variant("", "l: 0"),
            DuplicateHeader("Content-Length"),
        ),
        (
            "two CSeqs",
            variant("", "CSeq: 2 OPTIONS"),
            DuplicateHeader("CSeq"),
        ),
        (
            "bad Via port",
            variant("192.0.2.1:5060", "192.0.2.1:70000"),
            BadHeaderValue("Via"),
        ),
        (
            "Via without sent-by",
            variant(
                "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbase",
                "Via: SIP/2.0/UDP",
            ),
            BadHeaderValue("Via"),
        ),
        (
            "trailing comma in Via",
            variant(";branch=z9hG4bKbase", ";branch=z9hG4bKbase,"),
            BadHeaderValue("Via"),
        ),
        (
            "Route garbage",
            variant("", "Route: <sip:a@b> junk"),
            BadHeaderValue("Route"),
        ),
        (
            "Record-Route unclosed",
            variant("", "Record-Route: <sip:a@b"),
            BadHeaderValue("Record-Route"),
        ),
        (
            "To with two addresses",
            variant("To: <sip:bob@example.com>", "To: <sip:a@b>, <sip:c@d>"),
            BadHeaderValue("To"),
        ),
    ];
    for (what, bytes, want) in cases {
        assert_eq!(rejection(&bytes), Some(want), "{what}");
        exercise(&bytes);
    }
}

/// Writes every message of this file into the fuzz corpus:
/// `cargo test --test sip_rfc4475 -- --ignored write_fuzz_corpus`.
#[test]
#[ignore = "writes files; run by hand to refresh fuzz/seeds/parse"]
fn write_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/parse");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in valid() {
        std::fs::write(dir.join(format!("valid-{name}.sip")), bytes).unwrap();
    }
    for (name, bytes, _) in invalid() {
        std::fs::write(dir.join(format!("invalid-{name}.sip")), bytes).unwrap();
    }
    std::fs::write(dir.join("base.sip"), wire(BASE)).unwrap();
}
