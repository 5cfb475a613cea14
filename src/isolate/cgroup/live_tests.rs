//! Tests against the machine's real cgroup hierarchies, as root: limits hold,
//! a memory hog is OOM-killed and noticed, a fork bomb stops at `pids_max`,
//! every kill method takes a double-forked `setsid` child, nothing is left.
//! Each test creates its own tenement cgroup and removes it. Without root or
//! without a usable hierarchy they skip loudly; `TEN_TEST_STRICT=1` turns a
//! skip into a failure.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn skip(why: &str) -> Option<Layout> {
    if std::env::var_os("TEN_TEST_STRICT").is_some_and(|v| v == "1") {
        panic!("TEN_TEST_STRICT=1 and {why}");
    }
    eprintln!("skip: {why}");
    None
}

/// The machine's layout, or a loud skip.
fn require_cgroups() -> Option<Layout> {
    if !rustix::process::geteuid().is_root() {
        return skip("cgroup tests need root");
    }
    match Layout::detect() {
        Ok(l) if l.v2.is_some() || !l.v1.is_empty() => Some(l),
        Ok(_) => skip("no cgroup hierarchy is mounted"),
        Err(e) => skip(&format!("cannot detect cgroups: {}", error_chain(&e))),
    }
}

/// A tenement cgroup of the test's own, removed on drop.
struct TestTree(Tree);

impl TestTree {
    fn new(layout: &Layout) -> TestTree {
        let name = format!(
            "ten-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        TestTree(Tree::create(layout, &name).expect("create the test's cgroup"))
    }
}

impl Drop for TestTree {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove() {
            eprintln!("leftover test cgroup: {e}");
        }
    }
}

/// A process the tests started through the `process` level's spawn path.
struct Started {
    pid: u32,
    child: crate::isolate::Child,
    stdout: Option<std::fs::File>,
}

impl Started {
    fn id(&self) -> u32 {
        self.pid
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait()
    }
}

/// Starts `argv` inside the instance's cgroup as the spawn path does:
/// created in its v2 cgroup when it was made anew, entering the rest by
/// itself before it execs.
fn spawn_in(join: &Join, argv: &[&str]) -> Started {
    let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
    let env = vec![("PATH".into(), std::env::var_os("PATH").unwrap_or_default())];
    let s = crate::isolate::process::spawn(&argv, Path::new("/"), &env, None, Some(join), None)
        .expect("spawn in cgroup");
    Started {
        pid: s.pid,
        child: s.child,
        stdout: s.stdout.map(std::fs::File::from),
    }
}

/// Whether `pid` is a live process (a zombie is dead: it only waits for its
/// parent to collect it).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| orphans_state(&s))
        .is_some_and(|c| c != 'Z' && c != 'X')
}

fn orphans_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

fn scratch_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "ten-cgroup-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ))
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn a_child_enters_before_exec_limits_hold_stats_read_and_cleanup_is_complete() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    let tree = TestTree::new(&layout);
    eprintln!("cgroups: {}", tree.0.describe());
    let limits = Limits::new(Some(64), Some(512), Some(16));
    let inst = tree.0.instance("svc@limits", &limits).unwrap();
    let mut child = spawn_in(&inst.join().unwrap(), &["sleep", "30"]);
    let pid = child.id();
    assert_eq!(inst.pids(), vec![pid]);
    // It is in the instance's cgroup in every hierarchy in use.
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(
        own.lines().filter(|l| l.ends_with("/svc@limits")).count(),
        inst.dirs().count(),
        "{own}"
    );
    for (c, v1_file, v2_file, v1_want, v2_want) in [
        (
            Controller::Memory,
            "memory.limit_in_bytes",
            "memory.max",
            "67108864",
            "67108864",
        ),
        (Controller::Cpu, "cpu.shares", "cpu.weight", "512", "50"),
        (Controller::Pids, "pids.max", "pids.max", "16", "16"),
    ] {
        match inst.place(c) {
            Some((Version::V1, d)) => assert_eq!(read_trim(&d.join(v1_file)), v1_want),
            Some((Version::V2, d)) => assert_eq!(read_trim(&d.join(v2_file)), v2_want),
            None => panic!("{} has no hierarchy: {}", c.name(), tree.0.describe()),
        }
    }
    let stats = inst.stats();
    assert!(stats.memory_bytes.is_some_and(|b| b > 0), "{stats:?}");
    assert!(stats.cpu.is_some(), "{stats:?}");
    assert!(inst.kill_and_wait(KILL_WAIT));
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    inst.remove().unwrap();
    for d in inst.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    let dirs: Vec<PathBuf> = tree.0.dirs().map(Path::to_path_buf).collect();
    drop(tree);
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn a_memory_hog_is_oom_killed_at_its_limit_and_noticed() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    let tree = TestTree::new(&layout);
    if tree.0.version_of(Controller::Memory).is_none() {
        skip("no memory controller");
        return;
    }
    let mut inst = tree
        .0
        .instance("svc@hog", &Limits::new(Some(32), None, None))
        .unwrap();
    assert_eq!(inst.take_oom_kills(), Some(0));
    // Each step allocates and touches 1 MiB, then prints the total.
    let hog = "import sys\nb=[]\nwhile True:\n    b.append(b'x' * (1 << 20))\n    print(len(b), flush=True)\n";
    let mut child = spawn_in(&inst.join().unwrap(), &["python3", "-c", hog]);
    let out = {
        use std::io::Read;
        let mut s = String::new();
        child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "hog output: {out}");
    let last: u64 = out.lines().last().and_then(|l| l.parse().ok()).unwrap_or(0);
    assert!(last < 32, "the hog held {last} MiB under a 32 MiB limit");
    assert!(inst.take_oom_kills().is_some_and(|n| n >= 1));
    assert_eq!(inst.take_oom_kills(), Some(0));
    inst.kill_and_wait(KILL_WAIT);
    inst.remove().unwrap();
}

#[test]
fn a_fork_bomb_stops_at_pids_max() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    let tree = TestTree::new(&layout);
    if tree.0.version_of(Controller::Pids).is_none() {
        skip("no pids controller");
        return;
    }
    let inst = tree
        .0
        .instance("svc@bomb", &Limits::new(None, None, Some(16)))
        .unwrap();
    // Forks 100 sleepers and reports how many forks the kernel allowed.
    let bomb = "import os, time\nn = 0\nfor _ in range(100):\n    try:\n        pid = os.fork()\n    except OSError:\n        continue\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n    n += 1\nprint(n, flush=True)\ntime.sleep(60)\n";
    let mut child = spawn_in(&inst.join().unwrap(), &["python3", "-c", bomb]);
    let mut line = String::new();
    {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
        r.read_line(&mut line).unwrap();
    }
    // python itself is one of the 16.
    assert_eq!(line.trim(), "15");
    assert_eq!(inst.pids().len(), 16);
    assert!(inst.kill_and_wait(KILL_WAIT));
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    inst.remove().unwrap();
}

/// Starts a shell that double-forks a `setsid` sleeper (which writes its
/// pid to a file) and keeps forking more sleepers, then kills the cgroup
/// and checks that nothing is left, the escaped grandchild included.
/// `force`: kill this way instead of the tree's own choice (a fallback the
/// kernel would only choose on an older version).
fn kill_takes_everything(layout: &Layout, want: KillMethod, force: bool) {
    let tree = TestTree::new(layout);
    if !force {
        assert_eq!(tree.0.kill_method(), want, "{}", tree.0.describe());
    }
    let inst = tree.0.instance("svc@escape", &Limits::default()).unwrap();
    let file = scratch_file("grandchild");
    let script = format!(
        "(setsid sh -c 'echo $$ > {f}.tmp; mv {f}.tmp {f}; exec sleep 300' &); while true; do sleep 300 & sleep 0.01; done",
        f = file.display()
    );
    let mut child = spawn_in(&inst.join().unwrap(), &["sh", "-c", &script]);
    assert!(wait_until(Duration::from_secs(10), || file.exists()));
    let grandchild: u32 = read_trim(&file).parse().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(alive(grandchild));
    // Its own session: a process-group kill of the shell would miss it.
    let sid = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap();
    let sid: u32 = sid[sid.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sid, grandchild);
    assert!(wait_until(Duration::from_secs(5), || inst.pids().len() > 3));
    assert!(inst.pids().contains(&grandchild));
    assert!(
        inst.kill_and_wait_with(KILL_WAIT, want),
        "{want}: left {:?}",
        inst.pids()
    );
    assert!(!inst.populated());
    assert!(wait_until(Duration::from_secs(5), || !alive(grandchild)));
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    inst.remove().unwrap();
}

#[test]
fn cgroup_kill_takes_a_double_forked_setsid_child() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    if layout.v2.is_none() {
        skip("no cgroup v2 hierarchy for cgroup.kill");
        return;
    }
    kill_takes_everything(&layout, KillMethod::V2Kill, false);
}

/// Before Linux 5.14 there is no `cgroup.kill`: v2 freezes, kills, thaws.
#[test]
fn v2_freeze_kill_takes_a_double_forked_setsid_child() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    if layout.v2.is_none() {
        skip("no cgroup v2 hierarchy");
        return;
    }
    kill_takes_everything(&layout, KillMethod::Freeze(Version::V2), true);
}

#[test]
fn v1_freezer_kill_takes_a_double_forked_setsid_child() {
    let Some(mut layout) = require_cgroups() else {
        return;
    };
    layout.v2 = None;
    if layout.v1_with("freezer").is_none() {
        skip("no v1 freezer hierarchy");
        return;
    }
    kill_takes_everything(&layout, KillMethod::Freeze(Version::V1), false);
}

#[test]
fn v1_repeated_kill_without_freezer_takes_a_double_forked_setsid_child() {
    let Some(mut layout) = require_cgroups() else {
        return;
    };
    layout.v2 = None;
    layout.v1.retain(|h| !h.has("freezer"));
    if layout.v1.is_empty() {
        skip("no v1 hierarchy");
        return;
    }
    kill_takes_everything(&layout, KillMethod::Repeat, false);
}

#[test]
fn v1_only_layout_puts_every_controller_on_v1() {
    let Some(mut layout) = require_cgroups() else {
        return;
    };
    layout.v2 = None;
    if layout.v1.is_empty() {
        skip("no v1 hierarchy");
        return;
    }
    let tree = TestTree::new(&layout);
    let mut inst = tree
        .0
        .instance("svc@v1", &Limits::new(Some(48), Some(256), Some(8)))
        .unwrap();
    let mut child = spawn_in(&inst.join().unwrap(), &["sleep", "30"]);
    assert_eq!(inst.pids(), vec![child.id()]);
    // CPU comes from cpuacct when there is no v2 directory.
    assert!(inst.stats().cpu.is_some() || layout.v1_with("cpuacct").is_none());
    assert_eq!(
        inst.take_oom_kills(),
        inst.place(Controller::Memory).map(|_| 0)
    );
    assert!(inst.join().unwrap().clone_into().is_none());
    assert!(inst.kill_and_wait(KILL_WAIT));
    let _ = child.wait();
    inst.remove().unwrap();
}

#[test]
fn a_reused_cgroup_is_emptied_and_sweep_clears_a_previous_run() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    let tree = TestTree::new(&layout);
    let inst = tree.0.instance("svc@old", &Limits::default()).unwrap();
    let mut old = spawn_in(&inst.join().unwrap(), &["sleep", "30"]);
    // The next start of the same instance finds the old process and kills it.
    let again = tree.0.instance("svc@old", &Limits::default()).unwrap();
    assert_eq!(old.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(again.pids().is_empty());
    let mut left = spawn_in(&again.join().unwrap(), &["sleep", "30"]);
    // A new server (same tree name) sweeps what the previous one left.
    let restarted = Tree::create(&layout, &tree.0.name).unwrap();
    assert_eq!(restarted.sweep(), vec!["svc@old".to_string()]);
    assert_eq!(left.wait().unwrap().signal(), Some(libc::SIGKILL));
    for d in again.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// The `process` level's child created with `CLONE_INTO_CGROUP` (where
/// the kernel has it) in the v2 cgroup, entering v1 itself. Twice, with a
/// kill through `cgroup.kill` between: the second child (a restart) lives.
#[test]
fn a_child_is_placed_in_its_cgroups_before_it_runs_again_after_a_kill() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    if layout.v2.is_none() {
        skip("no cgroup v2 hierarchy for CLONE_INTO_CGROUP");
        return;
    }
    let tree = TestTree::new(&layout);
    for round in 0..2 {
        let inst = tree.0.instance("svc@clone3", &Limits::default()).unwrap();
        let mut child = spawn_in(&inst.join().unwrap(), &["/bin/sleep", "30"]);
        let pid = child.id();
        assert!(procs(inst.v2.as_deref().unwrap()).unwrap().contains(&pid));
        assert!(
            wait_until(Duration::from_secs(5), || {
                std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.starts_with("/bin/sleep"))
            }),
            "round {round}: the child never ran /bin/sleep"
        );
        for d in &inst.v1 {
            assert!(procs(&d.dir).unwrap().contains(&pid), "{}", d.dir.display());
        }
        assert!(inst.kill_and_wait(KILL_WAIT));
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
    let inst = tree.0.adopt("svc@clone3", &Limits::default());
    inst.remove().unwrap();
}

/// A cgroup the child cannot enter fails the start, naming the file, and
/// nothing of it runs on.
#[test]
fn a_cgroup_the_child_cannot_enter_fails_the_start_naming_it() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    let tree = TestTree::new(&layout);
    let inst = tree.0.instance("svc@gone", &Limits::default()).unwrap();
    let join = inst.join().unwrap();
    let Some(file) = join
        .after_clone()
        .last()
        .map(|f| f.to_str().unwrap().to_string())
    else {
        skip("no cgroup the child enters by itself here");
        return;
    };
    std::fs::remove_dir(Path::new(&file).parent().unwrap()).unwrap();
    let argv = vec!["/bin/sleep".to_string(), "30".to_string()];
    let err = crate::isolate::process::spawn(&argv, Path::new("/"), &[], None, Some(&join), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("join the cgroup") && err.contains(&file),
        "{err}"
    );
    assert!(inst.pids().is_empty(), "{:?}", inst.pids());
    inst.remove().unwrap();
}

/// The limit files of `inst`, one per controller in use.
fn limit_values(inst: &Instance) -> Vec<String> {
    let mut values = Vec::new();
    for (c, v1_file, v2_file) in [
        (Controller::Memory, "memory.limit_in_bytes", "memory.max"),
        (Controller::Cpu, "cpu.shares", "cpu.weight"),
        (Controller::Pids, "pids.max", "pids.max"),
    ] {
        match inst.place(c) {
            Some((Version::V1, d)) => values.push(read_trim(&d.join(v1_file))),
            Some((Version::V2, d)) => values.push(read_trim(&d.join(v2_file))),
            None => {}
        }
    }
    values
}

/// A cgroup made for a start has the kernel's defaults where the start
/// sets no limit; one reused from a start with limits gets them back.
#[test]
fn a_reused_cgroup_loses_the_limits_of_the_start_before() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    let tree = TestTree::new(&layout);
    let fresh = tree.0.instance("svc@fresh", &Limits::default()).unwrap();
    let limits = Limits::new(Some(64), Some(512), Some(16));
    let limited = tree.0.instance("svc@relimit", &limits).unwrap();
    let defaults = limit_values(&fresh);
    assert!(!defaults.is_empty(), "{}", tree.0.describe());
    assert_ne!(limit_values(&limited), defaults);
    let again = tree.0.instance("svc@relimit", &Limits::default()).unwrap();
    assert_eq!(limit_values(&again), defaults);
    fresh.remove().unwrap();
    again.remove().unwrap();
}

/// A cgroup its process left empty is readied for the next start at once
/// (`prepare_next_start`), once, for the same limits only, with its limits
/// (a renewed v2 folder starts from the kernel's defaults; this checks the
/// limits come back where v2 has the controllers, and that v1 folders keep
/// theirs); the next child, created in its renewed v2 folder after a
/// `cgroup.kill` of the old one, runs. One with a process left in it is not
/// ready.
#[test]
fn an_emptied_cgroup_stands_ready_for_the_next_start() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    let tree = TestTree::new(&layout);
    // Every limit whose controller this machine offers.
    let offered = |c| tree.0.version_of(c).is_some();
    let limits = Limits::new(
        offered(Controller::Memory).then_some(64),
        offered(Controller::Cpu).then_some(512),
        offered(Controller::Pids).then_some(16),
    );
    let mut inst = tree.0.instance("svc@ready", &limits).unwrap();
    let wanted = limit_values(&inst);
    let mut first = spawn_in(&inst.join().unwrap(), &["/bin/sleep", "30"]);
    inst.prepare_next_start();
    assert!(!inst.take_ready(&limits), "a process is still in it");
    inst.kill();
    assert_eq!(first.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(wait_until(Duration::from_secs(5), || !inst.populated()));
    inst.prepare_next_start();
    assert!(!inst.take_ready(&Limits::new(Some(32), None, None)));
    inst.prepare_next_start();
    assert!(inst.take_ready(&limits));
    assert!(!inst.take_ready(&limits), "ready once only");
    assert_eq!(limit_values(&inst), wanted, "the readied cgroup's limits");
    let mut next = spawn_in(&inst.join().unwrap(), &["/bin/sleep", "30"]);
    let pid = next.id();
    assert!(
        wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with("/bin/sleep"))
        }),
        "the next child never ran /bin/sleep"
    );
    assert_eq!(inst.pids(), vec![pid]);
    assert!(inst.kill_and_wait(KILL_WAIT));
    assert_eq!(next.wait().unwrap().signal(), Some(libc::SIGKILL));
    inst.remove().unwrap();
}

/// Timing a move moves the calling thread into the cgroup it is already
/// in: it is timed, and the thread's cgroups are what they were.
#[test]
fn timing_a_move_leaves_the_thread_where_it_was() {
    let Some(layout) = require_cgroups() else {
        return;
    };
    if layout.v1.is_empty() {
        eprintln!("skip: no v1 hierarchy to time a move in");
        return;
    }
    let own = || std::fs::read_to_string("/proc/thread-self/cgroup").unwrap();
    let before = own();
    let took = layout.time_a_move();
    assert!(took.is_some(), "no move timed in {:?}", layout.v1[0].own);
    assert_eq!(own(), before);
}
