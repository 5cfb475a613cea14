//! Appending short byte strings (header names and values, the pieces of a
//! head) to a buffer without calling the C library's `memcpy`. A proxied
//! request copies a few dozen of them, mostly under 32 bytes; the static
//! musl build's `memcpy` aligns byte by byte and then runs `rep movsq`,
//! whose start-up cost is many times what such a copy is worth. Copies of
//! a size known when compiling are inlined as plain moves instead, so a
//! short slice goes in as its first and its last word.

/// Appends `bytes` to `out`. Up to 32 bytes take two fixed-size copies
/// (the first and the last 16, 8 or 4 bytes, the second overwriting what
/// the two share); longer slices go through `extend_from_slice`.
#[inline]
pub fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    // One allocation at most, of the size `extend_from_slice` would ask for
    // (the first word alone could otherwise grow `out` short of the rest).
    out.reserve(bytes.len());
    match bytes.len() {
        0..=3 => {
            for &b in bytes {
                out.push(b);
            }
        }
        4..=7 => first_and_last::<4>(out, bytes),
        8..=15 => first_and_last::<8>(out, bytes),
        16..=32 => first_and_last::<16>(out, bytes),
        _ => out.extend_from_slice(bytes),
    }
}

/// Appends `bytes`, between `W` and `2 * W` long, as its first `W` bytes
/// and its last `W` bytes.
#[inline(always)]
fn first_and_last<const W: usize>(out: &mut Vec<u8>, bytes: &[u8]) {
    let (Some(first), Some(last)) = (bytes.first_chunk::<W>(), bytes.last_chunk::<W>()) else {
        unreachable!("append picks W no larger than the slice");
    };
    let end = out.len() + bytes.len();
    out.extend_from_slice(first);
    // The last word starts inside (or right after) the first one.
    out.truncate(end - W);
    out.extend_from_slice(last);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_lands_whole_after_what_was_there() {
        let source: Vec<u8> = (0..80u8)
            .map(|b| b.wrapping_mul(7).wrapping_add(1))
            .collect();
        for prefix in [0u8, 1, 3, 8, 13] {
            for n in 0..=source.len() {
                for start in [0usize, 1, 5] {
                    let bytes = &source[start..(start + n).min(source.len())];
                    let mut out: Vec<u8> = (0..prefix).collect();
                    append(&mut out, bytes);
                    let mut want: Vec<u8> = (0..prefix).collect();
                    want.extend_from_slice(bytes);
                    assert_eq!(
                        out,
                        want,
                        "prefix {prefix}, {} bytes from {start}",
                        bytes.len()
                    );
                }
            }
        }
    }
}
