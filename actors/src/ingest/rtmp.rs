//! RTMP publishing: `rtmp://host/live/{stream}` (OBS: server `rtmp://host/live`, stream key `{stream}`), the
//! credential in the key's query (`{stream}?key=SECRET`, or `token=`). Each connection is a task on one of a few
//! arbiters (one per core), reading the socket into an [`rml_rtmp`] server session; once the publish is accepted
//! by [`Publishers::open`], every audio and video message (FLV tag bodies, handed on as zero-copy `Bytes`) goes
//! through a [`Packager`] into CMAF items that [`Publisher::publish`] publishes like any other ingest.
//!
//! Why rml_rtmp: of the crates.io RTMP crates it is the one built sans-IO — handshake, chunk stream and
//! client/server sessions are plain state machines fed with bytes, with every connect, publish and play an
//! explicit request we accept or reject with our own status code — so the socket, its timeouts, its buffers and
//! the task it runs on stay ours (actix arbiters, no runtime of its own), and its client session drives our
//! tests and load tool. It is MIT, takes and gives `Bytes`, and is known to work with OBS and ffmpeg. Its last
//! release (0.8, 2023) predates Enhanced RTMP, which costs little here: it passes tag bodies through untouched
//! (our FLV parsing reads E-RTMP FourCCs), only the connect's `fourCcList` is not answered. scuffle-rtmp
//! (E-RTMP, 2025) has no client and accepts every connect; rtmp-rs (E-RTMP, 2026) is a whole server framework
//! that owns the accept loop, and its publishing client sends no video.
//!
//! A peer gets 10 s for the handshake, 20 s and 64 KiB to an accepted publish, then `--ingest-timeout-secs` (30 s) between reads; every
//! byte passes [`chunks`](super::chunks)' guard first (AMF messages capped in size and nesting: rml_amf0
//! recurses), rml_rtmp runs under `catch_unwind`, and a refusal is an error status, then the close.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, info, warn};

use playlists::flv::{Metadata, Packager};
use playlists::StreamId;

use super::chunks::Guard;
use crate::publisher::{PublishError, Publisher, Publishers, Source};

/// The one application publishers connect to: `rtmp://host/live`.
pub const APP: &str = "live";

/// A peer that has not finished the handshake by then holds a socket and a task for nothing (encoders finish it
/// in one round trip).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// From the accepted TCP connection to an accepted publish: encoders send connect, createStream and publish
/// right after the handshake.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// A peer that does not read our few responses for this long is dropped instead of holding the task.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a connection may send before its publish is accepted: connect, createStream and publish are a few
/// hundred; more is a peer that is not an encoder.
const SETUP_BYTES: usize = 64 * 1024;
/// One socket read. rml_rtmp copies what it is given, so this is the only per-connection read buffer; 16 KiB is
/// a dozen reads a second at 1.5 Mbit/s.
const READ_CHUNK: usize = 16 * 1024;
/// Connections served at once; more are closed at accept. Each costs a task, a read buffer and a session until its
/// timeouts end it, so a flood of idle connections cannot take memory without bound. Far above `max_streams`.
const MAX_CONNECTIONS: usize = 4096;
/// At shutdown, how long sessions are given to flush their last fragment.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves RTMP publishing on `listener` until `shutdown` resolves (sessions in flight are then ended: each
/// flushes what it has and closes its connection).
///
/// Call it inside an actix system (`#[actix_web::main]`): it starts one arbiter per core, handed connections in
/// turn, and stops them when it returns.
///
/// Parts are cut at [`Publishers::max_part`], the engine's part target.
pub async fn run(
    listener: std::net::TcpListener,
    publishers: Publishers,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let max_part = publishers.max_part();
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();
    let (stop, stopping) = watch::channel(false);
    // Every session holds a sender; `recv` answers `None` once the last one is gone.
    let (alive, mut sessions_done) = mpsc::channel::<()>(1);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut turn = 0usize;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning on the error.
                warn!(error = %e, "rtmp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Deregistered from this thread's reactor, registered again on the arbiter's.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                warn!(%peer, error = %e, "rtmp connection dropped");
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            warn!(%peer, "rtmp connection refused: {MAX_CONNECTIONS} connections open");
            continue;
        };
        let Some(arbiter) = arbiters.get(turn % arbiters.len()) else { break };
        turn = turn.wrapping_add(1);
        let ctx = Ctx {
            publishers: publishers.clone(),
            max_part,
            stopping: stopping.clone(),
            _alive: alive.clone(),
            _slot: slot,
        };
        if !arbiter.spawn_fn(move || {
            actix::spawn(connection(tcp, peer, ctx));
        }) {
            warn!(%peer, "rtmp arbiter gone, connection dropped");
        }
    }
    drop(listener);
    let _ = stop.send(true);
    drop(alive);
    if timeout(DRAIN_TIMEOUT, sessions_done.recv()).await.is_err() {
        warn!("rtmp sessions still running at shutdown");
    }
    for arbiter in &arbiters {
        arbiter.stop();
    }
    Ok(())
}

/// What a connection's task is given.
struct Ctx {
    publishers: Publishers,
    max_part: Duration,
    /// Turns true when the server stops.
    stopping: watch::Receiver<bool>,
    /// Dropped with the session: [`run`] waits for all of them at shutdown.
    _alive: mpsc::Sender<()>,
    /// One of [`MAX_CONNECTIONS`], given back with the session.
    _slot: OwnedSemaphorePermit,
}

/// One connection, from accept to close. Nothing here panics on the peer's input: rml_rtmp's parsing is called
/// under `catch_unwind`, so even a bug there ends this connection only.
async fn connection(tcp: std::net::TcpStream, peer: SocketAddr, ctx: Ctx) {
    let mut tcp = match TcpStream::from_std(tcp) {
        Ok(tcp) => tcp,
        Err(e) => return warn!(%peer, error = %e, "rtmp connection dropped"),
    };
    // Status answers are small and wanted at once.
    let _ = tcp.set_nodelay(true);
    let accepted = Instant::now();
    let leftover = match timeout(HANDSHAKE_TIMEOUT, handshake(&mut tcp)).await {
        Ok(Ok(leftover)) => leftover,
        Ok(Err(e)) => return debug!(%peer, reason = %e, "rtmp handshake failed"),
        Err(_) => return debug!(%peer, "rtmp handshake timed out"),
    };
    let mut config = ServerSessionConfig::new();
    config.send_on_bw_done_message_on_start = false;
    let (rtmp, initial) = match guarded(|| ServerSession::new(config)) {
        Ok(Ok(created)) => created,
        Ok(Err(e)) => return warn!(%peer, error = %e, "rtmp session not created"),
        Err(e) => return warn!(%peer, reason = %e, "rtmp session not created"),
    };
    let mut session = Session {
        tcp,
        peer,
        ctx,
        rtmp,
        guard: Guard::default(),
        publishing: None,
        setup_bytes: leftover.len(),
        app_credential: None,
    };
    let ended = session.run(initial, &leftover, accepted + SETUP_TIMEOUT).await;
    let stream = session.publishing.as_ref().map(|p| p.publisher.id().to_string());
    if let Err(e) = session.finish().await {
        warn!(%peer, ?stream, reason = %e, "rtmp publish ended with an error");
    }
    match ended {
        Ok(how) => info!(%peer, ?stream, how, "rtmp session ended"),
        Err(e) => warn!(%peer, ?stream, reason = %e, "rtmp session closed"),
    }
}

/// Runs rml_rtmp's code on the peer's input, a panic in it becoming an error.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| "malformed RTMP input (the parser panicked)".to_owned())
}

/// The server side of the handshake; answers the bytes that came after it.
async fn handshake(tcp: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut handshake = Handshake::new(PeerType::Server);
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await.map_err(|e| e.to_string())?;
        let Some(read) = buf.get(..n).filter(|r| !r.is_empty()) else {
            return Err("closed during the handshake".to_owned());
        };
        match guarded(|| handshake.process_bytes(read))?.map_err(|e| e.to_string())? {
            HandshakeProcessResult::InProgress { response_bytes } => write(tcp, &response_bytes).await?,
            HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                write(tcp, &response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

async fn write(tcp: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    match timeout(WRITE_TIMEOUT, tcp.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the peer does not read".to_owned()),
    }
}

/// An accepted publish.
struct Publishing {
    publisher: Publisher,
    packager: Packager,
}

/// A connection past its handshake.
struct Session {
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Ctx,
    rtmp: ServerSession,
    /// Sees every byte before `rtmp` does.
    guard: Guard,
    publishing: Option<Publishing>,
    /// Bytes received before the publish was accepted ([`SETUP_BYTES`]).
    setup_bytes: usize,
    /// A credential carried in the connect's application (`rtmp://host/live?key=SECRET`), for encoders whose
    /// stream key field cannot hold a query.
    app_credential: Option<String>,
}

/// How a session ended on its own terms (for the log); an `Err(String)` is one that failed.
type Ended = Result<&'static str, String>;

impl Session {
    async fn run(&mut self, initial: Vec<ServerSessionResult>, leftover: &[u8], setup_deadline: Instant) -> Ended {
        if let Some(how) = self.handle(initial).await? {
            return Ok(how);
        }
        if !leftover.is_empty() {
            if let Some(how) = self.input(leftover).await? {
                return Ok(how);
            }
        }
        if *self.ctx.stopping.borrow() {
            return Ok("server shutting down");
        }
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let publishing = self.publishing.is_some();
            // No byte for `ingest_timeout` while publishing: the encoder is gone without closing.
            let idle = self.ctx.publishers.ingest_timeout();
            let deadline = if publishing { Instant::now() + idle } else { setup_deadline };
            let read = tokio::select! {
                read = timeout_at(deadline, self.tcp.read(&mut buf)) => read,
                _ = self.ctx.stopping.changed() => return Ok("server shutting down"),
            };
            let n = match read {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) if publishing => return Err("no data from the encoder".to_owned()),
                Err(_) => return Err("no publish in time".to_owned()),
            };
            let Some(read) = buf.get(..n).filter(|r| !r.is_empty()) else {
                return Ok("closed by the encoder");
            };
            if !publishing {
                self.setup_bytes += n;
                if self.setup_bytes > SETUP_BYTES {
                    return Err("too many bytes before publishing".to_owned());
                }
            }
            if let Some(how) = self.input(read).await? {
                return Ok(how);
            }
        }
    }

    /// Feeds the peer's bytes to the session; `Some`: the session is over.
    async fn input(&mut self, bytes: &[u8]) -> Result<Option<&'static str>, String> {
        self.guard.check(bytes)?;
        let rtmp = &mut self.rtmp;
        let results = guarded(|| rtmp.handle_input(bytes))?.map_err(|e| format!("malformed RTMP: {e}"))?;
        self.handle(results).await
    }

    async fn handle(&mut self, results: Vec<ServerSessionResult>) -> Result<Option<&'static str>, String> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => write(&mut self.tcp, &packet.bytes).await?,
                ServerSessionResult::RaisedEvent(event) => {
                    if let Some(how) = self.event(event).await? {
                        return Ok(Some(how));
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(None)
    }

    /// Sends the packets of an accept or a reject (they raise no events).
    async fn respond(&mut self, results: Vec<ServerSessionResult>) -> Result<(), String> {
        for result in results {
            if let ServerSessionResult::OutboundResponse(packet) = result {
                write(&mut self.tcp, &packet.bytes).await?;
            }
        }
        Ok(())
    }

    async fn accept(&mut self, request_id: u32) -> Result<(), String> {
        let rtmp = &mut self.rtmp;
        let results = guarded(|| rtmp.accept_request(request_id))?.map_err(|e| e.to_string())?;
        self.respond(results).await
    }

    /// Answers `request_id` with an error status; the caller then ends the session, which closes the connection.
    async fn reject(&mut self, request_id: u32, code: &str, description: &str) -> Result<(), String> {
        let rtmp = &mut self.rtmp;
        let results = guarded(|| rtmp.reject_request(request_id, code, description))?.map_err(|e| e.to_string())?;
        self.respond(results).await?;
        // Written before the close, so the encoder reads the reason instead of a reset.
        let _ = timeout(WRITE_TIMEOUT, self.tcp.flush()).await;
        Ok(())
    }

    async fn event(&mut self, event: ServerSessionEvent) -> Result<Option<&'static str>, String> {
        match event {
            ServerSessionEvent::ConnectionRequested { request_id, app_name } => {
                let (app, credential) = split_key(&app_name);
                if app.trim_end_matches('/') == APP {
                    self.app_credential = credential.map(str::to_owned);
                    self.accept(request_id).await?;
                } else {
                    let why = format!("unknown application {app:?}: publish to rtmp://HOST/{APP}/STREAM");
                    self.reject(request_id, "NetConnection.Connect.Rejected", &why).await?;
                    info!(peer = %self.peer, app, "rtmp connect rejected");
                    return Ok(Some("connect rejected"));
                }
            }
            ServerSessionEvent::ReleaseStreamRequested { request_id, .. } => self.accept(request_id).await?,
            ServerSessionEvent::PublishStreamRequested { request_id, stream_key, .. } => {
                return self.publish(request_id, &stream_key).await;
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let why = "this server takes RTMP publishing only; play over HLS";
                self.reject(request_id, "NetStream.Play.Failed", why).await?;
                return Ok(Some("play refused"));
            }
            ServerSessionEvent::PublishStreamFinished { .. } => return Ok(Some("unpublished")),
            ServerSessionEvent::UnhandleableAmf0Command { command_name, .. } if command_name == "FCUnpublish" => {
                return Ok(Some("unpublished"));
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Some(p) = &mut self.publishing {
                    p.packager.metadata(&metadata_of(&metadata));
                }
            }
            ServerSessionEvent::AudioDataReceived { data, timestamp, .. } => {
                self.media(false, timestamp.value, data).await?;
            }
            ServerSessionEvent::VideoDataReceived { data, timestamp, .. } => {
                self.media(true, timestamp.value, data).await?;
            }
            _ => {}
        }
        Ok(None)
    }

    /// A publish request: the key parsed and checked, the publish accepted or refused.
    async fn publish(&mut self, request_id: u32, key: &str) -> Result<Option<&'static str>, String> {
        let (name, credential) = split_key(key);
        // The stream key's own credential wins over one in the application's URL.
        let app_credential = self.app_credential.clone();
        let credential = credential.or(app_credential.as_deref());
        if self.publishing.is_some() {
            self.reject(request_id, BAD_NAME, "one stream per connection").await?;
            return Ok(Some("second publish refused"));
        }
        let id = match StreamId::parse(name) {
            Ok(id) => id,
            Err(e) => {
                let why = format!("bad stream name {name:?}: {e}");
                self.reject(request_id, BAD_NAME, &why).await?;
                self.ctx.publishers.refused(name, Source::Rtmp, &why);
                return Ok(Some("publish refused"));
            }
        };
        match self.ctx.publishers.open(&id, Source::Rtmp, credential, Some(self.peer.ip())).await {
            Ok(publisher) => {
                self.accept(request_id).await?;
                info!(peer = %self.peer, stream = %id, "rtmp publishing");
                let packager = Packager::new(self.ctx.max_part);
                self.publishing = Some(Publishing { publisher, packager });
                Ok(None)
            }
            Err(e) => {
                let why = e.to_string();
                self.reject(request_id, status_of(&e), &why).await?;
                self.ctx.publishers.refused(name, Source::Rtmp, &why);
                Ok(Some("publish refused"))
            }
        }
    }

    /// One audio or video message into the packager, what it has ready out to the publisher.
    async fn media(&mut self, video: bool, timestamp: u32, tag: Bytes) -> Result<(), String> {
        let Some(p) = &mut self.publishing else { return Ok(()) };
        // Checked on every message, so a superseded encoder is told at once, not at its next whole fragment.
        if p.publisher.superseded() {
            return Err(self.stop_publishing(&PublishError::Superseded));
        }
        let packed = if video { p.packager.video(timestamp, tag) } else { p.packager.audio(timestamp, tag) };
        if let Err(e) = packed {
            return Err(self.stop_publishing(&format_args!("bad media: {e}")));
        }
        self.drain().await
    }

    /// Ends an accepted publish that failed: a `warning` event and a log line with the reason, as every refusal
    /// gets; the caller then closes the connection. Answers the reason.
    fn stop_publishing(&mut self, reason: &dyn std::fmt::Display) -> String {
        let reason = reason.to_string();
        if let Some(p) = self.publishing.take() {
            self.ctx.publishers.refused(p.publisher.id().as_str(), Source::Rtmp, &reason);
        }
        reason
    }

    /// Publishes what the packager has ready. A failure (superseded, stream ended, bad media) ends the publish.
    async fn drain(&mut self) -> Result<(), String> {
        let Some(p) = &mut self.publishing else { return Ok(()) };
        while let Some(item) = p.packager.next_item() {
            if let Err(e) = p.publisher.publish(item).await {
                return Err(self.stop_publishing(&format_args!("publishing failed: {e}")));
            }
        }
        Ok(())
    }

    /// End of the publish, however the session ended: the packager's last fragment is published. The stream
    /// stays live until it idles, so a reconnecting encoder continues it.
    async fn finish(&mut self) -> Result<(), String> {
        if let Some(p) = &mut self.publishing {
            p.packager.flush();
            self.drain().await?;
        }
        let _ = timeout(WRITE_TIMEOUT, self.tcp.shutdown()).await;
        Ok(())
    }
}

/// The status of a refused publish. Encoders show the description; the codes are the ones FMS-era clients
/// know as "this stream cannot be published" (BadName: the name, its key, or someone else publishing it).
const BAD_NAME: &str = "NetStream.Publish.BadName";

fn status_of(e: &PublishError) -> &'static str {
    match e {
        PublishError::Refused(_) => BAD_NAME,
        PublishError::Data(_) | PublishError::Busy | PublishError::Superseded | PublishError::Unavailable(_) => {
            "NetStream.Publish.Failed"
        }
    }
}

/// `name?key=SECRET` (or `token=`): the stream name (or the application) and the credential.
fn split_key(key: &str) -> (&str, Option<&str>) {
    let (name, query) = key.split_once('?').unwrap_or((key, ""));
    let credential = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("key=").or_else(|| pair.strip_prefix("token=")))
        .filter(|c| !c.is_empty());
    (name, credential)
}

fn metadata_of(meta: &StreamMetadata) -> Metadata {
    // rml_rtmp reads the AMF0; a codec id present says the track is there.
    let any = meta.video_codec_id.is_some() || meta.audio_codec_id.is_some();
    Metadata {
        width: meta.video_width,
        height: meta.video_height,
        framerate: meta.video_frame_rate.map(f64::from),
        has_video: any.then_some(meta.video_codec_id.is_some()),
        has_audio: any.then_some(meta.audio_codec_id.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::split_key;

    #[test]
    fn keys_carry_the_credential_in_their_query() {
        assert_eq!(split_key("cam1"), ("cam1", None));
        assert_eq!(split_key("cam1?key=s3cret"), ("cam1", Some("s3cret")));
        assert_eq!(split_key("g/cam1?x=1&token=t0k"), ("g/cam1", Some("t0k")));
        assert_eq!(split_key("cam1?key="), ("cam1", None));
    }
}
