//! Gives memory an idle process no longer needs back to the system.
//!
//! glibc's malloc returns freed memory to the kernel only from the top of each
//! arena; what a burst freed in the middle stays resident. For the daemon that
//! meant an idle process holding most of its last sweep's peak. `malloc_trim(0)`
//! walks every arena and releases free pages with `madvise`.
//!
//! `limit_arenas` keeps threads from each getting an arena of their own, which
//! trimming cannot fully empty once the thread is gone.
//!
//! A sweep also runs most of the program: its code pages (and the kernel's
//! read-around of each) stay resident until memory runs short, although the
//! next sweep is an hour away. `page_out_code` asks the kernel to reclaim them
//! now, as it would under memory pressure; they are read back from the
//! executable as the next sweep runs.
//!
//! This crate exists so that the daemon's own crate can keep
//! `#![forbid(unsafe_code)]`: its foreign calls live here, alone.

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

/// Asks the kernel to reclaim the resident pages of this program's own
/// executable that it never writes (code, read-only data), as memory pressure
/// would; the number of mappings that took the advice. Pages another process
/// maps too are left alone by the kernel. Nothing changes for the program but
/// speed: a page is read back from the executable when next used.
///
/// Elsewhere than Linux with glibc, or on kernels before 5.4 (which lack the
/// advice), this returns 0.
pub fn page_out_code() -> usize {
    imp::page_out_code()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod maps;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::os::raw::{c_int, c_void};

    extern "C" {
        fn malloc_trim(pad: usize) -> c_int;
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn madvise(addr: *mut c_void, length: usize, advice: c_int) -> c_int;
    }

    /// Linux's `MADV_PAGEOUT` (asm-generic/mman-common.h), since 5.4.
    const MADV_PAGEOUT: c_int = 21;

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

    pub fn page_out_code() -> usize {
        super::maps::own_read_only_mappings()
            .into_iter()
            .filter(|m| {
                // SAFETY: the range is one whole mapping of this process, as
                // /proc/self/maps lists it (page-aligned, mapped). MADV_PAGEOUT
                // never changes what the memory holds: a reclaimed page of a
                // file mapping that is never written is read back from the file
                // on its next use, exactly as after reclaim under memory
                // pressure; the kernel skips pages it cannot reclaim. A mapping
                // unmapped since the listing makes the call fail with ENOMEM,
                // harmlessly.
                unsafe { madvise(m.start as *mut c_void, m.len, MADV_PAGEOUT) == 0 }
            })
            .count()
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

    pub fn page_out_code() -> usize {
        0
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::{page_out_code, release_free_memory};

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

    /// Resident kB of this test binary's own unwritable mappings (the ones
    /// `page_out_code` advises), as /proc/self/smaps counts them.
    fn resident_code_kb() -> u64 {
        let starts: Vec<String> = super::maps::own_read_only_mappings()
            .iter()
            .map(|m| format!("{:x}-", m.start))
            .collect();
        assert!(!starts.is_empty());
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut ours = false;
        let mut kb = 0;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            if let Some(rss) = line.strip_prefix("Rss:") {
                if ours {
                    kb += rss.trim().trim_end_matches(" kB").parse::<u64>().unwrap();
                }
            } else if !first.ends_with(':') {
                // A mapping's header: `start-end perms offset dev inode path`.
                ours = starts.iter().any(|s| first.starts_with(s.as_str()));
            }
        }
        kb
    }

    /// The binary's code pages are resident after running it; after the call
    /// most of them are not (the few this test runs again come back).
    #[test]
    fn code_pages_leave_memory_and_the_program_runs_on() {
        let before = resident_code_kb();
        let advised = page_out_code();
        let after = resident_code_kb();
        assert!(advised >= 1, "no mapping took the advice");
        assert!(
            after * 2 < before,
            "resident code: {before} kB before, {after} kB after"
        );
        // The code runs on from pages read back in.
        assert!(resident_code_kb() > 0);
    }
}
