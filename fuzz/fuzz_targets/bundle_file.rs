//! A whole bundle file, as the launcher maps it: `Bundle::parse_file` must return an error or a
//! bundle whose every slice lies inside the file; nothing may panic. The launcher then takes each
//! entry's stored bytes, checks a stored variant for the direct path, and splits gzip members:
//! those run here too on whatever the parser accepted.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mgo_format::{direct, gzip, Bundle, Encoding, Region};

fuzz_target!(|file: &[u8]| {
    let located = Region::locate(file);
    let Ok(bundle) = Bundle::parse_file(file) else {
        return;
    };
    let region = located.expect("a parsed bundle has a region");
    let end = region.file_offset.checked_add(region.len).expect("region end");
    assert!(end <= file.len() as u64);
    assert_eq!(bundle.len(), bundle.header.variant_count as usize);
    let file_range = file.as_ptr() as usize..file.as_ptr() as usize + file.len();
    for i in 0..bundle.len() {
        let entry = bundle.entry(i).expect("entries of a parsed bundle parse");
        let stored = bundle.stored(&entry);
        assert_eq!(stored.len() as u64, entry.stored_len);
        if !stored.is_empty() {
            assert!(file_range.contains(&(stored.as_ptr() as usize)));
            assert!(stored.as_ptr() as usize + stored.len() <= file_range.end);
        }
        if entry.encoding == Encoding::ZstdDictionary {
            assert!((entry.dictionary as usize) < bundle.len() && entry.dictionary as usize != i);
        }
        match entry.encoding {
            Encoding::Stored => {
                let page = bundle.arch.page_align();
                let _ = direct::check(stored, bundle.arch.elf_machine(), page);
            }
            Encoding::Deflate => {
                let mut at = 0;
                while let Some(member) = gzip::parse_member(&stored[at..]) {
                    assert!(member.len <= stored.len() - at);
                    at += member.len;
                }
            }
            _ => {}
        }
    }
    assert!(bundle.entries().count() == bundle.len());
});
