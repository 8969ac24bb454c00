//! The payload region alone, parsed twice: as given (the header and index hashes stop almost
//! every mutation), and with both hashes recomputed first, so that mutated offsets, lengths,
//! counts, encodings and dictionaries reach the bounds checks behind them, as in a bundle
//! damaged or crafted by someone who knows the format.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mgo_format::{content_hash, Arch, Bundle, Encoding, HEADER_LEN};

fn check(arch: Arch, region: &[u8]) {
    let Ok(bundle) = Bundle::parse_region(arch, region) else {
        return;
    };
    assert_eq!(bundle.header.region_len, region.len() as u64);
    for i in 0..bundle.len() {
        let entry = bundle.entry(i).expect("entries of a parsed bundle parse");
        let end = entry.offset.checked_add(entry.stored_len).expect("entry end");
        assert!(end <= region.len() as u64);
        assert_eq!(bundle.stored(&entry).len() as u64, entry.stored_len);
        if entry.encoding == Encoding::ZstdDictionary {
            assert!((entry.dictionary as usize) < bundle.len());
        }
    }
}

/// Rewrites the index hash (when the header's index lies in the region) and the header hash.
fn rehash(region: &mut [u8]) {
    if region.len() < HEADER_LEN {
        return;
    }
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (offset, len) = (u64_at(region, 24), u64_at(region, 32));
    if let Some(end) = offset.checked_add(len).filter(|&e| e <= region.len() as u64) {
        let hash = content_hash(&region[offset as usize..end as usize]);
        region[40..48].copy_from_slice(&hash.to_le_bytes());
    }
    let hash = content_hash(&region[..56]);
    region[56..64].copy_from_slice(&hash.to_le_bytes());
}

fuzz_target!(|region: &[u8]| {
    for arch in Arch::ALL {
        check(arch, region);
    }
    let mut fixed = region.to_vec();
    rehash(&mut fixed);
    for arch in Arch::ALL {
        check(arch, &fixed);
    }
});
