//! Flat JSON objects (string, number, boolean and null values), written by the child runs and
//! read back by the parent; no serde needed for one level of keys.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A value of a flat JSON object.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// Builds one JSON object, keys in insertion order.
#[derive(Default)]
pub(crate) struct Writer(String);

impl Writer {
    fn key(&mut self, key: &str) -> &mut String {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        escape_into(&mut self.0, key);
        self.0.push(':');
        &mut self.0
    }

    pub(crate) fn str(mut self, key: &str, value: &str) -> Self {
        escape_into(self.key(key), value);
        self
    }

    pub(crate) fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub(crate) fn int(mut self, key: &str, value: u64) -> Self {
        let _ = write!(self.key(key), "{value}");
        self
    }

    /// A float with `decimals` digits after the point (`null` when not finite).
    pub(crate) fn num(self, key: &str, value: f64, decimals: usize) -> Self {
        if value.is_finite() {
            let text = format!("{value:.decimals$}");
            self.raw(key, &text)
        } else {
            self.raw(key, "null")
        }
    }

    pub(crate) fn bool(self, key: &str, value: bool) -> Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    fn raw(mut self, key: &str, text: &str) -> Self {
        self.key(key).push_str(text);
        self
    }

    pub(crate) fn finish(mut self) -> String {
        if self.0.is_empty() {
            self.0.push('{');
        }
        self.0.push('}');
        self.0
    }
}

fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses one flat JSON object.
pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, Value>, String> {
    let mut p = Parser {
        s: text.trim().as_bytes(),
        i: 0,
    };
    let mut map = BTreeMap::new();
    p.expect(b'{')?;
    if p.peek() == Some(b'}') {
        return Ok(map);
    }
    loop {
        let key = p.string()?;
        p.expect(b':')?;
        let value = p.value()?;
        map.insert(key, value);
        match p.next() {
            Some(b',') => continue,
            Some(b'}') => return Ok(map),
            _ => return Err(format!("bad JSON object: {text}")),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.next() {
            Some(got) if got == c => Ok(()),
            got => Err(format!(
                "JSON: expected `{}` at {}, got {:?}",
                c as char,
                self.i,
                got.map(char::from)
            )),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("JSON: unterminated string")?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("JSON: bad escape")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("JSON: bad \\u")?;
                            self.i += 4;
                            let code =
                                u32::from_str_radix(std::str::from_utf8(hex).unwrap_or(""), 16)
                                    .map_err(|e| format!("JSON: bad \\u: {e}"))?;
                            let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|e| format!("JSON: {e}"))
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            _ => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                text.parse()
                    .map(Value::Num)
                    .map_err(|e| format!("JSON: bad number `{text}`: {e}"))
            }
        }
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(value)
        } else {
            Err(format!("JSON: bad literal at {}", self.i))
        }
    }
}

/// Typed reads from a parsed object.
pub(crate) trait Fields {
    fn num(&self, key: &str) -> f64;
    fn text(&self, key: &str) -> Option<&str>;
    fn flag(&self, key: &str) -> bool;
}

impl Fields for BTreeMap<String, Value> {
    fn num(&self, key: &str) -> f64 {
        match self.get(key) {
            Some(Value::Num(n)) => *n,
            _ => f64::NAN,
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some(Value::Bool(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let line = Writer::default()
            .str("w", "a \"b\"\n\\")
            .int("n", 42)
            .num("x", 1.5, 2)
            .num("nan", f64::NAN, 1)
            .bool("ok", true)
            .opt_str("e", None)
            .finish();
        let map = parse(&line).unwrap();
        assert_eq!(map.text("w"), Some("a \"b\"\n\\"));
        assert_eq!(map.num("n"), 42.0);
        assert_eq!(map.num("x"), 1.5);
        assert!(map.num("nan").is_nan());
        assert!(map.flag("ok"));
        assert_eq!(map.get("e"), Some(&Value::Null));
        assert!(parse("{}").unwrap().is_empty());
    }
}
