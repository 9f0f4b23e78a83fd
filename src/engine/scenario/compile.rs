//! From the element tree of a scenario file to a [`Program`]: every step
//! checked and compiled once, every refusal a `FILE:LINE` message, before
//! any socket exists (exit code 2). The supported subset and each message
//! are in docs/sipp-scenarios.md.

use std::time::Duration;

use regex::bytes::{Regex, RegexBuilder};

use super::ScenarioError;
use super::program::*;
use super::template::{Keyword, MsgTemplate, Part, Slot, clean_message, parse_keyword};
use super::xml::{self, Node, Source};
use crate::dist::PauseDist;
use crate::engine::MethodKind;

/// What the command line adds to a scenario.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// `-key NAME VALUE`: `[NAME]` in messages.
    pub keys: Vec<(String, String)>,
    /// `-set VAR VALUE`: initial values of `<Global>` variables.
    pub sets: Vec<(String, String)>,
    /// The `-inf` files as named on the command line, the first being the
    /// run's users file; `[fieldN file="F"]` names one of them.
    pub inf_files: Vec<String>,
    /// `--recv-timeout`: the timeout of a `recv` without `timeout`.
    pub recv_timeout: Option<Duration>,
}

/// The step elements (they take a message index).
const STEP_ELEMENTS: [&str; 5] = ["send", "recv", "pause", "nop", "timewait"];

/// Attributes every step element accepts (`crlf`, `hide`, `hiderest`,
/// `display` and `ignoresdp` only change SIPp's screen or its media).
const COMMON: [&str; 13] = [
    "next",
    "test",
    "chance",
    "start_rtd",
    "rtd",
    "repeat_rtd",
    "counter",
    "crlf",
    "hide",
    "hiderest",
    "display",
    "ignoresdp",
    "ontimeout",
];

struct Ctx<'a> {
    file: &'a str,
    src: &'a Source,
    opts: &'a CompileOptions,
    labels: Vec<(String, Target)>,
    vars: Vec<VarInfo>,
    rtds: Vec<String>,
    counters: Vec<String>,
    methods: Vec<Box<[u8]>>,
    last_headers: Vec<Box<[u8]>>,
    last_spellings: Vec<(u16, Box<[u8]>)>,
    auths: Vec<AuthSpec>,
    inf_names: Vec<String>,
    warnings: Vec<String>,
    n_steps: usize,
}

fn err(file: &str, line: u32, msg: impl Into<String>) -> ScenarioError {
    ScenarioError::at(file, line, msg)
}

/// `<name a="v" ...>` for messages (the first attributes, shortened).
fn tag(n: &Node) -> String {
    let mut s = format!("<{}", n.name);
    for (k, v, _) in n.attrs.iter().take(2) {
        let v: String = v.chars().take(30).collect();
        s.push_str(&format!(" {k}=\"{v}\""));
    }
    s.push('>');
    s
}

/// Kinds of refusal found before anything else, first in file order.
fn refuse_kinds(n: &Node, file: &str) -> Result<(), ScenarioError> {
    match n.name.as_str() {
        "sendCmd" | "recvCmd" => {
            return Err(err(
                file,
                n.line,
                format!("<{}>: 3PCC (sendCmd/recvCmd) is not supported", n.name),
            ));
        }
        "rtp_echo" => {
            return Err(err(
                file,
                n.line,
                "<rtp_echo>: media is not supported (sipstorm sends no RTP)",
            ));
        }
        "exec" => {
            let media = [
                "play_pcap_audio",
                "play_pcap_video",
                "play_pcap_image",
                "play_dtmf",
                "rtp_stream",
                "rtp_echo",
            ];
            if n.attrs.iter().any(|(k, _, _)| media.contains(&k.as_str())) {
                return Err(err(
                    file,
                    n.line,
                    format!("{}: media is not supported (sipstorm sends no RTP)", tag(n)),
                ));
            }
            return Err(err(
                file,
                n.line,
                format!(
                    "{}: exec is not supported (sipstorm runs no commands)",
                    tag(n)
                ),
            ));
        }
        _ => {}
    }
    for (text, line) in &n.cdata {
        let mut rest = text.as_str();
        let mut at = 0usize;
        while let Some(i) = rest.find('[') {
            let name: String = rest[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.starts_with("rtpstream_")
                || name.starts_with("crypto")
                || name.starts_with("ueaes")
                || name == "rtpecho"
            {
                let l = line + text[..at + i].matches('\n').count() as u32;
                return Err(err(
                    file,
                    l,
                    format!("[{name}]: media is not supported (sipstorm sends no RTP)"),
                ));
            }
            at += i + 1;
            rest = &rest[i + 1..];
        }
    }
    for c in &n.children {
        refuse_kinds(c, file)?;
    }
    Ok(())
}

/// The right side of `<test>` / `<strcmp>`: `value="…"` or `variable2="…"`.
enum Rhs<'n> {
    Value(&'n str),
    Var(VarId),
}

impl Ctx<'_> {
    fn err(&self, line: u32, msg: impl Into<String>) -> ScenarioError {
        err(self.file, line, msg)
    }

    fn check_attrs(&self, n: &Node, allowed: &[&str]) -> Result<(), ScenarioError> {
        for (k, v, line) in &n.attrs {
            if !allowed.contains(&k.as_str()) {
                let v: String = v.chars().take(30).collect();
                return Err(self.err(
                    *line,
                    format!(
                        "<{} {k}=\"{v}\">: the attribute {k} is not supported by sipstorm",
                        n.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn var(&mut self, name: &str) -> VarId {
        if let Some(i) = self.vars.iter().position(|v| v.name == name) {
            return i as VarId;
        }
        self.vars.push(VarInfo {
            name: name.to_string(),
            global: false,
            set: None,
        });
        (self.vars.len() - 1) as VarId
    }

    /// A variable an action writes: never a global (read-only here).
    fn var_w(&mut self, name: &str, line: u32) -> Result<VarId, ScenarioError> {
        let id = self.var(name);
        if self.vars[usize::from(id)].global {
            return Err(self.err(
                line,
                format!(
                    "variable {name} is declared <Global>: global variables are read-only in \
                     sipstorm (each worker runs its own calls; set them with -set)"
                ),
            ));
        }
        Ok(id)
    }

    fn rtd(&mut self, v: &str) -> u8 {
        let name = if v == "true" { "1" } else { v };
        if let Some(i) = self.rtds.iter().position(|r| r == name) {
            return i as u8;
        }
        self.rtds.push(name.to_string());
        (self.rtds.len() - 1) as u8
    }

    fn label(&self, id: &str, line: u32, what: &str) -> Result<Target, ScenarioError> {
        self.labels
            .iter()
            .find(|(l, _)| l == id)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                self.err(
                    line,
                    format!("{what}=\"{id}\": there is no <label id=\"{id}\"/>"),
                )
            })
    }

    fn method_bit(&mut self, m: &[u8]) -> u64 {
        let i = match self.methods.iter().position(|x| &x[..] == m) {
            Some(i) => i,
            None => {
                self.methods.push(m.into());
                self.methods.len() - 1
            }
        };
        if i < 64 { 1 << i } else { 0 }
    }

    fn last_header(&mut self, lower: &[u8]) -> u16 {
        // Compact forms (RFC 3261 §7.3.3) name the same header.
        let canon: &[u8] = match lower {
            b"v" => b"via",
            b"f" => b"from",
            b"t" => b"to",
            b"i" => b"call-id",
            b"m" => b"contact",
            b"l" => b"content-length",
            b"c" => b"content-type",
            b"e" => b"content-encoding",
            b"s" => b"subject",
            b"k" => b"supported",
            o => o,
        };
        match self.last_headers.iter().position(|h| &h[..] == canon) {
            Some(i) => i as u16,
            None => {
                self.last_headers.push(canon.into());
                (self.last_headers.len() - 1) as u16
            }
        }
    }

    fn number(&self, n: &Node, attr: &str) -> Result<Option<f64>, ScenarioError> {
        let Some(v) = n.attr(attr) else {
            return Ok(None);
        };
        let line = n
            .attrs
            .iter()
            .find(|(k, _, _)| k == attr)
            .map_or(n.line, |a| a.2);
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| self.err(line, format!("<{} {attr}=\"{v}\">: not a number", n.name)))
    }

    fn ms(&self, n: &Node, attr: &str) -> Result<Option<Duration>, ScenarioError> {
        match self.number(n, attr)? {
            None => Ok(None),
            Some(v) if v >= 0.0 => Ok(Some(Duration::from_secs_f64(
                (v / 1e3).min(crate::dist::MAX_DELAY.as_secs_f64()),
            ))),
            Some(v) => Err(self.err(n.line, format!("<{} {attr}=\"{v}\">: negative", n.name))),
        }
    }

    fn boolean(&self, n: &Node, attr: &str) -> Result<bool, ScenarioError> {
        match n.attr(attr) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(o) => Err(self.err(
                n.line,
                format!("<{} {attr}=\"{o}\">: expected true or false", n.name),
            )),
        }
    }

    fn regex(&self, pat: &str, case_indep: bool, line: u32) -> Result<Regex, ScenarioError> {
        RegexBuilder::new(pat)
            .dot_matches_new_line(true)
            .unicode(false)
            .case_insensitive(case_indep)
            .build()
            .map_err(|e| {
                let e = e.to_string();
                let last = e.lines().last().unwrap_or("").trim().to_string();
                self.err(
                    line,
                    format!("regular expression \"{pat}\" does not compile: {last} (back-references are not supported)"),
                )
            })
    }

    /// A template of message text (or `log` text): keywords to slots.
    fn template(
        &mut self,
        raw: &[u8],
        line0: u32,
        in_message: bool,
    ) -> Result<MsgTemplate, ScenarioError> {
        let mut parts: Vec<Part> = Vec::new();
        let mut lit: Vec<u8> = Vec::new();
        let mut i = 0;
        let mut header_end: Option<usize> = None;
        let mut auth_seen = false;
        while i < raw.len() {
            let c = raw[i];
            if c == b'\\'
                && raw.get(i + 1) == Some(&b'x')
                && let Some(h) = raw.get(i + 2..i + 4)
                && let Ok(s) = std::str::from_utf8(h)
                && let Ok(b) = u8::from_str_radix(s, 16)
            {
                lit.push(b);
                i += 4;
                continue;
            }
            if c != b'[' {
                lit.push(c);
                if header_end.is_none() && in_message && raw[..=i].ends_with(b"\r\n\r\n") {
                    header_end = Some(i);
                }
                i += 1;
                continue;
            }
            let line = line0 + raw[..i].iter().filter(|&&b| b == b'\n').count() as u32;
            // The closing bracket, quotes respected.
            let mut j = i + 1;
            let mut quoted = false;
            while j < raw.len() && (quoted || raw[j] != b']') {
                if raw[j] == b'"' {
                    quoted = !quoted;
                }
                if raw[j] == b'\n' {
                    break;
                }
                j += 1;
            }
            if j >= raw.len() || raw[j] != b']' {
                return Err(self.err(line, "'[' opens a keyword that has no closing ']'"));
            }
            let inner = String::from_utf8_lossy(&raw[i + 1..j]).into_owned();
            let kw = parse_keyword(&inner).map_err(|e| self.err(line, e))?;
            let line_start = i == 0 || raw[i - 1] == b'\n';
            let slot = self.slot(&kw, &inner, line)?;
            if let Slot::Auth(_) = slot {
                if auth_seen {
                    return Err(self.err(line, "only one [authentication] per message"));
                }
                if header_end.is_some() {
                    return Err(self.err(
                        line,
                        "[authentication] must be in the headers, not the body",
                    ));
                }
                auth_seen = true;
            }
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit).into()));
            }
            parts.push(Part::Slot {
                slot,
                offset: kw.offset,
                line_start,
            });
            i = j + 1;
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit.into()));
        }
        Ok(MsgTemplate { parts })
    }

    fn slot(&mut self, kw: &Keyword, inner: &str, line: u32) -> Result<Slot, ScenarioError> {
        let name = kw.name.as_str();
        let no_attrs = |s: Slot, this: &Self| {
            if kw.attrs.is_empty() {
                Ok(s)
            } else {
                Err(this.err(line, format!("[{inner}]: [{name}] takes no attributes")))
            }
        };
        if let Some(v) = name.strip_prefix('$') {
            if v.is_empty() {
                return Err(self.err(line, "[$]: a variable name is missing"));
            }
            let id = self.var(v);
            return no_attrs(Slot::Var(id), self);
        }
        if let Some(k) = self.opts.keys.iter().position(|(k, _)| k == inner.trim()) {
            return Ok(Slot::Key(k as u16));
        }
        let simple = match name {
            "service" => Some(Slot::Service),
            "remote_ip" => Some(Slot::RemoteIp),
            "remote_port" => Some(Slot::RemotePort),
            "local_ip" => Some(Slot::LocalIp),
            "local_ip_type" => Some(Slot::LocalIpType),
            "local_port" => Some(Slot::LocalPort),
            "transport" => Some(Slot::Transport),
            "media_ip" => Some(Slot::MediaIp),
            "media_ip_type" => Some(Slot::MediaIpType),
            "media_port" => Some(Slot::MediaPort),
            "auto_media_port" => Some(Slot::AutoMediaPort),
            "pid" => Some(Slot::Pid),
            "branch" => Some(Slot::Branch),
            "call_id" => Some(Slot::CallId),
            "call_number" => Some(Slot::CallNumber),
            "cseq" => Some(Slot::Cseq),
            "len" => Some(Slot::Len),
            "peer_tag_param" => Some(Slot::PeerTagParam),
            "last_Request_URI" => Some(Slot::LastRequestUri),
            "last_cseq_number" => Some(Slot::LastCseqNumber),
            "routes" => Some(Slot::Routes),
            "next_url" => Some(Slot::NextUrl),
            _ => None,
        };
        if let Some(s) = simple {
            return no_attrs(s, self);
        }
        if name == "last_message" {
            return Err(self.err(line, "[last_message] is not supported by sipstorm (calls keep only the headers the scenario reads)"));
        }
        if let Some(h) = name.strip_prefix("last_") {
            let h = h.strip_suffix(':').unwrap_or(h);
            if h.is_empty() {
                return Err(self.err(line, format!("[{inner}]: a header name is missing")));
            }
            let k = self.last_header(h.to_ascii_lowercase().as_bytes());
            self.last_spellings.push((k, h.as_bytes().into()));
            return no_attrs(
                Slot::LastHeader((self.last_spellings.len() - 1) as u16),
                self,
            );
        }
        if let Some(n) = name.strip_prefix("field")
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            let n: u16 = n
                .parse()
                .map_err(|_| self.err(line, format!("[{inner}]: field number too large")))?;
            let mut file = 0u8;
            for (k, v) in &kw.attrs {
                match k.as_str() {
                    "file" => {
                        let pos = self.opts.inf_files.iter().position(|f| {
                            f == v
                                || std::path::Path::new(f).file_name()
                                    == std::path::Path::new(v).file_name()
                        });
                        match pos {
                            Some(0) => file = 0,
                            Some(p) => {
                                let name = self.opts.inf_files[p].clone();
                                let idx = match self.inf_names.iter().position(|x| *x == name) {
                                    Some(i) => i,
                                    None => {
                                        self.inf_names.push(name);
                                        self.inf_names.len() - 1
                                    }
                                };
                                file = (idx + 1).min(255) as u8;
                            }
                            None => {
                                return Err(self.err(
                                    line,
                                    format!("[{inner}]: no -inf file \"{v}\" was given"),
                                ));
                            }
                        }
                    }
                    "line" => {
                        return Err(self.err(
                            line,
                            format!("[{inner}]: line= is not supported by sipstorm"),
                        ));
                    }
                    o => return Err(self.err(line, format!("[{inner}]: unknown attribute {o}"))),
                }
            }
            if file == 0 && self.opts.inf_files.is_empty() && n > 0 {
                return Err(self.err(
                    line,
                    format!("[{inner}]: needs an injection file (-inf FILE or --users FILE)"),
                ));
            }
            return Ok(Slot::Field { file, n });
        }
        if name == "authentication" {
            let mut spec = AuthSpec::default();
            for (k, v) in &kw.attrs {
                let t = self.template(v.as_bytes(), line, false)?;
                match k.as_str() {
                    "username" => spec.user = Some(t),
                    "password" => spec.password = Some(t),
                    o if o.starts_with("aka_") => {
                        return Err(self.err(
                            line,
                            format!("[{inner}]: Digest AKA ({o}) is not supported by sipstorm"),
                        ));
                    }
                    o => return Err(self.err(line, format!("[{inner}]: unknown attribute {o}"))),
                }
            }
            self.auths.push(spec);
            return Ok(Slot::Auth((self.auths.len() - 1) as u16));
        }
        let known_unsupported = [
            "remote_host",
            "server_ip",
            "msg_index",
            "dynamic_id",
            "date",
            "timestamp",
            "clock_tick",
            "sipp_version",
            "file",
            "fill",
            "tdmmap",
            "users",
            "userid",
            "last_keyword",
        ];
        if known_unsupported.contains(&name) {
            return Err(self.err(
                line,
                format!("the keyword [{name}] is not supported by sipstorm"),
            ));
        }
        Err(self.err(
            line,
            format!("unknown keyword [{inner}] (a -key NAME VALUE defines [NAME]; see docs/sipp-scenarios.md for the supported keywords)"),
        ))
    }

    fn check(&self, n: &Node) -> Result<Check, ScenarioError> {
        Ok(
            match (
                self.boolean(n, "check_it")?,
                self.boolean(n, "check_it_inverse")?,
            ) {
                (true, true) => {
                    return Err(self.err(
                        n.line,
                        format!("<{}>: check_it and check_it_inverse together", n.name),
                    ));
                }
                (true, false) => Check::It,
                (false, true) => Check::Inverse,
                (false, false) => Check::None,
            },
        )
    }

    fn required<'n>(&self, n: &'n Node, attr: &str) -> Result<&'n str, ScenarioError> {
        n.attr(attr).ok_or_else(|| {
            self.err(
                n.line,
                format!("<{}>: the attribute {attr} is required", n.name),
            )
        })
    }

    fn operand(&mut self, n: &Node) -> Result<Operand, ScenarioError> {
        match (n.attr("value"), n.attr("variable")) {
            (Some(_), Some(_)) => {
                Err(self.err(n.line, format!("<{}>: value and variable together", n.name)))
            }
            (Some(_), None) => Ok(Operand::Const(self.number(n, "value")?.unwrap_or(0.0))),
            (None, Some(v)) => {
                let v = v.to_string();
                Ok(Operand::Var(self.var(&v)))
            }
            (None, None) => Err(self.err(
                n.line,
                format!("<{}>: value or variable is required", n.name),
            )),
        }
    }

    /// The common part of `<test>` and `<strcmp>`: the attributes they
    /// take (plus `extra`), the optional `assign_to`, the `variable`, and
    /// the right side: `value` as written or `variable2`, exactly one.
    fn comparison<'n>(
        &mut self,
        n: &'n Node,
        extra: &[&str],
    ) -> Result<(Option<VarId>, VarId, Rhs<'n>), ScenarioError> {
        let mut attrs = vec![
            "assign_to",
            "variable",
            "value",
            "variable2",
            "check_it",
            "check_it_inverse",
        ];
        attrs.extend_from_slice(extra);
        self.check_attrs(n, &attrs)?;
        let to = match n.attr("assign_to") {
            Some(v) => Some(self.var_w(v, n.line)?),
            None => None,
        };
        let left = self.required(n, "variable")?;
        let left = self.var(left);
        let right = match (n.attr("value"), n.attr("variable2")) {
            (Some(v), None) => Rhs::Value(v),
            (None, Some(v)) => Rhs::Var(self.var(v)),
            _ => {
                return Err(self.err(
                    n.line,
                    format!("<{}>: value or variable2 is required (one of them)", n.name),
                ));
            }
        };
        Ok((to, left, right))
    }

    fn action(&mut self, n: &Node) -> Result<Action, ScenarioError> {
        if let Some(l) = n.stray_text {
            return Err(self.err(l, format!("<{}>: unexpected text", n.name)));
        }
        let assign_to = |c: &mut Self, n: &Node| -> Result<VarId, ScenarioError> {
            let v = c.required(n, "assign_to")?.to_string();
            c.var_w(&v, n.line)
        };
        Ok(match n.name.as_str() {
            "ereg" => {
                self.check_attrs(
                    n,
                    &[
                        "regexp",
                        "search_in",
                        "header",
                        "variable",
                        "case_indep",
                        "occurrence",
                        "occurence",
                        "start_line",
                        "check_it",
                        "check_it_inverse",
                        "assign_to",
                    ],
                )?;
                let case_indep = self.boolean(n, "case_indep")?;
                let pat = self.required(n, "regexp")?.to_string();
                let re = self.regex(&pat, case_indep, n.line)?;
                let search = match n.attr("search_in").unwrap_or("msg") {
                    "msg" => SearchIn::Msg,
                    "body" => SearchIn::Body,
                    "var" => {
                        let v = self.required(n, "variable")?.to_string();
                        SearchIn::Var(self.var(&v))
                    }
                    "hdr" => {
                        let h = self.required(n, "header")?;
                        let occ = n.attr("occurrence").or(n.attr("occurence")).unwrap_or("1");
                        let occurrence: u16 =
                            occ.trim().parse().ok().filter(|&o| o >= 1).ok_or_else(|| {
                                self.err(
                                    n.line,
                                    format!(
                                        "<ereg occurrence=\"{occ}\">: expected a number from 1"
                                    ),
                                )
                            })?;
                        SearchIn::Hdr {
                            name: h.as_bytes().into(),
                            case_indep,
                            occurrence,
                            start_line: self.boolean(n, "start_line")?,
                        }
                    }
                    o => {
                        return Err(self.err(
                            n.line,
                            format!("<ereg search_in=\"{o}\">: expected msg, hdr, body or var"),
                        ));
                    }
                };
                let names = n.attr("assign_to").unwrap_or("").to_string();
                let mut assign = Vec::new();
                for v in names.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    assign.push(self.var_w(v, n.line)?);
                }
                if assign.len() > 10 {
                    return Err(self.err(
                        n.line,
                        "<ereg>: at most 10 variables in assign_to (the match and 9 groups)",
                    ));
                }
                Action::Ereg {
                    re,
                    search,
                    assign: assign.into(),
                    check: self.check(n)?,
                }
            }
            "log" => {
                self.check_attrs(n, &["message"])?;
                let m = self.required(n, "message")?.to_string();
                let t = self.template(m.as_bytes(), n.line, false)?;
                Action::Log(t)
            }
            "assign" | "add" | "multiply" | "divide" => {
                self.check_attrs(n, &["assign_to", "value", "variable"])?;
                let to = assign_to(self, n)?;
                let op = self.operand(n)?;
                match n.name.as_str() {
                    "assign" => Action::Assign(to, op),
                    "add" => Action::Add(to, op),
                    "multiply" => Action::Multiply(to, op),
                    _ => {
                        if op == Operand::Const(0.0) {
                            return Err(self.err(n.line, "<divide value=\"0\">: division by zero"));
                        }
                        Action::Divide(to, op)
                    }
                }
            }
            "test" => {
                let (to, left, right) = self.comparison(n, &["compare"])?;
                let op = match self.required(n, "compare")? {
                    "equal" => Compare::Equal,
                    "not_equal" => Compare::NotEqual,
                    "greater_than" => Compare::Greater,
                    "less_than" => Compare::Less,
                    "greater_than_equal" => Compare::GreaterEqual,
                    "less_than_equal" => Compare::LessEqual,
                    o => {
                        return Err(self.err(n.line, format!("<test compare=\"{o}\">: expected equal, not_equal, greater_than, less_than, greater_than_equal or less_than_equal")));
                    }
                };
                let right = match right {
                    Rhs::Value(_) => Operand::Const(self.number(n, "value")?.unwrap_or(0.0)),
                    Rhs::Var(v) => Operand::Var(v),
                };
                Action::Test {
                    to,
                    left,
                    op,
                    right,
                    check: self.check(n)?,
                }
            }
            "strcmp" => {
                let (to, left, right) = self.comparison(n, &[])?;
                let right = match right {
                    Rhs::Value(v) => StrOperand::Lit(self.src.bytes_of(v).into()),
                    Rhs::Var(v) => StrOperand::Var(v),
                };
                Action::Strcmp {
                    to,
                    left,
                    right,
                    check: self.check(n)?,
                }
            }
            "todouble" => {
                self.check_attrs(n, &["assign_to", "variable"])?;
                let to = assign_to(self, n)?;
                let from = self.required(n, "variable")?.to_string();
                Action::ToDouble(to, self.var(&from))
            }
            "setdest" => {
                self.check_attrs(n, &["host", "port", "protocol"])?;
                let host = self.required(n, "host")?.to_string();
                let port = self.required(n, "port")?.to_string();
                let proto = self.required(n, "protocol")?.to_string();
                // The protocol must be the run's: checked when binding.
                let proto_t = self.template(proto.as_bytes(), n.line, false)?;
                let is_transport = matches!(
                    proto_t.parts.as_slice(),
                    [Part::Slot {
                        slot: Slot::Transport,
                        ..
                    }]
                );
                let lit_ok = matches!(proto.to_ascii_lowercase().as_str(), "udp" | "tcp" | "tls");
                if !is_transport && !lit_ok {
                    return Err(self.err(
                        n.line,
                        format!(
                            "<setdest protocol=\"{proto}\">: expected udp, tcp, tls or [transport]"
                        ),
                    ));
                }
                Action::SetDest {
                    host: self.template(host.as_bytes(), n.line, false)?,
                    port: self.template(port.as_bytes(), n.line, false)?,
                }
            }
            "jump" => {
                self.check_attrs(n, &["value", "variable"])?;
                match (n.attr("value"), n.attr("variable")) {
                    (Some(v), None) => {
                        let idx: usize = v.trim().parse().map_err(|_| {
                            self.err(
                                n.line,
                                format!("<jump value=\"{v}\">: expected a step index"),
                            )
                        })?;
                        if idx > self.n_steps {
                            return Err(self.err(
                                n.line,
                                format!(
                                    "<jump value=\"{v}\">: the scenario has {} steps",
                                    self.n_steps
                                ),
                            ));
                        }
                        Action::Jump(JumpTo::Index(idx as Target))
                    }
                    (None, Some(v)) => {
                        let v = v.to_string();
                        Action::Jump(JumpTo::Var(self.var(&v)))
                    }
                    _ => {
                        return Err(self.err(
                            n.line,
                            "<jump>: value or variable is required (one of them)",
                        ));
                    }
                }
            }
            "exec" | "sendCmd" | "recvCmd" => unreachable!("refused before compiling"),
            o => {
                return Err(self.err(
                    n.line,
                    format!("the action <{o}> is not supported by sipstorm"),
                ));
            }
        })
    }

    fn actions(&mut self, n: &Node) -> Result<Box<[Action]>, ScenarioError> {
        let mut out = Vec::new();
        for c in &n.children {
            if c.name != "action" {
                continue;
            }
            if !c.attrs.is_empty() {
                self.check_attrs(c, &[])?;
            }
            for a in &c.children {
                out.push(self.action(a)?);
            }
        }
        Ok(out.into())
    }

    fn children_ok(&self, n: &Node, allowed: &[&str]) -> Result<(), ScenarioError> {
        for c in &n.children {
            if !allowed.contains(&c.name.as_str()) {
                return Err(self.err(
                    c.line,
                    format!(
                        "<{}> inside <{}> is not supported by sipstorm",
                        c.name, n.name
                    ),
                ));
            }
        }
        if let Some(l) = n.stray_text {
            self.warn_stray(l, n);
        }
        Ok(())
    }

    fn warn_stray(&self, _l: u32, _n: &Node) {}

    fn step(
        &mut self,
        n: &Node,
        index: usize,
        methods_before: &mut u64,
    ) -> Result<Step, ScenarioError> {
        if let Some(l) = n.stray_text {
            self.warnings.push(format!(
                "{}:{l}: text outside CDATA inside <{}> is ignored (as SIPp ignores it)",
                self.file, n.name
            ));
        }
        let mut allowed: Vec<&str> = COMMON.to_vec();
        let kind = match n.name.as_str() {
            "send" => {
                allowed.extend(["retrans", "lost"]);
                self.check_attrs(n, &allowed)?;
                self.children_ok(n, &["action"])?;
                let (text, cline) = n
                    .cdata
                    .first()
                    .ok_or_else(|| self.err(n.line, "<send> without a <![CDATA[ message ]]>"))?;
                if n.cdata.len() > 1 {
                    self.warnings.push(format!(
                        "{}:{}: <send> has more than one CDATA section: only the first is sent (as SIPp)",
                        self.file, n.line
                    ));
                }
                let raw = self.src.bytes_of(text);
                let lead = raw
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .filter(|&&b| b == b'\n')
                    .count() as u32;
                let msg = clean_message(&raw);
                let line0 = cline + lead;
                let first_end = memchr::memmem::find(&msg, b"\r\n").unwrap_or(msg.len());
                let first = &msg[..first_end];
                let sp = memchr::memchr(b' ', first).unwrap_or(first.len());
                let token = &first[..sp];
                if token.contains(&b'[') || token.is_empty() {
                    return Err(self.err(
                        line0,
                        "a message must start with a literal method or SIP/2.0 (no keyword there)",
                    ));
                }
                let (method, code) = if token == b"SIP/2.0" {
                    let c = first
                        .get(sp + 1..sp + 4)
                        .and_then(|c| std::str::from_utf8(c).ok())
                        .and_then(|c| c.parse::<u16>().ok());
                    match c {
                        Some(c) if (100..700).contains(&c) => (None, c),
                        _ => {
                            return Err(self.err(
                                line0,
                                "a response must start with SIP/2.0 and a status code 100-699",
                            ));
                        }
                    }
                } else {
                    if !token
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._!%*+`'~".contains(b))
                    {
                        return Err(self.err(
                            line0,
                            format!("\"{}\" is not a SIP method", String::from_utf8_lossy(token)),
                        ));
                    }
                    let kind =
                        crate::engine::wire::method_kind(&crate::sip::Method::from_bytes(token));
                    (Some((Box::<[u8]>::from(token), kind)), 0)
                };
                let tpl = self.template(&msg, line0, true)?;
                if let Some((m, _)) = &method {
                    let m = m.clone();
                    *methods_before |= self.method_bit(&m);
                }
                let retrans = match self.number(n, "retrans")? {
                    None => None,
                    Some(v) if v >= 1.0 => Some(v.min(1e7) as u32),
                    Some(v) => {
                        return Err(self.err(
                            n.line,
                            format!("<send retrans=\"{v}\">: expected milliseconds, at least 1"),
                        ));
                    }
                };
                let lost = self.number(n, "lost")?.unwrap_or(0.0);
                if !(0.0..=100.0).contains(&lost) {
                    return Err(self.err(
                        n.line,
                        format!("<send lost=\"{lost}\">: expected a percentage"),
                    ));
                }
                let bumps_cseq = method
                    .as_ref()
                    .is_some_and(|(_, k)| !matches!(k, MethodKind::Ack | MethodKind::Cancel));
                StepKind::Send(Box::new(Send {
                    is_invite: msg.starts_with(b"INVITE"),
                    tpl,
                    method,
                    code,
                    bumps_cseq,
                    retrans,
                    lost: lost / 100.0,
                }))
            }
            "recv" => {
                allowed.extend([
                    "response",
                    "request",
                    "optional",
                    "timeout",
                    "rrs",
                    "auth",
                    "regexp_match",
                ]);
                self.check_attrs(n, &allowed)?;
                self.children_ok(n, &["action"])?;
                let re = self.boolean(n, "regexp_match")?;
                let methods = if index == 0 {
                    u64::MAX
                } else {
                    *methods_before
                };
                let matcher = match (n.attr("request"), n.attr("response")) {
                    (Some(m), None) if re => Matcher::MethodRe(self.regex(m, false, n.line)?),
                    (Some(m), None) => {
                        if m.is_empty() || m.contains(char::is_whitespace) {
                            return Err(
                                self.err(n.line, format!("<recv request=\"{m}\">: not a method"))
                            );
                        }
                        Matcher::Method(m.as_bytes().into())
                    }
                    (None, Some(c)) if re => Matcher::CodeRe {
                        re: self.regex(c, false, n.line)?,
                        methods,
                    },
                    (None, Some(c)) => match c.trim().parse::<u16>() {
                        Ok(code) if (100..700).contains(&code) => Matcher::Code { code, methods },
                        _ => {
                            return Err(self.err(
                                n.line,
                                format!("<recv response=\"{c}\">: expected a status code 100-699"),
                            ));
                        }
                    },
                    (Some(_), Some(_)) => {
                        return Err(self.err(n.line, "<recv>: request and response together"));
                    }
                    (None, None) => {
                        return Err(self.err(n.line, "<recv>: request or response is required"));
                    }
                };
                let optional = match n.attr("optional") {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some("global") => return Err(self.err(n.line, "<recv optional=\"global\">: not supported by sipstorm (optional=\"true\" is)")),
                    Some(o) => return Err(self.err(n.line, format!("<recv optional=\"{o}\">: expected true or false"))),
                };
                StepKind::Recv(Box::new(Recv {
                    matcher,
                    optional,
                    timeout: self.ms(n, "timeout")?.or(self.opts.recv_timeout),
                    rrs: self.boolean(n, "rrs")?,
                    auth: self.boolean(n, "auth")?,
                }))
            }
            "pause" => {
                allowed.extend([
                    "milliseconds",
                    "variable",
                    "distribution",
                    "value",
                    "min",
                    "max",
                    "mean",
                    "stdev",
                    "lambda",
                    "k",
                    "x_m",
                    "theta",
                    "p",
                    "n",
                    "sanity_check",
                ]);
                let old_style = [
                    "normal",
                    "exponential",
                    "lognormal",
                    "weibull",
                    "pareto",
                    "gamma",
                    "negbin",
                ];
                if let Some((k, _, l)) = n
                    .attrs
                    .iter()
                    .find(|(k, _, _)| old_style.contains(&k.as_str()))
                {
                    return Err(self.err(*l, format!("<pause {k}=...>: the old form is not supported by sipstorm: write distribution=\"{k}\" with its parameters")));
                }
                if n.attr("distribution").is_none()
                    && (n.attr("min").is_some() || n.attr("max").is_some())
                {
                    return Err(self.err(n.line, "<pause min= max=>: the old form is not supported by sipstorm: write distribution=\"uniform\" min=\"..\" max=\"..\""));
                }
                self.check_attrs(n, &allowed)?;
                self.children_ok(n, &[])?;
                StepKind::Pause(self.pause(n)?)
            }
            "nop" => {
                self.check_attrs(n, &allowed)?;
                self.children_ok(n, &["action"])?;
                StepKind::Nop
            }
            "timewait" => {
                self.check_attrs(n, &["milliseconds", "crlf", "hide", "hiderest", "display"])?;
                self.children_ok(n, &[])?;
                StepKind::TimeWait(self.ms(n, "milliseconds")?.unwrap_or_default())
            }
            _ => unreachable!("a step element"),
        };
        let next = match n.attr("next") {
            Some(l) => Some(self.label(l, n.line, "next")?),
            None => None,
        };
        let ontimeout = match n.attr("ontimeout") {
            Some(l) => Some(self.label(l, n.line, "ontimeout")?),
            None => None,
        };
        let test = match n.attr("test") {
            Some(v) => {
                let v = v.to_string();
                Some(self.var(&v))
            }
            None => None,
        };
        let chance = match self.number(n, "chance")? {
            Some(p) if (0.0..=1.0).contains(&p) => Some(p),
            Some(p) => {
                return Err(self.err(
                    n.line,
                    format!(
                        "<{} chance=\"{p}\">: expected a probability from 0 to 1",
                        n.name
                    ),
                ));
            }
            None => None,
        };
        if (test.is_some() || chance.is_some()) && next.is_none() {
            return Err(self.err(n.line, format!("<{}>: test and chance need next", n.name)));
        }
        let start_rtd = n
            .attr("start_rtd")
            .map(|v| v.to_string())
            .map(|v| self.rtd(&v));
        let rtd = n.attr("rtd").map(|v| v.to_string()).map(|v| self.rtd(&v));
        let counter = n
            .attr("counter")
            .map(|c| match self.counters.iter().position(|x| x == c) {
                Some(i) => i as u16,
                None => {
                    self.counters.push(c.to_string());
                    (self.counters.len() - 1) as u16
                }
            });
        let actions = self.actions(n)?;
        if n.name == "send"
            && actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Ereg {
                        search: SearchIn::Msg | SearchIn::Body | SearchIn::Hdr { .. },
                        ..
                    }
                )
            })
        {
            return Err(self.err(
                n.line,
                "<ereg> on a <send> is not supported by sipstorm (it searches received messages; search_in=\"var\" works)",
            ));
        }
        Ok(Step {
            line: n.line,
            kind,
            next,
            test,
            chance,
            start_rtd,
            rtd,
            repeat_rtd: self.boolean(n, "repeat_rtd")?,
            counter,
            ontimeout,
            actions,
            mark: Mark::None,
        })
    }

    fn pause(&mut self, n: &Node) -> Result<Pause, ScenarioError> {
        if let Some(v) = n.attr("variable") {
            let v = v.to_string();
            return Ok(Pause::Var(self.var(&v)));
        }
        if n.attr("milliseconds").is_some() {
            let v = self.number(n, "milliseconds")?.unwrap_or(0.0);
            return Ok(Pause::Dist(PauseDist::Fixed(v)));
        }
        let Some(d) = n.attr("distribution") else {
            return Ok(Pause::Default);
        };
        let p = |c: &Self, a: &str| -> Result<f64, ScenarioError> {
            c.number(n, a)?.ok_or_else(|| {
                c.err(
                    n.line,
                    format!("<pause distribution=\"{d}\">: {a} is required"),
                )
            })
        };
        let positive = |c: &Self, a: &str| -> Result<f64, ScenarioError> {
            let v = p(c, a)?;
            if v > 0.0 {
                Ok(v)
            } else {
                Err(c.err(
                    n.line,
                    format!("<pause distribution=\"{d}\">: {a} must be positive"),
                ))
            }
        };
        Ok(Pause::Dist(match d {
            "fixed" => PauseDist::Fixed(p(self, "value")?),
            "uniform" => {
                let (min, max) = (p(self, "min")?, p(self, "max")?);
                if min > max {
                    return Err(
                        self.err(n.line, "<pause distribution=\"uniform\">: min is above max")
                    );
                }
                PauseDist::Uniform { min, max }
            }
            "normal" => PauseDist::Normal {
                mean: p(self, "mean")?,
                stdev: p(self, "stdev")?,
            },
            "lognormal" => PauseDist::LogNormal {
                mu: p(self, "mean")?,
                sigma: p(self, "stdev")?,
            },
            "exponential" => PauseDist::Exponential {
                mean: positive(self, "mean")?,
            },
            "weibull" => PauseDist::Weibull {
                lambda: positive(self, "lambda")?,
                k: positive(self, "k")?,
            },
            "pareto" => PauseDist::Pareto {
                k: positive(self, "k")?,
                x_m: positive(self, "x_m")?,
            },
            "gamma" => PauseDist::Gamma {
                k: positive(self, "k")?,
                theta: positive(self, "theta")?,
            },
            "negbin" => {
                let prob = p(self, "p")?;
                if !(prob > 0.0 && prob <= 1.0) {
                    return Err(self.err(
                        n.line,
                        "<pause distribution=\"negbin\">: p must be in (0, 1]",
                    ));
                }
                PauseDist::NegBin {
                    p: prob,
                    n: positive(self, "n")?,
                }
            }
            "gpareto" => {
                return Err(self.err(
                    n.line,
                    "<pause distribution=\"gpareto\">: not supported by sipstorm",
                ));
            }
            o => {
                return Err(self.err(
                    n.line,
                    format!("<pause distribution=\"{o}\">: unknown distribution"),
                ));
            }
        }))
    }
}

/// Compile a scenario from its bytes; `file` names it in messages.
pub fn compile_bytes(
    bytes: &[u8],
    file: &str,
    opts: &CompileOptions,
) -> Result<Program, ScenarioError> {
    let src = Source::new(bytes);
    let root = xml::parse(&src, file)?;
    refuse_kinds(&root, file)?;
    for (k, v, l) in &root.attrs {
        if k != "name" {
            return Err(err(
                file,
                *l,
                format!("<scenario {k}=\"{v}\">: the attribute {k} is not supported by sipstorm"),
            ));
        }
    }
    let mut cx = Ctx {
        file,
        src: &src,
        opts,
        labels: Vec::new(),
        vars: Vec::new(),
        rtds: Vec::new(),
        counters: Vec::new(),
        methods: Vec::new(),
        last_headers: Vec::new(),
        last_spellings: Vec::new(),
        auths: Vec::new(),
        inf_names: Vec::new(),
        warnings: Vec::new(),
        n_steps: 0,
    };
    // The abort messages need these, in this order (see `call`).
    for h in [&b"via"[..], b"from", b"to", b"call-id", b"cseq"] {
        cx.last_header(h);
    }
    // First pass: step indices, labels, declarations.
    let mut n_steps = 0usize;
    let mut last_was_timewait: Option<u32> = None;
    for c in &root.children {
        match c.name.as_str() {
            n if STEP_ELEMENTS.contains(&n) => {
                if let Some(l) = last_was_timewait {
                    return Err(err(file, l, "<timewait> must be the last step"));
                }
                if n == "timewait" {
                    last_was_timewait = Some(c.line);
                }
                n_steps += 1;
            }
            "label" => {
                cx.check_attrs(c, &["id"])?;
                let id = cx.required(c, "id")?.to_string();
                if cx.labels.iter().any(|(l, _)| *l == id) {
                    return Err(err(
                        file,
                        c.line,
                        format!("<label id=\"{id}\"/> is defined twice"),
                    ));
                }
                cx.labels.push((id, n_steps as Target));
            }
            "Global" => {
                cx.check_attrs(c, &["variables"])?;
                let list = cx.required(c, "variables")?.to_string();
                for v in list.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                    let id = cx.var(v);
                    cx.vars[usize::from(id)].global = true;
                }
            }
            "ResponseTimeRepartition" | "CallLengthRepartition" => cx.check_attrs(c, &["value"])?,
            "Reference" => cx.check_attrs(c, &["variables"])?,
            "User" => {
                return Err(err(
                    file,
                    c.line,
                    "<User> variables are not supported by sipstorm",
                ));
            }
            "init" => return Err(err(file, c.line, "<init> is not supported by sipstorm")),
            "DefaultMessage" => {
                return Err(err(
                    file,
                    c.line,
                    "<DefaultMessage> is not supported by sipstorm",
                ));
            }
            o => {
                return Err(err(
                    file,
                    c.line,
                    format!("the element <{o}> is not supported by sipstorm"),
                ));
            }
        }
    }
    if n_steps == 0 {
        return Err(err(file, root.line, "the scenario has no steps"));
    }
    if n_steps > usize::from(u16::MAX) - 1 {
        return Err(err(file, root.line, "too many steps"));
    }
    cx.n_steps = n_steps;
    for (name, value) in &opts.sets {
        match cx.vars.iter_mut().find(|v| v.name == *name) {
            Some(v) if v.global => v.set = Some(src.bytes_of(value)),
            _ => {
                return Err(ScenarioError::File {
                    file: file.to_string(),
                    msg: format!(
                        "-set {name}: the scenario declares no <Global variables=\"{name}\"/>"
                    ),
                });
            }
        }
    }
    // Second pass: the steps.
    let mut steps = Vec::with_capacity(n_steps);
    let mut methods_before = 0u64;
    for c in &root.children {
        if STEP_ELEMENTS.contains(&c.name.as_str()) {
            let s = cx.step(c, steps.len(), &mut methods_before)?;
            steps.push(s);
        }
    }
    if cx.rtds.len() > crate::engine::scenario::MAX_RTDS {
        return Err(ScenarioError::File {
            file: file.to_string(),
            msg: format!(
                "{} response-time timers (rtd): sipstorm keeps at most {}",
                cx.rtds.len(),
                crate::engine::scenario::MAX_RTDS
            ),
        });
    }
    if cx.methods.len() > 64 {
        return Err(ScenarioError::File {
            file: file.to_string(),
            msg: "more than 64 request methods".into(),
        });
    }
    let role = steps
        .iter()
        .find_map(|s| match s.kind {
            StepKind::Send(_) => Some(Role::Uac),
            StepKind::Recv(_) => Some(Role::Uas),
            _ => None,
        })
        .ok_or_else(|| err(file, root.line, "the scenario has no <send> and no <recv>"))?;
    // RFC 6076: recognisably a call or a registration.
    let sent: Vec<MethodKind> = steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Send(x) => x.method.as_ref().map(|m| m.1),
            _ => None,
        })
        .collect();
    let has = |k: MethodKind| sent.contains(&k);
    let shape = if role == Role::Uac
        && has(MethodKind::Invite)
        && has(MethodKind::Ack)
        && has(MethodKind::Bye)
    {
        Shape::Call
    } else if role == Role::Uac
        && !sent.is_empty()
        && sent.iter().all(|k| *k == MethodKind::Register)
    {
        Shape::Register
    } else {
        Shape::Other
    };
    let mut first_invite = true;
    for s in &mut steps {
        if let StepKind::Send(x) = &s.kind {
            s.mark = match (shape, x.method.as_ref().map(|m| m.1)) {
                (Shape::Call, Some(MethodKind::Invite)) if first_invite => {
                    first_invite = false;
                    Mark::Invite
                }
                (Shape::Call, Some(MethodKind::Bye)) => Mark::Bye,
                (Shape::Register, Some(MethodKind::Register)) => Mark::Register,
                _ => Mark::None,
            };
        }
    }
    let prompt = role == Role::Uas
        || steps.iter().enumerate().any(|(i, s)| match &s.kind {
            StepKind::Recv(r) => {
                r.auth
                    || (matches!(steps.get(i + 1).map(|n| &n.kind), Some(StepKind::Send(_)))
                        && steps[i + 2..].iter().any(|l| l.rtd.is_some()))
            }
            _ => false,
        });
    let name = root.attr("name").map(str::to_string).unwrap_or_else(|| {
        std::path::Path::new(file)
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().into_owned())
    });
    Ok(Program {
        name,
        file: file.to_string(),
        role,
        shape,
        steps: steps.into(),
        vars: cx.vars.into(),
        rtds: cx.rtds.into(),
        counters: cx.counters.into(),
        methods: cx.methods.into(),
        last_headers: cx.last_headers.into(),
        last_spellings: cx.last_spellings.into(),
        auths: cx.auths.into(),
        key_values: opts.keys.iter().map(|(_, v)| src.bytes_of(v)).collect(),
        prompt,
        inf_names: cx.inf_names.into(),
        warnings: cx.warnings,
    })
}

/// Read and compile a scenario file.
pub fn compile_file(
    path: &std::path::Path,
    opts: &CompileOptions,
) -> Result<Program, ScenarioError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ScenarioError::Io {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    compile_bytes(&bytes, &file, opts)
}
