//! Stand-ins for the publishing core (`crate::publisher`) and the FLV packager (`playlists::flv`), with their
//! announced signatures, so that the RTMP server builds and its protocol is tested before they land. They go when
//! the real ones are merged: the RTMP code then names those instead of these.

use std::fmt::Display;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use playlists::fmp4::Item;
use playlists::playlists::Published;
use playlists::StreamId;

use crate::http::{ApiError, IngestAuth};
use crate::Engine;

/// Where the media comes from, for logs and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// RTMP publishing.
    Rtmp,
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Credentials refused.
    #[error("refused: {0}")]
    Refused(String),
    /// Bad media, stream ended, too many streams...
    #[error(transparent)]
    Data(#[from] playlists::Error),
    /// A newer publisher took the stream over.
    #[error("a newer publisher took the stream over")]
    Superseded,
    /// The engine is stopping.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Opens publishers; cheap to clone.
#[derive(Clone)]
pub struct Publishers {
    engine: Engine,
    auth: IngestAuth,
}

impl Publishers {
    /// Publishers of `engine`'s streams, checked against `auth`.
    pub fn new(engine: Engine, auth: IngestAuth) -> Self {
        Self { engine, auth }
    }

    /// Checks the credential and opens `id` for publishing.
    pub async fn open(
        &self,
        id: &StreamId,
        _source: Source,
        credential: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Publisher, PublishError> {
        let allowed = if self.auth.tokens.is_empty() {
            peer.is_some_and(|p| p.is_loopback())
        } else {
            credential.is_some_and(|c| self.auth.tokens.iter().any(|t| t == c))
        };
        if !allowed {
            return Err(PublishError::Refused("missing or wrong key".to_owned()));
        }
        Ok(Publisher { id: id.clone(), engine: self.engine.clone() })
    }

    /// Reports a refusal.
    pub fn refused(&self, stream: &str, source: Source, reason: &dyn Display) {
        tracing::warn!(stream, ?source, %reason, "ingest refused");
    }
}

/// The per-stream publishing handle.
pub struct Publisher {
    id: StreamId,
    engine: Engine,
}

impl Publisher {
    /// The stream published.
    pub fn id(&self) -> &StreamId {
        &self.id
    }

    /// Publishes an init or a fragment.
    pub async fn publish(&mut self, item: Item) -> Result<Vec<Published>, PublishError> {
        let map = |e: ApiError| match e {
            ApiError::Data(e) => PublishError::Data(e),
            other => PublishError::Unavailable(other.to_string()),
        };
        match item {
            Item::Init(init) => {
                self.engine.publish_init(&self.id, init.bytes.clone()).await.map_err(map)?;
                Ok(Vec::new())
            }
            Item::Fragment(f) => Ok(vec![self.engine.publish_parsed(&self.id, f).await.map_err(map)?]),
        }
    }
}

/// The encoder's onMetaData.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Picture width.
    pub width: Option<u32>,
    /// Picture height.
    pub height: Option<u32>,
    /// Frames per second.
    pub frame_rate: Option<f64>,
}

/// FLV tag bodies in, CMAF items out (this stand-in counts the tags and yields nothing).
pub struct Packager {
    tags: u64,
}

impl Packager {
    /// A packager whose fragments are at most `max_part` long.
    pub fn new(_max_part: Duration) -> Self {
        Self { tags: 0 }
    }

    /// The encoder's onMetaData.
    pub fn metadata(&mut self, _meta: &Metadata) {}

    /// One RTMP video message.
    pub fn video(&mut self, _timestamp_ms: u32, _tag: Bytes) -> Result<(), playlists::Error> {
        self.tags += 1;
        Ok(())
    }

    /// One RTMP audio message.
    pub fn audio(&mut self, _timestamp_ms: u32, _tag: Bytes) -> Result<(), playlists::Error> {
        self.tags += 1;
        Ok(())
    }

    /// The next ready item.
    pub fn next_item(&mut self) -> Option<Item> {
        None
    }

    /// End of the publish.
    pub fn flush(&mut self) {}
}
