//! Splits `command` into argv the way a POSIX shell splits words, and no further.
//!
//! Honoured: single quotes (everything literal), double quotes (backslash
//! escapes `"`, `\`, `$`, backtick and newline, as in sh), and backslash
//! outside quotes. Nothing is expanded and no shell runs the command, so
//! unquoted shell syntax (`|`, `&`, `;`, `<`, `>`, backtick, `$`) is refused
//! rather than passed on as a literal argument nobody meant. Pure: no I/O.

/// Splits one command line into words. Errors are messages for a `ConfigError`.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once anything (even `""`) has been seen, so `''` gives an empty argument.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".to_string()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            // Backslash-newline is a line continuation in sh.
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".to_string()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".to_string()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("trailing backslash".to_string()),
            },
            '|' | '&' | ';' | '<' | '>' | '`' | '$' => {
                return Err(format!(
                    "`{c}` is shell syntax, but the command is not run by a shell: \
                     quote it to pass it literally, or use `sh -c '...'`"
                ));
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Vec<String> {
        split(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(
            ok("uv run  python\tapp.py"),
            ["uv", "run", "python", "app.py"]
        );
        assert_eq!(ok("  a  "), ["a"]);
        assert!(ok("").is_empty());
        assert!(ok("   ").is_empty());
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(
            ok(r#"echo 'a b' 'c\d' 'x"y'"#),
            ["echo", "a b", r"c\d", r#"x"y"#]
        );
        assert_eq!(
            ok("sh -c 'exec app --port $PORT | tee x'"),
            ["sh", "-c", "exec app --port $PORT | tee x"]
        );
    }

    #[test]
    fn double_quotes_take_backslash_escapes() {
        assert_eq!(
            ok(r#"a "b c" "d\"e" "f\\g" "h\n""#),
            ["a", "b c", "d\"e", r"f\g", r"h\n"]
        );
        assert_eq!(ok(r#""it's""#), ["it's"]);
    }

    #[test]
    fn backslash_outside_quotes_escapes_the_next_char() {
        assert_eq!(ok(r"a\ b c\'d"), ["a b", "c'd"]);
        assert_eq!(ok("a \\\nb"), ["a", "b"]);
    }

    #[test]
    fn quotes_join_adjacent_text_and_may_be_empty() {
        assert_eq!(ok(r#"--name="my app"x"#), ["--name=my appx"]);
        assert_eq!(ok(r#"a '' """#), ["a", "", ""]);
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert_eq!(split("a 'b").unwrap_err(), "unterminated single quote");
        assert_eq!(split(r#"a "b"#).unwrap_err(), "unterminated double quote");
        assert_eq!(split(r#"a "b\"#).unwrap_err(), "unterminated double quote");
        assert_eq!(split(r"a \").unwrap_err(), "trailing backslash");
    }

    #[test]
    fn unquoted_shell_syntax_is_refused() {
        for line in [
            "a | b",
            "a && b",
            "a; b",
            "a > log",
            "echo $PORT",
            "echo `id`",
        ] {
            let err = split(line).unwrap_err();
            assert!(err.contains("not run by a shell"), "{line}: {err}");
        }
        assert_eq!(ok(r"echo \$PORT '|'"), ["echo", "$PORT", "|"]);
    }
}
