//! Service names and instance ids as checked types (`ServiceName`,
//! `InstanceId`) and the `service:id` instance key; instance weights; and
//! the log `level` words of the original tenement, as streams. The API, the
//! config, the CLI and the state files check names here, once, at the
//! boundary; past it a `ServiceName` or `InstanceId` is valid by type.
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

/// Defines a checked name type: a `String` that passed `check` once, at
/// the boundary (config, API, CLI, state files). It reads as a `&str`
/// without copying (`as_str`, `Deref`, `Borrow<str>` for map lookups by
/// `&str`), and `clone_from` reuses the target's storage, so the proxy can
/// refill a key without allocating.
macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks `name` and keeps it. Err names the rule it breaks.
            pub fn new(name: &str) -> Result<$name, NameError> {
                check($kind, name)?;
                Ok($name(name.to_string()))
            }

            /// Like `new`, keeping the `String` it is given.
            pub fn from_string(name: String) -> Result<$name, NameError> {
                check($kind, &name)?;
                Ok($name(name))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Clone for $name {
            fn clone(&self) -> $name {
                $name(self.0.clone())
            }

            fn clone_from(&mut self, source: &$name) {
                self.0.clone_from(&source.0);
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        /// As the string: `{:?}` in a message shows `"api"`.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        /// Tests write names as literals; a bad one is a broken test.
        #[cfg(test)]
        impl From<&str> for $name {
            fn from(name: &str) -> $name {
                $name::new(name).expect("a valid name in a test")
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let name = String::deserialize(d)?;
                $name::from_string(name).map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

checked_name!(
    /// A service name: a `[service.NAME]` table of the config, the part
    /// before the colon of an instance key.
    ServiceName,
    "service name"
);

checked_name!(
    /// An instance id: the part after the colon of an instance key.
    InstanceId,
    "instance id"
);

/// An instance, written `service:id`. Both parts are checked names, so a
/// key that exists is valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceKey {
    pub service: ServiceName,
    pub id: InstanceId,
}

impl InstanceKey {
    /// Builds a key from two parts, checking both.
    pub fn new(service: &str, id: &str) -> Result<InstanceKey, NameError> {
        Ok(InstanceKey {
            service: ServiceName::new(service)?,
            id: InstanceId::new(id)?,
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
                service: ServiceName::new("notes").unwrap(),
                id: InstanceId::new("alice").unwrap()
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

    #[test]
    fn typed_names_check_once_and_read_as_str() {
        let service = ServiceName::new("notes").unwrap();
        assert_eq!(service.as_str(), "notes");
        assert_eq!(service, "notes");
        assert_eq!(format!("{service} {service:?}"), "notes \"notes\"");
        assert_eq!(ServiceName::new("Notes").unwrap_err().kind, "service name");
        assert_eq!(InstanceId::new("a b").unwrap_err().kind, "instance id");
        assert_eq!(
            InstanceId::from_string(String::new()).unwrap_err().reason,
            "must not be empty"
        );
        // Maps keyed by a name are looked up by &str.
        let set: std::collections::BTreeSet<ServiceName> = [service].into();
        assert!(set.contains("notes"));
    }

    #[test]
    fn typed_names_refuse_bad_names_when_deserialised() {
        let id: InstanceId = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(id, "alice");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"alice\"");
        let err = serde_json::from_str::<ServiceName>("\"../etc\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid service name \"../etc\": may only contain"),
            "{err}"
        );
    }

    #[test]
    fn clone_from_keeps_the_target_storage() {
        let mut id = InstanceId::new("a-long-enough-instance-id").unwrap();
        let before = id.as_str().as_ptr();
        id.clone_from(&InstanceId::new("bob").unwrap());
        assert_eq!(id, "bob");
        assert_eq!(id.as_str().as_ptr(), before);
    }
}
