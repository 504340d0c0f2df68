//! The publishing core every ingest source uses: HTTP uploads, RTMP sessions, the [`Engine`](crate::Engine) API
//! and the demo stream. None of them knows how a part reaches its stream's actor, and none goes through another's
//! types: each turns its media into [`Item`]s (an init, then fragments) and hands them to a [`Publisher`].
//!
//! - [`Publishers`] checks credentials ([`IngestAuth`]) and opens a stream for publishing, creating it through
//!   the registry if needed.
//! - A [`Publisher`] is one source's handle on one stream. It delivers items to the stream's actor in order, cuts a
//!   fragment longer than the part target into parts of at most that ([`fmp4::refragment`]), backs off when the
//!   actor's queue is full ([`PublishError::Busy`]), and replaces an actor that died without losing the item it
//!   had not received yet.
//! - A long-running source (an upload, an RTMP session) [`opens`](Publishers::open) the stream and so takes it over:
//!   the newest publisher wins, and an older one still sending learns that it was
//!   [superseded](PublishError::Superseded).
//!
//! Errors are this crate's [`PublishError`]; HTTP decides their status codes in `http/`, RTMP its status strings in
//! `ingest/rtmp.rs`.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use actix::Addr;
use playlists::fmp4::{self, Fragment, Init, Item};
use playlists::playlists::{Published, Stream};
use playlists::{Playlists, StreamId};

use crate::auth::{IngestAuth, Refusal};
use crate::registry::{Registry, Route};
use crate::status::{Event, StatusHub};
use crate::stream::{StreamHandle, Undelivered};

/// Where the media comes from, for logs and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An fMP4 upload over HTTP.
    Http,
    /// An RTMP publish.
    Rtmp,
    /// The embedding API ([`Engine`](crate::Engine)).
    Api,
    /// The built-in demo stream.
    Demo,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Http => "http",
            Source::Rtmp => "rtmp",
            Source::Api => "api",
            Source::Demo => "demo",
        })
    }
}

/// Why publishing failed. `Display` is the one-line reason an encoder is told.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The credentials do not allow it.
    #[error("forbidden: {0}")]
    Refused(#[from] Refusal),
    /// From the data plane: bad media, the stream ended, too many streams, shutting down.
    #[error(transparent)]
    Data(#[from] playlists::Error),
    /// The stream's actor has too many items queued: back off and retry.
    #[error("stream is busy: too many fragments queued, retry later")]
    Busy,
    /// A newer publisher took the stream over from this one.
    #[error("another publisher took over this stream")]
    Superseded,
    /// The engine is stopping or an internal part failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Opens publishers. Cheap to clone; [`Engine::publishers`](crate::Engine::publishers) hands one out.
#[derive(Clone)]
pub struct Publishers {
    playlists: Arc<Playlists>,
    registry: Addr<Registry>,
    hub: StatusHub,
    auth: Arc<IngestAuth>,
    actors_on_ingest_workers: bool,
    ingest_timeout: Duration,
}

impl Publishers {
    /// Publishers over the engine's parts.
    pub(crate) fn new(
        playlists: Arc<Playlists>,
        registry: Addr<Registry>,
        hub: StatusHub,
        auth: IngestAuth,
        actors_on_ingest_workers: bool,
        ingest_timeout: Duration,
    ) -> Self {
        Self { playlists, registry, hub, auth: Arc::new(auth), actors_on_ingest_workers, ingest_timeout }
    }

    /// How long an ingest connection may send nothing before it is cut off
    /// ([`EngineConfig::ingest_timeout`](crate::EngineConfig::ingest_timeout)).
    pub fn ingest_timeout(&self) -> Duration {
        self.ingest_timeout
    }

    /// Who may ingest.
    pub fn auth(&self) -> &IngestAuth {
        &self.auth
    }

    /// The longest part a stream gets: longer fragments are cut ([`playlists::Options::max_part`]).
    pub fn max_part(&self) -> Duration {
        self.playlists.options().max_part
    }

    /// Checks `credential` and opens `id` for a long-running source: the stream is created if needed and this
    /// publisher takes it over, so that an older one still sending is [superseded](PublishError::Superseded).
    pub async fn open(
        &self,
        id: &StreamId,
        source: Source,
        credential: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Publisher, PublishError> {
        self.auth.check(id, credential, peer)?;
        let mut publisher = self.attach(id, source).await?;
        let stream = publisher.stream.upgrade().ok_or_else(gone)?;
        publisher.lease = Some(stream.take_over());
        Ok(publisher)
    }

    /// A publisher of `id` that does not take the stream over (one-off items: `POST .../parts`, the API). The
    /// caller has checked the credentials.
    pub async fn attach(&self, id: &StreamId, source: Source) -> Result<Publisher, PublishError> {
        let handle = self.route(id, source).await?;
        let stream = self.playlists.stream(id).ok_or_else(gone)?;
        Ok(Publisher {
            publishers: self.clone(),
            id: id.clone(),
            source,
            handle,
            stream: Arc::downgrade(&stream),
            lease: None,
            init: None,
            lost: 0,
            paced: 0,
            paced_bytes: 0,
        })
    }

    /// Reports a refused publish: a `warning` event on `/ws` and a log line, both with the reason.
    pub fn refused(&self, stream: &str, source: Source, reason: &dyn fmt::Display) {
        // The name is the client's, not yet a valid id: a bounded prefix of it is enough to tell who it was.
        let stream = match stream.char_indices().nth(MAX_NAME_SHOWN) {
            Some((end, _)) => &stream[..end],
            None => stream,
        };
        tracing::warn!(stream, %source, "ingest refused: {reason}");
        self.hub
            .emit(Event::Warning { stream: stream.to_owned(), message: format!("{source} ingest refused: {reason}") });
    }

    /// The actor of `id`, created if needed: on this thread's arbiter when configured so and the source is an
    /// ingest connection (whose worker then splits, publishes and wakes its held requests without a thread hop).
    async fn route(&self, id: &StreamId, source: Source) -> Result<StreamHandle, PublishError> {
        let colocate = self.actors_on_ingest_workers && matches!(source, Source::Http | Source::Rtmp);
        let arbiter = colocate.then(actix::Arbiter::current);
        let routed = self.registry.send(Route { id: id.clone(), arbiter }).await;
        routed.map_err(|_| PublishError::Unavailable("the stream registry is not running".into()))?.map_err(Into::into)
    }
}

/// Characters of a refused stream name that the warning shows: a valid id has at most 64, plus a group.
const MAX_NAME_SHOWN: usize = 130;

fn gone() -> PublishError {
    PublishError::Unavailable("the stream went away".into())
}

/// One source's handle on one stream. See the [module docs](self).
#[derive(Clone)]
pub struct Publisher {
    publishers: Publishers,
    id: StreamId,
    source: Source,
    handle: StreamHandle,
    /// Weak, so that a handle kept by an application does not keep a removed stream's memory.
    stream: Weak<Stream>,
    /// The take-over lease of a long-running source.
    lease: Option<u64>,
    /// The init the fragments of this source are cut against, once it sent one.
    init: Option<Arc<Init>>,
    lost: u32,
    paced: u64,
    paced_bytes: u64,
}

/// Why one item was not published.
enum Delivery {
    /// The item fails with this error.
    Failed(PublishError),
    /// The actor died on this item; publishing goes on with a new actor.
    Lost,
}

impl Publisher {
    /// The stream.
    pub fn id(&self) -> &StreamId {
        &self.id
    }

    /// Fragments lost because the stream's actor failed while publishing them (the stream goes on).
    pub fn lost_fragments(&self) -> u32 {
        self.lost
    }

    /// Whether the stream this publisher opened is still live (not ended, not removed or re-created).
    pub fn is_live(&self) -> bool {
        self.stream.upgrade().is_some_and(|s| !s.edge().ended && !s.edge().removed)
    }

    /// Whether a newer publisher took the stream over.
    pub fn superseded(&self) -> bool {
        match (self.lease, self.stream.upgrade()) {
            (Some(lease), Some(stream)) => !stream.is_publisher(lease),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Publishes an init or a fragment, in order; a fragment longer than the part target is cut into parts of at
    /// most that. Answers the parts published now: of a cut fragment the first, while the others follow at the pace
    /// of their media (see [`Ingest::then`](crate::stream::Ingest::then); counted in
    /// [`paced_parts`](Self::paced_parts)).
    pub async fn publish(&mut self, item: Item) -> Result<Vec<Published>, PublishError> {
        if self.superseded() {
            return Err(PublishError::Superseded);
        }
        match item {
            Item::Init(init) => {
                self.deliver(Item::Init(Arc::clone(&init)), Vec::new()).await?;
                self.init = Some(init);
                Ok(Vec::new())
            }
            Item::Fragment(fragment) => {
                let mut all = Vec::new();
                for aligned in self.align(fragment).await? {
                    let mut pieces = self.cut(aligned)?.into_iter();
                    let Some(first) = pieces.next() else { continue };
                    let then: Vec<_> = pieces.collect();
                    let (paced, bytes) = (then.len() as u64, then.iter().map(|f| f.bytes.len() as u64).sum::<u64>());
                    let published = self.deliver(Item::Fragment(first), then).await?;
                    if published.is_some() {
                        self.paced += paced;
                        self.paced_bytes += bytes;
                    }
                    all.extend(published);
                }
                Ok(all)
            }
        }
    }

    /// A fragment of an audio rendition whose group has video publishing, cut where the group's segments start
    /// (see [`playlists::timeline`]) unless a piece would be a sliver: it first waits, at most twice the part
    /// target, for the video to publish past the fragment's end, since only video decides where segments start.
    /// Anything else comes back as it is.
    async fn align(&self, fragment: Fragment) -> Result<Vec<Fragment>, PublishError> {
        let Some(stream) = self.stream.upgrade() else { return Ok(vec![fragment]) };
        let Some((start, end, timeline)) = stream.follows_video(&fragment, SystemTime::now()) else {
            return Ok(vec![fragment]);
        };
        // A fragment that ends where the next boundary will likely be waits for the video part that starts there
        // (only that declares the boundary), so that the preload hint can name the next segment's first part.
        let tolerance = (end - start) / 2;
        let until = match timeline.predicted_next() {
            Some(next) if next.abs_diff(end) <= tolerance => end.saturating_add(tolerance),
            _ => end,
        };
        timeline.wait_video(until, self.publishers.max_part() * 2).await;
        // A boundary near the fragment's start or end is not cut at: that would leave a sliver of a part (a frame or
        // a few), and hls.js skips such a sliver at a segment's edge, a hole in its audio buffer and a stall. The
        // whole fragment then starts the segment, or ends the one before (the timeline places a part that starts
        // within half its length of a boundary at the boundary), so the audio's segments start within half a part
        // of the video's, under the same MSN and date.
        let sliver = u64::try_from(self.publishers.max_part().as_nanos() / 2).unwrap_or(u64::MAX);
        let mut boundaries = timeline.boundaries_between(start, end);
        boundaries.retain(|&b| b - start >= sliver && end - b >= sliver);
        let Some(timescale) = fragment.main_run().map(|r| r.timescale).filter(|_| !boundaries.is_empty()) else {
            return Ok(vec![fragment]);
        };
        let at: Vec<u64> = boundaries.iter().map(|&b| stream.group_to_ticks(b, timescale)).collect();
        let init = self.current_init()?;
        Ok(fmp4::refragment::split_at(fragment, &init, &at)?)
    }

    /// Parts of cut fragments handed to the stream's actor to publish at their media's pace.
    pub fn paced_parts(&self) -> u64 {
        self.paced
    }

    /// The bytes of [`paced_parts`](Self::paced_parts).
    pub fn paced_bytes(&self) -> u64 {
        self.paced_bytes
    }

    /// The fragment as the parts it becomes: itself, or if it is longer than the part target, its samples cut
    /// into parts of at most that ([`fmp4::refragment`]).
    fn cut(&self, fragment: Fragment) -> Result<Vec<Fragment>, PublishError> {
        let max = self.publishers.max_part();
        if fragment.duration() <= max {
            return Ok(vec![fragment]);
        }
        let init = self.current_init()?;
        Ok(fmp4::refragment(fragment, &init, max)?)
    }

    /// The init this source's fragments belong to: the one it sent, else the stream's.
    fn current_init(&self) -> Result<Arc<Init>, PublishError> {
        if let Some(init) = &self.init {
            return Ok(Arc::clone(init));
        }
        let stream = self.stream.upgrade().ok_or_else(gone)?;
        stream.current_init().ok_or(PublishError::Data(playlists::Error::NoInit))
    }

    /// Hands one item (and the parts paced after it) to the actor and waits for the outcome; a fault of the actor
    /// loses the item but not the stream (counted in [`lost_fragments`](Self::lost_fragments)).
    async fn deliver(&mut self, item: Item, then: Vec<Fragment>) -> Result<Option<Published>, PublishError> {
        match self.try_deliver(item, then).await {
            Ok(p) => Ok(p),
            Err(Delivery::Failed(e)) => Err(e),
            Err(Delivery::Lost) => {
                self.lost += 1;
                Ok(None)
            }
        }
    }

    /// Too many items queued is `Busy`; an actor that died is replaced through the registry, and an item it never
    /// received is sent again once.
    async fn try_deliver(&mut self, item: Item, then: Vec<Fragment>) -> Result<Option<Published>, Delivery> {
        let (mut item, mut then) = (item, then);
        for attempt in 0..2 {
            match self.handle.ingest(item, then).await {
                Ok(outcome) => return outcome.map_err(|e| Delivery::Failed(e.into())),
                Err(Undelivered::Busy) => return Err(Delivery::Failed(PublishError::Busy)),
                Err(Undelivered::Died) => {
                    self.reroute().await.map_err(Delivery::Failed)?;
                    return Err(Delivery::Lost);
                }
                Err(Undelivered::Closed(back, rest)) if attempt == 0 => {
                    self.reroute().await.map_err(Delivery::Failed)?;
                    (item, then) = (back, rest);
                }
                Err(Undelivered::Closed(..)) => break,
            }
        }
        Err(Delivery::Failed(PublishError::Unavailable("the stream's actor is not running".into())))
    }

    async fn reroute(&mut self) -> Result<(), PublishError> {
        self.handle = self.publishers.route(&self.id, self.source).await?;
        Ok(())
    }
}
