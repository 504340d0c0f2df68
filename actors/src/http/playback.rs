//! Playback: playlists, parts, segments, init, multivariant playlists, read straight from the shared caches.
//!
//! No request goes through an actor. A blocking playlist request waits on the stream's position watch and is
//! answered with the `Bytes` rendered once when the part was published (already gzipped if the player accepts
//! it); the hinted next part is held the same way.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use playlists::playlists::Stream;
use playlists::{Error, InitName, PlaylistRequest, Position, Skip, StreamId};

use super::{ApiError, AppState};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const MEDIA_TYPE: &str = "video/mp4";
/// Parts and segments never change under their URL for the life of a stream, nor inits under theirs ever (they are
/// named by their bytes, see [`InitName`]).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// What a path under `/live/` names.
#[derive(Debug, PartialEq, Eq)]
#[doc(hidden)] // public for the fuzz targets in fuzz/ only
pub enum Resource {
    Playlist,
    Master,
    /// `init-{hash}.mp4`, as `EXT-X-MAP` names it.
    Init(InitName),
    /// `init.mp4`: the stream's newest init, for tools that guess the name (see [`CacheHeaders`]).
    CurrentInit,
    Part(Position),
    Segment(u64),
}

fn parse_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    // Decimal digits only: no sign, no leading '+', bounded length.
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

#[doc(hidden)] // public for the fuzz targets in fuzz/ only
pub fn parse_resource(file: &str) -> Option<Resource> {
    match file {
        "index.m3u8" => return Some(Resource::Playlist),
        "master.m3u8" => return Some(Resource::Master),
        "init.mp4" => return Some(Resource::CurrentInit),
        _ => {}
    }
    if file.starts_with("init") {
        // The numbered names of earlier versions (`init1.mp4`, ...) are gone with the server that made them.
        return InitName::parse(file).map(Resource::Init);
    }
    let stem = file.strip_suffix(".mp4")?;
    if let Some(p) = stem.strip_prefix('p') {
        let (msn, part) = p.split_once('.')?;
        return Some(Resource::Part(Position::new(parse_number(msn)?, parse_number(part)?)));
    }
    stem.strip_prefix('s').and_then(parse_number).map(Resource::Segment)
}

fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers().get_all(header::ACCEPT_ENCODING).filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|enc| {
            let mut it = enc.split(';');
            let name = it.next().unwrap_or("").trim();
            let refused = it.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

/// `GET|HEAD /live/{path}`, `path` being `{stream}/{file}`.
pub async fn serve(req: &HttpRequest, path: &str, state: &AppState) -> Result<HttpResponse, ApiError> {
    let (stream, file) = path.rsplit_once('/').ok_or(ApiError::NotFound("no such resource"))?;
    let resource = parse_resource(file).ok_or(ApiError::NotFound("no such resource"))?;
    if resource == Resource::Master {
        return master(req, stream, state).await;
    }
    let id = StreamId::parse(stream)?;
    let stream = state.playlists.stream(&id).ok_or(ApiError::NotFound("no such stream"))?;
    let reads = stream.read_stats();
    if resource == Resource::Playlist {
        let answer = playlist(req, &stream, state).await;
        reads.playlist_served(answer.as_ref().map_or(0, |(_, len)| *len));
        return answer.map(|(resp, _)| resp);
    }
    let answer = media_resource(req, &stream, state, resource).await;
    reads.media_served(answer.as_ref().map_or(0, |(_, len)| *len));
    answer.map(|(resp, _)| resp)
}

/// Init, part or segment, with the body length for the stream's counters.
async fn media_resource(
    req: &HttpRequest,
    stream: &Arc<Stream>,
    state: &AppState,
    resource: Resource,
) -> Result<(HttpResponse, u64), ApiError> {
    match resource {
        Resource::Init(name) => {
            let init = stream.init_named(name).ok_or(ApiError::NotFound("no such init segment"))?;
            Ok(media(req, init_etag(name), HeaderValue::from_static(IMMUTABLE), vec![init]))
        }
        Resource::CurrentInit => {
            let (name, init) = stream.init().ok_or(ApiError::NotFound("no init segment yet"))?;
            let (mut resp, len) = media(req, init_etag(name), state.cache.current_init.clone(), vec![init]);
            // Where the same bytes live for good (relative to this URL).
            if let Ok(location) = HeaderValue::from_str(&name.to_string()) {
                resp.headers_mut().insert(header::CONTENT_LOCATION, location);
            }
            Ok((resp, len))
        }
        Resource::Part(position) => {
            let answer = held(req, state, stream.part_answer(position, stream.blocking_timeout())).await??;
            if let Some(after) = answer.released_after {
                state.metrics.observe_release(after.as_secs_f64());
            }
            Ok(media(
                req,
                format!("\"{}-p{position}\"", stream.generation()),
                HeaderValue::from_static(IMMUTABLE),
                vec![answer.value],
            ))
        }
        Resource::Segment(msn) => {
            let segment = stream.segment(msn).ok_or(ApiError::NotFound("segment not available"))?;
            Ok(media(
                req,
                format!("\"{}-s{msn}\"", stream.generation()),
                HeaderValue::from_static(IMMUTABLE),
                segment.parts,
            ))
        }
        Resource::Playlist | Resource::Master => Err(ApiError::NotFound("no such resource")),
    }
}

/// Waits for `answer`, counting the request against its address's held requests while it waits (one answered at
/// once is not held, and not counted): over the limit, it is refused with 429 instead.
async fn held<T>(req: &HttpRequest, state: &AppState, answer: impl Future<Output = T>) -> Result<T, ApiError> {
    let mut answer = std::pin::pin!(answer);
    if let Poll::Ready(now) = std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await {
        return Ok(now);
    }
    let _slot = state.clients.hold(req.peer_addr().map(|a| a.ip())).map_err(ApiError::Limit)?;
    Ok(answer.await)
}

/// An init's ETag: its name's bits, which follow from its bytes, so the same for every URL and stream serving them.
fn init_etag(name: InitName) -> String {
    format!("\"i{:016x}\"", name.bits())
}

/// A playlist, with the body length for the stream's counters.
async fn playlist(req: &HttpRequest, stream: &Arc<Stream>, state: &AppState) -> Result<(HttpResponse, u64), ApiError> {
    let request = PlaylistRequest::parse(req.query_string())?;
    // What the answer needs from the request is read before the request is held, so that once woken it only
    // picks its body: a part's held requests are answered one after another, and each one's work delays the rest.
    let gzip = accepts_gzip(req);
    let cache = if request.is_blocking() { &state.cache.blocking } else { &state.cache.plain };
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PLAYLIST_TYPE)))
        .insert_header((header::CACHE_CONTROL, cache.clone()))
        .insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding")));
    if gzip {
        resp.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
    }
    let answer = match held(req, state, stream.playlist_answer(&request, stream.blocking_timeout())).await? {
        Ok(a) => a,
        Err(Error::Timeout(_)) => {
            return Err(ApiError::Unavailable("the requested part did not arrive in time".into()));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(after) = answer.released_after {
        state.metrics.observe_release(after.as_secs_f64());
    }
    let rendered = answer.value;
    // Checklist item 47: once ended, `_HLS_skip` is ignored.
    let delta = request.skip != Skip::No && !rendered.ended;
    let body = rendered.body(delta, gzip).clone();
    let len = body.len() as u64;
    if req.version() == actix_web::http::Version::HTTP_2 && body.len() <= H2_SMALL_BODY {
        return Ok((resp.body(h2_small(body)), len));
    }
    Ok((resp.body(body), len))
}

/// The h2 crate (under actix-http) writes a DATA frame's payload of 256 bytes or more from the body's own `Bytes`
/// instead of copying it into its write buffer, and must then write out everything buffered before it takes
/// another frame: one `writev` and TLS record per such frame. For a small body (a gzipped playlist is ~600 B) that
/// is one system call per response, where copying lets the answers to a connection's concurrent requests go out
/// in one write (BENCHMARKS.md, HTTPS). So a small body is given to it in pieces under 256 bytes, slices of the same
/// `Bytes`, which it copies into its buffer; a large one stays whole.
const H2_SMALL_BODY: usize = 4096;
const H2_COPIED_PIECE: usize = 255;

fn h2_small(body: Bytes) -> SizedStream<impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>>> {
    let len = body.len() as u64;
    let pieces = (0..body.len()).step_by(H2_COPIED_PIECE).map(move |at| {
        let end = (at + H2_COPIED_PIECE).min(body.len());
        Ok(body.slice(at..end))
    });
    SizedStream::new(len, futures_util::stream::iter(pieces))
}

/// The `Cache-Control` values that follow from the target duration, which every stream of an engine shares: made
/// once, not formatted on the path of every playlist request.
pub struct CacheHeaders {
    /// A blocking answer names the part it waited for in its URL: 6 × target duration (DESIGN.md section 3).
    blocking: HeaderValue,
    /// A plain reload: half a target duration.
    plain: HeaderValue,
    /// `init.mp4`, the stream's newest init under a name that is not its own: one target duration. Players take
    /// the init's name from `EXT-X-MAP` (`init-{hash}.mp4`, immutable); `init.mp4` is answered for tools that guess
    /// it, and changes whenever the encoder sends another init or the stream is re-created.
    current_init: HeaderValue,
}

impl CacheHeaders {
    /// The values for a target duration of `td` seconds.
    pub fn new(td: u64) -> Self {
        let max_age = |secs: u64| {
            HeaderValue::from_str(&format!("public, max-age={secs}")).unwrap_or(HeaderValue::from_static("no-store"))
        };
        Self { blocking: max_age(6 * td), plain: max_age((td / 2).max(1)), current_init: max_age(td) }
    }
}

/// Whether the request's `If-None-Match` names `etag` (weakly: `W/` is ignored, as RFC 9110 has it for GET).
fn etag_matches(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "*" || v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag))
}

/// A media response from shared `Bytes`: ETag / If-None-Match, and the parts sent one after another without
/// copying. Also the body length (0 for a 304).
fn media(req: &HttpRequest, etag: String, cache: HeaderValue, parts: Vec<Bytes>) -> (HttpResponse, u64) {
    let matches = etag_matches(req, &etag);
    let mut resp = if matches { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    resp.insert_header((header::ETAG, etag)).insert_header((header::CACHE_CONTROL, cache));
    if matches {
        return (resp.finish(), 0);
    }
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE)));
    let len: usize = parts.iter().map(Bytes::len).sum();
    if parts.len() == 1 {
        return (resp.body(parts.into_iter().next().unwrap_or_default()), len as u64);
    }
    let body = futures_util::stream::iter(parts.into_iter().map(Ok::<_, std::convert::Infallible>));
    (resp.body(SizedStream::new(len as u64, body)), len as u64)
}

/// `GET /live/{group}/master.m3u8`. Held, like a blocking playlist request, while renditions the group has
/// announced (started) have no playlist yet, up to 3 × the target duration: a player that asks as the ladder comes
/// up gets every rendition, not only the first to publish. Past that bound it gets the renditions that are ready,
/// or 503 when none is. Cached for half a target duration like a plain reload, with an ETag and gzip.
async fn master(req: &HttpRequest, group: &str, state: &AppState) -> Result<HttpResponse, ApiError> {
    if group.contains('/') {
        return Err(ApiError::NotFound("master playlists are served per group: /live/{group}/master.m3u8"));
    }
    let wait = async {
        let mut deadline = None;
        loop {
            let now = state.playlists.master(group).ok_or(ApiError::NotFound("no such group"))?;
            let Some(stream) = now.waiting.first() else {
                return now.playlist.ok_or(ApiError::NotFound("no renditions in this group"));
            };
            let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + stream.blocking_timeout());
            let mut edge = stream.subscribe();
            let arrived =
                tokio::time::timeout_at(deadline, edge.wait_for(|e| e.has_playlist() || e.ended || e.removed)).await;
            if arrived.is_err() {
                let late = state.playlists.master(group).and_then(|m| m.playlist);
                return late.ok_or_else(|| {
                    ApiError::Unavailable("no rendition of this group has published a playlist yet".into())
                });
            }
        }
    };
    let playlist = held(req, state, wait).await??;
    let matches = etag_matches(req, &playlist.etag);
    let mut resp = if matches { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    resp.insert_header((header::ETAG, playlist.etag.clone()))
        .insert_header((header::CACHE_CONTROL, state.cache.plain.clone()))
        .insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding")));
    if matches {
        return Ok(resp.finish());
    }
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PLAYLIST_TYPE)));
    if accepts_gzip(req) {
        resp.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        return Ok(resp.body(playlist.gzip.clone()));
    }
    Ok(resp.body(playlist.text.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_parsed_strictly() {
        assert_eq!(parse_resource("index.m3u8"), Some(Resource::Playlist));
        assert_eq!(parse_resource("init.mp4"), Some(Resource::CurrentInit));
        let name = InitName::of(b"init");
        assert_eq!(parse_resource(&name.to_string()), Some(Resource::Init(name)));
        assert_eq!(parse_resource("init-bb54068aea85faa7.mp4"), Some(Resource::Init(name)));
        for gone in ["init0.mp4", "init1.mp4", "init3.mp4", "init-BB54068AEA85FAA7.mp4", "init-bb54068a.mp4"] {
            assert_eq!(parse_resource(gone), None, "{gone}");
        }
        assert_eq!(parse_resource("p12.3.mp4"), Some(Resource::Part(Position::new(12, 3))));
        assert_eq!(parse_resource("s7.mp4"), Some(Resource::Segment(7)));
        for bad in ["p1.mp4", "p-1.0.mp4", "p+1.0.mp4", "s.mp4", "s1.m4s", "p1.2.3.mp4", "x.mp4", "p1.99999999999.mp4"]
        {
            assert_eq!(parse_resource(bad), None, "{bad}");
        }
    }

    #[test]
    fn gzip_negotiation() {
        let req = |v: &str| {
            actix_web::test::TestRequest::default().insert_header((header::ACCEPT_ENCODING, v)).to_http_request()
        };
        assert!(accepts_gzip(&req("gzip, deflate, br")));
        assert!(accepts_gzip(&req("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&req("gzip;q=0")));
        assert!(!accepts_gzip(&req("identity")));
        assert!(!accepts_gzip(&actix_web::test::TestRequest::default().to_http_request()));
    }
}
