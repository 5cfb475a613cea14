//! `ten upgrade`: asks the running server to execute its binary again in
//! place (`POST /api/upgrade`, admin), follows the attempt through
//! `GET /api/upgrade` and reports the outcome: the version before and
//! after, and that the pid did not change (or, when the new binary died
//! before it served, the pid the old binary serves on as).
//!
//! The server keeps its listening sockets across the exec, so a request
//! sent meanwhile waits in the kernel's queue; one cut by the drain is
//! sent again. Nothing here touches the binary or the server's files.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::READ_TIMEOUT;
use super::output;
use super::{CliError, Ctx};

/// How long the whole upgrade may take: the self-check (30 s at most), the
/// drain (5 s), stops in progress, and the new image's start.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the status is asked for.
const POLL: Duration = Duration::from_millis(100);

pub fn upgrade(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let client = ctx.client()?;
    let begun = client.call("POST", "/api/upgrade", None, READ_TIMEOUT)?;
    let attempt = begun["attempt"]
        .as_u64()
        .ok_or_else(|| CliError::failed("the server's answer names no upgrade attempt"))?;
    let pid = begun["pid"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + UPGRADE_TIMEOUT;
    let status = loop {
        std::thread::sleep(POLL);
        match client.call("GET", "/api/upgrade", None, READ_TIMEOUT) {
            Ok(s) if s["last"]["attempt"].as_u64() == Some(attempt) && s["in_progress"] != true => {
                break s
            }
            // Still going, or the connection was cut by the drain.
            Ok(_) | Err(_) if Instant::now() < deadline => {}
            Ok(_) => {
                return Err(CliError::failed(format!(
                    "upgrade {attempt} did not finish within {}s",
                    UPGRADE_TIMEOUT.as_secs()
                )))
            }
            Err(e) => return Err(e.into()),
        }
    };
    if ctx.json() {
        output::print_json(&status)?;
    }
    let last = &status["last"];
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let now_pid = status["pid"].as_u64().unwrap_or(0);
    if last["ok"] != true {
        // The old binary's keeper serves when the new image died.
        let whom = match now_pid == pid {
            true => String::new(),
            false => format!(" as pid {now_pid}"),
        };
        return Err(CliError::failed(format!(
            "upgrade failed, ten {} serves on{whom}: {}",
            text(&last["from"]),
            text(&last["error"])
        )));
    }
    if now_pid != pid {
        return Err(CliError::failed(format!(
            "the server's pid changed from {pid} to {now_pid}"
        )));
    }
    if ctx.json() {
        return Ok(());
    }
    output::print(&format!(
        "upgraded in place: ten {} -> {}, pid {pid} unchanged\n",
        text(&last["from"]),
        text(&last["to"])
    ))
}
