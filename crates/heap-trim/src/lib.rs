//! Gives the C allocator's free pages back to the system.
//!
//! glibc's malloc returns freed memory to the kernel only from the top of each
//! arena; what a burst freed in the middle stays resident. For the daemon that
//! meant an idle process holding most of its last sweep's peak. `malloc_trim(0)`
//! walks every arena and releases free pages with `madvise`.
//!
//! `limit_arenas` keeps threads from each getting an arena of their own, which
//! trimming cannot fully empty once the thread is gone.
//!
//! This crate exists so that the daemon's own crate can keep
//! `#![forbid(unsafe_code)]`: its one foreign call lives here, alone.

/// Has every thread allocate from at most `max` arenas; `true` if glibc took
/// the setting. glibc gives threads their own arenas, and what a short-lived
/// thread (a database connection's worker) left live or fragmented in its arena
/// stays resident after the thread is gone. Call it first thing in `main`.
pub fn limit_arenas(max: u32) -> bool {
    imp::limit_arenas(max)
}

/// Releases free heap pages to the system; `true` if glibc released any.
/// Elsewhere than Linux with glibc (musl, other systems) there is no such call
/// and this returns `false`.
///
/// It briefly locks each arena in turn: call it when the process is quiet.
pub fn release_free_memory() -> bool {
    imp::release()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::os::raw::c_int;

    extern "C" {
        fn malloc_trim(pad: usize) -> c_int;
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }

    /// glibc's `M_ARENA_MAX` (malloc.h).
    const M_ARENA_MAX: c_int = -8;

    pub fn limit_arenas(max: u32) -> bool {
        let Ok(max) = c_int::try_from(max) else {
            return false;
        };
        // SAFETY: mallopt takes two plain integers and only changes the
        // allocator's tuning (under its own lock); M_ARENA_MAX is a valid
        // parameter for any positive value.
        unsafe { mallopt(M_ARENA_MAX, max) == 1 }
    }

    pub fn release() -> bool {
        // SAFETY: malloc_trim takes a plain integer, touches only the
        // allocator's own state (under its arena locks) and is safe to call
        // from any thread at any time.
        unsafe { malloc_trim(0) != 0 }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn limit_arenas(_max: u32) -> bool {
        false
    }

    pub fn release() -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::release_free_memory;

    fn resident_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    /// glibc takes the setting, and a thread started afterwards allocates from
    /// the shared arena: no new arena heap (a 64 MiB-aligned anonymous mapping)
    /// appears for it.
    #[test]
    fn one_arena_for_every_thread() {
        fn arena_heaps() -> usize {
            std::fs::read_to_string("/proc/self/maps")
                .unwrap()
                .lines()
                .filter(|l| {
                    let start = l.split('-').next().unwrap();
                    let start = u64::from_str_radix(start, 16).unwrap();
                    l.split_whitespace().count() == 5 && start % (64 << 20) == 0
                })
                .count()
        }
        assert!(super::limit_arenas(1));
        let before = arena_heaps();
        let after = std::thread::spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..64).map(|_| vec![3u8; 16 * 1024]).collect();
            let n = arena_heaps();
            drop(blocks);
            n
        })
        .join()
        .unwrap();
        assert_eq!(after, before, "a new thread got an arena of its own");
    }

    /// Memory freed below a live allocation cannot be returned by glibc on its
    /// own (it trims only the top of the heap); after the call it is.
    #[test]
    fn freed_pages_below_a_live_block_go_back_to_the_system() {
        // 32 MiB in 64 KiB blocks (under glibc's mmap threshold, so on the heap),
        // each touched so its pages are resident.
        let mut blocks: Vec<Vec<u8>> = (0..512).map(|_| vec![1u8; 64 * 1024]).collect();
        let pin = vec![2u8; 64 * 1024]; // stays live above them
        let before_free = resident_kb();
        blocks.clear();
        blocks.shrink_to_fit();
        let after_free = resident_kb();
        let released = release_free_memory();
        assert!(released, "glibc released nothing");
        let after_trim = resident_kb();
        assert!(
            after_trim + 16 * 1024 < after_free,
            "resident: {before_free} kB with the blocks, {after_free} kB freed, {after_trim} kB trimmed"
        );
        assert_eq!(pin[0], 2);
    }
}
