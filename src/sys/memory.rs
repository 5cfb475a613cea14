//! Giving freed heap memory back to the kernel (the front decides when:
//! after its connections have gone), and, in the unit-test binary only, a
//! global allocator that counts the allocations of chosen threads.

/// Returns the free memory at the top and in the middle of the heap to the
/// kernel (glibc's `malloc_trim`). glibc keeps freed memory in its arenas
/// otherwise, so a burst of connections would leave the server's RSS high
/// after they closed. musl's allocator unmaps freed groups by itself, and
/// has no such call: there this does nothing.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a plain integer and only walks the
    // allocator's own free lists, under its own locks.
    unsafe {
        libc::malloc_trim(0);
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
