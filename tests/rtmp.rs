//! RTMP ingest over real TCP on 127.0.0.1: rml_rtmp's client session publishes the tags of a committed FLV (made by
//! ffmpeg) to `ingest::rtmp::run`, and the engine's routes serve what it became.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use playlists_actors::auth::IngestAuth;
use playlists_actors::ingest::rtmp;
use playlists_actors::EngineConfig;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for the server to answer or close before it fails (a bound, not a timing assertion).
const WAIT: Duration = Duration::from_secs(10);

/// A server: the engine with its HTTP routes, and RTMP on its own port.
struct Rtmp {
    #[allow(dead_code)]
    http: common::Server,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Rtmp {
    async fn start(config: EngineConfig) -> Self {
        let http = common::start(config).await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let publishers = http.engine.publishers().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let done = actix_rt::spawn(rtmp::run(listener, publishers, shutdown));
        Rtmp { http, addr, stop: Some(stop), done: Some(done) }
    }

    async fn with_key(key: &str) -> Self {
        Self::start(EngineConfig {
            auth: IngestAuth { tokens: vec![key.to_owned()], ..IngestAuth::default() },
            ..Default::default()
        })
        .await
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            tokio::time::timeout(WAIT, done).await.expect("run returns after shutdown").unwrap().unwrap();
        }
    }
}

/// What the server answered to a connect or a publish.
#[derive(Debug, PartialEq)]
enum Answer {
    Accepted,
    /// An error status: its code and description, as the client saw them.
    Refused(String),
    Closed,
}

/// An RTMP publisher: rml_rtmp's client session on a tokio socket.
struct Client {
    tcp: TcpStream,
    session: ClientSession,
}

impl Client {
    /// TCP, the handshake, and the client session's first packets.
    async fn open(addr: SocketAddr) -> Client {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut handshake = Handshake::new(PeerType::Client);
        tcp.write_all(&handshake.generate_outbound_p0_and_p1().unwrap()).await.unwrap();
        let mut buf = vec![0u8; 8192];
        let leftover = loop {
            let n = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed during the handshake");
            match handshake.process_bytes(&buf[..n]).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => tcp.write_all(&response_bytes).await.unwrap(),
                HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                    tcp.write_all(&response_bytes).await.unwrap();
                    break remaining_bytes;
                }
            }
        };
        let (session, results) = ClientSession::new(ClientSessionConfig::new()).unwrap();
        let mut client = Client { tcp, session };
        client.send(results).await;
        let results = client.session.handle_input(&leftover).unwrap();
        client.send(results).await;
        client
    }

    async fn send(&mut self, results: Vec<ClientSessionResult>) -> Vec<ClientSessionEvent> {
        let mut events = Vec::new();
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    // A refused client may find the socket closed under it; the answer is read elsewhere.
                    let _ = self.tcp.write_all(&packet.bytes).await;
                }
                ClientSessionResult::RaisedEvent(event) => events.push(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        events
    }

    /// Reads until the server accepts, refuses or closes.
    async fn answer(&mut self, accepted: ClientSessionEvent) -> Answer {
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match tokio::time::timeout(WAIT, self.tcp.read(&mut buf)).await.expect("an answer in time") {
                Ok(0) | Err(_) => return Answer::Closed,
                Ok(n) => n,
            };
            let Ok(results) = self.session.handle_input(&buf[..n]) else { return Answer::Closed };
            for event in self.send(results).await {
                match event {
                    e if e == accepted => return Answer::Accepted,
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Answer::Refused(description)
                    }
                    // A publish refusal is an `_error` of no transaction the client session tracks.
                    ClientSessionEvent::UnknownTransactionResultReceived { additional_values, .. } => {
                        return Answer::Refused(format!("{additional_values:?}"))
                    }
                    ClientSessionEvent::UnhandleableOnStatusCode { code } => return Answer::Refused(code),
                    _ => {}
                }
            }
        }
    }

    async fn connect(&mut self, app: &str) -> Answer {
        let results = self.session.request_connection(app.to_owned()).unwrap();
        self.send(vec![results]).await;
        self.answer(ClientSessionEvent::ConnectionRequestAccepted).await
    }

    async fn publish(&mut self, key: &str) -> Answer {
        let results = self.session.request_publishing(key.to_owned(), PublishRequestType::Live).unwrap();
        self.send(vec![results]).await;
        self.answer(ClientSessionEvent::PublishRequestAccepted).await
    }

    /// A connection publishing `key` on `live`.
    async fn publishing(addr: SocketAddr, key: &str) -> Client {
        let mut client = Client::open(addr).await;
        assert_eq!(client.connect("live").await, Answer::Accepted);
        assert_eq!(client.publish(key).await, Answer::Accepted);
        client
    }

    /// Sends one FLV tag as its RTMP message; false once the server has closed the connection.
    async fn tag(&mut self, tag: &Tag, offset_ms: u32) -> bool {
        let timestamp = RtmpTimestamp::new(tag.timestamp + offset_ms);
        let result = match tag.kind {
            8 => self.session.publish_audio_data(tag.body.clone(), timestamp, false),
            9 => self.session.publish_video_data(tag.body.clone(), timestamp, false),
            _ => return true,
        };
        let Ok(ClientSessionResult::OutboundResponse(packet)) = result else { return true };
        self.tcp.write_all(&packet.bytes).await.is_ok()
    }

    /// Reads until the server closes the connection (EOF or reset); panics if it has not after [`WAIT`].
    async fn closed_by_server(mut self) {
        let mut buf = vec![0u8; 8192];
        loop {
            match tokio::time::timeout(WAIT, self.tcp.read(&mut buf)).await.expect("the server closes the connection") {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// One FLV tag: its type (8 audio, 9 video, 18 script data), timestamp and body.
struct Tag {
    kind: u8,
    timestamp: u32,
    body: Bytes,
}

/// The tags of an FLV file.
fn flv_tags(flv: &Bytes) -> Vec<Tag> {
    let (_, tags) = playlists::flv::read_file(flv).expect("an FLV file");
    tags.into_iter().map(|t| Tag { kind: t.kind, timestamp: t.timestamp_ms, body: t.body }).collect()
}

fn fixture_tags() -> Vec<Tag> {
    flv_tags(&common::fixture("h264_aac.flv"))
}

#[actix_rt::test]
async fn a_publish_is_accepted_and_runs_until_the_encoder_closes() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    let mut client = Client::publishing(server.addr, "cam1").await;
    for tag in fixture_tags().iter().take(30) {
        assert!(client.tag(tag, 0).await, "the server keeps the connection");
    }
    drop(client);
    server.stop().await;
}

#[actix_rt::test]
async fn a_wrong_key_gets_an_error_status_and_a_closed_connection() {
    let mut server = Rtmp::with_key("s3cret").await;
    let mut events = server.http.engine.hub().subscribe();
    for key in ["cam1?key=wrong", "cam1", "cam1?token="] {
        let mut client = Client::open(server.addr).await;
        assert_eq!(client.connect("live").await, Answer::Accepted);
        match client.publish(key).await {
            Answer::Refused(status) => assert!(status.contains("NetStream.Publish.BadName"), "{key}: {status}"),
            other => panic!("{key}: {other:?}"),
        }
        client.closed_by_server().await;
        // Also a warning event with the reason, and no secret in it.
        let event = events.try_recv().expect("a warning event");
        let playlists_actors::status::Event::Warning { stream, message } = &*event else { panic!("{event:?}") };
        assert_eq!(stream, "cam1");
        assert!(message.starts_with("rtmp ingest refused: forbidden: "), "{message}");
        assert!(!message.contains("wrong"), "{message}");
    }
    for key in ["cam1?key=s3cret", "cam2?x=1&token=s3cret"] {
        let client = Client::publishing(server.addr, key).await;
        drop(client);
    }
    // The credential may ride in the application's URL instead (rtmp://host/live?key=SECRET, key `cam3`).
    let mut client = Client::open(server.addr).await;
    assert_eq!(client.connect("live?key=s3cret").await, Answer::Accepted);
    assert_eq!(client.publish("cam3").await, Answer::Accepted);
    drop(client);
    let mut client = Client::open(server.addr).await;
    assert_eq!(client.connect("live?key=wrong").await, Answer::Accepted);
    assert!(matches!(client.publish("cam3").await, Answer::Refused(_)));
    client.closed_by_server().await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_bad_stream_name_is_refused() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    for key in ["", "a b", "x/y/z", &"n".repeat(65)] {
        let mut client = Client::open(server.addr).await;
        assert_eq!(client.connect("live").await, Answer::Accepted);
        match client.publish(key).await {
            Answer::Refused(status) => assert!(status.contains("NetStream.Publish.BadName"), "{key}: {status}"),
            other => panic!("{key:?}: {other:?}"),
        }
        client.closed_by_server().await;
    }
    server.stop().await;
}

#[actix_rt::test]
async fn an_unknown_application_is_rejected_at_connect() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    let mut client = Client::open(server.addr).await;
    match client.connect("vod").await {
        Answer::Refused(description) => assert!(description.contains("unknown application"), "{description}"),
        other => panic!("{other:?}"),
    }
    client.closed_by_server().await;
    server.stop().await;
}

#[actix_rt::test]
async fn garbage_instead_of_a_handshake_is_closed() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    // A TLS ClientHello's first bytes, then noise: not RTMP version 3.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut garbage = vec![0x16, 0x03, 0x01, 0x02, 0x00];
    garbage.extend((0..4000u64).map(|i| (i * 7919 % 251) as u8));
    let _ = tcp.write_all(&garbage).await;
    let mut buf = vec![0u8; 8192];
    loop {
        match tokio::time::timeout(WAIT, tcp.read(&mut buf)).await.expect("closed") {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Garbage after a good handshake: a chunk stream that makes no sense.
    let mut client = Client::open(server.addr).await;
    let noise: Vec<u8> = (0..70_000u64).map(|i| (i * 104_729 % 256) as u8).collect();
    let _ = client.tcp.write_all(&noise).await;
    client.closed_by_server().await;
    // Others are served all the while.
    drop(Client::publishing(server.addr, "fine").await);
    server.stop().await;
}

#[actix_rt::test]
async fn shutdown_ends_the_sessions_in_flight() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    let client = Client::publishing(server.addr, "cam1").await;
    let idle = Client::open(server.addr).await;
    server.stop().await;
    client.closed_by_server().await;
    idle.closed_by_server().await;
    assert!(TcpStream::connect(server.addr).await.is_err(), "the listener is closed");
}

/// Reads until the server closes `tcp`, waiting at most `wait`.
async fn read_to_close(tcp: &mut TcpStream, wait: Duration) {
    let mut buf = vec![0u8; 8192];
    loop {
        match tokio::time::timeout(wait, tcp.read(&mut buf)).await.expect("the server closes the connection") {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[actix_rt::test]
async fn a_handshake_that_never_completes_is_timed_out() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // C0 and a tenth of C1, then nothing: the server's 10 s handshake timeout closes it.
    let mut c0c1 = vec![3u8];
    c0c1.extend([0u8; 150]);
    tcp.write_all(&c0c1).await.unwrap();
    read_to_close(&mut tcp, WAIT + WAIT).await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_huge_chunk_size_and_message_before_publishing_is_closed() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    let mut client = Client::open(server.addr).await;
    // Set Chunk Size 2^31-1 on chunk stream 2, then an audio message that says it is 16 MiB long, and its bytes.
    let mut bytes = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff];
    bytes.extend([0x04, 0, 0, 0, 0xff, 0xff, 0xff, 8, 1, 0, 0, 0]);
    bytes.extend(std::iter::repeat_n(0xaf, 100_000));
    let _ = client.tcp.write_all(&bytes).await;
    client.closed_by_server().await;
    drop(Client::publishing(server.addr, "fine").await);
    server.stop().await;
}

/// Sends `tags` as fast as the socket takes them (the engine times parts by their media timestamps).
async fn send_all(client: &mut Client, tags: &[Tag], offset_ms: u32) {
    for tag in tags {
        assert!(client.tag(tag, offset_ms).await, "the server keeps the connection");
    }
}

async fn playlist(server: &Rtmp, stream: &str) -> String {
    let reply = server.http.get(&format!("/live/{stream}/index.m3u8")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text()
}

#[actix_rt::test]
async fn a_published_flv_becomes_a_stream_of_short_parts_with_its_codecs() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    let tags = fixture_tags();
    let mut client = Client::publishing(server.addr, "cam1").await;
    send_all(&mut client, &tags, 0).await;
    // The encoder goes away: the session flushes what the packager holds.
    drop(client);
    let id = playlists::StreamId::parse("cam1").unwrap();
    // 4 s of media at 2 s GOPs: two complete segments once the last fragment is flushed.
    server.http.wait_until("two segments of cam1", |e| common::last_part(e, "cam1").is_some_and(|p| p.msn >= 1)).await;
    let text = playlist(&server, "cam1").await;
    let parts = common::lines(&text, "#EXT-X-PART:");
    assert!(parts.len() >= 10, "{text}");
    for part in parts {
        let duration: f64 = part.split("DURATION=").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        assert!(duration > 0.0 && duration <= 0.25, "{part}");
    }
    let init = server.http.get("/live/cam1/init.mp4").await;
    assert_eq!(init.status, 200);
    let codecs = playlists::fmp4::Init::parse(init.body).unwrap().codecs();
    assert!(codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"), "{codecs}");
    assert!(server.http.engine.playlists().stream(&id).is_some());
    server.stop().await;
}

#[actix_rt::test]
async fn a_second_publisher_of_a_stream_supersedes_the_first() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    let tags = fixture_tags();
    let mut first = Client::publishing(server.addr, "cam1").await;
    send_all(&mut first, &tags[..tags.len() / 2], 0).await;
    let mut second = Client::publishing(server.addr, "cam1").await;
    // The first is told at its next message: the server closes it (its writes may fail once it has).
    for tag in &tags[tags.len() / 2..] {
        if !first.tag(tag, 0).await {
            break;
        }
    }
    first.closed_by_server().await;
    send_all(&mut second, &tags, 0).await;
    drop(second);
    server.http.wait_until("parts of cam1", |e| common::last_part(e, "cam1").is_some_and(|p| p.msn >= 1)).await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_reconnecting_encoder_continues_its_stream_after_a_discontinuity() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    let tags = fixture_tags();
    let mut client = Client::publishing(server.addr, "cam1").await;
    send_all(&mut client, &tags, 0).await;
    drop(client);
    server.http.wait_until("cam1's first run", |e| common::last_part(e, "cam1").is_some_and(|p| p.msn >= 1)).await;
    let before = common::last_part(&server.http.engine, "cam1").unwrap();
    // The encoder restarts: a new connection, its clock from zero again.
    let mut client = Client::publishing(server.addr, "cam1").await;
    send_all(&mut client, &tags, 0).await;
    drop(client);
    server
        .http
        .wait_until("cam1's second run", |e| common::last_part(e, "cam1").is_some_and(|p| p.msn >= before.msn + 2))
        .await;
    let text = playlist(&server, "cam1").await;
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    assert_eq!(common::lines(&text, "#EXT-X-DISCONTINUITY").len(), 2, "the tag and DISCONTINUITY-SEQUENCE:\n{text}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_deeply_nested_command_is_refused_without_hurting_the_server() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    let mut client = Client::open(server.addr).await;
    // A "connect" whose object nests 5,000 deep: 20 KB that would overflow a recursive decoder's stack.
    let mut amf = vec![0x02, 0, 7];
    amf.extend(b"connect");
    amf.extend([0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x03]);
    for _ in 0..5000 {
        amf.extend([0, 1, b'a', 0x03]);
    }
    let len = amf.len() as u32;
    let mut bytes = vec![0x03, 0, 0, 0, (len >> 16) as u8, (len >> 8) as u8, len as u8, 20, 0, 0, 0, 0];
    for (i, chunk) in amf.chunks(128).enumerate() {
        if i > 0 {
            bytes.push(0xc3);
        }
        bytes.extend(chunk);
    }
    let _ = client.tcp.write_all(&bytes).await;
    client.closed_by_server().await;
    drop(Client::publishing(server.addr, "fine").await);
    server.stop().await;
}

#[actix_rt::test]
async fn delete_stream_flushes_the_last_fragment_and_ends_the_session() {
    let mut server = Rtmp::start(EngineConfig::default()).await;
    let tags = fixture_tags();
    let mut client = Client::publishing(server.addr, "cam1").await;
    send_all(&mut client, &tags, 0).await;
    let results = client.session.stop_publishing().unwrap();
    client.send(results).await;
    // The server ends the session itself (the client keeps its side open).
    client.closed_by_server().await;
    // The flushed tail is published: the parts add up to the file's 4 s, not to the 3.8 s before its last cut.
    server.http.wait_until("cam1's two segments", |e| common::last_part(e, "cam1").is_some_and(|p| p.msn >= 1)).await;
    let text = playlist(&server, "cam1").await;
    let total: f64 = common::lines(&text, "#EXT-X-PART:")
        .iter()
        .map(|p| p.split("DURATION=").nth(1).unwrap().split(',').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(total > 3.9, "{total} s of parts:\n{text}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_publish_past_the_stream_limit_is_refused_and_closed() {
    let options = playlists::Options { max_streams: 1, ..Default::default() };
    let mut server = Rtmp::start(EngineConfig { options, ..Default::default() }).await;
    let first = Client::publishing(server.addr, "one").await;
    let mut client = Client::open(server.addr).await;
    assert_eq!(client.connect("live").await, Answer::Accepted);
    match client.publish("two").await {
        Answer::Refused(status) => assert!(status.contains("NetStream.Publish.Failed"), "{status}"),
        other => panic!("{other:?}"),
    }
    client.closed_by_server().await;
    drop(first);
    server.stop().await;
}

/// The server as the binary runs it: `serve()` with an HTTP and an RTMP listener. An RTMP publish is played over
/// HTTP, and the shutdown ends the RTMP session (the server closes its connection) and `serve` itself.
#[actix_rt::test]
async fn serve_takes_rtmp_beside_http_and_shutdown_ends_both() {
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rtmp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (base, rtmp_addr) = (format!("http://{}", http.local_addr().unwrap()), rtmp.local_addr().unwrap());
    let config = playlists_actors::ServeConfig {
        engine: EngineConfig::default(),
        demo: false,
        shutdown_timeout: Duration::from_secs(2),
        workers: 1,
        pin_workers: false,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listeners = playlists_actors::Listeners { http, tls: None, rtmp: Some(rtmp) };
    let server = actix_rt::spawn(playlists_actors::serve(config, listeners, async move {
        let _ = stopped.await;
    }));
    let mut client = Client::publishing(rtmp_addr, "cam1").await;
    send_all(&mut client, &fixture_tags(), 0).await;
    let http = awc::Client::default();
    let url = format!("{base}/live/cam1/index.m3u8");
    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        let mut r = http.get(&url).send().await.unwrap();
        let body = r.body().await.unwrap();
        if r.status() == 200 {
            break String::from_utf8_lossy(&body).into_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no playlist for the RTMP publish: {}", r.status());
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(text.contains("#EXT-X-PART:"), "{text}");
    stop.send(()).unwrap();
    client.closed_by_server().await;
    server.await.unwrap().unwrap();
}
