//! The server's use of glibc's allocator: a bound on its arenas, and giving
//! freed memory back to the system after ingest.
//!
//! Both are hints to the allocator, no-ops where it is not glibc.

/// glibc gives threads that allocate at once arenas of their own, up to 8
/// per core, and keeps their freed memory. With tokio workers and the
/// ingest combiner's blocking threads, that held about a third of the
/// server's heap after ingest bursts (benches/README.md). Four arenas: two
/// cost ~20 % of batched ingest throughput in arena-lock contention, four
/// cost nothing measurable. `MALLOC_ARENA_MAX` in the environment wins.
/// Call first thing in `main`, before any other thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn bound_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; the caller runs
        // it before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 4);
        }
    }
}

/// See the other `bound_arenas`.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn bound_arenas() {}

/// Returns the free memory at the top of every arena, and whole free pages
/// inside them, to the system (`malloc_trim(0)`). Ingest frees a lot at
/// once: each sealed segment's in-memory index, the combined batches. glibc
/// keeps that memory mapped, and in the resident set, until it is reused: after
/// eight seconds of batched ingest a trim gave back ~26 MB of 112 MB of heap.
/// Takes a few milliseconds; run it off the async workers.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim() {
    // SAFETY: malloc_trim takes the allocator's own locks and may be called
    // from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// See the other `trim`.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}
