//! The wire format of a data dir transfer (`POST /api/transfer/{svc:id}`):
//! a body is a sequence of records, each an ASCII header line and then the
//! path and the data bytes:
//!
//! ```text
//! KIND MODE SIZE OFFSET LEN MTIME_NS SHA256 PATHLEN\n PATH DATA
//! ```
//!
//! KIND is `f` (a piece of a file: DATA is bytes OFFSET..OFFSET+LEN of a
//! file of SIZE bytes), `d` (a directory), `l` (a symlink: DATA is its
//! target) or `x` (delete PATH). MODE is octal permission bits, MTIME_NS the
//! source's modification time in nanoseconds since the epoch, SHA256 the
//! hex SHA-256 of DATA. PATH is relative to the instance's data dir.
//!
//! Pure: bytes in, records out, and the reverse. Every check that needs no
//! disk is made here: a bad path (absolute, `..`, `.`, empty component,
//! NUL), a LEN past the body, a piece past SIZE, a checksum mismatch.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// The longest relative path accepted (Linux PATH_MAX).
pub const PATH_MAX: usize = 4096;
/// The longest header line.
const HEADER_MAX: usize = 256;

/// What a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Delete,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::File => 'f',
            Kind::Dir => 'd',
            Kind::Symlink => 'l',
            Kind::Delete => 'x',
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "f" => Kind::File,
            "d" => Kind::Dir,
            "l" => Kind::Symlink,
            "x" => Kind::Delete,
            _ => return None,
        })
    }
}

/// One decoded record; `data` borrows from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: Kind,
    pub path: PathBuf,
    /// Permission bits (0o7777 at most).
    pub mode: u32,
    /// The whole file's size (`File`); the data's length otherwise.
    pub size: u64,
    /// Where `data` goes in the file (`File`); 0 otherwise.
    pub offset: u64,
    pub mtime_ns: i128,
    pub data: &'a [u8],
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The header line of record `n` is malformed.
    Header { n: usize, why: String },
    /// The path of record `n` is not a plain relative path.
    Path { n: usize, path: String },
    /// Record `n` says more bytes than the body has.
    Truncated { n: usize },
    /// Record `n`'s piece ends past its file's size.
    PastSize { n: usize },
    /// Record `n`'s data does not match its SHA-256.
    Checksum { n: usize, path: String },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Header { n, why } => write!(f, "record {n}: bad header: {why}"),
            FrameError::Path { n, path } => write!(
                f,
                "record {n}: path {path:?} is not a relative path inside the data dir"
            ),
            FrameError::Truncated { n } => write!(f, "record {n}: the body ends before its data"),
            FrameError::PastSize { n } => {
                write!(f, "record {n}: the piece ends past the file's size")
            }
            FrameError::Checksum { n, path } => {
                write!(f, "record {n} ({path}): the data does not match its sha256")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Hex SHA-256 of `data` (ring).
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut s = String::with_capacity(64);
    for b in digest.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Whether `path` is a plain relative path: at least one component, each a
/// normal name (no root, `.`, `..`), no NUL, at most `PATH_MAX` bytes.
pub fn plain_relative(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    !bytes.is_empty()
        && bytes.len() <= PATH_MAX
        && !bytes.contains(&0)
        && !bytes.starts_with(b"/")
        // `a//b` and `a/./b` normalise away in `components`: refuse them.
        && !bytes.windows(2).any(|w| w == b"//")
        && !bytes.ends_with(b"/")
        && path.components().all(|c| matches!(c, Component::Normal(_)))
        && path.components().count() == bytes.split(|&b| b == b'/').count()
}

/// Appends one record to `out`. `data` is the piece (`File`), the link
/// target (`Symlink`) or empty.
pub fn encode(out: &mut Vec<u8>, r: &Record<'_>) {
    use std::os::unix::ffi::OsStrExt;
    let path = r.path.as_os_str().as_bytes();
    let header = format!(
        "{} {:o} {} {} {} {} {} {}\n",
        r.kind.letter(),
        r.mode,
        r.size,
        r.offset,
        r.data.len(),
        r.mtime_ns,
        sha256_hex(r.data),
        path.len()
    );
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(r.data);
}

/// How many bytes a record's header and path take (for packing bodies).
pub fn overhead(path: &Path) -> usize {
    HEADER_MAX + path.as_os_str().len()
}

/// Decodes every record of `body`, checking each; the first bad one ends it.
pub fn decode(body: &[u8]) -> Result<Vec<Record<'_>>, FrameError> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    let mut rest = body;
    let mut n = 0;
    while !rest.is_empty() {
        n += 1;
        let bad = |why: &str| FrameError::Header {
            n,
            why: why.to_string(),
        };
        let end = rest
            .iter()
            .take(HEADER_MAX)
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("no newline within 256 bytes"))?;
        let line = std::str::from_utf8(&rest[..end]).map_err(|_| bad("not ASCII"))?;
        let fields: Vec<&str> = line.split(' ').collect();
        let [kind, mode, size, offset, len, mtime, sum, path_len] = fields[..] else {
            return Err(bad("expected 8 fields"));
        };
        let kind = Kind::parse(kind).ok_or_else(|| bad("kind is not f, d, l or x"))?;
        let mode = u32::from_str_radix(mode, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| bad("mode is not octal permission bits"))?;
        let num = |s: &str, what: &str| s.parse::<u64>().map_err(|_| bad(what));
        let size = num(size, "size is not a number")?;
        let offset = num(offset, "offset is not a number")?;
        let len = usize::try_from(num(len, "length is not a number")?)
            .map_err(|_| bad("length too large"))?;
        let mtime_ns = mtime
            .parse::<i128>()
            .map_err(|_| bad("mtime is not a number"))?;
        let path_len = usize::try_from(num(path_len, "path length is not a number")?)
            .ok()
            .filter(|&l| l <= PATH_MAX)
            .ok_or_else(|| bad("path too long"))?;
        if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("sha256 is not 64 hex digits"));
        }
        rest = &rest[end + 1..];
        let total = path_len
            .checked_add(len)
            .ok_or(FrameError::Truncated { n })?;
        if rest.len() < total {
            return Err(FrameError::Truncated { n });
        }
        let path = Path::new(std::ffi::OsStr::from_bytes(&rest[..path_len])).to_path_buf();
        if !plain_relative(&path) {
            return Err(FrameError::Path {
                n,
                path: path.to_string_lossy().into_owned(),
            });
        }
        let data = &rest[path_len..total];
        rest = &rest[total..];
        if kind == Kind::File && offset.checked_add(len as u64).is_none_or(|e| e > size) {
            return Err(FrameError::PastSize { n });
        }
        if sha256_hex(data) != sum.to_ascii_lowercase() {
            return Err(FrameError::Checksum {
                n,
                path: path.to_string_lossy().into_owned(),
            });
        }
        out.push(Record {
            kind,
            path,
            mode,
            size: if kind == Kind::File {
                size
            } else {
                data.len() as u64
            },
            offset: if kind == Kind::File { offset } else { 0 },
            mtime_ns,
            data,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(kind: Kind, path: &str, offset: u64, size: u64, data: &'a [u8]) -> Record<'a> {
        Record {
            kind,
            path: PathBuf::from(path),
            mode: 0o640,
            size,
            offset,
            mtime_ns: 1_700_000_000_123_456_789,
            data,
        }
    }

    #[test]
    fn records_round_trip_and_a_cut_anywhere_is_refused() {
        let records = vec![
            rec(Kind::Dir, "sub dir", 0, 0, b""),
            rec(Kind::File, "sub dir/notes.json", 0, 10, b"hello"),
            rec(Kind::File, "sub dir/notes.json", 5, 10, b"world"),
            rec(Kind::Symlink, "latest", 0, 19, b"sub dir/notes.json"),
            rec(Kind::Delete, "old", 0, 0, b""),
            rec(Kind::File, "empty", 0, 0, b""),
        ];
        let mut body = Vec::new();
        for r in &records {
            encode(&mut body, r);
        }
        let got = decode(&body).unwrap();
        assert_eq!(got.len(), records.len());
        for (g, r) in got.iter().zip(&records) {
            assert_eq!(
                (g.kind, &g.path, g.offset, g.data),
                (r.kind, &r.path, r.offset, r.data)
            );
            assert_eq!((g.mode, g.mtime_ns), (0o640, r.mtime_ns));
        }
        assert_eq!(got[1].size, 10);
        assert_eq!(got[3].size, 18);
        // A body cut inside any record is refused, never half-applied.
        let ends: Vec<usize> = {
            let mut v = Vec::new();
            let mut b = Vec::new();
            for r in &records {
                encode(&mut b, r);
                v.push(b.len());
            }
            v
        };
        for cut in 1..body.len() {
            let r = decode(&body[..cut]);
            if ends.contains(&cut) {
                assert!(r.is_ok(), "cut at {cut}");
            } else {
                assert!(r.is_err(), "cut at {cut} decoded");
            }
        }
    }

    #[test]
    fn paths_outside_the_data_dir_are_refused() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "./a",
            "a//b",
            "a/",
            "",
            ".",
            "..",
        ] {
            assert!(!plain_relative(Path::new(bad)), "{bad:?}");
            let mut body = Vec::new();
            encode(&mut body, &rec(Kind::File, "ok", 0, 1, b"a"));
            // Rewrite the path of an otherwise good record.
            let text = format!("f 644 1 0 1 0 {} {}\n{bad}a", sha256_hex(b"a"), bad.len());
            let e = decode(text.as_bytes()).unwrap_err();
            assert!(
                matches!(e, FrameError::Path { .. } | FrameError::Header { .. }),
                "{bad:?}: {e}"
            );
        }
        for ok in ["a", "a/b", ".hidden", "a b/c..d", "..x"] {
            assert!(plain_relative(Path::new(ok)), "{ok:?}");
        }
    }

    #[test]
    fn checksums_and_sizes_are_checked() {
        let mut body = Vec::new();
        encode(&mut body, &rec(Kind::File, "a", 0, 5, b"hello"));
        let flip = body.len() - 1;
        body[flip] ^= 1;
        assert!(matches!(
            decode(&body),
            Err(FrameError::Checksum { n: 1, .. })
        ));
        let mut body = Vec::new();
        encode(&mut body, &rec(Kind::File, "a", 3, 5, b"hello"));
        assert_eq!(decode(&body), Err(FrameError::PastSize { n: 1 }));
        assert!(matches!(
            decode(b"f 644 1 0 99 0 00 1\na"),
            Err(FrameError::Header { .. })
        ));
        assert!(matches!(
            decode(format!("q 644 0 0 0 0 {} 1\na", sha256_hex(b"")).as_bytes()),
            Err(FrameError::Header { .. })
        ));
    }
}
