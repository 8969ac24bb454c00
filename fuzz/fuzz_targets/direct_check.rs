//! The direct path's checks on a variant's ELF headers, which decide what the launcher maps and
//! where it jumps: an accepted image must have every loadable segment inside the file, page-
//! congruent, in ascending order inside `lo..hi` and below the top of user space, and its entry
//! point in an executable segment's file contents. For compressed variants, the head-only check
//! must agree with the whole-file one, and a frame that `place` puts somewhere must land inside
//! one segment's file contents, at the address its bytes have there.

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

        let head = &bytes[..bytes.len().min(direct::HEAD_FRAME)];
        if let Ok(from_head) = direct::check_head(head, bytes.len() as u64, machine, page) {
            assert_eq!((from_head.lo, from_head.hi), (image.lo, image.hi));
            assert_eq!(from_head.entry, image.entry);
        }
        // Frames cut from the input's own last bytes: offset and length anywhere in the file.
        let n = bytes.len() as u64;
        let word = |at: usize| {
            let mut w = [0u8; 8];
            let tail = &bytes[bytes.len().saturating_sub(16)..];
            for (i, b) in tail.iter().skip(at).take(8).enumerate() {
                w[i] = *b;
            }
            u64::from_le_bytes(w)
        };
        let offset = word(0) % (n + 1);
        let len = word(8) % (n - offset + 1);
        if let Ok(Some(vaddr)) = direct::place(&image, offset, len) {
            let holder = image
                .loads()
                .filter(|ph| ph.p_filesz > 0)
                .find(|ph| ph.p_offset <= offset && offset + len <= ph.p_offset + ph.p_filesz)
                .expect("a placed frame lies in one segment's file contents");
            assert_eq!(vaddr, holder.p_vaddr + (offset - holder.p_offset));
        }
    }
});
