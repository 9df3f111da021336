//! Content hashes and random object ids.

/// A BLAKE3 digest.
pub type Hash = [u8; 32];

/// Random name of a pack object (packs are immutable; the name only has to be unique).
pub type PackId = [u8; 16];

pub fn hash_bytes(data: &[u8]) -> Hash {
    *blake3::hash(data).as_bytes()
}

pub fn to_hex(h: &[u8]) -> String {
    hex::encode(h)
}

pub fn new_pack_id() -> PackId {
    rand::random()
}

/// A random 128-bit id, hex-encoded.
pub fn random_id() -> String {
    to_hex(&new_pack_id())
}

/// Hashes map keys that are digests or random ids by their first 8 bytes:
/// those are uniformly distributed already, and SipHash over 32 bytes was a
/// measurable part of the read path (per chunk, several lookups).
#[derive(Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut w = [0u8; 8];
        let n = bytes.len().min(8);
        w[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(w);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by digests or random ids.
pub type DigestMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<DigestHasher>>;
