//! Playback over real HTTP: LLHLS-CHECKLIST.md sections B (blocking reload), C (preload hints), D (delta updates)
//! and F (HTTP behaviour), each test naming its items.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::time::Duration;

use awc::http::StatusCode;
use common::{lines, parse_media, settle, start, start_default, Media, Reply, Server};
use playlists::{Options, StreamId};
use playlists_actors::EngineConfig;

/// After `n` fragments of the h264 fixture (0.2 s each, keyframe every 5th) with the default options, segment
/// `s` is complete once fragment `5 * (s + 1)` is published.
async fn live(n: usize) -> (Server, Media) {
    let server = start_default().await;
    let media = Media::h264();
    server.publish("cam", &media, n).await;
    (server, media)
}

fn held(server: &Server, path: &str) -> actix_rt::task::JoinHandle<Reply> {
    let url = server.url(path);
    let client = server.client.clone();
    actix_rt::spawn(async move {
        let mut resp = client.get(url).no_decompress().send().await.expect("request");
        let body = resp.body().limit(16 << 20).await.expect("body");
        Reply { status: resp.status(), headers: resp.headers().clone(), body }
    })
}

fn last_part_line(text: &str) -> String {
    lines(text, "#EXT-X-PART:").last().map(|l| l.to_string()).unwrap_or_default()
}

#[actix_web::test]
async fn items_19_30_first_playlist_is_held_until_a_segment_is_complete() {
    let (server, media) = live(3).await;
    let first = held(&server, "/live/cam/index.m3u8");
    server.wait_held("cam", 1).await;
    assert!(!first.is_finished(), "a playlist without a complete segment must not be served");
    server.publish_range("cam", &media, 3..6).await;
    let reply = first.await.expect("joined");
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert_eq!(lines(&text, "#EXTINF").len(), 1, "{text}");
    parse_media(&text);
    // Item 30: already satisfied, answered at once with the current playlist.
    let again = server.get("/live/cam/index.m3u8?_HLS_msn=0").await;
    assert_eq!(again.status, StatusCode::OK);
}

#[actix_web::test]
async fn items_2_21_playlist_type_and_server_control() {
    let (server, _) = live(7).await;
    let r = server.get("/live/cam/index.m3u8").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type").as_deref(), Some("application/vnd.apple.mpegurl"));
    let text = r.text();
    let control = lines(&text, "#EXT-X-SERVER-CONTROL:");
    assert_eq!(control.len(), 1);
    assert!(control[0].contains("CAN-BLOCK-RELOAD=YES"), "{text}");
    assert!(!text.contains("=NO"), "item 20: never write =NO");
}

#[actix_web::test]
async fn item_22_msn_alone_waits_for_the_segment_to_complete() {
    // Parts 1.0 and 1.1 exist, segment 1 is open: L = 0.
    let (server, media) = live(7).await;
    let req = held(&server, "/live/cam/index.m3u8?_HLS_msn=1");
    server.wait_held("cam", 1).await;
    server.publish_range("cam", &media, 7..9).await;
    // Time for a wrong answer to the woken request to arrive.
    settle().await;
    assert!(!req.is_finished(), "parts of segment 1 do not complete it");
    server.publish_range("cam", &media, 9..11).await;
    let r = req.await.expect("joined");
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("\ns1.mp4\n"), "{}", r.text());
}

#[actix_web::test]
async fn items_23_35_part_request_is_held_and_every_waiter_is_woken() {
    let (server, media) = live(7).await;
    let waiters: Vec<_> = (0..5).map(|_| held(&server, "/live/cam/index.m3u8?_HLS_msn=1&_HLS_part=2")).collect();
    server.wait_held("cam", 5).await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    server.publish_range("cam", &media, 7..8).await;
    let mut bodies = Vec::new();
    for w in waiters {
        let r = w.await.expect("joined");
        assert_eq!(r.status, StatusCode::OK);
        assert!(last_part_line(&r.text()).contains("URI=\"p1.2.mp4\""), "{}", r.text());
        bodies.push(r.body);
    }
    // Item 67: one rendering shared by every waiter.
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

#[actix_web::test]
async fn item_24_part_past_a_closed_parent_is_answered_by_the_next_segment() {
    // Segment 0 holds parts 0..=4; part 5 of it never comes, part 1.0 does.
    let (server, media) = live(5).await;
    let req = held(&server, "/live/cam/index.m3u8?_HLS_msn=0&_HLS_part=5");
    server.wait_held("cam", 1).await;
    assert!(!req.is_finished());
    server.publish_range("cam", &media, 5..6).await;
    let r = req.await.expect("joined");
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("URI=\"p1.0.mp4\""));
}

#[actix_web::test]
async fn items_25_26_27_28_34_directive_rules() {
    let (server, _) = live(12).await; // L = 1, last part 2.1
                                      // 25: an old MSN is answered with the whole current playlist.
    let r = server.get("/live/cam/index.m3u8?_HLS_msn=0&_HLS_part=0").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("p2.1.mp4"));
    // 26: _HLS_part without _HLS_msn.
    let r = server.get("/live/cam/index.m3u8?_HLS_part=1").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().starts_with("{\"error\":"), "{}", r.text());
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    // 27: L + 3 is refused at once; L + 2 is held.
    assert_eq!(server.get("/live/cam/index.m3u8?_HLS_msn=4").await.status, StatusCode::BAD_REQUEST);
    let l2 = held(&server, "/live/cam/index.m3u8?_HLS_msn=3");
    server.wait_held("cam", 1).await;
    assert!(!l2.is_finished());
    l2.abort();
    // 28: more than 3 s of media past the last part (0.2 s parts: 15 parts).
    assert_eq!(server.get("/live/cam/index.m3u8?_HLS_msn=2&_HLS_part=40").await.status, StatusCode::BAD_REQUEST);
    // 34: malformed values; unknown parameters ignored, any order.
    for q in ["_HLS_msn=-1", "_HLS_msn=1.5", "_HLS_msn=123456789012345678901", "_HLS_msn=1&_HLS_part=x", "_HLS_skip=no"]
    {
        let r = server.get(&format!("/live/cam/index.m3u8?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
    }
    let r = server.get("/live/cam/index.m3u8?token=abc&_HLS_part=0&foo&_HLS_msn=1").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[actix_web::test]
async fn items_18_29_47_ended_playlist_ignores_directives() {
    let (server, _) = live(8).await;
    let cam = StreamId::parse("cam").unwrap();
    assert!(server.engine.end_stream(&cam).await);
    server.wait_until("the stream ended", |e| e.playlists().stream(&cam).is_some_and(|s| s.edge().ended)).await;
    let r = server.get("/live/cam/index.m3u8?_HLS_msn=3&_HLS_part=2&_HLS_skip=YES").await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"), "{text}");
    assert!(!text.contains("#EXT-X-PRELOAD-HINT"));
    assert!(!text.contains("#EXT-X-SKIP"));
    // The open segment was closed by the end: its whole segment is served.
    assert_eq!(server.get("/live/cam/s1.mp4").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn item_31_unsatisfied_hold_times_out_with_an_uncacheable_503() {
    let options = Options {
        target_duration: 1,
        min_segment: Duration::from_secs(1),
        window: Duration::from_secs(6),
        part_window: Duration::from_secs(3),
        ..Options::default()
    };
    let server = start(EngineConfig { options, ..EngineConfig::default() }).await;
    let media = Media::h264();
    server.publish("cam", &media, 7).await;
    let r = server.get("/live/cam/index.m3u8?_HLS_msn=1&_HLS_part=3").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert!(r.text().contains("error"));
}

#[actix_web::test]
async fn items_37_38_39_42_preload_hint_is_the_next_part_and_is_held() {
    let (server, media) = live(7).await;
    let text = server.get("/live/cam/index.m3u8").await.text();
    let hints = lines(&text, "#EXT-X-PRELOAD-HINT:");
    assert_eq!(hints, vec!["#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p1.2.mp4\""], "{text}");
    // 42: a part neither listed nor hinted is 404 at once.
    assert_eq!(server.get("/live/cam/p1.3.mp4").await.status, StatusCode::NOT_FOUND);
    // 39: the hinted part is held until it exists, then sent whole.
    let part = held(&server, "/live/cam/p1.2.mp4");
    server.wait_held("cam", 1).await;
    assert!(!part.is_finished());
    server.publish_range("cam", &media, 7..8).await;
    let r = part.await.expect("joined");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, media.fragment(7));
    // 38: the next playlist lists the part under exactly the hinted URI.
    let text = server.get("/live/cam/index.m3u8").await.text();
    assert!(last_part_line(&text).contains("URI=\"p1.2.mp4\""));
}

#[actix_web::test]
async fn items_44_45_46_49_50_51_delta_update() {
    // 20 s of 1 s segments: more than the 12 s skip boundary.
    let (server, _) = live(102).await;
    let full = server.get("/live/cam/index.m3u8").await.text();
    let control = lines(&full, "#EXT-X-SERVER-CONTROL:")[0].to_string();
    let skip_until: f64 = control.split("CAN-SKIP-UNTIL=").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    assert!(skip_until >= 12.0, "item 44: {control}");
    let delta = server.get("/live/cam/index.m3u8?_HLS_msn=20&_HLS_part=1&_HLS_skip=YES").await;
    assert_eq!(delta.status, StatusCode::OK);
    let delta = delta.text();
    let skips = lines(&delta, "#EXT-X-SKIP:SKIPPED-SEGMENTS=");
    assert_eq!(skips.len(), 1, "item 49: {delta}");
    let k: u64 = skips[0].rsplit('=').next().unwrap().parse().unwrap();
    assert!(k > 0);
    assert!(delta.contains("#EXT-X-VERSION:9"), "items 14, 49");
    // 46: MEDIA-SEQUENCE unchanged; the first listed segment is MEDIA-SEQUENCE + k.
    let seq = |t: &str| lines(t, "#EXT-X-MEDIA-SEQUENCE:")[0].to_string();
    assert_eq!(seq(&delta), seq(&full));
    let first: u64 = seq(&full).rsplit(':').next().unwrap().parse().unwrap();
    let first_listed = delta.lines().find(|l| l.starts_with('s') && l.ends_with(".mp4")).unwrap();
    assert_eq!(first_listed, format!("s{}.mp4", first + k));
    // 11: the map is repeated after the skip.
    let after_skip = delta.split("#EXT-X-SKIP").nth(1).unwrap();
    let map = format!("#EXT-X-MAP:URI=\"{}\"", playlists::InitName::of(&Media::h264().init));
    assert!(after_skip.contains(&map), "{delta}");
    // The delta lists the same tail as the full playlist.
    let tail = |t: &str| t.lines().rev().take(10).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(tail(&delta), tail(&full));
    // 51: the full form keeps working.
    assert!(!server.get("/live/cam/index.m3u8?_HLS_msn=20&_HLS_part=1").await.text().contains("#EXT-X-SKIP"));
}

#[actix_web::test]
async fn item_59_gzip_when_accepted_with_vary() {
    let (server, _) = live(12).await;
    let plain = server.get("/live/cam/index.m3u8").await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary").as_deref(), Some("Accept-Encoding"));
    let req = server.client.get(server.url("/live/cam/index.m3u8")).insert_header(("Accept-Encoding", "gzip"));
    let gz = server.send(req, None).await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(gz.header("vary").as_deref(), Some("Accept-Encoding"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..]).read_to_end(&mut out).expect("gunzip");
    assert_eq!(out, plain.body.to_vec());
}

#[actix_web::test]
async fn item_61_cache_control() {
    let (server, _) = live(12).await;
    let blocking = server.get("/live/cam/index.m3u8?_HLS_msn=2&_HLS_part=1").await;
    assert_eq!(blocking.header("cache-control").as_deref(), Some("public, max-age=12"));
    let plain = server.get("/live/cam/index.m3u8").await;
    assert_eq!(plain.header("cache-control").as_deref(), Some("public, max-age=1"));
    let part = server.get("/live/cam/p2.0.mp4").await;
    assert!(part.header("cache-control").unwrap().contains("immutable"));
    let missing = server.get("/live/cam/p0.9.mp4").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("cache-control").as_deref(), Some("no-store"));
}

#[actix_web::test]
async fn items_63_64_cors_on_every_response_and_preflight() {
    let (server, _) = live(7).await;
    for path in [
        "/live/cam/index.m3u8",
        "/live/cam/p1.0.mp4",
        "/live/cam/init.mp4",
        "/live/cam/s0.mp4",
        "/live/nope/index.m3u8",
    ] {
        let r = server.get(path).await;
        assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("*"), "{path}");
        assert!(r.header("access-control-expose-headers").unwrap().contains("Age"), "{path}");
    }
    let pre = server
        .send(
            server
                .client
                .request(awc::http::Method::OPTIONS, server.url("/live/cam/p1.0.mp4"))
                .insert_header(("Origin", "https://player.example"))
                .insert_header(("Access-Control-Request-Method", "GET"))
                .insert_header(("Access-Control-Request-Headers", "range")),
            None,
        )
        .await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert!(pre.header("access-control-allow-headers").unwrap().contains("Range"));
    assert!(pre.header("access-control-allow-methods").unwrap().contains("GET"));
}

#[actix_web::test]
async fn segments_are_their_parts_and_media_has_etags_head_and_304() {
    let (server, media) = live(12).await;
    // Item 8 / 65: a segment is exactly its parts, downloadable whole.
    let seg = server.get("/live/cam/s1.mp4").await;
    assert_eq!(seg.status, StatusCode::OK);
    let parts: Vec<u8> = (5..10).flat_map(|i| media.fragment(i).to_vec()).collect();
    assert_eq!(seg.body.to_vec(), parts);
    assert_eq!(seg.header("content-length"), Some(parts.len().to_string()));
    // The init is fetched by the name the playlist gives it, as a player does.
    let text = server.get("/live/cam/index.m3u8").await.text();
    let map = lines(&text, "#EXT-X-MAP:URI=")[0];
    let init_path = format!("/live/cam/{}", map.split('"').nth(1).unwrap());
    let init = server.get(&init_path).await;
    assert_eq!(init.body, media.init);
    assert_eq!(init.header("content-type").as_deref(), Some("video/mp4"));
    assert_eq!(init.header("cache-control").as_deref(), Some("public, max-age=31536000, immutable"));
    // `init.mp4`, for tools that guess it: the newest init, briefly cacheable, pointing at its own name.
    let current = server.get("/live/cam/init.mp4").await;
    assert_eq!(current.body, media.init);
    assert_eq!(current.header("cache-control").as_deref(), Some("public, max-age=2"));
    assert_eq!(current.header("content-location").as_deref(), Some(&init_path["/live/cam/".len()..]));
    assert_eq!(current.header("etag"), init.header("etag"));
    for path in ["/live/cam/p1.1.mp4", "/live/cam/s1.mp4", init_path.as_str(), "/live/cam/init.mp4"] {
        let first = server.get(path).await;
        let etag = first.header("etag").expect("etag");
        let again = server
            .send(server.client.get(server.url(path)).insert_header(("If-None-Match", etag.as_str())), None)
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body.is_empty());
        let head = server.send(server.client.head(server.url(path)), None).await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), first.header("content-length"));
    }
}

#[actix_web::test]
async fn unknown_streams_and_positions_are_404() {
    let (server, _) = live(7).await;
    for path in [
        "/live/nope/index.m3u8",
        "/live/nope/p0.0.mp4",
        "/live/cam/s1.mp4",
        "/live/cam/s99.mp4",
        "/live/cam/p99.0.mp4",
        "/live/cam/other.txt",
        "/live/bad%20name/index.m3u8",
        "/nothing",
    ] {
        let r = server.get(path).await;
        assert!(r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST, "{path}: {}", r.status);
        assert!(r.text().contains("\"error\""), "{path}");
    }
}

#[actix_web::test]
async fn item_66_parts_stay_downloadable_after_leaving_the_playlist() {
    let (server, media) = live(60).await;
    let text = server.get("/live/cam/index.m3u8").await.text();
    assert!(!text.contains("p1.0.mp4"), "parts of old segments leave the playlist (item 74)");
    let r = server.get("/live/cam/p1.0.mp4").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, media.fragment(5));
}

#[actix_web::test]
async fn item_52_53_rendition_reports_and_master_playlist() {
    let server = start_default().await;
    let media = Media::h264();
    server.publish("show/hi", &media, 7).await;
    server.publish("show/lo", &media, 7).await;
    server.publish_range("show/hi", &media, 7..8).await;
    let text = server.get("/live/show/hi/index.m3u8").await.text();
    let reports = lines(&text, "#EXT-X-RENDITION-REPORT:");
    assert_eq!(reports, vec!["#EXT-X-RENDITION-REPORT:URI=\"../lo/index.m3u8\",LAST-MSN=1,LAST-PART=1"], "{text}");
    let master = server.get("/live/show/master.m3u8").await;
    assert_eq!(master.status, StatusCode::OK);
    let master = master.text();
    let parsed = m3u8_rs::parse_master_playlist_res(master.as_bytes()).expect("master playlist");
    let uris: Vec<_> = parsed.variants.iter().map(|v| v.uri.clone()).collect();
    assert!(uris.contains(&"hi/index.m3u8".to_string()) && uris.contains(&"lo/index.m3u8".to_string()), "{master}");
    assert!(parsed.variants.iter().all(|v| v.bandwidth > 0 && v.codecs.as_deref().is_some_and(|c| c.contains("avc1"))));
    assert_eq!(server.get("/live/none/master.m3u8").await.status, StatusCode::NOT_FOUND);
}

/// A method that a known path does not take is 405 with `Allow`, with the usual JSON reason; unknown paths stay
/// 404.
#[actix_web::test]
async fn wrong_methods_on_known_paths_are_405_with_allow() {
    let server = start_default().await;
    let cases = [
        (awc::http::Method::POST, "/healthz", "GET, OPTIONS"),
        (awc::http::Method::DELETE, "/api/streams", "GET, OPTIONS"),
        (awc::http::Method::PUT, "/api/streams/cam", "GET, DELETE, OPTIONS"),
        (awc::http::Method::DELETE, "/live/cam/index.m3u8", "GET, HEAD, OPTIONS"),
        (awc::http::Method::GET, "/ingest/cam", "POST, PUT, DELETE, OPTIONS"),
        (awc::http::Method::POST, "/ingest/cam/init.mp4", "PUT, OPTIONS"),
        (awc::http::Method::PUT, "/ingest/cam/parts", "POST, OPTIONS"),
    ];
    for (method, path, allow) in cases {
        let r = server.send(server.client.request(method.clone(), server.url(path)), None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(r.header("allow").as_deref(), Some(allow), "{method} {path}");
        assert!(r.text().starts_with("{\"error\":\"method not allowed"), "{method} {path}: {}", r.text());
    }
    let r = server.send(server.client.post(server.url("/nothing/here")), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
