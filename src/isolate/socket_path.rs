//! Reaching an instance's Unix socket (`SOCKET_PATH`) without following a
//! link the instance planted. A namespaced app binds its socket in a
//! folder it owns (`{socket}.d`, see `plan::socket_dirs`), so it can put a
//! symlink there instead, pointing at any socket of the host: `ten.sock`,
//! a container engine's. The front and the health checks run as the
//! server's user (root) and would connect there on its behalf. So the path
//! is walked one link at a time (O_PATH, O_NOFOLLOW): a link is followed
//! only when the server's own user owns it (the one tenement makes at
//! `SOCKET_PATH`), the end must be a socket, and the connect goes through
//! `/proc/self/fd/N` to exactly the inode that was checked, so swapping
//! the file between the check and the connect changes nothing.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, CWD};

/// Links followed at most (the kernel's own limit is 40; tenement makes one).
const MAX_LINKS: usize = 8;

/// The socket at the end of a checked walk, held open (O_PATH) so that
/// `path` keeps naming it.
#[derive(Debug)]
pub struct Resolved {
    _fd: OwnedFd,
    path: PathBuf,
}

impl Resolved {
    /// `/proc/self/fd/N`: connect to this while `self` is alive.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Walks `path` as described above. Errors: ENOENT as a connect would
/// give it, ECONNREFUSED when the end is not a socket, and a
/// PermissionDenied naming the link and its owner when a link belongs to
/// another user.
pub fn resolve(path: &Path) -> io::Result<Resolved> {
    resolve_trusting(path, rustix::process::geteuid().as_raw())
}

/// `resolve`, following links owned by `trusted` (a uid) only.
fn resolve_trusting(path: &Path, trusted: u32) -> io::Result<Resolved> {
    let mut at = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        let fd = rustix::fs::openat(
            CWD,
            &at,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Socket => {
                let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                return Ok(Resolved { _fd: fd, path });
            }
            FileType::Symlink if st.st_uid == trusted => {
                let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
                let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
                at = match at.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            FileType::Symlink => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is a link made by uid {}: not followed",
                        at.display(),
                        st.st_uid
                    ),
                ))
            }
            _ => return Err(io::Error::from_raw_os_error(libc::ECONNREFUSED)),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ten-sockpath-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn me() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    #[test]
    fn a_socket_behind_our_own_link_is_reached() {
        let d = scratch("own");
        std::fs::create_dir(d.join("a.sock.d")).unwrap();
        let listener = UnixListener::bind(d.join("a.sock.d/a.sock")).unwrap();
        std::os::unix::fs::symlink("a.sock.d/a.sock", d.join("a.sock")).unwrap();
        let r = resolve_trusting(&d.join("a.sock"), me()).unwrap();
        UnixStream::connect(r.path()).unwrap();
        listener.accept().unwrap();
        // The socket itself, no link at all.
        let r = resolve_trusting(&d.join("a.sock.d/a.sock"), me()).unwrap();
        UnixStream::connect(r.path()).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_link_of_another_user_is_not_followed() {
        let d = scratch("planted");
        std::fs::create_dir(d.join("a.sock.d")).unwrap();
        let _victim = UnixListener::bind(d.join("victim.sock")).unwrap();
        std::os::unix::fs::symlink("a.sock.d/a.sock", d.join("a.sock")).unwrap();
        // The app's folder holds a link to the victim instead of a socket.
        std::os::unix::fs::symlink(d.join("victim.sock"), d.join("a.sock.d/a.sock")).unwrap();
        let planted = d.join("a.sock.d/a.sock");
        if me() == 0 {
            // As the app would have made it: under its own uid.
            std::os::unix::fs::lchown(&planted, Some(4242), Some(4242)).unwrap();
            let e = resolve_trusting(&d.join("a.sock"), me()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            let text = e.to_string();
            assert!(
                text.contains(&planted.display().to_string()) && text.contains("uid 4242"),
                "{text}"
            );
        } else {
            // Without root no link can have another owner: trust another uid.
            assert!(resolve_trusting(&d.join("a.sock"), me()).is_ok());
            let e = resolve_trusting(&d.join("a.sock"), me() + 1).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn not_a_socket_is_refused_and_a_loop_ends() {
        let d = scratch("other");
        std::fs::write(d.join("file"), "x").unwrap();
        let e = resolve_trusting(&d.join("file"), me()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
        std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
        let e = resolve_trusting(&d.join("loop"), me()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        let e = resolve_trusting(&d.join("missing"), me()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
