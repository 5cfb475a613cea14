//! Service names and instance ids, and the `service:id` instance key;
//! instance weights; and the log `level` words of the original tenement, as
//! streams. The API, the config, the CLI and the state files all check
//! with these.
//!
//! Rules (REFERENCE.md, Names): 1 to 63 characters of `a-z 0-9 - _`, starting
//! with a letter or digit. Pure: no I/O.

use std::fmt;

/// Why a name was refused. `kind` is "service name" or "instance id".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    pub kind: &'static str,
    pub name: String,
    pub reason: &'static str,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} {:?}: {}", self.kind, self.name, self.reason)
    }
}

impl std::error::Error for NameError {}

/// Checks one service name or instance id. `kind` names it in the error.
pub fn check(kind: &'static str, name: &str) -> Result<(), NameError> {
    let fail = |reason| {
        Err(NameError {
            kind,
            name: name.to_string(),
            reason,
        })
    };
    let Some(first) = name.chars().next() else {
        return fail("must not be empty");
    };
    // Count bytes, not chars: anything outside ASCII is refused below anyway,
    // and the limit is the DNS label limit (RFC 1035 section 2.3.4), in octets.
    if name.len() > MAX_LEN {
        return fail("must be at most 63 characters");
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return fail("must be lowercase (a-z, 0-9, - and _)");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return fail("may only contain a-z, 0-9, - and _");
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return fail("must start with a letter or a digit");
    }
    Ok(())
}

/// The stream a log `level` (`ten logs --level`, `/api/logs?level=`) means.
/// The original tenement's levels were the streams themselves; the usual
/// logging levels go where loggers usually write them: errors and warnings
/// to stderr, info to stdout. `debug` and `trace` go either way in practice
/// and are refused rather than guessed. Case-insensitive.
pub fn level_stream(level: &str) -> Option<&'static str> {
    match level.to_ascii_lowercase().as_str() {
        "stdout" | "info" => Some("stdout"),
        "stderr" | "error" | "err" | "warn" | "warning" => Some("stderr"),
        "ten" => Some("ten"),
        _ => None,
    }
}

/// What `level_stream` accepts, for error messages.
pub const LEVEL_HELP: &str =
    "expected stdout, stderr, ten, or a level: error, err, warn, warning (stderr), info (stdout)";

/// A traffic weight as the API, the CLI and the registry accept it: 0 to
/// 100. Err: the message, "weight must be 0-100, got N".
pub fn check_weight(n: i64) -> Result<u8, String> {
    u8::try_from(n)
        .ok()
        .filter(|w| *w <= 100)
        .ok_or_else(|| format!("weight must be 0-100, got {n}"))
}

/// The longest name allowed: one DNS label, since names appear in host names.
pub const MAX_LEN: usize = 63;

/// An instance, written `service:id`. Both parts are valid names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceKey {
    pub service: String,
    pub id: String,
}

impl InstanceKey {
    /// Builds a key from two parts, checking both.
    pub fn new(service: &str, id: &str) -> Result<InstanceKey, NameError> {
        check("service name", service)?;
        check("instance id", id)?;
        Ok(InstanceKey {
            service: service.to_string(),
            id: id.to_string(),
        })
    }

    /// Parses `service:id`. A missing colon is an error naming the expected form.
    pub fn parse(s: &str) -> Result<InstanceKey, NameError> {
        match s.split_once(':') {
            Some((service, id)) => InstanceKey::new(service, id),
            None => Err(NameError {
                kind: "instance",
                name: s.to_string(),
                reason: "expected SERVICE:ID, for example api:prod",
            }),
        }
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_dash_underscore() {
        for ok in ["a", "0", "api", "notes-v2", "a_b", "9lives", "x-"] {
            assert_eq!(check("service name", ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn length_limit_is_63() {
        let max = "a".repeat(63);
        assert_eq!(check("instance id", &max), Ok(()));
        let err = check("instance id", &"a".repeat(64)).unwrap_err();
        assert_eq!(err.reason, "must be at most 63 characters");
        assert_eq!(err.kind, "instance id");
    }

    #[test]
    fn refuses_empty_uppercase_leading_dash_and_others() {
        let reason = |s: &str| check("service name", s).unwrap_err().reason;
        assert_eq!(reason(""), "must not be empty");
        assert_eq!(reason("Api"), "must be lowercase (a-z, 0-9, - and _)");
        assert_eq!(reason("-api"), "must start with a letter or a digit");
        assert_eq!(reason("_api"), "must start with a letter or a digit");
        assert_eq!(reason("a.b"), "may only contain a-z, 0-9, - and _");
        assert_eq!(reason("a b"), "may only contain a-z, 0-9, - and _");
        assert_eq!(reason("caf\u{e9}"), "may only contain a-z, 0-9, - and _");
        assert_eq!(reason("a:b"), "may only contain a-z, 0-9, - and _");
    }

    #[test]
    fn error_names_kind_and_value() {
        let err = check("instance id", "Bob").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid instance id \"Bob\": must be lowercase (a-z, 0-9, - and _)"
        );
    }

    #[test]
    fn parses_service_colon_id() {
        let key = InstanceKey::parse("notes:alice").unwrap();
        assert_eq!(
            key,
            InstanceKey {
                service: "notes".into(),
                id: "alice".into()
            }
        );
        assert_eq!(key.to_string(), "notes:alice");
    }

    #[test]
    fn parse_refuses_missing_colon_and_bad_parts() {
        let err = InstanceKey::parse("notes").unwrap_err();
        assert_eq!(err.kind, "instance");
        assert!(err.to_string().contains("expected SERVICE:ID"));
        assert_eq!(
            InstanceKey::parse(":alice").unwrap_err().kind,
            "service name"
        );
        assert_eq!(
            InstanceKey::parse("notes:").unwrap_err().kind,
            "instance id"
        );
        assert_eq!(
            InstanceKey::parse("notes:a:b").unwrap_err().kind,
            "instance id"
        );
        assert_eq!(
            InstanceKey::parse("Notes:alice").unwrap_err().kind,
            "service name"
        );
    }
}
