//! `ten move SVC:ID --to URL --to-token T`: asks the source server (the one
//! `ten` talks to) to move an instance to the node at URL, follows the
//! phases it goes through (one line each), then prints the edge's new map
//! line, or applies it through HAProxy's runtime API (`--haproxy-socket`)
//! and tells the source the edge is flipped. `ten move SVC:ID --flipped`
//! says the same after the map was changed by hand.
//!
//! The move itself runs in the source server (`supervisor::mover`); this
//! command only starts it and watches. Nothing here touches the data.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client::{self, Client, Endpoint};
use super::{output, CliError, Ctx};
use crate::names::InstanceKey;

/// How often the source is asked how far the move got.
const POLL: Duration = Duration::from_millis(100);
/// How long a move may take before `ten move` gives up watching (it goes
/// on in the server).
const WATCH_MAX: Duration = Duration::from_secs(6 * 3600);

pub fn run(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let key = ctx.instance(0)?;
    let source = ctx.client()?;
    let path = format!("/api/instances/{key}/move");
    if inv.has("flipped") {
        if inv.value("to").is_some() || inv.value("to-token").is_some() {
            return Err(inv.usage("--flipped takes no --to or --to-token").into());
        }
        let obj = flip(&source, &path)?;
        return print_done(
            ctx,
            &obj,
            &format!(
                "{key}: the edge is flipped; the entry here goes once no request comes for 10 s\n"
            ),
        );
    }
    let (Some(to), Some(token)) = (inv.value("to"), inv.value("to-token")) else {
        return Err(inv
            .usage("--to URL and --to-token T are required (or --flipped)")
            .into());
    };
    let node = inv.value("to-node");
    if let Some(n) = node {
        if !crate::front::api::export::valid_node(n) {
            return Err(inv
                .usage(format!("--to-node: {n:?} is not a node name"))
                .into());
        }
    }
    let target = Client::new(
        Endpoint::Tcp(client::parse_url(to)?),
        Some(token.to_string()),
    );
    // Asked first: a wrong URL or token fails before anything moves.
    let export = target.get("/api/export")?;
    let node = node
        .map(str::to_string)
        .or_else(|| export["node"].as_str().map(str::to_string))
        .ok_or_else(|| CliError::failed("the target's /api/export names no node"))?;
    let domain = export["domain"].as_str().unwrap_or("localhost").to_string();
    source.call(
        "POST",
        &path,
        Some(&json!({"to": to, "token": token})),
        client::READ_TIMEOUT,
    )?;
    let obj = watch(ctx, &source, &key)?;
    let host = format!("{}.{}.{domain}", key.id, key.service);
    match inv.value("haproxy-socket") {
        Some(sock) => {
            let maps = haproxy_set(Path::new(sock), &host, &node)?;
            if !ctx.json() {
                output::print(&format!("edge: {host} -> {node} in {}\n", maps.join(", ")))?;
            }
            let obj = flip(&source, &path)?;
            print_done(
                ctx,
                &obj,
                &format!("moved {key} to {to}; the edge is flipped\n"),
            )
        }
        None => print_done(
            ctx,
            &obj,
            &format!(
                "moved {key} to {to}; requests reaching this node are forwarded there.\n\
                 Map line for the edge:\n{host} {node}\n\
                 Once the edge uses it: ten move {key} --flipped\n"
            ),
        ),
    }
}

/// Tells the source that the edge sends the instance to its new node.
fn flip(source: &Client, path: &str) -> Result<Value, CliError> {
    let body = json!({"flipped": true});
    Ok(source.call("POST", path, Some(&body), client::READ_TIMEOUT)?)
}

fn print_done(ctx: &Ctx<'_>, obj: &Value, text: &str) -> Result<(), CliError> {
    if ctx.json() {
        output::print_json(obj)
    } else {
        output::print(text)
    }
}

/// Prints each phase the move enters until it is moved (Ok, the instance
/// object) or stops with an error.
fn watch(ctx: &Ctx<'_>, source: &Client, key: &InstanceKey) -> Result<Value, CliError> {
    let name = key.to_string();
    let end = Instant::now() + WATCH_MAX;
    let mut last = String::new();
    loop {
        let list = source.get("/api/instances")?;
        let obj = list
            .as_array()
            .and_then(|items| items.iter().find(|o| o["instance"] == name.as_str()))
            .cloned()
            .ok_or_else(|| CliError::failed(format!("{key} is gone from the source")))?;
        let m = &obj["move"];
        if let Some(e) = m["error"].as_str() {
            return Err(CliError::failed(format!("move of {key}: {e}")));
        }
        let phase = m["phase"].as_str().unwrap_or("").to_string();
        if phase != last && !phase.is_empty() {
            if !ctx.json() {
                output::print(&format!("{key}: {}\n", describe(&phase)))?;
            }
            last = phase;
        }
        if obj["state"] == "moved" {
            return Ok(obj);
        }
        if Instant::now() > end {
            return Err(CliError::failed(format!(
                "{key} is still moving ({last}); see `ten logs {key}`"
            )));
        }
        std::thread::sleep(POLL);
    }
}

fn describe(phase: &str) -> &'static str {
    match phase {
        "copy" => "copy: copying the data dir while it runs",
        "stop" => "stop: holding requests, stopping it",
        "sync" => "sync: copying what changed",
        "start" => "start: starting it on the target",
        "moved" => "moved: forwarding requests to the target",
        _ => "unknown phase",
    }
}

/// Points `host` at backend `node` in every map HAProxy has loaded, through
/// its runtime API at `sock` (`set map`, or `add map` for a new host).
/// Returns the maps changed.
fn haproxy_set(sock: &Path, host: &str, node: &str) -> Result<Vec<String>, CliError> {
    let listing = haproxy(sock, "show map")?;
    let maps: Vec<String> = map_files(&listing);
    if maps.is_empty() {
        return Err(CliError::failed(format!(
            "HAProxy at {} has no map loaded (`show map` is empty)",
            sock.display()
        )));
    }
    for map in &maps {
        let answer = haproxy(sock, &format!("set map {map} {host} {node}"))?;
        if !answer.trim().is_empty() {
            let added = haproxy(sock, &format!("add map {map} {host} {node}"))?;
            if !added.trim().is_empty() {
                return Err(CliError::failed(format!(
                    "HAProxy refused `add map {map} {host} {node}`: {}",
                    added.trim()
                )));
            }
        }
    }
    Ok(maps)
}

/// The map files of a `show map` listing: `-1 (/etc/haproxy/x.map) ...`.
fn map_files(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let open = l.find('(')?;
            let close = l[open..].find(')')? + open;
            Some(l[open + 1..close].to_string())
        })
        .filter(|m| !m.is_empty())
        .collect()
}

/// One command on HAProxy's runtime API; its whole answer.
fn haproxy(sock: &Path, command: &str) -> Result<String, CliError> {
    let fail = |e: std::io::Error| {
        CliError::failed(format!("HAProxy runtime API {}: {e}", sock.display()))
    };
    let mut s = UnixStream::connect(sock).map_err(fail)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(fail)?;
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(fail)?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(fail)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_files_come_from_the_show_map_listing() {
        let listing = "# id (file) description\n\
            -1 (/etc/haproxy/tenement.map) pattern loaded from file '/etc/haproxy/tenement.map' used by map at file 'haproxy.cfg' line 35. curr_ver=0 next_ver=0 entry_cnt=4\n\n";
        assert_eq!(map_files(listing), vec!["/etc/haproxy/tenement.map"]);
        assert!(map_files("# id (file) description\n\n").is_empty());
    }
}
