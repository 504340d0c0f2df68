//! `GET /ws`: the operator's live view over a WebSocket (actix-ws, one tokio task per session).
//!
//! Server to client, JSON text messages, each with a `type`:
//! - `snapshot`: `{"type":"snapshot","streams":[StreamStatus...]}` on connect, after a subscription change, and
//!   whenever the session fell behind the events (`"missed": n` then says how many it lost);
//! - the stream events of [`Event`]: `stream_started`, `segment_closed`, `part_published`, `stream_idle`,
//!   `stream_ended`, `stream_removed`, `warning`;
//! - `stats`, once a second: `{"type":"stats","streams":{"name":{StreamStats}}}`;
//! - `subscription`: the session's settings, in answer to every valid client message;
//! - `error`: `{"type":"error","message":"..."}` for a message the server did not understand; the session goes on.
//!
//! Client to server, one JSON object with any of these keys:
//! - `"subscribe": ["name", ...]`: only these streams (the default is every stream; `"*"` means every stream again);
//!   later subscribes add to the set;
//! - `"unsubscribe": ["name", ...]`: not these (`"*"`: none);
//! - `"events": ["part_published", "stats", ...]`: only these message types (`"*"`: all; snapshots, subscription
//!   and error messages are always sent);
//! - `"max_parts_per_sec": n`: at most `n` `part_published` events per stream per second (0 or null: no limit);
//!   the others of that second are dropped, the next one sent carries the newest position anyway.
//!
//! The server pings every [`HEARTBEAT`] and closes a session it has heard nothing from for [`CLIENT_TIMEOUT`], or
//! whose client has not taken a message for [`SEND_TIMEOUT`]. A session that cannot keep up never queues more than
//! the hub's shared ring: it loses the oldest events and gets a fresh snapshot instead.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{rt, web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use playlists::StreamId;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::api;
use super::AppState;
use crate::status::{Event, Stats};

/// How often the server pings.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Silence from the client (no pong, no message) after which the session is closed.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one message may wait for the client to take it before the session is closed: a client that reads
/// nothing for that long is gone or stuck, and holding its socket open helps no one.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest client message accepted: a subscription list, not a file upload.
const MAX_MESSAGE: usize = 64 << 10;
/// Most stream names a session may list, so a client cannot grow the server's memory with its filters.
const MAX_NAMES: usize = 1024;

/// Every message type a client may ask for in `events`.
const KINDS: [&str; 8] = [
    "stream_started",
    "segment_closed",
    "part_published",
    "stream_idle",
    "stream_ended",
    "stream_removed",
    "warning",
    "stats",
];

/// What a client may send.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    subscribe: Option<Vec<String>>,
    unsubscribe: Option<Vec<String>>,
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "some_or_null")]
    max_parts_per_sec: Option<Option<u32>>,
}

/// Tells a key given as `null` (clear the limit) from a missing key (leave it alone).
fn some_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// Which streams a session follows.
#[derive(Debug, Clone, PartialEq)]
enum Streams {
    /// Every stream, nothing asked yet: the first `subscribe` narrows to its list.
    Default,
    /// Every stream but these.
    All { except: BTreeSet<String> },
    /// Only these.
    Only(BTreeSet<String>),
}

/// A session's settings.
#[derive(Debug, Clone)]
struct Filter {
    streams: Streams,
    /// `None`: every type.
    kinds: Option<BTreeSet<&'static str>>,
    max_parts_per_sec: Option<u32>,
}

impl Default for Filter {
    fn default() -> Self {
        Self { streams: Streams::Default, kinds: None, max_parts_per_sec: None }
    }
}

impl Filter {
    fn wants_stream(&self, name: &str) -> bool {
        match &self.streams {
            Streams::Default => true,
            Streams::All { except } => !except.contains(name),
            Streams::Only(only) => only.contains(name),
        }
    }

    fn wants_kind(&self, kind: &str) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(kind))
    }

    /// Applies a client message, all or nothing: an invalid one changes nothing.
    fn apply(&mut self, text: &str) -> Result<(), String> {
        let req: Request = serde_json::from_str(text).map_err(|e| format!("not a valid request: {e}"))?;
        let mut next = self.clone();
        if let Some(names) = req.subscribe {
            let names = stream_names(names)?;
            next.streams = match (names.contains("*"), next.streams) {
                (true, _) => Streams::All { except: BTreeSet::new() },
                (false, Streams::Default) => Streams::Only(names),
                (false, Streams::All { mut except }) => {
                    except.retain(|n| !names.contains(n));
                    Streams::All { except }
                }
                (false, Streams::Only(mut only)) => {
                    only.extend(names);
                    Streams::Only(only)
                }
            };
        }
        if let Some(names) = req.unsubscribe {
            let names = stream_names(names)?;
            next.streams = match (names.contains("*"), next.streams) {
                (true, _) => Streams::Only(BTreeSet::new()),
                (false, Streams::Default) => Streams::All { except: names },
                (false, Streams::All { mut except }) => {
                    except.extend(names);
                    Streams::All { except }
                }
                (false, Streams::Only(mut only)) => {
                    only.retain(|n| !names.contains(n));
                    Streams::Only(only)
                }
            };
        }
        if let Some(kinds) = req.events {
            next.kinds = if kinds.iter().any(|k| k == "*") {
                None
            } else {
                let mut set = BTreeSet::new();
                for k in &kinds {
                    let known = KINDS
                        .iter()
                        .find(|known| **known == k.as_str())
                        .ok_or_else(|| format!("unknown event type {k:?}; known: {}", KINDS.join(", ")))?;
                    set.insert(*known);
                }
                Some(set)
            };
        }
        if let Some(limit) = req.max_parts_per_sec {
            next.max_parts_per_sec = limit.filter(|n| *n > 0);
        }
        let size = match &next.streams {
            Streams::Default => 0,
            Streams::All { except: s } | Streams::Only(s) => s.len(),
        };
        if size > MAX_NAMES {
            return Err(format!("at most {MAX_NAMES} stream names per session"));
        }
        *self = next;
        Ok(())
    }

    fn describe(&self) -> serde_json::Value {
        let (streams, except) = match &self.streams {
            Streams::Default => (serde_json::json!("*"), Vec::new()),
            Streams::All { except } => (serde_json::json!("*"), except.iter().cloned().collect()),
            Streams::Only(only) => (serde_json::json!(only), Vec::new()),
        };
        let events = match &self.kinds {
            None => serde_json::json!("*"),
            Some(k) => serde_json::json!(k),
        };
        serde_json::json!({
            "type": "subscription",
            "streams": streams,
            "except": except,
            "events": events,
            "max_parts_per_sec": self.max_parts_per_sec,
        })
    }
}

/// Stream ids (or `*`), checked once here so that a typo is an error rather than silence.
fn stream_names(names: Vec<String>) -> Result<BTreeSet<String>, String> {
    if names.len() > MAX_NAMES {
        return Err(format!("at most {MAX_NAMES} stream names per session"));
    }
    names
        .into_iter()
        .map(|n| {
            if n == "*" {
                Ok(n)
            } else {
                StreamId::parse(&n).map(|id| id.to_string()).map_err(|e| format!("{n:?}: {e}"))
            }
        })
        .collect()
}

/// Counts `part_published` events per stream in one-second windows.
#[derive(Default)]
struct RateLimit {
    windows: HashMap<String, (Instant, u32)>,
}

impl RateLimit {
    fn allow(&mut self, stream: &str, max: u32, now: Instant) -> bool {
        let (start, sent) = match self.windows.get_mut(stream) {
            Some(w) => w,
            None => self.windows.entry(stream.to_owned()).or_insert((now, 0)),
        };
        if now.duration_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *sent = 0;
        }
        *sent += 1;
        *sent <= max
    }

    fn forget(&mut self, stream: &str) {
        self.windows.remove(stream);
    }
}

/// `GET /ws`: upgrades, then runs the session on its own task.
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    // actix-http's frame parser applies its size limit only once a whole frame is in, so a frame that declares
    // 2^62 bytes would be buffered for as long as the client sends. The guard reads each frame's header as it
    // passes and ends the body at one that declares more than a message may hold.
    let guarded: std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>> =
        Box::pin(Guarded { inner: body.into_inner(), frames: FrameGuard::default() });
    let mut guarded = actix_web::dev::Payload::from(guarded);
    let body = <web::Payload as actix_web::FromRequest>::from_request(&req, &mut guarded).await?;
    let slot = state.clients.ws(req.peer_addr().map(|a| a.ip())).map_err(super::ApiError::Limit)?;
    let (response, session, messages) = actix_ws::handle(&req, body)?;
    let messages = messages.max_frame_size(MAX_MESSAGE).aggregate_continuations().max_continuation_size(MAX_MESSAGE);
    rt::spawn(async move {
        run(state.into_inner(), session, messages).await;
        // The address's session is given back when the session ends.
        drop(slot);
    });
    Ok(response)
}

/// Follows the frames of a client's WebSocket stream by their headers (RFC 6455 section 5.2), without buffering.
#[derive(Debug, Default)]
struct FrameGuard {
    /// Payload bytes of the current frame still to pass.
    remaining: u64,
    /// The header being read, and how many of its bytes are in.
    header: [u8; 14],
    have: usize,
    /// The declared length of a frame that was refused: the stream stays refused.
    refused: Option<u64>,
}

impl FrameGuard {
    /// Passes `bytes`; an error names a frame that declares more than [`MAX_MESSAGE`] bytes.
    fn check(&mut self, mut bytes: &[u8]) -> Result<(), u64> {
        if let Some(length) = self.refused {
            return Err(length);
        }
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(bytes.len());
                self.remaining -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have < 2 {
                continue;
            }
            let (masked, short) = (self.header[1] & 0x80 != 0, u64::from(self.header[1] & 0x7f));
            let extended = match short {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            if self.have < 2 + extended + if masked { 4 } else { 0 } {
                continue;
            }
            let length = match extended {
                0 => short,
                n => self.header[2..2 + n].iter().fold(0u64, |l, &b| (l << 8) | u64::from(b)),
            };
            if length > MAX_MESSAGE as u64 {
                self.refused = Some(length);
                return Err(length);
            }
            (self.remaining, self.have) = (length, 0);
        }
        Ok(())
    }
}

/// A WebSocket request body passed through a [`FrameGuard`]: it ends with an error at a frame too large.
struct Guarded {
    inner: actix_web::dev::Payload,
    frames: FrameGuard,
}

impl futures_util::Stream for Guarded {
    type Item = Result<bytes::Bytes, actix_web::error::PayloadError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = std::pin::Pin::new(&mut this.inner).poll_next(cx);
        if let std::task::Poll::Ready(Some(Ok(bytes))) = &next {
            if let Err(length) = this.frames.check(bytes) {
                tracing::info!(length, "WebSocket frame over the message limit: session closed");
                return std::task::Poll::Ready(Some(Err(actix_web::error::PayloadError::Overflow)));
            }
        }
        next
    }
}

/// Why a session ends.
enum End {
    /// The client closed it, or the connection is gone.
    Gone,
    /// The server closes it, saying why.
    Close(CloseReason),
}

/// One session.
struct Sess {
    state: Arc<AppState>,
    session: Session,
    filter: Filter,
    limit: RateLimit,
}

impl Sess {
    async fn send(&mut self, text: String) -> Result<(), End> {
        match tokio::time::timeout(SEND_TIMEOUT, self.session.text(text)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(End::Gone),
            Err(_) => Err(End::Close(CloseReason {
                code: CloseCode::Policy,
                description: Some("the client does not read its messages".into()),
            })),
        }
    }

    async fn send_json(&mut self, value: &serde_json::Value) -> Result<(), End> {
        self.send(value.to_string()).await
    }

    async fn snapshot(&mut self, missed: Option<u64>) -> Result<(), End> {
        let streams = api::snapshot(&self.state.playlists, |s| self.filter.wants_stream(s));
        let mut msg = serde_json::json!({ "type": "snapshot", "streams": streams });
        if let Some(n) = missed {
            msg["missed"] = n.into();
        }
        self.send_json(&msg).await
    }

    async fn event(&mut self, event: &Event) -> Result<(), End> {
        if let Event::StreamRemoved { stream } = event {
            self.limit.forget(stream);
        }
        if !self.filter.wants_stream(event.stream()) || !self.filter.wants_kind(event.kind()) {
            return Ok(());
        }
        if let (Event::PartPublished { stream, .. }, Some(max)) = (event, self.filter.max_parts_per_sec) {
            if !self.limit.allow(stream, max, Instant::now()) {
                return Ok(());
            }
        }
        match serde_json::to_string(event) {
            Ok(text) => self.send(text).await,
            Err(e) => {
                tracing::error!("serializing an event: {e}");
                Ok(())
            }
        }
    }

    async fn stats(&mut self, stats: &Stats) -> Result<(), End> {
        if !self.filter.wants_kind("stats") {
            return Ok(());
        }
        let streams: serde_json::Map<String, serde_json::Value> = stats
            .streams
            .iter()
            .filter(|(name, _)| self.filter.wants_stream(name))
            .filter_map(|(name, s)| serde_json::to_value(s).ok().map(|v| (name.clone(), v)))
            .collect();
        self.send_json(&serde_json::json!({ "type": "stats", "streams": streams })).await
    }

    async fn request(&mut self, text: &str) -> Result<(), End> {
        let before = self.filter.streams.clone();
        match self.filter.apply(text) {
            Ok(()) => {
                let ack = self.filter.describe();
                self.send_json(&ack).await?;
                if self.filter.streams != before {
                    // The client now follows other streams: tell it where they are.
                    self.snapshot(None).await?;
                }
                Ok(())
            }
            Err(message) => self.error(message).await,
        }
    }

    async fn error(&mut self, message: String) -> Result<(), End> {
        self.send_json(&serde_json::json!({ "type": "error", "message": message })).await
    }
}

async fn run(state: Arc<AppState>, session: Session, mut messages: actix_ws::AggregatedMessageStream) {
    // Subscribed before the snapshot is taken, so that no event falls between the two.
    let mut events = state.hub.subscribe();
    let mut stats = state.hub.stats();
    stats.mark_unchanged();
    let mut closing = state.hub.closing();
    let metrics = Arc::clone(&state.metrics);
    metrics.ws_session(true);
    let mut s = Sess { state, session, filter: Filter::default(), limit: RateLimit::default() };
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut heard = Instant::now();

    let end: End = async {
        s.snapshot(None).await?;
        loop {
            tokio::select! {
                // At shutdown a session says goodbye with a close frame instead of holding the server's exit.
                _ = closing.wait_for(|closing| *closing) => return Err(End::Close(CloseReason {
                    code: CloseCode::Away,
                    description: Some("the server is stopping".into()),
                })),
                event = events.recv() => match event {
                    Ok(event) => s.event(&event).await?,
                    Err(RecvError::Lagged(n)) => {
                        metrics.ws_lagged();
                        s.snapshot(Some(n)).await?;
                    }
                    Err(RecvError::Closed) => return Err(End::Close(CloseReason {
                        code: CloseCode::Away,
                        description: Some("the server is stopping".into()),
                    })),
                },
                changed = stats.changed() => {
                    if changed.is_err() {
                        return Err(End::Close(CloseReason::from(CloseCode::Away)));
                    }
                    let now = Arc::clone(&stats.borrow_and_update());
                    s.stats(&now).await?;
                }
                message = messages.recv() => {
                    heard = Instant::now();
                    match message {
                        None => return Err(End::Gone),
                        Some(Ok(AggregatedMessage::Text(text))) => s.request(&text).await?,
                        Some(Ok(AggregatedMessage::Binary(_))) => {
                            s.error("binary messages are not understood; send JSON text".into()).await?;
                        }
                        Some(Ok(AggregatedMessage::Ping(bytes))) => {
                            if s.session.pong(&bytes).await.is_err() {
                                return Err(End::Gone);
                            }
                        }
                        Some(Ok(AggregatedMessage::Pong(_))) => {}
                        Some(Ok(AggregatedMessage::Close(_))) => return Err(End::Gone),
                        Some(Err(e)) => return Err(End::Close(CloseReason {
                            code: CloseCode::Protocol,
                            description: Some(e.to_string()),
                        })),
                    }
                }
                _ = heartbeat.tick() => {
                    if heard.elapsed() >= CLIENT_TIMEOUT {
                        return Err(End::Close(CloseReason {
                            code: CloseCode::Away,
                            description: Some("no pong from the client".into()),
                        }));
                    }
                    if s.session.ping(b"").await.is_err() {
                        return Err(End::Gone);
                    }
                }
            }
        }
    }
    .await
    .unwrap_or_else(|end: End| end);
    if let End::Close(reason) = end {
        let _ = s.session.close(Some(reason)).await;
    }
    metrics.ws_session(false);
}

/// The client side of a session without the socket, for the fuzz targets in `fuzz/` (not an API).
#[doc(hidden)]
pub mod fuzzing {
    /// A session's settings, changed by client messages as a session changes them.
    #[derive(Debug, Default)]
    pub struct Control(super::Filter);

    impl Control {
        /// Applies one client text message.
        pub fn apply(&mut self, text: &str) -> Result<(), String> {
            self.0.apply(text)
        }

        /// The `subscription` message that answers a valid one.
        pub fn describe(&self) -> serde_json::Value {
            self.0.describe()
        }

        /// Whether events of the stream `name` pass.
        pub fn wants_stream(&self, name: &str) -> bool {
            self.0.wants_stream(name)
        }

        /// Whether messages of type `kind` pass.
        pub fn wants_kind(&self, kind: &str) -> bool {
            self.0.wants_kind(kind)
        }
    }

    /// The frame-header guard in front of actix-ws.
    #[derive(Debug, Default)]
    pub struct Frames(super::FrameGuard);

    impl Frames {
        /// Passes the next bytes of the client's stream; `Err` carries the declared length of a refused frame.
        pub fn check(&mut self, bytes: &[u8]) -> Result<(), u64> {
            self.0.check(bytes)
        }
    }

    /// The largest frame the guard lets through.
    pub const MAX_MESSAGE: usize = super::MAX_MESSAGE;

    /// Every event type a client may name.
    pub const KINDS: [&str; 8] = super::KINDS;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_guard_follows_headers_across_chunks_and_stops_at_an_oversized_frame() {
        // A masked 5-byte text frame, a masked 300-byte binary frame (16-bit length), split anywhere.
        let mut stream = vec![0x81, 0x85, 1, 2, 3, 4];
        stream.extend_from_slice(b"hello");
        stream.extend_from_slice(&[0x82, 0xfe, 0x01, 0x2c, 9, 9, 9, 9]);
        stream.extend_from_slice(&[0u8; 300]);
        for split in 0..stream.len() {
            let mut g = FrameGuard::default();
            assert_eq!(g.check(&stream[..split]), Ok(()));
            assert_eq!(g.check(&stream[split..]), Ok(()));
            assert_eq!((g.remaining, g.have), (0, 0), "at a frame boundary after both frames");
        }
        // 64 KiB passes, one byte more does not, whatever the chunking.
        let mut ok = vec![0x82, 0xff];
        ok.extend_from_slice(&(MAX_MESSAGE as u64).to_be_bytes());
        ok.extend_from_slice(&[0; 4]);
        assert_eq!(FrameGuard::default().check(&ok), Ok(()));
        let mut big = vec![0x82, 0xff];
        big.extend_from_slice(&(1u64 << 62).to_be_bytes());
        big.extend_from_slice(&[0; 4]);
        let mut g = FrameGuard::default();
        assert_eq!(g.check(&big[..5]), Ok(()));
        assert_eq!(g.check(&big[5..]), Err(1 << 62));
        assert_eq!(g.check(&[0; 100]), Err(1 << 62), "and stays refused");
        // Any bytes in any chunking: answers, never panics.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut g = FrameGuard::default();
            for _ in 0..20 {
                let chunk: Vec<u8> = (0..(x % 40))
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let _ = g.check(&chunk);
            }
        }
    }

    #[test]
    fn subscriptions_narrow_widen_and_exclude() {
        let mut f = Filter::default();
        assert!(f.wants_stream("a") && f.wants_stream("b"));
        f.apply(r#"{"subscribe":["a"]}"#).unwrap();
        assert!(f.wants_stream("a") && !f.wants_stream("b"));
        f.apply(r#"{"subscribe":["b"]}"#).unwrap();
        assert!(f.wants_stream("b"));
        f.apply(r#"{"unsubscribe":["a"]}"#).unwrap();
        assert!(!f.wants_stream("a") && f.wants_stream("b"));
        f.apply(r#"{"subscribe":["*"],"unsubscribe":["b"]}"#).unwrap();
        assert!(f.wants_stream("a") && !f.wants_stream("b") && f.wants_stream("zz"));
        let mut g = Filter::default();
        g.apply(r#"{"unsubscribe":["x"]}"#).unwrap();
        assert!(!g.wants_stream("x") && g.wants_stream("y"));
    }

    #[test]
    fn bad_requests_change_nothing() {
        let mut f = Filter::default();
        f.apply(r#"{"subscribe":["a"],"events":["part_published"],"max_parts_per_sec":5}"#).unwrap();
        let before = format!("{f:?}");
        for bad in [
            "nonsense",
            "[]",
            r#"{"subscribe":"a"}"#,
            r#"{"subscribe":["b"],"events":["nope"]}"#,
            r#"{"subscribe":["a.b"]}"#,
            r#"{"hello":1}"#,
            r#"{"max_parts_per_sec":-1}"#,
        ] {
            assert!(f.apply(bad).is_err(), "{bad}");
            assert_eq!(format!("{f:?}"), before, "{bad}");
        }
        f.apply(r#"{"max_parts_per_sec":null,"events":["*"]}"#).unwrap();
        assert_eq!(f.max_parts_per_sec, None);
        assert!(f.wants_kind("stats"));
    }

    #[test]
    fn rate_limit_per_stream_per_second() {
        let mut r = RateLimit::default();
        let t = Instant::now();
        assert!(r.allow("a", 2, t) && r.allow("a", 2, t) && !r.allow("a", 2, t));
        assert!(r.allow("b", 2, t));
        assert!(r.allow("a", 2, t + Duration::from_secs(1)));
    }
}
