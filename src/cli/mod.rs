//! The `ten` command line: a table-driven flag parser with real `--help` per
//! command, a blocking HTTP client for the API (TCP or `ten.sock`), and table
//! or JSON output. `ten serve` hands over to `server::serve`.
//!
//! `run` is the only entry point (called by `main`). It owns the exit codes
//! and the error wording: `ten: error: ` plus the cause chain joined by ": ",
//! exit 1 on failure, 2 on bad usage, and a quiet exit when stdout is a closed
//! pipe. Nothing below it prints errors or exits by itself.

mod args;
pub(crate) mod client;
mod commands;
mod completions;
mod export;
mod install;
mod local;
mod move_instance;
mod output;
mod pretty;
mod table;
mod tokens;
mod transport;
mod upgrade;
mod wire;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{self, Config};
use crate::names::InstanceKey;

use args::{Invocation, Parsed, UsageError};
use client::{Client, ClientError, Endpoint};

/// Runs one invocation; returns the exit code (0 ok, 1 failed, 2 bad usage).
pub fn run(args: Vec<OsString>) -> i32 {
    // Hidden: the zygote that clones namespaced instances' inits (the
    // server re-executed).
    if args.get(1).is_some_and(|a| a == "__zygote") {
        return crate::isolate::zygote::main();
    }
    crate::log::init_from_env();
    let rest = args.get(1..).unwrap_or(&[]);
    let result = match args::parse(rest) {
        Ok(Parsed::Help(None)) => output::print(&args::overview()),
        Ok(Parsed::Help(Some(c))) => output::print(&args::command_help(c)),
        Ok(Parsed::Version) => output::print(&format!("ten {}\n", env!("CARGO_PKG_VERSION"))),
        Ok(Parsed::Nothing) => {
            note(&args::overview());
            return 2;
        }
        Ok(Parsed::Run(inv)) => dispatch(&inv),
        Err(e) => Err(CliError::Usage(e)),
    };
    match result {
        Ok(()) => 0,
        Err(e) => report(e),
    }
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum CliError {
    /// Bad command line: exit 2 with a pointer to `--help`.
    Usage(UsageError),
    /// The command failed: exit 1, the error and its causes printed.
    Failed(Box<dyn std::error::Error>),
    /// stdout was closed under us (`ten logs | head`): exit 0, print nothing.
    BrokenPipe,
}

impl CliError {
    /// A failure described by a message alone.
    pub fn failed(message: impl Into<String>) -> CliError {
        CliError::Failed(message.into().into())
    }
}

impl From<UsageError> for CliError {
    fn from(e: UsageError) -> CliError {
        CliError::Usage(e)
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        CliError::Failed(Box::new(e))
    }
}

impl From<config::ConfigError> for CliError {
    fn from(e: config::ConfigError) -> CliError {
        CliError::Failed(Box::new(e))
    }
}

impl From<crate::state::StateError> for CliError {
    fn from(e: crate::state::StateError) -> CliError {
        CliError::Failed(Box::new(e))
    }
}

/// Prints the error and returns the exit code.
fn report(e: CliError) -> i32 {
    match e {
        CliError::BrokenPipe => 0,
        CliError::Usage(u) => {
            let hint = match u.command {
                Some(c) => format!("ten {c} --help"),
                None => "ten --help".to_string(),
            };
            note(&format!(
                "ten: error: {}\nTry `{hint}` for more information.\n",
                u.message
            ));
            2
        }
        CliError::Failed(err) => {
            // The message may quote an app's last output: escaped, not raw.
            let text = chain(err.as_ref());
            note(&format!("ten: error: {}\n", output::escape(&text, true)));
            if let Some(ClientError::Api { status: 401, .. }) = err.downcast_ref::<ClientError>() {
                note("hint: pass --token T or set TENEMENT_TOKEN (`ten token-gen` mints one; the admin token in {data_dir}/api_token is sent only over the local socket unless you pass it)\n");
            }
            1
        }
    }
}

/// The error and its sources joined by ": ".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

/// Writes to stderr, ignoring failure: there is nowhere left to report it.
pub fn note(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Runs the command the invocation names, through its table entry.
fn dispatch(inv: &Invocation) -> Result<(), CliError> {
    (inv.command.run)(&Ctx { inv })
}

/// `ten help [COMMAND]`: the command list, or one command's help.
fn help(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let topic = ctx.inv.positionals.first().map(String::as_str);
    output::print(&args::help_text(topic)?)
}

/// A config that does not load, met while looking for the server's socket.
#[derive(Debug)]
struct ConfigBlocksServer(config::ConfigError);

impl std::fmt::Display for ConfigBlocksServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the config does not load, so the server's data dir and socket are unknown"
        )
    }
}

impl std::error::Error for ConfigBlocksServer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// An environment variable, treating empty as unset.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// One invocation's view of its options, the environment and the config.
pub struct Ctx<'a> {
    pub inv: &'a Invocation,
}

impl Ctx<'_> {
    /// `--config` as given (`config::locate` applies $TENEMENT_CONFIG itself).
    pub fn config_flag(&self) -> Option<&Path> {
        self.inv.globals.config.as_deref()
    }

    /// `--data-dir`, else $TENEMENT_DATA_DIR.
    pub fn data_dir_flag(&self) -> Option<PathBuf> {
        self.inv
            .globals
            .data_dir
            .clone()
            .or_else(|| env_var("TENEMENT_DATA_DIR").map(PathBuf::from))
    }

    /// The config, if one is found and loads. Client commands only need it
    /// for the data dir, so a broken or missing config is not their error.
    pub fn config_if_found(&self) -> Option<Config> {
        let path = config::locate(self.config_flag())?;
        match Config::load(&path) {
            Ok(c) => Some(c),
            Err(e) => {
                debug!("cli", "ignoring config: {e}");
                None
            }
        }
    }

    /// The data dir (REFERENCE, Files).
    pub fn data_dir(&self) -> PathBuf {
        let flag = self.data_dir_flag();
        let cfg = if flag.is_some() {
            None
        } else {
            self.config_if_found()
        };
        config::resolve_data_dir(flag.as_deref(), cfg.as_ref())
    }

    /// The API client. The admin token in `{data_dir}/api_token` is never
    /// read here: the local socket needs no token, and over TCP only a token
    /// the user gave (`--token`, $TENEMENT_TOKEN) is sent, and only to the
    /// server the user named (`--server`, $TENEMENT_SERVER) or to the
    /// config's `listen`. Without either and without the socket, the server
    /// is not running: say so rather than guess an address.
    pub fn client(&self) -> Result<Client, CliError> {
        let server = self
            .inv
            .globals
            .server
            .clone()
            .or_else(|| env_var("TENEMENT_SERVER"));
        let token = self
            .inv
            .globals
            .token
            .clone()
            .or_else(|| env_var("TENEMENT_TOKEN"));
        if let Some(s) = server {
            let cacert = self.inv.globals.cacert.clone();
            return Ok(
                Client::new(Endpoint::Tcp(client::parse_url(&s)?), token).with_cacert(cacert)
            );
        }
        // Where the server's socket is: --data-dir or $TENEMENT_DATA_DIR,
        // else the config's data_dir. A config that does not load leaves the
        // data dir unknown; its error is then the one worth showing.
        let flag = self.data_dir_flag();
        let (config, config_error) = match (&flag, config::locate(self.config_flag())) {
            (None, Some(path)) => match Config::load(&path) {
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(e)),
            },
            _ => (None, None),
        };
        let data_dir = config::resolve_data_dir(flag.as_deref(), config.as_ref());
        let sock = crate::state::layout::api_socket_path(&data_dir);
        if sock.exists() {
            debug!("cli", "using the local socket {}", sock.display());
            return Ok(Client::new(Endpoint::Unix(sock), None));
        }
        if let Some(e) = config_error {
            return Err(CliError::Failed(Box::new(ConfigBlocksServer(e))));
        }
        if let (Some(cfg), Some(token)) = (&config, token) {
            let listen = client::loopback(cfg.settings.listen);
            let url = client::parse_url(&format!("http://{listen}"))?;
            debug!("cli", "no local socket; using the config's listen {listen}");
            return Ok(Client::new(Endpoint::Tcp(url), Some(token)));
        }
        Err(CliError::failed(format!(
            "the server is not running: no socket at {} (start it with `ten serve`; if it runs with another data dir, pass --data-dir DIR; for a server elsewhere, pass --server URL and --token T)",
            sock.display()
        )))
    }

    /// Positional `index` as an instance key; a bad name is a usage error.
    pub fn instance(&self, index: usize) -> Result<InstanceKey, CliError> {
        let raw = &self.inv.positionals[index];
        InstanceKey::parse(raw).map_err(|e| self.inv.usage(e.to_string()).into())
    }

    pub fn json(&self) -> bool {
        self.inv.globals.json
    }
}
