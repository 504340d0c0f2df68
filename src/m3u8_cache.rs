//! `M3u8Cache`: every stream's rendered playlists, ready to send.
//!
//! A playlist is rendered once, when its part is published, in the four forms a player can ask for (full or
//! delta update, plain or gzip) and stored as one [`Rendered`] in a per-stream ring of versions keyed by the
//! position of the newest part it lists. Every player waiting for that part gets the same `Arc`, so the same
//! `Bytes`: nothing is rendered or compressed per request. The newest version is found with one atomic load.
//! The ring also holds the stream's init segments, by name ([`InitName`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use dashmap::DashMap;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use crate::chunk_cache::{pack, unpack, NONE};
use crate::init_name::InitName;
use crate::position::Position;
use crate::stream_id::StreamId;

/// One playlist version in the four forms it is served in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The newest part the playlist lists.
    pub position: Position,
    /// Whether it carries `EXT-X-ENDLIST`.
    pub ended: bool,
    /// The full playlist.
    pub full: Bytes,
    /// `full`, gzip-compressed.
    pub full_gzip: Bytes,
    /// The delta-update form (`_HLS_skip`); the same bytes as `full` when there is nothing to skip.
    pub delta: Bytes,
    /// `delta`, gzip-compressed.
    pub delta_gzip: Bytes,
}

impl Rendered {
    /// Builds a version from rendered text, compressing each distinct form once with `gzip`.
    pub fn new(position: Position, ended: bool, full: Bytes, delta: Option<Bytes>, gzip: &mut Gzip) -> Self {
        let full_gzip = gzip.compress(&full);
        let (delta, delta_gzip) = match delta {
            Some(d) if d != full => {
                let z = gzip.compress(&d);
                (d, z)
            }
            _ => (full.clone(), full_gzip.clone()),
        };
        Self { position, ended, full, full_gzip, delta, delta_gzip }
    }

    /// The form to send: `delta` for a `_HLS_skip` request, `gzip` when the client accepts it.
    pub fn body(&self, delta: bool, gzip: bool) -> &Bytes {
        match (delta, gzip) {
            (false, false) => &self.full,
            (false, true) => &self.full_gzip,
            (true, false) => &self.delta,
            (true, true) => &self.delta_gzip,
        }
    }
}

/// A gzip compressor kept by a stream's writer for all its renders. Its deflate state (a few hundred KiB of
/// window and hash tables) is allocated once and reset for each body, instead of being allocated, zeroed and
/// freed twice per published part: that is on the path from a part's arrival to its held requests' answers.
pub struct Gzip {
    level: Compression,
    deflate: Compress,
}

/// A gzip member header (RFC 1952): deflate, no flags, no modification time, no extra flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl Gzip {
    /// A compressor at `level`, 1 (fastest) to 9 (smallest).
    pub fn new(level: u32) -> Self {
        let level = Compression::new(level.clamp(1, 9));
        Self { level, deflate: Compress::new(level, false) }
    }

    /// `data` as one gzip member.
    pub fn compress(&mut self, data: &[u8]) -> Bytes {
        self.deflate.reset();
        let mut out = Vec::with_capacity(GZIP_HEADER.len() + data.len() / 2 + 64);
        out.extend_from_slice(&GZIP_HEADER);
        let start = self.deflate.total_in();
        loop {
            let read = usize::try_from(self.deflate.total_in() - start).unwrap_or(data.len()).min(data.len());
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity());
            }
            let written = out.len();
            match self.deflate.compress_vec(&data[read..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                // Out of room for what is pending: give it more.
                Ok(Status::Ok | Status::BufError) if out.len() == written => out.reserve(out.capacity()),
                Ok(Status::Ok | Status::BufError) => {}
                // Deflating into memory has no failure of its own. Should the kept state ever be broken, it is
                // replaced, and this body compressed the one-off way.
                Err(_) => {
                    self.deflate = Compress::new(self.level, false);
                    let mut once = flate2::write::GzEncoder::new(Vec::new(), self.level);
                    let _ = std::io::Write::write_all(&mut once, data);
                    return Bytes::from(once.finish().unwrap_or_default());
                }
            }
        }
        let mut crc = Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the input's length modulo 2^32.
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        Bytes::from(out)
    }
}

/// Compresses `data` into a gzip member at `level` (a one-off; a stream's renders reuse one [`Gzip`]).
pub fn gzip(data: &[u8], level: u32) -> Bytes {
    Gzip::new(level).compress(data)
}

/// The rendered playlists and init segment of one stream.
pub struct Versions {
    row_len: usize,
    slots: Box<[RwLock<Option<Arc<Rendered>>>]>,
    latest: AtomicU64,
    /// The init segments still served, by name, newest last: an encoder restart may bring a new one, and players
    /// still on the segments before it need the old one for a while.
    inits: RwLock<Vec<(InitName, Bytes)>>,
}

/// Init segments kept per stream whether or not a listed segment still needs them: players may hold a playlist
/// a little older than the newest one.
const INIT_VERSIONS: usize = 4;

impl Versions {
    /// A ring of `rows` segments' worth of versions, `row_len` parts each.
    pub fn new(rows: usize, row_len: usize) -> Self {
        let row_len = row_len.max(1);
        Self {
            row_len,
            slots: (0..rows.max(2) * row_len).map(|_| RwLock::new(None)).collect(),
            latest: AtomicU64::new(NONE),
            inits: RwLock::new(Vec::with_capacity(INIT_VERSIONS)),
        }
    }

    fn slot(&self, p: Position) -> Option<&RwLock<Option<Arc<Rendered>>>> {
        let part = p.part as usize;
        if part >= self.row_len {
            return None;
        }
        let rows = (self.slots.len() / self.row_len) as u64;
        self.slots.get((p.msn % rows) as usize * self.row_len + part)
    }

    /// Stores a version (replacing one at the same position, e.g. when the stream ends) and makes it the latest.
    pub fn publish(&self, rendered: Arc<Rendered>) {
        let p = rendered.position;
        if let Some(slot) = self.slot(p) {
            *slot.write().unwrap_or_else(PoisonError::into_inner) = Some(rendered);
            self.latest.store(pack(p), Ordering::Release);
        }
    }

    /// The version whose newest part is `position`, if still retained.
    pub fn get(&self, position: Position) -> Option<Arc<Rendered>> {
        let slot = self.slot(position)?.read().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().filter(|r| r.position == position).cloned()
    }

    /// The newest version.
    pub fn latest(&self) -> Option<Arc<Rendered>> {
        self.get(unpack(self.latest.load(Ordering::Acquire))?)
    }

    /// Stores the init segment `name` (of bytes `init`) as the newest, and forgets older ones beyond the newest
    /// [`INIT_VERSIONS`] unless `needed` says a listed segment still names them.
    pub fn set_init(&self, name: InitName, init: Bytes, needed: impl Fn(InitName) -> bool) {
        let mut inits = self.inits.write().unwrap_or_else(PoisonError::into_inner);
        inits.retain(|(n, _)| *n != name);
        inits.push((name, init));
        let spare = inits.len().saturating_sub(INIT_VERSIONS);
        let mut older = 0;
        inits.retain(|(n, _)| {
            older += 1;
            older > spare || needed(*n)
        });
    }

    /// The newest init segment and its name.
    pub fn init(&self) -> Option<(InitName, Bytes)> {
        self.inits.read().unwrap_or_else(PoisonError::into_inner).last().cloned()
    }

    /// The init segment `name`, if still kept.
    pub fn init_named(&self, name: InitName) -> Option<Bytes> {
        let inits = self.inits.read().unwrap_or_else(PoisonError::into_inner);
        inits.iter().find(|(n, _)| *n == name).map(|(_, b)| b.clone())
    }
}

/// Rendered playlists of all streams.
pub struct M3u8Cache {
    streams: DashMap<StreamId, Arc<Versions>>,
    rows: usize,
    row_len: usize,
}

impl M3u8Cache {
    /// A cache keeping `rows` segments' worth of versions of up to `row_len` parts per stream.
    pub fn new(rows: usize, row_len: usize) -> Self {
        Self { streams: DashMap::new(), rows, row_len }
    }

    /// Gives `id` a fresh ring, replacing any it had.
    pub fn add_stream(&self, id: &StreamId) -> Arc<Versions> {
        let v = Arc::new(Versions::new(self.rows, self.row_len));
        self.streams.insert(id.clone(), Arc::clone(&v));
        v
    }

    /// The versions of `id`.
    pub fn stream(&self, id: &StreamId) -> Option<Arc<Versions>> {
        self.streams.get(id).map(|v| Arc::clone(v.value()))
    }

    /// Forgets `id`.
    pub fn remove_stream(&self, id: &StreamId) -> Option<Arc<Versions>> {
        self.streams.remove(id).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn version(msn: u64, part: u32, text: &str) -> Arc<Rendered> {
        Arc::new(Rendered::new(Position::new(msn, part), false, Bytes::from(text.to_owned()), None, &mut Gzip::new(4)))
    }

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(z).read_to_end(&mut out).expect("gunzip");
        out
    }

    #[test]
    fn gzip_round_trips() {
        let text = "#EXTM3U\n".repeat(50);
        let z = gzip(text.as_bytes(), 4);
        assert!(z.len() < text.len());
        assert_eq!(gunzip(&z), text.as_bytes());
    }

    #[test]
    fn a_kept_compressor_starts_afresh_for_each_body() {
        // Bodies of every size around the output's growth steps, text and incompressible bytes, one after
        // another through the same state, at the fastest and the smallest level.
        let mut noise = 0x2545_f491_4f6c_dd1d_u64;
        let random: Vec<u8> = (0..20_000)
            .map(|_| {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                noise as u8
            })
            .collect();
        for level in [1, 9] {
            let mut z = Gzip::new(level);
            for len in [0, 1, 63, 64, 65, 1000, 4096, 20_000] {
                let text = "#EXT-X-PART:DURATION=0.2,URI=\"p1.2.mp4\"\n".repeat(len / 40 + 1);
                for body in [&text.as_bytes()[..len.min(text.len())], &random[..len]] {
                    let packed = z.compress(body);
                    assert_eq!(packed[..3], [0x1f, 0x8b, 8], "a gzip member");
                    assert_eq!(gunzip(&packed), body, "level {level}, {len} bytes");
                    // The trailer's length and CRC are what decoders check; a one-off compressor agrees.
                    assert_eq!(gunzip(&gzip(body, level)), body);
                }
            }
        }
    }

    #[test]
    fn versions_by_position_and_latest() {
        let v = Versions::new(2, 4);
        assert!(v.latest().is_none());
        v.publish(version(0, 0, "a"));
        v.publish(version(0, 1, "b"));
        assert_eq!(v.latest().expect("latest").full, Bytes::from("b"));
        assert_eq!(v.get(Position::new(0, 0)).expect("0.0").full, Bytes::from("a"));
        v.publish(version(2, 0, "c"));
        // 2.0 shares a slot with 0.0, which is gone.
        assert!(v.get(Position::new(0, 0)).is_none());
        assert_eq!(v.get(Position::new(0, 1)).expect("0.1").full, Bytes::from("b"));
        assert_eq!(v.latest().expect("latest").position, Position::new(2, 0));
        assert!(v.get(Position::new(2, 9)).is_none());
    }

    #[test]
    fn delta_equal_to_full_is_shared() {
        let z = &mut Gzip::new(4);
        let r = Rendered::new(Position::new(3, 1), false, Bytes::from("x"), Some(Bytes::from("x")), z);
        assert_eq!(r.delta.as_ptr(), r.full.as_ptr());
        let r = Rendered::new(Position::new(3, 1), false, Bytes::from("full"), Some(Bytes::from("d")), z);
        assert_eq!(r.body(true, false), &Bytes::from("d"));
        assert_ne!(r.body(true, true), r.body(false, true));
    }

    fn name(bytes: &str) -> InitName {
        InitName::of(bytes.as_bytes())
    }

    #[test]
    fn inits_are_kept_by_name_while_recent_or_needed() {
        let v = Versions::new(2, 4);
        assert_eq!(v.init(), None);
        v.set_init(name("a"), Bytes::from("a"), |_| false);
        v.set_init(name("b"), Bytes::from("b"), |_| false);
        assert_eq!(v.init(), Some((name("b"), Bytes::from("b"))));
        assert_eq!(v.init_named(name("a")), Some(Bytes::from("a")));
        // The same init again is the newest once more, and kept once.
        v.set_init(name("a"), Bytes::from("a"), |_| false);
        assert_eq!(v.init().map(|(n, _)| n), Some(name("a")));
        for more in ["c", "d", "e"] {
            v.set_init(name(more), Bytes::from(more), |n| n == name("b"));
        }
        assert_eq!(v.init_named(name("b")), Some(Bytes::from("b")), "still needed by a listed segment");
        v.set_init(name("f"), Bytes::from("f"), |n| n == name("b"));
        assert_eq!(v.init_named(name("a")), None, "neither recent nor needed");
        assert_eq!(v.init_named(name("b")), Some(Bytes::from("b")));
        for recent in ["c", "d", "e", "f"] {
            assert_eq!(v.init_named(name(recent)), Some(Bytes::from(recent)), "{recent}");
        }
        v.set_init(name("g"), Bytes::from("g"), |_| false);
        assert_eq!(v.init_named(name("b")), None, "no longer needed");
        assert_eq!(v.init_named(name("c")), None, "only the newest four are kept without need");
        assert_eq!(v.init_named(name("g")), Some(Bytes::from("g")));
    }

    #[test]
    fn streams_are_replaced_and_removed() {
        let cache = M3u8Cache::new(2, 4);
        let id = StreamId::parse("a").expect("id");
        let v = cache.add_stream(&id);
        v.set_init(name("init"), Bytes::from("init"), |_| false);
        assert_eq!(cache.stream(&id).expect("a").init(), Some((name("init"), Bytes::from("init"))));
        cache.add_stream(&id);
        assert_eq!(cache.stream(&id).expect("a").init(), None);
        assert!(cache.remove_stream(&id).is_some());
        assert!(cache.stream(&id).is_none());
    }
}
