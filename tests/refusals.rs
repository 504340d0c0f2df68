//! Every refusal reaches the encoder that caused it: an upload refused while its body is still being sent gets
//! its whole answer, and then the server closes the connection, even though the encoder keeps writing. ffmpeg
//! does not read the answer while it uploads; the closed socket is what makes it stop (and exit with an error).
//!
//! Each test sends with a raw socket that writes a chunked body without end (bounded: it gives up after
//! `MAX_CHUNKS`), and asserts that the answer came and the server cut the connection before the writer gave up.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{start, Media, Server};
use playlists::{Options, StreamId};
use playlists_actors::auth::IngestAuth;
use playlists_actors::status::Event;
use playlists_actors::EngineConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Chunks the writer sends at most, one every `CHUNK_EVERY`: 15 s of sending, well past the server's 1 s linger.
const MAX_CHUNKS: usize = 1500;
const CHUNK_EVERY: Duration = Duration::from_millis(10);

/// What happened to an upload that would not stop sending.
struct Outcome {
    /// The answer as it came (head and body).
    answer: String,
    /// Chunks written before a write failed (`None`: the writer sent all of them, the server never closed).
    written_before_close: Option<usize>,
    /// The read side ended (EOF or reset) after the answer.
    read_closed: bool,
}

impl Outcome {
    fn status(&self) -> u16 {
        self.answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    fn assert_refused(&self, status: u16) {
        assert_eq!(self.status(), status, "answer: {}", self.answer);
        let body = self.answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        assert!(body.starts_with("{\"error\":"), "a one-line JSON reason: {body:?}");
        let v: serde_json::Value = serde_json::from_str(body).expect("the whole answer arrived");
        assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(self.read_closed, "the server closed its side");
        assert!(
            self.written_before_close.is_some(),
            "the server let the upload go on for all {MAX_CHUNKS} chunks after refusing it"
        );
    }
}

/// Sends `head` (a request head without the blank line) with `Transfer-Encoding: chunked`, then `first` as a
/// chunk, then filler chunks until a write fails or `MAX_CHUNKS` are sent, reading whatever comes back.
async fn upload_without_end(server: &Server, head: &str, first: &[u8]) -> Outcome {
    let filler = Bytes::from(vec![0x55; 4096]);
    send_without_end(server.base.clone(), head.to_owned(), Bytes::copy_from_slice(first), move |_| filler.clone()).await
}

/// [`upload_without_end`] with the chunks after the first made by `next(i)`.
async fn send_without_end(base: String, head: String, first: Bytes, mut next: impl FnMut(usize) -> Bytes) -> Outcome {
    let addr = base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rx, mut tx) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = loop {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        };
        (String::from_utf8_lossy(&got).into_owned(), closed)
    });
    let mut written_before_close = None;
    let request = format!("{head}\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: video/mp4\r\n\r\n");
    let chunk = |data: &[u8]| {
        let mut c = format!("{:x}\r\n", data.len()).into_bytes();
        c.extend_from_slice(data);
        c.extend_from_slice(b"\r\n");
        c
    };
    let mut sent = 0;
    let mut result = tx.write_all(request.as_bytes()).await;
    if result.is_ok() && !first.is_empty() {
        result = tx.write_all(&chunk(&first)).await;
    }
    while result.is_ok() && sent < MAX_CHUNKS {
        tokio::time::sleep(CHUNK_EVERY).await;
        result = tx.write_all(&chunk(&next(sent))).await;
        sent += 1;
    }
    if result.is_err() {
        written_before_close = Some(sent);
    }
    drop(tx);
    let (answer, read_closed) = tokio::time::timeout(Duration::from_secs(30), reader).await.unwrap().unwrap();
    Outcome { answer, written_before_close, read_closed }
}

fn post(path: &str) -> String {
    format!("POST {path} HTTP/1.1")
}

#[actix_web::test]
async fn a_refused_token_closes_an_upload_that_keeps_sending() {
    let auth = IngestAuth { tokens: vec!["s3cret".into()], ..IngestAuth::default() };
    let server = start(EngineConfig { auth, ..EngineConfig::default() }).await;
    let mut events = server.engine.hub().subscribe();
    let media = Media::h264();
    let head = format!("{}\r\nAuthorization: Bearer wrong", post("/ingest/cam"));
    upload_without_end(&server, &head, &media.init).await.assert_refused(403);
    // Also a warning event with the reason, for whoever watches /ws.
    let event = events.try_recv().expect("a warning event");
    let Event::Warning { stream, message } = &*event else { panic!("{event:?}") };
    assert_eq!(
        (stream.as_str(), message.as_str()),
        ("cam", "http ingest refused: forbidden: bad ingest credential for this stream")
    );
    // No credential at all.
    upload_without_end(&server, &post("/ingest/cam"), &media.init).await.assert_refused(403);
    assert!(server.engine.playlists().stream(&StreamId::parse("cam").unwrap()).is_none(), "nothing was created");
}

#[actix_web::test]
async fn bad_media_closes_an_upload_that_keeps_sending() {
    let options = Options { max_part_bytes: 12_000, ..Options::default() };
    let server = start(EngineConfig { options, ..EngineConfig::default() }).await;
    let media = Media::h264();
    // 415: not fMP4 at all, and no stream is created for it.
    upload_without_end(&server, &post("/ingest/a"), b"hello, this is not an mp4 file").await.assert_refused(415);
    assert!(server.engine.playlists().stream(&StreamId::parse("a").unwrap()).is_none());
    // 415: a plain MP4's moov, without mvex.
    let mut plain = media.init.to_vec();
    let at = plain.windows(4).position(|w| w == b"mvex").unwrap();
    plain[at..at + 4].copy_from_slice(b"free");
    upload_without_end(&server, &post("/ingest/plain"), &plain).await.assert_refused(415);
    // 412: a fragment before any init.
    upload_without_end(&server, &post("/ingest/b"), &media.fragments[0]).await.assert_refused(412);
    // 413: a fragment over the limit.
    let big = media.fragments.iter().find(|f| f.len() > 12_000).unwrap();
    let mut body = media.init.to_vec();
    body.extend_from_slice(big);
    upload_without_end(&server, &post("/ingest/c"), &body).await.assert_refused(413);
    // 400: a bad stream id.
    upload_without_end(&server, &post("/ingest/a.b"), &media.init).await.assert_refused(400);
    // 404: fragments for a stream that does not exist.
    upload_without_end(&server, &post("/ingest/nobody/parts"), &media.fragments[0]).await.assert_refused(404);
}

#[actix_web::test]
async fn too_many_streams_and_a_superseded_upload_are_closed_too() {
    let options = Options { max_streams: 1, ..Options::default() };
    let server = start(EngineConfig { options, ..EngineConfig::default() }).await;
    let media = Media::h264();
    server.publish("one", &media, 3).await;
    // 503: the stream limit.
    upload_without_end(&server, &post("/ingest/two"), &media.init).await.assert_refused(503);

    // 409: an upload that a newer one took over, while it keeps sending fragments (a half-open encoder).
    let media = std::sync::Arc::new(media);
    let first = {
        let m = std::sync::Arc::clone(&media);
        let (base, head) = (server.base.clone(), post("/ingest/one"));
        // It continues the stream's timeline where the parts published above left off.
        let first: Bytes = [m.init.clone(), m.fragment(3)].concat().into();
        tokio::spawn(send_without_end(base, head, first, move |i| m.fragment(4 + i)))
    };
    let id = StreamId::parse("one").unwrap();
    let parts = |e: &playlists_actors::Engine| e.playlists().stream(&id).map_or(0, |s| s.info().parts);
    server.wait_until("the first upload's parts", |e| parts(e) >= 6).await;
    let takeover = server.client.post(server.url("/ingest/one"));
    let second = server.send(takeover, Some(media.init.clone())).await;
    assert_eq!(second.status, awc::http::StatusCode::OK, "{}", second.text());
    first.await.unwrap().assert_refused(409);
}

/// An authorized upload that stops sending is cut off after the ingest timeout (408), instead of holding its
/// connection and a stream slot forever; one that never sent an init created no stream.
#[actix_web::test]
async fn a_stalled_upload_is_timed_out() {
    let config = EngineConfig { ingest_timeout: Duration::from_secs(1), ..EngineConfig::default() };
    let server = start(config).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let head = format!("{}\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", post("/ingest/stall"));
    tcp.write_all(head.as_bytes()).await.unwrap();
    // Nothing more is sent. The answer comes, then the close (bounded by the read timeout, not timed).
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server kept the stalled upload open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("{\"error\":\"the upload sent nothing for 1s\"}"), "{answer}");
    assert!(server.engine.playlists().is_empty(), "no stream for an upload that sent nothing");
}

/// A request anywhere else that announces a chunked body and never sends it is answered and then closed, instead
/// of holding its connection (and a file descriptor) forever.
#[actix_web::test]
async fn a_silent_chunked_request_is_answered_and_closed() {
    let server = start(EngineConfig::default()).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    for path in ["/healthz", "/api/streams", "/live/nothing/index.m3u8"] {
        let mut tcp = TcpStream::connect(&addr).await.unwrap();
        let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "{path}: the connection stayed open");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
    }
}
