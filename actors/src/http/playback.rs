//! Playback: playlists, parts, segments, init, multivariant playlists, read straight from the shared caches.
//!
//! No request goes through an actor. A blocking playlist request waits on the stream's position watch and is
//! answered with the `Bytes` rendered once when the part was published (already gzipped if the player accepts
//! it); the hinted next part is held the same way.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use playlists::playlists::Stream;
use playlists::{Error, PlaylistRequest, Position, Skip, StreamId};

use super::{ApiError, AppState};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const MEDIA_TYPE: &str = "video/mp4";
/// Parts and segments never change under their URL for the life of a stream.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// What a path under `/live/` names.
#[derive(Debug, PartialEq, Eq)]
enum Resource {
    Playlist,
    Master,
    Init,
    Part(Position),
    Segment(u64),
}

fn parse_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    // Decimal digits only: no sign, no leading '+', bounded length.
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

fn parse_resource(file: &str) -> Option<Resource> {
    match file {
        "index.m3u8" => return Some(Resource::Playlist),
        "master.m3u8" => return Some(Resource::Master),
        "init.mp4" => return Some(Resource::Init),
        _ => {}
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
        return master(stream, state);
    }
    let id = StreamId::parse(stream)?;
    let stream = state.playlists.stream(&id).ok_or(ApiError::NotFound("no such stream"))?;
    match resource {
        Resource::Playlist => playlist(req, &stream).await,
        Resource::Init => {
            let init = stream.init().ok_or(ApiError::NotFound("no init segment yet"))?;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            init.hash(&mut h);
            let etag = format!("\"{}-i{:x}\"", stream.generation(), h.finish());
            // The init may be replaced by an encoder restart, under the same URL: cache it briefly only.
            let cache = format!("public, max-age={}", stream.blocking_timeout().as_secs() / 3);
            Ok(media(req, etag, HeaderValue::try_from(cache).map_err(bad_header)?, Body::One(init)))
        }
        Resource::Part(position) => {
            let part = stream.wait_part(position, stream.blocking_timeout()).await?;
            let etag = format!("\"{}-p{position}\"", stream.generation());
            Ok(media(req, etag, HeaderValue::from_static(IMMUTABLE), Body::One(part)))
        }
        Resource::Segment(msn) => {
            let segment = stream.segment(msn).ok_or(ApiError::NotFound("segment not available"))?;
            let etag = format!("\"{}-s{msn}\"", stream.generation());
            Ok(media(req, etag, HeaderValue::from_static(IMMUTABLE), Body::Many(segment.parts)))
        }
        Resource::Master => Err(ApiError::NotFound("no such resource")),
    }
}

async fn playlist(req: &HttpRequest, stream: &Arc<Stream>) -> Result<HttpResponse, ApiError> {
    let request = PlaylistRequest::parse(req.query_string())?;
    let rendered = match stream.playlist(&request, stream.blocking_timeout()).await {
        Ok(r) => r,
        Err(Error::Timeout(_)) => {
            return Err(ApiError::Unavailable("the requested part did not arrive in time".into()));
        }
        Err(e) => return Err(e.into()),
    };
    // Checklist item 47: once ended, `_HLS_skip` is ignored.
    let delta = request.skip != Skip::No && !rendered.ended;
    let gzip = accepts_gzip(req);
    let td = stream.blocking_timeout().as_secs() / 3;
    // DESIGN.md section 3: a blocking answer names the part it waited for in its URL, so it may be cached for
    // 6 x TD; a plain reload for half a target duration.
    let max_age = if request.is_blocking() { 6 * td } else { (td / 2).max(1) };
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PLAYLIST_TYPE)))
        .insert_header((header::CACHE_CONTROL, cache_control(max_age)?))
        .insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding")));
    if gzip {
        resp.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
    }
    Ok(resp.body(rendered.body(delta, gzip).clone()))
}

/// `public, max-age={secs}`; the common values without formatting.
fn cache_control(secs: u64) -> Result<HeaderValue, ApiError> {
    const COMMON: [&str; 13] = [
        "public, max-age=0",
        "public, max-age=1",
        "public, max-age=2",
        "public, max-age=3",
        "public, max-age=4",
        "public, max-age=5",
        "public, max-age=6",
        "public, max-age=7",
        "public, max-age=8",
        "public, max-age=9",
        "public, max-age=10",
        "public, max-age=11",
        "public, max-age=12",
    ];
    match COMMON.get(secs as usize) {
        Some(v) => Ok(HeaderValue::from_static(v)),
        None => HeaderValue::try_from(format!("public, max-age={secs}")).map_err(bad_header),
    }
}

fn bad_header(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("building a header: {e}"))
}

/// What a media response carries: one part or init, or the parts of a segment.
enum Body {
    One(Bytes),
    Many(Vec<Bytes>),
}

/// A media response from shared `Bytes`: ETag / If-None-Match, and the parts sent one after another without
/// copying.
fn media(req: &HttpRequest, etag: String, cache: HeaderValue, body: Body) -> HttpResponse {
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "*" || v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag));
    let mut resp = if matches { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    resp.insert_header((header::ETAG, etag)).insert_header((header::CACHE_CONTROL, cache));
    if matches {
        return resp.finish();
    }
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE)));
    let parts = match body {
        Body::One(bytes) => return resp.body(bytes),
        Body::Many(parts) if parts.len() == 1 => return resp.body(parts.into_iter().next().unwrap_or_default()),
        Body::Many(parts) => parts,
    };
    let len: usize = parts.iter().map(Bytes::len).sum();
    let body = futures_util::stream::iter(parts.into_iter().map(Ok::<_, std::convert::Infallible>));
    resp.body(SizedStream::new(len as u64, body))
}

fn master(group: &str, state: &AppState) -> Result<HttpResponse, ApiError> {
    if group.contains('/') {
        return Err(ApiError::NotFound("master playlists are served per group: /live/{group}/master.m3u8"));
    }
    let text = state.playlists.master(group).ok_or(ApiError::NotFound("no renditions in this group"))?;
    Ok(HttpResponse::Ok()
        .content_type(PLAYLIST_TYPE)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=1")))
        .body(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_parsed_strictly() {
        assert_eq!(parse_resource("index.m3u8"), Some(Resource::Playlist));
        assert_eq!(parse_resource("init.mp4"), Some(Resource::Init));
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
