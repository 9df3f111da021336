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
