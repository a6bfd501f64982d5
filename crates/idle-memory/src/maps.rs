//! Which mappings of this process hold its own executable's pages that it
//! never writes, read from `/proc/self/maps`.

use std::path::Path;

/// One mapping: its start address and length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub len: usize,
}

/// The mappings of the running executable that are not writable, or none if
/// `/proc` cannot be read.
pub fn own_read_only_mappings() -> Vec<Mapping> {
    let (Ok(exe), Ok(maps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return Vec::new();
    };
    read_only_mappings_of(&maps, &exe)
}

/// The mappings in `maps` (the text of a `/proc/<pid>/maps`) of the file
/// `path` that are neither writable nor empty.
fn read_only_mappings_of(maps: &str, path: &Path) -> Vec<Mapping> {
    let Some(path) = path.to_str() else {
        return Vec::new();
    };
    maps.lines()
        .filter_map(|line| {
            // start-end perms offset dev inode   path (which may hold spaces)
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let perms = fields.next()?;
            let file = fields.nth(3)?.trim_start();
            if file != path || perms.contains('w') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (end > start).then_some(Mapping {
                start,
                len: end - start,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c6a00000-55d0c6a4d000 r--p 00000000 08:01 1310 /usr/bin/masv key rotator
55d0c6a4d000-55d0c7200000 r-xp 0004d000 08:01 1310 /usr/bin/masv key rotator
55d0c7200000-55d0c7230000 rw-p 00800000 08:01 1310 /usr/bin/masv key rotator
55d0c7230000-55d0c7240000 r--p 00000000 08:01 1311 /usr/bin/masv key rotator.old
55d0c8000000-55d0c8100000 rw-p 00000000 00:00 0                          [heap]
7f1e2a000000-7f1e2a028000 r--p 00000000 08:01 2001                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e2a028000-7f1e2a1bd000 r-xp 00028000 08:01 2001                       /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd1b1f0000-7ffd1b211000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn only_the_executables_unwritable_mappings_are_chosen() {
        let found = read_only_mappings_of(MAPS, Path::new("/usr/bin/masv key rotator"));
        assert_eq!(
            found,
            vec![
                Mapping {
                    start: 0x55d0_c6a0_0000,
                    len: 0x4d000
                },
                Mapping {
                    start: 0x55d0_c6a4_d000,
                    len: 0x7b_3000
                },
            ]
        );
    }

    #[test]
    fn a_replaced_executable_is_still_found_by_its_link() {
        let maps = "\
5600-7600 r-xp 00000000 08:01 1310 /usr/bin/rotator (deleted)
7600-8600 rw-p 00002000 08:01 1310 /usr/bin/rotator (deleted)
";
        let found = read_only_mappings_of(maps, Path::new("/usr/bin/rotator (deleted)"));
        assert_eq!(
            found,
            vec![Mapping {
                start: 0x5600,
                len: 0x2000
            }]
        );
    }

    #[test]
    fn this_test_binary_has_code_mappings() {
        let found = own_read_only_mappings();
        assert!(!found.is_empty());
        assert!(found.iter().all(|m| m.len > 0 && m.start % 4096 == 0));
    }
}
