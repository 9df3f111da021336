//! Content-defined chunking (FastCDC 2020) with a BLAKE3 name per chunk.
//!
//! Boundaries depend on content, not offsets, so an insertion shifts only the
//! chunks around it and the rest deduplicate against earlier versions.

use std::io::Read;

use crate::ids::Hash;

pub const MIN_CHUNK: u32 = 64 * 1024;
pub const AVG_CHUNK: u32 = 256 * 1024;
pub const MAX_CHUNK: u32 = 1024 * 1024;

pub struct Chunk {
    pub hash: Hash,
    pub data: Vec<u8>,
}

/// Splits a reader into chunks, calling `each` in order, and returns the
/// BLAKE3 hash of the whole stream and its length.
pub fn chunk_stream<R: Read, E: From<std::io::Error>>(
    mut reader: R,
    mut each: impl FnMut(Chunk) -> Result<(), E>,
) -> Result<(Hash, u64), E> {
    // Anything up to MIN_CHUNK is exactly one chunk: hash it directly rather
    // than set up the streaming chunker (which zeroes a MAX_CHUNK buffer).
    let mut head = Vec::with_capacity(MIN_CHUNK as usize + 1);
    (&mut reader)
        .take(MIN_CHUNK as u64 + 1)
        .read_to_end(&mut head)?;
    if head.len() <= MIN_CHUNK as usize {
        let hash = *blake3::hash(&head).as_bytes();
        let n = head.len() as u64;
        if n > 0 {
            each(Chunk { hash, data: head })?;
        }
        return Ok((hash, n));
    }
    let reader = std::io::Cursor::new(head).chain(reader);
    let mut whole = blake3::Hasher::new();
    let mut total = 0u64;
    for c in fastcdc::v2020::StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
        let c = c.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        })?;
        whole.update(&c.data);
        total += c.data.len() as u64;
        let hash = *blake3::hash(&c.data).as_bytes();
        each(Chunk { hash, data: c.data })?;
    }
    Ok((*whole.finalize().as_bytes(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8]) -> Vec<Hash> {
        let mut out = vec![];
        chunk_stream::<_, std::io::Error>(data, |c| {
            out.push(c.hash);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn insertion_keeps_most_chunks() {
        let mut rng_state = 1u64;
        let data: Vec<u8> = (0..8 << 20)
            .map(|_| {
                rng_state = rng_state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (rng_state >> 33) as u8
            })
            .collect();
        let a = chunks(&data);
        let mut edited = data.clone();
        edited.splice(4 << 20..4 << 20, vec![7u8; 1000]);
        let b = chunks(&edited);
        let shared = b.iter().filter(|h| a.contains(h)).count();
        assert!(shared + 3 >= a.len(), "{shared} of {} shared", a.len());
    }

    #[test]
    fn whole_hash_and_empty() {
        let (h, n) = chunk_stream::<_, std::io::Error>(&b""[..], |_| Ok(())).unwrap();
        assert_eq!((h, n), (*blake3::hash(b"").as_bytes(), 0));
        let data = vec![5u8; 3 << 20];
        let (h, n) = chunk_stream::<_, std::io::Error>(&data[..], |_| Ok(())).unwrap();
        assert_eq!((h, n), (*blake3::hash(&data).as_bytes(), data.len() as u64));
    }
}
