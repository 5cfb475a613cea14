//! Service names and instance ids, and the `service:id` instance key.
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
    let _ = (kind, name);
    todo!("names::check")
}

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
        Ok(InstanceKey { service: service.to_string(), id: id.to_string() })
    }

    /// Parses `service:id`. A missing colon is an error naming the expected form.
    pub fn parse(s: &str) -> Result<InstanceKey, NameError> {
        let _ = s;
        todo!("InstanceKey::parse")
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.id)
    }
}
