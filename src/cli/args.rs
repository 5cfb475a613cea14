//! The argument parser and the help text, both built on the command table
//! (`table.rs`), so they cannot drift apart from it. Parsing is pure: no I/O,
//! no environment. Name validation and number parsing happen later, in the
//! command that knows what the value means.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::table::{find_command, CommandSpec, FlagSpec, Global, COMMANDS, GLOBALS};

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
    /// `--cacert FILE`: the CA(s) an `https://` server is verified against.
    pub cacert: Option<PathBuf>,
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
        let Some(spec) = spec else {
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

        match spec.global {
            None => flags.push((spec.long, value)),
            Some(Global::Help) => help = true,
            Some(Global::Version) => version = true,
            Some(Global::Json) => globals.json = true,
            Some(Global::Server) => globals.server = value,
            Some(Global::Cacert) => globals.cacert = value.map(PathBuf::from),
            Some(Global::Token) => globals.token = value,
            Some(Global::DataDir) => globals.data_dir = value.map(PathBuf::from),
            Some(Global::Config) => globals.config = value.map(PathBuf::from),
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

/// Looks an option up in the command's flags first, then the globals
/// (those say which global they are in `FlagSpec::global`).
fn lookup(
    command: Option<&'static CommandSpec>,
    name: &str,
    long: bool,
) -> Option<&'static FlagSpec> {
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
            return Some(f);
        }
    }
    GLOBALS.iter().find(|f| matches(f))
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
        "\nGlobal options: --server URL, --cacert FILE, --token T, --data-dir DIR, --config FILE, --json\n(see `ten --help`)."
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
    fn each_global_option_is_marked_once_and_no_command_flag_is() {
        let marks: Vec<Global> = GLOBALS.iter().filter_map(|g| g.global).collect();
        assert_eq!(marks.len(), GLOBALS.len(), "a global without its mark");
        for (i, m) in marks.iter().enumerate() {
            assert!(!marks[..i].contains(m), "{m:?} twice");
        }
        for c in COMMANDS {
            for f in c.flags {
                assert_eq!(f.global, None, "{} --{}", c.name, f.long);
            }
        }
    }

    #[test]
    fn every_global_option_lands_in_its_place() {
        let args: Vec<OsString> = [
            "--server=http://h:1",
            "--cacert",
            "ca.pem",
            "--token",
            "t",
            "--data-dir",
            "/d",
            "--config",
            "/c.toml",
            "--json",
            "ps",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let Ok(Parsed::Run(inv)) = parse(&args) else {
            panic!("parses")
        };
        assert_eq!(
            inv.globals,
            Globals {
                server: Some("http://h:1".into()),
                cacert: Some("ca.pem".into()),
                token: Some("t".into()),
                data_dir: Some("/d".into()),
                config: Some("/c.toml".into()),
                json: true,
            }
        );
        let args: Vec<OsString> = ["ps", "-V"].iter().map(OsString::from).collect();
        assert!(matches!(parse(&args), Ok(Parsed::Version)));
        let args: Vec<OsString> = ["ps", "-h"].iter().map(OsString::from).collect();
        assert!(matches!(parse(&args), Ok(Parsed::Help(Some(_)))));
    }

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
