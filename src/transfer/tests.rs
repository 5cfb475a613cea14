//! One pass and a second, incremental one, from a folder to a folder through
//! the wire format, as the target's API would apply them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::state::testdir::TempDir;

/// A target that decodes and applies every body under its root, and keeps
/// the bodies' sizes.
struct Local {
    root: PathBuf,
    bodies: Vec<usize>,
}

impl Peer for Local {
    fn manifest(&mut self) -> Result<Vec<Entry>, String> {
        tree::manifest(&self.root).map_err(|e| e.to_string())
    }
    fn send(&mut self, body: &[u8]) -> Result<(), String> {
        assert!(body.len() <= BODY_MAX, "body of {} bytes", body.len());
        self.bodies.push(body.len());
        let records = frame::decode(body).map_err(|e| e.to_string())?;
        tree::apply(&self.root, &records).map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn same_tree(a: &Path, b: &Path) {
    let (ma, mb) = (tree::manifest(a).unwrap(), tree::manifest(b).unwrap());
    assert_eq!(ma, mb);
    for e in ma.iter().filter(|e| e.kind == 'f') {
        assert_eq!(
            fs::read(a.join(&e.path)).unwrap(),
            fs::read(b.join(&e.path)).unwrap(),
            "{:?}",
            e.path
        );
    }
}

#[test]
fn two_passes_make_an_equal_tree_and_the_second_sends_only_changes() {
    let t = TempDir::new("transfer-passes");
    let (src, dst) = (t.join("src"), t.join("dst"));
    fs::create_dir_all(src.join("db/wal")).unwrap();
    let big: Vec<u8> = (0..3 * BODY_MAX + 17)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    fs::write(src.join("db/big.bin"), &big).unwrap();
    fs::write(src.join("notes.json"), b"[1]").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("gone-later"), b"x").unwrap();
    fs::set_permissions(src.join("notes.json"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("db/big.bin", src.join("current")).unwrap();
    let mut peer = Local {
        root: dst.clone(),
        bodies: Vec::new(),
    };
    let first = send(&src, &mut peer).unwrap();
    assert_eq!(first.files, 4);
    assert_eq!(first.bytes, big.len() as u64 + 4);
    assert!(first.bodies >= 4, "{first:?}");
    same_tree(&src, &dst);

    // Nothing changed: nothing is sent.
    let again = send(&src, &mut peer).unwrap();
    assert_eq!(
        (again.files, again.bytes, again.deleted, again.bodies),
        (0, 0, 0, 0)
    );

    // One file changed, one removed, one added, a stray file on the target.
    fs::write(src.join("notes.json"), b"[1,2]").unwrap();
    fs::remove_file(src.join("gone-later")).unwrap();
    fs::write(src.join("db/wal/0001"), b"log").unwrap();
    fs::write(dst.join("stray"), b"s").unwrap();
    let second = send(&src, &mut peer).unwrap();
    assert_eq!(second.files, 2, "{second:?}");
    assert_eq!(second.bytes, 5 + 3);
    assert_eq!(second.deleted, 2);
    same_tree(&src, &dst);
    assert!(!dst.join("stray").exists());
}

#[test]
fn an_interrupted_pass_is_finished_by_the_next() {
    let t = TempDir::new("transfer-interrupted");
    let (src, dst) = (t.join("src"), t.join("dst"));
    fs::create_dir_all(&src).unwrap();
    let big: Vec<u8> = (0..2 * BODY_MAX).map(|i| (i % 253) as u8).collect();
    fs::write(src.join("big"), &big).unwrap();
    /// Applies the first body, then fails (the target died).
    struct Dies(Local);
    impl Peer for Dies {
        fn manifest(&mut self) -> Result<Vec<Entry>, String> {
            self.0.manifest()
        }
        fn send(&mut self, body: &[u8]) -> Result<(), String> {
            if !self.0.bodies.is_empty() {
                return Err("connection refused".into());
            }
            self.0.send(body)
        }
    }
    let mut dies = Dies(Local {
        root: dst.clone(),
        bodies: Vec::new(),
    });
    assert!(send(&src, &mut dies).is_err());
    // Half a file sits in its part file; the real name does not exist yet.
    assert!(!dst.join("big").exists());
    let mut peer = Local {
        root: dst.clone(),
        bodies: Vec::new(),
    };
    send(&src, &mut peer).unwrap();
    same_tree(&src, &dst);
}

#[test]
fn into_an_instance_s_data_dir_everything_becomes_its_owner_s() {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        // Giving files away needs root, as the receiving server has.
        return;
    }
    let t = TempDir::new("transfer-owner");
    let (src, dst) = (t.join("src"), t.join("dst"));
    fs::create_dir_all(src.join("db")).unwrap();
    fs::write(src.join("db/notes.json"), b"[1]").unwrap();
    fs::set_permissions(src.join("db/notes.json"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("db/notes.json", src.join("current")).unwrap();
    // The instance's data dir on this node: its uid's, as its start left it.
    fs::create_dir_all(&dst).unwrap();
    std::os::unix::fs::chown(&dst, Some(4242), Some(4243)).unwrap();
    let mut peer = Local {
        root: dst.clone(),
        bodies: Vec::new(),
    };
    send(&src, &mut peer).unwrap();
    same_tree(&src, &dst);
    for rel in ["db", "db/notes.json", "current"] {
        let m = fs::symlink_metadata(dst.join(rel)).unwrap();
        assert_eq!((m.uid(), m.gid()), (4242, 4243), "{rel}");
    }
    // A data dir the server made itself stays the server's: the
    // instance's start gives it away whole.
    let fresh = t.join("fresh");
    let mut peer = Local {
        root: fresh.clone(),
        bodies: Vec::new(),
    };
    send(&src, &mut peer).unwrap();
    let m = fs::symlink_metadata(fresh.join("db/notes.json")).unwrap();
    assert_eq!(m.uid(), 0);
}
