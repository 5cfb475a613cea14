//! The command table and the argument parser built on it.
//!
//! Every command (with the function that runs it), flag and help text lives
//! in `COMMANDS` and `GLOBALS`; the parser, `--help`, the man page's option
//! lists, the shell completions and dispatch all read the same table, so they
//! cannot drift apart. Parsing is pure: no I/O, no environment. Name
//! validation and number parsing happen later, in the command that knows
//! what the value means.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::{commands, completions, install, local, tokens, CliError, Ctx};

/// One `--flag` of a command (or a global one).
#[derive(Debug)]
pub struct FlagSpec {
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in help text (`N`, `URL`); None for a switch.
    pub value: Option<&'static str>,
    pub help: &'static str,
}

/// What a command's positional arguments are, for shell completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    None,
    /// `SVC:ID` of an existing instance.
    Instance,
    /// A shell name for `ten completions`.
    Shell,
    /// A command name for `ten help`.
    Command,
}

/// What running a command does, given its parsed invocation.
pub type Run = fn(&Ctx<'_>) -> Result<(), CliError>;

/// One `ten` command.
#[derive(Debug)]
pub struct CommandSpec {
    pub name: &'static str,
    /// The function that carries the command out.
    pub run: Run,
    pub aliases: &'static [&'static str],
    /// Usage lines without the leading `ten `.
    pub usage: &'static [&'static str],
    /// One line for the command list.
    pub summary: &'static str,
    /// The description paragraph(s) of `--help`.
    pub about: &'static str,
    pub flags: &'static [FlagSpec],
    /// How many positional arguments it takes: (min, max).
    pub positionals: (usize, usize),
    pub arg_kind: ArgKind,
    pub examples: &'static [&'static str],
}

const fn flag(long: &'static str, value: Option<&'static str>, help: &'static str) -> FlagSpec {
    FlagSpec {
        long,
        short: None,
        value,
        help,
    }
}

/// A flag with a one-letter form too.
const fn short(
    long: &'static str,
    c: char,
    value: Option<&'static str>,
    help: &'static str,
) -> FlagSpec {
    FlagSpec {
        long,
        short: Some(c),
        value,
        help,
    }
}

/// Options every command accepts, before or after the command name.
pub static GLOBALS: &[FlagSpec] = &[
    flag(
        "server",
        Some("URL"),
        "API address, http:// only ($TENEMENT_SERVER; default: the local socket {data_dir}/.tenement/ten.sock; without it, the config's listen when a token is given, else `ten` says the server is not running)",
    ),
    flag(
        "token",
        Some("T"),
        "API token for a server reached over TCP ($TENEMENT_TOKEN). The admin token in {data_dir}/api_token is never sent over TCP: the local socket needs no token",
    ),
    flag("data-dir", Some("DIR"), "tenement's data folder ($TENEMENT_DATA_DIR)"),
    flag("config", Some("FILE"), "config file ($TENEMENT_CONFIG; else ./tenement.toml, /etc/tenement/tenement.toml)"),
    flag("json", None, "machine-readable JSON output where a command prints a table"),
    FlagSpec { long: "help", short: Some('h'), value: None, help: "print help and exit" },
    FlagSpec { long: "version", short: Some('V'), value: None, help: "print the version and exit" },
];

const INIT_SYSTEM_FLAGS: &[FlagSpec] = &[
    flag(
        "systemd",
        None,
        "use systemd (default when /run/systemd/system exists)",
    ),
    flag("openrc", None, "use OpenRC"),
    flag(
        "dry-run",
        None,
        "print what would be written and run, change nothing",
    ),
];

/// Every command, in the order `ten --help` lists them.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "serve",
        run: local::serve,
        aliases: &[],
        usage: &["serve [--port P] [--bind ADDR] [--domain D]"],
        summary: "run the server in the foreground",
        about: "Runs the server in the foreground: the supervisor, the HTTP front, the management API and the local socket {data_dir}/.tenement/ten.sock. It prints `listening on http://IP:PORT` on stderr once it accepts connections. SIGTERM and SIGINT stop it and its instances gracefully; SIGHUP reloads the config.",
        flags: &[
            short("port", 'p', Some("P"), "port to listen on (replaces the port of settings.listen; 0 picks a free one)"),
            flag("bind", Some("ADDR"), "IP address to listen on (replaces the address of settings.listen)"),
            short("domain", 'd', Some("D"), "root domain: instances are {id}.{service}.D (settings.domain)"),
        ],
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["ten serve --config /etc/tenement/tenement.toml --port 8080"],
    },
    CommandSpec {
        name: "spawn",
        run: commands::spawn,
        aliases: &[],
        usage: &["spawn SVC:ID [--weight N] [--wait]", "spawn SVC --id ID [--weight N] [--wait]"],
        summary: "create and start an instance",
        about: "Creates an instance of service SVC and starts it. Returns once its command runs; errors starting it (command not found, bad workdir, isolation setup) are reported at once. With --wait it also waits until the instance is ready (its first health check passed).",
        flags: &[
            flag("id", Some("ID"), "the instance id, when SVC is given alone"),
            flag("weight", Some("N"), "traffic weight 0-100 (default 100)"),
            flag("wait", None, "wait until the instance is ready"),
        ],
        positionals: (1, 1),
        arg_kind: ArgKind::Instance,
        examples: &["ten spawn notes:alice --wait", "ten spawn api --id staging --weight 0"],
    },
    CommandSpec {
        name: "stop",
        run: commands::stop,
        aliases: &[],
        usage: &["stop SVC:ID"],
        summary: "stop an instance and forget it",
        about: "Stops the instance (SIGTERM to its process group, SIGKILL after settings.stop_timeout) and forgets it. With storage_persist = false its data folder is deleted.",
        flags: &[],
        positionals: (1, 1),
        arg_kind: ArgKind::Instance,
        examples: &["ten stop notes:alice"],
    },
    CommandSpec {
        name: "restart",
        run: commands::restart,
        aliases: &[],
        usage: &["restart SVC:ID"],
        summary: "restart an instance (also clears failed)",
        about: "Restarts the instance's process. A failed instance is started again and its restart count cleared.",
        flags: &[],
        positionals: (1, 1),
        arg_kind: ArgKind::Instance,
        examples: &["ten restart notes:alice"],
    },
    CommandSpec {
        name: "ps",
        run: commands::ps,
        aliases: &["ls"],
        usage: &["ps [--all] [--json]"],
        summary: "list instances",
        about: "Lists instances as a table: INSTANCE STATE HEALTH PID PORT UPTIME WEIGHT RESTARTS MEM ISOLATION. Sleeping instances are shown only with --all. With --json it prints the API's JSON array instead (filtered the same way).",
        flags: &[FlagSpec {
            long: "all",
            short: Some('a'),
            value: None,
            help: "include sleeping instances",
        }],
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["ten ps --all", "ten ls --json"],
    },
    CommandSpec {
        name: "health",
        run: commands::health,
        aliases: &[],
        usage: &["health SVC:ID [--json]"],
        summary: "show an instance's state, health and last check",
        about: "Shows the instance's state and health words, its restart count, and the result and time of its last health check.",
        flags: &[],
        positionals: (1, 1),
        arg_kind: ArgKind::Instance,
        examples: &["ten health notes:alice"],
    },
    CommandSpec {
        name: "weight",
        run: commands::weight,
        aliases: &[],
        usage: &["weight SVC:ID N"],
        summary: "set an instance's traffic weight (0-100)",
        about: "Sets the instance's share of its service's traffic, 0 to 100. Weight 0 takes it out of the service's rotation; its own {id}.{service} host still reaches it.",
        flags: &[],
        positionals: (2, 2),
        arg_kind: ArgKind::Instance,
        examples: &["ten weight api:canary 10"],
    },
    CommandSpec {
        name: "deploy",
        run: commands::deploy,
        aliases: &[],
        usage: &["deploy SVC:ID [--weight N] [--timeout S]", "deploy SVC --version V [--weight N] [--timeout S]"],
        summary: "spawn, wait until healthy, then set the weight",
        about: "Spawns the instance, waits until it is healthy, then sets its weight. Progress (each state and health change) is printed as it happens. Exits 1 with the server's reason if the instance does not become healthy within the timeout. `ten deploy SVC --version V` (the original tenement's form) is `ten deploy SVC:V`: after `deploy`, --version names the instance id and does not print ten's version.",
        flags: &[
            short("weight", 'w', Some("N"), "weight to set once healthy, 0-100 (default 100)"),
            flag("timeout", Some("S"), "seconds to wait for health (default 60)"),
            short("version", 'v', Some("V"), "the instance id, when SVC is given alone (same as SVC:V)"),
        ],
        positionals: (1, 1),
        arg_kind: ArgKind::Instance,
        examples: &["ten deploy api:green --weight 0 --timeout 120", "ten deploy api --version v2 -w 10"],
    },
    CommandSpec {
        name: "route",
        run: commands::route,
        aliases: &[],
        usage: &["route SVC --from A --to B"],
        summary: "move all traffic from one instance to another",
        about: "Atomically sets instance SVC:A to weight 0 and SVC:B to weight 100 (a blue-green switch). Both instances must exist.",
        flags: &[
            flag("from", Some("A"), "the instance id that gets weight 0 (required)"),
            flag("to", Some("B"), "the instance id that gets weight 100 (required)"),
        ],
        positionals: (1, 1),
        arg_kind: ArgKind::None,
        examples: &["ten route api --from blue --to green"],
    },
    CommandSpec {
        name: "logs",
        run: commands::logs,
        aliases: &[],
        usage: &["logs [SVC[:ID]] [-f] [--search S] [--limit N] [--since D] [--stream stdout|stderr|ten] [--level L]"],
        summary: "show instance logs, newest last",
        about: "Prints log lines as `TIME INSTANCE STREAM LINE`, oldest first and newest last. Without an argument it shows every instance's lines; SVC alone shows that service's. The stream `ten` holds tenement's own lifecycle lines for the instance. --since filters the lines the server returned (at most --limit of them). With -f it keeps printing new lines as they are written until interrupted. Control characters in app output are printed as escapes (\\x1b, \\r, ...).",
        flags: &[
            FlagSpec { long: "follow", short: Some('f'), value: None, help: "keep printing new lines as they arrive" },
            flag("search", Some("S"), "only lines containing S"),
            flag("limit", Some("N"), "at most N lines (default 100)"),
            flag("since", Some("D"), "only lines newer than D ago: 30s, 10m, 2h, 1d"),
            flag("stream", Some("S"), "only stdout or stderr (or ten)"),
            flag("level", Some("L"), "the original tenement's filter, as a stream: stdout, stderr or ten; error, err, warn, warning mean stderr; info means stdout"),
        ],
        positionals: (0, 1),
        arg_kind: ArgKind::Instance,
        examples: &["ten logs notes:alice --since 10m --stream stderr", "ten logs api -f"],
    },
    CommandSpec {
        name: "init",
        run: local::init,
        aliases: &[],
        usage: &["init [--name N] [--command C]"],
        summary: "write a starter tenement.toml here",
        about: "Writes a starter tenement.toml in the current folder with one service. Refuses to overwrite an existing file.",
        flags: &[
            flag("name", Some("N"), "the service's name (default app)"),
            flag("command", Some("C"), "the service's command (default \"python3 app.py\")"),
        ],
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["ten init --name notes --command \"uv run python app.py\""],
    },
    CommandSpec {
        name: "config",
        run: local::config,
        aliases: &[],
        usage: &["config [--check]"],
        summary: "print the resolved config, or validate it",
        about: "Finds the config (--config, $TENEMENT_CONFIG, ./tenement.toml, /etc/tenement/tenement.toml), validates it and prints it resolved. With --check it prints `ok: FILE` or the error (file, line, key) and exits 1 on error.",
        flags: &[flag("check", None, "only validate")],
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["ten config --check --config ./tenement.toml"],
    },
    CommandSpec {
        name: "token-gen",
        run: tokens::token_gen,
        aliases: &[],
        usage: &["token-gen [--tenant T] [--description D]", "token-gen --rotate [--description D]"],
        summary: "mint an API token, or replace the admin token",
        about: "Mints an API token and prints it once, alone on its own line indented by two spaces (the explanation goes to stderr). Only its hash is stored, in {data_dir}/.tenement/tokens. An admin token (no --tenant) is also saved to {data_dir}/api_token (0600), to pass with --token where one is needed; the CLI never sends it over TCP by itself. With --rotate it replaces the admin token saved in {data_dir}/api_token: the new one is saved there and the old one is refused from the next request on, also on connections already open. Works with the server running or stopped; a running server picks up the change at once.",
        flags: &[
            flag("tenant", Some("T"), "a tenant token: it sees and acts only on instances with id T"),
            flag("description", Some("D"), "a note stored with the token's hash (with --rotate: default the old token's)"),
            flag("rotate", None, "replace the admin token in {data_dir}/api_token and revoke the old one"),
        ],
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["ten token-gen --tenant alice --description \"alice's deploy key\"", "ten token-gen --rotate"],
    },
    CommandSpec {
        name: "token",
        run: tokens::token,
        aliases: &[],
        usage: &["token list", "token revoke ID"],
        summary: "list or revoke API tokens",
        about: "`ten token list` shows every API token: its id, kind (admin or tenant), tenant, when it was created and when it was last used, and its description; never the token or its hash (--json for JSON). `ten token revoke ID` revokes the token with that id: from the next request on it gets 401, also on connections already open; if it is the admin token saved in {data_dir}/api_token, that file is removed. Both ask the running server (over the local socket, or --server with an admin token); with the server stopped they read and write {data_dir}/.tenement/tokens directly. \"Last used\" is kept in memory by the server and written to the tokens file once a minute and when it stops.",
        flags: &[],
        positionals: (1, 2),
        arg_kind: ArgKind::None,
        examples: &["ten token list", "ten token revoke 3f9a01c2"],
    },
    CommandSpec {
        name: "reload",
        run: commands::reload,
        aliases: &[],
        usage: &["reload"],
        summary: "re-read the config without dropping connections",
        about: "Asks the server to re-read its config and TLS files without dropping connections (same as SIGHUP). A config error is reported and the old config kept.",
        flags: &[],
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["ten reload"],
    },
    CommandSpec {
        name: "install",
        run: install::install,
        aliases: &[],
        usage: &["install [--systemd|--openrc] [--dry-run]"],
        summary: "install and start tenement as a system service",
        about: "Writes a service that runs `ten serve --config FILE` (this executable and the config found, both as absolute paths), then enables and starts it: /etc/systemd/system/tenement.service with `systemctl daemon-reload` and `systemctl enable --now tenement`, or /etc/init.d/tenement with `rc-update add tenement default` and `rc-service tenement start`. Needs root unless --dry-run.",
        flags: INIT_SYSTEM_FLAGS,
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["sudo ten install --config /etc/tenement/tenement.toml", "ten install --dry-run"],
    },
    CommandSpec {
        name: "uninstall",
        run: install::uninstall,
        aliases: &[],
        usage: &["uninstall [--systemd|--openrc] [--dry-run]"],
        summary: "stop and remove the system service",
        about: "Stops and disables the service written by `ten install` and removes its file. Instance data and the data folder are left alone. Needs root unless --dry-run.",
        flags: INIT_SYSTEM_FLAGS,
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["sudo ten uninstall"],
    },
    CommandSpec {
        name: "caddy",
        run: local::caddy,
        aliases: &[],
        usage: &["caddy --domain D [--dns-provider P]"],
        summary: "print a Caddyfile for wildcard TLS in front of tenement",
        about: "Prints a Caddyfile that serves *.D and D with TLS and proxies to tenement's listen address (from the config when found, else 127.0.0.1:8080). Wildcard certificates need the ACME DNS challenge: name your DNS provider's Caddy module with --dns-provider; its API token is read from the environment variable PROVIDER_API_TOKEN.",
        flags: &[
            flag("domain", Some("D"), "the root domain (required)"),
            flag("dns-provider", Some("P"), "Caddy DNS module name, e.g. cloudflare, route53"),
        ],
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["ten caddy --domain example.com --dns-provider cloudflare > /etc/caddy/Caddyfile"],
    },
    CommandSpec {
        name: "completions",
        run: completions::command,
        aliases: &[],
        usage: &["completions bash|zsh|fish"],
        summary: "print a shell completion script",
        about: "Prints a completion script for bash, zsh or fish. Instance names are completed from `ten ps --all` when the server is reachable.",
        flags: &[],
        positionals: (1, 1),
        arg_kind: ArgKind::Shell,
        examples: &[
            "ten completions bash > /etc/bash_completion.d/ten",
            "ten completions fish > ~/.config/fish/completions/ten.fish",
        ],
    },
    CommandSpec {
        name: "help",
        run: super::help,
        aliases: &[],
        usage: &["help [COMMAND]"],
        summary: "show help for ten or for one command",
        about: "Prints the list of commands, or one command's usage, options and an example.",
        flags: &[],
        positionals: (0, 1),
        arg_kind: ArgKind::Command,
        examples: &["ten help deploy"],
    },
];

/// What `ten help [TOPIC]` prints: the overview, or the help of the command
/// named (or aliased) `topic`. Err: no such command.
pub fn help_text(topic: Option<&str>) -> Result<String, UsageError> {
    match topic {
        None => Ok(overview()),
        Some(name) => match find_command(name) {
            Some(c) => Ok(command_help(c)),
            None => Err(UsageError::new(None, unknown_command(name))),
        },
    }
}

/// Finds a command by name or alias.
pub fn find_command(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.name == name || c.aliases.contains(&name))
}

/// A usage error: printed with a pointer to `--help`, exit 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    /// The command whose `--help` the hint points at; None: `ten --help`.
    pub command: Option<&'static str>,
}

impl UsageError {
    pub fn new(command: Option<&'static str>, message: impl Into<String>) -> UsageError {
        UsageError {
            message: message.into(),
            command,
        }
    }
}

/// The global options as given on the command line (environment not applied).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Globals {
    pub server: Option<String>,
    pub token: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub json: bool,
}

/// A command to run with its flags and positional arguments.
#[derive(Debug)]
pub struct Invocation {
    pub globals: Globals,
    pub command: &'static CommandSpec,
    /// (long name, value); switches have None. Later ones win.
    flags: Vec<(&'static str, Option<String>)>,
    pub positionals: Vec<String>,
}

impl Invocation {
    /// The value of a flag that takes one, if given.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether a switch was given.
    pub fn has(&self, long: &str) -> bool {
        self.flags.iter().any(|(l, _)| *l == long)
    }

    /// A usage error that points at this command's `--help`.
    pub fn usage(&self, message: impl Into<String>) -> UsageError {
        UsageError::new(Some(self.command.name), message)
    }

    /// Parses a flag's value as a number in `range`. Missing: None.
    pub fn number<T>(
        &self,
        long: &str,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<Option<T>, UsageError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        match self.value(long) {
            None => Ok(None),
            Some(raw) => parse_number(raw, range)
                .map(Some)
                .map_err(|why| self.usage(format!("--{long}: {why}"))),
        }
    }
}

/// Parses a number within `range`; the error says what was expected.
pub fn parse_number<T>(raw: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let bad = || {
        format!(
            "expected a number from {} to {}, got {raw:?}",
            range.start(),
            range.end()
        )
    };
    let n: T = raw.trim().parse().map_err(|_| bad())?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Print help: for a command, or the overview (None).
    Help(Option<&'static CommandSpec>),
    Version,
    Run(Invocation),
    /// No command at all: print the overview on stderr and exit 2.
    Nothing,
}

/// Parses argv without the program name.
///
/// Global options may come before or after the command; a command's own flags
/// only after it. `--opt value` and `--opt=value` both work, `--` ends the
/// options. `-h`/`--help` anywhere wins over every other error, so
/// `ten spawn --help` works without the arguments spawn needs.
pub fn parse(args: &[OsString]) -> Result<Parsed, UsageError> {
    let mut globals = Globals::default();
    let mut command: Option<&'static CommandSpec> = None;
    let mut flags = Vec::new();
    let mut positionals = Vec::new();
    let mut help = false;
    let mut version = false;
    // The first error is kept and reported only if no --help turns up later.
    let mut error: Option<UsageError> = None;
    let mut only_positionals = false;

    let mut i = 0;
    while i < args.len() {
        let Some(arg) = args[i].to_str() else {
            error.get_or_insert(UsageError::new(
                command.map(|c| c.name),
                format!("argument {:?} is not valid UTF-8", args[i]),
            ));
            i += 1;
            continue;
        };
        i += 1;
        let here = command.map(|c| c.name);

        if only_positionals || arg == "-" || !arg.starts_with('-') {
            match command {
                None => match find_command(arg) {
                    Some(c) => command = Some(c),
                    None => {
                        error.get_or_insert(UsageError::new(None, unknown_command(arg)));
                    }
                },
                Some(_) => positionals.push(arg.to_string()),
            }
            continue;
        }
        if arg == "--" {
            only_positionals = true;
            continue;
        }

        // Split `--name=value`; short flags take no `=` form.
        let (name, inline) = match arg.strip_prefix("--") {
            Some(rest) => match rest.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (rest, None),
            },
            None => (arg, None),
        };
        let spec = lookup(command, name, arg.starts_with("--"));
        let Some((spec, is_global)) = spec else {
            let msg = match command {
                Some(c) => format!("unknown option {arg:?} for `ten {}`", c.name),
                None => format!("unknown option {arg:?}"),
            };
            error.get_or_insert(UsageError::new(here, msg));
            continue;
        };

        let value = match (spec.value, inline) {
            (None, None) => None,
            (None, Some(_)) => {
                error.get_or_insert(UsageError::new(
                    here,
                    format!("option --{} takes no value", spec.long),
                ));
                continue;
            }
            (Some(_), Some(v)) => Some(v),
            (Some(meta), None) => match args.get(i).and_then(|a| a.to_str()) {
                Some(v) => {
                    i += 1;
                    Some(v.to_string())
                }
                None => {
                    error.get_or_insert(UsageError::new(
                        here,
                        format!("option --{} needs a value ({meta})", spec.long),
                    ));
                    continue;
                }
            },
        };

        if is_global {
            match spec.long {
                "help" => help = true,
                "version" => version = true,
                "json" => globals.json = true,
                "server" => globals.server = value,
                "token" => globals.token = value,
                "data-dir" => globals.data_dir = value.map(PathBuf::from),
                "config" => globals.config = value.map(PathBuf::from),
                other => unreachable!("global option --{other} has no field"),
            }
        } else {
            flags.push((spec.long, value));
        }
    }

    if help {
        return Ok(Parsed::Help(command));
    }
    if let Some(e) = error {
        return Err(e);
    }
    let Some(command) = command else {
        return Ok(if version {
            Parsed::Version
        } else {
            Parsed::Nothing
        });
    };
    let (min, max) = command.positionals;
    // `--version` prints the version only when nothing else on the line is
    // left over: `ten spawn api:x --version v2` is a mistake, not a question.
    if positionals.len() > max {
        let hint = if version {
            " (--version prints ten's version and takes no value)"
        } else {
            ""
        };
        return Err(UsageError::new(
            Some(command.name),
            format!("unexpected argument {:?}{hint}", positionals[max]),
        ));
    }
    if version {
        return Ok(Parsed::Version);
    }
    if positionals.len() < min {
        let what = command.usage[0]
            .split_whitespace()
            .nth(1 + positionals.len())
            .unwrap_or("an argument");
        return Err(UsageError::new(
            Some(command.name),
            format!("missing argument {what}"),
        ));
    }
    Ok(Parsed::Run(Invocation {
        globals,
        command,
        flags,
        positionals,
    }))
}

/// Looks an option up in the command's flags first, then the globals.
/// Returns the spec and whether it is global.
fn lookup(
    command: Option<&'static CommandSpec>,
    name: &str,
    long: bool,
) -> Option<(&'static FlagSpec, bool)> {
    let matches = |f: &FlagSpec| {
        if long {
            f.long == name
        } else {
            let mut chars = name.strip_prefix('-').unwrap_or("").chars();
            matches!((chars.next(), chars.next()), (Some(c), None) if f.short == Some(c))
        }
    };
    if let Some(c) = command {
        if let Some(f) = c.flags.iter().find(|f| matches(f)) {
            return Some((f, false));
        }
    }
    GLOBALS.iter().find(|f| matches(f)).map(|f| (f, true))
}

fn unknown_command(name: &str) -> String {
    let near = COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()))
        .map(|n| (edit_distance(name, n), n))
        .min();
    match near {
        Some((d, n)) if d <= 2 => format!("unknown command {name:?} (did you mean `{n}`?)"),
        _ => format!("unknown command {name:?}"),
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `--flag VALUE` or `-f, --flag`, as the left column of help text.
pub fn flag_label(f: &FlagSpec) -> String {
    let mut s = String::new();
    if let Some(c) = f.short {
        let _ = write!(s, "-{c}, ");
    }
    let _ = write!(s, "--{}", f.long);
    if let Some(v) = f.value {
        let _ = write!(s, " {v}");
    }
    s
}

/// Two columns: the flag, then its help wrapped under itself.
fn option_rows(out: &mut String, flags: &[FlagSpec]) {
    let width = flags.iter().map(|f| flag_label(f).len()).max().unwrap_or(0);
    let indent = " ".repeat(width + 4);
    for f in flags {
        let mut text = String::new();
        wrap(&mut text, f.help, &indent);
        let _ = write!(
            out,
            "  {:<width$}  {}",
            flag_label(f),
            &text[indent.len()..]
        );
    }
}

/// Wraps text at 78 columns, every line starting with `indent`.
fn wrap(out: &mut String, text: &str, indent: &str) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > 78 {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{indent}{line}");
    }
}

/// `ten --help`: every command and the global options.
pub fn overview() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ten {}: a process hypervisor for one Linux server\n\nUsage: ten [OPTIONS] COMMAND [ARGS]\n\nCommands:",
        env!("CARGO_PKG_VERSION")
    );
    let width = COMMANDS.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in COMMANDS {
        let _ = writeln!(out, "  {:<width$}  {}", c.name, c.summary);
    }
    let _ = writeln!(out, "\nOptions (before or after the command):");
    option_rows(&mut out, GLOBALS);
    let _ = writeln!(
        out,
        "\nEnvironment: TENEMENT_SERVER, TENEMENT_TOKEN, TENEMENT_CONFIG, TENEMENT_DATA_DIR,\nTEN_LOG. Exit status: 0 ok, 1 failed, 2 bad usage.\n\nRun `ten help COMMAND` or `ten COMMAND --help` for a command's options,\n`man ten` for more."
    );
    out
}

/// `ten CMD --help`: usage, description, options and examples.
pub fn command_help(c: &CommandSpec) -> String {
    let mut out = String::new();
    for (i, u) in c.usage.iter().enumerate() {
        let lead = if i == 0 { "Usage:" } else { "      " };
        let _ = writeln!(out, "{lead} ten {u}");
    }
    if !c.aliases.is_empty() {
        let _ = writeln!(out, "Alias: {}", c.aliases.join(", "));
    }
    out.push('\n');
    wrap(&mut out, c.about, "");
    if !c.flags.is_empty() {
        let _ = writeln!(out, "\nOptions:");
        option_rows(&mut out, c.flags);
    }
    let _ = writeln!(
        out,
        "\nGlobal options: --server URL, --token T, --data-dir DIR, --config FILE, --json\n(see `ten --help`)."
    );
    let _ = writeln!(
        out,
        "\n{}:",
        if c.examples.len() > 1 {
            "Examples"
        } else {
            "Example"
        }
    );
    for e in c.examples {
        let _ = writeln!(out, "  {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, UsageError> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&v)
    }

    fn run(args: &[&str]) -> Invocation {
        match p(args) {
            Ok(Parsed::Run(inv)) => inv,
            other => panic!("expected a command for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn globals_before_and_after_the_command_are_the_same() {
        let a = run(&["--server", "http://h:1", "--json", "ps", "--all"]);
        let b = run(&["ps", "--all", "--json", "--server", "http://h:1"]);
        assert_eq!(a.globals, b.globals);
        assert_eq!(a.globals.server.as_deref(), Some("http://h:1"));
        assert!(a.globals.json && a.has("all") && b.has("all"));
        assert_eq!(a.command.name, "ps");
    }

    #[test]
    fn equals_form_and_space_form_both_give_the_value() {
        let a = run(&[
            "spawn",
            "api:prod",
            "--weight=7",
            "--token=t1",
            "--data-dir=/d",
        ]);
        assert_eq!(a.value("weight"), Some("7"));
        assert_eq!(a.globals.token.as_deref(), Some("t1"));
        assert_eq!(a.globals.data_dir, Some(PathBuf::from("/d")));
        let b = run(&["spawn", "api:prod", "--weight", "7", "--config", "x.toml"]);
        assert_eq!(b.value("weight"), Some("7"));
        assert_eq!(b.globals.config, Some(PathBuf::from("x.toml")));
        // A value may itself start with '-' or contain '='.
        let c = run(&["logs", "--search", "-x=1"]);
        assert_eq!(c.value("search"), Some("-x=1"));
    }

    #[test]
    fn later_flag_wins() {
        let a = run(&["spawn", "a:b", "--weight", "1", "--weight", "2"]);
        assert_eq!(a.value("weight"), Some("2"));
    }

    #[test]
    fn svc_with_id_flag_form_parses() {
        let a = run(&["spawn", "api", "--id", "prod", "--wait"]);
        assert_eq!(a.positionals, vec!["api".to_string()]);
        assert_eq!(a.value("id"), Some("prod"));
        assert!(a.has("wait"));
    }

    #[test]
    fn unknown_flag_is_a_usage_error_naming_it() {
        let e = p(&["ps", "--bogus"]).unwrap_err();
        assert!(e.message.contains("--bogus"), "{}", e.message);
        assert_eq!(e.command, Some("ps"));
        let e = p(&["--bogus", "ps"]).unwrap_err();
        assert_eq!(e.command, None);
        // A command's flag is not valid before the command.
        assert!(p(&["--all", "ps"]).is_err());
        // Nor for another command.
        assert!(p(&["stop", "a:b", "--wait"]).is_err());
    }

    #[test]
    fn unknown_command_suggests_the_nearest() {
        let e = p(&["spwan", "a:b"]).unwrap_err();
        assert!(e.message.contains("did you mean `spawn`"), "{}", e.message);
        let e = p(&["frobnicate"]).unwrap_err();
        assert!(!e.message.contains("did you mean"), "{}", e.message);
    }

    #[test]
    fn missing_argument_and_missing_value_are_usage_errors() {
        let e = p(&["stop"]).unwrap_err();
        assert_eq!(e.message, "missing argument SVC:ID");
        let e = p(&["weight", "a:b"]).unwrap_err();
        assert_eq!(e.message, "missing argument N");
        let e = p(&["spawn", "a:b", "--weight"]).unwrap_err();
        assert!(
            e.message.contains("--weight needs a value"),
            "{}",
            e.message
        );
        let e = p(&["ps", "extra"]).unwrap_err();
        assert!(e.message.contains("unexpected argument"), "{}", e.message);
        let e = p(&["ps", "--all=yes"]).unwrap_err();
        assert!(e.message.contains("takes no value"), "{}", e.message);
    }

    #[test]
    fn help_wins_over_errors_and_missing_arguments() {
        assert!(matches!(p(&["stop", "--help"]), Ok(Parsed::Help(Some(c))) if c.name == "stop"));
        assert!(matches!(p(&["-h", "spawn"]), Ok(Parsed::Help(Some(c))) if c.name == "spawn"));
        assert!(matches!(
            p(&["spawn", "--bogus", "-h"]),
            Ok(Parsed::Help(Some(_)))
        ));
        assert!(matches!(p(&["--help"]), Ok(Parsed::Help(None))));
        assert!(matches!(p(&["help", "ls"]), Ok(Parsed::Run(inv)) if inv.command.name == "help"));
        assert!(matches!(p(&["-V"]), Ok(Parsed::Version)));
        assert!(matches!(p(&["ps", "--version"]), Ok(Parsed::Version)));
        assert!(matches!(p(&[]), Ok(Parsed::Nothing)));
    }

    #[test]
    fn double_dash_ends_options_and_aliases_resolve() {
        let a = run(&["logs", "--", "-weird"]);
        assert_eq!(a.positionals, vec!["-weird".to_string()]);
        let a = run(&["ls", "-a"]);
        assert_eq!(a.command.name, "ps");
        assert!(a.has("all"));
        let a = run(&["logs", "-f"]);
        assert!(a.has("follow"));
    }

    #[test]
    fn numbers_are_checked_against_their_range() {
        let a = run(&["spawn", "a:b", "--weight", "101"]);
        assert!(a.number::<u8>("weight", 0..=100).is_err());
        let a = run(&["spawn", "a:b", "--weight", "x"]);
        assert!(a.number::<u8>("weight", 0..=100).is_err());
        let a = run(&["spawn", "a:b", "--weight", "100"]);
        assert_eq!(a.number::<u8>("weight", 0..=100), Ok(Some(100)));
        assert_eq!(a.number::<u8>("nothing", 0..=100), Ok(None));
    }

    #[test]
    fn every_command_has_help_with_usage_and_example() {
        for c in COMMANDS {
            let h = command_help(c);
            assert!(h.starts_with(&format!("Usage: ten {}", c.name)), "{h}");
            assert!(h.contains("Example"), "{h}");
            for f in c.flags {
                assert!(
                    h.contains(&format!("--{}", f.long)),
                    "{} lacks --{}",
                    c.name,
                    f.long
                );
            }
            assert!(overview().contains(c.name));
        }
    }

    /// The command flags that reuse a global flag's name, because the
    /// original tenement's commands had them (`ten deploy api --version v2`).
    /// After the command name the command's flag wins; before it, the global.
    const SHADOWED_GLOBALS: &[(&str, &str)] = &[("deploy", "version")];

    #[test]
    fn no_command_flag_shadows_a_global_one() {
        for c in COMMANDS {
            for f in c.flags {
                assert!(
                    GLOBALS.iter().all(|g| g.long != f.long)
                        || SHADOWED_GLOBALS.contains(&(c.name, f.long)),
                    "{} --{}",
                    c.name,
                    f.long
                );
                assert!(GLOBALS
                    .iter()
                    .all(|g| f.short.is_none() || g.short != f.short));
            }
        }
    }

    #[test]
    fn help_command_shows_the_list_or_one_command() {
        assert_eq!(help_text(None).unwrap(), overview());
        let ps = find_command("ps").unwrap();
        assert_eq!(help_text(Some("ls")).unwrap(), command_help(ps));
        let e = help_text(Some("nope")).unwrap_err();
        assert!(e.message.contains("unknown command"), "{}", e.message);
        assert!(p(&["help", "ps", "logs"]).is_err());
    }

    /// The original tenement's command lines parse as its commands meant
    /// them: the value goes to the command's flag, never to a global one.
    #[test]
    fn the_original_tenements_forms_parse_as_its_commands_flags() {
        let a = run(&["deploy", "api", "--version", "v2"]);
        assert_eq!((a.command.name, a.value("version")), ("deploy", Some("v2")));
        let a = run(&["deploy", "api", "-v", "v2", "-w", "10", "--timeout", "60"]);
        assert_eq!(
            (a.value("version"), a.value("weight"), a.value("timeout")),
            (Some("v2"), Some("10"), Some("60"))
        );
        let a = run(&["deploy", "api:v2", "-w", "10"]);
        assert_eq!(a.value("weight"), Some("10"));
        let a = run(&["serve", "-p", "8080", "-d", "example.com"]);
        assert_eq!(
            (a.value("port"), a.value("domain")),
            (Some("8080"), Some("example.com"))
        );
        let a = run(&["logs", "api:prod", "--level", "stderr", "-f"]);
        assert_eq!(a.value("level"), Some("stderr"));
        assert!(a.has("follow"));
        // Before the command name, --version is still ten's own.
        assert!(matches!(p(&["--version", "deploy"]), Ok(Parsed::Version)));
    }

    /// A global switch that ends the run (--version, -V) never hides what
    /// follows it: a word left over is a usage error naming it, for every
    /// command, so `ten CMD ... --version WORD` cannot exit 0 having done
    /// nothing.
    #[test]
    fn a_global_switch_never_swallows_the_rest_of_the_line() {
        for c in COMMANDS {
            // Enough positionals to fill the command, then one more word.
            let mut args: Vec<&str> = vec![c.name];
            args.extend(std::iter::repeat_n("a:b", c.positionals.1));
            for switch in ["--version", "-V"] {
                let mut line = args.clone();
                line.push(switch);
                line.push("v2");
                match p(&line) {
                    Ok(Parsed::Run(inv)) => assert!(
                        inv.value("version") == Some("v2"),
                        "{line:?}: the command's own flag"
                    ),
                    Ok(other) => panic!("{line:?} gave {other:?}"),
                    Err(e) => assert!(e.message.contains("\"v2\""), "{line:?}: {}", e.message),
                }
            }
        }
        // Alone after a command, it still prints the version.
        assert!(matches!(p(&["ps", "-V"]), Ok(Parsed::Version)));
        assert!(matches!(p(&["stop", "--version"]), Ok(Parsed::Version)));
    }
}
