//! The JSON of one instance, as `GET /api/instances`, command answers and
//! `/api/events` show it, and its `instance` event for `/api/events`. The
//! supervisor hands over typed `InstanceView`s; the words and numbers
//! clients read are chosen here.

use std::time::SystemTime;

use serde::Serialize;

use crate::supervisor::snapshot::CheckResult;
use crate::supervisor::InstanceView;

/// The JSON object the API returns for one instance. Keys per REFERENCE.md:
/// `instance`, `service`, `id`, `state`, `health`, `pid`, `port`, `weight`,
/// `restarts`, `uptime_secs`, `memory_bytes`, plus `last_check`,
/// `cpu_seconds` and `oom_kills`. Memory and CPU are read live from the
/// instance's cgroup when it has one (the whole process tree).
pub fn instance_json(view: &InstanceView, now: SystemTime) -> serde_json::Value {
    serde_json::to_value(InstanceJson::new(view, now)).expect("an instance serialises to json")
}

/// What `instance_json` shows, serialised straight to bytes by a list of
/// thousands (`GET /api/instances`) without a `Value` per instance. The
/// keys are in alphabetical order, the order of a `Value` object's.
#[derive(Serialize)]
pub struct InstanceJson<'a> {
    cpu_seconds: Option<f64>,
    gid: Option<u32>,
    health: &'static str,
    id: &'a str,
    instance: String,
    isolation: &'static str,
    last_check: Option<CheckResult>,
    memory_bytes: Option<u64>,
    /// Only while a move is under way or done: `ten ps` shows it.
    #[serde(rename = "move", skip_serializing_if = "Option::is_none")]
    moving: Option<MoveJson<'a>>,
    oom_kills: u64,
    over_quota: bool,
    pid: Option<u32>,
    port: u16,
    restarts: u32,
    service: &'a str,
    state: &'static str,
    storage_bytes: Option<u64>,
    storage_quota_bytes: Option<u64>,
    uid: Option<u32>,
    uptime_secs: Option<u64>,
    weight: u8,
}

#[derive(Serialize)]
struct MoveJson<'a> {
    error: Option<&'a str>,
    flipped: bool,
    phase: &'static str,
    to: &'a str,
}

impl<'a> InstanceJson<'a> {
    pub fn new(view: &'a InstanceView, now: SystemTime) -> InstanceJson<'a> {
        let uptime_secs = view
            .started_at
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| d.as_secs());
        let usage = view.meter.as_ref().map(|m| m.stats()).unwrap_or_default();
        InstanceJson {
            cpu_seconds: usage.cpu.map(|d| d.as_secs_f64()),
            gid: view.ids.map(|(_, gid)| gid),
            health: view.health.as_str(),
            id: &view.id,
            instance: view.key(),
            isolation: view.isolation.as_str(),
            last_check: view.stats.last_check(),
            memory_bytes: usage.memory_bytes.or(view.stats.memory()),
            moving: view.moving.as_ref().map(|m| MoveJson {
                error: m.error.as_deref(),
                flipped: m.flipped,
                phase: m.phase,
                to: &m.to,
            }),
            oom_kills: view.oom_kills,
            over_quota: view.over_quota(),
            pid: view.pid,
            port: view.port,
            restarts: view.restarts,
            service: &view.service,
            state: view.state.as_str(),
            storage_bytes: view.storage_bytes,
            storage_quota_bytes: view.storage_quota_bytes,
            uid: view.ids.map(|(uid, _)| uid),
            uptime_secs,
            weight: view.weight,
        }
    }
}

/// The `instance` event of `/api/events` for `view`, framed as one SSE message.
pub fn event(view: &InstanceView, now: SystemTime) -> Vec<u8> {
    crate::supervisor::sse("instance", &instance_json(view, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::State;

    #[test]
    fn an_instance_event_is_one_sse_message_with_the_instance_json() {
        let mut v = InstanceView::for_test("api", "prod", State::Running, 30000);
        v.pid = Some(42);
        let text = String::from_utf8(event(&v, SystemTime::now())).unwrap();
        let data = text
            .strip_prefix("event: instance\ndata: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .expect("one framed message");
        let obj: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(obj, instance_json(&v, SystemTime::now()));
        assert_eq!(
            (&obj["instance"], &obj["state"], &obj["pid"]),
            (&"api:prod".into(), &"running".into(), &42.into())
        );
    }
}
