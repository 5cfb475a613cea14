//! `ten export`: the map lines an edge proxy in front of several nodes
//! needs, from `GET /api/export` (the server builds them; see
//! `front::api::export`). Prints HAProxy map lines, or the API's JSON with
//! `--json`. Nothing here routes or changes the server.

use super::client::query_escape;
use super::{output, CliError, Ctx};

/// `ten export [--haproxy-map] [--node NAME] [--json]`.
pub fn export(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    if inv.has("haproxy-map") && ctx.json() {
        return Err(inv
            .usage("--haproxy-map and --json are two formats: pick one")
            .into());
    }
    let mut path = "/api/export".to_string();
    if let Some(node) = inv.value("node") {
        if !crate::front::api::export::valid_node(node) {
            return Err(inv
                .usage(format!(
                    "--node: {node:?} is not a node name (1 to 63 of A-Z a-z 0-9 - _ . :)"
                ))
                .into());
        }
        path.push_str("?node=");
        path.push_str(&query_escape(node));
    }
    let answer = ctx.client()?.get(&path)?;
    if ctx.json() {
        return output::print_json(&answer);
    }
    output::print(&map_text(&answer)?)
}

/// `HOST NODE` per entry of the API's answer.
fn map_text(answer: &serde_json::Value) -> Result<String, CliError> {
    let bad = || CliError::failed("the server's export answer has no `entries` list");
    let mut text = String::new();
    for e in answer["entries"].as_array().ok_or_else(bad)? {
        let (Some(host), Some(node)) = (e["host"].as_str(), e["node"].as_str()) else {
            return Err(bad());
        };
        text.push_str(host);
        text.push(' ');
        text.push_str(node);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_text_is_host_then_node_per_line() {
        let answer = serde_json::json!({"node": "a", "domain": "d", "entries": [
            {"host": "x.s.d", "node": "a", "service": "s", "instance": "s:x"},
            {"host": "s.d", "node": "a", "service": "s", "instance": null},
        ]});
        assert_eq!(map_text(&answer).unwrap(), "x.s.d a\ns.d a\n");
        assert!(map_text(&serde_json::json!({})).is_err());
    }
}
