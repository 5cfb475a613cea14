//! The logger: one line per event on stderr, `level component: message key=value`.
//!
//! The macros check the level before formatting anything. Under systemd
//! (`JOURNAL_STREAM` set) lines carry sd-daemon priority prefixes instead of a
//! level word and no timestamp, since the journal adds its own. Never log
//! secrets; never call these between clone3/fork and exec.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static JOURNAL: OnceLock<bool> = OnceLock::new();

/// Reads `TEN_LOG` (error, warn, info, debug) once at start-up.
pub fn init_from_env() {
    let level = match std::env::var("TEN_LOG").as_deref() {
        Ok("error") => Level::Error,
        Ok("warn") => Level::Warn,
        Ok("debug") => Level::Debug,
        _ => Level::Info,
    };
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one formatted line. Called by the macros after `enabled` said yes.
pub fn write(level: Level, component: &str, args: std::fmt::Arguments<'_>) {
    let journal = *JOURNAL.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some());
    let mut line = Vec::with_capacity(128);
    if journal {
        let prio = match level {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug => 7,
        };
        let _ = write!(line, "<{prio}>{component}: {args}");
    } else {
        let word = match level {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        };
        let _ = write!(line, "{} {word} {component}: {args}", timestamp());
    }
    line.push(b'\n');
    // One write per line so lines from different threads do not interleave.
    let _ = std::io::stderr().lock().write_all(&line);
}

/// UTC time as `2026-11-27T20:44:15.123Z`, computed without a time crate.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(now.as_secs(), now.subsec_millis())
}

/// Formats seconds since the epoch as an RFC 3339 UTC time with milliseconds.
pub fn format_utc(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for all dates after 1970.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[macro_export]
macro_rules! error {
    ($component:expr, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Error) {
            $crate::log::write($crate::log::Level::Error, $component, format_args!($($arg)+))
        }
    };
}
#[macro_export]
macro_rules! warn {
    ($component:expr, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Warn) {
            $crate::log::write($crate::log::Level::Warn, $component, format_args!($($arg)+))
        }
    };
}
#[macro_export]
macro_rules! info {
    ($component:expr, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Info) {
            $crate::log::write($crate::log::Level::Info, $component, format_args!($($arg)+))
        }
    };
}
#[macro_export]
macro_rules! debug {
    ($component:expr, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Debug) {
            $crate::log::write($crate::log::Level::Debug, $component, format_args!($($arg)+))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(format_utc(1_795_812_255, 123), "2026-11-27T20:44:15.123Z");
    }
}
