//! `StatusHub`: stream events fanned out to whoever watches (the WebSocket sessions, the logs), and the
//! once-a-second [`Stats`] of every stream.
//!
//! Events go through a `tokio::sync::broadcast` channel: publishing never blocks and never grows memory without
//! bound; a subscriber that falls behind loses the oldest events and is told so (it then sends a fresh snapshot).
//! Stats go through a `watch`: a slow reader only ever sees the newest.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use playlists::{Playlists, StreamId};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

/// Events buffered (shared by every subscriber) before the slowest one starts losing them: about ten seconds of
/// parts for a hundred streams, a few hundred kilobytes at most.
pub const CAPACITY: usize = 1024;

/// Something that happened to a stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A stream was created by its first ingest.
    StreamStarted {
        /// The stream.
        stream: String,
    },
    /// A segment was completed.
    SegmentClosed {
        /// The stream.
        stream: String,
        /// Its Media Sequence Number.
        msn: u64,
        /// Its duration in seconds.
        duration: f64,
    },
    /// A part was published.
    PartPublished {
        /// The stream.
        stream: String,
        /// Parent segment.
        msn: u64,
        /// Index in the parent.
        part: u32,
        /// Duration in seconds.
        duration: f64,
        /// Size in bytes.
        bytes: usize,
        /// Starts with an independent frame.
        independent: bool,
    },
    /// No part arrived for the idle timeout: the playlist got `EXT-X-ENDLIST`.
    StreamIdle {
        /// The stream.
        stream: String,
    },
    /// The stream ended (idle, `DELETE`, or shutdown).
    StreamEnded {
        /// The stream.
        stream: String,
    },
    /// The stream was removed after its grace period.
    StreamRemoved {
        /// The stream.
        stream: String,
    },
    /// Something a player may trip on.
    Warning {
        /// The stream.
        stream: String,
        /// What happened.
        message: String,
    },
}

impl Event {
    /// The stream the event is about.
    pub fn stream(&self) -> &str {
        match self {
            Event::StreamStarted { stream }
            | Event::SegmentClosed { stream, .. }
            | Event::PartPublished { stream, .. }
            | Event::StreamIdle { stream }
            | Event::StreamEnded { stream }
            | Event::StreamRemoved { stream }
            | Event::Warning { stream, .. } => stream,
        }
    }

    /// The event's `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::StreamStarted { .. } => "stream_started",
            Event::SegmentClosed { .. } => "segment_closed",
            Event::PartPublished { .. } => "part_published",
            Event::StreamIdle { .. } => "stream_idle",
            Event::StreamEnded { .. } => "stream_ended",
            Event::StreamRemoved { .. } => "stream_removed",
            Event::Warning { .. } => "warning",
        }
    }
}

/// The rates of one stream over the last second.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamStats {
    /// Bits per second of media ingested.
    pub ingest_bitrate: u64,
    /// Parts published per second.
    pub parts_per_sec: f64,
    /// Playlist requests answered per second.
    pub playlist_requests_per_sec: f64,
    /// Part, segment and init requests answered per second.
    pub media_requests_per_sec: f64,
    /// Requests held right now, waiting for a part.
    pub held_requests: u64,
    /// Body bytes served per second.
    pub bytes_served_per_sec: f64,
}

/// Every stream's [`StreamStats`], taken once a second.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// By stream id.
    pub streams: BTreeMap<String, StreamStats>,
}

/// Takes [`Stats`]: the difference of each stream's totals since the previous sample.
#[derive(Default)]
pub struct Sampler {
    previous: HashMap<StreamId, Totals>,
}

/// One stream's totals at one moment.
#[derive(Clone, Copy)]
struct Totals {
    at: Instant,
    generation: u64,
    bytes: u64,
    parts: u64,
    reads: playlists::playlists::ReadCounts,
}

impl Sampler {
    /// Rates since the previous call (a stream seen for the first time, or re-created, shows zero rates once).
    pub fn sample(&mut self, playlists: &Playlists) -> Stats {
        let now = Instant::now();
        let mut stats = Stats::default();
        let mut seen = HashMap::with_capacity(self.previous.len());
        for stream in playlists.streams() {
            let info = stream.info();
            let t = Totals {
                at: now,
                generation: stream.generation(),
                bytes: info.bytes,
                parts: info.parts,
                reads: stream.read_stats().counts(),
            };
            let mut s = StreamStats { held_requests: t.reads.held, ..StreamStats::default() };
            if let Some(p) = self.previous.get(stream.id()).filter(|p| p.generation == t.generation) {
                let secs = now.duration_since(p.at).as_secs_f64();
                if secs > 0.0 {
                    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                    s.ingest_bitrate = (rate(t.bytes, p.bytes) * 8.0) as u64;
                    s.parts_per_sec = rate(t.parts, p.parts);
                    s.playlist_requests_per_sec = rate(t.reads.playlist_requests, p.reads.playlist_requests);
                    s.media_requests_per_sec = rate(t.reads.media_requests, p.reads.media_requests);
                    s.bytes_served_per_sec = rate(t.reads.bytes_served, p.reads.bytes_served);
                }
            }
            stats.streams.insert(stream.id().to_string(), s);
            seen.insert(stream.id().clone(), t);
        }
        // Forgets removed streams, so the map stays as large as the set of streams.
        self.previous = seen;
        stats
    }
}

/// Fans stream events out to subscribers. Cheap to clone.
#[derive(Clone)]
pub struct StatusHub {
    tx: broadcast::Sender<Arc<Event>>,
    stats: Arc<watch::Sender<Arc<Stats>>>,
    /// Turns true at shutdown: subscribers say goodbye (WebSocket sessions send a close frame) and end.
    closing: Arc<watch::Sender<bool>>,
}

impl Default for StatusHub {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusHub {
    /// A hub with no subscribers, buffering [`CAPACITY`] events.
    pub fn new() -> Self {
        Self::with_capacity(CAPACITY)
    }

    /// A hub buffering `capacity` events (at least one) before a slow subscriber starts losing them.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(1)).0,
            stats: Arc::new(watch::Sender::new(Arc::new(Stats::default()))),
            closing: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Tells every subscriber that the server is stopping (graceful shutdown), so that none holds the exit.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A receiver that turns true once [`close`](Self::close) was called.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Publishes the newest [`Stats`].
    pub fn publish_stats(&self, stats: Stats) {
        self.stats.send_replace(Arc::new(stats));
    }

    /// A receiver of the [`Stats`], marked changed at every sample.
    pub fn stats(&self) -> watch::Receiver<Arc<Stats>> {
        self.stats.subscribe()
    }

    /// Sends `event` to every subscriber (none is fine).
    pub fn emit(&self, event: Event) {
        tracing::debug!(stream = event.stream(), kind = event.kind(), "event");
        let _ = self.tx.send(Arc::new(event));
    }

    /// A new subscription, receiving events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
