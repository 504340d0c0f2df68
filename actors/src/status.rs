//! `StatusHub`: stream events fanned out to whoever watches (the WebSocket sessions, the logs).
//!
//! A `tokio::sync::broadcast` channel: publishing never blocks and never grows memory without bound; a subscriber
//! that falls behind loses the oldest events and is told so (it then asks for a fresh snapshot).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

/// Events buffered per subscriber before the slowest one starts losing them.
const CAPACITY: usize = 1024;

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

/// Fans stream events out to subscribers. Cheap to clone.
#[derive(Clone)]
pub struct StatusHub {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for StatusHub {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusHub {
    /// A hub with no subscribers.
    pub fn new() -> Self {
        Self { tx: broadcast::channel(CAPACITY).0 }
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
