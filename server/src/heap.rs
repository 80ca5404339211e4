//! The server's allocator: mimalloc, told to give freed memory back at once.
//!
//! With glibc's malloc, 8 s of batched ingest left the heap at 44 MB in use
//! but ~100 MB resident: the active segment's index (many small, long-lived
//! allocations) interleaved with request buffers freed microseconds later,
//! and pages holding one live chunk could not be returned, `malloc_trim` or
//! not. mimalloc keeps allocations of one size class together per thread,
//! and returns a page to the system as soon as it empties; it also raised
//! batched ingest by a quarter (benches/README.md, "Session 6").
//! Meilisearch makes the same choice.

/// The binary's global allocator; `main.rs` installs it.
pub type Allocator = mimalloc::MiMalloc;

/// mimalloc 3's `mi_option_purge_delay` (its position in `mi_option_e`,
/// `mimalloc.h`; libmimalloc-sys names no constant for it).
const MI3_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return emptied pages to the system at once rather than
/// after a second (mimalloc 3's default). The delayed purge runs only when
/// the thread that freed the pages allocates again, so after a burst idle
/// tokio workers kept ~145 MB resident; immediate purging left 57 MB and
/// cost no measurable ingest throughput. `MIMALLOC_PURGE_DELAY` in the
/// environment wins. Call first thing in `main`.
#[allow(unsafe_code)]
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: both are plain calls into the allocator's C API: reading its
    // version, setting an integer option (any thread, any time).
    unsafe {
        // The option's number is that of mimalloc 3; another major version
        // keeps its defaults.
        if libmimalloc_sys::mi_version() / 10000 == 3 {
            libmimalloc_sys::mi_option_set(MI3_OPTION_PURGE_DELAY, 0);
        }
    }
}

/// Purges what threads that have exited left behind (the blocking pool's
/// threads come and go with ingest bursts). Cheap; run it off the async
/// workers.
#[allow(unsafe_code)]
pub fn trim() {
    // SAFETY: a plain call into the allocator's C API, callable from any
    // thread at any time.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

#[cfg(test)]
mod tests {
    use super::MI3_OPTION_PURGE_DELAY;

    /// The option number above is mimalloc 3's purge delay: this build links
    /// mimalloc 3, and that option holds its default (1000 ms, `options.c`).
    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_option_is_where_configure_sets_it() {
        // SAFETY: reads from the allocator's C API.
        let (version, delay) = unsafe {
            (
                libmimalloc_sys::mi_version(),
                libmimalloc_sys::mi_option_get(MI3_OPTION_PURGE_DELAY),
            )
        };
        assert_eq!(version / 10000, 3, "mimalloc version {version}");
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(
                delay, 1000,
                "option {MI3_OPTION_PURGE_DELAY} is not the purge delay"
            );
        }
    }
}
