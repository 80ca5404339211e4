//! Taking a secret out of the process environment for good.
//!
//! `std::env::remove_var` unlinks a variable from the C `environ` array, but
//! `/proc/<pid>/environ` shows the process's original environment block,
//! where the bytes stay for the life of the process, readable by the same
//! user (and root). [`take`] also overwrites the value there.

use std::ffi::CStr;

extern "C" {
    static environ: *const *mut libc::c_char;
}

/// Returns `name`'s value and removes it from the environment: the value's
/// bytes in the environment block are zeroed, then the variable is unset.
/// A value that is not UTF-8 is removed too and answered `Err(NotUtf8)`.
/// Call it while the process has a single thread (first thing in `main`):
/// nothing may read the environment meanwhile.
#[allow(unsafe_code)]
pub fn take(name: &str) -> Result<Option<String>, NotUtf8> {
    let value = std::env::var_os(name).map(|v| v.into_string().map_err(|_| NotUtf8));
    // SAFETY: `environ` is the C library's NULL-terminated array of
    // pointers to NUL-terminated "NAME=value" strings, valid for reading
    // and writing (they live in the process's own stack or heap). The
    // process has one thread (see above), so nothing reads or changes the
    // environment while the loop runs. Only bytes before each string's NUL
    // are written, so every string stays NUL-terminated.
    unsafe {
        let mut p = environ;
        if !p.is_null() {
            while !(*p).is_null() {
                let entry = *p;
                let bytes = CStr::from_ptr(entry).to_bytes();
                let n = name.len();
                if bytes.len() > n && bytes.starts_with(name.as_bytes()) && bytes[n] == b'=' {
                    std::ptr::write_bytes(entry.add(n + 1), 0, bytes.len() - n - 1);
                }
                p = p.add(1);
            }
        }
    }
    std::env::remove_var(name);
    value.transpose()
}

/// The variable's value is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8;
