//! Instance output: pipes split into lines, the last lines kept in memory,
//! every line appended to `.tenement/logs/{service}/{id}.log` as
//! `{RFC3339 UTC ms} {stream} {text}` with size-based rotation.
//!
//! Used by the supervisor thread only. Disk errors never stop an instance:
//! the file is dropped and the failure logged once.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Longest line kept; longer output is cut into pieces of this size.
pub const MAX_LINE: usize = 16 * 1024;
/// Lines kept in memory per instance (for the last output shown to an admin
/// whose `ten spawn --wait` or deploy failed).
pub const RING_LINES: usize = 200;
/// Bytes of text kept in memory per instance, whatever the line count: a
/// noisy app writing long lines holds at most this much (README states it).
/// Everything else is in the log files.
pub const RING_BYTES: usize = 64 * 1024;

/// Cuts a byte stream into lines at `\n` (a trailing `\r` dropped) or every
/// `MAX_LINE` bytes, whichever comes first. Pure.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: Vec<u8>,
}

impl Splitter {
    /// Feeds bytes, calling `line` for each complete line.
    pub fn feed(&mut self, mut bytes: &[u8], mut line: impl FnMut(String)) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.buf.len();
            let window = &bytes[..bytes.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.buf.extend_from_slice(&window[..i]);
                    bytes = &bytes[i + 1..];
                    if self.buf.last() == Some(&b'\r') {
                        self.buf.pop();
                    }
                    line(self.take());
                }
                None => {
                    self.buf.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                    if self.buf.len() == MAX_LINE {
                        // Cut before a UTF-8 sequence the bound split, so
                        // both pieces keep the character intact.
                        let keep = incomplete_tail(&self.buf);
                        let rest = self.buf.split_off(MAX_LINE - keep);
                        line(self.take());
                        self.buf = rest;
                    }
                }
            }
        }
    }

    /// At end of stream: the unterminated rest, if any.
    pub fn finish(&mut self) -> Option<String> {
        (!self.buf.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        s
    }
}

/// How many bytes at the end of `buf` start a UTF-8 sequence that is not
/// complete yet (0 to 3). Invalid bytes are not held back: they become
/// U+FFFD where they are.
fn incomplete_tail(buf: &[u8]) -> usize {
    let start = buf.len().saturating_sub(3);
    for i in (start..buf.len()).rev() {
        let b = buf[i];
        let need = match b {
            0x00..=0x7f => return 0,
            0x80..=0xbf => continue,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return 0,
        };
        let have = buf.len() - i;
        return if have < need { have } else { 0 };
    }
    0
}

/// The last lines of an instance, any stream: at most `RING_LINES` lines
/// and `RING_BYTES` bytes of text. Freed with the instance when it is
/// stopped and forgotten.
#[derive(Debug, Default)]
pub struct Ring {
    lines: VecDeque<(&'static str, String)>,
    /// Sum of the kept lines' lengths.
    bytes: usize,
}

impl Ring {
    pub fn push(&mut self, stream: &'static str, text: &str) {
        // A line longer than the whole bound keeps only its end, so the
        // newest output is always there.
        let text = if text.len() > RING_BYTES {
            let mut cut = text.len() - RING_BYTES;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            &text[cut..]
        } else {
            text
        };
        while self.lines.len() >= RING_LINES || self.bytes + text.len() > RING_BYTES {
            let Some((_, old)) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= old.len();
        }
        self.bytes += text.len();
        self.lines.push_back((stream, text.to_string()));
    }

    /// Bytes of text held.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }

    /// The last `n` lines of the app's own output (not tenement's), oldest
    /// first, one per line.
    pub fn tail(&self, n: usize) -> String {
        let out: Vec<&str> = self
            .lines
            .iter()
            .filter(|(s, _)| *s != "ten")
            .map(|(_, t)| t.as_str())
            .collect();
        out[out.len().saturating_sub(n)..].join("\n")
    }
}

/// One instance's log file, opened at the first write and kept open
/// between writes (an instance that never writes, like one restored
/// asleep, costs no descriptor and no file).
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    /// Opened (or tried) once: a failed open is not retried per line.
    opened: bool,
    size: u64,
    max_bytes: u64,
    keep: u32,
    failed: bool,
}

impl LogFile {
    /// The log at `path`, opened (appending) or created with its folders
    /// at the first write. Never fails: an unwritable log is reported and
    /// skipped.
    pub fn open(path: PathBuf, max_bytes: u64, keep: u32) -> LogFile {
        LogFile {
            path,
            file: None,
            opened: false,
            size: 0,
            max_bytes,
            keep,
            failed: false,
        }
    }

    fn reopen(&mut self) {
        self.opened = true;
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
        {
            Ok(f) => {
                // Only tenement reads them; a file left by an older version
                // gets the same mode (rotations keep it). Best effort: the
                // folder is 0700 anyway.
                let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
                self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
                self.file = Some(f);
            }
            Err(e) => self.fail("open", e),
        }
    }

    fn fail(&mut self, op: &str, e: std::io::Error) {
        self.file = None;
        if !self.failed {
            self.failed = true;
            warn!("supervisor", "{op} {}: {e}", self.path.display());
        }
    }

    /// Appends one line in the instance log format. Returns the line's
    /// time, so a live copy of the line (`/api/logs/stream`) carries the
    /// same time as the file's and a follower can tell the two apart from
    /// an equal line written at another moment.
    pub fn write(&mut self, stream: &str, text: &str) -> String {
        let time = crate::log::timestamp();
        if !self.opened {
            self.reopen();
        }
        let line = format!("{time} {stream} {text}\n");
        if self.max_bytes > 0 && self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate();
        }
        let Some(f) = self.file.as_mut() else {
            return time;
        };
        match f.write_all(line.as_bytes()) {
            Ok(()) => self.size += line.len() as u64,
            Err(e) => self.fail("write", e),
        }
        time
    }

    /// `x.log.{keep-1}` -> `x.log.{keep}`, ..., `x.log` -> `x.log.1`, then a
    /// fresh `x.log`. With `keep == 0` the file is just truncated.
    fn rotate(&mut self) {
        self.file = None;
        for (from, to) in rotation(&self.path, self.keep) {
            let _ = std::fs::rename(from, to);
        }
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        }
        self.reopen();
    }
}

/// The renames of one rotation, in the order to perform them. Pure.
pub fn rotation(path: &Path, keep: u32) -> Vec<(PathBuf, PathBuf)> {
    let numbered = |n: u32| crate::state::layout::rotated_log_path(path, n);
    let mut out = Vec::new();
    for n in (1..keep).rev() {
        out.push((numbered(n), numbered(n + 1)));
    }
    if keep > 0 {
        out.push((path.to_path_buf(), numbered(1)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push(l));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn lines_survive_every_split_point() {
        let text = b"one\r\ntwo\n\nthree";
        for i in 0..=text.len() {
            let got = split_all(&[&text[..i], &text[i..]]);
            assert_eq!(got, ["one", "two", "", "three"], "split at {i}");
        }
    }

    #[test]
    fn long_lines_are_cut_and_bad_utf8_replaced() {
        let mut long = vec![b'x'; MAX_LINE * 2 + 5];
        long.push(b'\n');
        let got = split_all(&[&long]);
        assert_eq!(
            got.iter().map(|l| l.len()).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 5]
        );
        assert_eq!(split_all(&[b"a\xffb\n"]), ["a\u{fffd}b"]);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // 'é' is two bytes; put its first byte at the last position of the bound.
        let mut text = vec![b'x'; MAX_LINE - 1];
        text.extend_from_slice("éz\n".as_bytes());
        for i in [1, MAX_LINE - 1, MAX_LINE, text.len() - 1] {
            let got = split_all(&[&text[..i], &text[i..]]);
            assert_eq!(got.len(), 2, "split at {i}");
            assert_eq!(got[0].len(), MAX_LINE - 1);
            assert_eq!(got[1], "éz", "split at {i}");
        }
        // A stray continuation byte at the bound is still replaced, not held.
        let mut bad = vec![b'x'; MAX_LINE - 1];
        bad.push(0x80);
        bad.push(b'\n');
        let got = split_all(&[&bad]);
        assert!(
            got[0].ends_with('\u{fffd}'),
            "{:?}",
            &got[0][got[0].len() - 4..]
        );
    }

    #[test]
    fn ring_keeps_the_last_lines_of_the_app() {
        let mut r = Ring::default();
        for i in 0..(RING_LINES + 10) {
            r.push("stdout", &i.to_string());
        }
        r.push("ten", "spawned");
        assert_eq!(r.tail(2), format!("{}\n{}", RING_LINES + 8, RING_LINES + 9));
        assert_eq!(r.lines.len(), RING_LINES);
    }

    #[test]
    fn ring_is_bounded_in_bytes_whatever_the_line_length() {
        // Lines of every size up to the longest the splitter makes: the
        // ring never holds more than RING_BYTES and keeps the newest line.
        for len in [1, 100, 4096, MAX_LINE, RING_BYTES + 10] {
            let mut r = Ring::default();
            for i in 0..(RING_LINES * 3) {
                let line = format!("{i:06}{}", "x".repeat(len));
                r.push("stderr", &line);
                let held: usize = r.lines.iter().map(|(_, t)| t.len()).sum();
                assert_eq!(held, r.bytes(), "len {len}");
                assert!(r.bytes() <= RING_BYTES, "len {len}: {} bytes", r.bytes());
                assert!(r.lines.len() <= RING_LINES);
            }
            let last = r.tail(1);
            assert!(last.ends_with('x') && !last.is_empty(), "len {len}");
            if len < RING_BYTES {
                assert!(last.starts_with(&format!("{:06}", RING_LINES * 3 - 1)));
            }
        }
        // A cut never splits a character.
        let mut r = Ring::default();
        r.push("stdout", &"é".repeat(RING_BYTES));
        assert!(r.bytes() <= RING_BYTES && r.tail(1).chars().all(|c| c == 'é'));
    }

    #[test]
    fn rotation_shifts_numbered_files() {
        let p = Path::new("/l/a.log");
        let names: Vec<(String, String)> = rotation(p, 3)
            .into_iter()
            .map(|(a, b)| (a.display().to_string(), b.display().to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("/l/a.log.2".into(), "/l/a.log.3".into()),
                ("/l/a.log.1".into(), "/l/a.log.2".into()),
                ("/l/a.log".into(), "/l/a.log.1".into()),
            ]
        );
        assert!(rotation(p, 0).is_empty());
    }

    #[test]
    fn log_file_rotates_at_max_bytes() {
        let dir = crate::state::testdir::TempDir::new("logrotate");
        let path = dir.join("svc").join("a.log");
        let mut log = LogFile::open(path.clone(), 200, 2);
        for i in 0..20 {
            log.write(
                "stdout",
                &format!("line {i} ........................................"),
            );
        }
        let main = std::fs::read_to_string(&path).unwrap();
        assert!(
            main.len() <= 200
                && main.ends_with("line 19 ........................................\n"),
            "{main}"
        );
        assert!(main.split(' ').nth(1) == Some("stdout"));
        assert!(path.with_extension("log.1").exists());
        assert!(path.with_extension("log.2").exists());
        assert!(!path.with_extension("log.3").exists());
    }

    #[test]
    fn log_file_is_created_at_the_first_write_and_appends() {
        let dir = crate::state::testdir::TempDir::new("loglazy");
        let path = dir.join("svc").join("a.log");
        let mut log = LogFile::open(path.clone(), 0, 1);
        assert!(!path.exists(), "opened before anything was written");
        assert!(!path.parent().unwrap().exists());
        log.write("stdout", "one");
        drop(log);
        let mut again = LogFile::open(path.clone(), 0, 1);
        again.write("stderr", "two");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(" stdout one") && lines[1].ends_with(" stderr two"));
    }
}
