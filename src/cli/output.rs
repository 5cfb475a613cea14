//! What the CLI prints: aligned tables, human units, and the one writer to
//! stdout that turns a broken pipe into a quiet exit.
//!
//! Text that comes from apps (log lines, health check details, error
//! messages with an app's last output) never reaches the terminal raw:
//! `escape` writes every control character and every character that
//! reorders text as a visible escape, so a line cannot move the cursor,
//! erase, recolour or pose as another instance's line.
//!
//! Formatting is pure (strings in, strings out) so it is unit-tested; only
//! `print` touches stdout. Nothing here may use `println!`: it panics when
//! stdout is a closed pipe (`ten logs | head`).

use std::io::Write;

use serde_json::Value;

use super::CliError;

/// Writes `text` to stdout and flushes. A closed pipe becomes
/// `CliError::BrokenPipe`, which exits 0 without a message.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::BrokenPipe),
        Err(e) => Err(CliError::failed(format!("write to stdout: {e}"))),
    }
}

/// Prints a JSON value, pretty, with a trailing newline.
pub fn print_json(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).expect("a serde_json::Value always serializes");
    print(&(json_safe(&text).into_owned() + "\n"))
}

/// Whether `c` could move the cursor, erase, recolour or reorder what a
/// terminal shows: C0 controls, DEL, C1 controls (U+0080 to U+009F: a
/// terminal may read U+009B as CSI), and the Unicode bidirectional and
/// line-separating format characters.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character written as a visible escape: `\t`,
/// `\r`, `\xNN` below U+0100 (ESC is `\x1b`), `\u{NNNN}` above. With
/// `keep_newlines`, `\n` stays a line break (for multi-line messages).
pub fn escape(text: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let keep = |c: char| !is_unsafe(c) || (keep_newlines && c == '\n');
    if text.chars().all(keep) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if keep(c) => out.push(c),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x100 => {
                let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\x{:02x}", c as u32));
            }
            c => {
                let _ =
                    std::fmt::Write::write_fmt(&mut out, format_args!("\\u{{{:04x}}}", c as u32));
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Serialized JSON with the unsafe characters JSON allows raw in strings
/// (DEL, C1, bidi controls) written as `\uNNNN` escapes: the same JSON
/// value, safe on a terminal. Outside strings JSON text has no such
/// characters but the line breaks of pretty printing, which stay.
pub fn json_safe(json: &str) -> std::borrow::Cow<'_, str> {
    // Every unsafe character is a C0 control, DEL or not ASCII.
    if json
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\n')
    {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_unsafe(c) && c != '\n' {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\u{:04x}", u));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Lays out rows under a header, columns left-aligned and separated by two
/// spaces, no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `5s`, `3m`, `2h`, `4d`: the largest whole unit.
pub fn uptime(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// `512B`, `4.0K`, `12.3M`, `1.5G` (powers of 1024).
pub fn memory(bytes: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("G", 1_073_741_824.0), ("M", 1_048_576.0), ("K", 1024.0)];
    for (unit, size) in UNITS {
        if bytes as f64 >= size {
            return format!("{:.1}{unit}", bytes as f64 / size);
        }
    }
    format!("{bytes}B")
}

/// A JSON field as a table cell: strings as they are (unsafe characters
/// escaped), numbers in decimal, null or missing as `-`.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => escape(s, false).into_owned(),
        Some(other) => other.to_string(),
    }
}

/// The `ten ps` columns (BRIEF, CLI output).
pub const PS_HEADER: [&str; 12] = [
    "INSTANCE",
    "STATE",
    "HEALTH",
    "PID",
    "PORT",
    "UPTIME",
    "WEIGHT",
    "RESTARTS",
    "MEM",
    "DISK",
    "ISOLATION",
    "UID",
];

/// One `ten ps` row from an API instance object.
pub fn ps_row(obj: &Value) -> Vec<String> {
    let units = |key: &str, f: fn(u64) -> String| {
        obj.get(key)
            .and_then(Value::as_u64)
            .map_or("-".to_string(), f)
    };
    vec![
        cell(obj.get("instance")),
        state_cell(obj),
        cell(obj.get("health")),
        cell(obj.get("pid")),
        cell(obj.get("port")),
        units("uptime_secs", uptime),
        cell(obj.get("weight")),
        cell(obj.get("restarts")),
        units("memory_bytes", memory),
        disk(obj),
        cell(obj.get("isolation")),
        cell(obj.get("uid")),
    ]
}

/// The STATE cell: the state, and during a move (`ten move`) its phase
/// (`running/copy`, `moving/sync`), or where a moved instance went
/// (`moved->http://10.0.0.12:8080`).
fn state_cell(obj: &Value) -> String {
    let state = cell(obj.get("state"));
    let m = &obj["move"];
    match (m["phase"].as_str(), m["to"].as_str()) {
        (Some("moved"), Some(to)) if state == "moved" => format!("moved->{to}"),
        (Some(phase), _) if m["error"].is_null() => format!("{state}/{phase}"),
        _ => state,
    }
}

/// The DISK cell: the data dir's size where the instance has a storage
/// quota, with a `!` when it is over it.
fn disk(obj: &Value) -> String {
    match obj.get("storage_bytes").and_then(Value::as_u64) {
        Some(b) if obj.get("over_quota").and_then(Value::as_bool) == Some(true) => memory(b) + "!",
        Some(b) => memory(b),
        None => "-".to_string(),
    }
}

/// The `ten ps` table for the instance objects shown (`commands::ps` picks
/// them: sleeping ones only with `--all`).
pub fn ps_table(instances: &[Value]) -> String {
    let rows: Vec<Vec<String>> = instances.iter().map(ps_row).collect();
    table(&PS_HEADER, &rows)
}

/// `ten health`: key/value lines. `now_unix` dates the last check ("3s ago").
pub fn health_report(obj: &Value, now_unix: u64) -> String {
    let check = match obj.get("last_check") {
        Some(c @ Value::Object(_)) => {
            let ok = c.get("ok").and_then(Value::as_bool).unwrap_or(false);
            let detail = escape(c.get("detail").and_then(Value::as_str).unwrap_or(""), false);
            let mut s = String::from(if ok { "ok" } else { "failed" });
            if !detail.is_empty() {
                s.push_str(": ");
                s.push_str(&detail);
            }
            if let Some(at) = c.get("at_unix").and_then(Value::as_u64) {
                let ago = uptime(now_unix.saturating_sub(at));
                s.push_str(&format!(" ({ago} ago, {})", crate::log::format_utc(at, 0)));
            }
            s
        }
        _ => "none yet".to_string(),
    };
    let rows = vec![
        vec!["instance".to_string(), cell(obj.get("instance"))],
        vec!["state".to_string(), cell(obj.get("state"))],
        vec!["health".to_string(), cell(obj.get("health"))],
        vec!["last check".to_string(), check],
        vec!["restarts".to_string(), cell(obj.get("restarts"))],
        vec!["isolation".to_string(), cell(obj.get("isolation"))],
        vec!["uid".to_string(), cell(obj.get("uid"))],
    ];
    // A table without a header: reuse the layout, drop its first line.
    let text = table(&["", ""], &rows);
    text.split_once('\n')
        .map_or(String::new(), |(_, rest)| rest.to_string())
}

/// `spawned api:prod (pid 1234, port 30001)` and friends.
pub fn instance_line(verb: &str, obj: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(pid) = obj.get("pid").and_then(Value::as_u64) {
        parts.push(format!("pid {pid}"));
    }
    if let Some(port) = obj.get("port").and_then(Value::as_u64) {
        parts.push(format!("port {port}"));
    }
    let name = cell(obj.get("instance"));
    if parts.is_empty() {
        format!("{verb} {name}\n")
    } else {
        format!("{verb} {name} ({})\n", parts.join(", "))
    }
}

/// One log entry as `TIME INSTANCE STREAM LINE`, every field escaped
/// (`escape`), so the line is exactly one line of the terminal and only
/// the colours added here take effect.
pub fn log_line(entry: &Value, colour: bool) -> String {
    let field = |k: &str| escape(entry.get(k).and_then(Value::as_str).unwrap_or("-"), false);
    let stream = field("stream");
    let stream = stream.as_ref();
    if !colour {
        return format!(
            "{} {} {stream} {}\n",
            field("time"),
            field("instance"),
            field("line")
        );
    }
    // SGR codes (ECMA-48): dim time, cyan instance, the stream word in its
    // colour; stderr text red too, so errors stand out in a busy stream.
    let (tag, text) = match stream {
        "stderr" => ("31", "31"),
        "ten" => ("35", ""),
        _ => ("32", ""),
    };
    let text_open = if text.is_empty() {
        String::new()
    } else {
        format!("\x1b[{text}m")
    };
    let text_close = if text.is_empty() { "" } else { "\x1b[0m" };
    format!(
        "\x1b[2m{}\x1b[0m \x1b[36m{}\x1b[0m \x1b[{tag}m{stream}\x1b[0m {text_open}{}{text_close}\n",
        field("time"),
        field("instance"),
        field("line")
    )
}

/// Colour on stdout: only to a terminal, and never when `NO_COLOR` is set
/// to a non-empty value (no-color.org).
pub fn colour_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && rustix::termios::isatty(std::io::stdout())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uptime_uses_the_largest_whole_unit() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(60), "1m");
        assert_eq!(uptime(3 * 60 + 59), "3m");
        assert_eq!(uptime(2 * 3600 + 1), "2h");
        assert_eq!(uptime(86_399), "23h");
        assert_eq!(uptime(4 * 86_400 + 7), "4d");
    }

    #[test]
    fn memory_has_one_decimal_and_binary_units() {
        assert_eq!(memory(0), "0B");
        assert_eq!(memory(1023), "1023B");
        assert_eq!(memory(1024), "1.0K");
        assert_eq!(memory(12_897_485), "12.3M");
        assert_eq!(memory(3 * 1_073_741_824 / 2), "1.5G");
    }

    #[test]
    fn table_columns_align_without_trailing_spaces() {
        let t = table(
            &["A", "LONGER", "C"],
            &[
                vec!["x".into(), "1".into(), "-".into()],
                vec!["wide-cell".into(), "22".into(), "end".into()],
            ],
        );
        let expected = "\
A          LONGER  C
x          1       -
wide-cell  22      end
";
        assert_eq!(t, expected);
    }

    #[test]
    fn ps_table_formats_units_and_nulls() {
        let list = vec![
            json!({"instance":"api:prod","service":"api","id":"prod","state":"running","health":"healthy",
                   "pid":1234,"port":30001,"weight":100,"restarts":0,"uptime_secs":125,
                   "memory_bytes":12_897_485u64,"last_check":null,"isolation":"sandbox",
                   "storage_bytes":2_202_009u64,"over_quota":true,"uid":200_007,"gid":200_007}),
            json!({"instance":"notes:bob","service":"notes","id":"bob","state":"sleeping","health":"unknown",
                   "pid":null,"port":30002,"weight":100,"restarts":1,"uptime_secs":null,
                   "memory_bytes":null,"last_check":null}),
        ];
        let t = ps_table(&list[..1]);
        let expected = "\
INSTANCE  STATE    HEALTH   PID   PORT   UPTIME  WEIGHT  RESTARTS  MEM    DISK   ISOLATION  UID
api:prod  running  healthy  1234  30001  2m      100     0         12.3M  2.1M!  sandbox    200007
";
        assert_eq!(t, expected);
        let t = ps_table(&list);
        assert!(
            t.lines()
                .nth(2)
                .unwrap()
                .starts_with("notes:bob  sleeping  unknown  -     30002  -"),
            "{t}"
        );
        assert!(t.lines().nth(2).unwrap().ends_with(" -"), "{t}");
        assert_eq!(ps_table(&[]), PS_HEADER.join("  ") + "\n");
    }

    #[test]
    fn health_report_shows_last_check_and_age() {
        let obj = json!({"instance":"notes:alice","state":"running","health":"degraded","restarts":2,
                         "last_check":{"ok":false,"detail":"timeout","at_unix":1_795_812_255u64},
                         "isolation":"namespace","uid":200_003});
        let text = health_report(&obj, 1_795_812_258);
        assert!(text.contains("isolation   namespace\n"), "{text}");
        assert!(text.contains("uid         200003\n"), "{text}");
        assert!(text.contains("health      degraded\n"), "{text}");
        assert!(
            text.contains("last check  failed: timeout (3s ago, 2026-11-27T20:44:15.000Z)"),
            "{text}"
        );
        let none = health_report(&json!({"instance":"a:b","last_check":null}), 0);
        assert!(none.contains("last check  none yet"), "{none}");
    }

    #[test]
    fn instance_and_log_lines() {
        let obj = json!({"instance":"api:prod","pid":1234,"port":30001});
        assert_eq!(
            instance_line("spawned", &obj),
            "spawned api:prod (pid 1234, port 30001)\n"
        );
        let e = json!({"instance":"api:prod","time":"2026-11-27T20:44:15.123Z","stream":"stderr","line":"boom"});
        assert_eq!(
            log_line(&e, false),
            "2026-11-27T20:44:15.123Z api:prod stderr boom\n"
        );
        assert_eq!(
            log_line(&e, true),
            "\x1b[2m2026-11-27T20:44:15.123Z\x1b[0m \x1b[36mapi:prod\x1b[0m \
             \x1b[31mstderr\x1b[0m \x1b[31mboom\x1b[0m\n"
        );
    }

    /// Every character that can act on a terminal, in every field of a log
    /// entry: the printed line has none of them raw (only the colours
    /// `log_line` adds itself), is one line, and shows the character as an
    /// escape. The JSON forms carry the same value with none raw either.
    #[test]
    fn app_text_never_reaches_the_terminal_raw() {
        let mut nasty: Vec<char> = (0u32..=0xa0).filter_map(char::from_u32).collect();
        nasty.extend(
            "\u{061C}\u{200E}\u{200F}\u{2028}\u{2029}\u{202A}\u{202E}\u{2066}\u{2069}".chars(),
        );
        let plain = json!({"time":"t","instance":"api:prod","stream":"stdout","line":"ok"});
        let sgr_count = log_line(&plain, true).matches('\x1b').count();
        for c in nasty.iter().copied().filter(|&c| is_unsafe(c)) {
            let text = format!("x{c}\x1b[2K\rnotes:alice stdout forged{c}");
            for field in ["line", "instance", "stream", "time"] {
                let mut e = plain.clone();
                e[field] = json!(text);
                let out = log_line(&e, false);
                let body = out.strip_suffix('\n').expect("one trailing newline");
                assert!(
                    !body.chars().any(is_unsafe),
                    "{field} with U+{:04X}: {out:?}",
                    c as u32
                );
                assert!(body.contains("\\x1b[2K\\r"), "{out:?}");
                let out = log_line(&e, true);
                assert_eq!(out.matches('\x1b').count(), sgr_count, "{out:?}");
                assert_eq!(
                    out.matches(|c: char| is_unsafe(c) && c != '\x1b').count(),
                    1,
                    "{out:?}"
                );
            }
            let one = json!({ "line": text });
            let many = json!([{ "line": text }]);
            for (j, value) in [
                (json_safe(&one.to_string()), &one),
                (
                    json_safe(&serde_json::to_string_pretty(&many).unwrap()),
                    &many,
                ),
            ] {
                assert!(!j.chars().any(|c| is_unsafe(c) && c != '\n'), "{j:?}");
                assert_eq!(
                    &serde_json::from_str::<Value>(&j).expect("still JSON"),
                    value
                );
            }
            assert_eq!(
                serde_json::from_str::<Value>(&json_safe(&json!(text).to_string())).unwrap(),
                json!(text)
            );
            // Table cells too (ps, health, deploy).
            assert!(!cell(Some(&json!(text))).chars().any(is_unsafe));
        }
        // Printable text, tabs aside, is left alone; multi-line messages keep
        // their line breaks when asked.
        assert_eq!(escape("héllo wörld {}\\", false), "héllo wörld {}\\");
        assert_eq!(
            escape("a\tb\x1bc\u{9b}d\u{202e}", false),
            "a\\tb\\x1bc\\x9bd\\u{202e}"
        );
        assert_eq!(escape("one\ntwo\r", true), "one\ntwo\\r");
        assert_eq!(escape("one\ntwo", false), "one\\ntwo");
    }
}
