//! The JSON status API: `GET /api/streams`, `GET /api/streams/{stream}`, `DELETE /api/streams/{stream}`,
//! `GET /healthz`.

use actix_web::{web, HttpRequest, HttpResponse};
use playlists::playlists::Stream;
use playlists::StreamId;
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{ApiError, AppState};

/// One stream's status, as the API and the WebSocket snapshot show it.
#[derive(Debug, Serialize)]
pub struct StreamStatus {
    /// The stream id.
    pub stream: String,
    /// `live` or `ended`.
    pub state: &'static str,
    /// The `CODECS` of its init segment.
    pub codecs: Option<String>,
    /// `WIDTHxHEIGHT` of the video track.
    pub resolution: Option<String>,
    /// The name of the newest init segment (`init-{hash}.mp4`, as `EXT-X-MAP` names it), once there is one.
    pub init: Option<String>,
    /// `EXT-X-TARGETDURATION`, seconds.
    pub target_duration: u32,
    /// `PART-TARGET`, seconds, once known.
    pub part_target: Option<f64>,
    /// MSN of the newest part.
    pub msn: Option<u64>,
    /// Index of the newest part.
    pub part: Option<u32>,
    /// MSN of the newest complete segment.
    pub last_segment: Option<u64>,
    /// Peak segment bit rate, bits per second.
    pub peak_bandwidth: u64,
    /// Bit rate over all complete segments, bits per second.
    pub average_bandwidth: u64,
    /// Video frames per second, once a video fragment arrived.
    pub frame_rate: Option<f64>,
    /// The audio track's language (RFC 5646), when its init names one.
    pub language: Option<String>,
    /// The audio track's channel count.
    pub channels: Option<u16>,
    /// Unix time, ms, of the first part.
    pub started_at: Option<u64>,
    /// Unix time, ms, of the newest part.
    pub last_part_at: Option<u64>,
    /// Parts published.
    pub parts: u64,
    /// Segments completed.
    pub segments: u64,
    /// Bytes published.
    pub bytes: u64,
    /// Playlist requests answered.
    pub playlist_requests: u64,
    /// Part, segment and init requests answered.
    pub media_requests: u64,
    /// Body bytes served.
    pub bytes_served: u64,
    /// Requests held now, waiting for a part.
    pub held_requests: u64,
}

fn unix_ms(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64)
}

impl StreamStatus {
    /// The status of `stream` now.
    pub fn of(stream: &Stream) -> Self {
        let info = stream.info();
        let reads = stream.read_stats().counts();
        Self {
            stream: stream.id().to_string(),
            state: if info.edge.ended { "ended" } else { "live" },
            codecs: info.codecs,
            resolution: info.resolution.map(|(w, h)| format!("{w}x{h}")),
            init: info.init.map(|n| n.to_string()),
            target_duration: info.target_duration,
            part_target: info.part_target.map(|d| d.as_secs_f64()),
            msn: info.edge.last_part.map(|p| p.msn),
            part: info.edge.last_part.map(|p| p.part),
            last_segment: info.edge.last_segment,
            peak_bandwidth: info.peak_bandwidth,
            average_bandwidth: info.average_bandwidth,
            frame_rate: info.frame_rate.map(|f| (f * 1000.0).round() / 1000.0),
            language: info.language,
            channels: info.channels,
            started_at: unix_ms(info.started_at),
            last_part_at: unix_ms(info.last_part_at),
            parts: info.parts,
            segments: info.segments,
            bytes: info.bytes,
            playlist_requests: reads.playlist_requests,
            media_requests: reads.media_requests,
            bytes_served: reads.bytes_served,
            held_requests: reads.held,
        }
    }
}

/// The status of every stream that `wanted` accepts, sorted by id.
pub fn snapshot(playlists: &playlists::Playlists, wanted: impl Fn(&str) -> bool) -> Vec<StreamStatus> {
    let mut all: Vec<StreamStatus> =
        playlists.streams().iter().filter(|s| wanted(s.id().as_str())).map(|s| StreamStatus::of(s)).collect();
    all.sort_by(|a, b| a.stream.cmp(&b.stream));
    all
}

/// `GET /api/streams`.
pub async fn streams(state: web::Data<AppState>) -> HttpResponse {
    let all = snapshot(&state.playlists, |_| true);
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(serde_json::json!({ "streams": all }))
}

/// `DELETE /api/streams/{stream}`: ends the stream, with the ingest credentials (204, or 404 if not live).
pub async fn end(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::ingest::end_stream(&req, &path, &state).await
}

/// `GET /api/streams/{stream}`.
pub async fn stream(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = StreamId::parse(&path)?;
    let stream = state.playlists.stream(&id).ok_or(ApiError::NotFound("no such stream"))?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(StreamStatus::of(&stream)))
}

/// `GET /healthz`.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "streams": state.playlists.len() }))
}

/// Anything else: 404 with a JSON reason.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route"))
}
