//! A hostile tenant against each level, through `ten serve` as root: the
//! escape app (tests/fixtures/escape.py) runs as two instances of one
//! service and tries, with real syscalls, what an attacker would: io_uring,
//! terminal ioctls, personality, ptrace and process_vm_readv of another
//! instance and of the server, /proc and /sys, the server's session
//! keyring, a setuid-root program, abstract Unix sockets of another
//! instance and of the host, inherited fds and the umask. Each test says
//! what its level guarantees and checks it; what a level does not protect
//! is checked where the README says so, to keep that table honest. Needs
//! root (and landlock and seccomp for the sandbox); skips are loud and fail
//! under TEN_TEST_STRICT=1.

mod raw;
mod util;

use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use util::*;

/// KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING.
const JOIN_SESSION: libc::c_long = 1;
const GET_KEYRING_ID: libc::c_long = 0;
const SESSION: libc::c_long = -3;

fn ready(sandbox: bool) -> bool {
    if !root_for("escape tests") {
        return false;
    }
    if !std::path::Path::new("/usr/bin/python3").exists() {
        return skip("/usr/bin/python3 is needed inside the instance");
    }
    if sandbox && landlock_abi() < 1 {
        return skip("landlock is not enabled in this kernel");
    }
    true
}

/// The kernel's landlock ABI (0 without landlock).
fn landlock_abi() -> i64 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    // reads no memory.
    let v = unsafe { libc::syscall(444, std::ptr::null::<u8>(), 0usize, 1u32) };
    v.max(0)
}

/// Gives the calling thread (the one that starts `ten serve`, which
/// inherits it) a session keyring of its own holding a key named `desc`,
/// as a service manager gives a service one; returns the keyring's id.
fn session_keyring_with(desc: &str) -> i64 {
    // SAFETY: a null name asks for a new anonymous session keyring.
    let ring = unsafe { libc::syscall(libc::SYS_keyctl, JOIN_SESSION, 0usize) };
    assert!(
        ring > 0,
        "join a session keyring: {}",
        std::io::Error::last_os_error()
    );
    let desc = std::ffi::CString::new(desc).unwrap();
    let payload = b"the server's secret";
    // SAFETY: type and description are NUL-terminated, the payload is
    // `payload.len()` readable bytes; all live across the call.
    let key = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            desc.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            SESSION,
        )
    };
    assert!(key > 0, "add_key: {}", std::io::Error::last_os_error());
    // SAFETY: integer arguments only.
    unsafe { libc::syscall(libc::SYS_keyctl, GET_KEYRING_ID, SESSION, 0) }
}

/// A SysV shared memory segment of the host's, open to everyone (0666),
/// removed on drop.
struct HostShm {
    key: i32,
    id: i32,
}

impl HostShm {
    /// A key of its own for each `name` (tests run in parallel).
    fn new(name: &str) -> HostShm {
        let tag = name.bytes().fold(std::process::id(), |h, b| {
            h.wrapping_mul(31).wrapping_add(u32::from(b))
        });
        let key = 0x1e5c_0000 | (tag & 0xffff) as i32;
        // SAFETY: shmget with integer arguments.
        let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o666) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        HostShm { key, id }
    }

    /// Whether the segment is still there for the host.
    fn exists(&self) -> bool {
        // SAFETY: shmget with integer arguments; no segment is created.
        unsafe { libc::shmget(self.key, 0, 0) == self.id }
    }
}

impl Drop for HostShm {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no buffer.
        unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// A setuid-root copy of `id` in a folder of its own (on the host's root
/// file system, which allows setuid), checked to really make its caller
/// root on the host: inside an instance it must not.
struct SuidId {
    dir: PathBuf,
}

impl SuidId {
    fn new(name: &str) -> SuidId {
        use std::os::unix::fs::PermissionsExt;
        let dir = PathBuf::from(format!("/tmp/ten-suid-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy("/usr/bin/id", dir.join("id")).unwrap();
        std::fs::set_permissions(dir.join("id"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        SuidId { dir }
    }

    fn program(&self) -> PathBuf {
        self.dir.join("id")
    }

    /// What the copy says the effective uid is when uid 65534 runs it.
    fn euid_on_host(&self) -> String {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(self.program())
            .arg("-u")
            .output()
            .unwrap();
        stdout(&out).trim().to_string()
    }
}

impl Drop for SuidId {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one escape test sets up: a server with service `esc` (instances
/// `a` and `b`) at `level`, a key in the server's session keyring, an
/// abstract socket of the host's, and a setuid-root program in
/// `read_paths`.
struct Attack {
    server: Server,
    key: String,
    host_keyring: i64,
    host_abstract: String,
    _host_listener: UnixListener,
    _suid: SuidId,
    shm: HostShm,
}

impl Attack {
    fn start(name: &str, level: &str, extra: &str) -> Attack {
        use std::os::linux::net::SocketAddrExt;
        let pid = std::process::id();
        let key = format!("ten-escape-{name}-{pid}");
        let host_keyring = session_keyring_with(&key);
        let host_abstract = format!("ten-escape-host-{name}-{pid}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&host_abstract).unwrap();
        let host_listener = UnixListener::bind_addr(&addr).unwrap();
        let suid = SuidId::new(name);
        let shm = HostShm::new(name);
        if !tools_present(&["setpriv"]) {
            panic!("setpriv is needed to check the setuid program on the host");
        }
        // The copy does make uid 65534 root on the host: the guarantee
        // below is the level's, not the file system's.
        assert_eq!(suid.euid_on_host(), "0");
        let config = format!(
            "{}[service.esc]\ncommand = \"/usr/bin/python3\"\nargs = [\"-u\", \"escape.py\"]\n\
             workdir = {}\nisolation = \"{level}\"\nread_paths = [{}]\n{extra}\n\n\
             [service.esc.env]\nESCAPE_KEY = \"{key}\"\nESCAPE_SUID = {}\nESCAPE_SIBLINGS = \"b\"\n\
             ESCAPE_SHM_KEY = \"{}\"\n\
             ESCAPE_ABSTRACT_BIND = \"ten-escape-{name}-{pid}-{{id}}\"\n\
             ESCAPE_ABSTRACT = \"ten-escape-{name}-{pid}-a:ten-escape-{name}-{pid}-b:{host_abstract}\"\n",
            settings(""),
            toml_str(&fixture("")),
            toml_str(&suid.dir),
            toml_str(&suid.program()),
            shm.key,
        );
        let server = Server::start(name, &config);
        server.ten_ok(&["spawn", "esc:b", "--wait"]);
        std::fs::write(server.instance_dir("esc", "b").join("secret"), "b's").unwrap();
        server.ten_ok(&["spawn", "esc:a", "--wait"]);
        Attack {
            server,
            key,
            host_keyring,
            host_abstract,
            _host_listener: host_listener,
            _suid: suid,
            shm,
        }
    }

    /// `esc:a`'s report, having also tried `esc:b`'s process and the
    /// server's by their pids on the host.
    fn report(&self) -> Value {
        let b = self.server.wait_running("esc:b")["pid"].as_u64().unwrap();
        let me = self.server.pid().unwrap();
        let r = self
            .server
            .echo("a.esc.localhost", &format!("/?pid={b}&pid={me}"));
        eprintln!("{r}");
        // What the app could not find was there all along.
        assert!(self.shm.exists());
        r
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Other instances and the server are not there to signal, trace, read
/// or enter (another pid namespace; the sandbox's seccomp answers ptrace
/// and process_vm_readv before any lookup).
fn assert_no_other_process(r: &Value, sandbox: bool) {
    let pids = r["pids"].as_object().unwrap();
    assert_eq!(pids.len(), 2, "{r}");
    let gone = if sandbox { "EPERM" } else { "ESRCH" };
    for (pid, p) in pids {
        assert_eq!(s(&p["signal"]), "ESRCH", "kill {pid}: {r}");
        assert_eq!(s(&p["ptrace_attach"]), gone, "ptrace {pid}: {r}");
        assert_eq!(
            s(&p["process_vm_readv"]),
            gone,
            "process_vm_readv {pid}: {r}"
        );
        assert_eq!(s(&p["proc_root"]), "ENOENT", "/proc/{pid}/root: {r}");
        assert_eq!(s(&p["proc_environ"]), "ENOENT", "/proc/{pid}/environ: {r}");
    }
}

/// What every namespaced level guarantees, sandbox or not.
fn assert_namespaced(a: &Attack, r: &Value, sandbox: bool) {
    // Its own abstract socket it reaches, whatever is scoped.
    let own = format!("ten-escape-{}-{}-a", a.server.name, std::process::id());
    assert_eq!(s(&r["abstract"][own.as_str()]), "ok", "{r}");
    assert_no_other_process(r, sandbox);
    // Another instance's data dir, tenement's tokens, state, logs and
    // ten.sock are not there: inside, tenement's data dir holds only the
    // way to its own data dir and its own socket folder (`.tenement/run`).
    let n = r["neighbours"]["tries"].as_object().unwrap();
    assert_eq!(n.len(), 7, "{r}");
    for (what, v) in n {
        assert_ne!(v, "ok", "{what}: {r}");
    }
    let listings = &r["neighbours"]["listings"];
    assert_eq!(listings["service_dir"], serde_json::json!(["a"]), "{r}");
    assert_eq!(
        listings["data_dir"],
        serde_json::json!([".tenement", "esc"]),
        "{r}"
    );
    assert_eq!(listings[".tenement"], serde_json::json!(["run"]), "{r}");
    assert!(a.server.instance_dir("esc", "b").join("secret").exists());
    // No terminal to inject keystrokes into: none inherited, none to open.
    assert_eq!(s(&r["tty"]["dev_tty"]), "ENXIO", "{r}");
    assert_eq!(
        r["tty"]["std_is_tty"],
        serde_json::json!([false, false, false]),
        "{r}"
    );
    // Every mount of its root is nosuid: a setuid-root program runs as
    // the instance's uid.
    let euid = s(&r["suid_euid"]);
    assert_eq!(euid, s(&r["uid"]), "{r}");
    // Its own session keyring: not the server's, whose key stays out of
    // reach.
    assert_ne!(r["keyring"]["session"], a.host_keyring, "{r}");
    assert_ne!(s(&r["keyring"]["search"]), "ok", "{}: {r}", a.key);
    // No /sys, no cgroup file system to mount, and its own cgroup is the
    // root of its cgroup namespace: no way to a parent's cgroup.procs.
    assert_eq!(r["sys_cgroup"], false, "{r}");
    assert_eq!(s(&r["mount_cgroup"]), "EPERM", "{r}");
    let v2 = r["proc_cgroup"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| s(l).starts_with("0::"));
    assert!(v2.is_none_or(|l| l == "0::/"), "{r}");
    for (p, v) in r["write_proc"].as_object().unwrap() {
        assert_ne!(v, "ok", "write {p}: {r}");
    }
    // Its own IPC namespace: the host's SysV segment is not there.
    assert_eq!(s(&r["sysv_shm"]), "ENOENT", "{r}");
    // Nothing of the server's beyond stdin, stdout and stderr; files it
    // creates are not world-readable.
    assert_eq!(r["start_fds"], serde_json::json!([0, 1, 2]), "{r}");
    assert_eq!(r["umask"], 0o027, "{r}");
}

/// No setuid or setgid file can be made in the data dir, by chmod,
/// fchmod, open with O_CREAT or mknod, while plain files still can.
fn assert_no_set_id_files(r: &Value) {
    let tries = r["set_id_files"].as_object().unwrap();
    assert_eq!(tries.len(), 4, "{r}");
    for (how, v) in tries {
        assert_eq!(v, "EPERM", "{how}: {r}");
    }
    assert_eq!(s(&r["write_data_dir"]), "ok", "{r}");
}

#[test]
fn sandbox_holds_against_a_hostile_tenant() {
    if !ready(true) {
        return;
    }
    let a = Attack::start("esc_sandbox", "sandbox", "");
    let r = a.report();
    assert_namespaced(&a, &r, true);
    // io_uring would run the calls seccomp refuses, unfiltered.
    for call in ["setup", "enter", "register"] {
        assert_eq!(s(&r["io_uring"][call]), "EPERM", "io_uring_{call}: {r}");
    }
    // Terminal injection is refused on any fd, whatever the upper bits.
    for call in ["tiocsti", "tioclinux", "tiocsti_high"] {
        assert_eq!(s(&r["ioctl"][call]), "EPERM", "{call}: {r}");
    }
    // personality: asking is fine, turning off address randomisation not.
    assert_eq!(s(&r["personality"]["query"]), "ok", "{r}");
    assert_eq!(s(&r["personality"]["addr_no_randomize"]), "EPERM", "{r}");
    assert_eq!(s(&r["ptrace"]), "EPERM", "{r}");
    assert_eq!(s(&r["pidfd_getfd"]), "EPERM", "{r}");
    assert_no_set_id_files(&r);
    // Landlock ABI 6 scopes: no abstract socket made outside the
    // instance's own domain, neither another instance's nor the host's.
    let logs = stdout(&a.server.ten_ok(&["logs", "esc:a"]));
    if landlock_abi() >= 6 {
        let b = format!("ten-escape-esc_sandbox-{}-b", std::process::id());
        for name in [b.as_str(), a.host_abstract.as_str()] {
            assert_eq!(s(&r["abstract"][name]), "EPERM", "{name}: {r}");
        }
        assert!(
            logs.contains("signals and abstract unix sockets scoped"),
            "{logs}"
        );
    } else {
        assert!(
            logs.contains("signals and abstract unix sockets not scoped"),
            "{logs}"
        );
    }
    assert!(logs.contains("io_uring"), "{logs}");
}

#[test]
fn sandbox_as_root_is_still_held() {
    if !ready(true) {
        return;
    }
    let a = Attack::start("esc_sandbox_root", "sandbox", "user = \"root\"");
    let r = a.report();
    assert_eq!(r["uid"], 0, "{r}");
    for f in ["cap_eff", "cap_prm", "cap_bnd"] {
        assert_eq!(s(&r[f]), "0000000000000000", "{f}: {r}");
    }
    // uid 0 without capabilities still owns root's files: landlock keeps
    // /proc/sys and /proc/sysrq-trigger read-only.
    assert_namespaced(&a, &r, true);
    assert_eq!(s(&r["io_uring"]["setup"]), "EPERM", "{r}");
    // As root it owns what it writes: a setuid-root file left in its data
    // dir would make whoever runs it on the host root.
    assert_no_set_id_files(&r);
}

#[test]
fn namespace_holds_what_it_promises_and_no_more() {
    if !ready(false) {
        return;
    }
    let a = Attack::start("esc_namespace", "namespace", "");
    let r = a.report();
    assert_ne!(r["uid"], 0, "{r}");
    assert_namespaced(&a, &r, false);
    // It shares the host's network, but where the kernel can scope them
    // (landlock ABI 6), no abstract Unix socket outside the instance is
    // reachable; the log says which.
    let b = format!("ten-escape-esc_namespace-{}-b", std::process::id());
    let logs = stdout(&a.server.ten_ok(&["logs", "esc:a"]));
    let want = if landlock_abi() >= 6 {
        assert!(
            logs.contains("signals and abstract unix sockets scoped"),
            "{logs}"
        );
        "EPERM"
    } else {
        assert!(
            logs.contains("signals and abstract unix sockets not scoped"),
            "{logs}"
        );
        "ok"
    };
    for name in [b.as_str(), a.host_abstract.as_str()] {
        assert_eq!(s(&r["abstract"][name]), want, "{name}: {r}");
    }
    // Nor does it keep setuid and setgid bits off the files it makes (of
    // its own uid and gid, in its 0700 data dir).
    assert_eq!(s(&r["set_id_files"]["chmod"]), "ok", "{r}");
}

#[test]
fn process_level_closes_inherited_fds_and_sets_umask() {
    if !root_for("escape tests") {
        return;
    }
    let key = format!("ten-escape-esc_process-{}", std::process::id());
    session_keyring_with(&key);
    let env = format!("\n[service.{{}}.env]\nESCAPE_KEY = \"{key}\"\n");
    let config = format!(
        "{}{}{}{}{}{}{}",
        settings(""),
        py_service("plain", "escape.py", "isolation = \"process\""),
        env.replace("{}", "plain"),
        py_service(
            "activated",
            "escape.py",
            "isolation = \"process\"\nsocket_activation = true"
        ),
        env.replace("{}", "activated"),
        py_service(
            "owned",
            "escape.py",
            "isolation = \"process\"\nuser = 300123"
        ),
        env.replace("{}", "owned"),
    );
    let server = Server::start("esc_process", &config);
    for svc in ["plain", "activated", "owned"] {
        server.ten_ok(&["spawn", &format!("{svc}:a"), "--wait"]);
    }
    let r = server.echo("a.plain.localhost", "/");
    assert_eq!(r["start_fds"], serde_json::json!([0, 1, 2]), "{r}");
    assert_eq!(r["umask"], 0o027, "{r}");
    // What the README says this level does not protect: the server's
    // own user shares the server's session keyring.
    assert_eq!(s(&r["keyring"]["search"]), "ok", "{r}");
    let r = server.echo("a.activated.localhost", "/");
    assert_eq!(r["start_fds"], serde_json::json!([0, 1, 2, 3]), "{r}");
    assert_eq!(r["umask"], 0o027, "{r}");
    // With `user`, another uid and a keyring of its own, and the server
    // (root) beyond its signals and ptrace.
    let me = server.pid().unwrap();
    let r = server.echo("a.owned.localhost", &format!("/?pid={me}"));
    assert_eq!(r["uid"], 300_123, "{r}");
    let p = &r["pids"][me.to_string()];
    assert_eq!(s(&p["signal"]), "EPERM", "{r}");
    assert_eq!(s(&p["ptrace_attach"]), "EPERM", "{r}");
    assert_eq!(s(&p["proc_environ"]), "EACCES", "{r}");
    assert_ne!(s(&r["keyring"]["search"]), "ok", "{r}");
    assert_eq!(r["start_fds"], serde_json::json!([0, 1, 2]), "{r}");
}

/// A namespaced app listening on `SOCKET_PATH` owns the folder its socket
/// is in (the host's `.tenement/run/{service}.{id}.sock.d`). Replacing its
/// socket by a symlink to a host socket (here `ten.sock`, which drives the
/// whole API) must not make tenement, as root, carry its requests there.
#[test]
fn a_tenant_cannot_point_its_socket_at_a_host_socket() {
    if !ready(false) {
        return;
    }
    let config = format!(
        "{}[service.esc]\ncommand = \"/usr/bin/python3\"\nargs = [\"-u\", \"escape.py\"]\n\
         workdir = {}\nisolation = \"namespace\"\nhealth = \"/health\"\n\n\
         [service.esc.env]\nESCAPE_UNIX = \"1\"\n",
        settings(""),
        toml_str(&fixture("")),
    );
    let server = Server::start("esc_socket_swap", &config);
    server.ten_ok(&["spawn", "esc:a", "--wait"]);
    let before = server.http("GET", "a.esc.localhost", "/api/instances", &[], b"");
    assert_eq!(before.status, 200, "{}", before.text());
    assert!(before.json()["uid"].is_number(), "{}", before.text());
    let ten_sock = server.data_dir.join(".tenement/ten.sock");
    let swap = server.http(
        "GET",
        "a.esc.localhost",
        &format!("/swap?to={}", ten_sock.display()),
        &[],
        b"",
    );
    assert_eq!(swap.status, 200, "{}", swap.text());
    for _ in 0..3 {
        let r = server.http("GET", "a.esc.localhost", "/api/instances", &[], b"");
        let text = r.text();
        assert!(
            !text.contains("\"esc:a\""),
            "the instance's host reached ten.sock: {} {text}\n{}",
            r.status,
            server.log()
        );
        assert_eq!(r.status, 502, "{text}\n{}", server.log());
    }
    let planted = server
        .data_dir
        .join(".tenement/run/esc.a.sock.d/esc.a.sock");
    let said = format!("{} is a link made by uid", planted.display());
    assert!(server.log().contains(&said), "{}", server.log());
}

/// A TLS private key next to the app (here in its workdir), readable by
/// everyone as keys sometimes are: no namespaced instance reads it, at
/// either level; /dev/null stands in its place, as for the config.
#[test]
fn tls_keys_the_config_names_are_hidden_from_namespaced_instances() {
    use std::os::unix::fs::PermissionsExt;
    if !ready(true) {
        return;
    }
    let Some(pki) = raw::pki::Pki::new("esc_tls_keys") else {
        return;
    };
    pki.ca("ca");
    let (cert, key) = pki.leaf("ca", "site", &["localhost"], raw::pki::Key::P256Sec1);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&pki.dir.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let key_len = std::fs::read(&key).unwrap().len();
    let cert_len = std::fs::read(&cert).unwrap().len();
    let service = |name: &str, level: &str| {
        format!(
            "[service.{name}]\ncommand = \"/usr/bin/python3\"\nargs = [\"-u\", {}]\n\
             workdir = {}\nisolation = \"{level}\"\n\n[service.{name}.env]\n\
             ESCAPE_SECRETS = \"{}:{}\"\n",
            toml_str(&fixture("escape.py")),
            toml_str(&pki.dir.root),
            key.display(),
            cert.display(),
        )
    };
    let config = format!(
        "{}{}{}",
        settings(&format!(
            "[settings.tls]\nhttps_listen = \"127.0.0.1:0\"\ncert = {}\nkey = {}\n",
            toml_str(&cert),
            toml_str(&key)
        )),
        service("ns", "namespace"),
        service("sbx", "sandbox"),
    );
    let server = Server::start("esc_tls_keys", &config);
    for svc in ["ns", "sbx"] {
        server.ten_ok(&["spawn", &format!("{svc}:a"), "--wait"]);
        let r = server.echo(&format!("a.{svc}.localhost"), "/");
        let got = &r["secrets"][key.display().to_string()];
        assert_eq!(*got, 0, "{svc} read the key ({key_len} bytes)? {r}");
        // The certificate beside it is public: read whole, so the key was
        // within reach but for the hiding.
        assert_eq!(r["secrets"][cert.display().to_string()], cert_len, "{r}");
    }
}
