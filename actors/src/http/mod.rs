//! The HTTP front end: ingest, playback, status. Every error becomes a status code in one place,
//! [`ApiError`]'s `ResponseError` impl, with a one-line JSON reason.

pub mod access;
pub mod api;
pub mod ingest;
pub mod limits;
pub mod metrics;
pub mod page;
pub mod playback;
pub mod ws;

use std::sync::Arc;

use actix::Addr;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::Service as _;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::Either;
use playlists::Playlists;

use crate::publisher::{PublishError, Publishers};
use crate::registry::Registry;
use crate::status::StatusHub;
use metrics::{Metrics, Route};

/// What every handler shares.
pub struct AppState {
    /// The data plane.
    pub playlists: Arc<Playlists>,
    /// Routes ingest to stream actors.
    pub registry: Addr<Registry>,
    /// Stream events.
    pub hub: StatusHub,
    /// Opens streams for publishing, checking the ingest credentials.
    pub publishers: Publishers,
    /// Counters and the Prometheus recorder.
    pub metrics: Arc<Metrics>,
    /// `Cache-Control` values for the engine's target duration.
    pub cache: playback::CacheHeaders,
    /// The status page, rendered once with its settings.
    pub page: page::Page,
    /// Start stream actors on the worker of the ingest that creates them ([`crate::EngineConfig`]).
    pub actors_on_ingest_workers: bool,
    /// What each client holds, against the [`limits::Limits`].
    pub clients: Arc<limits::Clients>,
    /// Playback tokens ([`access`]); off when no secret is configured.
    pub playback: crate::access::PlaybackAuth,
}

/// Every way a request can fail, and its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// From the data plane.
    #[error(transparent)]
    Data(#[from] playlists::Error),
    /// Missing or wrong ingest credentials.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The stream's actor has too many fragments queued: back off and retry.
    #[error("stream is busy: too many fragments queued, retry later")]
    Busy,
    /// No such resource.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A request the server cannot make sense of.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A newer upload took the stream over from this one.
    #[error("another upload took over this stream")]
    Superseded,
    /// An upload sent nothing for this long.
    #[error("the upload sent nothing for {0:?}")]
    BodyTimeout(std::time::Duration),
    /// A known path that does not take the request's method; the methods it takes.
    #[error("method not allowed here (allowed: {0})")]
    MethodNotAllowed(&'static str),
    /// The server is shutting down or an internal part failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Playback needs a token and the request carried none.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The playback token opens nothing here.
    #[error("forbidden: {}", .0.reason())]
    PlaybackDenied(crate::access::Denied),
    /// Over one of the [`limits::Limits`].
    #[error("{}", .0.reason())]
    Limit(limits::Refusal),
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Refused(r) => ApiError::Forbidden(r.reason()),
            PublishError::Data(e) => ApiError::Data(e),
            PublishError::Busy => ApiError::Busy,
            PublishError::Superseded => ApiError::Superseded,
            PublishError::Unavailable(why) => ApiError::Unavailable(why),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use playlists::Error as E;
        match self {
            ApiError::Data(e) => match e {
                E::InvalidStreamId(_) | E::BadRequest(_) | E::Malformed(_) | E::MalformedFlv(_) => {
                    StatusCode::BAD_REQUEST
                }
                E::UnknownStream | E::NotFound => StatusCode::NOT_FOUND,
                E::TooManyStreams(_) | E::Timeout(_) | E::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                E::StreamEnded => StatusCode::CONFLICT,
                E::NoInit => StatusCode::PRECONDITION_FAILED,
                E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                E::NotFmp4(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                E::InvalidOptions(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Forbidden(_) | ApiError::PlaybackDenied(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Superseded => StatusCode::CONFLICT,
            ApiError::Busy | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Limit(r) => {
                use limits::Refusal as R;
                match r {
                    R::Connections | R::ConnectionsPerAddr => StatusCode::SERVICE_UNAVAILABLE,
                    R::HeldPerAddr | R::WsPerAddr => StatusCode::TOO_MANY_REQUESTS,
                    R::Uri | R::Query => StatusCode::URI_TOO_LONG,
                    R::Headers => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                }
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        let mut resp = HttpResponse::build(self.status_code())
            .content_type("application/json")
            // Errors, 503 above all, must never be cached (checklist item 61).
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body);
        match self {
            ApiError::Busy | ApiError::Limit(limits::Refusal::HeldPerAddr | limits::Refusal::WsPerAddr) => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::MethodNotAllowed(allow) => {
                resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            // RFC 6750 section 3.
            ApiError::Unauthorized(_) => {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::PlaybackDenied(_) => {
                let value = HeaderValue::from_static("Bearer error=\"invalid_token\"");
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
            _ => {}
        }
        resp
    }
}

/// Methods and headers a cross-origin player may use (checklist item 64: `Range` and the CMCD headers).
const ALLOW_HEADERS: &str = "Range, Authorization, Content-Type, CMCD-Request, CMCD-Object, CMCD-Status, CMCD-Session";

/// Answers a CORS preflight.
async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS, POST, PUT, DELETE"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}

/// `OPTIONS` anywhere is a preflight; a method that a known path does not take is 405 with `Allow`; anything
/// else no route took is 404.
async fn fallback(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.method() == Method::OPTIONS {
        return Ok(preflight().await);
    }
    match allowed(req.path()) {
        Some(allow) => Err(ApiError::MethodNotAllowed(allow)),
        None => api::not_found().await,
    }
}

/// The methods a known path takes, for `Allow`.
fn allowed(path: &str) -> Option<&'static str> {
    match path {
        "/api/streams" | "/ws" | "/metrics" | "/" | "/healthz" => Some("GET, OPTIONS"),
        p if p.starts_with("/api/streams/") => Some("GET, DELETE, OPTIONS"),
        p if p.starts_with("/ingest/") => Some("POST, PUT, DELETE, OPTIONS"),
        p if p.starts_with("/live/") => Some("GET, HEAD, OPTIONS"),
        _ => None,
    }
}

/// Everything under `/live`: `GET`/`HEAD` of a resource go to playback (through the token check of [`access`] when
/// playback secrets are configured), `OPTIONS` is a preflight (never needing a token), other methods 405.
///
/// A scope with a static prefix instead of a `/live/{path:.+}` route: actix matches a dynamic pattern with a
/// regex on every request, which was the largest cost in user space of serving a part or a playlist.
async fn live(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let method = req.method();
    if method == Method::OPTIONS {
        return Ok(preflight().await);
    }
    // What `/live/{path:.+}` captured: the rest after `/live/`, percent-decoded as `web::Path` decodes it.
    let tail = req.match_info().unprocessed().strip_prefix('/').unwrap_or("");
    if tail.is_empty() {
        return api::not_found().await;
    }
    if !(method == Method::GET || method == Method::HEAD) {
        return Err(ApiError::MethodNotAllowed("GET, HEAD, OPTIONS"));
    }
    let decoded;
    let path = if tail.contains('%') {
        decoded = percent_decode(tail);
        decoded.as_str()
    } else {
        tail
    };
    if state.playback.is_on() {
        return access::serve(&req, path, &state).await;
    }
    playback::serve(&req, path, &state).await
}

/// `%XX` sequences decoded (invalid UTF-8 replaced), as the path extractor does.
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response body that keeps the request's unread body alive until the answer is out.
///
/// actix-http drains a request body that the handler dropped, when it is chunked, for as long as the client sends
/// it: a refused encoder would stream into the void for hours, and a client that announces a chunked body and
/// never sends it would hold its connection forever. A body still unread when the answer ends makes it close the
/// connection instead, after its short linger (`client_disconnect_timeout`, 1 s by default) that lets a client
/// that reads get the answer before the close resets it.
pub(crate) struct KeepUnread<B> {
    body: B,
    _unread: actix_web::dev::Payload,
}

impl<B> KeepUnread<B> {
    /// `body`, holding on to `unread` until it has been sent.
    pub(crate) fn new(body: B, unread: actix_web::dev::Payload) -> Self {
        Self { body, _unread: unread }
    }
}

impl<B: MessageBody + Unpin> MessageBody for KeepUnread<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<bytes::Bytes, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Whether the request announces a chunked body.
fn chunked(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|c| c.trim().eq_ignore_ascii_case("chunked")))
}

/// Mounts every route: `App::new().configure(|cfg| http::configure(cfg, state))`.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    let cors = DefaultHeaders::new()
        .add((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .add((header::ACCESS_CONTROL_EXPOSE_HEADERS, "Age, Content-Length, Content-Range, ETag"));
    let counted = Arc::clone(&state.metrics);
    let clients = Arc::clone(&state.clients);
    // Static prefixes first (no regex on the read path); `OPTIONS` falls through every method guard to a
    // preflight.
    cfg.app_data(state).service(
        web::scope("")
            // The size limits, before any routing (inside the CORS headers, so that a browser can read the
            // refusal). A refused request's body is kept unread, so its connection is closed after the answer.
            .wrap_fn(move |mut req, srv| match clients.check_request(req.uri(), req.headers()) {
                Ok(()) => Either::Left(srv.call(req)),
                Err(refusal) => {
                    let unread = req.take_payload();
                    let resp = req
                        .error_response(ApiError::Limit(refusal))
                        .map_body(|_, body| KeepUnread::new(body, unread).boxed());
                    Either::Right(std::future::ready(Ok(resp)))
                }
            })
            .wrap(cors)
            // Counts every answer by route and status (the error responses too: they are built by then).
            .wrap_fn(move |req, srv| {
                let counting = Route::of(req.path()).map(|route| (route, Arc::clone(&counted)));
                let answer = srv.call(req);
                async move {
                    let res = answer.await?;
                    if let Some((route, m)) = counting {
                        m.count(route, res.status(), metrics::body_bytes(res.response().body()));
                    }
                    Ok(res)
                }
            })
            // Only ingest reads request bodies, and it holds on to what it leaves unread itself. Anywhere else a
            // chunked body is kept unread with the answer, so the connection is closed after it ([`KeepUnread`]).
            .wrap_fn(|mut req, srv| {
                let unread =
                    (chunked(req.headers()) && !req.path().starts_with("/ingest/")).then(|| req.take_payload());
                let answer = srv.call(req);
                async move {
                    let res = answer.await?;
                    Ok(match unread {
                        Some(unread) => res.map_body(|_, body| KeepUnread::new(body, unread).boxed()),
                        None => res.map_into_boxed_body(),
                    })
                }
            })
            .service(web::scope("/live").default_service(web::to(live)))
            .service(
                web::resource("/ingest/{path:.+}")
                    .route(web::put().to(ingest::put))
                    .route(web::post().to(ingest::post))
                    .route(web::delete().to(ingest::delete))
                    .default_service(web::to(fallback)),
            )
            .route("/api/streams", web::get().to(api::streams))
            .route("/api/streams/{path:.+}", web::get().to(api::stream))
            .route("/api/streams/{path:.+}", web::delete().to(api::end))
            .route("/ws", web::get().to(ws::connect))
            .route("/metrics", web::get().to(metrics::metrics))
            .route("/", web::get().to(page::index))
            .route("/healthz", web::get().to(api::healthz))
            .default_service(web::to(fallback)),
    );
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding_matches_the_path_extractor() {
        assert_eq!(percent_decode("a%2Fb/index.m3u8"), "a/b/index.m3u8");
        assert_eq!(percent_decode("a%2fb%25"), "a/b%");
        assert_eq!(percent_decode("%zz%2"), "%zz%2");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
    }
}
