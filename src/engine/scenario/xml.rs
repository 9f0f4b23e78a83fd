//! Reading a SIPp scenario file into a small tree of elements, with the
//! line of every element, attribute and CDATA section, so that every
//! refusal can name `FILE:LINE`.
//!
//! SIPp's reader is lenient and sipstorm follows it where scenarios rely on
//! it (docs/sipp-scenarios.md, "Document level"): every `\r` is stripped;
//! a file that is not UTF-8 is read as ISO-8859-1, one byte per character,
//! and its message bytes go out unchanged; the DOCTYPE is skipped and never
//! fetched; a raw `<` or `&` inside an attribute value is kept; attribute
//! values are decoded SIPp's way (`&amp;` `&lt;` `&gt;` `&quot;` and the
//! backslash escapes `\\` `\n` `\t` `\r`; anything else stays as written).
//! `\"` inside a value cannot be read (the value would end there) and is
//! refused with a hint.

use quick_xml::events::{BytesStart, Event};

use super::ScenarioError;

/// One element of the file.
#[derive(Debug, Clone, Default)]
pub(super) struct Node {
    pub name: String,
    pub line: u32,
    /// (name, value decoded SIPp's way, line), in the order written.
    pub attrs: Vec<(String, String, u32)>,
    pub children: Vec<Node>,
    /// CDATA sections: (text, line of its first character).
    pub cdata: Vec<(String, u32)>,
    /// Line of the first non-blank text outside CDATA, if any.
    pub stray_text: Option<u32>,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, _)| v.as_str())
    }
}

/// The text of a scenario file and how its characters map back to bytes.
#[derive(Debug)]
pub(super) struct Source {
    pub text: String,
    /// The file was not UTF-8: each character stands for one byte.
    pub latin1: bool,
    /// Byte offsets (in `text`) of every `\n`, for line numbers.
    newlines: Vec<usize>,
}

impl Source {
    /// Bytes as SIPp reads them: every `\r` removed; not UTF-8 → Latin-1.
    pub fn new(bytes: &[u8]) -> Source {
        let clean: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'\r').collect();
        let (text, latin1) = match String::from_utf8(clean) {
            Ok(s) => (s, false),
            Err(e) => (
                e.into_bytes().iter().map(|&b| char::from(b)).collect(),
                true,
            ),
        };
        let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).collect();
        Source {
            text,
            latin1,
            newlines,
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> u32 {
        (self.newlines.partition_point(|&n| n < offset) + 1) as u32
    }

    /// The bytes a piece of the file's text stands for.
    pub fn bytes_of(&self, s: &str) -> Vec<u8> {
        if self.latin1 {
            s.chars().map(|c| c as u32 as u8).collect()
        } else {
            s.as_bytes().to_vec()
        }
    }
}

/// SIPp's decoding of an attribute value.
pub(super) fn decode_attr(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        if c == '&' {
            let known = [
                ("&amp;", '&'),
                ("&lt;", '<'),
                ("&gt;", '>'),
                ("&quot;", '"'),
            ];
            if let Some((e, ch)) = known.iter().find(|(e, _)| rest.starts_with(e)) {
                out.push(*ch);
                rest = &rest[e.len()..];
                continue;
            }
        } else if c == '\\' {
            let esc = match rest[1..].chars().next() {
                Some('\\') => Some('\\'),
                Some('n') => Some('\n'),
                Some('t') => Some('\t'),
                Some('r') => Some('\r'),
                _ => None,
            };
            if let Some(e) = esc {
                out.push(e);
                rest = &rest[2..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Refuse `\"` inside a tag: XML ends the value there, SIPp reads on.
fn check_escaped_quotes(src: &Source, file: &str) -> Result<(), ScenarioError> {
    let t = src.text.as_bytes();
    let mut i = 0;
    let mut in_tag = false;
    while i < t.len() {
        if t[i..].starts_with(b"<![CDATA[") {
            i = memchr::memmem::find(&t[i..], b"]]>").map_or(t.len(), |e| i + e + 3);
            continue;
        }
        if t[i..].starts_with(b"<!--") {
            i = memchr::memmem::find(&t[i..], b"-->").map_or(t.len(), |e| i + e + 3);
            continue;
        }
        match t[i] {
            b'<' => in_tag = true,
            b'>' => in_tag = false,
            b'\\' if in_tag && t.get(i + 1) == Some(&b'"') => {
                return Err(ScenarioError::at(
                    file,
                    src.line_of(i),
                    "\\\" inside an attribute value cannot be read (the value would end there): \
                     write &quot; instead",
                ));
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn element(e: &BytesStart<'_>, line: u32, src: &Source, file: &str) -> Result<Node, ScenarioError> {
    let qn = e.name();
    let name: &str = qn.as_ref();
    let name = name.to_string();
    let mut attrs: Vec<(String, String, u32)> = Vec::new();
    let mut it = e.attributes();
    it.with_checks(false);
    for a in it {
        let a = a.map_err(|err| {
            ScenarioError::at(file, line, format!("<{name}>: malformed attribute: {err}"))
        })?;
        let key: &str = a.key.as_ref();
        let key = key.to_string();
        if attrs.iter().any(|(k, _, _)| *k == key) {
            return Err(ScenarioError::at(
                file,
                line,
                format!("<{name}>: the attribute {key} is given twice"),
            ));
        }
        attrs.push((key, decode_attr(&a.value), line));
    }
    let _ = src;
    Ok(Node {
        name,
        line,
        attrs,
        ..Node::default()
    })
}

/// Parse a scenario's text into its root element (`<scenario>`).
pub(super) fn parse(src: &Source, file: &str) -> Result<Node, ScenarioError> {
    check_escaped_quotes(src, file)?;
    if !src.text.trim_start().starts_with("<?xml") {
        return Err(ScenarioError::at(
            file,
            1,
            "not a SIPp scenario: the file must start with <?xml (as SIPp requires)",
        ));
    }
    let mut reader = quick_xml::Reader::from_str(&src.text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let pos = reader.buffer_position() as usize;
        // The event starts at the first non-blank byte after `pos`.
        let skip = src.text.as_bytes()[pos.min(src.text.len())..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        let line = src.line_of(pos + skip);
        let ev = reader.read_event().map_err(|e| {
            let at = reader.error_position() as usize;
            ScenarioError::at(file, src.line_of(at), format!("invalid XML: {e}"))
        })?;
        match ev {
            Event::Start(e) => stack.push(element(&e, line, src, file)?),
            Event::Empty(e) => {
                let n = element(&e, line, src, file)?;
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None if root.is_none() => root = Some(n),
                    None => {
                        return Err(ScenarioError::at(file, line, "more than one root element"));
                    }
                }
            }
            Event::End(_) => {
                let n = stack.pop().ok_or_else(|| {
                    ScenarioError::at(file, line, "invalid XML: unexpected closing tag")
                })?;
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None if root.is_none() => root = Some(n),
                    None => {
                        return Err(ScenarioError::at(file, line, "more than one root element"));
                    }
                }
            }
            Event::CData(c) => {
                let text = c.into_inner().into_owned();
                // The text starts after `<![CDATA[`.
                let first = pos + skip + "<![CDATA[".len();
                let cline = src.line_of(first);
                match stack.last_mut() {
                    Some(p) => p.cdata.push((text, cline)),
                    None => {
                        return Err(ScenarioError::at(file, cline, "CDATA outside any element"));
                    }
                }
            }
            Event::Text(t) => {
                let s = t.into_inner();
                if !s.trim().is_empty()
                    && let Some(p) = stack.last_mut()
                    && p.stray_text.is_none()
                {
                    p.stray_text = Some(line);
                }
            }
            Event::GeneralRef(_) => {
                if let Some(p) = stack.last_mut()
                    && p.stray_text.is_none()
                {
                    p.stray_text = Some(line);
                }
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(ScenarioError::at(
            file,
            open.line,
            format!("invalid XML: <{}> is never closed", open.name),
        ));
    }
    let root = root.ok_or_else(|| ScenarioError::at(file, 1, "no <scenario> element"))?;
    if root.name != "scenario" {
        return Err(ScenarioError::at(
            file,
            root.line,
            format!(
                "the root element is <{}>, SIPp scenarios have <scenario>",
                root.name
            ),
        ));
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_decode_as_sipp_does() {
        let cases = [
            ("plain", "plain"),
            ("a &amp; b &lt;c&gt; &quot;q&quot;", "a & b <c> \"q\""),
            ("&apos; &x; & lone", "&apos; &x; & lone"),
            ("a\\nb\\tc\\\\d\\r", "a\nb\tc\\d\r"),
            ("\\.\\d+", "\\.\\d+"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_attr(raw), want, "{raw}");
        }
    }

    #[test]
    fn lines_cdata_and_errors() {
        let text = "<?xml version=\"1.0\"?>\n<!DOCTYPE scenario SYSTEM \"sipp.dtd\">\n<scenario name=\"x\">\n  <send retrans=\"500\">\n    <![CDATA[\n      INVITE x SIP/2.0\n    ]]>\n  </send>\n  <recv response=\"100\"> optional=\"true\"</recv>\n  <pause regexp=\"a<b & c\"/>\n</scenario>\n";
        let src = Source::new(text.as_bytes());
        let root = parse(&src, "f.xml").unwrap();
        assert_eq!(root.attr("name"), Some("x"));
        assert_eq!(root.children.len(), 3);
        let send = &root.children[0];
        assert_eq!((send.name.as_str(), send.line), ("send", 4));
        assert_eq!(send.cdata[0].1, 5);
        assert!(send.cdata[0].0.contains("INVITE x"));
        assert_eq!(root.children[1].stray_text, Some(9));
        assert_eq!(root.children[2].attr("regexp"), Some("a<b & c"));
        let bad = [
            (
                "<?xml?>\n<scenario>\n<send a=\"x\\\"y\"/>\n</scenario>",
                3,
                "&quot;",
            ),
            (
                "<?xml?>\n<scenario>\n<send>\n</recv>\n</scenario>",
                4,
                "invalid XML",
            ),
            ("<scenario/>", 1, "<?xml"),
            ("<?xml?>\n<foo/>", 2, "<scenario>"),
            (
                "<?xml?>\n<scenario>\n<send a=\"1\" a=\"2\"/>\n</scenario>",
                3,
                "twice",
            ),
        ];
        for (t, line, what) in bad {
            let e = parse(&Source::new(t.as_bytes()), "f.xml").unwrap_err();
            assert_eq!(e.line(), Some(line), "{t}: {e}");
            assert!(e.to_string().contains(what), "{t}: {e}");
        }
    }

    #[test]
    fn latin1_files_keep_their_bytes() {
        let bytes = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\r\n<scenario><send><![CDATA[Subject: caf\xe9]]></send></scenario>";
        let src = Source::new(bytes);
        assert!(src.latin1);
        let root = parse(&src, "f.xml").unwrap();
        let text = &root.children[0].cdata[0].0;
        assert_eq!(src.bytes_of(text), b"Subject: caf\xe9");
    }
}
