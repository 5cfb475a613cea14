//! Unit tests of the cgroup files, detection and decisions, against fake
//! directory trees and sample `/proc` texts.

use std::ffi::CString;

use super::tree::kernel_has_clone_into_cgroup;
use super::*;

const HYBRID_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n6:freezer:/\n4:memory:/process_api/13b9\n2:cpuacct:/\n1:cpu:/\n0::/\n";
const HYBRID_MOUNTS: &str = "\
25 20 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
28 25 0:25 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
29 25 0:26 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
30 25 0:27 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
31 25 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
32 25 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn hybrid_layout_finds_each_hierarchy_and_our_cgroup_in_it() {
    let l = Layout::parse(HYBRID_CGROUP, HYBRID_MOUNTS);
    let v2 = l.v2.as_ref().unwrap();
    assert_eq!(v2.mount, Path::new("/sys/fs/cgroup/unified"));
    assert_eq!(v2.own, Path::new("/sys/fs/cgroup/unified"));
    let mem = l.v1_with("memory").unwrap();
    assert_eq!(mem.own, Path::new("/sys/fs/cgroup/memory/process_api/13b9"));
    assert_eq!(
        l.v1_with("pids").unwrap().own,
        Path::new("/sys/fs/cgroup/pids")
    );
    assert_eq!(
        l.v1_with("cpuacct").unwrap().own,
        Path::new("/sys/fs/cgroup/cpuacct")
    );
    // name=systemd carries no controller and is not listed.
    assert_eq!(l.v1.len(), 5);
}

#[test]
fn comounted_cpu_and_cpuacct_are_one_hierarchy() {
    let cg = "3:cpu,cpuacct:/system.slice/ten.service\n";
    let mi = "30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
    let l = Layout::parse(cg, mi);
    assert_eq!(l.v1.len(), 1);
    let h = l.v1_with("cpuacct").unwrap();
    assert_eq!(h.controllers, ["cpu", "cpuacct"]);
    assert_eq!(
        h.own,
        Path::new("/sys/fs/cgroup/cpu,cpuacct/system.slice/ten.service")
    );
}

#[test]
fn unified_layout_under_systemd_is_our_service_cgroup() {
    let cg = "0::/system.slice/tenement.service\n";
    let mi = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
    let l = Layout::parse(cg, mi);
    assert!(l.v1.is_empty());
    assert_eq!(
        l.v2.unwrap().own,
        Path::new("/sys/fs/cgroup/system.slice/tenement.service")
    );
}

#[test]
fn a_mount_of_a_subtree_resolves_paths_below_its_root() {
    // A container that sees its own cgroup mounted at /sys/fs/cgroup.
    let cg = "0::/ctr/app\n";
    let mi = "40 30 0:31 /ctr /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    let l = Layout::parse(cg, mi);
    assert_eq!(l.v2.unwrap().own, Path::new("/sys/fs/cgroup/app"));
    // Our cgroup outside the mounted subtree: not usable.
    let l = Layout::parse("0::/elsewhere\n", mi);
    assert_eq!(l.v2, None);
}

#[test]
fn mount_points_with_escaped_spaces_are_decoded() {
    let mi = "40 30 0:31 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n";
    let l = Layout::parse("0::/\n", mi);
    assert_eq!(l.v2.unwrap().own, Path::new("/mnt/my cgroups"));
}

#[test]
fn cpuset_comounted_hierarchies_are_not_used() {
    let cg = "3:cpu,cpuset:/\n";
    let mi = "30 25 0:27 / /sys/fs/cgroup/cpu,cpuset rw - cgroup cgroup rw,cpu,cpuset\n";
    let l = Layout::parse(cg, mi);
    assert!(l.v1_with("cpu").is_none());
}

#[test]
fn fields_are_read_by_key() {
    let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
    assert_eq!(field(text, "oom_kill"), Some(3));
    assert_eq!(field(text, "oom"), None);
    assert_eq!(field("oom_kill x\n", "oom_kill"), None);
}

#[test]
fn tree_names_are_stable_and_distinct() {
    let a = tree_name(Path::new("/nonexistent/a"));
    assert_eq!(a, tree_name(Path::new("/nonexistent/a")));
    assert_ne!(a, tree_name(Path::new("/nonexistent/b")));
    assert!(a.starts_with("tenement-") && a.len() == "tenement-".len() + 12);
    assert_eq!(instance_name("notes", "alice"), "notes@alice");
}

#[test]
fn limits_convert_megabytes() {
    let l = Limits::new(Some(64), Some(512), Some(32));
    assert_eq!(l.memory_bytes, Some(64 << 20));
    assert_eq!(Limits::new(None, None, None), Limits::default());
}

/// A fake tree: directories with the interface files the kernel would
/// create, so `Tree`/`Instance` logic runs without root.
fn fake_instance(root: &Path, v2_controllers: Vec<Controller>, v1: &[&str]) -> Instance {
    let v2 = root.join("v2/tenement/svc@a");
    std::fs::create_dir_all(&v2).unwrap();
    for f in [
        "cgroup.procs",
        "cgroup.kill",
        "cgroup.events",
        "memory.max",
        "memory.swap.max",
        "memory.oom.group",
        "memory.events",
        "memory.current",
        "memory.stat",
        "cpu.weight",
        "cpu.stat",
        "pids.max",
    ] {
        std::fs::write(v2.join(f), "").unwrap();
    }
    let v1 = v1
        .iter()
        .map(|c| {
            let dir = root.join(format!("v1/{c}/tenement/svc@a"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in [
                "cgroup.procs",
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "cpu.shares",
                "pids.max",
            ] {
                std::fs::write(dir.join(f), "").unwrap();
            }
            V1Dir {
                controllers: vec![c.to_string()],
                dir,
            }
        })
        .collect();
    Instance {
        name: "svc@a".into(),
        v2: Some(v2),
        v2_controllers,
        v1,
        limits: Limits::new(Some(64), Some(2048), Some(20)),
        oom_seen: 0,
        oom_counter: None,
        fresh_v2: false,
        ready: false,
        clone_into: true,
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ten-cgroup-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn limits_go_to_v2_when_v2_has_every_controller() {
    let root = scratch("v2-all");
    let inst = fake_instance(&root, Controller::ALL.to_vec(), &[]);
    assert_eq!(inst.name(), "svc@a");
    assert_eq!(inst.limits().pids_max, Some(20));
    inst.apply_limits(false).unwrap();
    let v2 = inst.v2.clone().unwrap();
    let r = |f: &str| std::fs::read_to_string(v2.join(f)).unwrap();
    assert_eq!(r("memory.max"), (64u64 << 20).to_string());
    assert_eq!(r("memory.swap.max"), "0");
    assert_eq!(r("memory.oom.group"), "1");
    assert_eq!(r("cpu.weight"), "200");
    assert_eq!(r("pids.max"), "20");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn hybrid_limits_go_to_v1_and_kill_stays_on_v2() {
    let root = scratch("hybrid");
    let inst = fake_instance(&root, Vec::new(), &["memory", "cpu", "pids"]);
    inst.apply_limits(false).unwrap();
    let v1 = |c: &str, f: &str| {
        std::fs::read_to_string(root.join(format!("v1/{c}/tenement/svc@a/{f}"))).unwrap()
    };
    assert_eq!(
        v1("memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        v1("memory", "memory.memsw.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(v1("cpu", "cpu.shares"), "2048");
    assert_eq!(v1("pids", "pids.max"), "20");
    assert_eq!(
        std::fs::read_to_string(inst.v2.as_ref().unwrap().join("memory.max")).unwrap(),
        ""
    );
    assert_eq!(
        kill_method(inst.v2.as_deref(), &inst.v1),
        KillMethod::V2Kill
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn join_lists_every_procs_file_v2_first() {
    let root = scratch("join");
    let mut inst = fake_instance(&root, Vec::new(), &["memory", "pids"]);
    let names = |files: &[CString]| -> Vec<String> {
        files
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect()
    };
    // A v2 cgroup that cannot be removed (here: files in it, as a process
    // left in a real one) is kept: the child writes itself into all three.
    inst.renew_v2().unwrap();
    let join = inst.join().unwrap();
    assert!(join.clone_into().is_none());
    let files = names(join.files());
    assert_eq!(files.len(), 3);
    assert!(files[0].ends_with("v2/tenement/svc@a/cgroup.procs"));
    assert!(files[1].ends_with("v1/memory/tenement/svc@a/cgroup.procs"));
    assert_eq!(names(join.after_clone()), files);
    // Made anew: created inside v2 (CLONE_INTO_CGROUP), then into v1.
    let v2 = inst.v2.clone().unwrap();
    std::fs::remove_dir_all(&v2).unwrap();
    std::fs::create_dir(&v2).unwrap();
    inst.renew_v2().unwrap();
    assert!(v2.is_dir());
    let join = inst.join().unwrap();
    assert!(join.clone_into().is_some());
    assert_eq!(names(join.files()), files);
    assert_eq!(names(join.after_clone()), files[1..]);
    // A kernel without CLONE_INTO_CGROUP: the cgroup stays as it is and
    // the child writes itself into all three.
    inst.clone_into = false;
    std::fs::write(v2.join("marker"), "").unwrap();
    inst.renew_v2().unwrap();
    assert!(v2.join("marker").exists());
    let join = inst.join().unwrap();
    assert!(join.clone_into().is_none());
    assert_eq!(names(join.after_clone()), files);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn clone_into_cgroup_is_used_from_linux_5_7() {
    for (release, has) in [
        ("6.18.44-fc-v1045", true),
        ("5.7.0", true),
        ("5.15.0-91-generic", true),
        ("5.6.19", false),
        ("5.4.0-150-generic", false),
        ("4.19.0-26-amd64", false),
        ("10.0", true),
        ("garbage", false),
        ("6", false),
    ] {
        assert_eq!(kernel_has_clone_into_cgroup(release), has, "{release}");
    }
}

#[test]
fn oom_kills_are_reported_once() {
    let root = scratch("oom");
    let mut inst = fake_instance(&root, Controller::ALL.to_vec(), &[]);
    let events = inst.v2.clone().unwrap().join("memory.events");
    std::fs::write(
        &events,
        "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
    )
    .unwrap();
    assert_eq!(inst.take_oom_kills(), Some(1));
    assert_eq!(inst.take_oom_kills(), Some(0));
    std::fs::write(&events, "low 0\nhigh 0\nmax 30\noom 3\noom_kill 3\n").unwrap();
    assert_eq!(inst.take_oom_kills(), Some(2));
    let _ = std::fs::remove_dir_all(&root);
}

/// A v2 folder made anew counts OOM kills from 0: kills of the next run
/// are reported, not hidden behind the old folder's count.
#[test]
fn oom_kills_count_anew_in_a_renewed_v2_cgroup() {
    let root = scratch("oom-renew");
    let mut inst = fake_instance(&root, Controller::ALL.to_vec(), &[]);
    let v2 = inst.v2.clone().unwrap();
    std::fs::write(v2.join("memory.events"), "oom 4\noom_kill 4\n").unwrap();
    assert_eq!(inst.take_oom_kills(), Some(4));
    // The kernel removes an empty cgroup's files with it.
    std::fs::remove_dir_all(&v2).unwrap();
    std::fs::create_dir(&v2).unwrap();
    inst.renew_v2().unwrap();
    assert!(inst.fresh_v2);
    std::fs::write(v2.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
    assert_eq!(inst.take_oom_kills(), Some(1));
    let _ = std::fs::remove_dir_all(&root);
}

/// A cgroup is taken as ready only once its renewed v2 folder has its
/// limits: where they cannot be written, the next start makes it anew.
#[test]
fn a_cgroup_whose_limits_cannot_be_written_is_not_ready() {
    let root = scratch("ready-limits");
    let mut inst = fake_instance(&root, Controller::ALL.to_vec(), &[]);
    let v2 = inst.v2.clone().unwrap();
    // Renewed, the folder has none of the files the limits go to here
    // (the kernel would make them).
    std::fs::remove_dir_all(&v2).unwrap();
    std::fs::create_dir(&v2).unwrap();
    let limits = *inst.limits();
    inst.prepare_next_start();
    assert!(!inst.take_ready(&limits));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn stats_come_from_the_hierarchy_that_has_them() {
    let root = scratch("stats");
    let inst = fake_instance(&root, Controller::ALL.to_vec(), &[]);
    let v2 = inst.v2.clone().unwrap();
    std::fs::write(v2.join("memory.current"), "10485760\n").unwrap();
    std::fs::write(
        v2.join("memory.stat"),
        "anon 8388608\nfile 2097152\ninactive_file 1048576\n",
    )
    .unwrap();
    std::fs::write(
        v2.join("cpu.stat"),
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
    )
    .unwrap();
    let s = inst.stats();
    assert_eq!(s.memory_bytes, Some(10485760 - 1048576));
    assert_eq!(s.cpu, Some(Duration::from_millis(2500)));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_limit_without_its_controller_is_refused() {
    let tree = Tree {
        name: "t".into(),
        v2: None,
        v2_controllers: Vec::new(),
        v1: vec![V1Dir {
            controllers: vec!["memory".into()],
            dir: PathBuf::from("/nonexistent"),
        }],
        v2_skipped: None,
        moved_to: None,
        clone_into: true,
    };
    let e = tree
        .instance("svc@a", &Limits::new(None, None, Some(10)))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "pids_max needs the pids cgroup controller, which neither cgroup v2 nor v1 offers here"
    );
    assert_eq!(tree.version_of(Controller::Memory), Some(Version::V1));
    assert_eq!(tree.kill_method(), KillMethod::Repeat);
}
