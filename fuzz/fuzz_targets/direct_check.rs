//! The direct path's checks on a variant's ELF headers, which decide what the launcher maps and
//! where it jumps: an accepted image must have every loadable segment inside the file, page-
//! congruent, in ascending order inside `lo..hi` and below the top of user space, and its entry
//! point in an executable segment's file contents.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mgo_format::direct::{self, PF_X};

const USER_TOP: u64 = 1 << 47;

fuzz_target!(|bytes: &[u8]| {
    for (machine, page) in [(62u16, 4096u64), (183, 65536)] {
        let Ok(image) = direct::check(bytes, machine, page) else {
            continue;
        };
        let mask = page - 1;
        assert!(image.lo < image.hi && image.hi <= USER_TOP);
        assert!(image.align.is_power_of_two() && image.align >= page);
        let mut prev_end = 0;
        let mut entry_ok = false;
        for ph in image.loads() {
            let file_end = ph.p_offset.checked_add(ph.p_filesz).expect("file end");
            assert!(file_end <= bytes.len() as u64);
            assert!(ph.p_filesz <= ph.p_memsz);
            assert_eq!(ph.p_offset & mask, ph.p_vaddr & mask);
            let start = ph.p_vaddr & !mask;
            let end = (ph.p_vaddr + ph.p_memsz + mask) & !mask;
            assert!(start >= prev_end && image.lo <= start && end <= image.hi);
            prev_end = end;
            if ph.p_flags & PF_X != 0
                && ph.p_vaddr <= image.entry
                && image.entry < ph.p_vaddr + ph.p_filesz
            {
                entry_ok = true;
            }
        }
        assert!(entry_ok);
        assert!(image.lo <= image.phdr_vaddr && image.phdr_vaddr < image.hi);
    }
});
