//! `ten install` / `ten uninstall`: write (or remove) a systemd unit or an
//! OpenRC script that runs `ten serve`, and enable it.
//!
//! Both build a plan (files to write or remove, commands to run) first;
//! `--dry-run` prints the plan, otherwise it is carried out in order and the
//! first failing step stops it. Needs root to carry out, never to plan.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::client::io_reason;
use super::{output, CliError, Ctx};
use crate::config;

const SYSTEMD_UNIT: &str = "/etc/systemd/system/tenement.service";
const OPENRC_SCRIPT: &str = "/etc/init.d/tenement";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitSystem {
    Systemd,
    OpenRc,
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Write {
        path: PathBuf,
        mode: u32,
        text: String,
    },
    Remove {
        path: PathBuf,
    },
    Run {
        argv: Vec<String>,
    },
}

fn run(argv: &[&str]) -> Step {
    Step::Run {
        argv: argv.iter().map(|s| s.to_string()).collect(),
    }
}

/// `--systemd`/`--openrc`, else what this machine runs.
fn init_system(ctx: &Ctx<'_>) -> Result<InitSystem, CliError> {
    let inv = ctx.inv;
    match (inv.has("systemd"), inv.has("openrc")) {
        (true, true) => Err(inv.usage("--systemd and --openrc exclude each other").into()),
        (true, false) => Ok(InitSystem::Systemd),
        (false, true) => Ok(InitSystem::OpenRc),
        // sd_booted(3): systemd is running when this folder exists.
        (false, false) if Path::new("/run/systemd/system").is_dir() => Ok(InitSystem::Systemd),
        (false, false) if Path::new("/sbin/openrc-run").exists() => Ok(InitSystem::OpenRc),
        // Showing a plan hurts nobody: default to the common case.
        (false, false) if inv.has("dry-run") => Ok(InitSystem::Systemd),
        (false, false) => Err(CliError::failed(
            "cannot tell the init system (neither systemd nor OpenRC found); pass --systemd or --openrc",
        )),
    }
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

fn systemd_unit(exe: &Path, args: &[String]) -> String {
    let cmd: Vec<String> = std::iter::once(exe.display().to_string())
        .chain(args.iter().cloned())
        .map(|w| quote(&w))
        .collect();
    format!(
        "# Written by `ten install`; `ten uninstall` removes it.
[Unit]
Description=tenement process hypervisor
Documentation=man:ten(1)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={}
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM goes to ten alone: it stops its instances itself (stop_timeout each),
# then anything left in the group is killed.
KillMode=mixed
TimeoutStopSec=60
Restart=on-failure
RestartSec=2
# ten manages cgroups for its instances.
Delegate=yes
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
",
        cmd.join(" ")
    )
}

fn openrc_script(exe: &Path, args: &[String]) -> String {
    let args: Vec<String> = args.iter().map(|w| quote(w)).collect();
    format!(
        "#!/sbin/openrc-run
# Written by `ten install`; `ten uninstall` removes it.
description=\"tenement process hypervisor\"
command={}
command_args=\"{}\"
command_background=true
pidfile=\"/run/tenement.pid\"
output_log=\"/var/log/tenement.log\"
error_log=\"/var/log/tenement.log\"
# ten stops its instances itself on SIGTERM; give it time before SIGKILL.
retry=\"TERM/60/KILL/5\"
extra_started_commands=\"reload\"

depend() {{
\tneed net
}}

reload() {{
\tebegin \"Reloading tenement\"
\tstart-stop-daemon --signal HUP --pidfile \"${{pidfile}}\"
\teend $?
}}
",
        quote(&exe.display().to_string()),
        args.join(" ").replace('"', "\\\"")
    )
}

fn install_plan(system: InitSystem, exe: &Path, args: &[String]) -> Vec<Step> {
    match system {
        InitSystem::Systemd => vec![
            Step::Write {
                path: SYSTEMD_UNIT.into(),
                mode: 0o644,
                text: systemd_unit(exe, args),
            },
            run(&["systemctl", "daemon-reload"]),
            run(&["systemctl", "enable", "--now", "tenement"]),
        ],
        InitSystem::OpenRc => vec![
            Step::Write {
                path: OPENRC_SCRIPT.into(),
                mode: 0o755,
                text: openrc_script(exe, args),
            },
            run(&["rc-update", "add", "tenement", "default"]),
            run(&["rc-service", "tenement", "start"]),
        ],
    }
}

fn uninstall_plan(system: InitSystem) -> Vec<Step> {
    match system {
        InitSystem::Systemd => vec![
            run(&["systemctl", "disable", "--now", "tenement"]),
            Step::Remove {
                path: SYSTEMD_UNIT.into(),
            },
            run(&["systemctl", "daemon-reload"]),
        ],
        InitSystem::OpenRc => vec![
            run(&["rc-service", "tenement", "stop"]),
            run(&["rc-update", "del", "tenement", "default"]),
            Step::Remove {
                path: OPENRC_SCRIPT.into(),
            },
        ],
    }
}

fn describe(plan: &[Step]) -> String {
    let mut out = String::new();
    for step in plan {
        match step {
            Step::Write { path, mode, text } => {
                out.push_str(&format!(
                    "# would write {} (mode {mode:04o}):\n{text}\n",
                    path.display()
                ));
            }
            Step::Remove { path } => out.push_str(&format!("# would remove {}\n", path.display())),
            Step::Run { argv } => out.push_str(&format!("# would run: {}\n", argv.join(" "))),
        }
    }
    out
}

fn carry_out(plan: &[Step]) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    for step in plan {
        match step {
            Step::Write { path, mode, text } => {
                std::fs::write(path, text)
                    .and_then(|()| {
                        std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                    })
                    .map_err(|e| {
                        CliError::failed(format!("write {}: {}", path.display(), io_reason(&e)))
                    })?;
                output::print(&format!("wrote {}\n", path.display()))?;
            }
            Step::Remove { path } => match std::fs::remove_file(path) {
                Ok(()) => output::print(&format!("removed {}\n", path.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CliError::failed(format!(
                        "remove {}: {}",
                        path.display(),
                        io_reason(&e)
                    )))
                }
            },
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
        }
    }
    Ok(())
}

fn require_root(what: &str) -> Result<(), CliError> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "{what} needs root (try sudo, or --dry-run to see what it would do)"
        )))
    }
}

pub fn install(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let system = init_system(ctx)?;
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| CliError::failed(format!("find this executable's path: {}", io_reason(&e))))?;
    let config = config::locate(ctx.config_flag()).ok_or_else(|| {
        CliError::failed(
            "no config file found: pass --config FILE (the service runs `ten serve --config FILE`)",
        )
    })?;
    let config = config
        .canonicalize()
        .map_err(|e| CliError::failed(format!("config {}: {}", config.display(), io_reason(&e))))?;
    // Only an explicit data dir goes on the command line; otherwise the
    // server resolves it from the config as usual (as root: /var/lib/tenement).
    let data_dir = ctx
        .data_dir_flag()
        .map(|d| std::path::absolute(&d).unwrap_or(d));
    let plan = install_plan(system, &exe, &serve_args(&config, data_dir.as_deref()));
    if ctx.inv.has("dry-run") {
        return output::print(&describe(&plan));
    }
    require_root("install")?;
    carry_out(&plan)
}

pub fn uninstall(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let system = match (inv.has("systemd"), inv.has("openrc")) {
        (false, false) if Path::new(SYSTEMD_UNIT).exists() => InitSystem::Systemd,
        (false, false) if Path::new(OPENRC_SCRIPT).exists() => InitSystem::OpenRc,
        (false, false) if !inv.has("dry-run") => {
            return Err(CliError::failed(format!(
                "tenement is not installed (neither {SYSTEMD_UNIT} nor {OPENRC_SCRIPT} exists)"
            )));
        }
        _ => init_system(ctx)?,
    };
    let plan = uninstall_plan(system);
    if inv.has("dry-run") {
        return output::print(&describe(&plan));
    }
    require_root("uninstall")?;
    carry_out(&plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_runs_serve_with_absolute_paths_and_quotes_spaces() {
        let args = serve_args(Path::new("/etc/tenement/tenement.toml"), None);
        let unit = systemd_unit(Path::new("/usr/local/bin/ten"), &args);
        assert!(
            unit.contains(
                "\nExecStart=/usr/local/bin/ten serve --config /etc/tenement/tenement.toml\n"
            ),
            "{unit}"
        );
        assert!(unit.contains("\nWantedBy=multi-user.target\n"));
        let args = serve_args(
            Path::new("/srv/my apps/tenement.toml"),
            Some(Path::new("/srv/data")),
        );
        let unit = systemd_unit(Path::new("/opt/ten"), &args);
        assert!(
            unit.contains("ExecStart=/opt/ten serve --config \"/srv/my apps/tenement.toml\" --data-dir /srv/data\n"),
            "{unit}"
        );
    }

    #[test]
    fn openrc_script_is_a_runscript() {
        let args = serve_args(Path::new("/etc/tenement/tenement.toml"), None);
        let s = openrc_script(Path::new("/usr/bin/ten"), &args);
        assert!(s.starts_with("#!/sbin/openrc-run\n"));
        assert!(s.contains("command=/usr/bin/ten\n"), "{s}");
        assert!(
            s.contains("command_args=\"serve --config /etc/tenement/tenement.toml\"\n"),
            "{s}"
        );
    }

    #[test]
    fn dry_run_lists_every_step() {
        let plan = install_plan(
            InitSystem::Systemd,
            Path::new("/usr/bin/ten"),
            &serve_args(Path::new("/c.toml"), None),
        );
        let text = describe(&plan);
        assert!(
            text.starts_with("# would write /etc/systemd/system/tenement.service (mode 0644):\n"),
            "{text}"
        );
        assert!(text.contains("# would run: systemctl daemon-reload\n"));
        assert!(
            text.ends_with("# would run: systemctl enable --now tenement\n"),
            "{text}"
        );
        let text = describe(&uninstall_plan(InitSystem::OpenRc));
        assert!(
            text.contains("# would remove /etc/init.d/tenement\n"),
            "{text}"
        );
    }

    #[test]
    fn quoting_leaves_plain_paths_alone() {
        assert_eq!(quote("/usr/bin/ten"), "/usr/bin/ten");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("$x\"y"), "\"\\$x\\\"y\"");
        assert_eq!(quote(""), "\"\"");
    }
}
