//! `ten install` / `ten uninstall`: put tenement on a machine as a system
//! service (a systemd unit or an OpenRC script running `ten serve`), with the
//! binary in /usr/local/bin, the man pages, a starter config and the data
//! folder, and enable it; or take that back out, keeping config and data.
//!
//! Both build a plan (files to write, copy or remove, folders to make,
//! commands to run) first; `--dry-run` prints the plan, otherwise it is
//! carried out in order and the first failing step stops it. `--root DIR`
//! prefixes every path with DIR and runs no command (an image being built,
//! a test). Needs root to carry out on the live system, never to plan.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::client::io_reason;
use super::{output, CliError, Ctx};

const SYSTEMD_UNIT: &str = "/etc/systemd/system/tenement.service";
const OPENRC_SCRIPT: &str = "/etc/init.d/tenement";
const BINARY: &str = "/usr/local/bin/ten";
const CONFIG: &str = "/etc/tenement/tenement.toml";
const DATA_DIR: &str = "/var/lib/tenement";
const MAN_TEN: &str = "/usr/local/share/man/man1/ten.1";
const MAN_TOML: &str = "/usr/local/share/man/man5/tenement.toml.5";
/// The man pages, carried in the binary so a copied `ten` can install them.
const TEN_1: &str = include_str!("../../man/ten.1");
const TENEMENT_TOML_5: &str = include_str!("../../man/tenement.toml.5");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitSystem {
    Systemd,
    OpenRc,
}

/// One step of a plan. Paths are as on the target system; `Plan::root`
/// prefixes them.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Write {
        path: PathBuf,
        mode: u32,
        text: String,
    },
    /// Copy a file (the running binary) through a temporary file and a
    /// rename, so a binary in use is replaced, never overwritten in place.
    Copy {
        from: PathBuf,
        to: PathBuf,
        mode: u32,
    },
    Mkdir {
        path: PathBuf,
        mode: u32,
    },
    Remove {
        path: PathBuf,
    },
    Run {
        argv: Vec<String>,
    },
    /// Something to tell the operator (a command to run themselves, what
    /// was kept).
    Note(String),
}

fn run(argv: &[&str]) -> Step {
    Step::Run {
        argv: argv.iter().map(|s| s.to_string()).collect(),
    }
}

/// What an install needs to know, gathered from flags and the machine.
#[derive(Debug)]
struct Setup {
    system: InitSystem,
    /// The running executable.
    exe: PathBuf,
    /// The config the service runs with (as on the target system).
    config: PathBuf,
    /// Write a starter config there: it does not exist yet.
    config_text: Option<String>,
    /// `--data-dir`, passed on the service's command line.
    data_dir_flag: Option<PathBuf>,
    /// Where the service writes: made writable in the sandbox.
    data_dir: PathBuf,
    /// `--root`: prefix for every path; no commands are run.
    root: Option<PathBuf>,
    /// The init system runs on this machine (commands can be run).
    live: bool,
}

/// `--systemd`/`--openrc`, else what this machine runs.
fn init_system(ctx: &Ctx<'_>) -> Result<InitSystem, CliError> {
    let inv = ctx.inv;
    match (inv.has("systemd"), inv.has("openrc")) {
        (true, true) => Err(inv.usage("--systemd and --openrc exclude each other").into()),
        (true, false) => Ok(InitSystem::Systemd),
        (false, true) => Ok(InitSystem::OpenRc),
        (false, false) if systemd_running() => Ok(InitSystem::Systemd),
        (false, false) if Path::new("/sbin/openrc-run").exists() => Ok(InitSystem::OpenRc),
        // Showing a plan or filling a root hurts nobody: the common case.
        (false, false) if inv.has("dry-run") || inv.has("root") => Ok(InitSystem::Systemd),
        (false, false) => Err(CliError::failed(
            "cannot tell the init system (neither systemd nor OpenRC found); pass --systemd or --openrc",
        )),
    }
}

/// sd_booted(3): systemd is running when this folder exists.
fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Quotes one word for a systemd command line (systemd.syntax(7)) or a shell.
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b))
    {
        return word.to_string();
    }
    format!(
        "\"{}\"",
        word.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
            .replace('`', "\\`")
    )
}

fn serve_args(config: &Path, data_dir: Option<&Path>) -> Vec<String> {
    let mut args = vec![
        "serve".to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ];
    if let Some(d) = data_dir {
        args.push("--data-dir".to_string());
        args.push(d.display().to_string());
    }
    args
}

/// A folder for systemd's path settings, quoted when it has spaces.
fn unit_path(p: &Path) -> String {
    quote(&p.display().to_string())
}

fn systemd_unit(exe: &Path, args: &[String], data_dir: &Path) -> String {
    let cmd: Vec<String> = std::iter::once(exe.display().to_string())
        .chain(args.iter().cloned())
        .map(|w| quote(&w))
        .collect();
    format!(
        "# Written by `ten install`; `ten uninstall` removes it. See ten(1).
# Local changes: `systemctl edit tenement` (a drop-in survives a reinstall).
[Unit]
Description=tenement process hypervisor
Documentation=man:ten(1) man:tenement.toml(5)
After=network-online.target
Wants=network-online.target

[Service]
# ten serve says READY=1 once it listens and has started the instances it
# restored, RELOADING=1/READY=1 around a reload, and pings the watchdog only
# while its event loops and its supervisor answer: a hung loop gets the
# service restarted.
Type=notify
NotifyAccess=main
WatchdogSec=30
ExecStart={cmd}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2
# mixed: SIGTERM goes to ten alone, which stops every instance gracefully
# (SIGTERM, then SIGKILL after its stop_timeout) and saves the registry; only
# what is left after ten exits is killed. Not `process`: instances are not
# adopted by the next ten serve (it kills leftovers of the previous run and
# starts them again), so leaving them behind would only let an unsupervised
# copy keep writing a tenant's data while a new one starts on the same data
# folder. Not `control-group`: that would kill instances before ten can stop
# them in order and record which ones were running.
KillMode=mixed
TimeoutStopSec=90
LimitNOFILE=1048576
# Each instance gets its own cgroup inside this subtree.
Delegate=yes

# Sandboxing that leaves isolation working: ten creates namespaces, mounts,
# changes uids and enforces landlock and seccomp itself, so no namespace
# restriction, no system call filter and no NoNewPrivileges here (each would
# be inherited by, and break, the instances' own setup).
ProtectSystem=strict
# The data folder: registry, tokens, logs, sockets, instances' data.
ReadWritePaths={data}
# Apps and configs under /home stay readable; give an app a writable folder
# there with ReadWritePaths= in a drop-in.
ProtectHome=read-only
PrivateTmp=yes
# What isolation needs, nothing more: namespaces and mounts (SYS_ADMIN),
# instances' own uids (SETUID, SETGID), dropping their capabilities
# (SETPCAP), loopback in a network = \"none\" namespace (NET_ADMIN),
# signalling them (KILL), ports below 1024 (NET_BIND_SERVICE), giving them
# their data folders and walking those for storage (CHOWN, FOWNER,
# DAC_OVERRIDE, DAC_READ_SEARCH).
CapabilityBoundingSet=CAP_SYS_ADMIN CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_NET_ADMIN CAP_KILL CAP_NET_BIND_SERVICE CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH

[Install]
WantedBy=multi-user.target
",
        cmd = cmd.join(" "),
        data = unit_path(data_dir),
    )
}

fn openrc_script(exe: &Path, args: &[String]) -> String {
    let args: Vec<String> = args.iter().map(|w| quote(w)).collect();
    format!(
        "#!/sbin/openrc-run
# Written by `ten install`; `ten uninstall` removes it. See ten(1).
description=\"tenement process hypervisor\"
supervisor=supervise-daemon
command={}
command_args=\"{}\"
output_log=\"/var/log/tenement.log\"
error_log=\"/var/log/tenement.log\"
# Restarted when it dies, at most 5 times a minute.
respawn_delay=2
respawn_max=5
respawn_period=60
# ten stops its instances itself on SIGTERM; give it time before SIGKILL.
retry=\"TERM/90/KILL/5\"
extra_started_commands=\"reload\"

depend() {{
\tneed net
\tafter firewall
}}

reload() {{
\tebegin \"Reloading ${{RC_SVCNAME}}\"
\tsupervise-daemon \"${{RC_SVCNAME}}\" --signal HUP
\teend $?
}}
",
        quote(&exe.display().to_string()),
        args.join(" ").replace('"', "\\\"")
    )
}

/// The starter config `--domain` and `--port` fill.
fn starter_config(domain: &str, port: u16) -> String {
    format!(
        "# Written by `ten install`; see tenement.toml(5).
[settings]
domain = {}
listen = \"0.0.0.0:{port}\"

# A service: one process per instance, routed as {{id}}.{{service}}.{{domain}}.
# [service.app]
# command = \"/srv/app/run\"
",
        toml::Value::String(domain.to_string())
    )
}

fn install_plan(s: &Setup) -> Vec<Step> {
    let binary = PathBuf::from(BINARY);
    let mut plan = Vec::new();
    let target_exe = s
        .root
        .as_deref()
        .map_or(binary.clone(), |r| prefixed(r, &binary));
    if s.exe != target_exe {
        plan.push(Step::Copy {
            from: s.exe.clone(),
            to: binary.clone(),
            mode: 0o755,
        });
    }
    for (path, text) in [(MAN_TEN, TEN_1), (MAN_TOML, TENEMENT_TOML_5)] {
        plan.push(Step::Write {
            path: path.into(),
            mode: 0o644,
            text: text.to_string(),
        });
    }
    if let Some(text) = &s.config_text {
        plan.push(Step::Write {
            path: s.config.clone(),
            mode: 0o644,
            text: text.clone(),
        });
    } else {
        plan.push(Step::Note(format!(
            "keeping the existing config {}",
            s.config.display()
        )));
    }
    plan.push(Step::Mkdir {
        path: s.data_dir.clone(),
        mode: 0o755,
    });
    let args = serve_args(&s.config, s.data_dir_flag.as_deref());
    let (commands, script): (Vec<Vec<&str>>, Step) = match s.system {
        InitSystem::Systemd => (
            vec![
                vec!["systemctl", "daemon-reload"],
                vec!["systemctl", "enable", "--now", "tenement"],
            ],
            Step::Write {
                path: SYSTEMD_UNIT.into(),
                mode: 0o644,
                text: systemd_unit(&binary, &args, &s.data_dir),
            },
        ),
        InitSystem::OpenRc => (
            vec![
                vec!["rc-update", "add", "tenement", "default"],
                vec!["rc-service", "tenement", "start"],
            ],
            Step::Write {
                path: OPENRC_SCRIPT.into(),
                mode: 0o755,
                text: openrc_script(&binary, &args),
            },
        ),
    };
    plan.push(script);
    plan.extend(commands_or_notes(s.root.is_some(), s.live, commands));
    plan
}

/// The commands as steps when they can run here, else as notes saying to
/// run them on the booted system.
fn commands_or_notes(rooted: bool, live: bool, commands: Vec<Vec<&str>>) -> Vec<Step> {
    if !rooted && live {
        return commands.iter().map(|c| run(c)).collect();
    }
    let why = if rooted {
        "installed into another root"
    } else {
        "the init system is not running here"
    };
    commands
        .iter()
        .map(|c| Step::Note(format!("{why}: run `{}` on the booted system", c.join(" "))))
        .collect()
}

fn uninstall_plan(
    system: InitSystem,
    rooted: bool,
    live: bool,
    config: &Path,
    data_dir: &Path,
) -> Vec<Step> {
    let mut plan = Vec::new();
    let (before, script, after) = match system {
        InitSystem::Systemd => (
            vec![vec!["systemctl", "disable", "--now", "tenement"]],
            SYSTEMD_UNIT,
            vec![vec!["systemctl", "daemon-reload"]],
        ),
        InitSystem::OpenRc => (
            vec![
                vec!["rc-service", "tenement", "stop"],
                vec!["rc-update", "del", "tenement", "default"],
            ],
            OPENRC_SCRIPT,
            vec![],
        ),
    };
    plan.extend(commands_or_notes(rooted, live, before));
    for path in [script, MAN_TEN, MAN_TOML, BINARY] {
        plan.push(Step::Remove { path: path.into() });
    }
    plan.extend(commands_or_notes(rooted, live, after));
    plan.push(Step::Note(format!(
        "kept the config {} and the data folder {} (remove them yourself to delete every tenant's data)",
        config.display(),
        data_dir.display()
    )));
    plan
}

/// `path` (absolute, as on the target system) under `root`.
fn prefixed(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn describe(plan: &[Step], root: Option<&Path>) -> String {
    let at = |p: &Path| root.map_or(p.to_path_buf(), |r| prefixed(r, p));
    let mut out = String::new();
    for step in plan {
        match step {
            Step::Write { path, mode, text } => {
                out.push_str(&format!(
                    "# would write {} (mode {mode:04o}):\n{text}\n",
                    at(path).display()
                ));
            }
            Step::Copy { from, to, mode } => out.push_str(&format!(
                "# would copy {} to {} (mode {mode:04o})\n",
                from.display(),
                at(to).display()
            )),
            Step::Mkdir { path, mode } => out.push_str(&format!(
                "# would create {} (mode {mode:04o}) unless it exists\n",
                at(path).display()
            )),
            Step::Remove { path } => {
                out.push_str(&format!("# would remove {}\n", at(path).display()))
            }
            Step::Run { argv } => out.push_str(&format!("# would run: {}\n", argv.join(" "))),
            Step::Note(text) => out.push_str(&format!("# {text}\n")),
        }
    }
    out
}

fn carry_out(plan: &[Step], root: Option<&Path>) -> Result<(), CliError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let at = |p: &Path| root.map_or(p.to_path_buf(), |r| prefixed(r, p));
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        CliError::failed(format!("{what} {}: {}", path.display(), io_reason(&e)))
    };
    let parent = |path: &Path| -> Result<(), CliError> {
        match path.parent() {
            Some(dir) => std::fs::create_dir_all(dir).map_err(|e| fail("create", dir, e)),
            None => Ok(()),
        }
    };
    for step in plan {
        match step {
            Step::Write { path, mode, text } => {
                let path = at(path);
                parent(&path)?;
                std::fs::write(&path, text)
                    .and_then(|()| {
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
                    })
                    .map_err(|e| fail("write", &path, e))?;
                output::print(&format!("wrote {}\n", path.display()))?;
            }
            Step::Copy { from, to, mode } => {
                let to = at(to);
                parent(&to)?;
                let tmp = to.with_extension("new");
                std::fs::copy(from, &tmp)
                    .and_then(|_| {
                        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(*mode))
                    })
                    .and_then(|()| std::fs::rename(&tmp, &to))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&tmp);
                        fail("copy the binary to", &to, e)
                    })?;
                output::print(&format!("copied {} to {}\n", from.display(), to.display()))?;
            }
            Step::Mkdir { path, mode } => {
                let path = at(path);
                if !path.is_dir() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(*mode)
                        .create(&path)
                        .map_err(|e| fail("create", &path, e))?;
                    output::print(&format!("created {}\n", path.display()))?;
                }
            }
            Step::Remove { path } => {
                let path = at(path);
                match std::fs::remove_file(&path) {
                    Ok(()) => output::print(&format!("removed {}\n", path.display()))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(fail("remove", &path, e)),
                }
            }
            Step::Run { argv } => {
                let line = argv.join(" ");
                output::print(&format!("running: {line}\n"))?;
                let status = Command::new(&argv[0])
                    .args(&argv[1..])
                    .status()
                    .map_err(|e| CliError::failed(format!("run `{line}`: {}", io_reason(&e))))?;
                if !status.success() {
                    return Err(CliError::failed(format!("`{line}` failed ({status})")));
                }
            }
            Step::Note(text) => output::print(&format!("{text}\n"))?,
        }
    }
    Ok(())
}

fn require_root(what: &str) -> Result<(), CliError> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "{what} needs root (try sudo, --dry-run to see what it would do, or --root DIR)"
        )))
    }
}

/// `--root DIR`, made absolute.
fn root_flag(ctx: &Ctx<'_>) -> Option<PathBuf> {
    ctx.inv
        .value("root")
        .map(PathBuf::from)
        .map(|p| std::path::absolute(&p).unwrap_or(p))
}

/// The data folder the service uses: `--data-dir`, else `settings.data_dir`
/// of the config when it has one, else /var/lib/tenement (ten serve as root).
fn service_data_dir(flag: Option<&Path>, config_on_disk: &Path) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    crate::config::Config::load(config_on_disk)
        .ok()
        .and_then(|c| c.settings.data_dir)
        .unwrap_or_else(|| PathBuf::from(DATA_DIR))
}

pub fn install(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let system = init_system(ctx)?;
    let root = root_flag(ctx);
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| CliError::failed(format!("find this executable's path: {}", io_reason(&e))))?;
    // An explicit --config is used where it is; otherwise the service reads
    // /etc/tenement/tenement.toml, written now when absent.
    let config = match ctx.config_flag() {
        Some(c) => std::path::absolute(c).unwrap_or_else(|_| c.to_path_buf()),
        None => PathBuf::from(CONFIG),
    };
    let config_on_disk = root
        .as_deref()
        .map_or(config.clone(), |r| prefixed(r, &config));
    let port = match inv.value("port") {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| inv.usage(format!("--port: expected a port number, got {p:?}")))?,
        None => 8080,
    };
    let domain = inv
        .value("domain")
        .unwrap_or("localhost")
        .to_ascii_lowercase();
    crate::config::check_domain(&domain).map_err(|e| inv.usage(format!("--domain: {e}")))?;
    let config_text = if config_on_disk.exists() {
        if inv.value("domain").is_some() || inv.value("port").is_some() {
            warn!(
                "install",
                "{} exists and is kept; --domain and --port only fill a new one",
                config_on_disk.display()
            );
        }
        None
    } else if ctx.config_flag().is_some() {
        return Err(CliError::failed(format!(
            "config {} does not exist",
            config_on_disk.display()
        )));
    } else {
        Some(starter_config(&domain, port))
    };
    let data_dir_flag = ctx
        .data_dir_flag()
        .map(|d| std::path::absolute(&d).unwrap_or(d));
    let data_dir = service_data_dir(data_dir_flag.as_deref(), &config_on_disk);
    let setup = Setup {
        system,
        exe,
        config,
        config_text,
        data_dir_flag,
        data_dir,
        live: match system {
            InitSystem::Systemd => systemd_running(),
            InitSystem::OpenRc => Path::new("/run/openrc").is_dir(),
        },
        root,
    };
    let plan = install_plan(&setup);
    if inv.has("dry-run") {
        return output::print(&describe(&plan, setup.root.as_deref()));
    }
    if setup.root.is_none() {
        require_root("install")?;
    }
    carry_out(&plan, setup.root.as_deref())
}

pub fn uninstall(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let root = root_flag(ctx);
    let at = |p: &str| {
        root.as_deref()
            .map_or(PathBuf::from(p), |r| prefixed(r, Path::new(p)))
    };
    let system = match (inv.has("systemd"), inv.has("openrc")) {
        (false, false) if at(SYSTEMD_UNIT).exists() => InitSystem::Systemd,
        (false, false) if at(OPENRC_SCRIPT).exists() => InitSystem::OpenRc,
        (false, false) if !inv.has("dry-run") => {
            return Err(CliError::failed(format!(
                "tenement is not installed (neither {} nor {} exists)",
                at(SYSTEMD_UNIT).display(),
                at(OPENRC_SCRIPT).display()
            )));
        }
        _ => init_system(ctx)?,
    };
    let config = ctx
        .config_flag()
        .map_or(PathBuf::from(CONFIG), Path::to_path_buf);
    let config_on_disk = root
        .as_deref()
        .map_or(config.clone(), |r| prefixed(r, &config));
    let data_dir = service_data_dir(ctx.data_dir_flag().as_deref(), &config_on_disk);
    let live = match system {
        InitSystem::Systemd => systemd_running(),
        InitSystem::OpenRc => Path::new("/run/openrc").is_dir(),
    };
    let plan = uninstall_plan(system, root.is_some(), live, &config, &data_dir);
    if inv.has("dry-run") {
        return output::print(&describe(&plan, root.as_deref()));
    }
    if root.is_none() {
        require_root("uninstall")?;
    }
    carry_out(&plan, root.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(system: InitSystem) -> Setup {
        Setup {
            system,
            exe: "/home/me/ten".into(),
            config: CONFIG.into(),
            config_text: Some(starter_config("example.com", 80)),
            data_dir_flag: None,
            data_dir: DATA_DIR.into(),
            root: None,
            live: true,
        }
    }

    #[test]
    fn unit_runs_serve_with_absolute_paths_and_quotes_spaces() {
        let args = serve_args(Path::new("/etc/tenement/tenement.toml"), None);
        let unit = systemd_unit(Path::new("/usr/local/bin/ten"), &args, Path::new(DATA_DIR));
        assert!(
            unit.contains(
                "\nExecStart=/usr/local/bin/ten serve --config /etc/tenement/tenement.toml\n"
            ),
            "{unit}"
        );
        for line in [
            "Type=notify",
            "WatchdogSec=30",
            "Restart=on-failure",
            "KillMode=mixed",
            "Delegate=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/tenement",
            "ProtectHome=read-only",
            "PrivateTmp=yes",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.contains(&format!("\n{line}\n")), "{line} in {unit}");
        }
        // Settings that would break the instances' own isolation are absent.
        for bad in [
            "NoNewPrivileges",
            "RestrictNamespaces",
            "SystemCallFilter",
            "ProtectControlGroups",
        ] {
            assert!(!unit.contains(&format!("\n{bad}=")), "{bad} in {unit}");
        }
        let args = serve_args(
            Path::new("/srv/my apps/tenement.toml"),
            Some(Path::new("/srv/data")),
        );
        let unit = systemd_unit(Path::new("/opt/ten"), &args, Path::new("/srv/my data"));
        assert!(
            unit.contains("ExecStart=/opt/ten serve --config \"/srv/my apps/tenement.toml\" --data-dir /srv/data\n"),
            "{unit}"
        );
        assert!(
            unit.contains("\nReadWritePaths=\"/srv/my data\"\n"),
            "{unit}"
        );
    }

    #[test]
    fn openrc_script_is_a_supervised_runscript_with_reload() {
        let args = serve_args(Path::new("/etc/tenement/tenement.toml"), None);
        let s = openrc_script(Path::new("/usr/local/bin/ten"), &args);
        assert!(s.starts_with("#!/sbin/openrc-run\n"));
        for line in [
            "supervisor=supervise-daemon",
            "command=/usr/local/bin/ten",
            "command_args=\"serve --config /etc/tenement/tenement.toml\"",
            "extra_started_commands=\"reload\"",
            "\tsupervise-daemon \"${RC_SVCNAME}\" --signal HUP",
        ] {
            assert!(s.contains(&format!("\n{line}\n")), "{line} in {s}");
        }
    }

    #[test]
    fn dry_run_lists_every_step_in_order() {
        let text = describe(&install_plan(&setup(InitSystem::Systemd)), None);
        let order = [
            "# would copy /home/me/ten to /usr/local/bin/ten (mode 0755)\n",
            "# would write /usr/local/share/man/man1/ten.1 (mode 0644):\n",
            "# would write /usr/local/share/man/man5/tenement.toml.5 (mode 0644):\n",
            "# would write /etc/tenement/tenement.toml (mode 0644):\n",
            "domain = \"example.com\"\nlisten = \"0.0.0.0:80\"\n",
            "# would create /var/lib/tenement (mode 0755) unless it exists\n",
            "# would write /etc/systemd/system/tenement.service (mode 0644):\n",
            "# would run: systemctl daemon-reload\n",
            "# would run: systemctl enable --now tenement\n",
        ];
        let mut from = 0;
        for part in order {
            let at = text[from..]
                .find(part)
                .unwrap_or_else(|| panic!("{part:?} after byte {from} in:\n{text}"));
            from += at + part.len();
        }
        // The binary already in place is not copied onto itself.
        let mut s = setup(InitSystem::OpenRc);
        s.exe = BINARY.into();
        s.live = false;
        let text = describe(&install_plan(&s), None);
        assert!(!text.contains("would copy"), "{text}");
        assert!(text.contains("# would write /etc/init.d/tenement (mode 0755):\n"));
        assert!(
            text.contains("# the init system is not running here: run `rc-update add tenement default` on the booted system\n"),
            "{text}"
        );
        let text = describe(
            &uninstall_plan(
                InitSystem::OpenRc,
                false,
                true,
                Path::new(CONFIG),
                Path::new(DATA_DIR),
            ),
            None,
        );
        assert!(
            text.contains("# would remove /etc/init.d/tenement\n"),
            "{text}"
        );
        assert!(text.contains("# would run: rc-update del tenement default\n"));
        assert!(text.contains(
            "kept the config /etc/tenement/tenement.toml and the data folder /var/lib/tenement"
        ));
    }

    #[test]
    fn quoting_leaves_plain_paths_alone() {
        assert_eq!(quote("/usr/bin/ten"), "/usr/bin/ten");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("$x\"y"), "\"\\$x\\\"y\"");
        assert_eq!(quote(""), "\"\"");
    }

    #[test]
    fn the_starter_config_loads() {
        let dir = crate::state::testdir::TempDir::new("starter-config");
        let path = dir.join("tenement.toml");
        std::fs::write(&path, starter_config("example.com", 8081)).unwrap();
        let config = crate::config::Config::load(&path).expect("starter config loads");
        assert_eq!(config.settings.domain, "example.com");
        assert_eq!(config.settings.listen.port(), 8081);
    }
}
