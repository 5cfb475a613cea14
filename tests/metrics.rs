//! `GET /metrics` end to end: the text is valid exposition format (checked
//! by `promtool check metrics` when installed, and always by the strict
//! parser below), and values move as traffic, crashes and wakes happen.

mod util;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};

use util::*;

fn config() -> String {
    format!(
        "{}{}",
        settings(""),
        py_service("talker", "talker.py", "health = \"/health\"")
    )
}

/// One sample: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (0.0.4) strictly: every sample belongs
/// to a family declared before it with exactly one HELP and one TYPE; names
/// and label names are valid; label values are quoted with only \\ \" \n
/// escapes; values are floats; counters end in `_total`; a family's samples
/// are contiguous; histograms have increasing `le` buckets ending in +Inf,
/// cumulative counts, and `_count` equal to the +Inf bucket. Panics with
/// the line on any violation.
fn parse_strict(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the text must end with a newline");
    let valid_name = |n: &str| {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
    };
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashMap<String, String> = HashMap::new();
    let mut done_families: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts
                .next()
                .unwrap_or_else(|| panic!("{}", at()))
                .to_string();
            let arg = parts
                .next()
                .unwrap_or_else(|| panic!("{}", at()))
                .to_string();
            assert!(valid_name(&name), "bad name {}", at());
            match kind {
                "HELP" => assert!(
                    helps.insert(name.clone(), arg).is_none(),
                    "second HELP {}",
                    at()
                ),
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"]
                            .contains(&arg.as_str()),
                        "bad type {}",
                        at()
                    );
                    if arg == "counter" {
                        assert!(name.ends_with("_total"), "counter without _total {}", at());
                    }
                    assert!(
                        types.insert(name.clone(), arg).is_none(),
                        "second TYPE {}",
                        at()
                    );
                }
                _ => panic!("unknown comment {}", at()),
            }
            if current.as_deref() != Some(&name) {
                if let Some(c) = current.take() {
                    done_families.push(c);
                }
                assert!(!done_families.contains(&name), "family split {}", at());
                current = Some(name);
            }
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "stray {}", at());
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value {}", at()),
        };
        assert!(valid_name(name), "bad metric name {}", at());
        let mut labels = BTreeMap::new();
        let rest = if let Some(body) = rest.strip_prefix('{') {
            let bytes = body.as_bytes();
            let mut i = 0;
            loop {
                if bytes.get(i) == Some(&b'}') {
                    i += 1;
                    break;
                }
                let eq = body[i..].find('=').unwrap_or_else(|| panic!("{}", at())) + i;
                let key = &body[i..eq];
                assert!(
                    valid_name(key) && !key.contains(':'),
                    "bad label name {}",
                    at()
                );
                assert!(body[eq + 1..].starts_with('"'), "unquoted value {}", at());
                let mut value = String::new();
                i = eq + 2;
                loop {
                    match bytes.get(i) {
                        Some(b'\\') => {
                            match bytes.get(i + 1) {
                                Some(b'\\') => value.push('\\'),
                                Some(b'"') => value.push('"'),
                                Some(b'n') => value.push('\n'),
                                _ => panic!("bad escape {}", at()),
                            }
                            i += 2;
                        }
                        Some(b'"') => break,
                        Some(_) => {
                            let ch = body[i..].chars().next().unwrap();
                            value.push(ch);
                            i += ch.len_utf8();
                        }
                        None => panic!("unterminated value {}", at()),
                    }
                }
                assert!(
                    labels.insert(key.to_string(), value).is_none(),
                    "repeated label {}",
                    at()
                );
                i += 1;
                match bytes.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => {}
                    _ => panic!("expected , or }} {}", at()),
                }
            }
            &body[i..]
        } else {
            rest
        };
        let value_text = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{}", at()));
        assert!(
            !value_text.contains(' '),
            "timestamps are not used {}",
            at()
        );
        let value: f64 = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value {}", at())),
        };
        let family = current
            .clone()
            .unwrap_or_else(|| panic!("sample before TYPE {}", at()));
        let kind = types
            .get(&family)
            .unwrap_or_else(|| panic!("no TYPE {}", at()));
        assert!(helps.contains_key(&family), "no HELP {}", at());
        let ok = match kind.as_str() {
            "histogram" => [
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
            ]
            .contains(&name.to_string()),
            _ => name == family,
        };
        assert!(ok, "sample of another family (in {family}) {}", at());
        if name.ends_with("_bucket") {
            assert!(labels.contains_key("le"), "bucket without le {}", at());
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    check_histograms(&samples, &types);
    samples
}

/// A series' labels without `le`, sorted.
type SeriesKey = Vec<(String, String)>;

fn check_histograms(samples: &[Sample], types: &HashMap<String, String>) {
    for (family, kind) in types {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts: HashMap<SeriesKey, f64> = HashMap::new();
        for s in samples {
            let mut key: SeriesKey = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            key.sort();
            if s.name == format!("{family}_bucket") {
                let le = &s.labels["le"];
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                series.entry(key).or_default().push((le, s.value));
            } else if s.name == format!("{family}_count") {
                counts.insert(key, s.value);
            }
        }
        for (key, buckets) in &series {
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{family} {key:?} {buckets:?}"
            );
            let last = buckets.last().unwrap();
            assert!(last.0.is_infinite(), "{family} {key:?} has no +Inf bucket");
            assert_eq!(
                Some(&last.1),
                counts.get(key),
                "{family} {key:?}: _count != +Inf bucket"
            );
        }
    }
}

fn metrics(s: &Server) -> (String, Vec<Sample>) {
    let resp = s.api("GET", "/metrics", Some(&s.admin_token), None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.text();
    let samples = parse_strict(&text);
    (text, samples)
}

/// The value of `name` whose labels include all of `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

const A: [(&str, &str); 2] = [("service", "talker"), ("id", "a")];

#[test]
fn metrics_are_valid_exposition_text() {
    let s = Server::start("metrics-valid", &config());
    s.ten_ok(&["spawn", "talker:a"]);
    s.wait_running("talker:a");
    s.http("GET", "a.talker.localhost", "/", &[], b"");
    let (text, samples) = metrics(&s);

    if tools_present(&["promtool"]) {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}\n--- text ---\n{text}",
            describe(&out)
        );
        // promtool also lints (e.g. naming); it prints nothing when all is well.
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool lint:\n{}",
            describe(&out)
        );
    }

    for family in [
        "ten_build_info",
        "ten_uptime_seconds",
        "ten_instances",
        "ten_instance_up",
        "ten_instance_health",
        "ten_instance_restarts_total",
        "ten_instance_wakes_total",
        "ten_instance_wake_duration_seconds",
        "ten_instance_requests_total",
        "ten_instance_request_duration_seconds",
        "ten_instance_received_bytes_total",
        "ten_instance_sent_bytes_total",
        "ten_instance_open_connections",
        "ten_instance_memory_bytes",
        "ten_instance_cpu_seconds_total",
        "ten_instance_data_dir_bytes",
        "ten_front_connections_open",
        "ten_front_connections_accepted_total",
        "ten_front_requests_refused_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no family {family}:\n{text}"
        );
    }
    assert_eq!(
        value(&samples, "ten_instances", &[("state", "running")]),
        Some(1.0)
    );
    assert_eq!(value(&samples, "ten_instance_up", &A), Some(1.0));
    assert_eq!(
        value(
            &samples,
            "ten_instance_health",
            &[A[0], A[1], ("health", "healthy")]
        ),
        Some(1.0)
    );
    assert!(value(&samples, "ten_instance_memory_bytes", &A).is_some_and(|m| m > 1e6));
    assert!(value(&samples, "ten_instance_cpu_seconds_total", &A).is_some_and(|c| c >= 0.0));
    assert!(value(&samples, "process_resident_memory_bytes", &[]).is_some_and(|m| m > 1e5));
    assert!(value(&samples, "process_open_fds", &[]).is_some_and(|n| n >= 3.0));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&samples, "ten_build_info", &[("version", version)]),
        Some(1.0)
    );

    // A token is needed unless metrics_public.
    assert_eq!(s.api("GET", "/metrics", None, None).status, 401);
}

#[test]
fn metrics_count_requests_refusals_restarts_and_wakes() {
    let s = Server::start("metrics-move", &config());
    s.ten_ok(&["spawn", "talker:a"]);
    s.wait_running("talker:a");
    let (_, before) = metrics(&s);
    let ok_before = value(
        &before,
        "ten_instance_requests_total",
        &[A[0], A[1], ("code", "2xx")],
    )
    .unwrap();
    let in_before = value(&before, "ten_instance_received_bytes_total", &A).unwrap();

    for _ in 0..3 {
        assert_eq!(
            s.http("GET", "a.talker.localhost", "/", &[], b"").status,
            200
        );
    }
    let mut last = Vec::new();
    let counted = wait_until(DEADLINE, || {
        last = metrics(&s).1;
        value(
            &last,
            "ten_instance_requests_total",
            &[A[0], A[1], ("code", "2xx")],
        ) == Some(ok_before + 3.0)
    });
    assert!(counted, "3 requests not counted: {last:?}");
    assert!(value(&last, "ten_instance_received_bytes_total", &A).unwrap() > in_before);
    assert!(value(&last, "ten_instance_sent_bytes_total", &A).unwrap() > 0.0);
    assert!(value(&last, "ten_instance_request_duration_seconds_count", &A).unwrap() >= 3.0);
    assert!(value(&last, "ten_front_connections_accepted_total", &[]).unwrap() >= 3.0);

    // A request the front refuses (Content-Length and Transfer-Encoding): 400.
    let refused_before = value(
        &last,
        "ten_front_requests_refused_total",
        &[("code", "400")],
    )
    .unwrap();
    let mut conn = Conn::open(s.addr);
    conn.send_raw(
        b"POST / HTTP/1.1\r\nHost: a.talker.localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(conn.read_response(false).status, 400);
    let refused = wait_until(DEADLINE, || {
        last = metrics(&s).1;
        value(
            &last,
            "ten_front_requests_refused_total",
            &[("code", "400")],
        ) == Some(refused_before + 1.0)
    });
    assert!(refused, "refusal not counted");

    // A crash is a restart.
    let pid = s.wait_running("talker:a")["pid"].as_u64().unwrap() as u32;
    signal(pid, "KILL");
    let restarted = wait_until(DEADLINE, || {
        last = metrics(&s).1;
        value(&last, "ten_instance_restarts_total", &A) == Some(1.0)
            && value(&last, "ten_instance_up", &A) == Some(1.0)
    });
    assert!(restarted, "restart not counted: {last:?}\n{}", s.log());

    // An exit with code 0 under on-failure puts it to sleep; a request wakes it.
    assert_eq!(
        s.http("GET", "a.talker.localhost", "/exit", &[], b"")
            .status,
        200
    );
    let slept = wait_until(DEADLINE, || {
        s.instance("talker:a")
            .is_some_and(|i| i["state"] == "sleeping")
    });
    assert!(slept, "talker:a did not sleep after exit 0\n{}", s.log());
    assert_eq!(
        value(&metrics(&s).1, "ten_instance_wakes_total", &A),
        Some(0.0)
    );
    assert_eq!(
        s.http("GET", "a.talker.localhost", "/", &[], b"").status,
        200
    );
    let woken = wait_until(DEADLINE, || {
        last = metrics(&s).1;
        value(&last, "ten_instance_wakes_total", &A) == Some(1.0)
            && value(&last, "ten_instance_wake_duration_seconds_count", &A) == Some(1.0)
    });
    assert!(woken, "wake not counted: {last:?}");
    assert_eq!(
        value(
            &last,
            "ten_instance_wake_duration_seconds_bucket",
            &[A[0], A[1], ("le", "+Inf")]
        ),
        Some(1.0)
    );
}

#[test]
fn the_strict_parser_refuses_broken_text() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert_eq!(parse_strict(good)[0].value, 2.0);
    for bad in [
        "a_total 1\n",                                                  // no HELP/TYPE
        "# HELP a A.\n# TYPE a counter\na 1\n",                         // counter without _total
        "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n",                      // unquoted label
        "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",                // bad escape
        "# HELP a A.\n# TYPE a gauge\na one\n",                         // not a number
        "# HELP a A.\n# TYPE a gauge\nb 1\n",                           // another family
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0\nh_count 1\n",
        "# HELP a A.\n# TYPE a gauge\na 1",                             // no final newline
    ] {
        let text = bad.to_string();
        let refused = std::panic::catch_unwind(|| parse_strict(&text)).is_err();
        assert!(refused, "accepted:\n{bad}");
    }
}
