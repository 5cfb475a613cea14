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

/// Appends `bytes` to `out`, in the words `copy` uses.
#[inline]
pub fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    // One allocation at most, of the size `extend_from_slice` would ask for
    // (the first word alone could otherwise grow `out` short of the rest).
    out.reserve(bytes.len());
    if bytes.len() > SHORT {
        out.extend_from_slice(bytes);
        return;
    }
    let base = out.len();
    words(bytes, &mut Tail { out, base });
}

/// Copies `src` over `dst`, which has its length: up to `SHORT` bytes as
/// `words` puts them, longer slices through `memcpy`.
#[inline]
pub fn copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "a copy between slices of one length");
    if src.len() > SHORT {
        dst.copy_from_slice(src);
        return;
    }
    words(src, &mut Over(dst));
}

/// Where `words` puts a copy: `put(at, word)` writes `word` at byte `at`
/// of the copy. Words come in order of `at`, none starting past the end
/// of what is written; a word may overwrite the end of the one before.
trait Sink {
    fn put<const W: usize>(&mut self, at: usize, word: &[u8; W]);

    /// Puts each whole 16-byte word of `src`, the first at 0, the next at
    /// 16... (what `put` of each would do).
    fn put_run(&mut self, src: &[u8]);
}

/// A copy appended to `out` after its first `base` bytes.
struct Tail<'a> {
    out: &'a mut Vec<u8>,
    base: usize,
}

impl Sink for Tail<'_> {
    #[inline(always)]
    fn put<const W: usize>(&mut self, at: usize, word: &[u8; W]) {
        // Back to where the word starts (it may overlap the one before).
        self.out.truncate(self.base + at);
        self.out.extend_from_slice(word);
    }

    #[inline(always)]
    fn put_run(&mut self, src: &[u8]) {
        self.out.truncate(self.base);
        for word in src.chunks_exact(16) {
            self.out.extend_from_slice(word);
        }
    }
}

/// A copy over a slice of its length.
struct Over<'a>(&'a mut [u8]);

impl Sink for Over<'_> {
    #[inline(always)]
    fn put<const W: usize>(&mut self, at: usize, word: &[u8; W]) {
        // Always there: `copy` checked that the slice has the copy's length.
        if let Some(d) = self.0[at..].first_chunk_mut::<W>() {
            *d = *word;
        }
    }

    /// Each word as two halves: a loop of whole-word copies over a slice
    /// is what the compiler turns back into a call to `memcpy`.
    #[inline(always)]
    fn put_run(&mut self, src: &[u8]) {
        let (mut dst, mut src) = (&mut *self.0, src);
        while let (Some((d, dst_rest)), Some((s, src_rest))) = (
            dst.split_first_chunk_mut::<16>(),
            src.split_first_chunk::<16>(),
        ) {
            d[..8].copy_from_slice(&s[..8]);
            d[8..].copy_from_slice(&s[8..]);
            (dst, src) = (dst_rest, src_rest);
        }
    }
}

/// Puts `src` (at most `SHORT` bytes) into `sink` in fixed-size words: up
/// to 3 bytes one at a time (indexes 0, n / 2 and n - 1 cover every byte);
/// up to 32 as its first and its last word of 4, 8 or 16 bytes, the second
/// overlapping the first; longer in 16-byte words, the last one ending
/// where `src` ends, over the one before.
#[inline(always)]
fn words(src: &[u8], sink: &mut impl Sink) {
    let n = src.len();
    match n {
        0 => {}
        1..=3 => {
            sink.put(0, &[src[0]]);
            sink.put(n / 2, &[src[n / 2]]);
            sink.put(n - 1, &[src[n - 1]]);
        }
        4..=7 => first_and_last::<4>(src, sink),
        8..=15 => first_and_last::<8>(src, sink),
        16..=32 => first_and_last::<16>(src, sink),
        _ => {
            sink.put_run(src);
            if n % 16 != 0 {
                let Some(last) = src.last_chunk::<16>() else {
                    unreachable!("more than 32 bytes");
                };
                sink.put(n - 16, last);
            }
        }
    }
}

/// Puts `src`, between `W` and `2 * W` long, as its first `W` bytes and
/// its last `W` bytes.
#[inline(always)]
fn first_and_last<const W: usize>(src: &[u8], sink: &mut impl Sink) {
    let (Some(first), Some(last)) = (src.first_chunk::<W>(), src.last_chunk::<W>()) else {
        unreachable!("words picks W no larger than the slice");
    };
    sink.put(0, first);
    sink.put(src.len() - W, last);
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
