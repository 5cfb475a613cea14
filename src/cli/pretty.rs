//! JSON text re-indented the way `serde_json::to_string_pretty` writes it,
//! without parsing it into values: `ten ps --json` prints the server's list
//! of thousands of instances this way, picking the ones it shows by their
//! `state` alone.
//!
//! The text must be valid JSON (`array_items` checks it with one pass that
//! builds nothing); the rest only walks the bytes outside strings. Pure:
//! bytes in, bytes out.

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::http::append::append;

/// The elements of the JSON array `text`, each as its own text. Err: the
/// text is not a JSON array.
pub fn array_items(text: &[u8]) -> Result<Vec<&[u8]>, serde_json::Error> {
    serde_json::from_slice::<Vec<IgnoredAny>>(text)?;
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    for (i, b) in outside_strings(text) {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth == 2 && start.is_none() {
                    start = Some(i);
                }
            }
            b']' | b'}' => depth -= 1,
            b',' if depth == 1 => {
                items.extend(start.take().map(|s| text[s..i].trim_ascii()));
                continue;
            }
            _ if b.is_ascii_whitespace() => continue,
            _ => {}
        }
        if depth == 1 && start.is_none() && !matches!(b, b'[' | b']') {
            start = Some(i);
        }
        if depth == 0 {
            // The closing bracket of the array.
            items.extend(start.take().map(|s| text[s..i].trim_ascii()));
        }
    }
    Ok(items)
}

/// Whether the instance object `item` says `"state": "sleeping"`.
pub fn is_sleeping(item: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct State<'a> {
        #[serde(borrow)]
        state: Option<std::borrow::Cow<'a, str>>,
    }
    item.first() == Some(&b'{')
        && serde_json::from_slice::<State>(item)
            .is_ok_and(|s| s.state.as_deref() == Some("sleeping"))
}

/// `items` (each valid JSON text) as one pretty-printed array, with a
/// trailing newline.
pub fn array(items: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|i| i.len() * 3 / 2).sum::<usize>() + 4);
    if items.is_empty() {
        out.extend_from_slice(b"[]\n");
        return out;
    }
    out.push(b'[');
    for (n, item) in items.iter().enumerate() {
        out.extend_from_slice(if n == 0 { b"\n" } else { b",\n" });
        indent(&mut out, 1);
        value(item, 1, &mut out);
    }
    out.extend_from_slice(b"\n]\n");
    out
}

/// Appends the valid JSON text `text`, re-indented, as a value written at
/// nesting `depth`.
fn value(text: &[u8], mut depth: usize, out: &mut Vec<u8>) {
    let mut copied = 0;
    let mut bytes = outside_strings(text).peekable();
    while let Some((i, b)) = bytes.next() {
        // Strings and the inside of numbers and literals go as they are
        // (short copies: not through the static build's slow `memcpy`).
        append(out, &text[copied..i]);
        copied = i + 1;
        match b {
            b'[' | b'{' => {
                let close = if b == b'[' { b']' } else { b'}' };
                while bytes.next_if(|(_, b)| b.is_ascii_whitespace()).is_some() {}
                if let Some((j, _)) = bytes.next_if(|&(_, b)| b == close) {
                    out.extend_from_slice(&[b, close]);
                    copied = j + 1;
                } else {
                    out.push(b);
                    depth += 1;
                    out.push(b'\n');
                    indent(out, depth);
                    copied = bytes.peek().map_or(text.len(), |&(j, _)| j);
                }
            }
            b']' | b'}' => {
                depth -= 1;
                out.push(b'\n');
                indent(out, depth);
                out.push(b);
            }
            b',' => {
                out.extend_from_slice(b",\n");
                indent(out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ if b.is_ascii_whitespace() => {}
            _ => copied = i,
        }
    }
    append(out, &text[copied..]);
}

fn indent(out: &mut Vec<u8>, depth: usize) {
    for _ in 0..depth {
        out.extend_from_slice(b"  ");
    }
}

/// The bytes of `text` that are not inside a string, with their offsets; a
/// string shows as its opening quote.
fn outside_strings(text: &[u8]) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut in_string = false;
    let mut escaped = false;
    text.iter().enumerate().filter_map(move |(i, &b)| {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            None
        } else {
            in_string = b == b'"';
            Some((i, b))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn samples() -> Vec<Value> {
        vec![
            json!({"instance": "web:a", "state": "running", "pid": 12, "weight": 100,
                   "last_check": {"ok": true, "detail": "200", "at_unix": 1_700_000_000u64},
                   "cpu_seconds": 1.25e-3, "uid": null, "tags": [], "empty": {},
                   "nested": [[1, [2, {}]], {"a": [true, false]}]}),
            json!({"instance": "web:b", "state": "sleeping",
                   "detail": "quote \" backslash \\ brackets [{,:}] \u{7f} \u{202e} \u{1b} é"}),
            json!([]),
            json!("a string [with] {brackets}, commas: and colons"),
            json!(-12.5),
            json!(null),
            json!({"state": "sleeping"}),
            json!(["sleeping"]),
        ]
    }

    #[test]
    fn an_array_comes_out_as_serde_json_pretty_prints_it() {
        let all = Value::Array(samples());
        for text in [
            serde_json::to_string(&all).unwrap(),
            serde_json::to_string_pretty(&all).unwrap(),
            {
                // Other whitespace between the tokens.
                let mut odd = b" \n".to_vec();
                let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t \r");
                let mut ser = serde_json::Serializer::with_formatter(&mut odd, fmt);
                serde::Serialize::serialize(&all, &mut ser).unwrap();
                String::from_utf8(odd).unwrap() + " \t"
            },
        ] {
            let items = array_items(text.as_bytes()).unwrap();
            assert_eq!(items.len(), 8, "{text}");
            let got = String::from_utf8(array(&items)).unwrap();
            assert_eq!(got, serde_json::to_string_pretty(&all).unwrap() + "\n");
        }
        assert_eq!(array(&array_items(b" [ ] ").unwrap()), b"[]\n");
        assert_eq!(array(&array_items(b"[7]").unwrap()), b"[\n  7\n]\n");
    }

    #[test]
    fn items_are_picked_by_their_state() {
        let all = serde_json::to_string(&Value::Array(samples())).unwrap();
        let items = array_items(all.as_bytes()).unwrap();
        let sleeping: Vec<bool> = items.iter().map(|i| is_sleeping(i)).collect();
        assert_eq!(
            sleeping,
            [false, true, false, false, false, false, true, false],
            "only objects whose state is sleeping"
        );
        let awake: Vec<&[u8]> = items.into_iter().filter(|i| !is_sleeping(i)).collect();
        let want: Vec<Value> = samples()
            .into_iter()
            .filter(|v| v.get("state").and_then(Value::as_str) != Some("sleeping"))
            .collect();
        assert_eq!(
            String::from_utf8(array(&awake)).unwrap(),
            serde_json::to_string_pretty(&want).unwrap() + "\n"
        );
    }

    #[test]
    fn text_that_is_not_a_json_array_is_refused() {
        for bad in [
            &b"{\"a\": 1}"[..],
            b"[1, 2",
            b"[1,]",
            b"[\"open]",
            b"[1] [2]",
            b"",
            b"<html>",
        ] {
            assert!(
                array_items(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
