//! The limits on clients and requests (README "Limits"), each reproduced from outside over real sockets: the
//! refusal's status and reason, that it reaches the client that caused it, that others are served meanwhile, and
//! its counter in `/metrics`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use awc::http::StatusCode;
use common::{Media, Server};
use playlists_actors::http::limits::Limits;
use playlists_actors::EngineConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn start(limits: Limits) -> Server {
    common::start(EngineConfig { limits, ..EngineConfig::default() }).await
}

fn addr(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or 10 s pass): what it sent, and whether it closed.
async fn read_to_close(conn: &mut TcpStream) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

/// The value of a counter or gauge in the server's `/metrics`, 0 if absent.
async fn metric(server: &Server, series: &str) -> f64 {
    let text = server.get("/metrics").await.text();
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

#[actix_web::test]
async fn connections_over_the_per_address_limit_are_answered_503_and_closed() {
    let server = start(Limits { max_connections_per_addr: 3, ..Limits::default() }).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr(&server)).await.unwrap());
    }
    let clients = server.engine.clients().clone();
    server.wait_until("3 connections counted", |_| clients.held_by(LOOPBACK).0 == 3).await;

    // The fourth is refused before it sends anything, and closed.
    let mut fourth = TcpStream::connect(addr(&server)).await.unwrap();
    let (answer, closed) = read_to_close(&mut fourth).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("{\"error\":\"unavailable: too many connections from this address\"}"), "{answer}");
    assert!(closed, "the refused connection is closed");
    assert_eq!(clients.held_by(LOOPBACK).0, 3, "a refused connection is not left counted");

    // One closes: a new one is served (the client's own connection is one of the three now).
    drop(idle.pop());
    server.wait_until("2 connections counted", |_| clients.held_by(LOOPBACK).0 == 2).await;
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
    drop(idle);
    server.wait_until("1 connection counted", |_| clients.held_by(LOOPBACK).0 == 1).await;
    assert_eq!(metric(&server, "playlists_limit_refused_total{limit=\"connections_per_addr\"}").await, 1.0);
    assert_eq!(metric(&server, "playlists_connections").await, 1.0, "the client's own kept-alive connection");
}

#[actix_web::test]
async fn the_total_connection_limit_refuses_with_its_own_reason() {
    let server = start(Limits { max_connections: 2, ..Limits::default() }).await;
    let _a = TcpStream::connect(addr(&server)).await.unwrap();
    let _b = TcpStream::connect(addr(&server)).await.unwrap();
    let clients = server.engine.clients().clone();
    server.wait_until("2 connections counted", |_| clients.held_by(LOOPBACK).0 == 2).await;
    let mut third = TcpStream::connect(addr(&server)).await.unwrap();
    let (answer, closed) = read_to_close(&mut third).await;
    assert!(answer.contains("too many connections to this server"), "{answer}");
    assert!(closed);
}

/// A blocking playlist reload for the next part: held until it is published.
fn reload(stream: &str, server: &Server) -> String {
    let last = common::last_part(&server.engine, stream).unwrap();
    format!("/live/{stream}/index.m3u8?_HLS_msn={}&_HLS_part={}", last.msn, last.part + 1)
}

#[actix_web::test]
async fn held_requests_over_the_per_address_limit_are_429_and_others_are_served() {
    let server = start(Limits { max_held_per_addr: 2, ..Limits::default() }).await;
    let media = Media::h264();
    server.publish("cam", &media, 7).await;
    assert_eq!(server.get("/live/cam/index.m3u8").await.status, StatusCode::OK, "the playlist is there");
    let path = reload("cam", &server);
    let held: Vec<_> = (0..2).map(|_| server.client.get(server.url(&path)).send()).collect();
    let held = futures_util::future::join_all(held);
    let held = actix_rt::spawn(async move { held.await.into_iter().map(|r| r.unwrap().status()).collect::<Vec<_>>() });
    server.wait_held("cam", 2).await;

    let third = server.get(&path).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.header("retry-after").as_deref(), Some("1"));
    assert_eq!(third.text(), "{\"error\":\"too many held requests from this address\"}");
    assert_eq!(third.header("cache-control").as_deref(), Some("no-store"));
    // What is there already is answered at once: not held, so not limited.
    let plain = server.get("/live/cam/index.m3u8").await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text());
    let last = common::last_part(&server.engine, "cam").unwrap();
    assert_eq!(server.get(&format!("/live/cam/p{}.{}.mp4", last.msn, last.part)).await.status, StatusCode::OK);

    // The next part answers the two held; the address's slots are given back.
    server.publish_range("cam", &media, 7..8).await;
    assert_eq!(held.await.unwrap(), vec![StatusCode::OK, StatusCode::OK]);
    let clients = server.engine.clients().clone();
    server.wait_until("no held requests counted", |_| clients.held_by(LOOPBACK).1 == 0).await;
    assert_eq!(metric(&server, "playlists_limit_refused_total{limit=\"held_per_addr\"}").await, 1.0);
}

#[actix_web::test]
async fn ws_sessions_over_the_per_address_limit_are_429() {
    let server = start(Limits { max_ws_per_addr: 1, ..Limits::default() }).await;
    let (_, first) = server.client.ws(server.url("/ws")).connect().await.unwrap();
    let refused = server.client.ws(server.url("/ws")).connect().await;
    match refused {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS)
        }
        other => panic!("expected 429, got {:?}", other.map(|(r, _)| r.status())),
    }
    drop(first);
    let clients = server.engine.clients().clone();
    server.wait_until("the session given back", |_| clients.held_by(LOOPBACK).2 == 0).await;
    assert!(server.client.ws(server.url("/ws")).connect().await.is_ok(), "a session ended frees its slot");
}

#[actix_web::test]
async fn long_targets_queries_and_headers_are_414_and_431() {
    let server = start(Limits::default()).await;
    let long_path = format!("/live/{}/index.m3u8", "a".repeat(5000));
    let r = server.get(&long_path).await;
    assert_eq!(r.status, StatusCode::URI_TOO_LONG);
    assert_eq!(r.text(), "{\"error\":\"request target too long\"}");
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("*"), "a browser can read the refusal");

    let r = server.get(&format!("/live/cam/index.m3u8?x={}", "b".repeat(3000))).await;
    assert_eq!(r.status, StatusCode::URI_TOO_LONG);
    assert_eq!(r.text(), "{\"error\":\"query string too long\"}");

    let big = "c".repeat(9000);
    let req = server
        .client
        .get(server.url("/healthz"))
        .insert_header(("x-a", big.as_str()))
        .insert_header(("x-b", big.as_str()));
    let r = server.send(req, None).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(r.text(), "{\"error\":\"request headers too large\"}");
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK, "the server answers the next request");
    for limit in ["uri_bytes", "query_bytes", "header_bytes"] {
        assert_eq!(metric(&server, &format!("playlists_limit_refused_total{{limit=\"{limit}\"}}")).await, 1.0);
    }
}

/// An upload refused for its size is closed after the answer, not drained for as long as the encoder sends.
#[actix_web::test]
async fn a_refused_upload_is_closed_after_the_answer() {
    let server = start(Limits::default()).await;
    let mut conn = TcpStream::connect(addr(&server)).await.unwrap();
    let head = format!(
        "POST /ingest/cam?{} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n",
        "q".repeat(3000)
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // Keep sending for a while, as an encoder would: the server must close all the same.
    let (mut read, mut write) = conn.into_split();
    let sender = actix_rt::spawn(async move {
        for _ in 0..200 {
            if write.write_all(b"10\r\n0123456789abcdef\r\n").await.is_err() {
                return true;
            }
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
        false
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), read.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
    assert!(closed, "the connection is closed while the client still sends");
    assert!(sender.await.unwrap(), "the sender's writes fail once the server has closed");
}

/// Addresses exempt (an edge cache in front) are not limited per address.
#[actix_web::test]
async fn an_exempt_address_is_not_limited_per_address() {
    let server = start(Limits { max_connections_per_addr: 1, exempt: vec![LOOPBACK], ..Limits::default() }).await;
    let _idle: Vec<_> = futures_util::future::join_all((0..4).map(|_| TcpStream::connect(addr(&server)))).await;
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
}
