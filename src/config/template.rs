//! `{placeholder}` templates in `[service.NAME.env]` values.
//!
//! Known placeholders: `{name}` (the service), `{id}`, `{data_dir}` (the
//! global data dir), `{port}`, `{socket}` (the instance's Unix socket path).
//! `{{` and `}}` stand for literal braces. `check` runs once at config load;
//! `expand` runs per spawn and never fails. Pure: no I/O.

use std::path::Path;

/// The placeholder names, in the order the man page lists them.
pub const PLACEHOLDERS: [&str; 5] = ["name", "id", "data_dir", "port", "socket"];

/// The values a template may refer to.
pub struct TemplateVars<'a> {
    pub name: &'a str,
    pub id: &'a str,
    pub data_dir: &'a Path,
    pub port: u16,
    pub socket: &'a Path,
}

/// One piece of a template.
enum Piece<'t> {
    Text(&'t str),
    Var(&'t str),
}

/// Walks `value` piece by piece. Err: a `{` with no matching `}`.
fn pieces(value: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find(['{', '}']) {
        out.push(Piece::Text(&rest[..at]));
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push(Piece::Text(&tail[..1]));
            rest = &tail[2..];
        } else if let Some(after) = tail.strip_prefix('}') {
            // A lone `}` cannot start anything, so it is taken literally.
            out.push(Piece::Text("}"));
            rest = after;
        } else {
            let Some(end) = tail.find('}') else {
                return Err("unclosed `{` (write `{{` for a literal brace)".to_string());
            };
            out.push(Piece::Var(&tail[1..end]));
            rest = &tail[end + 1..];
        }
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Checks that every placeholder in `value` is known. Err: a message naming the culprit.
pub fn check(value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err("contains a NUL byte (\\u0000), which no program can be given".into());
    }
    for piece in pieces(value)? {
        if let Piece::Var(var) = piece {
            if !PLACEHOLDERS.contains(&var) {
                let known: Vec<String> = PLACEHOLDERS.iter().map(|p| format!("{{{p}}}")).collect();
                return Err(format!(
                    "unknown placeholder `{{{var}}}`; known: {} (write `{{{{` for a literal brace)",
                    known.join(" ")
                ));
            }
        }
    }
    Ok(())
}

/// Expands the placeholders of `value`. Anything `check` would refuse is left as written.
pub fn expand(value: &str, vars: &TemplateVars<'_>) -> String {
    let Ok(pieces) = pieces(value) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(value.len() + 32);
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Var("name") => out.push_str(vars.name),
            Piece::Var("id") => out.push_str(vars.id),
            Piece::Var("data_dir") => out.push_str(&vars.data_dir.to_string_lossy()),
            Piece::Var("port") => out.push_str(&vars.port.to_string()),
            Piece::Var("socket") => out.push_str(&vars.socket.to_string_lossy()),
            Piece::Var(other) => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars<'static> {
        TemplateVars {
            name: "notes",
            id: "alice",
            data_dir: Path::new("/var/lib/tenement"),
            port: 30001,
            socket: Path::new("/var/lib/tenement/.tenement/run/notes.alice.sock"),
        }
    }

    #[test]
    fn expands_every_placeholder() {
        let v = vars();
        assert_eq!(
            expand("{data_dir}/{name}/{id}", &v),
            "/var/lib/tenement/notes/alice"
        );
        assert_eq!(
            expand("http://127.0.0.1:{port}/", &v),
            "http://127.0.0.1:30001/"
        );
        assert_eq!(
            expand("unix:{socket}", &v),
            "unix:/var/lib/tenement/.tenement/run/notes.alice.sock"
        );
        assert_eq!(expand("{id}{id}", &v), "alicealice");
        assert_eq!(expand("plain", &v), "plain");
        assert_eq!(expand("", &v), "");
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(expand(r#"{{"id":"{id}"}}"#, &vars()), r#"{"id":"alice"}"#);
        assert_eq!(expand("a}b", &vars()), "a}b");
        assert_eq!(check(r#"{{"k": 1}}"#), Ok(()));
    }

    #[test]
    fn unknown_placeholders_are_left_alone_by_expand() {
        assert_eq!(expand("{nope} {id}", &vars()), "{nope} alice");
        assert_eq!(expand("{id", &vars()), "{id");
    }

    #[test]
    fn check_refuses_unknown_and_unclosed() {
        assert_eq!(check("{data_dir}/{name}/{id}:{port}:{socket}"), Ok(()));
        assert!(check("{ID}")
            .unwrap_err()
            .contains("unknown placeholder `{ID}`"));
        assert!(check("x{}")
            .unwrap_err()
            .contains("unknown placeholder `{}`"));
        assert!(check("{id").unwrap_err().contains("unclosed `{`"));
    }
}
