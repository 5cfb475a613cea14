//! Giving freed heap memory back to the kernel (the front decides when:
//! after its connections have gone), and, in the unit-test binary only, a
//! global allocator that counts the allocations of chosen threads.

/// Returns the free memory at the top and in the middle of the heap to the
/// kernel (glibc's `malloc_trim`), after swapping the calling thread's
/// cache of small chunks for fresh ones (`flush_thread_cache`). glibc keeps
/// freed memory in its arenas otherwise, so a burst of connections would
/// leave the server's RSS high after they closed. musl's allocator unmaps
/// freed groups by itself, and has no such call: there this does nothing.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a plain integer and only walks the
        // allocator's own free lists, under its own locks.
        unsafe {
            libc::malloc_trim(0);
        }
        flush_thread_cache();
        // SAFETY: as above.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// glibc's per-thread cache ("tcache") holds up to 7 freed chunks of each
/// small size (to about 1 KiB) for the thread's next allocations, and
/// `malloc_trim` counts them as in use. After a burst of connections those
/// chunks lie scattered over the loop's arena, and each keeps the pages
/// around it resident: with 2,000 connections closed, about 0.5 MB per
/// loop (RSS 1.2x its start; with the cache turned off, 1.03x; with this
/// flush, 1.12x: some fresh chunks come from scattered free ones too). This
/// allocates, for each cached size, the cached chunks and as many fresh
/// ones (carved next to each other from the free memory the first trim
/// merged), frees the fresh ones first, so they fill the cache, and then
/// the old ones, which the cache no longer takes: they go back to the
/// arena, where the next `malloc_trim` gives their pages back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn flush_thread_cache() {
    /// glibc's default number of chunks cached per size.
    const CACHED: usize = 7;
    // Cached sizes: chunks of 32 to 1040 bytes, in steps of 16; a request
    // of `n` bytes takes a chunk of `n + 8` rounded up to 16.
    let requests = (0..64).map(|i| 24 + 16 * i);
    for size in requests {
        let mut old = [std::ptr::null_mut(); CACHED];
        let mut fresh = [std::ptr::null_mut(); CACHED];
        // SAFETY: plain malloc and free of the allocator's own memory; every
        // pointer freed was returned by malloc just above (or is null, which
        // free ignores) and is freed once.
        unsafe {
            for p in old.iter_mut().chain(fresh.iter_mut()) {
                *p = libc::malloc(size);
            }
            for p in fresh.into_iter().chain(old) {
                libc::free(p);
            }
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn flushing_the_thread_cache_hands_out_other_chunks_than_those_cached() {
        // SAFETY: malloc and free of this test's own chunks, each freed once.
        unsafe {
            // Whatever the test thread cached before (the harness allocates
            // on it too) is taken out first, so that the cache holds exactly
            // the 7 chunks freed next.
            let before: Vec<usize> = (0..14).map(|_| libc::malloc(100) as usize).collect();
            let cached: Vec<usize> = (0..7).map(|_| libc::malloc(100) as usize).collect();
            for &p in &cached {
                libc::free(p as *mut libc::c_void);
            }
            for &p in &before {
                libc::free(p as *mut libc::c_void);
            }
            super::flush_thread_cache();
            let next = libc::malloc(100);
            assert!(
                !cached.contains(&(next as usize)),
                "a chunk that was cached before the flush came back"
            );
            libc::free(next);
        }
    }
}

/// The unit-test binary's global allocator: counts allocations and
/// reallocations made by threads that called `count_this_thread` (the
/// front's allocation test runs a loop on such a thread); all memory comes
/// from the system allocator as usual.
#[cfg(test)]
pub mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counting;

    static COUNTED: AtomicU64 = AtomicU64::new(0);

    thread_local! {
        static TRACKED: Cell<bool> = const { Cell::new(false) };
    }

    /// Counts this thread's allocations from now on.
    pub fn count_this_thread() {
        TRACKED.with(|t| t.set(true));
    }

    /// Allocations counted so far, over all counted threads.
    pub fn counted() -> u64 {
        COUNTED.load(Ordering::Relaxed)
    }

    fn note() {
        if TRACKED.try_with(Cell::get).unwrap_or(false) {
            COUNTED.fetch_add(1, Ordering::Relaxed);
        }
    }

    // SAFETY: every method forwards its caller's arguments unchanged to
    // `System`, so `System`'s guarantees are what the caller gets.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: forwarded unchanged; the caller upholds alloc's contract.
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: forwarded unchanged; the caller upholds alloc_zeroed's contract.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note();
            // SAFETY: forwarded unchanged; the caller upholds realloc's contract.
            unsafe { System.realloc(ptr, layout, new_size) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded unchanged; the caller upholds dealloc's contract.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;
}
