//! The exact shape of `tenement.toml`, as serde reads it.
//!
//! Every value is `Spanned` so that `Config::from_raw` can name the line of
//! anything it refuses. Unknown keys are refused here (`deny_unknown_fields`),
//! including keys whose behaviour is not built yet: those are read, so the
//! error can name them, and refused in `from_raw`. No checks beyond types here.
//! `Raw::read` reports the first such error in the file, not serde's first.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A table of free-form keys (service names, env names, path prefixes).
/// BTreeMap orders by key text; callers that need file order sort by span.
pub type Map<V> = BTreeMap<Spanned<String>, Spanned<V>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    pub settings: Option<Spanned<RawSettings>>,
    #[serde(default)]
    pub service: Map<RawService>,
    #[serde(default)]
    pub instances: Map<Vec<Spanned<String>>>,
    pub routing: Option<Spanned<RawRouting>>,
}

impl Raw {
    /// Reads a parsed document. On a wrong type or an unknown key, the error
    /// is the one that comes first in the file: serde reports the first it
    /// meets, and it meets tables' keys in name order, not file order.
    pub fn read(doc: &Spanned<DeTable<'_>>) -> Result<Raw, toml::de::Error> {
        let whole = Raw::deserialize(toml::de::Deserializer::from(doc.clone()));
        let Err(first) = whole else { return whole };
        // Every key path alone, read on its own: each error is then at its
        // own place, and the earliest one wins. Only on the error path.
        let earliest = pieces(doc.get_ref())
            .into_iter()
            .filter_map(|piece| {
                let piece = Spanned::new(doc.span(), piece);
                Raw::deserialize(toml::de::Deserializer::from(piece)).err()
            })
            .filter(|e| e.span().is_some())
            .min_by_key(|e| e.span().map(|s| s.start));
        let earlier = |e: &toml::de::Error| match (e.span(), first.span()) {
            (Some(a), Some(b)) => a.start < b.start,
            _ => false,
        };
        Err(match earliest {
            Some(e) if earlier(&e) => e,
            _ => first,
        })
    }
}

/// Documents holding one key each (a value that is not a table, or an
/// empty table) inside its enclosing tables.
fn pieces<'i>(table: &DeTable<'i>) -> Vec<DeTable<'i>> {
    let mut out = Vec::new();
    for (key, value) in table.iter() {
        match value.get_ref() {
            DeValue::Table(inner) if !inner.is_empty() => {
                for piece in pieces(inner) {
                    let mut t = DeTable::new();
                    t.insert(
                        key.clone(),
                        Spanned::new(value.span(), DeValue::Table(piece)),
                    );
                    out.push(t);
                }
            }
            _ => {
                let mut t = DeTable::new();
                t.insert(key.clone(), value.clone());
                out.push(t);
            }
        }
    }
    out
}

/// `[settings]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub data_dir: Option<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub listen: Option<Spanned<String>>,
    pub health_check_interval: Option<Spanned<u64>>,
    pub max_restarts: Option<Spanned<u32>>,
    pub restart_window: Option<Spanned<u64>>,
    pub backoff_base_ms: Option<Spanned<u64>>,
    pub backoff_max_ms: Option<Spanned<u64>>,
    pub port_range: Option<Spanned<[u16; 2]>>,
    pub stop_timeout: Option<Spanned<u64>>,
    pub workers: Option<Spanned<u32>>,
    pub metrics_public: Option<Spanned<bool>>,
    pub log_max_bytes: Option<Spanned<u64>>,
    pub log_files: Option<Spanned<u32>>,
    pub uid_range: Option<Spanned<[u32; 2]>>,
    pub trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
    pub tls: Option<Spanned<RawTls>>,
}

/// `[settings.tls]`: certificate files and the `acme_*` keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub https_listen: Option<Spanned<String>>,
    pub redirect_http: Option<Spanned<bool>>,
    pub acme_email: Option<Spanned<String>>,
    pub acme_directory: Option<Spanned<String>>,
    pub acme_on_demand: Option<Spanned<bool>>,
    pub acme_on_demand_per_hour: Option<Spanned<u32>>,
    pub acme_on_demand_keep: Option<Spanned<u64>>,
    pub acme_challenge: Option<Spanned<String>>,
    pub acme_ca_root: Option<Spanned<String>>,
    pub certs: Option<Spanned<Vec<Spanned<RawTlsCert>>>>,
    // The original tenement's keys (0.2), read so that each is refused
    // with the key that replaces it.
    pub enabled: Option<Spanned<bool>>,
    pub domain: Option<Spanned<String>>,
    pub cache_dir: Option<Spanned<String>>,
    pub staging: Option<Spanned<bool>>,
    pub https_port: Option<Spanned<u16>>,
    pub http_port: Option<Spanned<u16>>,
    pub dns_provider: Option<Spanned<String>>,
}

/// One `[[settings.tls.certs]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsCert {
    pub names: Option<Spanned<Vec<Spanned<String>>>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

/// `[service.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Required; `Option` so the error can say so with the table's line.
    pub command: Option<Spanned<String>>,
    pub args: Option<Spanned<Vec<String>>>,
    pub workdir: Option<Spanned<String>>,
    pub health: Option<Spanned<String>>,
    pub isolation: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<u64>>,
    pub startup_timeout: Option<Spanned<u64>>,
    pub request_timeout: Option<Spanned<u64>>,
    pub restart: Option<Spanned<String>>,
    pub storage_persist: Option<Spanned<bool>>,
    pub socket_activation: Option<Spanned<bool>>,
    pub network: Option<Spanned<String>>,
    /// A name or a uid, so either a string or an integer.
    pub user: Option<Spanned<toml::Value>>,
    pub memory_limit_mb: Option<Spanned<u64>>,
    pub cpu_shares: Option<Spanned<u64>>,
    pub pids_max: Option<Spanned<u64>>,
    pub storage_quota_mb: Option<Spanned<u64>>,
    pub read_paths: Option<Spanned<Vec<String>>>,
    pub write_paths: Option<Spanned<Vec<String>>>,
    pub env_clear: Option<Spanned<bool>>,
    pub autospawn: Option<Spanned<bool>>,
    pub max_instances: Option<Spanned<u32>>,
    pub env: Option<Spanned<Map<String>>>,
    /// The original tenement's socket path pattern: refused with what
    /// replaces it (SOCKET_PATH, set by tenement).
    pub socket: Option<Spanned<toml::Value>>,
}

/// `[routing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub default: Option<Spanned<String>>,
    pub subdomain: Option<Spanned<Map<String>>>,
    pub path: Option<Spanned<Map<String>>>,
}
