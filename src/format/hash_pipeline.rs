//! Reading, chunking and hashing the files of a push on all cores.
//!
//! One reader thread reads files ahead (whole small files, segments of large
//! ones) into reusable buffers and finds the chunk boundaries; worker threads
//! BLAKE3 the chunks; the caller receives chunks in file order, so what it
//! does with them (deduplication, packing, the manifest) stays sequential and
//! deterministic. Every byte is read once and hashed once.
//!
//! Memory is bounded: a fixed number of buffers of [`SEGMENT`] bytes (plus a
//! chunk's worth of carry-over) circulate between the stages.
//!
//! Boundaries are those of `fastcdc::v2020::StreamCDC` with the sizes in
//! [`crate::format::chunker`]: a chunk starting at offset `o` depends only on bytes
//! `o..o + MAX_CHUNK` (or the end of the file), so cutting a segment is exact
//! for every chunk whose window lies inside it, and the rest is carried into
//! the next segment. A test checks this against `StreamCDC`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};

use crate::format::chunker::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};
use crate::format::ids::Hash;

/// Bytes read per segment of a large file, and the batch size for small files.
pub const SEGMENT: usize = 4 << 20;
/// Files up to this size (by the caller's scan) are read by the hashing
/// threads, a batch each, so that many small reads are in flight at once (a
/// cold tree of tiny files is bound by disk latency, not by CPU).
pub const SMALL_FILE: u64 = crate::format::chunker::MIN_CHUNK as u64;
/// Small files are batched until a batch holds this many.
const FILES_PER_BATCH: usize = 256;
/// A buffer holds a segment plus the undecided tail carried from the last one.
const BUF_LEN: usize = SEGMENT + MAX_CHUNK as usize;

/// What identifies a file's content as far as the file system tells: if any
/// of these changed, the content may have. ctime cannot be set by a user and
/// changes on every write, so content changed in place always changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stamp {
    pub fn of(md: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
        }
    }
}

/// One file to read.
#[derive(Debug, Clone)]
pub struct Job {
    pub path: PathBuf,
    /// The size the caller expects (from its scan); reading decides.
    pub size: u64,
    /// Whether to report the file's stamp after reading it.
    pub stamp: bool,
}

/// What the pipeline hands back, in job order.
pub enum Event<'a> {
    /// The next chunk of the current file.
    Chunk { hash: Hash, data: &'a [u8] },
    /// The current file is complete: its size as read, and its stamp after
    /// reading (`None` if it could not be taken).
    Done { size: u64, after: Option<Stamp> },
}

/// A failure reading job `job`.
#[derive(Debug)]
pub struct ReadError {
    pub job: usize,
    pub source: std::io::Error,
}

/// A run of bytes of one file inside a batch buffer.
struct Piece {
    job: usize,
    /// Chunk ranges inside the batch buffer.
    chunks: Vec<Range<usize>>,
    /// Set on the last piece of a file.
    done: Option<(u64, Option<Stamp>)>,
}

struct Batch {
    seq: u64,
    /// Always [`BUF_LEN`] long (zeroed once, then reused); `len` are used.
    buf: Vec<u8>,
    len: usize,
    pieces: Vec<Piece>,
    /// Small files for the hashing thread to read into `buf` first.
    unread: Vec<(usize, Job)>,
    hashes: Vec<Hash>,
    error: Option<ReadError>,
}

/// Number of hashing threads: every core, and at least 8 so that enough
/// small-file reads are in flight on a cold cache.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(8, 16)
}

/// Reads, chunks and hashes `jobs` in order, calling `each` for every chunk
/// and at the end of every file. Stops at the first error (of `each`, or of
/// reading, reported through `on_read_error`).
pub fn hash_files<E>(
    jobs: Vec<Job>,
    mut each: impl FnMut(usize, Event<'_>) -> Result<(), E>,
    on_read_error: impl FnOnce(ReadError) -> E,
) -> Result<(), E> {
    if jobs.is_empty() {
        return Ok(());
    }
    let n = workers();
    // Buffers in circulation: enough for every worker to be busy while the
    // reader fills the next one and the caller drains the last.
    let buffers = n + 2;
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(buffers);
    for _ in 0..buffers {
        // Zeroed pages are mapped lazily: an unused buffer costs nothing.
        free_tx
            .send(vec![0u8; BUF_LEN])
            .expect("room for every buffer");
    }
    let (work_tx, work_rx) = sync_channel::<Batch>(buffers);
    let work_rx = std::sync::Arc::new(std::sync::Mutex::new(work_rx));
    let (done_tx, done_rx) = channel::<Batch>();

    std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_all(&jobs, free_rx, work_tx));
        for _ in 0..n {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || loop {
                let next = work_rx.lock().expect("work queue lock").recv();
                let Ok(mut b) = next else { break };
                read_small(&mut b);
                b.hashes = b
                    .pieces
                    .iter()
                    .flat_map(|p| p.chunks.iter())
                    .map(|r| *blake3::hash(&b.buf[r.clone()]).as_bytes())
                    .collect();
                if done_tx.send(b).is_err() {
                    break;
                }
            });
        }
        // Only the workers hold these now, so each stage ends when the next
        // one has gone.
        drop(done_tx);
        drop(work_rx);
        let r = deliver(&done_rx, &free_tx, &mut each, on_read_error);
        // On an early stop, dropping the receivers makes every stage end.
        drop(done_rx);
        drop(free_tx);
        let _ = reader.join();
        r
    })
}

/// Hands batches to `each` in sequence order, returning their buffers.
fn deliver<E>(
    done_rx: &Receiver<Batch>,
    free_tx: &SyncSender<Vec<u8>>,
    each: &mut impl FnMut(usize, Event<'_>) -> Result<(), E>,
    on_read_error: impl FnOnce(ReadError) -> E,
) -> Result<(), E> {
    let mut pending: BTreeMap<u64, Batch> = BTreeMap::new();
    let mut next = 0u64;
    for b in done_rx.iter() {
        pending.insert(b.seq, b);
        while let Some(mut b) = pending.remove(&next) {
            next += 1;
            let mut h = b.hashes.iter();
            for p in &b.pieces {
                for r in &p.chunks {
                    let hash = *h.next().expect("one hash per chunk");
                    each(
                        p.job,
                        Event::Chunk {
                            hash,
                            data: &b.buf[r.clone()],
                        },
                    )?;
                }
                if let Some((size, after)) = p.done {
                    each(p.job, Event::Done { size, after })?;
                }
            }
            if let Some(e) = b.error.take() {
                return Err(on_read_error(e));
            }
            let _ = free_tx.try_send(b.buf);
        }
    }
    Ok(())
}

/// The reader: fills buffers with whole small files or segments of large
/// ones and cuts them into chunks.
fn read_all(jobs: &[Job], free_rx: Receiver<Vec<u8>>, work_tx: SyncSender<Batch>) {
    let mut seq = 0u64;
    let mut batch: Option<Batch> = None;
    let new_batch = |seq: &mut u64| -> Option<Batch> {
        let buf = free_rx.recv().ok()?;
        let b = Batch {
            seq: *seq,
            buf,
            len: 0,
            pieces: vec![],
            unread: vec![],
            hashes: vec![],
            error: None,
        };
        *seq += 1;
        Some(b)
    };
    let send = |b: Batch| work_tx.send(b).is_ok();
    // Expected bytes of the small files in the current batch.
    let mut planned = 0u64;
    for (i, job) in jobs.iter().enumerate() {
        let small = job.size <= SMALL_FILE;
        // A batch holds either small files to read or bytes read here.
        if let Some(b) = batch.take() {
            if small == b.unread.is_empty() {
                if !send(b) {
                    return;
                }
            } else {
                batch = Some(b);
            }
        }
        if small {
            let mut b = match batch.take() {
                Some(b) => b,
                None => match new_batch(&mut seq) {
                    Some(b) => b,
                    None => return,
                },
            };
            if b.unread.is_empty() {
                planned = 0;
            }
            b.unread.push((i, job.clone()));
            planned += job.size;
            if planned >= SEGMENT as u64 || b.unread.len() >= FILES_PER_BATCH {
                if !send(b) {
                    return;
                }
            } else {
                batch = Some(b);
            }
            continue;
        }
        let mut b = match batch.take() {
            Some(b) => b,
            None => match new_batch(&mut seq) {
                Some(b) => b,
                None => return,
            },
        };
        match read_job(i, job, &mut b, &mut seq, &new_batch, &send) {
            Ok(Some(b)) => {
                if b.len >= SEGMENT || b.pieces.len() >= FILES_PER_BATCH {
                    if !send(b) {
                        return;
                    }
                } else {
                    batch = Some(b);
                }
            }
            Ok(None) => return,
            Err(failed) => {
                let (mut b, e) = *failed;
                b.error = Some(ReadError { job: i, source: e });
                let _ = send(b);
                return;
            }
        }
    }
    if let Some(b) = batch {
        let _ = send(b);
    }
}

type ReadResult = Result<Option<Batch>, Box<(Batch, std::io::Error)>>;

/// Reads one file into `b` (and as many further batches as it needs).
/// Returns the batch to continue filling, or `None` when the pipeline stopped.
fn read_job(
    i: usize,
    job: &Job,
    b: &mut Batch,
    seq: &mut u64,
    new_batch: &impl Fn(&mut u64) -> Option<Batch>,
    send: &impl Fn(Batch) -> bool,
) -> ReadResult {
    let take = |b: &mut Batch| std::mem::replace(b, empty_batch());
    let mut f = match File::open(&job.path) {
        Ok(f) => f,
        Err(e) => return Err(Box::new((take(b), e))),
    };
    // Where this file's bytes start in the current buffer, and how many of
    // its bytes came before this buffer.
    let mut start = b.len;
    let mut before = 0u64;
    // Until the expected size is read, then one more read to see the end.
    let mut want = job.size;
    loop {
        // Make room: a full buffer goes on, carrying this file's undecided tail.
        if b.len >= BUF_LEN {
            let Some(nb) = carry_over(b, start, seq, new_batch, send) else {
                return Ok(None);
            };
            *b = nb;
            start = 0;
        }
        let room = (BUF_LEN - b.len).min(SEGMENT);
        let room = if want > 0 {
            room.min(want as usize)
        } else {
            room
        };
        let n = match read_full(&mut f, &mut b.buf[b.len..b.len + room]) {
            Ok(n) => n,
            Err(e) => return Err(Box::new((take(b), e))),
        };
        b.len += n;
        want = want.saturating_sub(n as u64);
        let eof = n == 0;
        let avail = b.len - start;
        // Chunks decided so far (all of them at the end of the file).
        let mut chunks = vec![];
        let mut cut_to = start;
        if eof || avail >= SEGMENT || b.len >= BUF_LEN {
            for c in
                fastcdc::v2020::FastCDC::new(&b.buf[start..b.len], MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
            {
                if !eof && c.offset + MAX_CHUNK as usize > avail {
                    break;
                }
                chunks.push(start + c.offset..start + c.offset + c.length);
                cut_to = start + c.offset + c.length;
            }
        }
        if eof {
            let size = before + avail as u64;
            let after = if job.stamp {
                f.metadata().ok().map(|md| Stamp::of(&md))
            } else {
                None
            };
            b.pieces.push(Piece {
                job: i,
                chunks,
                done: Some((size, after)),
            });
            return Ok(Some(take(b)));
        }
        if !chunks.is_empty() {
            // The decided chunks stay in this buffer; the rest moves on.
            b.pieces.push(Piece {
                job: i,
                chunks,
                done: None,
            });
            before += (cut_to - start) as u64;
            let Some(nb) = carry_over(b, cut_to, seq, new_batch, send) else {
                return Ok(None);
            };
            *b = nb;
            start = 0;
        }
    }
}

/// Sends `b` on without its bytes from `from`, which start the next batch.
fn carry_over(
    b: &mut Batch,
    from: usize,
    seq: &mut u64,
    new_batch: &impl Fn(&mut u64) -> Option<Batch>,
    send: &impl Fn(Batch) -> bool,
) -> Option<Batch> {
    let mut nb = new_batch(seq)?;
    let n = b.len - from;
    nb.buf[..n].copy_from_slice(&b.buf[from..b.len]);
    nb.len = n;
    b.len = from;
    if !send(std::mem::replace(b, empty_batch())) {
        return None;
    }
    Some(nb)
}

/// Files of a batch are opened, and their reads started, this many at a
/// time before they are read in order: on a cold disk each thread then has
/// that many reads in flight instead of one (pushing 100,000 tiny files
/// waited on one disk read per file per thread).
const OPEN_AHEAD: usize = 32;

/// A hashing thread reads a batch's small files into its buffer (stopping
/// at the first that fails) and cuts them into chunks.
fn read_small(b: &mut Batch) {
    let unread = std::mem::take(&mut b.unread);
    for group in unread.chunks(OPEN_AHEAD) {
        let opened: Vec<std::io::Result<File>> = group
            .iter()
            .map(|(_, job)| {
                let f = File::open(&job.path)?;
                crate::store::will_need(&f);
                Ok(f)
            })
            .collect();
        for ((i, job), f) in group.iter().zip(opened) {
            match f.and_then(|f| read_whole(b, *i, job, f)) {
                Ok(piece) => b.pieces.push(piece),
                Err(source) => {
                    b.error = Some(ReadError { job: *i, source });
                    return;
                }
            }
        }
    }
}

fn read_whole(b: &mut Batch, i: usize, job: &Job, mut f: File) -> std::io::Result<Piece> {
    let start = b.len;
    let room = BUF_LEN - start;
    // The expected size, then one more read to see the end.
    let want = (job.size as usize).min(room);
    let n = read_full(&mut f, &mut b.buf[start..start + want])?;
    let mut end = start + n;
    if n == want {
        end += read_full(&mut f, &mut b.buf[end..])?;
        if end == BUF_LEN {
            // Grew past what a batch can hold since the caller's scan.
            return Err(std::io::Error::other(
                "changed while it was being pushed (it grew); nothing was committed, push again",
            ));
        }
    }
    b.len = end;
    let chunks = fastcdc::v2020::FastCDC::new(&b.buf[start..end], MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
        .map(|c| start + c.offset..start + c.offset + c.length)
        .collect();
    let after = if job.stamp {
        f.metadata().ok().map(|md| Stamp::of(&md))
    } else {
        None
    };
    Ok(Piece {
        job: i,
        chunks,
        done: Some(((end - start) as u64, after)),
    })
}

fn empty_batch() -> Batch {
    Batch {
        seq: u64::MAX,
        buf: vec![],
        len: 0,
        pieces: vec![],
        unread: vec![],
        hashes: vec![],
        error: None,
    }
}

/// Fills `buf` as far as the file goes; 0 only at the end of the file.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_chunks(data: &[u8]) -> Vec<(usize, Hash)> {
        let mut out = vec![];
        if data.is_empty() {
            return out;
        }
        for c in fastcdc::v2020::StreamCDC::new(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
            let c = c.unwrap();
            out.push((c.length, *blake3::hash(&c.data).as_bytes()));
        }
        out
    }

    fn pseudo(seed: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        blake3::Hasher::new()
            .update(&seed.to_le_bytes())
            .finalize_xof()
            .fill(&mut v);
        v
    }

    /// Same chunks as the streaming chunker, for sizes around every edge:
    /// empty, tiny, MIN_CHUNK, segment boundaries, several segments; many
    /// files in one run (batched) and low-entropy data (max-size cuts).
    #[test]
    fn matches_stream_cdc() {
        let dir = tempfile::tempdir().unwrap();
        let seg = SEGMENT;
        let sizes = [
            0,
            1,
            100,
            MIN_CHUNK as usize,
            MIN_CHUNK as usize + 1,
            300_000,
            seg - 1,
            seg,
            seg + 1,
            seg + MAX_CHUNK as usize + 5,
            3 * seg + 12_345,
        ];
        let mut jobs = vec![];
        let mut want = vec![];
        for (i, &n) in sizes.iter().enumerate() {
            for kind in 0..2 {
                let data = if kind == 0 {
                    pseudo(i as u64, n)
                } else {
                    vec![7u8; n]
                };
                let p = dir.path().join(format!("f{i}-{kind}"));
                std::fs::write(&p, &data).unwrap();
                let stream = stream_chunks(&data);
                // What tests and `content_hash` cut in one slice agrees too.
                let sliced = crate::format::chunk_hashes(&data);
                assert!(sliced
                    .iter()
                    .map(|&(h, l)| (l as usize, h))
                    .eq(stream.iter().copied()));
                want.push((stream, data.len() as u64));
                jobs.push(Job {
                    path: p,
                    size: n as u64,
                    stamp: true,
                });
            }
        }
        // Plus 1000 small files, to exercise batching.
        for i in 0..1000u64 {
            let data = pseudo(1000 + i, (i * 37 % 5000) as usize);
            let p = dir.path().join(format!("s{i}"));
            std::fs::write(&p, &data).unwrap();
            want.push((stream_chunks(&data), data.len() as u64));
            jobs.push(Job {
                path: p,
                size: data.len() as u64,
                stamp: true,
            });
        }
        let mut got: Vec<(Vec<(usize, Hash)>, u64)> = vec![(vec![], 0); jobs.len()];
        let mut order = vec![];
        hash_files(
            jobs,
            |j, e| {
                match e {
                    Event::Chunk { hash, data } => {
                        assert_eq!(&hash, blake3::hash(data).as_bytes());
                        got[j].0.push((data.len(), hash));
                    }
                    Event::Done { size, after } => {
                        got[j].1 = size;
                        assert!(after.is_some());
                        order.push(j);
                    }
                }
                Ok::<_, String>(())
            },
            |e| format!("{e:?}"),
        )
        .unwrap();
        assert_eq!(order, (0..want.len()).collect::<Vec<_>>(), "job order");
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w, g, "job {i}");
        }
    }

    fn hashes_of(path: &std::path::Path) -> Vec<Hash> {
        let mut out = vec![];
        hash_files(
            vec![Job {
                path: path.to_path_buf(),
                size: u64::MAX,
                stamp: false,
            }],
            |_, e| {
                if let Event::Chunk { hash, .. } = e {
                    out.push(hash);
                }
                Ok::<_, ()>(())
            },
            |_| (),
        )
        .unwrap();
        out
    }

    /// Content-defined: an insertion changes only the chunks around it.
    #[test]
    fn insertion_keeps_most_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let data = pseudo(9, 8 << 20);
        let mut edited = data.clone();
        edited.splice(4 << 20..4 << 20, vec![7u8; 1000]);
        std::fs::write(dir.path().join("a"), &data).unwrap();
        std::fs::write(dir.path().join("b"), &edited).unwrap();
        let a = hashes_of(&dir.path().join("a"));
        let b = hashes_of(&dir.path().join("b"));
        let shared = b.iter().filter(|h| a.contains(h)).count();
        assert!(shared + 3 >= a.len(), "{shared} of {} shared", a.len());
    }

    /// Runs the pipeline until its read error: the error, and the jobs
    /// finished before it.
    fn first_read_error(jobs: Vec<Job>) -> (ReadError, Vec<usize>) {
        let mut done = vec![];
        let err = hash_files(
            jobs,
            |j, e| {
                if let Event::Done { .. } = e {
                    done.push(j);
                }
                Ok::<_, ReadError>(())
            },
            |e| e,
        )
        .unwrap_err();
        (err, done)
    }

    #[test]
    fn read_error_names_the_job_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok");
        std::fs::write(&ok, b"fine").unwrap();
        let jobs = vec![
            Job {
                path: ok.clone(),
                size: 4,
                stamp: true,
            },
            Job {
                path: dir.path().join("missing"),
                size: 1,
                stamp: true,
            },
            Job {
                path: ok,
                size: 4,
                stamp: true,
            },
        ];
        let (err, done) = first_read_error(jobs);
        assert_eq!(err.job, 1);
        assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(done, vec![0]);
    }

    /// Small files are opened a group at a time ahead of reading them: a
    /// file missing in a later group is still the one reported, after every
    /// file before it and none after.
    #[test]
    fn read_error_in_a_later_open_group_keeps_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs = vec![];
        for i in 0..100 {
            let p = dir.path().join(format!("f{i}"));
            if i != 70 {
                std::fs::write(&p, format!("file {i}")).unwrap();
            }
            jobs.push(Job {
                path: p,
                size: format!("file {i}").len() as u64,
                stamp: false,
            });
        }
        let (err, done) = first_read_error(jobs);
        assert_eq!(err.job, 70);
        assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(done, (0..70).collect::<Vec<_>>());
    }

    #[test]
    fn caller_error_stops_the_pipeline() {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs = vec![];
        for i in 0..20 {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, pseudo(i, 1 << 20)).unwrap();
            jobs.push(Job {
                path: p,
                size: 1 << 20,
                stamp: false,
            });
        }
        let mut seen = 0;
        let r = hash_files(
            jobs,
            |_, _| {
                seen += 1;
                if seen == 3 {
                    Err("stop")
                } else {
                    Ok(())
                }
            },
            |_| "read",
        );
        assert_eq!(r, Err("stop"));
        assert_eq!(seen, 3);
    }
}
