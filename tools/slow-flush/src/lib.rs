//! `LD_PRELOAD` library that makes every flush to stable storage slower by a fixed time.
//!
//! It wraps `fsync`, `fdatasync`, `syncfs` and `sync_file_range` (only when the call waits for
//! the write-out, `SYNC_FILE_RANGE_WAIT_AFTER`): each wrapper calls the C library's own
//! function (found with `dlsym(RTLD_NEXT, …)`), then sleeps `SLOW_FLUSH_MS` milliseconds
//! (fractions allowed, default 0) and returns the real result with the real `errno`.
//!
//! This simulates the flush latency of storage a failover service really runs on (a SAN,
//! iSCSI or DRBD shared disk, a consumer SSD: 1 to 5 ms per flush) on a machine whose own
//! disk flushes in a fraction of a millisecond. Nothing else about the disk changes: the data
//! is written and flushed exactly as without the library, only later acknowledged.
//!
//! ```text
//! cargo build --release -p slow-flush
//! SLOW_FLUSH_MS=2 LD_PRELOAD=target/release/libslow_flush.so crnpd …
//! ```

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable holding the added latency in milliseconds.
const DELAY_VAR: &str = "SLOW_FLUSH_MS";
/// glibc's `RTLD_NEXT` pseudo-handle: the next object in search order after this one.
const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;
/// `sync_file_range` flag: wait for the write-out of the range to finish.
const SYNC_FILE_RANGE_WAIT_AFTER: c_uint = 4;
/// Linux's "function not implemented" errno.
const ENOSYS: c_int = 38;

unsafe extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn __errno_location() -> *mut c_int;
}

type FdFn = unsafe extern "C" fn(c_int) -> c_int;
type RangeFn = unsafe extern "C" fn(c_int, i64, i64, c_uint) -> c_int;

/// The added latency, read once from the environment; unset or unparsable means none.
fn delay() -> Duration {
    static DELAY: OnceLock<Duration> = OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var(DELAY_VAR)
            .ok()
            .and_then(|ms| ms.trim().parse::<f64>().ok())
            .filter(|ms| ms.is_finite() && *ms > 0.0)
            .map_or(Duration::ZERO, |ms| Duration::from_secs_f64(ms / 1000.0))
    })
}

/// The C library's definition of `name` (a NUL-terminated symbol name), if any.
fn next_symbol(name: &'static [u8]) -> Option<*mut c_void> {
    // SAFETY: `name` is a NUL-terminated string literal; RTLD_NEXT is a valid pseudo-handle.
    let found = unsafe { dlsym(RTLD_NEXT, name.as_ptr().cast()) };
    (!found.is_null()).then_some(found)
}

/// Sleeps for the configured delay, keeping the `errno` of the real call.
fn hold(result: c_int) -> c_int {
    let delay = delay();
    if !delay.is_zero() {
        // SAFETY: __errno_location returns this thread's errno slot, valid for its lifetime.
        let errno = unsafe { *__errno_location() };
        std::thread::sleep(delay);
        // SAFETY: as above.
        unsafe { *__errno_location() = errno };
    }
    result
}

/// Fails the way a missing system call does (ENOSYS).
fn no_such_call() -> c_int {
    // SAFETY: this thread's errno slot.
    unsafe { *__errno_location() = ENOSYS };
    -1
}

/// Calls the real one-descriptor function `name` (`fsync`, `fdatasync`, `syncfs`), then the delay.
fn call_fd(name: &'static [u8], fd: c_int) -> c_int {
    let Some(real) = next_symbol(name) else {
        return no_such_call();
    };
    // SAFETY: fsync, fdatasync and syncfs all take one int and return an int.
    let real = unsafe { std::mem::transmute::<*mut c_void, FdFn>(real) };
    // SAFETY: the descriptor is passed through unchanged.
    hold(unsafe { real(fd) })
}

/// `fsync(2)`, then the delay.
#[unsafe(no_mangle)]
pub extern "C" fn fsync(fd: c_int) -> c_int {
    call_fd(b"fsync\0", fd)
}

/// `fdatasync(2)`, then the delay.
#[unsafe(no_mangle)]
pub extern "C" fn fdatasync(fd: c_int) -> c_int {
    call_fd(b"fdatasync\0", fd)
}

/// `syncfs(2)`, then the delay.
#[unsafe(no_mangle)]
pub extern "C" fn syncfs(fd: c_int) -> c_int {
    call_fd(b"syncfs\0", fd)
}

/// `sync_file_range(2)`, then the delay if the call waits for the write-out.
#[unsafe(no_mangle)]
pub extern "C" fn sync_file_range(fd: c_int, offset: i64, nbytes: i64, flags: c_uint) -> c_int {
    let Some(real) = next_symbol(b"sync_file_range\0") else {
        return no_such_call();
    };
    // SAFETY: the C library's sync_file_range has this signature (off64_t is i64).
    let real = unsafe { std::mem::transmute::<*mut c_void, RangeFn>(real) };
    // SAFETY: the arguments are passed through unchanged.
    let result = unsafe { real(fd, offset, nbytes, flags) };
    if flags & SYNC_FILE_RANGE_WAIT_AFTER != 0 {
        hold(result)
    } else {
        result
    }
}
