//! Ingest over real HTTP: the DASH-IF status codes, back-pressure, a body that breaks off, fault isolation between
//! streams, and graceful shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::time::Duration;

use awc::http::StatusCode;
use common::{last_part, lines, parse_media, settle, start, start_default, Media, Server};
use playlists::{Options, StreamId};
use playlists_actors::auth::IngestAuth;
use playlists_actors::registry::Lookup;
use playlists_actors::status::Event;
use playlists_actors::stream::{End, Fault};
use playlists_actors::EngineConfig;

fn id(s: &str) -> StreamId {
    StreamId::parse(s).unwrap()
}

#[actix_web::test]
async fn a_whole_upload_becomes_parts_and_segments() {
    let server = start_default().await;
    let media = Media::h264();
    let r = server.post("/ingest/cam", media.file.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let summary: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(summary["parts"], media.fragments.len() as u64);
    assert_eq!(summary["inits"], 1);
    assert_eq!(summary["dropped_bytes"], 0);
    let text = server.get("/live/cam/index.m3u8").await.text();
    assert_eq!(lines(&text, "#EXTINF").len(), media.fragments.len() / 5 - 1, "{text}");
    // PUT is the same as POST.
    let r = server.put("/ingest/cam2", media.file.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[actix_web::test]
async fn init_and_parts_endpoints() {
    let server = start_default().await;
    let media = Media::h264();
    // 404: parts for a stream that does not exist.
    assert_eq!(server.post("/ingest/cam/parts", media.fragments[0].clone()).await.status, StatusCode::NOT_FOUND);
    let r = server.put("/ingest/cam/init.mp4", media.init.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("avc1"));
    for f in &media.fragments[..6] {
        let r = server.post("/ingest/cam/parts", f.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let text = server.get("/live/cam/index.m3u8").await.text();
    assert!(text.contains("p1.0.mp4"), "{text}");
    // 400: half a fragment.
    let half = media.fragments[6].slice(..media.fragments[6].len() / 2);
    assert_eq!(server.post("/ingest/cam/parts", half).await.status, StatusCode::BAD_REQUEST);
    // DELETE ends the stream; a second DELETE finds no live stream.
    let del = server.send(server.client.delete(server.url("/ingest/cam")), None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(server.get("/live/cam/index.m3u8").await.text().contains("#EXT-X-ENDLIST"));
    let del = server.send(server.client.delete(server.url("/ingest/cam")), None).await;
    assert_eq!(del.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn ingest_error_codes() {
    let options = Options { max_part_bytes: 12_000, ..Options::default() };
    let server = start(EngineConfig { options, ..EngineConfig::default() }).await;
    let media = Media::h264();
    // 415: not fMP4 at all.
    let r = server.post("/ingest/a", "hello, this is not an mp4 file").await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.text().starts_with("{\"error\":"));
    // 412: a fragment before any init.
    assert_eq!(server.post("/ingest/b", media.fragments[0].clone()).await.status, StatusCode::PRECONDITION_FAILED);
    // 413: a fragment over the limit.
    let big = media.fragments.iter().find(|f| f.len() > 12_000).expect("a fragment over 12 kB").clone();
    let mut body = media.init.to_vec();
    body.extend_from_slice(&big);
    assert_eq!(server.post("/ingest/c", body).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    // 400: a box with an impossible size.
    let mut bad = media.init.to_vec();
    bad.extend_from_slice(&[0, 0, 0, 3, b'm', b'o', b'o', b'f']);
    assert_eq!(server.post("/ingest/d", bad).await.status, StatusCode::BAD_REQUEST);
    // 400: a bad stream id.
    assert_eq!(server.post("/ingest/a.b", media.file.clone()).await.status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn bad_input_never_touches_what_is_published() {
    let server = start_default().await;
    let media = Media::h264();
    server.publish("cam", &media, 12).await;
    let before = server.get("/live/cam/index.m3u8").await.body;
    let mut garbage = media.fragments[3].to_vec();
    garbage[20] ^= 0xff;
    garbage[9] = 0xee;
    let r = server.post("/ingest/cam/parts", garbage).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(server.post("/ingest/cam", "junk junk junk").await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(server.get("/live/cam/index.m3u8").await.body, before);
    assert_eq!(server.get("/live/cam/p2.1.mp4").await.body, media.fragment(11));
}

#[actix_web::test]
async fn ingest_tokens() {
    let auth = IngestAuth { tokens: vec!["s3cret".into()], ..IngestAuth::default() };
    let server = start(EngineConfig { auth, ..EngineConfig::default() }).await;
    let media = Media::h264();
    assert_eq!(server.post("/ingest/cam", media.file.clone()).await.status, StatusCode::FORBIDDEN);
    let bad = server.client.post(server.url("/ingest/cam")).insert_header(("Authorization", "Bearer nope"));
    assert_eq!(server.send(bad, Some(media.file.clone())).await.status, StatusCode::FORBIDDEN);
    let good = server.client.post(server.url("/ingest/cam")).insert_header(("Authorization", "Bearer s3cret"));
    assert_eq!(server.send(good, Some(media.file.clone())).await.status, StatusCode::OK);
}

/// Keys from a file, read again by the running engine when the file changes: a revoked key is refused and a new
/// one accepted, without a restart.
#[actix_web::test]
async fn an_ingest_keys_file_is_read_again_when_it_changes() {
    let dir = std::env::temp_dir().join(format!("playlists-keys-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys");
    std::fs::write(&path, "cam=one\n").unwrap();
    let file = std::sync::Arc::new(playlists_actors::auth::KeysFile::open(&path).unwrap());
    let auth = IngestAuth { file: Some(file), ..IngestAuth::default() };
    let server = start(EngineConfig { auth, ..EngineConfig::default() }).await;
    let media = Media::h264();
    let upload = |key: &str| {
        let req =
            server.client.post(server.url("/ingest/cam")).insert_header(("Authorization", format!("Bearer {key}")));
        server.send(req, Some(media.file.clone()))
    };
    assert_eq!(upload("one").await.status, StatusCode::OK);
    std::fs::write(&path, "cam=two\n").unwrap();
    // Set the time apart from the first write: some filesystems keep whole seconds.
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
    let id = StreamId::parse("cam").unwrap();
    let loopback = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    server.wait_until("the new key", |e| e.publishers().auth().check(&id, Some("two"), loopback).is_ok()).await;
    assert_eq!(upload("one").await.status, StatusCode::FORBIDDEN);
    assert_eq!(upload("two").await.status, StatusCode::OK);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix_web::test]
async fn a_full_mailbox_is_503_with_retry_after() {
    let server = start_default().await;
    let media = Media::h264();
    server.publish("cam", &media, 1).await;
    assert!(server.engine.inject_fault(&id("cam"), Fault::Stall(Duration::from_secs(3))).await);
    let requests: Vec<_> = (1..60)
        .map(|i| {
            let req = server.client.post(server.url("/ingest/cam/parts"));
            let body = media.fragment(i);
            actix_rt::spawn(async move { req.send_body(body).await.map(|r| (r.status(), r.headers().clone())) })
        })
        .collect();
    let mut busy = 0;
    for r in requests {
        let (status, headers) = r.await.unwrap().unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            busy += 1;
            assert_eq!(headers.get("retry-after").unwrap(), "1");
        }
    }
    assert!(busy > 0, "a stalled stream must push back instead of queueing without bound");
}

#[actix_web::test]
async fn a_body_that_breaks_off_drops_only_the_fragment_in_flight() {
    let server = start_default().await;
    let media = Media::h264();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut body = media.init.to_vec();
    for f in &media.fragments[..7] {
        body.extend_from_slice(f);
    }
    let half = media.fragments[7][..media.fragments[7].len() / 2].to_vec();
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "POST /ingest/cam HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        for chunk in [&body[..], &half[..]] {
            write!(s, "{:x}\r\n", chunk.len()).unwrap();
            s.write_all(chunk).unwrap();
            s.write_all(b"\r\n").unwrap();
        }
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // Dropped without the final chunk: the body breaks off mid-fragment.
    })
    .join()
    .unwrap();
    server.wait_until("the 7 whole fragments", |e| last_part(e, "cam") >= Some(playlists::Position::new(1, 1))).await;
    let stream = server.engine.playlists().stream(&id("cam")).unwrap();
    assert_eq!(stream.edge().last_part, Some(playlists::Position::new(1, 1)));
    // The encoder reconnects and goes on from where it was.
    let mut rest = media.init.to_vec();
    for f in &media.fragments[7..12] {
        rest.extend_from_slice(f);
    }
    assert_eq!(server.post("/ingest/cam", rest).await.status, StatusCode::OK);
    assert_eq!(stream.edge().last_part, Some(playlists::Position::new(2, 1)));
    assert!(!server.get("/live/cam/index.m3u8").await.text().contains("DISCONTINUITY:"));
}

#[actix_web::test]
async fn a_fault_in_one_stream_leaves_the_others_alone_and_loses_nothing() {
    fault_isolation(start_default().await, Via::Api).await;
}

#[actix_web::test]
async fn with_actors_on_the_ingest_workers_a_fault_still_leaves_the_others_alone() {
    // Ingest over HTTP starts each actor on the HTTP worker of the request; the test server has one, so both
    // streams' actors share it with every request, and the panic happens on it.
    let server = start(EngineConfig { actors_on_ingest_workers: true, ..EngineConfig::default() }).await;
    fault_isolation(server, Via::Http).await;
}

/// How a test publishes.
#[derive(Clone, Copy)]
enum Via {
    /// The engine's Rust API: actors start on the engine's thread.
    Api,
    /// `PUT .../init.mp4` and `POST .../parts`: actors are routed from the request's worker.
    Http,
}

/// Publishes fragments `range` of `media` to `stream`, with the init first when the range starts at 0.
async fn publish(server: &Server, via: Via, stream: &str, media: &Media, range: std::ops::Range<usize>) {
    match via {
        Via::Api if range.start == 0 => server.publish(stream, media, range.end).await,
        Via::Api => server.publish_range(stream, media, range).await,
        Via::Http => {
            if range.start == 0 {
                let r = server.put(&format!("/ingest/{stream}/init.mp4"), media.init.clone()).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            }
            for i in range {
                let r = server.post(&format!("/ingest/{stream}/parts"), media.fragment(i)).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            }
        }
    }
}

async fn fault_isolation(server: Server, via: Via) {
    let media = Media::h264();
    publish(&server, via, "a", &media, 0..8).await;
    publish(&server, via, "b", &media, 0..8).await;
    let before = server.get("/live/a/index.m3u8").await.text();
    assert!(server.engine.inject_fault(&id("a"), Fault::Panic).await);
    settle().await;
    // Stream b keeps publishing and playing.
    publish(&server, via, "b", &media, 8..12).await;
    let b = server.get("/live/b/index.m3u8?_HLS_msn=2&_HLS_part=1").await;
    assert_eq!(b.status, StatusCode::OK);
    assert!(b.text().contains("p2.1.mp4"));
    // Stream a is still readable as it was, and its next ingest gets a new actor that continues it.
    assert_eq!(server.get("/live/a/index.m3u8").await.text(), before);
    publish(&server, via, "a", &media, 8..12).await;
    let a = server.get("/live/a/index.m3u8").await.text();
    assert!(a.contains("p2.1.mp4") && a.contains("s0.mp4"), "{a}");
    assert_eq!(server.get("/live/a/p1.0.mp4").await.body, media.fragment(5));
}

#[actix_web::test]
async fn shutdown_ends_every_stream_and_answers_held_requests() {
    shutdown_test(1, false).await;
}

#[actix_web::test]
async fn with_pinned_workers_ingest_publishes_and_shutdown_answers_held_requests() {
    // `--pin-workers`: the workers are pinned one per CPU and the stream's actor runs on its ingest's worker.
    shutdown_test(2, true).await;
}

async fn shutdown_test(workers: usize, pin_workers: bool) {
    let media = Media::h264();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = playlists_actors::ServeConfig {
        engine: EngineConfig::default(),
        demo: false,
        shutdown_timeout: Duration::from_secs(2),
        workers,
        pin_workers,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = actix_rt::spawn(playlists_actors::serve(config, listener, async move {
        let _ = stopped.await;
    }));
    let client = awc::Client::default();
    let mut body = media.init.to_vec();
    for f in &media.fragments[..8] {
        body.extend_from_slice(f);
    }
    let r = client.post(format!("{base}/ingest/cam")).send_body(body).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let held = {
        let client = client.clone();
        let url = format!("{base}/live/cam/index.m3u8?_HLS_msn=2");
        actix_rt::spawn(async move {
            let mut r = client.get(url).send().await.unwrap();
            (r.status(), r.body().await.unwrap())
        })
    };
    // Shut down once the request is held (the status API counts it).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut r = client.get(format!("{base}/api/streams/cam")).send().await.unwrap();
        let api: serde_json::Value = serde_json::from_slice(&r.body().await.unwrap()).unwrap();
        if api["held_requests"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the request was never held: {api}");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    let (status, text) = held.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&text).contains("#EXT-X-ENDLIST"));
    server.await.unwrap().unwrap();
}

#[actix_web::test]
async fn an_encoder_restart_continues_the_stream_after_a_discontinuity() {
    let server = start_default().await;
    let media = Media::h264();
    assert_eq!(server.post("/ingest/cam", media.file.clone()).await.status, StatusCode::OK);
    let before = server.engine.playlists().stream(&id("cam")).unwrap().edge().last_part.unwrap();
    // The same file again: its decode times start over at zero, as a restarted encoder's do.
    assert_eq!(server.post("/ingest/cam", media.file.clone()).await.status, StatusCode::OK);
    let after = server.engine.playlists().stream(&id("cam")).unwrap().edge().last_part.unwrap();
    assert!(after.msn > before.msn, "{before} -> {after}");
    let text = server.get("/live/cam/index.m3u8").await.text();
    assert_eq!(lines(&text, "#EXT-X-DISCONTINUITY").len(), 2, "the tag and DISCONTINUITY-SEQUENCE:\n{text}");
    let disc = text.split("#EXT-X-DISCONTINUITY\n").nth(1).unwrap();
    assert!(disc.starts_with("#EXT-X-PROGRAM-DATE-TIME:"), "item 12: a PDT on the discontinuity segment\n{text}");
}

#[actix_web::test]
async fn idle_streams_get_endlist_and_are_removed_after_the_grace_period() {
    let lifetimes = playlists_actors::stream::Lifetimes { idle: Duration::from_secs(1), grace: Duration::from_secs(1) };
    let server = start(EngineConfig { lifetimes, ..EngineConfig::default() }).await;
    let mut events = server.engine.hub().subscribe();
    let media = Media::h264();
    server.publish("cam", &media, 7).await;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains(&"stream_removed") {
        let event = tokio::time::timeout_at(deadline, events.recv()).await.expect("events in time").unwrap();
        seen.push(event.kind());
        if event.kind() == "stream_ended" {
            let text = server.get("/live/cam/index.m3u8").await.text();
            assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
        }
    }
    let order: Vec<_> = seen.iter().filter(|k| k.starts_with("stream_")).copied().collect();
    assert_eq!(order, ["stream_started", "stream_idle", "stream_ended", "stream_removed"]);
    assert_eq!(server.get("/live/cam/index.m3u8").await.status, StatusCode::NOT_FOUND);
    // The id can be used again, by a new stream whose URLs do not repeat the old one's (item 16): the old
    // stream's last part was 1.1, the new one starts at MSN 2.
    server.publish("cam", &media, 6).await;
    let text = server.get("/live/cam/index.m3u8").await.text();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:2\n") && text.contains("\ns2.mp4\n"), "{text}");
}

/// A removed stream's memory is released: its actor stops for good at the end of its life (actix's
/// `Supervisor` would restart it, stream and all, while any address to it existed).
#[actix_web::test]
async fn a_removed_stream_is_released() {
    let grace = Duration::from_secs(2);
    let lifetimes = playlists_actors::stream::Lifetimes { idle: Duration::from_secs(1), grace };
    let server = start(EngineConfig { lifetimes, ..EngineConfig::default() }).await;
    let mut events = server.engine.hub().subscribe();
    let media = Media::h264();
    server.publish("cam", &media, 7).await;
    // Something that keeps the actor's address, as a publisher of a live encoder session does.
    let addr = server.engine.registry().send(playlists_actors::registry::Lookup { id: id("cam") }).await.unwrap();
    let weak = std::sync::Arc::downgrade(&server.engine.playlists().stream(&id("cam")).unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv()).await.expect("events in time").unwrap();
        if event.kind() == "stream_removed" {
            break;
        }
    }
    // Well within the grace period a restarted actor would live for.
    let released = tokio::time::Instant::now() + grace / 2;
    while weak.upgrade().is_some() {
        assert!(tokio::time::Instant::now() < released, "the removed stream is still referenced");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(addr.is_some_and(|a| !a.connected()), "the actor is gone, not restarted");
}

/// An encoder that sends one fragment per 4 s GOP (ffmpeg `frag_keyframe` without `-frag_duration`) still gets
/// parts of at most the part target, whose bytes are the fragment's samples; segments start at keyframes, with a
/// target duration raised to fit the GOP (and a warning saying so). The parts of a fragment are released at the
/// pace of their media, not all at once, and a fragment that arrives flushes what is still waiting.
#[actix_web::test]
async fn one_fragment_per_long_gop_becomes_short_parts() {
    let server = start_default().await;
    let mut events = server.engine.hub().subscribe();
    let media = Media::load("h264_aac_gop4.mp4");
    assert_eq!(media.fragments.len(), 2);
    let r = server.post("/ingest/gop", media.file.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let summary: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    // 120 frames at 30 fps per GOP, parts of at most 250 ms (7 frames): 18 parts each.
    assert_eq!(summary["parts"].as_u64(), Some(36), "two 4 s fragments cut into parts: {summary}");
    // The parts are the fragments' samples under new moofs: a few hundred bytes more than the fragments.
    let fragment_bytes: usize = media.fragments.iter().map(|f| f.len()).sum();
    let bytes = summary["bytes"].as_u64().unwrap() as usize;
    assert!(bytes > fragment_bytes && bytes < fragment_bytes + 36 * 1024, "{bytes} for {fragment_bytes}");
    // The second fragment came while the first one's parts were paced: they were flushed, and its own first part
    // closed segment 0. Its other 17 follow in real time, so they are not all there yet.
    let published = || server.engine.playlists().stream(&StreamId::parse("gop").unwrap()).unwrap().info().parts;
    assert!((19..36).contains(&published()), "{}", published());
    server.wait_until("the paced parts", |_| published() == 36).await;
    let text = server.get("/live/gop/index.m3u8").await.text();
    let playlist = parse_media(&text);
    assert_eq!(playlist.target_duration, 4, "{text}");
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.234\n"), "7 frames of 33.3 ms: {text}");
    assert!(text.contains(",PART-HOLD-BACK=0.702,"), "3 x PART-TARGET: the parts come one by one: {text}");
    let parts = lines(&text, "#EXT-X-PART:");
    assert_eq!(parts.len(), 36, "{text}");
    for line in &parts {
        let d: f64 = line.split("DURATION=").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        assert!(d <= 0.25, "{line}");
        // Only the first part of a segment holds a keyframe (the GOP start).
        assert_eq!(line.contains("INDEPENDENT=YES"), line.contains(".0.mp4\""), "{line}");
    }
    // The parts of the first segment, concatenated, are that segment, and hold every sample of the first GOP.
    let seg = server.get("/live/gop/s0.mp4").await.body;
    let mut joined = Vec::new();
    for i in 0.. {
        let part = server.get(&format!("/live/gop/p0.{i}.mp4")).await;
        if part.status != StatusCode::OK {
            break;
        }
        joined.extend_from_slice(&part.body);
    }
    assert_eq!(joined, seg.to_vec());
    let init = playlists::fmp4::Init::parse(media.init.clone()).unwrap();
    let original = playlists::fmp4::Fragment::parse(media.fragments[0].clone(), &init).unwrap();
    let mut splitter = playlists::fmp4::Splitter::with_init(seg.len(), std::sync::Arc::new(init.clone()));
    splitter.push(&seg);
    let (mut samples, mut ticks) = (0, 0);
    while let Some(playlists::fmp4::Item::Fragment(f)) = splitter.next_item().unwrap() {
        samples += f.main_run().unwrap().samples;
        ticks += f.main_run().unwrap().duration;
    }
    assert_eq!((samples, ticks), (original.main_run().unwrap().samples, original.main_run().unwrap().duration));
    let mut warned = false;
    while let Ok(event) = events.try_recv() {
        if let Event::Warning { message, .. } = &*event {
            warned |= message.contains("target duration is 4 s");
        }
    }
    assert!(warned, "a warning says the target duration was raised");
}

#[actix_web::test]
async fn items_7_11_a_new_init_gets_a_new_map_uri_and_the_old_one_stays() {
    let server = start_default().await;
    let h264 = Media::h264();
    let vp9 = Media::load("vp9_opus.mp4");
    assert_eq!(server.post("/ingest/cam", h264.file.clone()).await.status, StatusCode::OK);
    // The encoder comes back with other codecs: a new init.
    assert_eq!(server.post("/ingest/cam", vp9.file.clone()).await.status, StatusCode::OK);
    let text = server.get("/live/cam/index.m3u8").await.text();
    let after = text.split("#EXT-X-DISCONTINUITY\n").nth(1).expect("a discontinuity");
    let (old, new) = (playlists::InitName::of(&h264.init), playlists::InitName::of(&vp9.init));
    assert_ne!(old, new);
    assert!(after.starts_with(&format!("#EXT-X-MAP:URI=\"{new}\"\n")), "{text}");
    // Every init the playlist names is served, with its own bytes, immutable.
    for map in lines(&text, "#EXT-X-MAP:URI=") {
        let name = map.split('"').nth(1).unwrap();
        let r = server.get(&format!("/live/cam/{name}")).await;
        assert_eq!(r.status, StatusCode::OK, "{name}");
        assert_eq!(r.header("cache-control").as_deref(), Some("public, max-age=31536000, immutable"));
    }
    assert_eq!(server.get(&format!("/live/cam/{new}")).await.body, vp9.init);
    assert_eq!(server.get(&format!("/live/cam/{old}")).await.body, h264.init);
    assert_eq!(server.get("/live/cam/init.mp4").await.body, vp9.init, "init.mp4 is the newest");
    for gone in ["init1.mp4", "init2.mp4"] {
        assert_eq!(server.get(&format!("/live/cam/{gone}")).await.status, StatusCode::NOT_FOUND);
    }
    let api: serde_json::Value = serde_json::from_slice(&server.get("/api/streams/cam").await.body).unwrap();
    assert!(api["codecs"].as_str().unwrap().starts_with("vp09"), "{api}");
    // The same init again, on a re-created stream under the same id: the same name, the same bytes; the other
    // init's name is not served with these bytes.
    assert_eq!(server.send(server.client.delete(server.url("/ingest/cam")), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(server.post("/ingest/cam", h264.file.clone()).await.status, StatusCode::OK);
    let text = server.get("/live/cam/index.m3u8").await.text();
    assert_eq!(lines(&text, "#EXT-X-MAP:URI="), [format!("#EXT-X-MAP:URI=\"{old}\"").as_str()], "{text}");
    assert_eq!(server.get(&format!("/live/cam/{old}")).await.body, h264.init);
    assert_eq!(server.get(&format!("/live/cam/{new}")).await.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_newest_upload_takes_the_stream_over_and_the_old_one_is_cut_off() {
    use std::io::Read as _;
    let server = start_default().await;
    let media = Media::h264();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let chunk = |s: &mut std::net::TcpStream, b: &[u8]| {
        write!(s, "{:x}\r\n", b.len()).unwrap();
        s.write_all(b).unwrap();
        s.write_all(b"\r\n").unwrap();
        s.flush().unwrap();
    };
    // An upload that stays open (a half-open encoder connection, say).
    let mut old = std::net::TcpStream::connect(&addr).unwrap();
    write!(old, "POST /ingest/cam HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let mut first = media.init.to_vec();
    for f in &media.fragments[..3] {
        first.extend_from_slice(f);
    }
    chunk(&mut old, &first);
    server.wait_until("the 3 fragments", |e| last_part(e, "cam") >= Some(playlists::Position::new(0, 2))).await;
    assert_eq!(
        server.engine.playlists().stream(&id("cam")).unwrap().edge().last_part,
        Some(playlists::Position::new(0, 2))
    );
    // A new upload of the same stream takes over.
    assert_eq!(server.post("/ingest/cam", media.file.clone()).await.status, StatusCode::OK);
    let taken = server.engine.playlists().stream(&id("cam")).unwrap().edge().last_part.unwrap();
    // The old upload's next fragment is refused with 409 and publishes nothing.
    let old_response = std::thread::spawn(move || {
        chunk(&mut old, &media.fragments[3]);
        old.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 256];
        let n = old.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .join()
    .unwrap();
    assert!(old_response.starts_with("HTTP/1.1 409"), "{old_response}");
    assert_eq!(server.engine.playlists().stream(&id("cam")).unwrap().edge().last_part, Some(taken));
}

#[actix_web::test]
async fn after_shutdown_begins_ingest_is_refused_and_streams_stay_ended() {
    let server = start_default().await;
    let media = Media::h264();
    server.publish("cam", &media, 7).await;
    assert_eq!(server.engine.shutdown().await, 1);
    let r = server.post("/ingest/cam", media.file.clone()).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(server.post("/ingest/other", media.file.clone()).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(server.get("/live/cam/index.m3u8").await.text().contains("#EXT-X-ENDLIST"));
    assert_eq!(server.get("/live/other/index.m3u8").await.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_stream_ended_by_a_delete_and_a_shutdown_at_once_is_announced_once() {
    let server = start_default().await;
    let media = Media::h264();
    server.publish("cam", &media, 7).await;
    let mut events = server.engine.hub().subscribe();
    // Both reach the registry before either is handled: the DELETE's end is passed to the stream's actor, and the
    // shutdown, handled before the actor runs, ends the stream from the registry.
    let cam = id("cam");
    let (deleted, ended_by_shutdown) = futures_util::join!(server.engine.end_stream(&cam), server.engine.shutdown());
    assert!(deleted);
    assert_eq!(ended_by_shutdown, 1);
    // Once the actor answers a message sent after the DELETE's, it has handled that one too.
    let actor = server.engine.registry().send(Lookup { id: cam.clone() }).await.unwrap().expect("the actor");
    actor.send(End).await.unwrap();
    let mut ended = 0;
    while let Ok(event) = events.try_recv() {
        ended += usize::from(matches!(*event, Event::StreamEnded { .. }));
    }
    assert_eq!(ended, 1, "one stream_ended event for one stream");
}
