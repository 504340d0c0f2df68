//! `Playlists`: the caches tied together, the set of live streams, and the per-stream position watch.
//!
//! The owner of a stream (its actor in the server) calls [`Stream::set_init`], [`Stream::publish`] and
//! [`Stream::end`]; each publish updates, in this order, the part ring ([`ChunkCache`]), the rendered playlists
//! ([`M3u8Cache`], rendered once in all four forms) and the stream's [`Edge`] watch, which wakes every held
//! request of that stream at once. Readers ([`Stream::playlist`], [`Stream::wait_part`], [`Stream::segment`],
//! [`Stream::init`]) never take the writer's lock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::chunk_cache::{self, ChunkCache, Segment};
use crate::error::Error;
use crate::fmp4::{Fragment, Init, TrackKind};
use crate::init_name::InitName;
use crate::m3u8_cache::{self, Gzip, M3u8Cache, Rendered};
use crate::manifest::{ClosedSegment, M3u8Manifest, PartMeta, RenditionReport, Warning};
use crate::options::Options;
use crate::position::{Decision, Edge, PlaylistRequest, Position};
use crate::stream_id::StreamId;
use crate::timeline::{nanos, nanos_to_ticks, ticks_to_nanos, Arrival, Placement, Timeline, UNRELATED};

/// Segments' worth of rendered playlist versions kept per stream: enough for every request that is still being
/// answered from a version that was just replaced.
const VERSION_ROWS: usize = 4;

/// What a stream is, for status reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamInfo {
    /// The `CODECS` string of the init segment.
    pub codecs: Option<String>,
    /// The name of the newest init segment, as `EXT-X-MAP` names it.
    pub init: Option<InitName>,
    /// Width and height of the video track.
    pub resolution: Option<(u32, u32)>,
    /// Peak bit rate of a complete segment, bits per second (the multivariant `BANDWIDTH`).
    pub peak_bandwidth: u64,
    /// Bit rate over all complete segments, bits per second (the multivariant `AVERAGE-BANDWIDTH`).
    pub average_bandwidth: u64,
    /// Video frames per second, from the video track's sample durations (the multivariant `FRAME-RATE`).
    pub frame_rate: Option<f64>,
    /// The language of the audio track (`mdhd` or `elng`), for the multivariant `LANGUAGE`.
    pub language: Option<String>,
    /// The audio track's channel count, for the multivariant `CHANNELS`.
    pub channels: Option<u16>,
    /// When the stream started.
    pub started_at: Option<SystemTime>,
    /// When the newest part was published.
    pub last_part_at: Option<SystemTime>,
    /// Parts published.
    pub parts: u64,
    /// Segments completed.
    pub segments: u64,
    /// Bytes published (parts).
    pub bytes: u64,
    /// The advertised `PART-TARGET`.
    pub part_target: Option<Duration>,
    /// `EXT-X-TARGETDURATION`.
    pub target_duration: u32,
    /// The stream's edge.
    pub edge: Edge,
}

/// What one publish did, for the owner's events.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// Where the part went.
    pub position: Position,
    /// Its duration.
    pub duration: Duration,
    /// Whether it starts with an independent frame.
    pub independent: bool,
    /// Its size in bytes.
    pub bytes: usize,
    /// The segment this part's arrival closed.
    pub closed: Option<ClosedSegment>,
    /// Whether the part starts a discontinuity (encoder restart, timeline jump, new init).
    pub discontinuity: bool,
    /// Anything a player may trip on.
    pub warnings: Vec<Warning>,
}

/// Read-side counters of one stream, bumped by whoever serves it. Relaxed atomics: a few uncontended adds per
/// request, no lock and no allocation on the read path; readers of the counters only need rates and totals.
#[derive(Debug, Default)]
pub struct ReadStats {
    playlist_requests: AtomicU64,
    media_requests: AtomicU64,
    bytes_served: AtomicU64,
    held: AtomicU64,
}

/// A copy of a stream's [`ReadStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Playlist requests answered (any status) since the stream started.
    pub playlist_requests: u64,
    /// Part, segment and init requests answered since the stream started.
    pub media_requests: u64,
    /// Body bytes of the answers counted above.
    pub bytes_served: u64,
    /// Requests held right now, waiting for a part to be published.
    pub held: u64,
}

impl ReadStats {
    /// Counts one playlist answer of `bytes`.
    pub fn playlist_served(&self, bytes: u64) {
        self.playlist_requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_served.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts one part, segment or init answer of `bytes`.
    pub fn media_served(&self, bytes: u64) {
        self.media_requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_served.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn counts(&self) -> ReadCounts {
        ReadCounts {
            playlist_requests: self.playlist_requests.load(Ordering::Relaxed),
            media_requests: self.media_requests.load(Ordering::Relaxed),
            bytes_served: self.bytes_served.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
        }
    }
}

/// Counts a request as held for as long as it waits; dropped however the wait ends (answer, timeout, or the
/// client going away, which drops the request's future).
struct HeldGuard<'a>(&'a AtomicU64);

impl<'a> HeldGuard<'a> {
    fn new(held: &'a AtomicU64) -> Self {
        held.fetch_add(1, Ordering::Relaxed);
        Self(held)
    }
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A read's answer, and whether it had to wait for a publication.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The answer.
    pub value: T,
    /// For a request that was held: how long after the publication that released it the answer was ready.
    pub released_after: Option<Duration>,
}

/// The renditions of one group (`group/name` stream ids), for rendition reports and the multivariant playlist.
#[derive(Default)]
struct Group {
    members: RwLock<Vec<(StreamId, Arc<Stream>)>>,
    /// Where the renditions' segments start.
    timeline: Timeline,
    /// The multivariant playlist last rendered.
    master: Mutex<Option<Arc<MasterPlaylist>>>,
}

/// The writer's state of one stream, behind its lock.
struct Writer {
    manifest: M3u8Manifest,
    /// The init and its name, computed once when it is set.
    init: Option<(Arc<Init>, InitName)>,
    /// Where the main track's timeline should continue: (decode time, timescale).
    next_decode: Option<(u64, u32)>,
    discontinuity: bool,
    /// Bytes of the open segment's parts, for its bit rate when it closes.
    open_bytes: u64,
    /// Bytes and nanoseconds of all complete segments, for the average bit rate.
    complete: (u64, u128),
    /// Video samples and their nanoseconds since the current init, for the frame rate.
    frames: (u64, u128),
    info: StreamInfo,
    /// The compressor of every render of this stream.
    gzip: Gzip,
    /// Nanoseconds added to this rendition's media time to put it on its group's timeline: 0 when it shares the
    /// group's, else set from arrival time (see [`crate::timeline`]).
    offset: i128,
}

/// One live stream: its rings, its watch and its writer state.
pub struct Stream {
    id: StreamId,
    generation: u64,
    options: Arc<Options>,
    parts: Arc<chunk_cache::Ring>,
    versions: Arc<m3u8_cache::Versions>,
    edge: watch::Sender<Edge>,
    writer: Mutex<Writer>,
    group: Option<Arc<Group>>,
    /// The lease of the newest publisher (see [`Stream::take_over`]).
    publisher: AtomicU64,
    /// `EXT-X-TARGETDURATION`, seconds, as the manifest fixed it (raised for a long first GOP): an atomic so that
    /// a held request's timeout is read without the writer's lock.
    target_duration: AtomicU32,
    reads: ReadStats,
    /// The clock [`Self::last_publish`] counts from.
    created: Instant,
    /// Nanoseconds from `created` to the newest edge change, plus one (0: none yet). An atomic so that a released
    /// waiter reads it without the writer's lock.
    last_publish: AtomicU64,
}

impl Stream {
    /// The stream's id.
    pub fn id(&self) -> &StreamId {
        &self.id
    }

    /// Unique per stream for the life of the [`Playlists`]: a stream re-created under the same id has another.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Makes the caller the stream's publisher and returns its lease. The newest publisher wins: an encoder that
    /// reconnects (or a second one) takes over at once, even while the old connection is still half-open, and the
    /// old one learns from [`Stream::is_publisher`] that it must stop.
    pub fn take_over(&self) -> u64 {
        self.publisher.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether `lease` is still the newest publisher's.
    pub fn is_publisher(&self, lease: u64) -> bool {
        self.publisher.load(Ordering::Acquire) == lease
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets (or replaces) the init segment. A different init once parts exist means the encoder restarted: the
    /// next part starts a discontinuity, and its segment an `EXT-X-MAP` with the new init's name ([`InitName`],
    /// from its bytes). The same init again changes nothing. Older inits stay served while a listed segment needs
    /// them, and the newest few beyond that.
    pub fn set_init(&self, init: Arc<Init>) -> Result<(), Error> {
        if init.bytes.len() > self.options.max_init_bytes {
            return Err(Error::TooLarge {
                what: "init segment",
                size: init.bytes.len(),
                limit: self.options.max_init_bytes,
            });
        }
        let mut w = self.writer();
        if w.manifest.is_ended() {
            return Err(Error::StreamEnded);
        }
        let w = &mut *w;
        if let Some((old, _)) = w.init.as_mut().filter(|(old, _)| old.bytes == init.bytes) {
            // An encoder that reconnects sends its init again: same bytes, same name, nothing else changes.
            *old = init;
            return Ok(());
        }
        // New media parameters once there are parts: a new timeline. The new init's URI follows from its bytes.
        w.discontinuity |= w.init.is_some() && w.info.parts > 0;
        let name = InitName::of(&init.bytes);
        w.manifest.set_map(name);
        w.info.codecs = Some(init.codecs());
        w.info.resolution = init.resolution();
        let audio = init.tracks.iter().find(|t| t.kind == TrackKind::Audio);
        w.info.language = audio.and_then(|t| t.language.clone());
        w.info.channels = audio.and_then(|t| t.channels);
        w.info.frame_rate = None;
        w.frames = (0, 0);
        w.info.init = Some(name);
        let manifest = &w.manifest;
        self.versions.set_init(name, init.bytes.clone(), |n| manifest.needs_map(n));
        w.init = Some((init, name));
        Ok(())
    }

    /// The init segment the stream's fragments are parsed with.
    pub fn current_init(&self) -> Option<Arc<Init>> {
        self.writer().init.as_ref().map(|(init, _)| Arc::clone(init))
    }

    /// Publishes one fragment as the next part: its duration and independence come from its boxes, a jump in
    /// its decode time starts a discontinuity.
    pub fn publish(&self, fragment: Fragment, now: SystemTime) -> Result<Published, Error> {
        let mut w = self.writer();
        if w.init.is_none() {
            return Err(Error::NoInit);
        }
        let duration = fragment.duration();
        let decode = fragment.decode_time();
        let jump = match (w.next_decode, decode) {
            (Some((expected, ts)), Some((base, ts2))) => ts != ts2 || base.abs_diff(expected) > ticks(duration, ts) / 2,
            _ => false,
        };
        let meta = PartMeta { duration, independent: fragment.independent(), discontinuity: jump, wallclock: now };
        let video = fragment.main_run().filter(|run| run.kind == TrackKind::Video && run.samples > 0);
        let frames = video.map(|run| (u64::from(run.samples), run.wall_duration().as_nanos()));
        let published = self.publish_locked(&mut w, fragment.bytes, meta, decode)?;
        if let Some((samples, nanos)) = frames {
            let (count, total) = (w.frames.0 + samples, w.frames.1 + nanos);
            w.frames = (count, total);
            w.info.frame_rate = (total > 0).then(|| count as f64 * 1e9 / total as f64);
        }
        w.next_decode = decode.map(|(base, ts)| (base.saturating_add(ticks(duration, ts)), ts));
        Ok(published)
    }

    /// Publishes one part whose timing the caller already knows (the Rust API for embedding without fMP4 parsing).
    pub fn publish_part(&self, bytes: Bytes, meta: PartMeta) -> Result<Published, Error> {
        let mut w = self.writer();
        self.publish_locked(&mut w, bytes, meta, None)
    }

    /// Publishes one part; `decode` (its main track's decode time and timescale) places it on the group's
    /// timeline when the stream is a rendition of a group.
    fn publish_locked(
        &self,
        w: &mut Writer,
        bytes: Bytes,
        mut meta: PartMeta,
        decode: Option<(u64, u32)>,
    ) -> Result<Published, Error> {
        if w.manifest.is_ended() {
            return Err(Error::StreamEnded);
        }
        if bytes.len() > self.options.max_part_bytes {
            return Err(Error::TooLarge { what: "part", size: bytes.len(), limit: self.options.max_part_bytes });
        }
        // A part must fit in a segment of at most the target duration (checklist item 68); one that does not
        // would break the playlist for every player, so it is refused and nothing published changes.
        if meta.duration.is_zero() {
            return Err(Error::Malformed("the fragment has no duration".into()));
        }
        let longest = w.manifest.longest_segment();
        if meta.duration > Duration::from_secs(u64::from(longest)) {
            return Err(Error::Malformed(format!(
                "a part of {:.3} s is longer than a segment may be ({longest} s)",
                meta.duration.as_secs_f64(),
            )));
        }
        meta.discontinuity |= std::mem::take(&mut w.discontinuity);
        let (duration, independent, discontinuity, now) =
            (meta.duration, meta.independent, meta.discontinuity, meta.wallclock);
        let size = bytes.len();
        let placement = self.place(w, decode, &meta);
        let pushed = w.manifest.push_at(meta, placement.map(|p| p.0));
        if let (Some(group), Some((_, end, false))) = (&self.group, placement) {
            // A rendition without video follows the video's boundaries: its next part starts a segment exactly
            // when a boundary lies where this part ends (the preload hint then names it).
            let next_cut = group.timeline.boundary_near(end, nanos(meta.duration) / 2);
            w.manifest.set_next_cut(Some(next_cut));
        }
        // The manifest only hands out positions that follow the last one, inside a segment's capacity.
        self.parts.publish(pushed.position, bytes)?;
        if let Some(closed) = &pushed.closed {
            note_segment(w, closed);
        }
        w.open_bytes += size as u64;
        w.info.parts += 1;
        w.info.bytes += size as u64;
        w.info.last_part_at = Some(now);
        w.info.started_at.get_or_insert(now);
        self.render(w, pushed.position);
        Ok(Published {
            position: pushed.position,
            duration,
            independent,
            bytes: size,
            closed: pushed.closed,
            discontinuity,
            warnings: pushed.warnings,
        })
    }

    /// Where the group's timeline puts a part of this rendition (see [`crate::timeline`]), with the part's end on
    /// it and whether the rendition has video; `None` (the stream's own rules) outside a group, for parts without
    /// a decode time, and for a discontinuity the timeline does not cut.
    fn place(&self, w: &mut Writer, decode: Option<(u64, u32)>, meta: &PartMeta) -> Option<(Placement, u64, bool)> {
        let group = self.group.as_ref()?;
        let (base, timescale) = decode?;
        let media = i128::from(ticks_to_nanos(base, timescale));
        let first = w.info.parts == 0;
        if first || meta.discontinuity {
            // A timeline far from where the group is now is not the group's: put it there by arrival time.
            w.offset = match group.timeline.now(meta.wallclock) {
                Some(now) if i128::from(now).abs_diff(media) > u128::from(nanos(UNRELATED)) => i128::from(now) - media,
                _ => 0,
            };
        }
        let at = u64::try_from((media + w.offset).max(0)).unwrap_or(u64::MAX);
        let video = w.init.as_ref().is_some_and(|(init, _)| init.tracks.iter().any(|t| t.kind == TrackKind::Video));
        let arrival = Arrival {
            at,
            duration: meta.duration,
            open: w.manifest.open_msn(),
            wants_cut: w.manifest.would_cut(meta),
            independent: meta.independent,
            video,
            wallclock: meta.wallclock,
        };
        let end = at.saturating_add(nanos(meta.duration));
        match group.timeline.place(arrival, w.manifest.first_msn()) {
            Placement::Continue if meta.discontinuity => None,
            placement => Some((placement, end, video)),
        }
    }

    /// For a rendition without video in a group whose video is publishing: where `fragment` lies on the group's
    /// timeline (start and end, nanoseconds) and the timeline itself, so that its publisher can wait for the video
    /// and cut the fragment at the group's boundaries ([`Timeline::wait_video`], [`Timeline::boundaries_between`]).
    pub fn follows_video(&self, fragment: &Fragment, now: SystemTime) -> Option<(u64, u64, &Timeline)> {
        let group = self.group.as_ref()?;
        let run = fragment.main_run()?;
        if run.kind == TrackKind::Video || !group.timeline.video_publishing(now) {
            return None;
        }
        let offset = self.writer().offset;
        let on_group = |ticks: u64| {
            u64::try_from((i128::from(ticks_to_nanos(ticks, run.timescale)) + offset).max(0)).unwrap_or(u64::MAX)
        };
        let start = on_group(run.base_decode_time);
        let end = on_group(run.base_decode_time.saturating_add(run.duration));
        Some((start, end, &group.timeline))
    }

    /// Media time on the group's timeline (nanoseconds) as ticks of this rendition's `timescale`.
    pub fn group_to_ticks(&self, at: u64, timescale: u32) -> u64 {
        let offset = self.writer().offset;
        nanos_to_ticks(u64::try_from((i128::from(at) - offset).max(0)).unwrap_or(0), timescale)
    }

    /// Renders the playlist in its four forms, stores it, then wakes the waiters.
    fn render(&self, w: &mut Writer, position: Position) {
        self.target_duration.store(w.manifest.target_duration(), Ordering::Relaxed);
        let edge = w.manifest.edge();
        w.info.edge = edge;
        w.info.part_target = edge.part_target;
        if let Some(group) = &self.group {
            let longest = group.timeline.part_target(w.manifest.part_target());
            w.manifest.set_group_part_target(longest);
        }
        if w.manifest.can_render() {
            let reports = self.reports();
            // Rendered straight into the buffers the version keeps, sized like the previous version.
            let room = self.versions.latest().map_or(8 << 10, |r| r.full.len() + 512);
            let (mut full, mut delta) = (Vec::with_capacity(room), Vec::with_capacity(room));
            w.manifest.render(false, &reports, &mut full);
            w.manifest.render(true, &reports, &mut delta);
            // `Rendered::new` shares the full form when the delta is the same text.
            let rendered =
                Rendered::new(position, edge.ended, Bytes::from(full), Some(Bytes::from(delta)), &mut w.gzip);
            self.versions.publish(Arc::new(rendered));
        }
        // Stored before the watch wakes the waiters, so that each of them sees this publication or a newer one.
        let nanos = self.created.elapsed().as_nanos().min(u128::from(u64::MAX - 1)) as u64;
        self.last_publish.store(nanos + 1, Ordering::Release);
        self.edge.send_replace(edge);
    }

    fn reports(&self) -> Vec<RenditionReport> {
        let Some(group) = &self.group else { return Vec::new() };
        let members = group.members.read().unwrap_or_else(PoisonError::into_inner);
        members
            .iter()
            .filter(|(id, _)| id != &self.id)
            .filter_map(|(id, s)| {
                let last = s.edge().last_part?;
                Some(RenditionReport { uri: format!("../{}/index.m3u8", id.name()), last })
            })
            .collect()
    }

    /// Ends the stream: the playlist gets `EXT-X-ENDLIST`, the open segment is closed (and returned), and every held
    /// request is answered. A stream that had ended already is [`Error::StreamEnded`] and does not change, so of
    /// two callers racing to end it exactly one sees it end.
    pub fn end(&self) -> Result<Option<ClosedSegment>, Error> {
        let mut w = self.writer();
        if w.manifest.is_ended() {
            return Err(Error::StreamEnded);
        }
        let closed = w.manifest.end();
        self.parts.complete_last();
        if let Some(c) = &closed {
            note_segment(&mut w, c);
        }
        let position = w.manifest.edge().last_part.unwrap_or_default();
        self.render(&mut w, position);
        Ok(closed)
    }

    /// A snapshot of the stream's status.
    pub fn info(&self) -> StreamInfo {
        let mut info = self.writer().info.clone();
        info.target_duration = self.target_duration.load(Ordering::Relaxed);
        info
    }

    // ----- readers: none of these takes the writer's lock -----

    /// The read-side counters (requests, bytes served, requests held now).
    pub fn read_stats(&self) -> &ReadStats {
        &self.reads
    }

    /// When the edge last changed (a part was published, or the stream ended): what a held request waits for.
    pub fn last_publish_instant(&self) -> Option<Instant> {
        match self.last_publish.load(Ordering::Acquire) {
            0 => None,
            n => Some(self.created + Duration::from_nanos(n - 1)),
        }
    }

    /// What the stream has published: no lock beyond the watch's.
    pub fn edge(&self) -> Edge {
        *self.edge.borrow()
    }

    /// A receiver of the stream's edge, woken at every part.
    pub fn subscribe(&self) -> watch::Receiver<Edge> {
        self.edge.subscribe()
    }

    /// Waits until `done` holds for the edge, the stream is removed, or `timeout` passes.
    async fn wait_edge(&self, timeout: Duration, done: impl FnMut(&Edge) -> bool) -> Result<Edge, Error> {
        let mut done = done;
        let _held = HeldGuard::new(&self.reads.held);
        let mut rx = self.edge.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|e| e.removed || done(e))).await;
        match waited {
            Ok(Ok(edge)) => Ok(*edge),
            // The sender lives as long as the stream, which this borrow keeps alive.
            Ok(Err(_)) => Err(Error::NotFound),
            Err(_) => Err(Error::Timeout(self.edge().last_part.unwrap_or_default())),
        }
    }

    /// Answers a playlist request: at once when it is satisfied, after holding it until the edge satisfies it
    /// (woken by the watch, never by polling), or with an error: [`Error::BadRequest`] (400),
    /// [`Error::Timeout`] after `timeout` (503), [`Error::NotFound`] if the stream went away.
    pub async fn playlist(&self, request: &PlaylistRequest, timeout: Duration) -> Result<Arc<Rendered>, Error> {
        self.playlist_answer(request, timeout).await.map(|a| a.value)
    }

    /// [`Self::playlist`], telling also how long after its release a held request was answered.
    pub async fn playlist_answer(
        &self,
        request: &PlaylistRequest,
        timeout: Duration,
    ) -> Result<Answer<Arc<Rendered>>, Error> {
        let want = match request.decide(&self.edge()) {
            Decision::Reject(reason) => return Err(Error::BadRequest(reason)),
            Decision::Ready => None,
            Decision::Wait(want) => Some(want),
        };
        if let Some(want) = want {
            let edge = self.wait_edge(timeout, |e| want.is_met(e)).await?;
            if !want.is_met(&edge) {
                return Err(Error::NotFound);
            }
        }
        // The newest version satisfies whatever the request waited for: the edge only moves forward.
        let value = self.versions.latest().ok_or(Error::NotFound)?;
        Ok(Answer { value, released_after: want.and_then(|_| self.since_publish()) })
    }

    fn since_publish(&self) -> Option<Duration> {
        self.last_publish_instant().map(|t| t.elapsed())
    }

    /// The rendered version whose newest part is `position`, if still retained.
    pub fn playlist_version(&self, position: Position) -> Option<Arc<Rendered>> {
        self.versions.get(position)
    }

    /// The newest rendered playlist.
    pub fn latest_playlist(&self) -> Option<Arc<Rendered>> {
        self.versions.latest()
    }

    /// The part at `position`, if retained.
    pub fn part(&self, position: Position) -> Option<Bytes> {
        self.parts.get(position)
    }

    /// The part at `position`; the part named by the preload hint is held until it is published (checklist
    /// item 39). Anything else that is not retained is [`Error::NotFound`] (item 42), and so is a hint that was
    /// retracted while waiting.
    pub async fn wait_part(&self, position: Position, timeout: Duration) -> Result<Bytes, Error> {
        self.part_answer(position, timeout).await.map(|a| a.value)
    }

    /// [`Self::wait_part`], telling also how long after its release a held request was answered.
    pub async fn part_answer(&self, position: Position, timeout: Duration) -> Result<Answer<Bytes>, Error> {
        if let Some(value) = self.parts.get(position) {
            return Ok(Answer { value, released_after: None });
        }
        if self.edge().hint != Some(position) {
            return Err(Error::NotFound);
        }
        self.wait_edge(timeout, |e| e.ended || e.hint != Some(position)).await?;
        let value = self.parts.get(position).ok_or(Error::NotFound)?;
        Ok(Answer { value, released_after: self.since_publish() })
    }

    /// The complete segment `msn`, if retained.
    pub fn segment(&self, msn: u64) -> Option<Segment> {
        self.parts.segment(msn)
    }

    /// The newest init segment, and its name.
    pub fn init(&self) -> Option<(InitName, Bytes)> {
        self.versions.init()
    }

    /// The init segment `name`, while a listed segment needs it (and the newest few in any case).
    pub fn init_named(&self, name: InitName) -> Option<Bytes> {
        self.versions.init_named(name)
    }

    /// How long a blocking request is held: 3 × target duration (checklist item 31).
    pub fn blocking_timeout(&self) -> Duration {
        self.target_duration() * 3
    }

    /// `EXT-X-TARGETDURATION`: the configured one, or the one raised to fit a longer first GOP.
    pub fn target_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.target_duration.load(Ordering::Relaxed)))
    }
}

/// Counts a segment that just closed, with the bytes its parts added up to, and starts the next one's count.
fn note_segment(w: &mut Writer, closed: &ClosedSegment) {
    w.info.segments += 1;
    let secs = closed.duration.as_secs_f64();
    if secs > 0.0 {
        let bps = (w.open_bytes as f64 * 8.0 / secs) as u64;
        w.info.peak_bandwidth = w.info.peak_bandwidth.max(bps);
        w.complete.0 += w.open_bytes;
        w.complete.1 += closed.duration.as_nanos();
        w.info.average_bandwidth = (w.complete.0 as f64 * 8e9 / w.complete.1 as f64) as u64;
    }
    w.open_bytes = 0;
}

fn ticks(d: Duration, timescale: u32) -> u64 {
    (d.as_nanos() * u128::from(timescale) / 1_000_000_000) as u64
}

/// All live streams and the caches their media sits in.
pub struct Playlists {
    options: Arc<Options>,
    chunks: ChunkCache,
    m3u8: M3u8Cache,
    streams: DashMap<StreamId, Arc<Stream>>,
    groups: DashMap<String, Arc<Group>>,
    /// The next MSN of streams that ended or were removed: a new stream under the same id starts there, so that
    /// a URL a player or a cache still holds never names different media.
    next_msn: DashMap<StreamId, u64>,
}

/// Ids whose next MSN is remembered after their stream is gone; past this the memory is dropped (a stream id
/// reused after that starts from 0 again, like a brand new one).
const REMEMBERED_IDS: usize = 4096;

impl Playlists {
    /// An empty set of streams sharing `options`.
    pub fn new(options: Options) -> Result<Self, Error> {
        options.validate()?;
        Ok(Self {
            chunks: ChunkCache::new(&options),
            m3u8: M3u8Cache::new(VERSION_ROWS, options.max_parts_per_segment),
            options: Arc::new(options),
            streams: DashMap::new(),
            groups: DashMap::new(),
            next_msn: DashMap::new(),
        })
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The part rings.
    pub fn chunk_cache(&self) -> &ChunkCache {
        &self.chunks
    }

    /// The rendered playlists.
    pub fn m3u8_cache(&self) -> &M3u8Cache {
        &self.m3u8
    }

    /// The live stream `id`, created if it does not exist or has ended (a new stream with the same id starts
    /// from fresh rings and never sees the old one's data).
    pub fn start(&self, id: &StreamId) -> Result<Arc<Stream>, Error> {
        if let Some(s) = self.stream(id) {
            if !s.edge().ended {
                return Ok(s);
            }
        }
        if !self.streams.contains_key(id) && self.streams.len() >= self.options.max_streams {
            return Err(Error::TooManyStreams(self.options.max_streams));
        }
        let stream = match self.streams.entry(id.clone()) {
            Entry::Occupied(e) if !e.get().edge().ended => return Ok(Arc::clone(e.get())),
            entry => {
                if let Entry::Occupied(e) = &entry {
                    self.retire(e.get());
                    e.get().edge.send_modify(|edge| edge.removed = true);
                    self.leave_group(e.get());
                }
                let stream = self.new_stream(id);
                entry.insert(Arc::clone(&stream));
                stream
            }
        };
        if let Some(group) = &stream.group {
            group.members.write().unwrap_or_else(PoisonError::into_inner).push((id.clone(), Arc::clone(&stream)));
        }
        Ok(stream)
    }

    /// Remembers where `stream`'s MSNs ended, for the next stream under its id.
    fn retire(&self, stream: &Stream) {
        if let Some(last) = stream.edge().last_part {
            if self.next_msn.len() >= REMEMBERED_IDS {
                self.next_msn.clear();
            }
            self.next_msn.insert(stream.id.clone(), last.msn + 1);
        }
    }

    fn new_stream(&self, id: &StreamId) -> Arc<Stream> {
        let first_msn = self.next_msn.remove(id).map_or(0, |(_, msn)| msn);
        let parts = self.chunks.add_stream(id);
        let versions = self.m3u8.add_stream(id);
        let group = id.group().map(|g| Arc::clone(&self.groups.entry(g.to_owned()).or_default()));
        Arc::new(Stream {
            id: id.clone(),
            generation: parts.generation(),
            options: Arc::clone(&self.options),
            parts,
            versions,
            edge: watch::Sender::new(Edge::default()),
            writer: Mutex::new(Writer {
                manifest: M3u8Manifest::starting_at(&self.options, first_msn),
                init: None,
                next_decode: None,
                discontinuity: false,
                open_bytes: 0,
                complete: (0, 0),
                frames: (0, 0),
                info: StreamInfo { target_duration: self.options.target_duration, ..StreamInfo::default() },
                gzip: Gzip::new(self.options.gzip_level),
                offset: 0,
            }),
            group,
            publisher: AtomicU64::new(0),
            target_duration: AtomicU32::new(self.options.target_duration),
            reads: ReadStats::default(),
            created: Instant::now(),
            last_publish: AtomicU64::new(0),
        })
    }

    fn leave_group(&self, stream: &Arc<Stream>) {
        if let Some(group) = &stream.group {
            group.members.write().unwrap_or_else(PoisonError::into_inner).retain(|(_, s)| !Arc::ptr_eq(s, stream));
        }
    }

    /// The stream `id`.
    pub fn stream(&self, id: &StreamId) -> Option<Arc<Stream>> {
        self.streams.get(id).map(|s| Arc::clone(s.value()))
    }

    /// All streams.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.streams.iter().map(|s| Arc::clone(s.value())).collect()
    }

    /// Number of streams.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether there are no streams.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Removes `id`: its memory is freed once the last reader lets go, and every request held on it is answered.
    pub fn remove(&self, id: &StreamId) -> Option<Arc<Stream>> {
        let (_, stream) = self.streams.remove(id)?;
        self.retire(&stream);
        self.chunks.remove_stream(id);
        self.m3u8.remove_stream(id);
        self.leave_group(&stream);
        if let Some(g) = id.group() {
            self.groups
                .remove_if(g, |_, group| group.members.read().unwrap_or_else(PoisonError::into_inner).is_empty());
        }
        stream.edge.send_modify(|edge| edge.removed = true);
        Some(stream)
    }

    /// The multivariant playlist of `group` as far as its renditions have playlists (see [`render_master`]), and
    /// the renditions announced (started, not ended) that have none yet, which a player asking for it should wait
    /// for; `None` when there is no such group. The rendered playlist is kept while its text does not change, so
    /// its gzipped form and ETag are made once per change, not per request.
    pub fn master(&self, group: &str) -> Option<Multivariant> {
        let group = self.groups.get(group).map(|g| Arc::clone(g.value()))?;
        let members = group.members.read().unwrap_or_else(PoisonError::into_inner).clone();
        let mut waiting = Vec::new();
        let mut ready = Vec::new();
        for (id, stream) in members {
            let info = stream.info();
            if !info.edge.has_playlist() {
                // One that ended before it had a segment will never have a playlist.
                if !info.edge.ended && !info.edge.removed {
                    waiting.push(stream);
                }
                continue;
            }
            if let Some(init) = stream.current_init() {
                let video = init.tracks.iter().any(|t| t.kind == TrackKind::Video);
                ready.push(Rendition { name: id.name().to_owned(), info, video });
            }
        }
        if ready.is_empty() {
            return Some(Multivariant { playlist: None, waiting });
        }
        let text = render_master(&ready);
        let mut cached = group.master.lock().unwrap_or_else(PoisonError::into_inner);
        let playlist = match cached.as_ref() {
            Some(kept) if kept.text == text.as_bytes() => Arc::clone(kept),
            _ => {
                let gzip = m3u8_cache::gzip(text.as_bytes(), self.options.gzip_level);
                let digest = Sha256::digest(text.as_bytes());
                let etag = format!("\"m{:016x}\"", u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()));
                let made = Arc::new(MasterPlaylist { text: Bytes::from(text), gzip, etag });
                *cached = Some(Arc::clone(&made));
                made
            }
        };
        Some(Multivariant { playlist: Some(playlist), waiting })
    }
}

/// A group's multivariant playlist as it stands, from [`Playlists::master`].
pub struct Multivariant {
    /// The playlist of the renditions that have one; `None` while none has.
    pub playlist: Option<Arc<MasterPlaylist>>,
    /// Renditions of the group that have started but have no playlist yet.
    pub waiting: Vec<Arc<Stream>>,
}

/// A rendered multivariant playlist.
#[derive(Debug, PartialEq, Eq)]
pub struct MasterPlaylist {
    /// The playlist.
    pub text: Bytes,
    /// `text` as one gzip member.
    pub gzip: Bytes,
    /// A strong ETag that follows from `text` (64 bits of its SHA-256).
    pub etag: String,
}

/// What the multivariant playlist says about one rendition of a group.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// The rendition's name within its group: its playlist is `{name}/index.m3u8`.
    pub name: String,
    /// What its media says.
    pub info: StreamInfo,
    /// Whether its init has a video track.
    pub video: bool,
}

/// The multivariant playlist of a group's `renditions`. When the group has video, a rendition that carries only
/// audio is an `EXT-X-MEDIA:TYPE=AUDIO` rendition of the group `audio` (`LANGUAGE` and `CHANNELS` from its track
/// when known, the first one `DEFAULT=YES`) that every video variant names (`AUDIO="audio"`, its `CODECS`,
/// `BANDWIDTH` and `AVERAGE-BANDWIDTH` including the audio's); every other rendition is an `EXT-X-STREAM-INF`
/// variant with `BANDWIDTH` (peak segment bit rate), `AVERAGE-BANDWIDTH` (over all complete segments), `CODECS`,
/// `RESOLUTION` and `FRAME-RATE` read from its media, ordered by `BANDWIDTH`. A group of audio renditions only
/// lists them as the variants.
pub fn render_master(renditions: &[Rendition]) -> String {
    use std::fmt::Write;
    let has_video = renditions.iter().any(|r| r.video);
    let (audio, mut variants): (Vec<&Rendition>, Vec<&Rendition>) =
        renditions.iter().partition(|r| has_video && !r.video);
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (i, r) in audio.iter().enumerate() {
        let default = if i == 0 { "YES" } else { "NO" };
        let _ = write!(out, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"{}\"", r.name);
        if let Some(language) = &r.info.language {
            let _ = write!(out, ",LANGUAGE=\"{language}\"");
        }
        let _ = write!(out, ",DEFAULT={default},AUTOSELECT=YES");
        if let Some(channels) = r.info.channels {
            let _ = write!(out, ",CHANNELS=\"{channels}\"");
        }
        let _ = writeln!(out, ",URI=\"{}/index.m3u8\"", r.name);
    }
    let with_audio = !audio.is_empty();
    let audio_peak = audio.iter().map(|r| r.info.peak_bandwidth).max().unwrap_or(0);
    let audio_average = audio.iter().map(|r| r.info.average_bandwidth).max().unwrap_or(0);
    let mut audio_codecs: Vec<&str> = Vec::new();
    for r in &audio {
        if let Some(c) = r.info.codecs.as_deref().filter(|c| !c.is_empty() && !audio_codecs.contains(c)) {
            audio_codecs.push(c);
        }
    }
    variants.sort_by(|a, b| a.info.peak_bandwidth.cmp(&b.info.peak_bandwidth).then_with(|| a.name.cmp(&b.name)));
    for r in variants {
        let info = &r.info;
        let bandwidth = info.peak_bandwidth + if with_audio { audio_peak } else { 0 };
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", bandwidth.max(1));
        if info.average_bandwidth > 0 {
            let average = info.average_bandwidth + if with_audio { audio_average } else { 0 };
            let _ = write!(out, ",AVERAGE-BANDWIDTH={average}");
        }
        let mut codecs: Vec<&str> = info.codecs.as_deref().filter(|c| !c.is_empty()).into_iter().collect();
        if with_audio {
            codecs.extend(audio_codecs.iter().copied());
        }
        if !codecs.is_empty() {
            let _ = write!(out, ",CODECS=\"{}\"", codecs.join(","));
        }
        if let Some((w, h)) = info.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fps) = info.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        if with_audio {
            out.push_str(",AUDIO=\"audio\"");
        }
        let _ = writeln!(out, ",CLOSED-CAPTIONS=NONE\n{}/index.m3u8", r.name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(ms: u64, independent: bool) -> PartMeta {
        PartMeta {
            duration: Duration::from_millis(ms),
            independent,
            discontinuity: false,
            wallclock: SystemTime::UNIX_EPOCH,
        }
    }

    fn stream(p: &Playlists, name: &str) -> Arc<Stream> {
        p.start(&StreamId::parse(name).unwrap()).unwrap()
    }

    #[test]
    fn parts_that_cannot_fit_a_segment_are_refused_and_change_nothing() {
        let p = Playlists::new(Options::default()).unwrap();
        let s = stream(&p, "a");
        for i in 0..6 {
            s.publish_part(Bytes::from_static(b"x"), meta(200, i % 5 == 0)).unwrap();
        }
        let before = (s.edge(), s.latest_playlist());
        assert!(matches!(s.publish_part(Bytes::from_static(b"x"), meta(0, true)), Err(Error::Malformed(_))));
        assert!(matches!(s.publish_part(Bytes::from_static(b"x"), meta(2001, true)), Err(Error::Malformed(_))));
        let big = Bytes::from(vec![0; Options::default().max_part_bytes + 1]);
        assert!(matches!(s.publish_part(big, meta(200, false)), Err(Error::TooLarge { .. })));
        assert_eq!((s.edge(), s.latest_playlist()), before);
    }

    #[test]
    fn streams_are_limited_and_replaced_once_ended() {
        let options = Options { max_streams: 1, ..Options::default() };
        let p = Playlists::new(options).unwrap();
        let a = stream(&p, "a");
        assert!(matches!(p.start(&StreamId::parse("b").unwrap()), Err(Error::TooManyStreams(1))));
        assert!(Arc::ptr_eq(&a, &stream(&p, "a")));
        a.end().unwrap();
        assert!(matches!(a.end(), Err(Error::StreamEnded)), "ending twice is an error and changes nothing");
        assert!(a.publish_part(Bytes::new(), meta(200, true)).is_err());
        let again = stream(&p, "a");
        assert!(!Arc::ptr_eq(&a, &again));
        assert!(a.edge().removed, "waiters on the replaced stream are released");
        assert!(p.remove(&StreamId::parse("a").unwrap()).is_some());
        assert!(p.is_empty());
    }

    #[tokio::test]
    async fn a_held_request_wakes_on_the_part_and_times_out_without_it() {
        let p = Playlists::new(Options::default()).unwrap();
        let s = stream(&p, "a");
        for i in 0..6 {
            s.publish_part(Bytes::from_static(b"x"), meta(200, i % 5 == 0)).unwrap();
        }
        let req = PlaylistRequest::parse("_HLS_msn=1&_HLS_part=1").unwrap();
        let waiter = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.playlist(&req, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        s.publish_part(Bytes::from_static(b"y"), meta(200, false)).unwrap();
        let rendered = waiter.await.unwrap().unwrap();
        assert_eq!(rendered.position, Position::new(1, 1));
        let req = PlaylistRequest::parse("_HLS_msn=1&_HLS_part=2").unwrap();
        let timed_out = s.playlist(&req, Duration::from_millis(50)).await;
        assert!(matches!(timed_out, Err(Error::Timeout(_))));
        // The hinted part is held, then served; a part past the hint is not found at once.
        assert_eq!(s.edge().hint, Some(Position::new(1, 2)));
        assert_eq!(s.wait_part(Position::new(1, 3), Duration::from_secs(30)).await, Err(Error::NotFound));
        let part = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.wait_part(Position::new(1, 2), Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        s.publish_part(Bytes::from_static(b"z"), meta(200, false)).unwrap();
        assert_eq!(part.await.unwrap().unwrap(), Bytes::from_static(b"z"));
    }

    fn rendition(name: &str, codecs: &str, peak: u64, average: u64) -> Rendition {
        let info = StreamInfo {
            codecs: Some(codecs.to_owned()),
            peak_bandwidth: peak,
            average_bandwidth: average,
            ..StreamInfo::default()
        };
        Rendition { name: name.to_owned(), info, video: !codecs.starts_with("mp4a") && !codecs.starts_with("Opus") }
    }

    fn video(name: &str, peak: u64, average: u64, size: (u32, u32), fps: f64) -> Rendition {
        let mut r = rendition(name, "avc1.64001f", peak, average);
        r.info.resolution = Some(size);
        r.info.frame_rate = Some(fps);
        r
    }

    fn audio(name: &str, language: Option<&str>, channels: Option<u16>, peak: u64, average: u64) -> Rendition {
        let mut r = rendition(name, "mp4a.40.2", peak, average);
        r.info.language = language.map(str::to_owned);
        r.info.channels = channels;
        r
    }

    #[test]
    fn the_multivariant_playlist_of_a_ladder_with_audio_renditions() {
        let ladder = [
            video("hi", 3_000_000, 2_500_000, (1280, 720), 30.0),
            audio("en", Some("en"), Some(2), 130_000, 128_000),
            video("lo", 800_000, 0, (640, 360), 30_000.0 / 1001.0),
            audio("fr", Some("fr-CA"), Some(6), 140_000, 120_000),
            audio("xx", None, None, 100_000, 90_000),
        ];
        let text = render_master(&ladder);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"en\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,\
             CHANNELS=\"2\",URI=\"en/index.m3u8\"\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"fr\",LANGUAGE=\"fr-CA\",DEFAULT=NO,AUTOSELECT=YES,\
             CHANNELS=\"6\",URI=\"fr/index.m3u8\"\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"xx\",DEFAULT=NO,AUTOSELECT=YES,URI=\"xx/index.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=940000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,\
             FRAME-RATE=29.970,AUDIO=\"audio\",CLOSED-CAPTIONS=NONE\nlo/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3140000,AVERAGE-BANDWIDTH=2628000,CODECS=\"avc1.64001f,mp4a.40.2\",\
             RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\",CLOSED-CAPTIONS=NONE\nhi/index.m3u8\n"
        );
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("a multivariant playlist");
        assert_eq!(parsed.variants.len(), 2);
        assert_eq!(parsed.variants[1].average_bandwidth, Some(2_628_000));
        assert_eq!(parsed.variants[1].frame_rate, Some(30.0));
        assert_eq!(parsed.variants[0].audio.as_deref(), Some("audio"));
        let languages: Vec<_> = parsed.alternatives.iter().map(|m| m.language.as_deref()).collect();
        assert_eq!(languages, [Some("en"), Some("fr-CA"), None]);
        assert_eq!(parsed.alternatives[1].channels.as_deref(), Some("6"));
        assert_eq!(parsed.alternatives.iter().filter(|m| m.default).count(), 1);
    }

    #[test]
    fn audio_only_and_muxed_groups_list_their_renditions_as_variants() {
        let radio = [audio("aac", Some("de"), Some(2), 130_000, 120_000), rendition("opus", "Opus", 90_000, 0)];
        assert_eq!(
            render_master(&radio),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=90000,CODECS=\"Opus\",CLOSED-CAPTIONS=NONE\nopus/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=130000,AVERAGE-BANDWIDTH=120000,CODECS=\"mp4a.40.2\",CLOSED-CAPTIONS=NONE\n\
             aac/index.m3u8\n"
        );
        let mut muxed = video("a", 2_000_000, 1_900_000, (1920, 1080), 25.0);
        muxed.info.codecs = Some("avc1.640028,mp4a.40.2".into());
        let text = render_master(&[muxed, video("b", 2_000_000, 1_800_000, (1280, 720), 50.0)]);
        assert!(!text.contains("EXT-X-MEDIA"), "{text}");
        let uris: Vec<_> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(uris, ["a/index.m3u8", "b/index.m3u8"], "equal bandwidths are ordered by name");
        assert!(text.contains("CODECS=\"avc1.640028,mp4a.40.2\",RESOLUTION=1920x1080,FRAME-RATE=25.000,"), "{text}");
    }

    #[test]
    fn a_group_lists_its_renditions_without_a_playlist_as_waiting() {
        let p = Playlists::new(Options::default()).unwrap();
        assert!(p.master("g").is_none());
        let hi = stream(&p, "g/hi");
        let now = p.master("g").expect("the group exists once a rendition starts");
        assert!(now.playlist.is_none());
        assert_eq!(now.waiting.len(), 1);
        assert!(Arc::ptr_eq(&now.waiting[0], &hi));
        drop(now);
        p.remove(&StreamId::parse("g/hi").unwrap());
        assert!(p.master("g").is_none(), "a group without renditions is gone");
    }
}
