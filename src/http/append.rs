//! Copying short byte strings (header names and values, the pieces of a
//! head, whole heads, small bodies) without calling the C library's
//! `memcpy`. A proxied request makes a dozen such copies of up to a few
//! hundred bytes; the static musl build's `memcpy` aligns byte by byte and
//! then runs `rep movsq`, whose start-up cost is many times what such a
//! copy is worth. Copies of a size known when compiling are inlined as
//! plain moves instead: a slice goes over in 16-byte words, its end as one
//! last word that overlaps the one before.

/// Copies longer than this go through `memcpy`, whose start-up cost is
/// then small next to the copy.
const SHORT: usize = 512;

/// Appends `bytes` to `out`. Up to 32 bytes take two fixed-size copies
/// (the first and the last 16, 8 or 4 bytes, the second overwriting what
/// the two share); up to `SHORT`, 16-byte words; longer slices go through
/// `extend_from_slice`.
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
        33..=SHORT => {
            let end = out.len() + bytes.len();
            for word in bytes.chunks_exact(16) {
                out.extend_from_slice(word);
            }
            // The last word ends where `bytes` ends, over the rest.
            if out.len() < end {
                out.truncate(end - 16);
                out.extend_from_slice(last_word(bytes));
            }
        }
        _ => out.extend_from_slice(bytes),
    }
}

/// Copies `src` over `dst`, which has its length, as `append` copies:
/// fixed-size words, first and last overlapping. (Each 16-byte word is
/// copied as two halves: a loop of whole-word copies is what the compiler
/// turns back into a call to `memcpy`.)
#[inline]
pub fn copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "a copy between slices of one length");
    let n = src.len();
    match n {
        0 => {}
        1..=3 => {
            // Indexes 0, 1 and n - 1 cover every byte.
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => first_and_last_over::<4>(dst, src),
        8..=15 => first_and_last_over::<8>(dst, src),
        16..=SHORT => {
            for (d, s) in dst.chunks_exact_mut(16).zip(src.chunks_exact(16)) {
                let (d0, d1) = d.split_at_mut(8);
                let (s0, s1) = s.split_at(8);
                d0.copy_from_slice(s0);
                d1.copy_from_slice(s1);
            }
            if n % 16 != 0 {
                first_and_last_over::<16>(dst, src);
            }
        }
        _ => dst.copy_from_slice(src),
    }
}

/// Copies `src`, between `W` and `2 * W` long, over `dst` as its first
/// `W` bytes and its last `W` bytes.
#[inline(always)]
fn first_and_last_over<const W: usize>(dst: &mut [u8], src: &[u8]) {
    let (Some(first), Some(last)) = (src.first_chunk::<W>(), src.last_chunk::<W>()) else {
        unreachable!("copy picks W no larger than the slice");
    };
    if let Some(d) = dst.first_chunk_mut::<W>() {
        *d = *first;
    }
    if let Some(d) = dst.last_chunk_mut::<W>() {
        *d = *last;
    }
}

/// The last 16 bytes of `bytes`, at least 16 long.
#[inline(always)]
fn last_word(bytes: &[u8]) -> &[u8; 16] {
    bytes
        .last_chunk::<16>()
        .expect("only slices of 16 bytes or more")
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
        let source: Vec<u8> = (0..603u32).map(|i| (i * 7 + i / 251) as u8).collect();
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

    #[test]
    fn copies_of_every_length_land_whole() {
        let source: Vec<u8> = (0..600u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for n in 0..=source.len() {
            for start in [0usize, 3] {
                let src = &source[start..(start + n).min(source.len())];
                let mut dst = vec![0u8; src.len()];
                copy(&mut dst, src);
                assert_eq!(dst, src, "{} bytes from {start}", src.len());
            }
        }
    }
}
