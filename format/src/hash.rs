//! Content hashes: XXH3-64. Not cryptographic: it catches corruption (a flipped bit, a truncated
//! copy), not an attacker who can rewrite the whole file anyway. Chosen for speed, since the
//! launcher hashes every byte it is about to execute.

use xxhash_rust::xxh3::{xxh3_64, Xxh3Default};

/// Hash of a whole byte string.
pub fn content_hash(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// Incremental form of [`content_hash`]: feeding the same bytes in any split gives the same value.
#[derive(Clone)]
pub struct ContentHasher(Xxh3Default);

impl ContentHasher {
    pub fn new() -> Self {
        ContentHasher(Xxh3Default::new())
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finish(&self) -> u64 {
        self.0.digest()
    }
}

impl Default for ContentHasher {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_equals_whole() {
        let data: [u8; 1000] = core::array::from_fn(|i| (i * 7 % 251) as u8);
        let mut h = ContentHasher::new();
        h.update(&data[..3]);
        h.update(&data[3..600]);
        h.update(&data[600..]);
        assert_eq!(h.finish(), content_hash(&data));
        assert_ne!(content_hash(&data[1..]), content_hash(&data));
    }
}
