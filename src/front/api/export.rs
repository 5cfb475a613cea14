//! `GET /api/export` (admin): what an edge proxy in front of several
//! tenement nodes needs to know about this one. Instances moved away
//! (`ten move`) are left out: another node serves them. For each instance the host
//! `{id}.{service}.{domain}`, and for each service this node serves (it has
//! an instance with weight > 0) the host `{service}.{domain}`, each paired
//! with the node's name: the lines of an HAProxy map file
//! (`use_backend %[req.hdr(host),lower,map(FILE)]`).
//!
//! Pure: built from the snapshot; the node name defaults to the machine's
//! hostname, read by the caller. Nothing here touches a socket.

use super::{url, Answer, Response};
use crate::supervisor::{Snapshot, State};

/// The longest node name accepted (HAProxy backend names are not bounded,
/// but a map value that long is a mistake).
const NODE_MAX: usize = 63;

/// Whether `name` can be a node (and HAProxy backend) name: 1 to 63 of
/// `A-Z a-z 0-9 - _ . :` (HAProxy's allowed characters for proxy names).
pub fn valid_node(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NODE_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// This machine's hostname, as the default node name; `node` if it cannot
/// be read or is not a valid node name. Reads one small `/proc` file.
pub fn default_node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| valid_node(s))
        .unwrap_or_else(|| "node".to_string())
}

/// One map line: a host and what it routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub host: String,
    /// `svc:id` for an instance host, None for a service host.
    pub instance: Option<String>,
    pub service: String,
}

/// The hosts this node answers for, instance hosts first (sorted by service
/// and id, as the snapshot is), then service hosts (sorted by service).
pub fn entries(snap: &Snapshot) -> Vec<MapEntry> {
    let domain = &snap.domain;
    let mut out: Vec<MapEntry> = snap
        .instances
        .iter()
        .filter(|v| v.state != State::Moved)
        .map(|v| MapEntry {
            host: format!("{}.{}.{domain}", v.id, v.service),
            instance: Some(v.key()),
            service: v.service.to_string(),
        })
        .collect();
    for (service, indexes) in &snap.services {
        let serves = indexes.iter().any(|&i| {
            let v = &snap.instances[i];
            v.weight > 0 && v.state != State::Moved
        });
        if serves {
            out.push(MapEntry {
                host: format!("{service}.{domain}"),
                instance: None,
                service: service.clone(),
            });
        }
    }
    out
}

/// The HAProxy map text: `HOST NODE` per line.
pub fn haproxy_map(entries: &[MapEntry], node: &str) -> String {
    let mut text = String::new();
    for e in entries {
        text.push_str(&e.host);
        text.push(' ');
        text.push_str(node);
        text.push('\n');
    }
    text
}

/// The JSON answer: the node, the domain, and one object per map line.
pub fn json(entries: &[MapEntry], node: &str, domain: &str) -> serde_json::Value {
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "host": e.host,
                "node": node,
                "service": e.service,
                "instance": e.instance,
            })
        })
        .collect();
    serde_json::json!({ "node": node, "domain": domain, "entries": list })
}

/// `GET /api/export?node=NAME&format=json|haproxy-map`: JSON by default.
pub fn answer(query: &str, snap: &Snapshot) -> Answer<Response> {
    let pairs = url::query_pairs(query).map_err(|piece| {
        Response::error(400, &format!("bad percent-encoding in query `{piece}`"))
    })?;
    let mut node = None;
    let mut map = false;
    for (key, value) in pairs {
        match key.as_str() {
            "node" if valid_node(&value) => node = Some(value),
            "node" => {
                return Err(Response::error(
                    400,
                    &format!("invalid node name `{value}`: 1 to {NODE_MAX} of A-Z a-z 0-9 - _ . :"),
                ))
            }
            "format" if value == "json" => map = false,
            "format" if value == "haproxy-map" => map = true,
            "format" => {
                return Err(Response::error(
                    400,
                    &format!("invalid format `{value}`: expected json or haproxy-map"),
                ))
            }
            other => {
                return Err(Response::error(
                    400,
                    &format!("unknown query parameter `{other}`: expected node or format"),
                ))
            }
        }
    }
    let node = node.unwrap_or_else(default_node);
    let list = entries(snap);
    Ok(if map {
        Response::text(200, "text/plain; charset=utf-8", &haproxy_map(&list, &node))
    } else {
        Response::json(200, &json(&list, &node, &snap.domain))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_haproxy_backend_names() {
        for ok in ["a", "node-a", "ten_1.example:2", "A1"] {
            assert!(valid_node(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(64)] {
            assert!(!valid_node(bad), "{bad}");
        }
    }
}
