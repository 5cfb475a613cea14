//! Config errors: `ConfigError` and how it prints, byte offsets to lines,
//! the dotted key at an offset, and toml's and serde's wording made to speak
//! TOML (with "did you mean" for unknown keys). Pure: no I/O.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::suggest;

/// A config error, printed as `FILE:LINE: key `KEY`: MESSAGE` (line and key when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// An io::Error without Rust's " (os error N)" suffix, lowercased like our own messages.
pub(super) fn io_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// A key as it would be written in TOML: bare when it can be, else quoted.
pub(super) fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        key.to_string()
    } else {
        toml::Value::String(key.to_string()).to_string()
    }
}

/// The text being parsed and where it came from, to turn byte offsets into lines.
pub(super) struct Source<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
}

impl Source<'_> {
    /// 1-based line of a byte offset.
    pub(super) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn error(
        &self,
        span: Option<Range<usize>>,
        key: Option<String>,
        message: String,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line(s.start)),
            key,
            message,
        }
    }

    /// A syntax or serde error; `doc`, the parsed document, is where the
    /// dotted key at the error's position is looked up.
    pub(super) fn toml_error(&self, e: &toml::de::Error, doc: Option<&DeTable<'_>>) -> ConfigError {
        let span = e.span();
        let key = match (doc, &span) {
            (Some(doc), Some(span)) => key_at(doc, span.start),
            _ => None,
        };
        let mut message = tidy_message(e.message());
        // toml says only "duplicate key"; the text under the span says which.
        if message == "duplicate key" {
            let text = span.as_ref().and_then(|s| self.text.get(s.clone()));
            if let Some(text) = text.filter(|t| !t.is_empty() && !t.contains('\n')) {
                message = format!("duplicate key `{}`", text.trim());
            }
        }
        self.error(span, key, message)
    }
}

/// The dotted key whose key or value covers byte `pos`: the narrowest match
/// wins, so a value inside a table beats the table itself.
fn key_at(doc: &DeTable<'_>, pos: usize) -> Option<String> {
    fn walk(
        table: &DeTable<'_>,
        pos: usize,
        path: &mut Vec<String>,
        best: &mut Option<(usize, String)>,
    ) {
        for (key, value) in table.iter() {
            path.push(toml_key(key.get_ref()));
            for span in [key.span(), value.span()] {
                if span.contains(&pos) && best.as_ref().is_none_or(|(width, _)| span.len() < *width)
                {
                    *best = Some((span.len(), path.join(".")));
                }
            }
            match value.get_ref() {
                DeValue::Table(inner) => walk(inner, pos, path, best),
                DeValue::Array(items) => {
                    for item in items {
                        if let DeValue::Table(inner) = item.get_ref() {
                            walk(inner, pos, path, best);
                        }
                    }
                }
                _ => {}
            }
            path.pop();
        }
    }
    let mut best = None;
    walk(doc, pos, &mut Vec::new(), &mut best);
    best.map(|(_, key)| key)
}

/// serde's and toml's wording made to speak TOML: "unknown field" becomes
/// "unknown key" with the nearest valid key, Rust type names become TOML ones.
fn tidy_message(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // serde: "unknown field `x`, expected one of `a`, `b`" (or "expected `a`",
        // "expected `a` or `b`", "there are no fields").
        let mut ticks = rest.split('`');
        let unknown = ticks.next().unwrap_or_default();
        let valid: Vec<&str> = ticks.skip(1).step_by(2).collect();
        return match suggest::nearest(unknown, &valid) {
            Some(near) => format!("unknown key `{unknown}`, did you mean `{near}`?"),
            None if valid.is_empty() => format!("unknown key `{unknown}`"),
            None => format!(
                "unknown key `{unknown}`; valid keys here: {}",
                valid.join(", ")
            ),
        };
    }
    let mut message = message.replace("invalid type: ", "wrong type: ");
    for (rust, toml) in [
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("wrong type: map", "wrong type: table"),
        ("wrong type: sequence", "wrong type: array"),
    ] {
        message = message.replace(rust, toml);
    }
    // `expected struct RawService` and friends: the struct names mean nothing to an operator.
    if let Some(at) = message.find("expected struct Raw") {
        message.truncate(at);
        message.push_str("expected a table");
    }
    message
}
