//! `GET /api/logs`: reads instance log files and returns matching lines.
//!
//! Files are `{data_dir}/.tenement/logs/{service}/{id}.log` and its rotated
//! `.log.1` (newer) ... `.log.N` (older), one line per event:
//! `{RFC3339 UTC ms timestamp} {stream} {text}`. Reads backwards from the end
//! in blocks and stops once `limit` lines (at most `MAX_LIMIT`) or
//! `MAX_ANSWER_BYTES` of text matched, so a short query on a long log reads
//! only the end of the current file. Does blocking file reads, bounded by the
//! rotation size times the file count: runs on the `offload` logs lane,
//! never on an event loop. No sockets.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::state::layout::{log_path, rotated_log_path};

/// Most lines one `/api/logs` answer holds; a larger `limit` is clamped to
/// it (README, ten(1)).
pub const MAX_LIMIT: usize = 10_000;

/// Most bytes of line text one answer holds (the newest lines are kept):
/// 10,000 lines of up to 16 KiB each would be 160 MiB.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Bytes read from a file at a time, from its end backwards.
const BLOCK: u64 = 64 * 1024;

/// A "line" longer than this with no newline (a file tenement did not
/// write) is dropped rather than held whole.
const MAX_RAW_LINE: usize = 1024 * 1024;

/// One log line as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `service:id`.
    pub instance: String,
    /// RFC 3339 UTC with milliseconds, as written.
    pub time: String,
    /// `stdout`, `stderr` or `ten`.
    pub stream: String,
    pub line: String,
}

impl LogLine {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "instance": self.instance,
            "time": self.time,
            "stream": self.stream,
            "line": self.line,
        })
    }
}

/// Which lines a query wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this stream.
    pub stream: Option<String>,
    /// Only lines whose text contains this (case-sensitive, like grep).
    pub search: Option<String>,
    /// Only lines at or after this timestamp (same format as the file, so
    /// string order is time order).
    pub since: Option<String>,
    /// At most this many lines, the newest (and at most `MAX_ANSWER_BYTES`
    /// of text).
    pub limit: usize,
}

/// The streams a log line may carry.
pub const STREAMS: [&str; 3] = ["stdout", "stderr", "ten"];

/// Splits one line into (time, stream, text). None: not in the line format
/// (a torn last line after a crash, or a file someone else wrote).
pub fn parse_line(line: &str) -> Option<(&str, &str, &str)> {
    let (time, rest) = line.split_once(' ')?;
    let b = time.as_bytes();
    if b.len() != 24 || b[10] != b'T' || b[23] != b'Z' || !b[0].is_ascii_digit() {
        return None;
    }
    let (stream, text) = rest.split_once(' ').unwrap_or((rest, ""));
    if !STREAMS.contains(&stream) {
        return None;
    }
    Some((time, stream, text))
}

/// The newest `filter.limit` matching lines of one instance, oldest first.
/// Missing files are simply no lines.
pub fn read_instance(data_dir: &Path, service: &str, id: &str, filter: &Filter) -> Vec<LogLine> {
    let mut newest_first = Vec::new();
    if filter.limit == 0 {
        return newest_first;
    }
    let instance = format!("{service}:{id}");
    let current = log_path(data_dir, service, id);
    let mut bytes = 0;
    let mut n = 0;
    'files: loop {
        let path = rotated_log_path(&current, n);
        let file = match File::open(&path) {
            Ok(f) => Some(f),
            // The current file may be missing while rotated ones exist.
            Err(_) if n == 0 => None,
            Err(_) => break,
        };
        let mut stop = false;
        if let Some(file) = file {
            lines_backwards(&file, |raw| {
                let Some((time, stream, line)) = parse_line(raw) else {
                    return true;
                };
                if filter.since.as_deref().is_some_and(|s| time < s) {
                    // Lines are in time order: everything further back is older.
                    stop = true;
                    return false;
                }
                if filter.stream.as_deref().is_some_and(|s| s != stream)
                    || filter.search.as_deref().is_some_and(|s| !line.contains(s))
                {
                    return true;
                }
                bytes += line.len();
                if bytes > MAX_ANSWER_BYTES {
                    stop = true;
                    return false;
                }
                newest_first.push(LogLine {
                    instance: instance.clone(),
                    time: time.to_string(),
                    stream: stream.to_string(),
                    line: line.to_string(),
                });
                if newest_first.len() >= filter.limit.min(MAX_LIMIT) {
                    stop = true;
                }
                !stop
            });
        }
        if stop {
            break 'files;
        }
        n += 1;
        // Far more than any log_files setting; stops a loop on odd names.
        if n > 1000 {
            break;
        }
    }
    newest_first.reverse();
    newest_first
}

/// Calls `line` with each line of `file`, last first, reading blocks from
/// the end, until it returns false. Bytes that are not UTF-8 become U+FFFD.
/// A read error ends the walk as if the file began there.
fn lines_backwards(file: &File, mut line: impl FnMut(&str) -> bool) {
    let Ok(meta) = file.metadata() else {
        return;
    };
    let mut pos = meta.len();
    // The start of the line that straddles the boundary with the block
    // read before (which lies later in the file).
    let mut carry: Vec<u8> = Vec::new();
    while pos > 0 {
        let n = BLOCK.min(pos);
        pos -= n;
        let mut buf = vec![0u8; n as usize];
        if file.read_exact_at(&mut buf, pos).is_err() {
            return;
        }
        buf.extend_from_slice(&carry);
        let Some(first_nl) = buf.iter().position(|&b| b == b'\n') else {
            carry = if buf.len() > MAX_RAW_LINE {
                Vec::new()
            } else {
                buf
            };
            continue;
        };
        for raw in buf[first_nl + 1..].rsplit(|&b| b == b'\n') {
            if !line(&String::from_utf8_lossy(raw)) {
                return;
            }
        }
        buf.truncate(first_nl);
        carry = buf;
    }
    line(&String::from_utf8_lossy(&carry));
}

/// Lines of several instances merged by time, the newest `filter.limit`,
/// oldest first. Equal times keep the order of `instances`.
pub fn read_merged(data_dir: &Path, instances: &[(&str, &str)], filter: &Filter) -> Vec<LogLine> {
    let mut all: Vec<LogLine> = instances
        .iter()
        .flat_map(|(svc, id)| read_instance(data_dir, svc, id, filter))
        .collect();
    all.sort_by(|a, b| a.time.cmp(&b.time));
    let mut skip = all.len().saturating_sub(filter.limit.min(MAX_LIMIT));
    // The same text bound as one instance's read, over the merged answer.
    let mut bytes: usize = all[skip..].iter().map(|l| l.line.len()).sum();
    while bytes > MAX_ANSWER_BYTES && skip < all.len() {
        bytes -= all[skip].line.len();
        skip += 1;
    }
    all.drain(..skip);
    all
}

/// Parses `since=`: `90`, `90s`, `10m`, `2h`, `1d` (how far back).
pub fn parse_since(s: &str) -> Option<std::time::Duration> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testdir::TempDir;

    fn write_log(data_dir: &Path, svc: &str, id: &str, suffix: &str, lines: &[&str]) {
        let path = log_path(data_dir, svc, id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut p = path.into_os_string();
        p.push(suffix);
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(std::path::PathBuf::from(p), text).unwrap();
    }

    fn filter(limit: usize) -> Filter {
        Filter {
            limit,
            ..Filter::default()
        }
    }

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.line.as_str()).collect()
    }

    #[test]
    fn parse_line_splits_time_stream_text() {
        assert_eq!(
            parse_line("2026-11-27T20:44:15.123Z ten spawned pid 1234 port 30001"),
            Some((
                "2026-11-27T20:44:15.123Z",
                "ten",
                "spawned pid 1234 port 30001"
            ))
        );
        assert_eq!(
            parse_line("2026-11-27T20:44:15.123Z stdout "),
            Some(("2026-11-27T20:44:15.123Z", "stdout", ""))
        );
        assert_eq!(
            parse_line("2026-11-27T20:44:15.123Z stderr"),
            Some(("2026-11-27T20:44:15.123Z", "stderr", ""))
        );
        assert_eq!(parse_line("2026-11-27T20:44:15.123Z other x"), None);
        assert_eq!(parse_line("garbage"), None);
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn reads_rotated_files_oldest_first_and_keeps_last_limit() {
        let t = TempDir::new("logs-rotated");
        write_log(
            &t.0,
            "notes",
            "alice",
            ".2",
            &["2026-01-01T00:00:01.000Z stdout one"],
        );
        write_log(
            &t.0,
            "notes",
            "alice",
            ".1",
            &["2026-01-01T00:00:02.000Z stdout two"],
        );
        write_log(
            &t.0,
            "notes",
            "alice",
            "",
            &[
                "2026-01-01T00:00:03.000Z stderr three",
                "torn line without a time",
                "2026-01-01T00:00:04.000Z ten four",
            ],
        );
        let all = read_instance(&t.0, "notes", "alice", &filter(100));
        assert_eq!(texts(&all), ["one", "two", "three", "four"]);
        assert_eq!(all[0].instance, "notes:alice");
        assert_eq!(all[2].stream, "stderr");
        assert_eq!(all[2].time, "2026-01-01T00:00:03.000Z");
        assert_eq!(
            texts(&read_instance(&t.0, "notes", "alice", &filter(3))),
            ["two", "three", "four"]
        );
        assert!(read_instance(&t.0, "notes", "alice", &filter(0)).is_empty());
        assert!(read_instance(&t.0, "notes", "nobody", &filter(10)).is_empty());
    }

    #[test]
    fn filters_by_stream_search_and_since() {
        let t = TempDir::new("logs-filter");
        write_log(
            &t.0,
            "api",
            "prod",
            "",
            &[
                "2026-01-01T00:00:01.000Z stdout GET /a",
                "2026-01-01T00:00:02.000Z stderr panic at GET",
                "2026-01-01T00:00:03.000Z stdout POST /b",
                "2026-01-01T00:00:04.000Z stdout GET /c",
            ],
        );
        let f = Filter {
            stream: Some("stdout".into()),
            search: Some("GET".into()),
            ..filter(10)
        };
        assert_eq!(
            texts(&read_instance(&t.0, "api", "prod", &f)),
            ["GET /a", "GET /c"]
        );
        let f = Filter {
            search: Some("get".into()),
            ..filter(10)
        };
        assert!(
            read_instance(&t.0, "api", "prod", &f).is_empty(),
            "search is case-sensitive"
        );
        let f = Filter {
            since: Some("2026-01-01T00:00:03.000Z".into()),
            ..filter(10)
        };
        assert_eq!(
            texts(&read_instance(&t.0, "api", "prod", &f)),
            ["POST /b", "GET /c"]
        );
    }

    #[test]
    fn merged_read_interleaves_by_time() {
        let t = TempDir::new("logs-merged");
        write_log(
            &t.0,
            "notes",
            "alice",
            "",
            &[
                "2026-01-01T00:00:01.000Z stdout a1",
                "2026-01-01T00:00:03.000Z stdout a3",
            ],
        );
        write_log(
            &t.0,
            "notes",
            "bob",
            "",
            &[
                "2026-01-01T00:00:02.000Z stdout b2",
                "2026-01-01T00:00:04.000Z stdout b4",
            ],
        );
        let both = [("notes", "alice"), ("notes", "bob")];
        assert_eq!(
            texts(&read_merged(&t.0, &both, &filter(10))),
            ["a1", "b2", "a3", "b4"]
        );
        assert_eq!(
            texts(&read_merged(&t.0, &both, &filter(3))),
            ["b2", "a3", "b4"]
        );
    }

    #[test]
    fn reading_backwards_in_blocks_keeps_every_line_whole() {
        // Lines of many lengths so block boundaries fall everywhere, a long
        // line spanning several blocks, multi-byte characters, and a last
        // line without its newline.
        let t = TempDir::new("logs-blocks");
        let mut want = Vec::new();
        let mut text = String::new();
        for i in 0..3000 {
            let body = match i % 7 {
                0 => "é".repeat(i % 300),
                3 if i == 1500 => "x".repeat(3 * BLOCK as usize),
                _ => "y".repeat(i % 211),
            };
            let line = format!("{i} {body}");
            text.push_str(&format!("2026-01-01T00:00:00.000Z stdout {line}\n"));
            want.push(line);
        }
        text.push_str("2026-01-01T00:00:01.000Z stderr torn");
        want.push("torn".into());
        let path = log_path(&t.0, "a", "b");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        let got = read_instance(&t.0, "a", "b", &filter(usize::MAX));
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(g, w)| g.line == *w));
        let last_two = read_instance(&t.0, "a", "b", &filter(2));
        assert_eq!(texts(&last_two), [want[2999].as_str(), "torn"]);
    }

    #[test]
    fn an_answer_is_bounded_in_lines_and_bytes() {
        let t = TempDir::new("logs-bounds");
        // More lines than MAX_LIMIT: a huge limit gets the newest MAX_LIMIT.
        let lines: Vec<String> = (0..MAX_LIMIT + 50)
            .map(|i| format!("2026-01-01T00:00:00.000Z stdout {i}"))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        write_log(&t.0, "a", "many", "", &refs);
        let got = read_instance(&t.0, "a", "many", &filter(1_000_000));
        assert_eq!(got.len(), MAX_LIMIT);
        assert_eq!(got.last().unwrap().line, (MAX_LIMIT + 49).to_string());
        let both = [("a", "many"), ("a", "many")];
        assert_eq!(
            read_merged(&t.0, &both, &filter(usize::MAX)).len(),
            MAX_LIMIT
        );
        // Long lines: the text stops at MAX_ANSWER_BYTES, newest kept.
        let long = "z".repeat(16 * 1024);
        let lines: Vec<String> = (0..400)
            .map(|i| format!("2026-01-01T00:00:00.000Z stdout {i:03}{long}"))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        write_log(&t.0, "a", "long", "", &refs);
        for got in [
            read_instance(&t.0, "a", "long", &filter(MAX_LIMIT)),
            read_merged(&t.0, &[("a", "long"), ("a", "long")], &filter(MAX_LIMIT)),
        ] {
            let bytes: usize = got.iter().map(|l| l.line.len()).sum();
            assert!(
                bytes <= MAX_ANSWER_BYTES && bytes > MAX_ANSWER_BYTES / 2,
                "{bytes}"
            );
            assert!(got.last().unwrap().line.starts_with("399"));
        }
    }

    #[test]
    fn since_accepts_units() {
        use std::time::Duration;
        assert_eq!(parse_since("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_since("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_since("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_since("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_since("m"), None);
        assert_eq!(parse_since("5x"), None);
        assert_eq!(parse_since(""), None);
    }
}
