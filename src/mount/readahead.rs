//! Per-open-file readahead, and reading a byte range of a version's file.
//!
//! A [`ReadAhead`] keeps, for one open file, the chunks from just behind the
//! reader up to a frontier, each already on its way ([`Pending`]). A
//! sequential reader (reads that continue where an earlier one ended, or
//! large READs of the kernel's readahead near the furthest read: the kernel
//! keeps several in flight and they are handled in any order) grows a window that
//! doubles at every top-up up to `max_window`; a top-up happens when a
//! request's worth of the window (half of it while it is small) is free, so
//! each one asks for at least a whole request, the store sees large
//! requests, and the disk or link never waits for half the window to drain. A
//! top-up that ends inside a run of chunks lying back to back in one pack is
//! extended to the end of that run when it is near, so top-ups (and thus
//! requests) meet at pack boundaries instead of splitting a pack's block;
//! one that still ends inside the run leaves the chunks past its last
//! aligned offset to the next top-up (a tail: see
//! [`ChunkSource::plan_stream`]), so requests meet at block boundaries.
//! The window is the same for chunks in the disk cache: they are read from
//! disk in parallel ahead of the reader.
//!
//! A read outside the window (a seek) drops it: a random reader fetches only
//! the chunks it touches, and from the disk cache only the 4 KiB blocks it
//! touches. Readahead bytes are bounded per file (`max_window`) and across
//! files (`budget`, a semaphore in bytes held until the reader passes them).
//! Many sequential readers share the budget fairly: each window is capped
//! at the budget's share per stream, and a top-up beyond what the read
//! itself needs takes budget only in request-sized grants. Taking whatever
//! trickled back made eight readers fetch in 1.4 MiB requests on average
//! instead of 8 MiB, at 0.44x the raw GETs' throughput.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use crate::format::PackId;
use crate::format::{ChunkRef, Entry, Manifest};
use crate::mount::reader::{
    concat, ChunkMap, ChunkSource, Pending, ReadError, SmallReads, StreamGuard,
};

/// How far behind or ahead of the furthest read a read still counts as
/// sequential: the kernel keeps the READs of up to two readahead windows
/// (4 MiB each) in flight, and they are handled concurrently, so they arrive
/// out of order.
const SPREAD: u64 = 8 << 20;
/// READs at least this large come from the kernel's readahead; a smaller
/// read counts as sequential only if it continues an earlier one.
const LARGE: u64 = 32 << 10;
/// Planned chunks are let go of this far behind the bytes the kernel has
/// asked for without a gap ([`Asked`]; a late READ of one after that reads
/// it from the disk cache).
const KEEP: u64 = 4 << 20;
/// READs ahead of a gap remembered at most; past that the gap is taken to be
/// one the kernel will not fill (pages it had already).
const GAPS: usize = 16;

/// How far the kernel has asked for a stream's bytes without a gap. The
/// READs of one readahead batch (up to 8 MiB) arrive together and are
/// handled on several threads in any order, so a READ can be handled after
/// later ones. Chunks used to be let go of behind the READ being handled:
/// one READ per batch came too late, found its chunks gone and read them
/// from the disk again, behind the readahead's reads in the disk's queue;
/// a warm `cat` waited 10-15 ms for that READ every 16 MiB.
#[derive(Default)]
struct Asked {
    upto: u64,
    /// READs beyond a gap.
    above: Vec<std::ops::Range<u64>>,
}

impl Asked {
    fn restart(&mut self, at: u64) {
        self.upto = at;
        self.above.clear();
    }

    fn add(&mut self, r: std::ops::Range<u64>) {
        if r.start > self.upto {
            self.above.push(r);
            if self.above.len() > GAPS {
                let first = (0..self.above.len())
                    .min_by_key(|&i| self.above[i].start)
                    .expect("not empty");
                self.upto = self.upto.max(self.above.swap_remove(first).end);
            }
        } else {
            self.upto = self.upto.max(r.end);
        }
        while let Some(i) = self.above.iter().position(|a| a.start <= self.upto) {
            self.upto = self.upto.max(self.above.swap_remove(i).end);
        }
    }
}

struct Slot {
    pending: Pending,
    _permit: Option<OwnedSemaphorePermit>,
}

/// The tail a stream's last top-up left for its next one
/// ([`ChunkSource::plan_stream`]); let go of (fetched on its own, unless a
/// top-up took it) when the stream moves on or ends.
struct Owed {
    source: Arc<ChunkSource>,
    pack: PackId,
    to: u64,
}

impl Drop for Owed {
    fn drop(&mut self) {
        self.source.release_tail(self.pack, self.to);
    }
}

/// Access-pattern state of one open file.
#[derive(Default)]
pub struct ReadAhead {
    /// Chunk index of `queue[0]`.
    head: usize,
    /// Chunks `head..head + queue.len()`, on their way.
    queue: VecDeque<Slot>,
    /// Current window in bytes (0: not reading sequentially).
    window: u64,
    /// End of the furthest read so far in this sequential stream.
    last_end: u64,
    /// Reads of this handle so far.
    reads: u64,
    /// Where recent reads ended.
    recent_ends: VecDeque<u64>,
    /// The bytes of this stream asked for so far.
    asked: Asked,
    /// Counts this file among the sequential streams sharing the budget
    /// while it has a window.
    stream: Option<StreamGuard>,
    /// The tail the last top-up left.
    owed: Option<Owed>,
    /// Top-ups so far (for tests).
    pub top_ups: u64,
}

impl ReadAhead {
    fn frontier(&self) -> usize {
        self.head + self.queue.len()
    }

    fn reset(&mut self, at: usize) {
        self.queue.clear();
        self.head = at;
        self.window = 0;
        self.stream = None;
        self.owed = None;
    }

    /// Records a read of `[offset, offset + len)` and returns, for each chunk
    /// it touches, the chunk if it is already planned. Starts top-ups.
    fn on_read(
        &mut self,
        source: &Arc<ChunkSource>,
        m: &Arc<Manifest>,
        e: &Entry,
        map: &ChunkMap,
        offset: u64,
        len: u64,
    ) -> Vec<Option<Pending>> {
        let range = map.chunks_for(offset, len);
        if range.is_empty() {
            return vec![];
        }
        let end = (offset + len).min(map.size());
        let cfg = source.config();
        // In the stream: near the furthest read, and either a READ of the
        // kernel's readahead (large) or one that continues an earlier read.
        // Random reads, even near each other, are neither.
        let near = offset + SPREAD >= self.last_end && offset <= self.last_end + SPREAD;
        let continues = self.recent_ends.contains(&offset);
        // A READ of the kernel's readahead handled late (it sat in the
        // queue behind READs that waited for their chunks): behind the
        // stream, within its window. It drops nothing; a warm `cat` that
        // reset its window at such READs read 1.6x the file's bytes from the
        // disk cache, every chunk of the dropped window planned twice.
        let late = self.window > 0
            && len >= LARGE
            && end <= self.last_end
            && offset + self.window.max(SPREAD) >= self.last_end;
        let in_window = self.window > 0 && (near || late) && (len >= LARGE || continues);
        // A handle's first read near the start (the kernel sends the READs
        // of its first readahead at once, and they are handled in any
        // order) starts a stream from the first chunk; so does a read that
        // continues the last one.
        let first = self.reads == 0 && offset < SPREAD;
        let starts_stream = first || offset == self.last_end;
        if self.recent_ends.len() >= 8 {
            self.recent_ends.pop_front();
        }
        self.recent_ends.push_back(end);
        self.reads += 1;
        tracing::trace!(
            offset,
            len,
            in_window,
            starts_stream,
            window = self.window,
            head = self.head,
            frontier = self.frontier(),
            "read"
        );
        if in_window {
            self.last_end = self.last_end.max(end);
        } else {
            self.reset(if first { 0 } else { range.start });
            self.asked.restart(if first { 0 } else { offset });
            self.last_end = end;
            if starts_stream {
                self.window = cfg.initial_window;
                self.stream = Some(source.join_stream());
            }
        }
        self.asked.add(offset..end);
        // Let go of chunks well behind every READ the kernel has sent so
        // far, and in any case well behind this one.
        let behind = self.asked.upto.min(offset);
        while self.head < range.start
            && (map.start(self.head + 1) + KEEP <= behind
                || map.start(self.head + 1) + KEEP + SPREAD <= offset)
        {
            self.queue.pop_front();
            self.head += 1;
        }
        if self.window > 0 {
            let ahead = map.start(self.frontier()).saturating_sub(end);
            // Topped up as soon as a request's worth of the window is free
            // (half the window while it is small): waiting for half of a
            // 64 MiB window to drain left a local disk idle for 28% of a
            // cold read, then handed it three 16 MiB pack reads at once,
            // and the reader waited for them.
            let refill = (self.window / 2).min(source.request_target());
            if self.frontier() < range.end || ahead + refill <= self.window {
                // A small file read from its start: read whole, and likely
                // one of many (a data-loader epoch). Its pack neighbours in
                // the same aligned blocks come with it.
                let small =
                    self.head == 0 && self.queue.is_empty() && map.size() <= cfg.initial_window;
                let along = if small {
                    neighbours(source, m, e)
                } else {
                    Along::default()
                };
                self.top_up(source, m, e, map, range.end, along);
            }
        }
        range
            .map(|i| {
                (i >= self.head && i < self.frontier())
                    .then(|| self.queue[i - self.head].pending.clone())
            })
            .collect()
    }

    /// Plans chunks from the frontier to a window past the last read.
    fn top_up(
        &mut self,
        source: &Arc<ChunkSource>,
        m: &Manifest,
        e: &Entry,
        map: &ChunkMap,
        must: usize,
        along: Along,
    ) {
        let Along {
            chunks: extra,
            hold,
        } = along;
        let chunks = m.chunks_of(e);
        let cfg = source.config();
        // Every stream can have a window in flight at once: its share of
        // the budget, less what it keeps just behind the reader.
        let cap = source
            .budget_share()
            .saturating_sub(KEEP)
            .clamp(cfg.initial_window, cfg.max_window.max(cfg.initial_window));
        self.window = self.window.min(cap);
        let target = self.last_end + self.window;
        let mut stop = map.first_at_or_after(target).max(must).min(chunks.len());
        // Finish the pack run the window ends in, if that is close.
        let limit = target + self.window / 2;
        while stop > 0 && stop < chunks.len() && map.start(stop + 1) <= limit {
            let (a, b) = (chunks[stop - 1], chunks[stop]);
            if a.pack != b.pack || a.offset + a.len != b.offset {
                break;
            }
            stop += 1;
        }
        let from = self.frontier();
        if stop <= from {
            return;
        }
        // The chunks the read itself needs are planned whatever the budget
        // says; beyond them, one grant of at least a request's worth (or
        // of all that is wanted), else nothing until more is free.
        let must = must.clamp(from, stop);
        let mut permits: Vec<Option<OwnedSemaphorePermit>> = chunks[from..must]
            .iter()
            .map(|c| source.budget().clone().try_acquire_many_owned(c.len).ok())
            .collect();
        let wanted: u64 = chunks[must..stop].iter().map(|c| c.len as u64).sum();
        let free = source.budget().available_permits() as u64;
        let grant = wanted.min(free);
        tracing::trace!(
            from,
            stop,
            must,
            wanted,
            free,
            grant,
            window = self.window,
            "top-up"
        );
        let mut end = must;
        if grant > 0 && grant >= wanted.min(cfg.request_bytes) {
            let mut bytes = 0u64;
            while end < stop && (end == must || bytes + chunks[end].len as u64 <= grant) {
                bytes += chunks[end].len as u64;
                end += 1;
            }
            match source.budget().clone().try_acquire_many_owned(bytes as u32) {
                Ok(mut all) => {
                    for c in &chunks[must..end] {
                        permits.push(all.split(c.len as usize));
                    }
                }
                // Taken by another reader meanwhile.
                Err(_) => end = must,
            }
        }
        let adjacent = |i: usize| {
            i > 0
                && i < chunks.len()
                && chunks[i - 1].pack == chunks[i].pack
                && chunks[i - 1].offset + chunks[i - 1].len == chunks[i].offset
        };
        let planned: Vec<(PackId, ChunkRef)> = chunks[from..end]
            .iter()
            .map(|&c| (m.packs[c.pack as usize], c))
            .collect();
        if planned.is_empty() {
            return;
        }
        let n = planned.len();
        // One plan in pack order, so a small file and its neighbours in the
        // same blocks are one request.
        let mut all: Vec<(usize, (PackId, ChunkRef))> =
            planned.into_iter().chain(extra).enumerate().collect();
        // The chunks the read needs now lead the plan (unless it is sorted).
        let mut now = must - from;
        // More of the file follows in the same pack, beyond what a READ
        // waits for now: the next top-up continues the last request.
        let open_end = all.len() == n && end > must && adjacent(end);
        if all.len() > n {
            all.sort_by_key(|(_, (p, c))| (*p, c.offset));
            now = 0;
        }
        let order: Vec<usize> = all.iter().map(|(i, _)| *i).collect();
        let plan: Vec<_> = all.into_iter().map(|(_, x)| x).collect();
        let mut got: Vec<Option<Pending>> = vec![None; plan.len()];
        // Taken by this plan if it continues the last one; let go of
        // (below) if not.
        let owed = self.owed.take();
        for (i, p) in order
            .into_iter()
            .zip(source.plan_stream(&plan, now, open_end))
        {
            got[i] = Some(p);
        }
        drop(owed);
        if open_end {
            let last = chunks[end - 1];
            self.owed = Some(Owed {
                source: source.clone(),
                pack: m.packs[last.pack as usize],
                to: last.offset as u64 + last.len as u64,
            });
        }
        let mut got = got.into_iter().map(|p| p.expect("planned"));
        let pendings: Vec<Pending> = got.by_ref().take(n).collect();
        if let Some(hold) = hold {
            // The extra chunks hold their budget until they have arrived
            // (then they wait for the disk-cache writer, in its bounded queue).
            let extra: Vec<Pending> = got.collect();
            tokio::spawn(async move {
                for p in extra {
                    let _ = p.await;
                }
                drop(hold);
            });
        }
        for (pending, permit) in pendings.into_iter().zip(permits) {
            self.queue.push_back(Slot {
                pending,
                _permit: permit,
            });
        }
        self.top_ups += 1;
        self.window = (self.window * 2).min(cap);
        // Planned to the end: no more top-ups, so no more share of the budget
        // (a small file, or a large one kept open after it was read).
        if self.frontier() >= chunks.len() {
            self.stream = None;
        }
    }
}
/// Chunks fetched along with a file's own, and the budget they hold until
/// they have arrived (none for the few in the file's own blocks).
#[derive(Default)]
struct Along {
    chunks: Vec<(PackId, ChunkRef)>,
    hold: Option<OwnedSemaphorePermit>,
}

/// Chunks of the same pack to bring along with a small file read whole,
/// other than the file's own. A data-loader epoch reads every small file of a
/// version in random order, so every pack whole: the first small file of a
/// pack brings the other chunks lying wholly inside the aligned blocks its
/// own chunks touch (an S3 server reads those blocks whole anyway); the
/// second brings the rest of the pack, in large requests, into the disk
/// cache. Whole packs draw on the readahead budget shared with streams (a
/// data-loader epoch has no streams to share it with): on a budget of their
/// own, a quarter of it, two packs could be on their way at once, and 8
/// readers of a 20,000-file epoch found it taken for most packs (1,800 GETs
/// instead of 570; Garage read each block 1.85 times instead of 1.2;
/// docs/benchmarks.md). Without budget to spare, only the blocks' chunks come
/// along.
fn neighbours(source: &Arc<ChunkSource>, m: &Arc<Manifest>, e: &Entry) -> Along {
    let own = m.chunks_of(e);
    let Some(first) = own.first() else {
        return Along::default();
    };
    if own.iter().any(|c| c.pack != first.pack) {
        return Along::default();
    }
    // Already cached or on its way (a warm pass): nothing to bring along.
    if own.iter().all(|c| source.has(&c.hash)) {
        return Along::default();
    }
    let pack = m.packs[first.pack as usize];
    let index = source.pack_index(m);
    let pick = |start: u64, end: u64| -> Vec<(PackId, ChunkRef)> {
        index
            .within(first.pack, start, end)
            .iter()
            .filter(|c| !own.iter().any(|o| o.offset == c.offset) && !source.has(&c.hash))
            .map(|c| (pack, *c))
            .collect()
    };
    match source.note_small_read(&pack) {
        SmallReads::First => {}
        SmallReads::Again => {
            let rest = pick(0, u64::MAX);
            let bytes: u64 = rest.iter().map(|(_, c)| c.len as u64).sum();
            if let Ok(permit) = source
                .budget()
                .clone()
                .try_acquire_many_owned(bytes.max(1) as u32)
            {
                source.note_pack_fetched(&pack);
                return Along {
                    chunks: rest,
                    hold: Some(permit),
                };
            }
        }
        // The rest of the pack is on its way or cached already.
        SmallReads::PackFetched => return Along::default(),
    }
    let align = source.config().align;
    let start = own.iter().map(|c| c.offset as u64).min().unwrap_or(0) / align * align;
    let end = own
        .iter()
        .map(|c| c.offset as u64 + c.len as u64)
        .max()
        .unwrap_or(0)
        .div_ceil(align)
        * align;
    Along {
        chunks: pick(start, end),
        hold: None,
    }
}

/// Reads `[offset, offset + len)` of a file. With `ra`, the file's readahead
/// state is updated and its window used; without, only the touched chunks
/// are read.
pub async fn read_range(
    source: &Arc<ChunkSource>,
    m: &Arc<Manifest>,
    e: &Entry<'_>,
    map: &ChunkMap,
    offset: u64,
    len: u64,
    ra: Option<&Mutex<ReadAhead>>,
) -> Result<Bytes, ReadError> {
    let range = map.chunks_for(offset, len);
    if range.is_empty() {
        return Ok(Bytes::new());
    }
    let planned = match ra {
        Some(ra) => ra
            .lock()
            .expect("readahead lock")
            .on_read(source, m, e, map, offset, len),
        None => vec![None; range.len()],
    };
    let chunks = m.chunks_of(e);
    let end = (offset + len).min(map.size());
    let parts = range.clone().zip(planned).map(|(i, p)| {
        let c = chunks[i];
        let cs = map.start(i);
        let s = offset.saturating_sub(cs) as u32;
        let e = ((end - cs) as u32).min(c.len);
        let pack = m.packs[c.pack as usize];
        async move {
            match p {
                Some(p) => Ok(p.await?.slice(s as usize..e as usize)),
                None => source.chunk_part(pack, c, s..e).await,
            }
        }
    });
    // How long the READ waited for its chunks (scripts/bench/diag/local-read-trace.sh).
    let waiting = tracing::enabled!(tracing::Level::TRACE).then(std::time::Instant::now);
    let parts = futures::future::try_join_all(parts).await;
    if let Some(t) = waiting {
        tracing::trace!(
            offset,
            len,
            wait_us = t.elapsed().as_micros() as u64,
            "read served"
        );
    }
    let parts = match parts {
        Ok(p) => p,
        Err(err) => {
            // A failed fetch must not stay planned: the next read tries again.
            if let Some(ra) = ra {
                ra.lock().expect("readahead lock").reset(range.start);
            }
            return Err(err);
        }
    };
    let (bytes, copied) = concat(parts);
    if copied {
        source.stats.copied_reads.fetch_add(1, Ordering::Relaxed);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// READs handled out of order: the bytes asked for without a gap stop
    /// at the first gap and jump when it is filled; a gap the kernel never
    /// fills is passed once too many READs wait beyond it.
    #[test]
    fn asked_follows_the_first_gap() {
        let mut a = Asked::default();
        a.restart(0);
        a.add(0..10);
        assert_eq!(a.upto, 10);
        a.add(30..40);
        a.add(20..30);
        assert_eq!(a.upto, 10, "10..20 not asked for yet");
        a.add(10..20);
        assert_eq!(a.upto, 40, "the gap filled: all three absorbed");
        assert!(a.above.is_empty());
        a.add(5..8);
        assert_eq!(a.upto, 40, "a late READ moves nothing");
        // A gap at 40..50 that never fills.
        for i in 0..GAPS as u64 {
            a.add(50 + 10 * i..60 + 10 * i);
        }
        assert_eq!(a.upto, 40);
        a.add(50 + 10 * GAPS as u64..60 + 10 * GAPS as u64);
        assert_eq!(a.upto, 60 + 10 * GAPS as u64, "passed the gap");
        a.restart(1000);
        assert_eq!((a.upto, a.above.len()), (1000, 0));
    }
}
