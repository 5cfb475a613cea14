//! Root-only tests of the namespace and sandbox levels: the real `ten`
//! binary (built by `cargo test` next to the test binary) as init, and
//! tests/fixtures/escape.py trying to get out. Without root or the binary
//! they skip loudly, and fail under TEN_TEST_STRICT=1.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::child::{Cgroups, LaunchError, Step};
use super::plan::{self, Spec, StartError};
use super::spawn::Request;
use crate::config::Isolation;

/// The uid and gid the instances of these tests run as.
const UID: (u32, u32) = (265_001, 265_001);

fn skip(why: &str) -> bool {
    if std::env::var_os("TEN_TEST_STRICT").is_some_and(|v| v == "1") {
        panic!("TEN_TEST_STRICT=1 and {why}");
    }
    eprintln!("skip: {why}");
    false
}

/// target/debug/ten, beside target/debug/deps/<this test binary>.
fn ten_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let ten = exe.parent()?.parent()?.join("ten");
    ten.exists().then_some(ten)
}

fn ready(level: Isolation) -> Option<PathBuf> {
    if !rustix::process::geteuid().is_root() {
        skip("isolation tests need root");
        return None;
    }
    if let Err(missing) = plan::preflight(level) {
        skip(&missing);
        return None;
    }
    let exe = ten_exe();
    if exe.is_none() {
        skip("target/debug/ten is not built (run cargo test, which builds it)");
    }
    exe
}

/// A tenement data dir with two tenants, tokens and a ten.sock.
struct World {
    _dir: crate::state::testdir::TempDir,
    root: PathBuf,
    data: PathBuf,
    mine: PathBuf,
    other: PathBuf,
    _sock: std::os::unix::net::UnixListener,
}

impl World {
    fn new(name: &str) -> World {
        let dir = crate::state::testdir::TempDir::new(name);
        let root = dir.0.clone();
        let data = root.join("data");
        let mine = data.join("svc/a");
        let other = data.join("svc/b");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::create_dir_all(data.join(".tenement/run")).unwrap();
        std::fs::write(other.join("secret"), "b's").unwrap();
        std::fs::write(data.join("api_token"), "t").unwrap();
        std::fs::write(data.join(".tenement/tokens"), "t").unwrap();
        let sock = std::os::unix::net::UnixListener::bind(data.join(".tenement/ten.sock")).unwrap();
        World {
            _dir: dir,
            root,
            data,
            mine,
            other,
            _sock: sock,
        }
    }

    fn env(&self, extra: &[(&str, String)]) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("DATA_DIR".into(), self.mine.clone().into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.into(), v.into())));
        env
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `argv` at `level` and returns (exit code, stdout, stderr).
fn run(exe: &Path, spec: &Spec<'_>) -> Result<(i32, String, String), StartError> {
    let l = plan::start(exe, spec, None, Cgroups::default())?;
    let mut out = String::new();
    let mut err = String::new();
    std::fs::File::from(l.stdout)
        .read_to_string(&mut out)
        .unwrap();
    std::fs::File::from(l.stderr)
        .read_to_string(&mut err)
        .unwrap();
    let st = rustix::process::waitid(
        rustix::process::WaitId::PidFd(l.pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED,
    )
    .unwrap()
    .unwrap();
    Ok((st.exit_status().unwrap_or(-1), out, err))
}

fn spec<'a>(
    w: &'a World,
    level: Isolation,
    argv: &'a [String],
    env: &'a [(OsString, OsString)],
    workdir: &'a Path,
) -> Spec<'a> {
    let mut req = Request::process(argv, workdir, env, None);
    req.isolation = level;
    req.service = "svc";
    req.id = "a";
    req.data_dir = &w.mine;
    req.tenement_dir = &w.data;
    Spec { req, uid: UID }
}

fn escape(exe: &Path, w: &World, level: Isolation, extra: &[(&str, String)]) -> (Value, String) {
    let argv = vec![
        "/usr/bin/python3".to_string(),
        "escape.py".to_string(),
        "--once".to_string(),
    ];
    let host_file = w.root.join("host-file");
    std::fs::write(&host_file, "").unwrap();
    let mut vars = vec![
        (
            "ESCAPE_READ",
            format!(
                "{}:{}:{}:{}:/etc/shadow",
                w.other.display(),
                w.other.join("secret").display(),
                w.data.join("api_token").display(),
                w.data.join(".tenement/tokens").display()
            ),
        ),
        (
            "ESCAPE_WRITE",
            format!("/:/etc:/var/tmp:{}", fixtures().display()),
        ),
        (
            "ESCAPE_SOCK",
            w.data.join(".tenement/ten.sock").display().to_string(),
        ),
        ("ESCAPE_PID", std::process::id().to_string()),
        ("ESCAPE_HOST_FILE", host_file.display().to_string()),
    ];
    vars.extend(extra.iter().cloned());
    let env = w.env(&vars);
    let wd = fixtures();
    let s = spec(w, level, &argv, &env, &wd);
    let (code, out, err) = run(exe, &s).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    (
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
        err,
    )
}

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn namespace_sees_only_itself() {
    let Some(exe) = ready(Isolation::Namespace) else {
        return;
    };
    let w = World::new("ns-escape");
    let (r, log) = escape(&exe, &w, Isolation::Namespace, &[]);
    let uid = UID.0;
    assert_eq!(r["uid"], uid, "{r}");
    assert_eq!(s(&r, "hostname"), "a.svc");
    // Only init (1) and the app itself.
    assert_eq!(r["procs"], serde_json::json!([1, r["pid"].clone()]), "{r}");
    assert_eq!(s(&r, "signal_host"), "ESRCH");
    assert_eq!(r["host_tmp_file"], false);
    assert_eq!(s(&r, "write_data_dir"), "ok");
    assert_eq!(s(&r, "write_tmp"), "ok");
    // Tenement's data dir is an empty folder inside: nothing of it exists.
    for p in [
        w.other.display().to_string(),
        w.data.join("api_token").display().to_string(),
        w.data.join(".tenement/tokens").display().to_string(),
    ] {
        assert_eq!(r["read"][&p], "ENOENT", "{p}: {r}");
    }
    assert_eq!(s(&r, "connect_sock"), "ENOENT");
    assert!(
        log.contains("ten: isolation namespace: pid, mount"),
        "{log}"
    );
    // The data dir became the instance's, 0700.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&w.mine).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (uid, 0o700));
}

#[test]
fn sandbox_cannot_escape() {
    let Some(exe) = ready(Isolation::Sandbox) else {
        return;
    };
    let w = World::new("sandbox-escape");
    let (r, log) = escape(&exe, &w, Isolation::Sandbox, &[]);
    assert_ne!(r["uid"], 0);
    assert_eq!(s(&r, "cap_eff"), "0000000000000000");
    assert_eq!(s(&r, "cap_prm"), "0000000000000000");
    assert_eq!(s(&r, "cap_bnd"), "0000000000000000");
    assert_eq!(s(&r, "no_new_privs"), "1");
    assert_eq!(s(&r, "seccomp"), "2");
    for call in ["ptrace", "mount", "unshare", "bpf", "keyctl"] {
        assert_eq!(s(&r, call), "EPERM", "{call}: {r}");
    }
    for (p, v) in r["read"].as_object().unwrap() {
        assert_ne!(v, "ok", "read {p}: {r}");
    }
    assert_eq!(r["read"]["/etc/shadow"], "EACCES", "{r}");
    for (p, v) in r["write"].as_object().unwrap() {
        assert_ne!(v, "ok", "write {p}: {r}");
    }
    assert_eq!(s(&r, "write_data_dir"), "ok");
    assert_eq!(s(&r, "write_tmp"), "ok");
    assert_ne!(s(&r, "connect_sock"), "ok");
    assert_eq!(s(&r, "signal_host"), "ESRCH");
    assert!(log.contains("ten: isolation sandbox:"), "{log}");
    assert!(log.contains("landlock ABI"), "{log}");
    assert!(log.contains("seccomp:"), "{log}");
}

#[test]
fn network_none_has_no_way_out() {
    let Some(exe) = ready(Isolation::Sandbox) else {
        return;
    };
    let w = World::new("netnone");
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let argv = vec![
        "/usr/bin/python3".to_string(),
        "escape.py".to_string(),
        "--once".to_string(),
    ];
    let env = w.env(&[("ESCAPE_TCP", format!("127.0.0.1:{port}"))]);
    let wd = fixtures();
    let mut sp = spec(&w, Isolation::Sandbox, &argv, &env, &wd);
    sp.req.network_none = true;
    let (code, out, err) = run(&exe, &sp).unwrap();
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s(&r, "connect_tcp"), "ECONNREFUSED", "{r}");
    assert!(err.contains("network: lo only"), "{err}");
}

#[test]
fn a_failed_step_comes_back_by_name() {
    let Some(exe) = ready(Isolation::Namespace) else {
        return;
    };
    let w = World::new("failstep");
    // A workdir the instance's uid cannot enter.
    let locked = w.root.join("locked");
    std::fs::create_dir(&locked).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let argv = vec!["/bin/true".to_string()];
    let env = w.env(&[]);
    let sp = spec(&w, Isolation::Namespace, &argv, &env, &locked);
    match run(&exe, &sp) {
        Err(StartError::Launch(LaunchError::Step(f))) => {
            assert_eq!(f.step, Step::Workdir, "{f}");
            assert_eq!(f.errno, libc::EACCES, "{f}");
            assert!(f.detail.contains("locked"), "{f}");
        }
        other => panic!("{other:?}"),
    }
    // A missing program is found out before anything is cloned.
    let argv = vec!["/nonexistent/app".to_string()];
    let sp = spec(&w, Isolation::Namespace, &argv, &env, &w.root);
    assert!(matches!(run(&exe, &sp), Err(StartError::Program { .. })));
}

#[test]
fn init_forwards_sigterm_and_exits_with_the_app() {
    let Some(exe) = ready(Isolation::Namespace) else {
        return;
    };
    let w = World::new("forward");
    // A zombie-making shell: a background child it never waits for.
    let argv = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        "trap 'exit 7' TERM; (sleep 0 &); echo up; while :; do sleep 0.05; done".to_string(),
    ];
    let env = w.env(&[]);
    let sp = spec(&w, Isolation::Namespace, &argv, &env, &w.root);
    let l = plan::start(&exe, &sp, None, Cgroups::default()).unwrap();
    let mut out = std::fs::File::from(l.stdout);
    let mut buf = [0u8; 3];
    out.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"up\n");
    // Init, seen from here: in its own session, as the pgid the
    // supervisor signals.
    let stat = super::procfs::stat(l.pid).unwrap();
    assert_eq!(stat.pgrp as u32, l.pid);
    // And named so in `ps`, not after the zygote it was forked from.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", l.pid)).unwrap();
    assert!(cmdline.starts_with(b"ten\0__init\0"), "{cmdline:?}");
    rustix::process::pidfd_send_signal(&l.pidfd, rustix::process::Signal::TERM).unwrap();
    let st = rustix::process::waitid(
        rustix::process::WaitId::PidFd(l.pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED,
    )
    .unwrap()
    .unwrap();
    assert_eq!(st.exit_status(), Some(7));
}

#[test]
fn a_cgroup_the_init_cannot_be_moved_into_fails_the_start_by_name() {
    let Some(exe) = ready(Isolation::Namespace) else {
        return;
    };
    let w = World::new("nocgroup");
    let argv = vec!["/bin/true".to_string()];
    let env = w.env(&[]);
    let sp = spec(&w, Isolation::Namespace, &argv, &env, &w.root);
    let missing = w.root.join("no-such-cgroup/cgroup.procs");
    let procs = [std::ffi::CString::new(missing.display().to_string()).unwrap()];
    let cgroups = Cgroups {
        into: None,
        procs: &procs,
    };
    match plan::start(&exe, &sp, None, cgroups) {
        Err(StartError::Launch(LaunchError::Step(f))) => {
            assert_eq!(f.step, Step::Cgroup, "{f}");
            assert_eq!(f.errno, libc::ENOENT, "{f}");
            assert!(f.detail.contains("no-such-cgroup"), "{f}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_zygote_that_died_is_started_again() {
    let Some(exe) = ready(Isolation::Namespace) else {
        return;
    };
    let w = World::new("zygote");
    let argv = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        "exit 3".to_string(),
    ];
    let env = w.env(&[]);
    let sp = spec(&w, Isolation::Namespace, &argv, &env, &w.root);
    assert_eq!(run(&exe, &sp).unwrap().0, 3);
    // Killed between two starts (no other test's start is under way
    // meanwhile); its socket closed, the next start starts another.
    let first = super::zygote::kill(&exe).expect("a zygote runs");
    assert_eq!(run(&exe, &sp).unwrap().0, 3);
    let second = super::zygote::kill(&exe).expect("a zygote runs");
    assert_ne!(first, second);
}

#[test]
fn a_plan_larger_than_a_pipe_still_reaches_init() {
    let Some(exe) = ready(Isolation::Namespace) else {
        return;
    };
    let w = World::new("bigplan");
    // 1 MiB of environment: several MiB of plan, more than a pipe holds
    // (pipe-max-size is 1 MiB by default), so it is written while init
    // reads it.
    let big: Vec<(String, String)> = (0..8)
        .map(|i| (format!("BIG{i}"), "x".repeat(128 * 1024 - 16)))
        .collect();
    let extra: Vec<(&str, String)> = big.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let env = w.env(&extra);
    let argv = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        "echo ${#BIG7}".to_string(),
    ];
    let sp = spec(&w, Isolation::Namespace, &argv, &env, &w.root);
    let (code, out, err) = run(&exe, &sp).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        (code, out.trim()),
        (0, (128 * 1024 - 16).to_string().as_str()),
        "{err}"
    );
}
