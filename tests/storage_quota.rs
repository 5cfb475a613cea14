//! `storage_quota_mb` end to end: data dirs at 80 % and over 100 % of the
//! quota, as the API (`/api/instances`, `.../storage`), `ten ps`,
//! `/metrics` and the instance's log show them.

mod util;

use std::time::Duration;

use util::*;

const DEADLINE: Duration = Duration::from_secs(15);

fn fill(s: &Server, id: &str, bytes: usize) {
    let dir = s.instance_dir("talker", id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("blob"), vec![7u8; bytes]).unwrap();
}

fn log_lines(s: &Server, id: &str, needle: &str) -> usize {
    let path = s.data_dir.join(format!(".tenement/logs/talker/{id}.log"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn data_dirs_near_and_over_their_quota_are_flagged_and_logged_once() {
    let config = format!(
        "{}{}",
        settings(""),
        py_service("talker", "talker.py", "storage_quota_mb = 1")
    );
    let s = Server::start("storage-quota", &config);
    // Data dirs persist: these sizes are there before the instances start.
    fill(&s, "full", 1_200_000);
    fill(&s, "near", 900_000);
    fill(&s, "small", 1_000);
    for id in ["full", "near", "small"] {
        s.ten_ok(&["spawn", &format!("talker:{id}"), "--wait"]);
    }
    let measured = wait_until(DEADLINE, || {
        ["full", "near", "small"].iter().all(|id| {
            s.instance(&format!("talker:{id}"))
                .is_some_and(|v| v["storage_bytes"].as_u64().is_some())
        })
    });
    assert!(measured, "{:?}\n{}", s.instances(), s.log());
    let flag = |id: &str| s.instance(&format!("talker:{id}")).unwrap()["over_quota"].clone();
    assert_eq!(flag("full"), true);
    assert_eq!(flag("near"), false);
    assert_eq!(flag("small"), false);
    let full = s.instance("talker:full").unwrap();
    assert_eq!(full["storage_quota_bytes"], 1_048_576);
    assert!(
        full["storage_bytes"].as_u64().unwrap() >= 1_200_000,
        "{full}"
    );

    let storage = s.api(
        "GET",
        "/api/instances/talker:full/storage",
        Some(&s.admin_token),
        None,
    );
    assert_eq!(storage.status, 200, "{}", storage.text());
    let j = storage.json();
    assert_eq!(j["quota_bytes"], 1_048_576);
    assert!(j["percent"].as_f64().unwrap() > 114.0, "{j}");
    let j = s
        .api(
            "GET",
            "/api/instances/talker:near/storage",
            Some(&s.admin_token),
            None,
        )
        .json();
    let p = j["percent"].as_f64().unwrap();
    assert!((80.0..100.0).contains(&p), "{j}");

    let ps = stdout(&s.ten_ok(&["ps"]));
    let row = |id: &str| {
        ps.lines()
            .find(|l| l.starts_with(&format!("talker:{id} ")))
            .unwrap_or_else(|| panic!("no talker:{id} in\n{ps}"))
            .to_string()
    };
    assert!(row("full").contains("M!"), "{ps}");
    assert!(!row("near").contains('!'), "{ps}");

    let metrics = s.api("GET", "/metrics", Some(&s.admin_token), None).text();
    assert!(
        metrics.contains("ten_instance_over_storage_quota{service=\"talker\",id=\"full\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ten_instance_over_storage_quota{service=\"talker\",id=\"near\"} 0"),
        "{metrics}"
    );
    assert!(metrics
        .contains("ten_instance_storage_quota_bytes{service=\"talker\",id=\"full\"} 1048576"));

    let logged = wait_until(DEADLINE, || log_lines(&s, "full", "over quota") == 1);
    assert!(logged, "{}", s.log());
    // Measured again (and checked every second) without a second line.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(log_lines(&s, "full", "storage: over quota"), 1);
    assert_eq!(log_lines(&s, "full", "storage: data dir at"), 1);
    assert_eq!(log_lines(&s, "near", "storage: data dir at"), 1);
    assert_eq!(log_lines(&s, "near", "over quota"), 0);
    assert_eq!(log_lines(&s, "small", "storage:"), 0);
}
