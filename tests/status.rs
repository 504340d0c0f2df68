//! The operator's view over real HTTP: the `/ws` WebSocket (snapshot, events in order, subscriptions and filters,
//! stats, malformed messages, a client that does not read), `DELETE /api/streams/{stream}`, and `/metrics` read
//! back with an independent Prometheus text parser.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use actix_web::{App, HttpServer};
use awc::http::StatusCode;
use awc::ws;
use common::{lines, start, start_default, Media, Server};
use futures_util::{SinkExt as _, StreamExt as _};
use playlists_actors::auth::IngestAuth;
use playlists_actors::{Engine, EngineConfig};
use serde_json::Value;

/// How long a test waits for a message it expects; generous, since it only bounds a failure.
const WAIT: Duration = Duration::from_secs(30);

type Conn = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

async fn connect(server: &Server) -> Conn {
    let (resp, conn) = server.client.ws(server.url("/ws")).connect().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    conn
}

/// The next JSON message, answering pings on the way; `None` if the server closed the session.
async fn next(conn: &mut Conn) -> Option<Value> {
    loop {
        let frame = actix_rt::time::timeout(WAIT, conn.next()).await.expect("a message in time");
        match frame? {
            Ok(ws::Frame::Text(text)) => return Some(serde_json::from_slice(&text).unwrap()),
            Ok(ws::Frame::Ping(p)) => conn.send(ws::Message::Pong(p)).await.unwrap(),
            Ok(ws::Frame::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Messages up to and including the first that `done` accepts, leaving out `stats` unless asked for.
async fn until(conn: &mut Conn, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let m = next(conn).await.expect("the session is open");
        let stop = done(&m);
        if m["type"] != "stats" || stop {
            seen.push(m);
        }
        if stop {
            return seen;
        }
    }
}

async fn send(conn: &mut Conn, text: &str) {
    conn.send(ws::Message::Text(text.to_owned().into())).await.unwrap();
}

/// Sends a request and waits for its `subscription` answer.
async fn request(conn: &mut Conn, text: &str) -> Value {
    send(conn, text).await;
    until(conn, |m| m["type"] == "subscription" || m["type"] == "error").await.pop().unwrap()
}

fn kind(m: &Value) -> &str {
    m["type"].as_str().unwrap_or("")
}

fn position(m: &Value) -> (u64, u64) {
    (m["msn"].as_u64().unwrap(), m["part"].as_u64().unwrap())
}

#[actix_web::test]
async fn snapshot_on_connect_then_events_in_order() {
    let server = start_default().await;
    let media = Media::h264();
    server.publish("cam", &media, 3).await;

    let mut conn = connect(&server).await;
    let snap = next(&mut conn).await.unwrap();
    assert_eq!(snap["type"], "snapshot", "{snap}");
    let cam = &snap["streams"][0];
    assert_eq!(cam["stream"], "cam");
    assert_eq!(cam["state"], "live");
    assert_eq!(cam["parts"], 3);
    assert_eq!((cam["msn"].as_u64(), cam["part"].as_u64()), (Some(0), Some(2)));
    assert!(cam["codecs"].as_str().unwrap().contains("avc1"), "{cam}");
    let init = playlists::InitName::of(&media.init).to_string();
    assert_eq!(cam["init"].as_str(), Some(init.as_str()), "the init's name, as EXT-X-MAP gives it");
    assert!(cam.get("held_requests").is_some() && cam.get("playlist_requests").is_some(), "{cam}");
    assert!(cam["frame_rate"].as_f64().is_some_and(|f| f > 1.0 && f <= 60.0), "{cam}");
    assert!(cam["channels"].as_u64().is_some_and(|c| c >= 1), "the fixture's AAC track: {cam}");

    // A new stream: stream_started, then its parts in order with the segments they close.
    let n = 24;
    server.publish("live", &media, n).await;
    let seen = until(&mut conn, |m| kind(m) == "part_published" && m["stream"] == "live" && m["msn"] == 4).await;
    let live: Vec<&Value> = seen.iter().filter(|m| m["stream"] == "live").collect();
    assert_eq!(kind(live[0]), "stream_started", "{live:?}");
    let parts: Vec<(u64, u64)> = live.iter().filter(|m| kind(m) == "part_published").map(|m| position(m)).collect();
    assert_eq!(parts[0], (0, 0));
    for w in parts.windows(2) {
        let ((m0, p0), (m1, p1)) = (w[0], w[1]);
        assert!((m1 == m0 && p1 == p0 + 1) || (m1 == m0 + 1 && p1 == 0), "parts in order: {parts:?}");
    }
    // Each segment is closed just before the first part of the next one.
    for (i, m) in live.iter().enumerate() {
        if kind(m) == "segment_closed" {
            let next = live[i + 1..].iter().find(|m| kind(m) == "part_published").unwrap();
            assert_eq!(position(next), (m["msn"].as_u64().unwrap() + 1, 0), "{live:?}");
            assert!(m["duration"].as_f64().unwrap() > 0.0);
        }
    }
    assert!(live.iter().filter(|m| kind(m) == "segment_closed").count() >= 3, "{live:?}");
}

#[actix_web::test]
async fn subscriptions_and_event_filters_take_effect() {
    let server = start_default().await;
    let media = Media::h264();
    let mut conn = connect(&server).await;
    assert_eq!(next(&mut conn).await.unwrap()["type"], "snapshot");

    // Only `a`: events of `b` never arrive.
    let ack = request(&mut conn, r#"{"subscribe":["a"]}"#).await;
    assert_eq!(ack["streams"], serde_json::json!(["a"]), "{ack}");
    assert_eq!(next(&mut conn).await.unwrap()["type"], "snapshot");
    server.publish("b", &media, 3).await;
    server.publish("a", &media, 2).await;
    let seen = until(&mut conn, |m| kind(m) == "part_published" && m["part"] == 1).await;
    assert!(seen.iter().all(|m| m["stream"] == "a"), "{seen:?}");

    // Only segment_closed events.
    let ack = request(&mut conn, r#"{"events":["segment_closed"]}"#).await;
    assert_eq!(ack["events"], serde_json::json!(["segment_closed"]), "{ack}");
    server.publish_range("a", &media, 2..12).await;
    let seen = until(&mut conn, |m| kind(m) == "segment_closed").await;
    assert!(seen.iter().all(|m| kind(m) == "segment_closed"), "{seen:?}");

    // Unsubscribe from `a`, subscribe to `b`: `b`'s end arrives, `a`'s does not (it ends first).
    request(&mut conn, r#"{"events":["*"],"unsubscribe":["a"]}"#).await;
    let ack = request(&mut conn, r#"{"subscribe":["b"]}"#).await;
    assert_eq!(ack["streams"], serde_json::json!(["b"]), "{ack}");
    assert!(server.engine.end_stream(&"a".parse().unwrap()).await);
    assert!(server.engine.end_stream(&"b".parse().unwrap()).await);
    let seen = until(&mut conn, |m| kind(m) == "stream_ended").await;
    assert_eq!(seen.last().unwrap()["stream"], "b", "{seen:?}");
    assert!(seen.iter().all(|m| m["stream"] != "a"), "{seen:?}");
}

#[actix_web::test]
async fn part_events_are_rate_limited_per_subscription() {
    let server = start_default().await;
    let media = Media::h264();
    let mut conn = connect(&server).await;
    next(&mut conn).await.unwrap();
    let ack = request(&mut conn, r#"{"events":["part_published","stream_ended"],"max_parts_per_sec":2}"#).await;
    assert_eq!(ack["max_parts_per_sec"], 2, "{ack}");
    let started = std::time::Instant::now();
    server.publish("r", &media, 30).await;
    assert!(server.engine.end_stream(&"r".parse().unwrap()).await);
    let seen = until(&mut conn, |m| kind(m) == "stream_ended").await;
    // The bound holds however long publishing took: at most 2 per started second.
    let windows = started.elapsed().as_secs() + 2;
    let parts = seen.iter().filter(|m| kind(m) == "part_published").count() as u64;
    assert!(parts >= 1 && parts <= 2 * windows, "{parts} part events in {windows} windows");
}

#[actix_web::test]
async fn malformed_messages_get_an_error_and_the_session_goes_on() {
    let server = start_default().await;
    let media = Media::h264();
    let mut conn = connect(&server).await;
    let mut other = connect(&server).await;
    next(&mut conn).await.unwrap();
    next(&mut other).await.unwrap();
    for bad in ["nonsense", "{\"subscribe\":\"x\"}", "{\"events\":[\"nope\"]}", "{\"subscribe\":[\"a.b\"]}", "[1,2]"] {
        send(&mut conn, bad).await;
        let err = until(&mut conn, |m| kind(m) == "error").await.pop().unwrap();
        assert!(!err["message"].as_str().unwrap().is_empty(), "{err}");
    }
    conn.send(ws::Message::Binary(vec![0u8, 1, 2].into())).await.unwrap();
    assert_eq!(until(&mut conn, |m| kind(m) == "error").await.pop().unwrap()["type"], "error");
    // Both sessions still work.
    request(&mut conn, r#"{"subscribe":["ok"]}"#).await;
    server.publish("ok", &media, 1).await;
    for c in [&mut conn, &mut other] {
        let m = until(c, |m| kind(m) == "part_published").await.pop().unwrap();
        assert_eq!(m["stream"], "ok");
    }
}

#[actix_web::test]
async fn stats_name_every_stream_followed() {
    let server = start_default().await;
    let media = Media::h264();
    server.publish("s1", &media, 3).await;
    server.publish("s2", &media, 3).await;
    let mut conn = connect(&server).await;
    let stats = until(&mut conn, |m| kind(m) == "stats" && m["streams"].as_object().is_some_and(|s| s.len() == 2))
        .await
        .pop()
        .unwrap();
    for name in ["s1", "s2"] {
        let s = &stats["streams"][name];
        for field in [
            "ingest_bitrate",
            "parts_per_sec",
            "playlist_requests_per_sec",
            "media_requests_per_sec",
            "held_requests",
            "bytes_served_per_sec",
        ] {
            assert!(s[field].is_number(), "{name}.{field}: {stats}");
        }
    }
    request(&mut conn, r#"{"subscribe":["s2"]}"#).await;
    let stats = until(&mut conn, |m| kind(m) == "stats").await.pop().unwrap();
    assert_eq!(stats["streams"].as_object().unwrap().keys().collect::<Vec<_>>(), ["s2"], "{stats}");
}

/// A server whose accepted sockets have small send buffers (they inherit the listener's), so that a client that
/// stops reading backs the server up after a few kilobytes rather than megabytes.
async fn start_small_buffers(config: EngineConfig) -> Server {
    let engine = Engine::start(config).unwrap();
    let routes = engine.routes();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(64).unwrap().into_std().unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    actix_rt::spawn(server);
    let client = awc::Client::builder().timeout(WAIT).finish();
    Server { base: format!("http://{addr}"), engine, client }
}

#[actix_web::test]
async fn a_client_that_does_not_read_harms_no_one() {
    let server = start_small_buffers(EngineConfig { event_buffer: 64, ..EngineConfig::default() }).await;
    let media = Media::h264();
    let mut slow = connect(&server).await;
    let mut fast = connect(&server).await;
    next(&mut fast).await.unwrap();
    // The fast client reads on its own task while the slow one reads nothing.
    let n = 3000usize;
    let reader = actix_rt::spawn(async move {
        let mut last = None;
        loop {
            let m = next(&mut fast).await.expect("the fast session stays open");
            match kind(&m) {
                "part_published" => last = Some(position(&m)),
                // It may fall behind too (the buffer is small): a snapshot tells it where the stream is.
                "snapshot" => {
                    if let Some(s) = m["streams"].as_array().and_then(|s| s.first()) {
                        last = s["msn"].as_u64().zip(s["part"].as_u64());
                    }
                }
                "stream_ended" => return last,
                _ => {}
            }
        }
    });
    server.publish("flood", &media, n).await;
    let edge = server.engine.playlists().stream(&"flood".parse().unwrap()).unwrap().edge();
    assert!(server.engine.end_stream(&"flood".parse().unwrap()).await);
    let last = edge.last_part.unwrap();
    assert_eq!(reader.await.unwrap(), Some((last.msn, u64::from(last.part))), "the fast client saw the end");

    // The server is healthy and still serves.
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
    assert!(server.get("/live/flood/index.m3u8").await.text().contains("#EXT-X-ENDLIST"));

    // The slow client now reads: it lost events and was told so with a fresh snapshot (or it was closed). It never
    // gets a silent gap, and what the server held for it was bounded by the shared ring, not by what it missed.
    let mut expected: Option<(u64, u64)> = None;
    loop {
        let Some(m) = next(&mut slow).await else { break };
        match kind(&m) {
            "snapshot" if m.get("missed").is_some() => {
                assert!(m["missed"].as_u64().unwrap() > 0);
                break;
            }
            "part_published" => {
                let p = position(&m);
                if let Some((msn, part)) = expected {
                    assert!(p == (msn, part + 1) || p == (msn + 1, 0), "a silent gap: {expected:?} then {p:?}");
                }
                expected = Some(p);
                assert!(p != (last.msn, u64::from(last.part)), "the slow client cannot have received every event");
            }
            _ => {}
        }
    }
    let s = scrape(&server.get("/metrics").await.text());
    assert!(value(&s, "playlists_ws_lagged_total", &[]).unwrap() >= 1.0, "the slow session was sent a snapshot");
}

#[actix_web::test]
async fn delete_ends_a_stream() {
    let server = start_default().await;
    let media = Media::h264();
    server.publish("cam", &media, 6).await;
    let del = server.send(server.client.delete(server.url("/api/streams/cam")), None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(server.get("/live/cam/index.m3u8").await.text().contains("#EXT-X-ENDLIST"));
    let api: Value = serde_json::from_slice(&server.get("/api/streams/cam").await.body).unwrap();
    assert_eq!(api["state"], "ended");
    let del = server.send(server.client.delete(server.url("/api/streams/cam")), None).await;
    assert_eq!(del.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn delete_needs_the_ingest_token() {
    let auth = IngestAuth { tokens: vec!["s3cret".into()], ..IngestAuth::default() };
    let server = start(EngineConfig { auth, ..EngineConfig::default() }).await;
    let media = Media::h264();
    server.publish("cam", &media, 3).await;
    let del = server.send(server.client.delete(server.url("/api/streams/cam")), None).await;
    assert_eq!(del.status, StatusCode::FORBIDDEN);
    let bad = server.client.delete(server.url("/api/streams/cam")).insert_header(("Authorization", "Bearer no"));
    assert_eq!(server.send(bad, None).await.status, StatusCode::FORBIDDEN);
    let good = server.client.delete(server.url("/api/streams/cam")).insert_header(("Authorization", "Bearer s3cret"));
    assert_eq!(server.send(good, None).await.status, StatusCode::NO_CONTENT);
}

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    use prometheus_parse::Value as V;
    scrape.samples.iter().find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(
        |s| match &s.value {
            V::Counter(v) | V::Gauge(v) | V::Untyped(v) => *v,
            V::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            V::Summary(_) => f64::NAN,
        },
    )
}

#[actix_web::test]
async fn metrics_are_prometheus_text_with_sensible_values() {
    let server = start_default().await;
    let media = Media::h264();
    let n = 12;
    server.publish("m", &media, n).await;
    server.publish("gone", &media, 2).await;
    server.engine.end_stream(&"gone".parse().unwrap()).await;
    assert_eq!(server.get("/live/m/index.m3u8").await.status, StatusCode::OK);
    assert_eq!(server.get("/live/m/index.m3u8").await.status, StatusCode::OK);
    assert_eq!(server.get("/live/m/p0.0.mp4").await.status, StatusCode::OK);
    assert_eq!(server.get("/live/m/p99.0.mp4").await.status, StatusCode::NOT_FOUND);
    // A held request for the hinted part, released by the next publish.
    let text = server.get("/live/m/index.m3u8").await.text();
    let hint = lines(&text, "#EXT-X-PRELOAD-HINT")[0].split('"').nth(1).unwrap().to_owned();
    let held = server.client.get(server.url(&format!("/live/m/{hint}"))).send();
    let held = actix_rt::spawn(async move { held.await.unwrap().status() });
    server.wait_held("m", 1).await;
    server.publish_range("m", &media, n..n + 1).await;
    assert_eq!(held.await.unwrap(), StatusCode::OK);

    let r = server.get("/metrics").await;
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain; version=0.0.4"));
    let s = scrape(&r.text());
    let bytes: usize = (0..=n).map(|i| media.fragment(i).len()).sum();
    assert_eq!(value(&s, "playlists_parts_ingested_total", &[("stream", "m")]), Some((n + 1) as f64));
    assert_eq!(value(&s, "playlists_bytes_ingested_total", &[("stream", "m")]), Some(bytes as f64));
    assert_eq!(value(&s, "playlists_streams", &[("state", "live")]), Some(1.0));
    assert_eq!(value(&s, "playlists_streams", &[("state", "ended")]), Some(1.0));
    assert_eq!(value(&s, "playlists_requests_total", &[("route", "playlist"), ("status", "200")]), Some(3.0));
    assert_eq!(value(&s, "playlists_requests_total", &[("route", "part"), ("status", "200")]), Some(2.0));
    assert_eq!(value(&s, "playlists_requests_total", &[("route", "part"), ("status", "404")]), Some(1.0));
    assert_eq!(value(&s, "playlists_held_requests", &[]), Some(0.0));
    assert!(value(&s, "playlists_bytes_served_total", &[("route", "part")]).unwrap() > 0.0);
    assert_eq!(value(&s, "playlists_hold_release_seconds", &[]), Some(1.0), "one held request released");
    assert_eq!(value(&s, "playlists_parts_ingested_total", &[("stream", "gone")]), Some(2.0), "ended, not removed");

    // A removed stream's series go with it; the others stay.
    server.engine.playlists().remove(&"gone".parse().unwrap()).expect("the ended stream was there");
    let s = scrape(&server.get("/metrics").await.text());
    assert_eq!(value(&s, "playlists_parts_ingested_total", &[("stream", "gone")]), None);
    assert_eq!(value(&s, "playlists_bytes_ingested_total", &[("stream", "gone")]), None);
    assert_eq!(value(&s, "playlists_parts_ingested_total", &[("stream", "m")]), Some((n + 1) as f64));

    // The API carries the read counters too.
    let api: Value = serde_json::from_slice(&server.get("/api/streams/m").await.body).unwrap();
    assert_eq!(api["playlist_requests"], 3);
    assert_eq!(api["media_requests"], 3);
    assert_eq!(api["held_requests"], 0);
}

#[actix_web::test]
async fn the_status_page_is_served_with_its_hls_js_url() {
    let config = EngineConfig { hls_js_url: "/vendor/hls.min.js".into(), ..EngineConfig::default() };
    let server = start(config).await;
    let r = server.get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = r.text();
    assert!(html.contains("<script async src=\"/vendor/hls.min.js\"></script>"), "{html}");
    assert!(html.contains("new WebSocket("), "the script is inlined");
}

/// At shutdown a `/ws` session gets a close frame (going away) at once, so that an open status page does not hold
/// the server's exit for the whole drain time.
#[actix_web::test]
async fn shutdown_closes_ws_sessions_with_a_close_frame() {
    let server = start_default().await;
    let mut conn = connect(&server).await;
    assert_eq!(next(&mut conn).await.unwrap()["type"], "snapshot");
    server.engine.shutdown().await;
    let reason = loop {
        let frame = actix_rt::time::timeout(WAIT, conn.next()).await.expect("a close frame in time");
        match frame.expect("the session ends with a close frame, not a dropped socket") {
            Ok(ws::Frame::Close(reason)) => break reason,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(reason.map(|r| r.code), Some(ws::CloseCode::Away));
}

/// A WebSocket frame that declares 2^62 bytes is refused once its header is in, not buffered for as long as the
/// client sends (the 64 KiB message limit applied only once the whole frame had been read): the server (this
/// process) does not grow with what the client sends, and closes the connection.
#[actix_web::test]
async fn a_frame_declaring_2_62_bytes_is_refused_at_its_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rss = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).map(|v| v.trim().trim_end_matches(" kB"));
        kb.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0) * 1024
    };
    let server = start_default().await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let upgrade = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = tcp.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head[..n]));
    let (mut rx, mut tx) = tcp.into_split();
    // The server's frames (snapshot, then its close) are read and dropped; EOF or a reset ends the reader.
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while matches!(rx.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let before = rss();
    // FIN + binary, masked, 64-bit length 2^62, a mask; then payload until the server closes, at most 256 MiB.
    let mut frame = vec![0x82, 0xff];
    frame.extend_from_slice(&(1u64 << 62).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    tx.write_all(&frame).await.unwrap();
    let chunk = vec![0u8; 1 << 16];
    let mut sent = 0u64;
    while sent < 256 << 20 && tx.write_all(&chunk).await.is_ok() {
        sent += chunk.len() as u64;
    }
    let grown = rss().saturating_sub(before);
    assert!(grown < 64 << 20, "the server grew by {} MiB for {} MiB sent", grown >> 20, sent >> 20);
    tokio::time::timeout(WAIT, reader).await.expect("the server closed the connection").unwrap();
}
