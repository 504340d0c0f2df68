//! `ChunkCache`: the parts of every live stream, in per-stream rings of slots that players read directly.
//!
//! Each stream gets a [`Ring`] when it starts: `retained_segments` rows (rounded up to a power of two, so that the
//! row is a mask rather than a division) of `max_parts_per_segment` slots, so the slot of part `(msn, part)` is
//! found by arithmetic, `(msn & (rows - 1)) * row_len + part`, with no map and no search.
//! Every slot has its own lock and remembers which position and which stream generation it holds; a read checks
//! both, so a read of an evicted or overwritten position returns nothing, never another part's bytes.
//!
//! Writes (one writer per stream: its owner) lock exactly one slot. Reads take a shared lock just long enough to
//! clone the `Bytes` (a reference-count increment: zero-copy). [`Ring::last`] is one atomic load. When a segment's
//! row is reused for a newer segment, the old parts are dropped, so memory stays bounded by the retained window.
//!
//! Taking a shared lock still writes the lock's reader count, and when every core reads the same newest parts
//! (a live edge watched by many players) that count bounces between cores on every read. So a slot's lock is
//! split per reading core, as a big-reader lock: the slot array is kept once per shard (one shard per core, up to
//! [`MAX_SHARDS`]) and each reading thread uses its own shard. The writer writes only the primary shard; a reader
//! whose shard does not hold the part yet reads it from the primary and keeps a handle of its own on the same
//! buffer in its shard (`Bytes::from_owner`: its own reference count, never a copy of the payload), so each part
//! crosses to each core once and the clones handed to that core's readers count on that core's line. Evicting a segment clears its slots in every
//! shard, so memory stays bounded by the retained window.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use dashmap::DashMap;

use crate::error::Error;
use crate::options::Options;
use crate::position::Position;
use crate::stream_id::StreamId;

/// `last` value meaning "nothing published yet".
pub(crate) const NONE: u64 = u64::MAX;
/// Bits of a packed position that hold the part index (`max_parts_per_segment` is at most 4096).
const PART_BITS: u32 = 16;

pub(crate) fn pack(p: Position) -> u64 {
    (p.msn << PART_BITS) | u64::from(p.part)
}

pub(crate) fn unpack(v: u64) -> Option<Position> {
    (v != NONE).then(|| Position::new(v >> PART_BITS, (v & ((1 << PART_BITS) - 1)) as u32))
}

/// One part slot.
#[derive(Default)]
struct Slot {
    generation: u64,
    position: Position,
    bytes: Bytes,
}

/// What a row of slots holds: which segment, how many parts, whether the segment is complete.
#[derive(Clone, Copy)]
struct Row {
    generation: u64,
    msn: u64,
    parts: u32,
    complete: bool,
}

const EMPTY_ROW: Row = Row { generation: 0, msn: u64::MAX, parts: 0, complete: false };

/// A whole segment, as the `Bytes` of its parts in order: concatenated, they are the segment (no payload copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The segment's parts.
    pub parts: Vec<Bytes>,
}

impl Segment {
    /// Total size in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    /// Whether the segment holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shard the writer publishes into.
const PRIMARY: usize = 0;

/// Most reader shards a ring keeps. Each is a slot array (about 300 KB per stream with the default options,
/// without the payloads), so on many cores threads share shards rather than memory growing with the core count.
pub const MAX_SHARDS: usize = 4;

fn shard_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_SHARDS)
}

/// Hands out reader shards to threads in the order they first read.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static READER_SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
}

/// The calling thread's reader shard (modulo the ring's shard count).
fn reader_shard() -> usize {
    READER_SHARD.with(|s| *s)
}

/// Aligns its content to its own cache line (128 bytes covers the adjacent-line prefetch of x86 and the line
/// size of recent ARM cores).
#[repr(align(128))]
struct CacheLine<T>(T);

/// The part ring of one stream. Cheap to share (`Arc`); a reader keeps it to avoid the stream-map lookup.
pub struct Ring {
    generation: u64,
    row_len: usize,
    /// `rows.len() - 1`; `rows.len()` is a power of two.
    mask: u64,
    rows: Box<[RwLock<Row>]>,
    /// The slots, once per reader shard.
    shards: Box<[Box<[RwLock<Slot>]>]>,
    /// On a cache line of its own: readers poll it, and nothing else the writer touches should evict it.
    last: CacheLine<AtomicU64>,
    /// Serializes writers. There is one by design (the stream's owner); the lock makes a second one safe, not fast.
    writer: Mutex<()>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

impl Ring {
    /// A ring of at least `rows` segments (rounded up to a power of two) of up to `row_len` parts each.
    pub fn new(generation: u64, rows: usize, row_len: usize) -> Self {
        let rows = rows.max(2).next_power_of_two();
        let row_len = row_len.max(1);
        Self {
            generation,
            row_len,
            rows: (0..rows).map(|_| RwLock::new(EMPTY_ROW)).collect(),
            shards: (0..shard_count())
                .map(|_| (0..rows * row_len).map(|_| RwLock::new(Slot::default())).collect())
                .collect(),
            mask: rows as u64 - 1,
            last: CacheLine(AtomicU64::new(NONE)),
            writer: Mutex::new(()),
        }
    }

    /// The generation of the stream this ring belongs to: unique for the life of the [`ChunkCache`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Segments this ring retains.
    pub fn retained_segments(&self) -> usize {
        self.rows.len()
    }

    /// The newest published part: one atomic load.
    pub fn last(&self) -> Option<Position> {
        unpack(self.last.0.load(Ordering::Acquire))
    }

    fn row_index(&self, msn: u64) -> usize {
        (msn & self.mask) as usize
    }

    fn slot_index(&self, p: Position) -> Option<usize> {
        let part = p.part as usize;
        (part < self.row_len).then(|| self.row_index(p.msn) * self.row_len + part)
    }

    /// Publishes the part at `position`. Positions must advance: the next part of the newest segment, or part 0
    /// of a later segment (which completes the previous segment). Returns the segment that this completed, if any.
    pub fn publish(&self, position: Position, bytes: Bytes) -> Result<Option<u64>, Error> {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let last = self.last();
        let mut completed = None;
        match last {
            Some(l) if position.msn == l.msn && position.part == l.part + 1 => {}
            Some(l) if position.msn > l.msn && position.part == 0 => completed = self.complete_row(l.msn),
            None if position.part == 0 => {}
            _ => return Err(Error::BadRequest("part position does not follow the last part")),
        }
        let Some(i) = self.slot_index(position) else {
            return Err(Error::BadRequest("part index beyond the segment's capacity"));
        };
        if position.part == 0 {
            self.start_row(position.msn);
        }
        // Only the primary shard: the others take a copy when one of their readers first asks (see `get`).
        *write(&self.shards[PRIMARY][i]) = Slot { generation: self.generation, position, bytes };
        {
            let mut row = write(&self.rows[self.row_index(position.msn)]);
            row.parts = position.part + 1;
        }
        self.last.0.store(pack(position), Ordering::Release);
        Ok(completed)
    }

    /// Reuses the row of `msn` for it: the parts of the segment that held the row before are dropped.
    fn start_row(&self, msn: u64) {
        let i = self.row_index(msn);
        let old = {
            let mut row = write(&self.rows[i]);
            let old = *row;
            *row = Row { generation: self.generation, msn, parts: 0, complete: false };
            old
        };
        for shard in self.shards.iter() {
            for part in 0..old.parts as usize {
                *write(&shard[i * self.row_len + part]) = Slot::default();
            }
        }
    }

    fn complete_row(&self, msn: u64) -> Option<u64> {
        let mut row = write(&self.rows[self.row_index(msn)]);
        (row.msn == msn && row.generation == self.generation).then(|| {
            row.complete = true;
            msn
        })
    }

    /// Marks the newest segment complete (the stream ended, so no part 0 of a next segment will do it).
    pub fn complete_last(&self) -> Option<u64> {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.last().and_then(|l| self.complete_row(l.msn))
    }

    /// The part at `position`, if it is retained.
    pub fn get(&self, position: Position) -> Option<Bytes> {
        let i = self.slot_index(position)?;
        let k = reader_shard() % self.shards.len();
        let holds = |s: &Slot| s.generation == self.generation && s.position == position;
        {
            let s = read(&self.shards[k][i]);
            if holds(&s) {
                return Some(s.bytes.clone());
            }
        }
        if k == PRIMARY {
            return None;
        }
        let bytes = {
            let s = read(&self.shards[PRIMARY][i]);
            holds(&s).then(|| s.bytes.clone())?
        };
        // Keep a handle in this thread's shard so that its next reads of the part stay on this core's lines: a
        // `Bytes` of its own over the same buffer (no copy of the payload), so that its readers count their clones
        // in a reference count of this shard's, not in the one every core shares. Should the writer evict the part
        // meanwhile, the handle still holds exactly this position's bytes, and the next part in the slot replaces
        // it when it is first read.
        let local = Bytes::from_owner(bytes);
        *write(&self.shards[k][i]) = Slot { generation: self.generation, position, bytes: local.clone() };
        Some(local)
    }

    /// The complete segment `msn`, as its parts, if it is retained whole.
    pub fn segment(&self, msn: u64) -> Option<Segment> {
        let row = *read(&self.rows[self.row_index(msn)]);
        if row.msn != msn || row.generation != self.generation || !row.complete {
            return None;
        }
        let parts = (0..row.parts).map(|part| self.get(Position::new(msn, part))).collect::<Option<Vec<_>>>()?;
        Some(Segment { parts })
    }

    /// How many parts segment `msn` holds so far, if retained.
    pub fn parts_in(&self, msn: u64) -> Option<u32> {
        let row = *read(&self.rows[self.row_index(msn)]);
        (row.msn == msn && row.generation == self.generation).then_some(row.parts)
    }
}

/// The parts of all live streams: one [`Ring`] per stream, found by id.
pub struct ChunkCache {
    streams: DashMap<StreamId, Arc<Ring>>,
    rows: usize,
    row_len: usize,
    generation: AtomicU64,
}

impl ChunkCache {
    /// A cache whose rings retain `options.retained_segments()` segments of up to `options.max_parts_per_segment`
    /// parts each.
    pub fn new(options: &Options) -> Self {
        Self::with_capacity(options.retained_segments(), options.max_parts_per_segment)
    }

    /// A cache whose rings hold `rows` segments of up to `row_len` parts.
    pub fn with_capacity(rows: usize, row_len: usize) -> Self {
        Self { streams: DashMap::new(), rows, row_len, generation: AtomicU64::new(1) }
    }

    /// Gives `id` a fresh, empty ring with a new generation, replacing any ring it had. A reader still holding
    /// the old ring sees only the old stream's parts; the new stream never sees the old one's.
    pub fn add_stream(&self, id: &StreamId) -> Arc<Ring> {
        let ring = Arc::new(Ring::new(self.generation.fetch_add(1, Ordering::Relaxed), self.rows, self.row_len));
        self.streams.insert(id.clone(), Arc::clone(&ring));
        ring
    }

    /// The ring of `id`.
    pub fn stream(&self, id: &StreamId) -> Option<Arc<Ring>> {
        self.streams.get(id).map(|r| Arc::clone(r.value()))
    }

    /// Forgets `id`; its memory is freed once the last reader lets go of the ring.
    pub fn remove_stream(&self, id: &StreamId) -> Option<Arc<Ring>> {
        self.streams.remove(id).map(|(_, r)| r)
    }

    /// Number of streams.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether there are no streams.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> StreamId {
        StreamId::parse(s).expect("valid id")
    }

    fn bytes_for(p: Position) -> Bytes {
        Bytes::from(format!("{}.{}", p.msn, p.part))
    }

    #[test]
    fn publish_get_last_and_segment() {
        let ring = Ring::new(7, 4, 8);
        assert_eq!(ring.last(), None);
        for part in 0..3 {
            let p = Position::new(0, part);
            assert_eq!(ring.publish(p, bytes_for(p)).expect("publish"), None);
        }
        assert_eq!(ring.last(), Some(Position::new(0, 2)));
        assert_eq!(ring.get(Position::new(0, 1)), Some(Bytes::from("0.1")));
        assert_eq!(ring.get(Position::new(0, 3)), None);
        // Segment 0 is not complete until part 0 of a later segment arrives.
        assert_eq!(ring.segment(0), None);
        assert_eq!(ring.publish(Position::new(1, 0), bytes_for(Position::new(1, 0))).expect("publish"), Some(0));
        let seg = ring.segment(0).expect("segment 0");
        assert_eq!(seg.parts, vec![Bytes::from("0.0"), Bytes::from("0.1"), Bytes::from("0.2")]);
        assert_eq!(seg.len(), 9);
        assert_eq!(ring.complete_last(), Some(1));
        assert_eq!(ring.segment(1).expect("segment 1").parts.len(), 1);
    }

    #[test]
    fn positions_must_advance() {
        let ring = Ring::new(1, 4, 8);
        assert!(ring.publish(Position::new(0, 1), Bytes::new()).is_err());
        ring.publish(Position::new(0, 0), Bytes::new()).expect("first");
        assert!(ring.publish(Position::new(0, 0), Bytes::new()).is_err());
        assert!(ring.publish(Position::new(0, 2), Bytes::new()).is_err());
        assert!(ring.publish(Position::new(1, 1), Bytes::new()).is_err());
        ring.publish(Position::new(5, 0), Bytes::new()).expect("a later segment");
        assert!(ring.publish(Position::new(5, 8), Bytes::new()).is_err(), "beyond the row");
    }

    #[test]
    fn evicted_segments_read_as_nothing_and_free_their_parts() {
        let ring = Ring::new(1, 3, 4);
        assert_eq!(ring.retained_segments(), 4, "rounded up to a power of two");
        let big = Bytes::from(vec![1u8; 1000]);
        for msn in 0..4 {
            for part in 0..2 {
                let bytes = if msn == 0 { big.clone() } else { bytes_for(Position::new(msn, part)) };
                ring.publish(Position::new(msn, part), bytes).expect("publish");
            }
        }
        assert!(ring.get(Position::new(0, 1)).is_some());
        assert!(!big.is_unique());
        ring.publish(Position::new(4, 0), Bytes::from("new")).expect("publish");
        // Row 0 now belongs to segment 4; segment 0 is gone, and so are its bytes.
        assert!(big.is_unique(), "the evicted parts were dropped");
        assert_eq!(ring.get(Position::new(0, 0)), None);
        assert_eq!(ring.get(Position::new(0, 1)), None);
        assert_eq!(ring.segment(0), None);
        assert_eq!(ring.get(Position::new(4, 0)), Some(Bytes::from("new")));
        assert!(ring.get(Position::new(1, 1)).is_some());
        assert_eq!(ring.parts_in(0), None);
        assert_eq!(ring.parts_in(4), Some(1));
    }

    #[test]
    fn a_new_stream_with_the_same_id_never_sees_the_old_data() {
        let cache = ChunkCache::with_capacity(4, 4);
        let a = id("cam");
        let old = cache.add_stream(&a);
        old.publish(Position::new(0, 0), Bytes::from("old")).expect("publish");
        let new = cache.add_stream(&a);
        assert_ne!(old.generation(), new.generation());
        assert_eq!(new.get(Position::new(0, 0)), None);
        assert_eq!(new.last(), None);
        let current = cache.stream(&a).expect("stream");
        assert_eq!(current.generation(), new.generation());
        assert!(cache.remove_stream(&a).is_some());
        assert!(cache.stream(&a).is_none());
        assert!(cache.is_empty());
    }

    proptest! {
        /// Ring reads return either the exact part written at that position or nothing, and `last` only moves
        /// forward, whatever the sequence of segment lengths.
        #[test]
        fn reads_are_exact_or_nothing(seg_lens in proptest::collection::vec(1u32..6, 1..40), probes in proptest::collection::vec((0u64..45, 0u32..7), 1..50)) {
            let ring = Ring::new(3, 5, 6);
            let mut prev = None;
            for (msn, len) in seg_lens.iter().enumerate() {
                for part in 0..*len {
                    let p = Position::new(msn as u64, part);
                    ring.publish(p, bytes_for(p)).expect("publish");
                    let last = ring.last();
                    prop_assert!(last > prev);
                    prev = last;
                    for &(m, n) in &probes {
                        let q = Position::new(m, n);
                        if let Some(b) = ring.get(q) {
                            prop_assert_eq!(b, bytes_for(q));
                            prop_assert!(q <= p);
                        }
                    }
                }
            }
            for msn in 0..seg_lens.len() as u64 {
                if let Some(seg) = ring.segment(msn) {
                    prop_assert_eq!(seg.parts.len() as u32, seg_lens[msn as usize]);
                    for (i, part) in seg.parts.iter().enumerate() {
                        prop_assert_eq!(part, &bytes_for(Position::new(msn, i as u32)));
                    }
                }
            }
        }
    }

    #[test]
    fn concurrent_readers_never_see_foreign_bytes() {
        let ring = Arc::new(Ring::new(9, 3, 4));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The readers are running before the writer starts, and read once more after it is done.
        let start = Arc::new(std::sync::Barrier::new(3));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (ring, stop, start) = (Arc::clone(&ring), Arc::clone(&stop), Arc::clone(&start));
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    start.wait();
                    loop {
                        let stopping = stop.load(Ordering::Acquire);
                        if let Some(last) = ring.last() {
                            for back in 0..4u64 {
                                let q = Position::new(last.msn.saturating_sub(back), 1);
                                if let Some(b) = ring.get(q) {
                                    assert_eq!(b, bytes_for(q));
                                    seen += 1;
                                }
                            }
                        }
                        if stopping {
                            break;
                        }
                    }
                    seen
                })
            })
            .collect();
        start.wait();
        for msn in 0..20_000u64 {
            for part in 0..3 {
                let p = Position::new(msn, part);
                ring.publish(p, bytes_for(p)).expect("publish");
            }
        }
        stop.store(true, Ordering::Release);
        let seen: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
        assert!(seen > 0);
    }
}
