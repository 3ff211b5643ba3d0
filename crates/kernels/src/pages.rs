//! Transparent huge pages for the large buffers every step streams through (the KV pool, the
//! packed weights): with 4 KiB pages a decode step at depth touches tens of thousands of pages
//! scattered over the pool and misses the TLB on most of them; a 2 MiB page covers 64 KV blocks
//! of a layer. Linux only, and only a hint: where the kernel says `never`, or elsewhere, nothing
//! changes.

/// Asks for huge pages over the whole 2 MiB pages inside `[ptr, ptr + len)`. Call it before the
/// pages are first written: pages already faulted in stay small until the kernel's collector
/// merges them.
pub fn advise_huge(ptr: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside the caller's allocation; MADV_HUGEPAGE changes how its
            // pages are backed, never their contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// Huge pages for the whole of `v`'s allocation (see `advise_huge`).
pub fn advise_vec<T>(v: &[T]) {
    advise_huge(v.as_ptr() as *const u8, std::mem::size_of_val(v));
}
