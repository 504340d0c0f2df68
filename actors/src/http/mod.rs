//! The HTTP front end: ingest, playback, status. Every error becomes a status code in one place,
//! [`ApiError`]'s `ResponseError` impl, with a one-line JSON reason.

pub mod api;
pub mod ingest;
pub mod metrics;
pub mod page;
pub mod playback;
pub mod ws;

use std::sync::Arc;

use actix::Addr;
use actix_web::dev::Service as _;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{guard, web, HttpResponse, ResponseError};
use playlists::Playlists;

use crate::registry::Registry;
use crate::status::StatusHub;
use metrics::{Metrics, Route};

/// Who may ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestAuth {
    /// Accepted bearer tokens. Empty: ingest is accepted only from loopback addresses.
    pub tokens: Vec<String>,
}

/// What every handler shares.
pub struct AppState {
    /// The data plane.
    pub playlists: Arc<Playlists>,
    /// Routes ingest to stream actors.
    pub registry: Addr<Registry>,
    /// Stream events.
    pub hub: StatusHub,
    /// Ingest credentials.
    pub auth: IngestAuth,
    /// Counters and the Prometheus recorder.
    pub metrics: Arc<Metrics>,
    /// The status page, rendered once with its settings.
    pub page: page::Page,
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
    /// The server is shutting down or an internal part failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use playlists::Error as E;
        match self {
            ApiError::Data(e) => match e {
                E::InvalidStreamId(_) | E::BadRequest(_) | E::Malformed(_) => StatusCode::BAD_REQUEST,
                E::UnknownStream | E::NotFound => StatusCode::NOT_FOUND,
                E::TooManyStreams(_) | E::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
                E::StreamEnded => StatusCode::CONFLICT,
                E::NoInit => StatusCode::PRECONDITION_FAILED,
                E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                E::NotFmp4(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                E::InvalidOptions(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Superseded => StatusCode::CONFLICT,
            ApiError::Busy | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        let mut resp = HttpResponse::build(self.status_code())
            .content_type("application/json")
            // Errors, 503 above all, must never be cached (checklist item 61).
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body);
        if matches!(self, ApiError::Busy) {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
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

/// Mounts every route: `App::new().configure(|cfg| http::configure(cfg, state))`.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    let cors = DefaultHeaders::new()
        .add((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .add((header::ACCESS_CONTROL_EXPOSE_HEADERS, "Age, Content-Length, Content-Range, ETag"));
    let get_or_head = || guard::Any(guard::Get()).or(guard::Head());
    let counted = Arc::clone(&state.metrics);
    cfg.app_data(state).service(
        web::scope("")
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
            .route("/{any:.*}", web::method(actix_web::http::Method::OPTIONS).to(preflight))
            .route("/live/{path:.+}", web::route().guard(get_or_head()).to(playback::serve))
            .route("/ingest/{path:.+}", web::put().to(ingest::put))
            .route("/ingest/{path:.+}", web::post().to(ingest::post))
            .route("/ingest/{path:.+}", web::delete().to(ingest::delete))
            .route("/api/streams", web::get().to(api::streams))
            .route("/api/streams/{path:.+}", web::get().to(api::stream))
            .route("/api/streams/{path:.+}", web::delete().to(api::end))
            .route("/ws", web::get().to(ws::connect))
            .route("/metrics", web::get().to(metrics::metrics))
            .route("/", web::get().to(page::index))
            .route("/healthz", web::get().to(api::healthz))
            .default_service(web::to(api::not_found)),
    );
}
