//! "Did you mean" for unknown keys: the nearest valid key by edit distance.
//!
//! Called by `config` when serde refuses an unknown field. Pure: no I/O.

/// The candidate closest to `unknown`, if it is close enough to be a likely typo.
///
/// Case and `-` versus `_` are ignored before measuring, so `Max-Restarts`
/// finds `max_restarts`. "Close enough" is at most a third of the longer
/// name's length, and at least 1 edit: far-off guesses mislead more than they help.
pub fn nearest<'a>(unknown: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let wanted = norm(unknown);
    let mut best: Option<(usize, &'a str)> = None;
    for &candidate in candidates {
        let d = distance(&wanted, &norm(candidate));
        let limit = (wanted.chars().count().max(candidate.len()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance over chars, with adjacent transpositions counting as
/// one edit (`comamnd` is one slip from `command`, not two).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: the one before last is needed for transpositions.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("comand", "command"), 1);
        assert_eq!(distance("comamnd", "command"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn nearest_finds_typos() {
        let keys = [
            "command",
            "args",
            "workdir",
            "max_restarts",
            "max_instances",
        ];
        assert_eq!(nearest("comand", &keys), Some("command"));
        assert_eq!(nearest("Max-Restarts", &keys), Some("max_restarts"));
        assert_eq!(nearest("arg", &keys), Some("args"));
        assert_eq!(nearest("workdirs", &keys), Some("workdir"));
    }

    #[test]
    fn nearest_stays_quiet_when_nothing_is_close() {
        let keys = ["command", "args"];
        assert_eq!(nearest("healthcheck", &keys), None);
        assert_eq!(nearest("x", &keys), None);
    }
}
