//! How the process gives memory back.
//!
//! Replies and uploads move through buffers of 0.5–2 MiB, on threads that
//! come and go with requests. glibc serves large buffers with `mmap` at
//! first, but after the first one is freed it raises its threshold (up to
//! 32 MiB) and serves them from per-thread heaps, which keep freed memory:
//! an OP-TEE run went to 80 MiB peak RSS that way. A fixed threshold keeps
//! every buffer of 1 MiB or more in its own mapping, returned to the system
//! when freed (48 MiB on the same run), and fixes the heaps' trim threshold
//! (set here too).
//! 256 KiB gave 34 MiB but cost svc-kmod 20 % more CPU in page faults, as
//! most modules' buffers were then mapped and unmapped one by one.

/// Buffers at least this large get their own mapping.
const MMAP_THRESHOLD: i32 = 1024 * 1024;

/// Free memory a heap keeps at its top before giving it back. Fixing the
/// mmap threshold also fixes this at glibc's 128 KiB, so a signing thread
/// gave pages back and faulted them in again (zeroed) with nearly every
/// module: 2 MiB cut svc-kmod's CPU by ~8 % on 2000 modules for ~2 MiB
/// more peak RSS (8 MiB saved little more and cost 10 MiB).
const TRIM_THRESHOLD: i32 = 2 * 1024 * 1024;

/// Sets the process's allocator up; call once, first thing in `main`.
pub fn init() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before
    // other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
