//! The JSON of one instance, as `GET /api/instances`, command answers and
//! `/api/events` show it, and its `instance` event for `/api/events`. The
//! supervisor hands over typed `InstanceView`s; the words and numbers
//! clients read are chosen here.

use std::time::SystemTime;

use crate::supervisor::InstanceView;

/// The JSON object the API returns for one instance. Keys per REFERENCE.md:
/// `instance`, `service`, `id`, `state`, `health`, `pid`, `port`, `weight`,
/// `restarts`, `uptime_secs`, `memory_bytes`, plus `last_check`,
/// `cpu_seconds` and `oom_kills`. Memory and CPU are read live from the
/// instance's cgroup when it has one (the whole process tree).
pub fn instance_json(view: &InstanceView, now: SystemTime) -> serde_json::Value {
    let uptime = view
        .started_at
        .and_then(|t| now.duration_since(t).ok())
        .map(|d| d.as_secs());
    let usage = view.meter.as_ref().map(|m| m.stats()).unwrap_or_default();
    let memory_bytes = usage.memory_bytes.or(view.memory_bytes);
    let mut obj = serde_json::json!({
        "instance": view.key(),
        "service": view.service,
        "id": view.id,
        "state": view.state.as_str(),
        "health": view.health.as_str(),
        "pid": view.pid,
        "port": view.port,
        "weight": view.weight,
        "restarts": view.restarts,
        "uptime_secs": uptime,
        "memory_bytes": memory_bytes,
        "cpu_seconds": usage.cpu.map(|d| d.as_secs_f64()),
        "oom_kills": view.oom_kills,
        "storage_bytes": view.storage_bytes,
        "storage_quota_bytes": view.storage_quota_bytes,
        "over_quota": view.over_quota(),
        "last_check": view.last_check,
        "isolation": view.isolation.as_str(),
        "uid": view.ids.map(|(uid, _)| uid),
        "gid": view.ids.map(|(_, gid)| gid),
    });
    if let Some(m) = &view.moving {
        // Only while a move is under way or done: `ten ps` shows it.
        obj["move"] = serde_json::json!({
            "to": m.to,
            "phase": m.phase,
            "error": m.error,
            "flipped": m.flipped,
        });
    }
    obj
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
