//! `GET /metrics`: Prometheus text.
//!
//! Each [`Metrics`] owns its own `PrometheusRecorder` instead of installing one as the process-wide recorder:
//! several engines may run in one process (every integration test starts one), and a global recorder would mix
//! their numbers, while `metrics::with_local_recorder` only covers code run inside its closure (not the stream
//! actors or the request handlers). Handles are registered on the recorder directly through the
//! [`metrics::Recorder`] trait, and the `metrics` macros are not used.
//!
//! The read path never touches the recorder: requests are counted in plain atomics (a table indexed by route and
//! status) and copied into the recorder when `/metrics` is scraped. Per-stream ingest counts are the data plane's
//! own (`StreamInfo`), written out at the scrape for the streams that exist then, so a removed stream's series goes
//! with it. The hold-release histogram is recorded when a held request is answered.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use metrics::{Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use playlists::Playlists;

use super::AppState;

/// Per-stream counters of what was ingested.
const INGESTED_PARTS: &str = "playlists_parts_ingested_total";
const INGESTED_BYTES: &str = "playlists_bytes_ingested_total";

/// Histogram of the time from a part's publication to a held request being answered.
const RELEASE: &str = "playlists_hold_release_seconds";
/// From well under a millisecond (the normal case: one watch wake-up) to a second (a starved worker).
const RELEASE_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// The routes requests are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/live/{stream}/index.m3u8`.
    Playlist,
    /// `/live/{stream}/p{msn}.{part}.mp4`.
    Part,
    /// `/live/{stream}/s{msn}.mp4`.
    Segment,
    /// `/live/{stream}/init-{hash}.mp4`, and `init.mp4` (the newest init).
    Init,
    /// `/live/{group}/master.m3u8`.
    Master,
    /// `/api/...`.
    Api,
    /// `/ingest/...`.
    Ingest,
}

impl Route {
    const ALL: [Route; 7] =
        [Route::Playlist, Route::Part, Route::Segment, Route::Init, Route::Master, Route::Api, Route::Ingest];

    /// The `route` label.
    pub fn label(self) -> &'static str {
        match self {
            Route::Playlist => "playlist",
            Route::Part => "part",
            Route::Segment => "segment",
            Route::Init => "init",
            Route::Master => "master",
            Route::Api => "api",
            Route::Ingest => "ingest",
        }
    }

    /// The route of a request path, from its shape alone (no allocation): other paths are not counted.
    pub fn of(path: &str) -> Option<Route> {
        if let Some(rest) = path.strip_prefix("/live/") {
            let file = rest.rsplit('/').next().unwrap_or(rest);
            return Some(match file {
                "index.m3u8" => Route::Playlist,
                "master.m3u8" => Route::Master,
                f if f.starts_with("init") => Route::Init,
                f if f.starts_with('p') => Route::Part,
                _ => Route::Segment,
            });
        }
        if path.starts_with("/api/") {
            Some(Route::Api)
        } else if path.starts_with("/ingest/") {
            Some(Route::Ingest)
        } else {
            None
        }
    }
}

/// Status codes 100 to 599, each with its own counter per route.
const STATUSES: usize = 500;

/// The engine's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// `[route][status - 100]`: requests answered.
    requests: Box<[AtomicU64]>,
    /// `[route]`: body bytes answered.
    served: [AtomicU64; Route::ALL.len()],
    release: Histogram,
    ws_sessions: AtomicU64,
    ws_lagged: AtomicU64,
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics with its own recorder.
    pub fn new() -> Self {
        // This fails only on an empty bucket list, and ours is a non-empty constant; the fallback renders a summary.
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(RELEASE.into()), RELEASE_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        let release = recorder.register_histogram(&Key::from_static_name(RELEASE), &METADATA);
        Self {
            recorder,
            handle,
            requests: (0..Route::ALL.len() * STATUSES).map(|_| AtomicU64::new(0)).collect(),
            served: Default::default(),
            release,
            ws_sessions: AtomicU64::new(0),
            ws_lagged: AtomicU64::new(0),
        }
    }

    /// Counts one answer on `route` (a few relaxed adds: this runs for every request).
    pub fn count(&self, route: Route, status: StatusCode, bytes: u64) {
        let r = route as usize;
        let s = usize::from(status.as_u16()).clamp(100, 100 + STATUSES - 1) - 100;
        self.requests[r * STATUSES + s].fetch_add(1, Ordering::Relaxed);
        self.served[r].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records that a held request was answered `secs` after the publication that released it.
    pub fn observe_release(&self, secs: f64) {
        self.release.record(secs);
    }

    /// A WebSocket session opened (`true`) or closed.
    pub fn ws_session(&self, open: bool) {
        if open {
            self.ws_sessions.fetch_add(1, Ordering::Relaxed);
        } else {
            self.ws_sessions.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A WebSocket session fell behind the events and was sent a fresh snapshot.
    pub fn ws_lagged(&self) {
        self.ws_lagged.fetch_add(1, Ordering::Relaxed);
    }

    /// Drains the histogram's buffered samples into its buckets. Without an exporter task nothing else does, and
    /// the samples would pile up between scrapes; the stats sampler calls this every second.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>, value: f64) {
        self.recorder.register_gauge(&Key::from_parts(name, labels), &METADATA).set(value);
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>, value: u64) {
        self.recorder.register_counter(&Key::from_parts(name, labels), &METADATA).absolute(value);
    }

    /// The Prometheus text: the atomics copied into the recorder, then rendered.
    pub fn render(&self, playlists: &Playlists) -> String {
        let (mut live, mut ended, mut held) = (0u64, 0u64, 0u64);
        // Per-stream series are written here from the streams there are now, not kept in the recorder, which
        // would keep a series for every stream id ever seen.
        let mut per_stream = String::new();
        let (mut parts, mut bytes) = (String::new(), String::new());
        for stream in playlists.streams() {
            if stream.edge().ended {
                ended += 1;
            } else {
                live += 1;
            }
            held += stream.read_stats().counts().held;
            let info = stream.info();
            // Stream ids are `[A-Za-z0-9_-]` and `/`: nothing to escape in a label value.
            let _ = writeln!(parts, "{INGESTED_PARTS}{{stream=\"{}\"}} {}", stream.id(), info.parts);
            let _ = writeln!(bytes, "{INGESTED_BYTES}{{stream=\"{}\"}} {}", stream.id(), info.bytes);
        }
        if !parts.is_empty() {
            let _ = writeln!(per_stream, "# HELP {INGESTED_PARTS} Parts ingested, per stream, while it exists.");
            let _ = write!(per_stream, "# TYPE {INGESTED_PARTS} counter\n{parts}");
            let _ = writeln!(per_stream, "# HELP {INGESTED_BYTES} Bytes of the parts ingested, per stream.");
            let _ = write!(per_stream, "# TYPE {INGESTED_BYTES} counter\n{bytes}");
        }
        self.gauge("playlists_streams", vec![Label::new("state", "live")], live as f64);
        self.gauge("playlists_streams", vec![Label::new("state", "ended")], ended as f64);
        self.gauge("playlists_held_requests", Vec::new(), held as f64);
        self.gauge("playlists_ws_sessions", Vec::new(), self.ws_sessions.load(Ordering::Relaxed) as f64);
        self.counter("playlists_ws_lagged_total", Vec::new(), self.ws_lagged.load(Ordering::Relaxed));
        for route in Route::ALL {
            let r = route as usize;
            for s in 0..STATUSES {
                let n = self.requests[r * STATUSES + s].load(Ordering::Relaxed);
                if n > 0 {
                    let labels = vec![Label::new("route", route.label()), Label::new("status", (s + 100).to_string())];
                    self.counter("playlists_requests_total", labels, n);
                }
            }
            let bytes = self.served[r].load(Ordering::Relaxed);
            if bytes > 0 {
                self.counter("playlists_bytes_served_total", vec![Label::new("route", route.label())], bytes);
            }
        }
        let mut text = self.handle.render();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&per_stream);
        text
    }
}

/// `GET /metrics`.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .insert_header(("Cache-Control", "no-store"))
        .body(state.metrics.render(&state.playlists))
}

/// The body size of a response, when known up front (ours always are, except a WebSocket or a streamed error).
pub fn body_bytes<B: MessageBody>(body: &B) -> u64 {
    match body.size() {
        BodySize::Sized(n) => n,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_path_shape() {
        assert_eq!(Route::of("/live/a/index.m3u8"), Some(Route::Playlist));
        assert_eq!(Route::of("/live/g/a/p3.1.mp4"), Some(Route::Part));
        assert_eq!(Route::of("/live/a/s3.mp4"), Some(Route::Segment));
        assert_eq!(Route::of("/live/a/init.mp4"), Some(Route::Init));
        assert_eq!(Route::of("/live/a/init2.mp4"), Some(Route::Init));
        assert_eq!(Route::of("/live/g/master.m3u8"), Some(Route::Master));
        assert_eq!(Route::of("/api/streams"), Some(Route::Api));
        assert_eq!(Route::of("/ingest/a"), Some(Route::Ingest));
        assert_eq!(Route::of("/metrics"), None);
        assert_eq!(Route::of("/"), None);
    }

    #[test]
    fn counts_render_with_labels() {
        let m = Metrics::new();
        m.count(Route::Part, StatusCode::OK, 10);
        m.count(Route::Part, StatusCode::OK, 5);
        m.count(Route::Playlist, StatusCode::SERVICE_UNAVAILABLE, 0);
        let playlists = Playlists::new(playlists::Options::default()).unwrap();
        let text = m.render(&playlists);
        assert!(text.contains("playlists_requests_total{route=\"part\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("playlists_requests_total{route=\"playlist\",status=\"503\"} 1"), "{text}");
        assert!(text.contains("playlists_bytes_served_total{route=\"part\"} 15"), "{text}");
    }
}
