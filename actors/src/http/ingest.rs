//! Ingest, following the DASH-IF Live Media Ingest (CMAF) conventions: a long-running chunked `POST`/`PUT` of
//! fragmented MP4 where every fragment becomes a part as soon as its last byte arrives, `PUT .../init.mp4`,
//! `POST .../parts` for one fragment at a time, and `DELETE` to end a stream.
//!
//! Status codes: 403 bad credentials, 404 unknown stream, 412 fragment before init, 413 too large, 415 not fMP4,
//! 400 malformed, 503 when the stream's mailbox is full. A rejected upload is answered and its connection closed
//! (an encoder such as ffmpeg does not read the response while it uploads).

use actix_web::http::ConnectionType;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use playlists::fmp4::{Init, Item as SplitItem, Splitter};
use playlists::playlists::Published;
use playlists::{Error, StreamId};
use serde::Serialize;
use std::sync::Arc;

use super::{ApiError, AppState};
use crate::registry::{EndStream, Route};
use crate::stream::{Item, StreamHandle, Undelivered};

/// What an upload did, answered when its body ends.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// The stream.
    pub stream: String,
    /// Init segments received.
    pub inits: u32,
    /// Parts published.
    pub parts: u64,
    /// Segments this upload's parts closed.
    pub segments_closed: u64,
    /// Bytes of published parts.
    pub bytes: u64,
    /// Bytes of an incomplete fragment at the end of the body, dropped.
    pub dropped_bytes: usize,
    /// Fragments lost because the stream's actor failed while handling them.
    pub lost_fragments: u32,
    /// The newest part, `msn.part`.
    pub last: Option<String>,
}

impl Summary {
    /// The item to hand to the stream's actor, counting the inits.
    fn take(&mut self, item: SplitItem) -> Item {
        match item {
            SplitItem::Init(init) => {
                self.inits += 1;
                Item::Init(init)
            }
            SplitItem::Fragment(f) => Item::Fragment(f),
        }
    }

    fn add(&mut self, p: &Published) {
        self.parts += 1;
        self.bytes += p.bytes as u64;
        self.segments_closed += u64::from(p.closed.is_some());
        self.last = Some(p.position.to_string());
    }
}

fn is_loopback(req: &HttpRequest) -> bool {
    req.peer_addr().is_some_and(|a| a.ip().is_loopback())
}

/// Checks the ingest credentials: a configured bearer token, or, with none configured, a loopback peer.
pub(crate) fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if state.auth.tokens.is_empty() {
        return if is_loopback(req) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("ingest is accepted only from loopback unless tokens are configured"))
        };
    }
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(t) if state.auth.tokens.iter().any(|k| k == t) => Ok(()),
        Some(_) => Err(ApiError::Forbidden("bad ingest token")),
        None => Err(ApiError::Forbidden("ingest needs Authorization: Bearer <token>")),
    }
}

/// Answers `err` and closes the connection: the rest of the upload is not read.
fn reject(err: ApiError) -> HttpResponse {
    let mut resp = actix_web::ResponseError::error_response(&err);
    resp.head_mut().set_connection_type(ConnectionType::Close);
    resp
}

/// The actor of `id`, created if needed (on this worker's thread with `actors_on_ingest_workers`).
async fn route(state: &AppState, id: &StreamId) -> Result<StreamHandle, ApiError> {
    let arbiter = state.actors_on_ingest_workers.then(actix::Arbiter::current);
    state
        .registry
        .send(Route { id: id.clone(), arbiter })
        .await
        .map_err(|_| ApiError::Unavailable("the stream registry is not running".into()))?
        .map_err(ApiError::from)
}

/// Hands one item to the stream's actor and waits for the outcome. Too many items queued is `Busy` (503); an
/// actor that died is replaced through the registry, and an item it never received is sent again once.
async fn deliver(
    state: &AppState,
    id: &StreamId,
    handle: &mut StreamHandle,
    item: Item,
) -> Result<Option<Published>, Delivery> {
    let mut item = item;
    for attempt in 0..2 {
        match handle.ingest(item).await {
            Ok(outcome) => return outcome.map_err(|e| Delivery::Failed(e.into())),
            Err(Undelivered::Busy) => return Err(Delivery::Failed(ApiError::Busy)),
            Err(Undelivered::Died) => {
                *handle = route(state, id).await.map_err(Delivery::Failed)?;
                return Err(Delivery::Lost);
            }
            Err(Undelivered::Closed(back)) if attempt == 0 => {
                *handle = route(state, id).await.map_err(Delivery::Failed)?;
                item = back;
            }
            Err(Undelivered::Closed(_)) => break,
        }
    }
    Err(Delivery::Failed(ApiError::Unavailable("the stream's actor is not running".into())))
}

/// [`deliver`] for a single item: a fault of the actor is an error to retry.
pub(crate) async fn deliver_one(
    state: &AppState,
    id: &StreamId,
    handle: &mut StreamHandle,
    item: Item,
) -> Result<Option<Published>, ApiError> {
    deliver(state, id, handle, item).await.map_err(|d| match d {
        Delivery::Failed(e) => e,
        Delivery::Lost => ApiError::Unavailable("the stream's actor failed while publishing; retry".into()),
    })
}

/// Why an item was not published.
enum Delivery {
    /// The request fails with this error.
    Failed(ApiError),
    /// The actor died on this item; the upload goes on with a new actor.
    Lost,
}

fn stream_path(path: &str) -> (&str, Option<&str>) {
    for suffix in ["/init.mp4", "/parts"] {
        if let Some(stream) = path.strip_suffix(suffix) {
            return (stream, Some(suffix));
        }
    }
    (path, None)
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
    match stream_path(path) {
        (stream, None) => upload(req, stream, payload, state).await,
        (stream, Some(s)) if s == suffix && s == "/parts" => respond(parts(req, stream, payload, state).await),
        (stream, Some(s)) if s == suffix => respond(put_init(req, stream, payload, state).await),
        _ => reject(ApiError::NotFound(
            "POST goes to /ingest/{stream} or /ingest/{stream}/parts, PUT to /ingest/{stream} or .../init.mp4",
        )),
    }
}

fn respond(r: Result<serde_json::Value, ApiError>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => reject(e),
    }
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
async fn read_body(mut payload: web::Payload, limit: usize, what: &'static str) -> Result<bytes::Bytes, ApiError> {
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
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<serde_json::Value, ApiError> {
    authorize(&req, &state)?;
    let id = StreamId::parse(stream)?;
    let body = read_body(payload, state.playlists.options().max_init_bytes, "init segment").await?;
    let init = Arc::new(Init::parse(body)?);
    let codecs = init.codecs();
    let mut addr = route(&state, &id).await?;
    deliver_one(&state, &id, &mut addr, Item::Init(init)).await?;
    Ok(serde_json::json!({ "stream": id.to_string(), "codecs": codecs }))
}

async fn parts(
    req: HttpRequest,
    stream: &str,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<serde_json::Value, ApiError> {
    authorize(&req, &state)?;
    let id = StreamId::parse(stream)?;
    let live = state.playlists.stream(&id).filter(|s| !s.edge().ended).ok_or(Error::UnknownStream)?;
    let init = live.current_init().ok_or(Error::NoInit)?;
    let max = state.playlists.options().max_part_bytes;
    let body = read_body(payload, max, "part").await?;
    let mut splitter = Splitter::with_init(max, init);
    splitter.push(&body);
    let mut addr = route(&state, &id).await?;
    let mut summary = Summary { stream: id.to_string(), ..Summary::default() };
    while let Some(item) = splitter.next_item()? {
        let item = summary.take(item);
        match deliver(&state, &id, &mut addr, item).await {
            Ok(Some(p)) => summary.add(&p),
            Ok(None) => {}
            Err(Delivery::Failed(e)) => return Err(e),
            Err(Delivery::Lost) => summary.lost_fragments += 1,
        }
    }
    if splitter.pending() > 0 {
        return Err(Error::Malformed("the body ends inside a box".into()).into());
    }
    if summary.parts == 0 {
        return Err(ApiError::BadRequest("the body holds no fragment (moof+mdat)".into()));
    }
    Ok(serde_json::to_value(summary).unwrap_or_default())
}

/// A long-running upload: every complete fragment is published as soon as its last byte is in.
async fn upload(req: HttpRequest, stream: &str, mut payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let id = match authorize(&req, &state).and_then(|()| StreamId::parse(stream).map_err(ApiError::from)) {
        Ok(id) => id,
        Err(e) => return reject(e),
    };
    let mut addr = match route(&state, &id).await {
        Ok(a) => a,
        Err(e) => return reject(e),
    };
    // The newest upload of a stream is its publisher; an older one still sending is cut off (409).
    let Some(stream) = state.playlists.stream(&id) else {
        return reject(ApiError::Unavailable("the stream went away".into()));
    };
    let lease = stream.take_over();
    let max = state.playlists.options().max_part_bytes;
    let mut splitter = Splitter::new(max);
    let mut summary = Summary { stream: id.to_string(), ..Summary::default() };
    tracing::info!(stream = %id, "ingest started");
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            // The body broke off: whatever fragment was in flight is dropped, the rest is published.
            tracing::info!(stream = %id, "ingest body broke off");
            break;
        };
        splitter.push(&chunk);
        loop {
            let item = match splitter.next_item() {
                Ok(Some(item)) => summary.take(item),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(stream = %id, error = %e, "ingest rejected");
                    return reject(e.into());
                }
            };
            if !stream.is_publisher(lease) {
                tracing::info!(stream = %id, "ingest superseded by a newer upload");
                return reject(ApiError::Superseded);
            }
            match deliver(&state, &id, &mut addr, item).await {
                Ok(Some(p)) => summary.add(&p),
                Ok(None) => {}
                Err(Delivery::Failed(e)) => {
                    tracing::warn!(stream = %id, error = %e, "ingest rejected");
                    return reject(e);
                }
                Err(Delivery::Lost) => summary.lost_fragments += 1,
            }
        }
    }
    summary.dropped_bytes = splitter.pending();
    tracing::info!(stream = %id, parts = summary.parts, dropped = summary.dropped_bytes, "ingest ended");
    HttpResponse::Ok().json(summary)
}

/// `DELETE /ingest/{stream}`: ends the stream (`EXT-X-ENDLIST`); it stays readable for the grace period.
pub async fn delete(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    end_stream(&req, &path, &state).await.unwrap_or_else(reject)
}

/// Ends `stream` for a request that carries ingest credentials: 204, or 404 if it is not live.
pub(crate) async fn end_stream(req: &HttpRequest, stream: &str, state: &AppState) -> Result<HttpResponse, ApiError> {
    authorize(req, state)?;
    let id = StreamId::parse(stream)?;
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
