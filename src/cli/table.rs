//! The command table: every `ten` command with the function that runs it,
//! its usage, flags, help text and examples, and the global options. The
//! parser, `--help`, the man page's option lists, the shell completions and
//! dispatch all read it, so they cannot drift apart. Data only, no logic.

use super::{commands, completions, export, install, local, move_instance, tokens, CliError, Ctx};

/// One `--flag` of a command (or a global one).
#[derive(Debug)]
pub struct FlagSpec {
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in help text (`N`, `URL`); None for a switch.
    pub value: Option<&'static str>,
    pub help: &'static str,
    /// Set on the global options only: which of them it is.
    pub global: Option<Global>,
}

/// The global options (`GLOBALS`), each naming where the parser puts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    Server,
    Cacert,
    Token,
    DataDir,
    Config,
    Json,
    Help,
    Version,
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
        global: None,
    }
}

/// `spec` as the global option `which`.
const fn global(which: Global, spec: FlagSpec) -> FlagSpec {
    FlagSpec {
        global: Some(which),
        ..spec
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
        global: None,
    }
}

/// Options every command accepts, before or after the command name.
pub static GLOBALS: &[FlagSpec] = &[
    global(Global::Server, flag(
        "server",
        Some("URL"),
        "API address, http:// or https:// ($TENEMENT_SERVER; default: the local socket {data_dir}/.tenement/ten.sock; without it, the config's listen when a token is given, else `ten` says the server is not running)",
    )),
    global(Global::Cacert, flag(
        "cacert",
        Some("FILE"),
        "PEM CA certificate(s) an https:// server is verified against (default: the system's, /etc/ssl/certs/ca-certificates.crt)",
    )),
    global(Global::Token, flag(
        "token",
        Some("T"),
        "API token for a server reached over TCP ($TENEMENT_TOKEN). The admin token in {data_dir}/api_token is never sent over TCP: the local socket needs no token",
    )),
    global(Global::DataDir, flag("data-dir", Some("DIR"), "tenement's data folder ($TENEMENT_DATA_DIR)")),
    global(Global::Config, flag("config", Some("FILE"), "config file ($TENEMENT_CONFIG; else ./tenement.toml, /etc/tenement/tenement.toml)")),
    global(Global::Json, flag("json", None, "machine-readable JSON output where a command prints a table")),
    global(Global::Help, short("help", 'h', None, "print help and exit")),
    global(Global::Version, short("version", 'V', None, "print the version and exit")),
];

const SYSTEMD_FLAG: FlagSpec = flag(
    "systemd",
    None,
    "use systemd (default when /run/systemd/system exists)",
);
const OPENRC_FLAG: FlagSpec = flag("openrc", None, "use OpenRC");
const DRY_RUN_FLAG: FlagSpec = flag(
    "dry-run",
    None,
    "print what would be written and run, change nothing",
);

const INSTALL_FLAGS: &[FlagSpec] = &[
    SYSTEMD_FLAG,
    OPENRC_FLAG,
    DRY_RUN_FLAG,
    flag(
        "root",
        Some("DIR"),
        "install into DIR (paths prefixed, no command run)",
    ),
    flag(
        "domain",
        Some("D"),
        "the domain of a new /etc/tenement/tenement.toml",
    ),
    flag(
        "port",
        Some("P"),
        "the port of a new /etc/tenement/tenement.toml (default 8080)",
    ),
];

const UNINSTALL_FLAGS: &[FlagSpec] = &[
    SYSTEMD_FLAG,
    OPENRC_FLAG,
    DRY_RUN_FLAG,
    flag(
        "root",
        Some("DIR"),
        "uninstall from DIR (paths prefixed, no command run)",
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
        about: "Lists instances as a table: INSTANCE STATE HEALTH PID PORT UPTIME WEIGHT RESTARTS MEM DISK ISOLATION UID (DISK: the data dir size of an instance with a storage_quota_mb, `!` when over it; UID: the uid its process runs as). Sleeping instances are shown only with --all. With --json it prints the API's JSON array instead (filtered the same way).",
        flags: &[short("all", 'a', None, "include sleeping instances")],
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
        name: "export",
        run: export::export,
        aliases: &[],
        usage: &["export [--haproxy-map] [--node NAME] [--json]"],
        summary: "print the edge proxy's map lines for this node",
        about: "Prints one HAProxy map line `HOST NODE` for every instance (`{id}.{service}.{domain}`) and for every service this node serves, that is has an instance with weight above 0 (`{service}.{domain}`). NODE is --node, else the server's hostname, and names the HAProxy backend of this node. Concatenate the output of every node into the map file that `use_backend %[req.hdr(host),lower,map(FILE)]` reads; update a running HAProxy with `set map` on its runtime API. --json prints the API's JSON (node, domain, and one object per line with host, node, service and instance) for other tools.",
        flags: &[
            flag("haproxy-map", None, "HAProxy map lines (the default format)"),
            flag("node", Some("NAME"), "the backend name to map to (default: the server's hostname)"),
        ],
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["ten export --haproxy-map --node node-a >> /etc/haproxy/tenement.map", "ten --server http://10.0.0.2:8080 --token T export --json"],
    },
    CommandSpec {
        name: "move",
        run: move_instance::run,
        aliases: &[],
        usage: &[
            "move SVC:ID --to URL --to-token T [--to-node NAME] [--haproxy-socket PATH]",
            "move SVC:ID --flipped",
        ],
        summary: "move an instance and its data to another node",
        about: "Moves the instance from the server `ten` talks to (the source) to the tenement node whose API is at URL (T: an admin token there), without failing a request. The source copies the data dir to the target while the instance runs, then holds new requests for it, stops it gracefully, copies what changed, starts it on the target with its weight and waits until it is ready, and from then on forwards held and later requests to the target. Each phase is printed, logged in the instance's log and shown by `ten ps` (copy, stop, sync, start, moved). At the end it prints the edge's new map line `HOST NODE` (NODE: --to-node, else the target's hostname); with --haproxy-socket it sets it through HAProxy's runtime API (`set map`, or `add map`) in every loaded map and tells the source. Otherwise, once the edge uses the new line, run `ten move SVC:ID --flipped`. The source forwards until the edge is flipped and no request came for 10 s, then forgets the instance (its data dir stays). An interrupted move (either node killed) leaves the instance on one node: run the same `ten move` again to finish it.",
        flags: &[
            flag("to", Some("URL"), "the target node's API, http://host:port"),
            flag("to-token", Some("T"), "an admin token of the target node"),
            flag("to-node", Some("NAME"), "the target's backend name in the edge map (default: its hostname)"),
            flag("haproxy-socket", Some("PATH"), "apply the map line through HAProxy's runtime API socket"),
            flag("flipped", None, "the edge sends the instance to its new node now"),
        ],
        positionals: (1, 1),
        arg_kind: ArgKind::Instance,
        examples: &[
            "ten move notes:alice --to http://10.0.0.12:8080 --to-token \"$B_TOKEN\" --to-node node-b --haproxy-socket /run/haproxy/admin.sock",
            "ten move notes:alice --flipped",
        ],
    },
    CommandSpec {
        name: "logs",
        run: commands::logs,
        aliases: &[],
        usage: &["logs [SVC[:ID]] [-f] [--search S] [--limit N] [--since D] [--stream stdout|stderr|ten] [--level L]"],
        summary: "show instance logs, newest last",
        about: "Prints log lines as `TIME INSTANCE STREAM LINE`, oldest first and newest last. Without an argument it shows every instance's lines; SVC alone shows that service's. The stream `ten` holds tenement's own lifecycle lines for the instance. --since filters the lines the server returned (at most --limit of them). With -f it keeps printing new lines as they are written until interrupted. Control characters in app output are printed as escapes (\\x1b, \\r, ...).",
        flags: &[
            short("follow", 'f', None, "keep printing new lines as they arrive"),
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
        name: "upgrade",
        run: super::upgrade::upgrade,
        aliases: &[],
        usage: &["upgrade"],
        summary: "execute the new binary in place, keeping pid, sockets and instances",
        about: "Asks the running server to execute the binary at the path it was started from again, in place (same as SIGUSR2): the pid, the listening sockets, the instance processes, their log pipes and the registry are kept, so no instance restarts and no request fails. First the new binary checks itself (it must load the config as `ten serve` would); if it cannot, or the exec fails, the old binary serves on and the error is reported (exit 1). Exchanges in flight finish first (within 5 s); new connections wait in the kernel's queue meanwhile. Prints the versions before and after and the unchanged pid.",
        flags: &[],
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["cp ten-new /usr/local/bin/ten.new && mv /usr/local/bin/ten.new /usr/local/bin/ten && ten upgrade"],
    },
    CommandSpec {
        name: "install",
        run: install::install,
        aliases: &[],
        usage: &["install [--systemd|--openrc] [--dry-run] [--root DIR] [--domain D] [--port P]"],
        summary: "install and start tenement as a system service",
        about: "Copies this executable to /usr/local/bin/ten, installs the man pages, writes /etc/tenement/tenement.toml when absent (--domain, --port fill it; --config FILE uses FILE instead), creates the data folder, and writes a service running `ten serve --config FILE`, then enables and starts it: /etc/systemd/system/tenement.service (Type=notify, watchdog, sandboxed) with `systemctl daemon-reload` and `systemctl enable --now tenement`, or /etc/init.d/tenement (supervise-daemon) with `rc-update add tenement default` and `rc-service tenement start`. Needs root unless --dry-run or --root.",
        flags: INSTALL_FLAGS,
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["sudo ten install --config /etc/tenement/tenement.toml", "ten install --dry-run"],
    },
    CommandSpec {
        name: "uninstall",
        run: install::uninstall,
        aliases: &[],
        usage: &["uninstall [--systemd|--openrc] [--dry-run] [--root DIR]"],
        summary: "stop and remove the system service",
        about: "Stops and disables the service written by `ten install` and removes its file, the man pages and /usr/local/bin/ten. The config and the data folder are kept. Needs root unless --dry-run or --root.",
        flags: UNINSTALL_FLAGS,
        positionals: (0, 0),
        arg_kind: ArgKind::None,
        examples: &["sudo ten uninstall"],
    },
    CommandSpec {
        name: "caddy",
        run: local::caddy,
        aliases: &[],
        usage: &["caddy --domain D [--dns-provider P]"],
        summary: "print a Caddyfile: Caddy's on-demand TLS in front of tenement",
        about: "Prints a Caddyfile in which Caddy terminates TLS for every host tenement serves and proxies to tenement's listen address (from the config when found, else 127.0.0.1:8080). Each host name (D, SVC.D, ID.SVC.D) gets a certificate at its first handshake, after Caddy asks tenement's GET /api/tls/allowed whether it serves that name. Set trusted_proxies = [\"127.0.0.1\", \"::1\"] in tenement.toml so apps see Caddy's X-Forwarded-Proto and -Host. With --dns-provider, D and *.D share one wildcard certificate from the ACME DNS challenge instead (the provider's Caddy module, its API token in PROVIDER_API_TOKEN).",
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

/// Finds a command by name or alias.
pub fn find_command(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.name == name || c.aliases.contains(&name))
}
