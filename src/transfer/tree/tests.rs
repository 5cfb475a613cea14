//! Applying records never leaves the root: symlinked parents, escaping link
//! targets and out-of-order pieces are refused.

use std::fs;

use super::*;
use crate::state::testdir::TempDir;

fn rec<'a>(kind: Kind, path: &str, offset: u64, size: u64, data: &'a [u8]) -> Record<'a> {
    Record {
        kind,
        path: PathBuf::from(path),
        mode: 0o644,
        size,
        offset,
        mtime_ns: 0,
        data,
    }
}

#[test]
fn a_symlinked_parent_is_refused_and_nothing_is_written_through_it() {
    let t = TempDir::new("tree-symlink-parent");
    let (root, outside) = (t.join("root"), t.join("outside"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    let e = apply(&root, &[rec(Kind::File, "escape/x", 0, 1, b"a")]).unwrap_err();
    assert!(matches!(e, ApplyError::NotADir(_)), "{e}");
    assert!(!outside.join("x").exists());
    // A symlink in the file's own place is replaced, not followed.
    fs::write(outside.join("victim"), b"keep").unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), root.join("f")).unwrap();
    apply(&root, &[rec(Kind::File, "f", 0, 3, b"new")]).unwrap();
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");
    assert_eq!(fs::read(root.join("f")).unwrap(), b"new");
    assert!(!fs::symlink_metadata(root.join("f"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Deleting a symlink to a folder deletes the link only.
    std::os::unix::fs::symlink(&outside, root.join("dirlink")).unwrap();
    apply(&root, &[rec(Kind::Delete, "dirlink", 0, 0, b"")]).unwrap();
    assert!(outside.join("victim").exists());
}

#[test]
fn link_targets_must_stay_inside() {
    assert!(link_inside(Path::new("a"), Path::new("b")));
    assert!(link_inside(Path::new("d/a"), Path::new("../b")));
    assert!(link_inside(Path::new("d/a"), Path::new("./x/../../b")));
    assert!(!link_inside(Path::new("a"), Path::new("../b")));
    assert!(!link_inside(Path::new("d/a"), Path::new("../../b")));
    assert!(!link_inside(Path::new("a"), Path::new("/etc/passwd")));
    let t = TempDir::new("tree-link-escape");
    let e = apply(&t.0, &[rec(Kind::Symlink, "l", 0, 6, b"../../x")]).unwrap_err();
    assert!(matches!(e, ApplyError::LinkEscapes { .. }), "{e}");
}

#[test]
fn pieces_must_continue_the_part() {
    let t = TempDir::new("tree-pieces");
    let e = apply(&t.0, &[rec(Kind::File, "f", 3, 6, b"abc")]).unwrap_err();
    assert!(e.to_string().contains("f"), "{e}");
    apply(&t.0, &[rec(Kind::File, "f", 0, 6, b"abc")]).unwrap();
    assert!(!t.0.join("f").exists(), "renamed before the last piece");
    let e = apply(&t.0, &[rec(Kind::File, "f", 4, 6, b"de")]).unwrap_err();
    assert!(
        matches!(
            e,
            ApplyError::OutOfOrder {
                have: 3,
                offset: 4,
                ..
            }
        ),
        "{e}"
    );
    apply(&t.0, &[rec(Kind::File, "f", 3, 6, b"def")]).unwrap();
    assert_eq!(fs::read(t.0.join("f")).unwrap(), b"abcdef");
}
