//! The commands that talk to a running server through the API: spawn, stop,
//! restart, ps, health, weight, deploy, route, logs, reload.
//!
//! Each one validates its arguments first (bad names and numbers are usage
//! errors, exit 2, before any connection), makes its calls, and prints a line
//! or a table (JSON with `--json`). Only `deploy` starts a thread.

use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::client::{query_escape, Sse, READ_TIMEOUT};
use super::output;
use super::pretty;
use super::{CliError, Ctx};
use crate::names::{self, InstanceKey};

/// How long `spawn --wait` may block: startup_timeout is per service and
/// unknown here, so be generous; the server answers 504 on its own deadline.
const WAIT_TIMEOUT: Duration = Duration::from_secs(300);
/// Deploy progress is polled this often.
const DEPLOY_POLL: Duration = Duration::from_millis(250);
/// `logs -f` gives up on a stream silent for this long (the server sends
/// a heartbeat every 15 s).
const FOLLOW_IDLE: Duration = Duration::from_secs(60);

/// How the instance was named on the spawn command line.
#[derive(Debug, PartialEq, Eq)]
enum KeyForm<'a> {
    /// `SVC:ID`
    Joined(&'a str),
    /// `SVC --id ID`
    Split(&'a str, &'a str),
}

/// How the instance is named: `SVC:ID`, or `SVC` and the id flag
/// (`--id` for spawn, `--version` for deploy).
fn key_form<'a>(
    positional: &'a str,
    flag: &str,
    id_flag: Option<&'a str>,
) -> Result<KeyForm<'a>, String> {
    match (positional.contains(':'), id_flag) {
        (true, Some(_)) => Err(format!(
            "give the instance as {positional:?} or with --{flag}, not both"
        )),
        (false, Some(id)) => Ok(KeyForm::Split(positional, id)),
        (true, None) => Ok(KeyForm::Joined(positional)),
        (false, None) => Err(format!(
            "give the instance as {positional}:ID or as {positional} --{flag} ID"
        )),
    }
}

/// The instance named by positional 0 and the id flag `flag`.
fn flagged_instance(ctx: &Ctx<'_>, flag: &str) -> Result<InstanceKey, CliError> {
    let inv = ctx.inv;
    match key_form(&inv.positionals[0], flag, inv.value(flag)).map_err(|m| inv.usage(m))? {
        KeyForm::Joined(_) => ctx.instance(0),
        KeyForm::Split(svc, id) => {
            InstanceKey::new(svc, id).map_err(|e| inv.usage(e.to_string()).into())
        }
    }
}

/// `/api/instances/svc:id{suffix}`. Names are `a-z 0-9 - _`: nothing to escape.
fn instance_path(key: &InstanceKey, suffix: &str) -> String {
    format!("/api/instances/{key}{suffix}")
}

fn print_instance(ctx: &Ctx<'_>, verb: &str, obj: &Value) -> Result<(), CliError> {
    if ctx.json() {
        output::print_json(obj)
    } else {
        output::print(&output::instance_line(verb, obj))
    }
}

pub fn spawn(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let key = flagged_instance(ctx, "id")?;
    let weight = inv.number::<u8>("weight", 0..=100)?;
    let wait = inv.has("wait");
    let mut body = json!({"service": key.service, "id": key.id});
    if let Some(w) = weight {
        body["weight"] = json!(w);
    }
    if wait {
        body["wait"] = json!(true);
    }
    let timeout = if wait { WAIT_TIMEOUT } else { READ_TIMEOUT };
    let obj = ctx
        .client()?
        .call("POST", "/api/instances/spawn", Some(&body), timeout)?;
    print_instance(ctx, "spawned", &obj)
}

pub fn stop(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let key = ctx.instance(0)?;
    // Any 2xx is success: 204 without a body (this server, like the
    // original tenement) or 200 with one (older servers).
    let reply = ctx
        .client()?
        .call("DELETE", &instance_path(&key, ""), None, READ_TIMEOUT)?;
    if ctx.json() {
        let reply = match reply {
            Value::Null => json!({ "stopped": key.to_string() }),
            other => other,
        };
        return output::print_json(&reply);
    }
    output::print(&format!("stopped {key}\n"))
}

pub fn restart(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let key = ctx.instance(0)?;
    let obj = ctx
        .client()?
        .call("POST", &instance_path(&key, "/restart"), None, READ_TIMEOUT)?;
    print_instance(ctx, "restarted", &obj)
}

pub fn ps(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let all = ctx.inv.has("all");
    let not_a_list = || CliError::failed("the server's instance list is not a JSON array");
    // The instances shown are picked from the server's text by their state
    // alone: a list of thousands, most of them asleep, is never all made
    // into values.
    let body = ctx.client()?.get_bytes("/api/instances")?;
    let items = pretty::array_items(&body).map_err(|_| not_a_list())?;
    let shown: Vec<&[u8]> = items
        .into_iter()
        .filter(|i| all || !pretty::is_sleeping(i))
        .collect();
    if ctx.json() {
        // Re-indented as it came.
        let text = String::from_utf8(pretty::array(&shown))
            .map_err(|_| CliError::failed("the server's instance list is not UTF-8"))?;
        return output::print(&output::json_safe(&text));
    }
    let values: Vec<Value> = shown
        .into_iter()
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()
        .map_err(|_| not_a_list())?;
    output::print(&output::ps_table(&values))
}

pub fn health(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let key = ctx.instance(0)?;
    let obj = ctx.client()?.get(&instance_path(&key, "/health"))?;
    if ctx.json() {
        return output::print_json(&obj);
    }
    output::print(&output::health_report(&obj, now_unix()))
}

pub fn weight(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let key = ctx.instance(0)?;
    let weight = args_weight(ctx, &inv.positionals[1])?;
    let body = json!({ "weight": weight });
    let obj = ctx.client()?.call(
        "PUT",
        &instance_path(&key, "/weight"),
        Some(&body),
        READ_TIMEOUT,
    )?;
    if ctx.json() {
        return output::print_json(&obj);
    }
    let shown = obj
        .get("weight")
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(weight));
    output::print(&format!("{key} weight {shown}\n"))
}

fn args_weight(ctx: &Ctx<'_>, raw: &str) -> Result<u8, CliError> {
    super::args::parse_number::<u8>(raw, 0..=100)
        .map_err(|why| ctx.inv.usage(format!("weight: {why}")).into())
}

/// `ten deploy`: POST /api/deploy on a second thread (it blocks until the
/// instance is healthy or the server gives up) while this thread polls the
/// instance's health and prints each change.
pub fn deploy(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let key = flagged_instance(ctx, "version")?;
    let weight = inv.number::<u8>("weight", 0..=100)?.unwrap_or(100);
    let bound = &crate::config::bounds::DEPLOY_TIMEOUT;
    let timeout = inv
        .number::<u64>("timeout", bound.min..=bound.max)?
        .unwrap_or(60);
    let client = ctx.client()?;
    let body =
        json!({"service": key.service, "id": key.id, "weight": weight, "timeout_secs": timeout});

    let (tx, rx) = mpsc::channel();
    let deploy_client = client.clone();
    // The server answers by its own deadline; 10 s more covers its reply in flight.
    let read_timeout = Duration::from_secs(timeout + 10);
    std::thread::spawn(move || {
        let result = deploy_client.call("POST", "/api/deploy", Some(&body), read_timeout);
        // The receiver only disappears when main is exiting anyway.
        let _ = tx.send(result);
    });

    let health_path = instance_path(&key, "/health");
    let mut last: Option<(String, String)> = None;
    let mut progress = |obj: &Value| -> Result<(), CliError> {
        let word = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string()
        };
        let now = (word("state"), word("health"));
        if last.as_ref() != Some(&now) {
            let line = match now.1.as_str() {
                "unknown" => format!("{key} {}\n", now.0),
                h => format!("{key} {} {h}\n", now.0),
            };
            last = Some(now);
            if !ctx.json() {
                output::print(&line)?;
            }
        }
        Ok(())
    };
    let result = loop {
        // Until the spawn lands the instance is unknown (404): not an error here.
        if let Ok(obj) = client.call("GET", &health_path, None, Duration::from_secs(5)) {
            progress(&obj)?;
        }
        match rx.recv_timeout(DEPLOY_POLL) {
            Ok(result) => break result,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(CliError::failed("the deploy request thread died"));
            }
        }
    };
    let obj = result?;
    if ctx.json() {
        return output::print_json(&obj);
    }
    progress(&obj)?;
    let mut parts = Vec::new();
    for k in ["pid", "port", "weight"] {
        if let Some(v) = obj.get(k).filter(|v| !v.is_null()) {
            parts.push(format!("{k} {}", output::cell(Some(v))));
        }
    }
    output::print(&format!("deployed {key} ({})\n", parts.join(", ")))
}

pub fn route(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let service = &inv.positionals[0];
    let from = inv
        .value("from")
        .ok_or_else(|| inv.usage("missing --from A"))?;
    let to = inv.value("to").ok_or_else(|| inv.usage("missing --to B"))?;
    for id in [from, to] {
        InstanceKey::new(service, id).map_err(|e| inv.usage(e.to_string()))?;
    }
    if from == to {
        return Err(inv.usage("--from and --to name the same instance").into());
    }
    let body = json!({"service": service, "from": from, "to": to});
    let reply = ctx
        .client()?
        .call("POST", "/api/route", Some(&body), READ_TIMEOUT)?;
    if ctx.json() {
        return output::print_json(&reply);
    }
    let weight = |side: &str, default: u64| {
        reply
            .get(side)
            .and_then(|o| o.get("weight"))
            .and_then(Value::as_u64)
            .unwrap_or(default)
    };
    output::print(&format!(
        "routed {service}: {service}:{from} weight {}, {service}:{to} weight {}\n",
        weight("from", 0),
        weight("to", 100)
    ))
}

pub fn reload(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let reply = ctx
        .client()?
        .call("POST", "/api/reload", None, READ_TIMEOUT)?;
    if ctx.json() {
        return output::print_json(&reply);
    }
    output::print("reloaded\n")
}

/// Parses `30s`, `10m`, `2h`, `1d`, or bare seconds.
fn parse_age(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (num, unit) = raw.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 10m, 2h or 1d, got {raw:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {raw:?} (use s, m, h or d)"
            ))
        }
    };
    // The same bound as the API's `since=`.
    let secs = crate::config::bounds::LOG_SINCE.check(secs)?;
    Ok(Duration::from_secs(secs))
}

pub fn logs(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(target) = inv.positionals.first() {
        if target.contains(':') {
            let key = ctx.instance(0)?;
            query.push(("service", key.service.into_string()));
            query.push(("id", key.id.into_string()));
        } else {
            names::check("service name", target).map_err(|e| inv.usage(e.to_string()))?;
            query.push(("service", target.clone()));
        }
    }
    if let Some(s) = inv.value("search") {
        query.push(("search", s.to_string()));
    }
    let level = match inv.value("level") {
        Some(l) => Some(
            crate::names::level_stream(l)
                .ok_or_else(|| inv.usage(format!("--level: {}", crate::names::LEVEL_HELP)))?,
        ),
        None => None,
    };
    let stream = match (inv.value("stream"), level) {
        (Some(s), Some(l)) if s != l => {
            return Err(inv
                .usage(format!(
                    "--stream {s} and --level {} disagree (--level {0} means --stream {l})",
                    inv.value("level").unwrap_or_default()
                ))
                .into());
        }
        (Some(s), _) => Some(s),
        (None, l) => l,
    };
    if let Some(s) = stream {
        if !matches!(s, "stdout" | "stderr" | "ten") {
            return Err(inv
                .usage(format!(
                    "--stream: expected stdout, stderr or ten, got {s:?}"
                ))
                .into());
        }
        query.push(("stream", s.to_string()));
    }
    let limit = inv.number::<u32>("limit", 1..=1_000_000)?.unwrap_or(100);
    let since = match inv.value("since") {
        Some(raw) => Some(parse_age(raw).map_err(|why| inv.usage(format!("--since: {why}")))?),
        None => None,
    };
    // Log times are fixed-width RFC 3339 UTC, so they compare as strings.
    let cutoff =
        since.map(|age| crate::log::format_utc(now_unix().saturating_sub(age.as_secs()), 0));
    let path = |limit: u32| {
        let mut q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", query_escape(v)))
            .collect();
        q.push(format!("limit={limit}"));
        format!("/api/logs?{}", q.join("&"))
    };
    let client = ctx.client()?;
    let follow = inv.has("follow");
    let keep = |e: &Value| match &cutoff {
        Some(c) => e
            .get("time")
            .and_then(Value::as_str)
            .is_some_and(|t| t >= c.as_str()),
        None => true,
    };
    let colour = !ctx.json() && output::colour_wanted();
    let show = |batch: &[Value]| -> Result<(), CliError> {
        let mut text = String::new();
        for e in batch {
            if ctx.json() && follow {
                text.push_str(&output::json_safe(&e.to_string()));
                text.push('\n');
            } else {
                text.push_str(&output::log_line(e, colour));
            }
        }
        output::print(&text)
    };
    let history = || -> Result<Vec<Value>, CliError> {
        Ok(entries(client.get(&path(limit))?)?
            .into_iter()
            .filter(keep)
            .collect())
    };

    if !follow {
        let first = history()?;
        if ctx.json() {
            return output::print_json(&Value::Array(first));
        }
        return show(&first);
    }

    // Subscribe first, then read the history: a line written in between is
    // in both, and `Overlap` drops its second copy. Reading the history
    // first would lose such a line instead.
    let stream_path = {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", query_escape(v)))
            .collect();
        format!("/api/logs/stream?{}", q.join("&"))
    };
    // The last entry printed: after a reconnection, the history is shown
    // from the entry after it.
    let mut last: Option<Value> = None;
    loop {
        let mut overlap: Option<Overlap> = None;
        let mut again = false;
        let ended = client.stream(&stream_path, FOLLOW_IDLE, |item| -> Result<(), CliError> {
            match item {
                Sse::Comment(text) if overlap.is_none() && text == "subscribed" => {
                    let first = after(history()?, last.as_ref());
                    overlap = Some(Overlap::new(&first));
                    if let Some(e) = first.last() {
                        last = Some(e.clone());
                    }
                    show(&first)
                }
                // The server hands its connections over (an upgrade, a
                // reload that moves the listeners): follow again.
                Sse::Comment(text) if text == RECONNECT => {
                    again = true;
                    Ok(())
                }
                Sse::Message { event, data } if event == "log" => {
                    let Ok(entry) = serde_json::from_str::<Value>(&data) else {
                        return Ok(());
                    };
                    if overlap.as_mut().is_some_and(|o| o.seen(&entry)) {
                        return Ok(());
                    }
                    show(std::slice::from_ref(&entry))?;
                    last = Some(entry);
                    Ok(())
                }
                _ => Ok(()),
            }
        });
        match ended {
            Ok(()) if again => continue,
            Ok(()) => return Err(CliError::failed("the server closed the log stream")),
            Err(e) => return Err(e),
        }
    }
}

/// The comment an event stream ends with when the server hands its
/// connections over (`front/worker/drain.rs`): connect again.
const RECONNECT: &str = "reconnect";

/// The history entries after `last` (the last one printed before a
/// reconnection): those after its position when the history holds it,
/// else those not older than it (except itself).
fn after(history: Vec<Value>, last: Option<&Value>) -> Vec<Value> {
    let Some(last) = last else {
        return history;
    };
    let key = Overlap::key(last);
    match history.iter().rposition(|e| Overlap::key(e) == key) {
        Some(i) => history.into_iter().skip(i + 1).collect(),
        None => history
            .into_iter()
            .filter(|e| e.get("time").and_then(Value::as_str) >= Some(key.0.as_str()))
            .collect(),
    }
}

fn entries(v: Value) -> Result<Vec<Value>, CliError> {
    match v {
        Value::Array(items) => Ok(items),
        _ => Err(CliError::failed(
            "the server's log answer is not a JSON array",
        )),
    }
}

/// What `logs -f` printed from the history, to drop the live copies of the
/// lines written after the subscription but before the history was read.
///
/// Those lines are the first ones the stream delivers (it delivers lines in
/// the order they were written), and each carries the same time as its
/// file copy in the history. So a live line is a copy exactly when it
/// equals a history entry in time, instance, stream and text, and the
/// first live line that is not a copy ends the overlap: everything after
/// it is new, even a line whose text repeats an older one.
struct Overlap {
    /// (time, instance, stream, line) of the history entries.
    printed: std::collections::HashSet<(String, String, String, String)>,
}

impl Overlap {
    fn new(history: &[Value]) -> Overlap {
        Overlap {
            printed: history.iter().map(Overlap::key).collect(),
        }
    }

    fn key(e: &Value) -> (String, String, String, String) {
        let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        (
            field("time"),
            field("instance"),
            field("stream"),
            field("line"),
        )
    }

    /// Whether the live entry `e` was already printed with the history.
    fn seen(&mut self, e: &Value) -> bool {
        if self.printed.is_empty() {
            return false;
        }
        if self.printed.remove(&Overlap::key(e)) {
            return true;
        }
        self.printed.clear();
        false
    }
}

/// Seconds since the Unix epoch, for ages shown to the user.
pub(super) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_accepts_joined_or_split_but_not_both() {
        assert_eq!(
            key_form("api:prod", "id", None),
            Ok(KeyForm::Joined("api:prod"))
        );
        assert_eq!(
            key_form("api", "id", Some("prod")),
            Ok(KeyForm::Split("api", "prod"))
        );
        assert!(key_form("api:prod", "id", Some("x")).is_err());
        assert!(key_form("api", "id", None)
            .unwrap_err()
            .contains("api --id ID"));
        assert!(key_form("api", "version", None)
            .unwrap_err()
            .contains("api --version ID"));
    }

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(parse_age("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_age("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_age("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_age("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_age("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_age("3651d").is_err());
        assert!(parse_age("99999999999999999999h").is_err());
        assert!(parse_age(&u64::MAX.to_string()).is_err());
        assert!(parse_age("10x").is_err());
        assert!(parse_age("m").is_err());
        assert!(parse_age("").is_err());
    }

    #[test]
    fn a_reconnected_follow_shows_the_history_after_the_last_line_printed() {
        let e = |t: &str, line: &str| serde_json::json!({"time": t, "instance": "web:a", "stream": "stdout", "line": line});
        let history = vec![e("1", "a"), e("2", "b"), e("2", "c"), e("3", "d")];
        assert_eq!(after(history.clone(), None), history);
        assert_eq!(
            after(history.clone(), Some(&e("2", "b"))),
            vec![e("2", "c"), e("3", "d")]
        );
        assert_eq!(
            after(history.clone(), Some(&e("3", "d"))),
            Vec::<Value>::new()
        );
        // Not in the history any more (more lines than the limit since):
        // what is not older.
        assert_eq!(
            after(history, Some(&e("2", "x"))),
            vec![e("2", "b"), e("2", "c"), e("3", "d")]
        );
    }

    #[test]
    fn follow_drops_live_copies_of_history_lines_only() {
        let e =
            |t: &str, l: &str| json!({"time": t, "instance": "a:b", "stream": "stdout", "line": l});
        let history = [
            e("2026-01-01T00:00:59.000Z", "hello"),
            e("2026-01-01T00:01:00.000Z", "tick"),
            e("2026-01-01T00:01:00.100Z", "between"),
            e("2026-01-01T00:01:00.150Z", "hello"),
        ];
        let mut o = Overlap::new(&history);
        // Written after the subscription and before the history was read:
        // delivered live too, with the same times. Dropped, once each.
        assert!(o.seen(&e("2026-01-01T00:01:00.100Z", "between")));
        assert!(o.seen(&e("2026-01-01T00:01:00.150Z", "hello")));
        // Written after the history: the same text at another time is new,
        // and so is everything after it.
        assert!(!o.seen(&e("2026-01-01T00:01:00.300Z", "hello")));
        assert!(!o.seen(&e("2026-01-01T00:01:00.000Z", "tick")));
        // A line equal to an old one in text, right after the history.
        let mut o = Overlap::new(&history);
        assert!(!o.seen(&e("2026-01-01T00:01:00.200Z", "hello")));
        assert!(!o.seen(&e("2026-01-01T00:01:00.150Z", "hello")));
        // Other instances and streams are other lines.
        let mut o = Overlap::new(&history);
        let mut other = e("2026-01-01T00:01:00.150Z", "hello");
        other["stream"] = json!("stderr");
        assert!(!o.seen(&other));
    }
}
