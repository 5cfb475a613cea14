//! File modes of tenement's own files, as `stat` shows them: `.tenement`
//! 0700 from the first start of `ten serve` (also when it already existed
//! with a looser mode, fixed with one log line), instance logs and their
//! rotations 0600, `ten.sock` 0600, `api_token` 0600.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use util::*;

const DEADLINE: Duration = Duration::from_secs(10);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn config() -> String {
    format!(
        "{}{}",
        settings("log_max_bytes = 2000\nlog_files = 2"),
        py_service("talker", "talker.py", "")
    )
}

/// Spawns talker:a and makes it log enough lines for two rotations.
fn log_and_rotate(s: &Server) {
    s.ten_ok(&["spawn", "talker:a"]);
    s.wait_running("talker:a");
    let resp = s.http(
        "GET",
        "a.talker.localhost",
        "/say?line=rotating&n=200",
        &[],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let log = s.data_dir.join(".tenement/logs/talker/a.log");
    let ok = wait_until(DEADLINE, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("rotating 199"))
    });
    assert!(ok, "no rotated log\n{}", s.log());
}

#[test]
fn a_first_start_without_token_gen_makes_private_files() {
    let mut s = Server::start("modes-fresh", &config());
    // Start over as a brand-new install that never ran `ten token-gen`.
    s.sigterm();
    let internal = s.data_dir.join(".tenement");
    std::fs::remove_dir_all(&internal).unwrap();
    std::fs::remove_file(s.data_dir.join("api_token")).unwrap();
    s.serve_again();
    assert_eq!(mode(&internal), 0o700, ".tenement");
    assert_eq!(mode(&internal.join("ten.sock")), 0o600, "ten.sock");
    // The helpers below talk to the API over TCP with an admin token.
    s.admin_token = s.mint_token(None);
    assert_eq!(mode(&s.data_dir.join("api_token")), 0o600, "api_token");
    assert_eq!(mode(&internal), 0o700, ".tenement after token-gen");
    log_and_rotate(&s);
    let logs = internal.join("logs/talker");
    for name in ["a.log", "a.log.1", "a.log.2"] {
        assert_eq!(mode(&logs.join(name)), 0o600, "{name}");
    }
    assert!(
        !s.log().contains("readable by others"),
        "nothing to fix on a fresh start:\n{}",
        s.log()
    );
}

#[test]
fn loose_modes_left_from_before_are_fixed_at_start_and_logged_once() {
    let mut s = Server::start("modes-loose", &config());
    log_and_rotate(&s);
    s.sigterm();
    let internal = s.data_dir.join(".tenement");
    let token = s.data_dir.join("api_token");
    let log = internal.join("logs/talker/a.log");
    chmod(&internal, 0o755);
    chmod(&token, 0o644);
    chmod(&log, 0o644);
    s.serve_again();
    assert_eq!(mode(&internal), 0o700, ".tenement");
    assert_eq!(mode(&token), 0o600, "api_token");
    assert_eq!(mode(&internal.join("ten.sock")), 0o600, "ten.sock");
    // The instance is restored and its log reopened.
    s.wait_running("talker:a");
    let ok = wait_until(DEADLINE, || mode(&log) == 0o600);
    assert!(ok, "a.log is {:o}\n{}", mode(&log), s.log());
    let fixed = |what: &str| {
        s.log()
            .lines()
            .filter(|l| l.contains(what) && l.contains("readable by others"))
            .count()
    };
    assert_eq!(fixed(".tenement was mode 755"), 1, "{}", s.log());
    assert_eq!(fixed("api_token was mode 644"), 1, "{}", s.log());
    // A second start has nothing left to fix.
    s.restart();
    let after = s.log();
    let second = after.rsplit("started again").next().unwrap();
    assert!(!second.contains("readable by others"), "{after}");
}
