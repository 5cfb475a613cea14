//! `GET /metrics`: the snapshot in the Prometheus text exposition format
//! (version 0.0.4). Pure: formats what it is given.
//!
//! Per-request counters (status classes, latency) live in the front loops
//! and are not exported yet.

use std::fmt::Write;

use crate::supervisor::{Snapshot, State};

/// The content type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STATES: [State; 6] = [
    State::Starting,
    State::Running,
    State::Sleeping,
    State::Stopping,
    State::Backoff,
    State::Failed,
];

/// Renders the instance gauges and counters for `snap`.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(256 + snap.instances.len() * 256);
    out.push_str("# HELP ten_instances Instances by lifecycle state.\n");
    out.push_str("# TYPE ten_instances gauge\n");
    for state in STATES {
        let n = snap.instances.iter().filter(|v| v.state == state).count();
        let _ = writeln!(out, "ten_instances{{state=\"{}\"}} {n}", state.as_str());
    }

    family(
        &mut out,
        "ten_instance_up",
        "gauge",
        "1 when the instance is running, else 0.",
    );
    for v in &snap.instances {
        let up = u8::from(v.state == State::Running);
        let _ = writeln!(out, "ten_instance_up{} {up}", labels(&v.service, &v.id));
    }
    family(
        &mut out,
        "ten_instance_weight",
        "gauge",
        "Traffic weight, 0 to 100.",
    );
    for v in &snap.instances {
        let _ = writeln!(
            out,
            "ten_instance_weight{} {}",
            labels(&v.service, &v.id),
            v.weight
        );
    }
    family(
        &mut out,
        "ten_instance_restarts_total",
        "counter",
        "Restarts since the instance was created.",
    );
    for v in &snap.instances {
        let _ = writeln!(
            out,
            "ten_instance_restarts_total{} {}",
            labels(&v.service, &v.id),
            v.restarts
        );
    }
    family(
        &mut out,
        "ten_instance_memory_bytes",
        "gauge",
        "Memory in use by the instance, where known.",
    );
    for v in &snap.instances {
        if let Some(bytes) = v.memory_bytes {
            let _ = writeln!(
                out,
                "ten_instance_memory_bytes{} {bytes}",
                labels(&v.service, &v.id)
            );
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `{service="...",id="..."}`. Names cannot hold the characters the format
/// escapes, but escape anyway: the format breaks silently otherwise.
fn labels(service: &str, id: &str) -> String {
    format!("{{service=\"{}\",id=\"{}\"}}", escape(service), escape(id))
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels("a\"b", "c\\d\n"),
            "{service=\"a\\\"b\",id=\"c\\\\d\\n\"}"
        );
    }
}
