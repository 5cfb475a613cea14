//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4).
//!
//! `render` is pure: it formats a snapshot, the front's counters and a
//! `Sample` of what the caller read from `/proc` and the data dir sizes
//! `storage.rs` last measured. `sample` does those reads: a few small `/proc`
//! files per instance; data dirs are walked off the loop (`storage.rs`), so a
//! size appears from the scrape after the first measurement. Called on a
//! front loop; nothing here touches a socket or walks a tree.
//!
//! Every family has HELP and TYPE lines; counters end in `_total`; label
//! values are escaped. Names: `ten_instance_*` per instance (labels
//! `service`, `id`), `ten_front_*` for the proxy, `process_*` for tenement's
//! own process (the names Prometheus client libraries use), `ten_build_info`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use crate::front::stats::{FrontStats, REFUSED_STATUSES};
use crate::supervisor::snapshot::{Health, InstanceView, DURATION_BUCKETS, WAKE_BUCKETS};
use crate::supervisor::{Snapshot, State};

/// The content type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/proc` counts CPU time in USER_HZ ticks, which the kernel fixes at 100
/// for user space on every architecture we build for (proc(5), times(2)).
const USER_HZ: f64 = 100.0;

const STATES: [State; 8] = [
    State::Starting,
    State::Running,
    State::Sleeping,
    State::Stopping,
    State::Backoff,
    State::Failed,
    State::Moving,
    State::Moved,
];

const HEALTHS: [Health; 4] = [
    Health::Unknown,
    Health::Healthy,
    Health::Degraded,
    Health::Unhealthy,
];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// What the caller read outside the snapshot, for one render.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// `service:id` -> CPU seconds of the instance: its cgroup's whole
    /// tree, else its process (and the children it has waited for).
    pub cpu_seconds: HashMap<String, f64>,
    /// `service:id` -> memory of the instance's cgroup, read now.
    pub cgroup_memory: HashMap<String, u64>,
    /// `service:id` -> bytes in its data dir (last measurement, see
    /// `storage::MEASURE_EVERY`).
    pub data_dir_bytes: HashMap<String, u64>,
    /// tenement's own resident memory, open fds, CPU seconds.
    pub process_rss: Option<u64>,
    pub process_fds: Option<u64>,
    pub process_cpu_seconds: Option<f64>,
    /// When tenement started, seconds since the epoch.
    pub process_start_unix: f64,
    /// Seconds since tenement started.
    pub uptime_seconds: f64,
}

/// When this process started; set by the first `Api::new`.
static STARTED: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();

/// Records the process start (first call wins).
pub fn mark_start() {
    STARTED.get_or_init(SystemTime::now);
}

/// Reads `/proc` for the instances of `snap` and for tenement itself.
/// Missing files (a process that just exited) leave their values out.
pub fn sample(snap: &Snapshot, dir_sizes: &HashMap<String, u64>, now: SystemTime) -> Sample {
    let usage: HashMap<String, crate::isolate::cgroup::Stats> = snap
        .instances
        .iter()
        .filter_map(|v| Some((v.key(), v.meter.as_ref()?.stats())))
        .collect();
    let cpu_seconds = snap
        .instances
        .iter()
        .filter_map(|v| {
            if let Some(cpu) = usage.get(&v.key()).and_then(|u| u.cpu) {
                return Some((v.key(), cpu.as_secs_f64()));
            }
            let pid = v.pid?;
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((v.key(), parse_cpu_ticks(&text)? as f64 / USER_HZ))
        })
        .collect();
    let cgroup_memory = usage
        .iter()
        .filter_map(|(k, u)| Some((k.clone(), u.memory_bytes?)))
        .collect();
    let started = *STARTED.get_or_init(SystemTime::now);
    let epoch = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    };
    Sample {
        cpu_seconds,
        cgroup_memory,
        data_dir_bytes: dir_sizes.clone(),
        process_rss: std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| crate::isolate::procfs::parse_rss(&s)),
        process_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            // The read_dir handle itself holds one fd while counting.
            .map(|d| (d.count() as u64).saturating_sub(1)),
        process_cpu_seconds: std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_cpu_ticks(&s))
            .map(|t| t as f64 / USER_HZ),
        process_start_unix: epoch(started),
        uptime_seconds: now
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64(),
    }
}

/// utime + stime + cutime + cstime (fields 14-17) of a `/proc/PID/stat`
/// line, in ticks. Fields are counted from the last `)`: the command name
/// may hold spaces and parentheses (proc(5)).
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 of the line.
    (14..=17).try_fold(0u64, |sum, n| {
        let v: i64 = fields.get(n - 3)?.parse().ok()?;
        Some(sum + v.max(0) as u64)
    })
}

/// Renders every family.
pub fn render(snap: &Snapshot, front: &FrontStats, sample: &Sample) -> String {
    let mut out = String::with_capacity(2048 + snap.instances.len() * 3072);
    let o = &mut out;
    let all = &snap.instances;

    family(
        o,
        "ten_build_info",
        "gauge",
        "Always 1; the version is a label.",
    );
    line(
        o,
        "ten_build_info",
        &format!("{{version=\"{}\"}}", escape(env!("CARGO_PKG_VERSION"))),
        1,
    );
    single(
        o,
        "ten_uptime_seconds",
        "gauge",
        "Seconds since tenement started.",
        float(sample.uptime_seconds),
    );

    family(o, "ten_instances", "gauge", "Instances by lifecycle state.");
    for state in STATES {
        let n = all.iter().filter(|v| v.state == state).count();
        line(
            o,
            "ten_instances",
            &format!("{{state=\"{}\"}}", state.as_str()),
            n,
        );
    }

    per_instance(
        o,
        all,
        "ten_instance_up",
        "gauge",
        "1 when the instance is running, else 0.",
        |v| u8::from(v.state == State::Running).to_string(),
    );
    one_hot(
        o,
        all,
        "ten_instance_state",
        "1 for the instance's lifecycle state, 0 for the others.",
        "state",
        &STATES.map(|s| (s, s.as_str())),
        |v| v.state,
    );
    one_hot(
        o,
        all,
        "ten_instance_health",
        "1 for the instance's health word, 0 for the others.",
        "health",
        &HEALTHS.map(|h| (h, h.as_str())),
        |v| v.health,
    );
    per_instance(
        o,
        all,
        "ten_instance_weight",
        "gauge",
        "Traffic weight, 0 to 100.",
        |v| v.weight.to_string(),
    );
    per_instance(
        o,
        all,
        "ten_instance_restarts_total",
        "counter",
        "Restarts since the instance was created.",
        |v| v.restarts.to_string(),
    );
    per_instance_known(
        o,
        all,
        "ten_instance_start_time_seconds",
        "gauge",
        "When the instance's current process started, seconds since the epoch.",
        |v| {
            let t = v.started_at?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
            Some(float(t.as_secs_f64()))
        },
    );
    per_instance(
        o,
        all,
        "ten_instance_wakes_total",
        "counter",
        "Times the instance was woken from sleep.",
        |v| load(&v.stats.wakes).to_string(),
    );
    histograms(
        o,
        all,
        "ten_instance_wake_duration_seconds",
        "Time from wake to ready.",
        &WAKE_BUCKETS,
        |v| {
            (
                v.stats.wake_buckets.each_ref().map(load),
                load(&v.stats.wake_sum_us),
            )
        },
    );
    family(
        o,
        "ten_instance_requests_total",
        "counter",
        "Responses relayed from the instance, by status class.",
    );
    for v in all {
        for (i, class) in CLASSES.iter().enumerate() {
            line(
                o,
                "ten_instance_requests_total",
                &labels_with(v, "code", class),
                v.stats.responses(i),
            );
        }
    }
    histograms(
        o,
        all,
        "ten_instance_request_duration_seconds",
        "Time from request start to response end.",
        &DURATION_BUCKETS,
        |v| v.stats.durations(),
    );
    per_instance(
        o,
        all,
        "ten_instance_received_bytes_total",
        "counter",
        "Request bytes sent to the instance (head and body).",
        |v| v.stats.bytes_in().to_string(),
    );
    per_instance(
        o,
        all,
        "ten_instance_sent_bytes_total",
        "counter",
        "Response bytes received from the instance (head and body).",
        |v| v.stats.bytes_out().to_string(),
    );
    per_instance(
        o,
        all,
        "ten_instance_open_connections",
        "gauge",
        "Client connections routed to the instance now.",
        |v| v.stats.open().to_string(),
    );
    per_instance_known(
        o,
        all,
        "ten_instance_memory_bytes",
        "gauge",
        "Memory of the instance: its cgroup's processes without inactive page cache, else its process's resident memory.",
        |v| {
            let bytes = sample.cgroup_memory.get(&v.key()).copied();
            bytes.or(v.stats.memory()).map(|bytes| bytes.to_string())
        },
    );
    per_instance_known(
        o,
        all,
        "ten_instance_storage_quota_bytes",
        "gauge",
        "The instance's storage_quota_mb in bytes (instances with a quota only).",
        |v| v.storage_quota_bytes.map(|q| q.to_string()),
    );
    per_instance_known(
        o,
        all,
        "ten_instance_over_storage_quota",
        "gauge",
        "1 when the instance's data dir holds more than its storage_quota_mb (instances with a quota only).",
        |v| v.storage_quota_bytes.map(|_| u8::from(v.over_quota()).to_string()),
    );
    per_instance(
        o,
        all,
        "ten_instance_oom_kills_total",
        "counter",
        "Processes of the instance the kernel killed at its memory_limit_mb.",
        |v| v.oom_kills.to_string(),
    );
    per_instance_known(
        o,
        all,
        "ten_instance_cpu_seconds_total",
        "counter",
        "CPU time of the instance: its cgroup's whole process tree, else its current process and its waited-for children.",
        |v| sample.cpu_seconds.get(&v.key()).map(|s| float(*s)),
    );
    per_instance_known(
        o,
        all,
        "ten_instance_data_dir_bytes",
        "gauge",
        "Bytes in the instance's data dir (recomputed at most every 30 s).",
        |v| sample.data_dir_bytes.get(&v.key()).map(|b| b.to_string()),
    );

    single(
        o,
        "ten_front_connections_open",
        "gauge",
        "Client connections open now.",
        load(&front.open),
    );
    single(
        o,
        "ten_front_connections_accepted_total",
        "counter",
        "Client connections accepted since start.",
        load(&front.accepted),
    );
    family(
        o,
        "ten_front_requests_refused_total",
        "counter",
        "Requests the front answered itself with an error, by status.",
    );
    for (status, n) in REFUSED_STATUSES.iter().zip(&front.refused) {
        line(
            o,
            "ten_front_requests_refused_total",
            &format!("{{code=\"{status}\"}}"),
            load(n),
        );
    }
    single(
        o,
        "ten_front_accept_paused_total",
        "counter",
        "Times accepting paused at the connection cap.",
        load(&front.accept_paused),
    );

    if let Some(rss) = sample.process_rss {
        single(
            o,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of tenement itself.",
            rss,
        );
    }
    if let Some(fds) = sample.process_fds {
        single(
            o,
            "process_open_fds",
            "gauge",
            "Open file descriptors of tenement itself.",
            fds,
        );
    }
    if let Some(cpu) = sample.process_cpu_seconds {
        single(
            o,
            "process_cpu_seconds_total",
            "counter",
            "CPU time of tenement itself.",
            float(cpu),
        );
    }
    single(
        o,
        "process_start_time_seconds",
        "gauge",
        "When tenement started, seconds since the epoch.",
        float(sample.process_start_unix),
    );
    out
}

/// The HTTPS families: each certificate name's seconds left until its
/// certificate expires (negative once expired), and handshake failures by
/// reason. `now` is Unix seconds.
pub fn render_tls(out: &mut String, store: &crate::front::tls::Certs, now: i64) {
    family(
        out,
        "ten_tls_certificate_expiry_seconds",
        "gauge",
        "Seconds until the certificate served for this name expires.",
    );
    let certs = store.files.certs();
    for cert in &certs.certs {
        for name in &cert.names {
            let labels = format!("{{name=\"{}\"}}", escape(name));
            line(
                out,
                "ten_tls_certificate_expiry_seconds",
                &labels,
                cert.info.not_after - now,
            );
        }
    }
    if let Some(acme) = store.acme() {
        let mut issued: Vec<_> = acme.issued().values().cloned().collect();
        issued.sort_by(|a, b| a.name.cmp(&b.name));
        for stored in issued {
            let labels = format!("{{name=\"{}\"}}", escape(&stored.name));
            line(
                out,
                "ten_tls_certificate_expiry_seconds",
                &labels,
                stored.info.not_after - now,
            );
        }
    }
    family(
        out,
        "ten_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed, by reason.",
    );
    for (reason, n) in store.files.failures() {
        line(
            out,
            "ten_tls_handshake_failures_total",
            &format!("{{reason=\"{reason}\"}}"),
            n,
        );
    }
}

fn load(n: &std::sync::atomic::AtomicU64) -> u64 {
    n.load(Ordering::Relaxed)
}

/// A float the way Prometheus writes it: shortest round-trip form; whole
/// numbers without a fraction are fine too.
fn float(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "NaN".to_string()
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A family of one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    line(out, name, "", value);
}

fn line(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{labels} {value}");
}

fn per_instance(
    out: &mut String,
    all: &[Arc<InstanceView>],
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&InstanceView) -> String,
) {
    per_instance_known(out, all, name, kind, help, |v| Some(value(v)));
}

/// `per_instance` for a value not every instance has: those without one
/// get no sample.
fn per_instance_known(
    out: &mut String,
    all: &[Arc<InstanceView>],
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&InstanceView) -> Option<String>,
) {
    family(out, name, kind, help);
    for v in all {
        if let Some(value) = value(v) {
            line(out, name, &labels(v), value);
        }
    }
}

/// A gauge with one sample per instance and word, labelled `label="WORD"`:
/// 1 for the word `word_of` gives the instance, 0 for the others.
fn one_hot<W: Copy + PartialEq>(
    out: &mut String,
    all: &[Arc<InstanceView>],
    name: &str,
    help: &str,
    label: &str,
    words: &[(W, &str)],
    word_of: impl Fn(&InstanceView) -> W,
) {
    family(out, name, "gauge", help);
    for v in all {
        let own = word_of(v);
        for &(word, text) in words {
            line(
                out,
                name,
                &labels_with(v, label, text),
                u8::from(own == word),
            );
        }
    }
}

/// A histogram family with one histogram per instance; `of` gives an
/// instance's bucket counts and its sum in microseconds.
fn histograms<const N: usize>(
    out: &mut String,
    all: &[Arc<InstanceView>],
    name: &str,
    help: &str,
    bounds: &[f64],
    of: impl Fn(&InstanceView) -> ([u64; N], u64),
) {
    family(out, name, "histogram", help);
    for v in all {
        let (counts, sum_us) = of(v);
        histogram(out, name, v, bounds, &counts, sum_us);
    }
}

/// `_bucket` lines (cumulative, `le` ascending, then `+Inf`), `_sum` in
/// seconds and `_count`. `counts` has one more entry than `bounds`.
fn histogram(
    out: &mut String,
    name: &str,
    v: &InstanceView,
    bounds: &[f64],
    counts: &[u64],
    sum_us: u64,
) {
    let mut total = 0;
    for (i, n) in counts.iter().enumerate() {
        total += n;
        let le = bounds.get(i).map_or("+Inf".to_string(), |b| float(*b));
        let l = labels_with(v, "le", &le);
        line(out, &format!("{name}_bucket"), &l, total);
    }
    line(
        out,
        &format!("{name}_sum"),
        &labels(v),
        float(sum_us as f64 / 1e6),
    );
    line(out, &format!("{name}_count"), &labels(v), total);
}

fn labels(v: &InstanceView) -> String {
    instance_labels(&v.service, &v.id, None)
}

fn labels_with(v: &InstanceView, key: &str, value: &str) -> String {
    instance_labels(&v.service, &v.id, Some((key, value)))
}

/// `{service="...",id="..."[,key="value"]}`. Names cannot hold the
/// characters the format escapes, but escape anyway: the format breaks
/// silently otherwise.
fn instance_labels(service: &str, id: &str, extra: Option<(&str, &str)>) -> String {
    let mut s = format!("{{service=\"{}\",id=\"{}\"", escape(service), escape(id));
    if let Some((k, v)) = extra {
        let _ = write!(s, ",{k}=\"{}\"", escape(v));
    }
    s.push('}');
    s
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
    use std::time::Duration;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            instance_labels("a\"b", "c\\d\n", None),
            "{service=\"a\\\"b\",id=\"c\\\\d\\n\"}"
        );
        assert_eq!(
            instance_labels("a", "b", Some(("le", "+Inf"))),
            "{service=\"a\",id=\"b\",le=\"+Inf\"}"
        );
    }

    #[test]
    fn cpu_ticks_sum_fields_14_to_17() {
        let stat =
            "4242 (py (x) y) S 1 4242 4242 0 -1 4194304 100 0 0 0 150 25 3 2 20 0 1 0 12345 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(180));
        assert_eq!(parse_cpu_ticks("4242 (short) S 1"), None);
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_inf_sum_and_count() {
        let v = InstanceView::for_test("api", "prod", State::Running, 1);
        v.stats.shard(0).record(200, Duration::from_millis(3));
        v.stats.shard(1).record(500, Duration::from_millis(30));
        v.stats.shard(2).record(200, Duration::from_secs(20));
        let mut out = String::new();
        let (counts, sum_us) = v.stats.durations();
        histogram(&mut out, "h", &v, &DURATION_BUCKETS, &counts, sum_us);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "h_bucket{service=\"api\",id=\"prod\",le=\"0.005\"} 1"
        );
        assert_eq!(
            lines[3],
            "h_bucket{service=\"api\",id=\"prod\",le=\"0.05\"} 2"
        );
        assert_eq!(
            lines[10],
            "h_bucket{service=\"api\",id=\"prod\",le=\"10\"} 2"
        );
        assert_eq!(
            lines[11],
            "h_bucket{service=\"api\",id=\"prod\",le=\"+Inf\"} 3"
        );
        assert_eq!(lines[12], "h_sum{service=\"api\",id=\"prod\"} 20.033");
        assert_eq!(lines[13], "h_count{service=\"api\",id=\"prod\"} 3");
    }
}
