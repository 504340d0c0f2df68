//! Ingest, following the DASH-IF Live Media Ingest (CMAF) conventions: a long-running chunked `POST`/`PUT` of
//! fragmented MP4 where every fragment becomes a part as soon as its last byte arrives, `PUT .../init.mp4`,
//! `POST .../parts` for one fragment at a time, and `DELETE` to end a stream.
//!
//! Status codes: 403 bad credentials, 404 unknown stream, 408 an upload that stopped sending, 409 superseded or
//! ended, 412 fragment before init, 413 too large, 415 not fMP4, 400 malformed, 503 when the stream's mailbox is
//! full or too many streams exist. A rejected upload is answered and its connection closed (an encoder such as
//! ffmpeg does not read the response while it uploads).

use actix_web::body::MessageBody as _;
use actix_web::http::ConnectionType;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use playlists::fmp4::{Init, Item, Splitter};
use playlists::playlists::Published;
use playlists::{Error, StreamId};
use serde::Serialize;
use std::borrow::Cow;
use std::sync::Arc;

use super::{ApiError, AppState, KeepUnread};
use crate::publisher::{PublishError, Source};
use crate::registry::EndStream;

/// What an upload did, answered when its body ends.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// The stream.
    pub stream: String,
    /// Init segments received.
    pub inits: u32,
    /// Parts published, or (the rest of a long fragment cut into parts) being published at their media's pace.
    pub parts: u64,
    /// Segments this upload's parts closed (as far as they were published before the answer).
    pub segments_closed: u64,
    /// Bytes of published (or paced) parts.
    pub bytes: u64,
    /// Bytes of an incomplete fragment at the end of the body, dropped.
    pub dropped_bytes: usize,
    /// Fragments lost because the stream's actor failed while handling them.
    pub lost_fragments: u32,
    /// The newest part, `msn.part`.
    pub last: Option<String>,
}

impl Summary {
    /// Counts what publishing one item (`init` or a fragment) did.
    fn add(&mut self, init: bool, published: &[Published]) {
        self.inits += u32::from(init);
        for p in published {
            self.parts += 1;
            self.bytes += p.bytes as u64;
            self.segments_closed += u64::from(p.closed.is_some());
            self.last = Some(p.position.to_string());
        }
    }
}

/// The bearer token of a request, if any.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// Checks the ingest credentials of `req` for `id` ([`crate::auth`]).
pub(crate) fn authorize(req: &HttpRequest, state: &AppState, id: &StreamId) -> Result<(), ApiError> {
    let peer = req.peer_addr().map(|a| a.ip());
    state.publishers.auth().check(id, bearer(req), peer).map_err(|r| ApiError::from(PublishError::from(r)))
}

/// Answers `err` and closes the connection, even while the encoder is still sending; also a `warning` event and a
/// log line with the reason. ffmpeg does not read the answer while it uploads: it learns of the refusal from the
/// closed socket, and exits. `unread` is the request body as far as it was not read: it is kept alive until the
/// answer is out ([`KeepUnread`]), which is what makes actix-http close the connection.
fn reject(state: &AppState, stream: &str, err: ApiError, unread: Option<web::Payload>) -> HttpResponse {
    state.publishers.refused(stream, Source::Http, &err);
    let mut resp = actix_web::ResponseError::error_response(&err);
    resp.head_mut().set_connection_type(ConnectionType::Close);
    match unread {
        Some(unread) => resp.map_body(|_, body| KeepUnread::new(body, unread.into_inner()).boxed()),
        None => resp,
    }
}

/// The stream and the sub-resource (`/init.mp4`, `/parts`) an ingest path names; the stream in DASH-IF form
/// ([`dash_if_track`]) becomes the rendition it is.
fn stream_path(path: &str) -> (Cow<'_, str>, Option<&'static str>) {
    for suffix in ["/init.mp4", "/parts"] {
        if let Some(stream) = path.strip_suffix(suffix) {
            return (dash_if_track(stream), Some(suffix));
        }
    }
    (dash_if_track(path), None)
}

/// `{group}/Streams({track})`, the form DASH-IF Live Media Ingest (CMAF, interface 1) gives each track's POST, as
/// the rendition `{group}/{track}`; a CMAF file extension on the track name (`video1.cmfv`) is dropped. Any
/// other path is the stream id itself.
fn dash_if_track(path: &str) -> Cow<'_, str> {
    let Some((group, last)) = path.rsplit_once('/') else { return Cow::Borrowed(path) };
    let Some(track) = last.strip_prefix("Streams(").and_then(|t| t.strip_suffix(')')) else {
        return Cow::Borrowed(path);
    };
    let track =
        [".cmfv", ".cmfa", ".cmft", ".cmfm", ".mp4"].iter().find_map(|e| track.strip_suffix(e)).unwrap_or(track);
    Cow::Owned(format!("{group}/{track}"))
}

/// `POST /ingest/{stream}` (a long-running fMP4 upload) and `POST /ingest/{stream}/parts` (one fragment).
pub async fn post(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    dispatch(req, &path, payload, state, "/parts").await
}

/// `PUT /ingest/{stream}` (same as POST) and `PUT /ingest/{stream}/init.mp4`.
pub async fn put(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    dispatch(req, &path, payload, state, "/init.mp4").await
}

/// An upload to `{stream}`, or the one sub-resource the method allows (`suffix`).
async fn dispatch(
    req: HttpRequest,
    path: &str,
    payload: web::Payload,
    state: web::Data<AppState>,
    suffix: &str,
) -> HttpResponse {
    let (stream, sub) = stream_path(path);
    let stream = stream.as_ref();
    match (stream, sub) {
        (stream, None) => upload(req, stream, payload, &state).await,
        (stream, Some(s)) if s == suffix && s == "/parts" => {
            let mut payload = payload;
            let r = parts(req, stream, &mut payload, &state).await;
            respond(&state, stream, r, payload)
        }
        (stream, Some(s)) if s == suffix => {
            let mut payload = payload;
            let r = put_init(req, stream, &mut payload, &state).await;
            respond(&state, stream, r, payload)
        }
        // POST to .../init.mp4, PUT to .../parts.
        (_, Some(s)) => {
            let allow = if s == "/parts" { "POST, OPTIONS" } else { "PUT, OPTIONS" };
            reject(&state, path, ApiError::MethodNotAllowed(allow), Some(payload))
        }
    }
}

fn respond(state: &AppState, stream: &str, r: Result<serde_json::Value, ApiError>, rest: web::Payload) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => reject(state, stream, e, Some(rest)),
    }
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
async fn read_body(payload: &mut web::Payload, limit: usize, what: &'static str) -> Result<bytes::Bytes, ApiError> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(Error::TooLarge { what, size: body.len() + chunk.len(), limit }.into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

async fn put_init(
    req: HttpRequest,
    stream: &str,
    payload: &mut web::Payload,
    state: &AppState,
) -> Result<serde_json::Value, ApiError> {
    let id = StreamId::parse(stream)?;
    authorize(&req, state, &id)?;
    let body = read_body(payload, state.playlists.options().max_init_bytes, "init segment").await?;
    let init = Arc::new(Init::parse(body)?);
    let codecs = init.codecs();
    let mut publisher = state.publishers.attach(&id, Source::Http).await?;
    publisher.publish(Item::Init(init)).await?;
    Ok(serde_json::json!({ "stream": id.to_string(), "codecs": codecs }))
}

async fn parts(
    req: HttpRequest,
    stream: &str,
    payload: &mut web::Payload,
    state: &AppState,
) -> Result<serde_json::Value, ApiError> {
    let id = StreamId::parse(stream)?;
    authorize(&req, state, &id)?;
    let live = state.playlists.stream(&id).filter(|s| !s.edge().ended).ok_or(Error::UnknownStream)?;
    let init = live.current_init().ok_or(Error::NoInit)?;
    let max = state.playlists.options().max_part_bytes;
    let body = read_body(payload, max, "part").await?;
    let mut splitter = Splitter::with_init(max, init);
    splitter.push(&body);
    let mut publisher = state.publishers.attach(&id, Source::Http).await?;
    let mut summary = Summary { stream: id.to_string(), ..Summary::default() };
    while let Some(item) = splitter.next_item()? {
        let init = matches!(item, Item::Init(_));
        let published = publisher.publish(item).await?;
        summary.add(init, &published);
    }
    summary.lost_fragments = publisher.lost_fragments();
    summary.parts += publisher.paced_parts();
    summary.bytes += publisher.paced_bytes();
    if splitter.pending() > 0 {
        return Err(Error::Malformed("the body ends inside a box".into()).into());
    }
    if summary.parts == 0 {
        return Err(ApiError::BadRequest("the body holds no fragment (moof+mdat)".into()));
    }
    Ok(serde_json::to_value(summary).unwrap_or_default())
}

/// A long-running upload: every complete fragment is published as soon as its last byte is in.
///
/// The credentials are checked at once; the stream is opened (created, and taken over from an older upload) only
/// when the first item is complete, so that an upload that sends nothing, or nothing that is fMP4, creates no
/// stream. An upload that sends nothing for the ingest timeout is cut off with 408.
async fn upload(req: HttpRequest, stream: &str, mut payload: web::Payload, state: &AppState) -> HttpResponse {
    let id = match StreamId::parse(stream) {
        Ok(id) => id,
        Err(e) => return reject(state, stream, e.into(), Some(payload)),
    };
    if let Err(e) = authorize(&req, state, &id) {
        return reject(state, stream, e, Some(payload));
    }
    let (credential, peer) = (bearer(&req), req.peer_addr().map(|a| a.ip()));
    let max = state.playlists.options().max_part_bytes;
    let idle = state.publishers.ingest_timeout();
    let mut splitter = Splitter::new(max);
    let mut publisher = None;
    let mut summary = Summary { stream: id.to_string(), ..Summary::default() };
    tracing::info!(stream = %id, "ingest started");
    loop {
        let chunk = match tokio::time::timeout(idle, payload.next()).await {
            Err(_) => return reject(state, stream, ApiError::BodyTimeout(idle), Some(payload)),
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(_))) => {
                // The body broke off: whatever fragment was in flight is dropped, the rest is published.
                tracing::info!(stream = %id, "ingest body broke off");
                break;
            }
        };
        splitter.push(&chunk);
        loop {
            let item = match splitter.next_item() {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => return reject(state, stream, e.into(), Some(payload)),
            };
            // The newest upload of a stream is its publisher; an older one still sending is cut off (409).
            let publisher = match &mut publisher {
                Some(p) => p,
                None => match state.publishers.open(&id, Source::Http, credential, peer).await {
                    Ok(p) => publisher.insert(p),
                    Err(e) => return reject(state, stream, e.into(), Some(payload)),
                },
            };
            let init = matches!(item, Item::Init(_));
            match publisher.publish(item).await {
                Ok(published) => summary.add(init, &published),
                Err(e) => return reject(state, stream, e.into(), Some(payload)),
            }
        }
    }
    if let Some(p) = &publisher {
        summary.lost_fragments = p.lost_fragments();
        summary.parts += p.paced_parts();
        summary.bytes += p.paced_bytes();
    }
    summary.dropped_bytes = splitter.pending();
    tracing::info!(stream = %id, parts = summary.parts, dropped = summary.dropped_bytes, "ingest ended");
    HttpResponse::Ok().json(summary)
}

/// `DELETE /ingest/{stream}`: ends the stream (`EXT-X-ENDLIST`); it stays readable for the grace period.
pub async fn delete(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let stream = dash_if_track(&path);
    end_stream(&req, &stream, &state).await.unwrap_or_else(|e| reject(&state, &stream, e, None))
}

/// Ends `stream` for a request that carries ingest credentials: 204, or 404 if it is not live.
pub(crate) async fn end_stream(req: &HttpRequest, stream: &str, state: &AppState) -> Result<HttpResponse, ApiError> {
    let id = StreamId::parse(stream)?;
    authorize(req, state, &id)?;
    let ended = state
        .registry
        .send(EndStream { id })
        .await
        .map_err(|_| ApiError::Unavailable("the stream registry is not running".into()))?;
    if ended {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("no live stream of that name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_if_track_paths_name_the_rendition() {
        assert_eq!(stream_path("show/Streams(video1)"), (Cow::Borrowed("show/video1"), None));
        assert_eq!(stream_path("show/Streams(audio_en.cmfa)"), (Cow::Borrowed("show/audio_en"), None));
        assert_eq!(stream_path("show/Streams(v1)/init.mp4"), (Cow::Borrowed("show/v1"), Some("/init.mp4")));
        assert_eq!(stream_path("show/v1/parts"), (Cow::Borrowed("show/v1"), Some("/parts")));
        assert_eq!(stream_path("cam1"), (Cow::Borrowed("cam1"), None));
        // Not the DASH-IF form: left to the stream id parser, which refuses it.
        assert_eq!(stream_path("show/Streams(v1"), (Cow::Borrowed("show/Streams(v1"), None));
        assert_eq!(stream_path("Streams(v1)"), (Cow::Borrowed("Streams(v1)"), None));
    }
}
