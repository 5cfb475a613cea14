//! `ten install` / `ten uninstall` into a temp root (`--root DIR`): the
//! binary, the man pages, a starter config, the data folder and the service
//! file land under DIR; `systemd-analyze verify` accepts the unit; the
//! OpenRC script passes `sh -n`; uninstall takes it all back out and keeps
//! the config and the data; `--dry-run` changes nothing.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use util::*;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn ten_in(root: &Path, args: &[&str]) -> String {
    let out = ten_raw(root.parent().expect("root has a parent"), args);
    assert!(out.status.success(), "ten {args:?}: {}", describe(&out));
    stdout(&out)
}

#[test]
fn install_into_a_root_then_uninstall_keeps_config_and_data() {
    let scratch = Scratch::new("install_systemd");
    let root = scratch.path("root");
    let root_s = root.display().to_string();
    let printed = ten_in(
        &root,
        &[
            "install",
            "--systemd",
            "--root",
            &root_s,
            "--domain",
            "Example.COM",
            "--port",
            "8081",
        ],
    );

    // The binary is copied, executable, byte for byte.
    let bin = root.join("usr/local/bin/ten");
    assert_eq!(
        std::fs::read(&bin).expect("installed binary"),
        std::fs::read(BIN).expect("test binary")
    );
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    // The man pages, as shipped.
    assert_eq!(
        read(&root.join("usr/local/share/man/man1/ten.1")),
        read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("man/ten.1")
                .as_path()
        )
    );
    assert!(read(&root.join("usr/local/share/man/man5/tenement.toml.5")).contains("\n.TH "));
    // A starter config filled from the flags, and the data folder.
    let config = read(&root.join("etc/tenement/tenement.toml"));
    assert!(config.contains("domain = \"example.com\"\n"), "{config}");
    assert!(config.contains("listen = \"0.0.0.0:8081\"\n"), "{config}");
    assert!(root.join("var/lib/tenement").is_dir());
    let out = ten_raw(
        &root,
        &[
            "config",
            "--check",
            "--config",
            &root
                .join("etc/tenement/tenement.toml")
                .display()
                .to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "starter config checks: {}",
        describe(&out)
    );

    // The unit, and no systemctl run in another root: it says what to run.
    let unit = read(&root.join("etc/systemd/system/tenement.service"));
    for line in [
        "Type=notify",
        "ExecStart=/usr/local/bin/ten serve --config /etc/tenement/tenement.toml",
        "ReadWritePaths=/var/lib/tenement",
        "KillMode=mixed",
    ] {
        assert!(unit.contains(&format!("\n{line}\n")), "{line} in:\n{unit}");
    }
    assert!(
        printed.contains("run `systemctl enable --now tenement` on the booted system"),
        "{printed}"
    );

    // systemd-analyze accepts it, with the binary pointed at a real file.
    if tools_present(&["systemd-analyze"]) {
        let check = scratch.write(
            "verify/tenement.service",
            &unit.replace(
                "ExecStart=/usr/local/bin/ten ",
                &format!("ExecStart={BIN} "),
            ),
        );
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&check)
            .output()
            .expect("run systemd-analyze");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}\n{unit}",
            describe(&out)
        );
    }

    // A second install keeps the existing config.
    let again = ten_in(
        &root,
        &[
            "install",
            "--systemd",
            "--root",
            &root_s,
            "--domain",
            "other.org",
        ],
    );
    assert!(
        again.contains("keeping the existing config /etc/tenement/tenement.toml"),
        "{again}"
    );
    assert_eq!(read(&root.join("etc/tenement/tenement.toml")), config);

    // Some tenant data, which uninstall must not touch.
    let tenant = root.join("var/lib/tenement/notes/alice/notes.txt");
    std::fs::create_dir_all(tenant.parent().unwrap()).unwrap();
    std::fs::write(&tenant, "precious").unwrap();

    let printed = ten_in(&root, &["uninstall", "--root", &root_s]);
    for gone in [
        "etc/systemd/system/tenement.service",
        "usr/local/bin/ten",
        "usr/local/share/man/man1/ten.1",
        "usr/local/share/man/man5/tenement.toml.5",
    ] {
        assert!(!root.join(gone).exists(), "{gone} still there");
    }
    assert_eq!(read(&tenant), "precious");
    assert_eq!(read(&root.join("etc/tenement/tenement.toml")), config);
    assert!(printed.contains("kept the config"), "{printed}");
}

#[test]
fn openrc_script_is_valid_shell_with_supervise_daemon_and_reload() {
    let scratch = Scratch::new("install_openrc");
    let root = scratch.path("root");
    let root_s = root.display().to_string();
    ten_in(&root, &["install", "--openrc", "--root", &root_s]);
    let script_path = root.join("etc/init.d/tenement");
    assert_eq!(
        std::fs::metadata(&script_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    let script = read(&script_path);
    let out = Command::new("sh")
        .arg("-n")
        .arg(&script_path)
        .output()
        .expect("run sh");
    assert!(out.status.success(), "sh -n: {}\n{script}", describe(&out));
    assert!(script.starts_with("#!/sbin/openrc-run\n"), "{script}");
    for line in [
        "supervisor=supervise-daemon",
        "command=/usr/local/bin/ten",
        "command_args=\"serve --config /etc/tenement/tenement.toml\"",
        "extra_started_commands=\"reload\"",
        "\tsupervise-daemon \"${RC_SVCNAME}\" --signal HUP",
    ] {
        assert!(
            script.contains(&format!("\n{line}\n")),
            "{line} in:\n{script}"
        );
    }
    let config = read(&root.join("etc/tenement/tenement.toml"));
    assert!(
        config.contains("domain = \"localhost\"\nlisten = \"0.0.0.0:8080\"\n"),
        "{config}"
    );

    ten_in(&root, &["uninstall", "--root", &root_s]);
    assert!(!script_path.exists());
    assert!(root.join("etc/tenement/tenement.toml").exists());
}

#[test]
fn dry_run_prints_everything_and_changes_nothing() {
    let scratch = Scratch::new("install_dry");
    let root = scratch.path("root");
    let root_s = root.display().to_string();
    let printed = ten_in(
        &root,
        &["install", "--dry-run", "--systemd", "--root", &root_s],
    );
    assert!(!root.exists(), "dry run created {}", root.display());
    for part in [
        format!("# would copy {BIN} to {root_s}/usr/local/bin/ten (mode 0755)\n"),
        format!("# would write {root_s}/usr/local/share/man/man1/ten.1 (mode 0644):\n.\\\" ten(1)"),
        format!("# would write {root_s}/etc/tenement/tenement.toml (mode 0644):\n"),
        format!("# would write {root_s}/etc/systemd/system/tenement.service (mode 0644):\n"),
        "\nType=notify\n".to_string(),
    ] {
        assert!(printed.contains(&part), "{part:?} in:\n{printed}");
    }
    // Bad flags are usage errors.
    let out = ten_raw(&scratch.root, &["install", "--dry-run", "--port", "http"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = ten_raw(&scratch.root, &["install", "--dry-run", "--domain", "a..b"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
