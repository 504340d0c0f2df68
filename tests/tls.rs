//! HTTPS and HTTP/2: the server as the binary runs it (`serve()` with a plain and a TLS listener), a certificate
//! made here, and a raw HTTP/2 client over rustls, so that several held requests share one connection as a player's
//! playlist and part requests do.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{lines, Media};
use playlists_actors::tls::Certificates;
use playlists_actors::{EngineConfig, Listeners, ServeConfig, TlsListener};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Every wait here gives up after this.
const WAIT: Duration = Duration::from_secs(10);

/// A self-signed certificate for `localhost` and 127.0.0.1, made by rcgen: its PEM files and its DER.
struct Pem {
    cert: String,
    key: String,
    der: CertificateDer<'static>,
}

fn certificate(name: &str) -> Pem {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into(), name.into()]).unwrap();
    Pem { cert: made.cert.pem(), key: made.signing_key.serialize_pem(), der: made.cert.der().clone() }
}

/// A directory for certificate files, removed at the end of the test.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("playlists-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn cert(&self) -> PathBuf {
        self.0.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.0.join("key.pem")
    }

    /// Writes the files as certbot does: each replaced by a rename, so that the server never reads half a file.
    fn write(&self, cert: &str, key: &str) {
        for (path, text) in [(self.cert(), cert), (self.key(), key)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `serve()`: its plain and its TLS address, and the certificates it serves.
struct Server {
    http: SocketAddr,
    https: SocketAddr,
    certificates: Arc<Certificates>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<actix_rt::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    async fn start(dir: &Dir) -> Self {
        Self::start_with(dir, EngineConfig::default()).await
    }

    async fn start_with(dir: &Dir, engine: EngineConfig) -> Self {
        let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tls = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (http_addr, https) = (http.local_addr().unwrap(), tls.local_addr().unwrap());
        let certificates = Arc::new(Certificates::load(dir.cert(), dir.key()).unwrap());
        let config = ServeConfig {
            engine,
            demo: false,
            shutdown_timeout: Duration::from_secs(2),
            workers: 1,
            pin_workers: false,
        };
        let listeners = Listeners {
            http,
            tls: Some(TlsListener { listener: tls, certificates: Arc::clone(&certificates) }),
            rtmp: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = actix_rt::spawn(playlists_actors::serve(config, listeners, async move {
            let _ = stopped.await;
        }));
        Self { http: http_addr, https, certificates, stop: Some(stop), task: Some(task) }
    }

    /// A server on a certificate of its own, made for `test`; the directory holding its files goes with the test.
    async fn with_certificate(test: &str) -> (Dir, Pem, Self) {
        let dir = Dir::new(test);
        let pem = certificate(test);
        dir.write(&pem.cert, &pem.key);
        let server = Self::start(&dir).await;
        (dir, pem, server)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    /// Publishes over plain HTTP (loopback needs no credentials), as an encoder beside the players would.
    async fn publish(&self, stream: &str, path: &str, body: Bytes) {
        let url = format!("http://{}/ingest/{stream}{path}", self.http);
        let method = if path == "/init.mp4" { awc::http::Method::PUT } else { awc::http::Method::POST };
        let r = awc::Client::default().request(method, url).send_body(body).await.unwrap();
        assert!(r.status().is_success(), "publishing {path}: {}", r.status());
    }

    async fn held_requests(&self, stream: &str) -> u64 {
        let url = format!("http://{}/api/streams/{stream}", self.http);
        let body = awc::Client::default().get(url).send().await.unwrap().body().await.unwrap();
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        status["held_requests"].as_u64().unwrap()
    }
}

/// A TLS connection to `addr` that trusts `roots` and offers `alpn`.
async fn connect(addr: SocketAddr, roots: &[&CertificateDer<'static>], alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(WAIT, connector.connect(ServerName::try_from("localhost").unwrap(), tcp))
        .await
        .expect("TLS handshake in time")
        .unwrap()
}

/// The certificate the server presented on `tls`.
fn presented(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

/// An HTTP/2 client on `io`; its connection task runs beside the test.
async fn h2_client<T>(io: T) -> h2::client::SendRequest<Bytes>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = h2::client::handshake(io).await.unwrap();
    actix_rt::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Sends a GET for `path` on the h2 connection and returns the response's future.
async fn h2_get(client: &mut h2::client::SendRequest<Bytes>, path: &str) -> h2::client::ResponseFuture {
    let req = http::Request::get(format!("https://localhost{path}")).body(()).unwrap();
    let mut ready = client.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(req, true).unwrap();
    *client = ready;
    response
}

/// Awaits a response and its whole body.
async fn h2_read(response: h2::client::ResponseFuture) -> (u16, Bytes) {
    let (status, _, body, _) = h2_read_headers(response).await;
    (status, body)
}

/// Awaits a response: its status, headers, whole body and largest DATA frame.
async fn h2_read_headers(response: h2::client::ResponseFuture) -> (u16, http::HeaderMap, Bytes, usize) {
    let response = tokio::time::timeout(WAIT, response).await.expect("answered in time").unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let (mut out, mut largest) = (Vec::new(), 0);
    while let Some(chunk) = tokio::time::timeout(WAIT, body.data()).await.expect("body in time") {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        largest = largest.max(chunk.len());
        out.extend_from_slice(&chunk);
    }
    (status, headers, Bytes::from(out), largest)
}

/// One HTTP/1.1 GET on `io`, `Connection: close`, read to the end.
async fn http1_get(mut io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    io.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, io.read_to_end(&mut out)).await.expect("answer in time").unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// ALPN decides the protocol on the TLS port: h2 when offered, HTTP/1.1 otherwise; the plain port takes HTTP/1.1
/// and HTTP/2 with prior knowledge (h2c).
#[actix_rt::test]
async fn https_speaks_h2_and_http1_by_alpn_and_the_plain_port_speaks_h2c() {
    let (_dir, pem, server) = Server::with_certificate("alpn").await;

    let tls = connect(server.https, &[&pem.der], &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "h2 is preferred when the client offers it");
    let mut h2 = h2_client(tls).await;
    let (status, body) = h2_read(h2_get(&mut h2, "/healthz").await).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"ok\""), "{body:?}");

    let tls = connect(server.https, &[&pem.der], &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let answer = http1_get(tls, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let tls = connect(server.https, &[&pem.der], &[]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), None, "no ALPN: HTTP/1.1");
    assert!(http1_get(tls, "/healthz").await.starts_with("HTTP/1.1 200"));

    let mut h2c = h2_client(TcpStream::connect(server.http).await.unwrap()).await;
    let (status, _) = h2_read(h2_get(&mut h2c, "/healthz").await).await;
    assert_eq!(status, 200, "h2c with prior knowledge on the plain port");
    let plain = http1_get(TcpStream::connect(server.http).await.unwrap(), "/healthz").await;
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    server.stop().await;
}

/// A player over HTTP/2 holds a blocking playlist reload and the preload-hinted part at once, on one connection
/// (here 20 playlist reloads and the part): one publication answers them all, with the part's bytes.
#[actix_rt::test]
async fn held_playlists_and_a_held_part_share_one_h2_connection_and_one_publication_answers_them() {
    let (_dir, pem, server) = Server::with_certificate("held").await;
    let media = Media::h264();
    server.publish("cam", "/init.mp4", media.init.clone()).await;
    // Enough for a complete segment: the playlist exists from then on.
    const PUBLISHED: usize = 7;
    for i in 0..PUBLISHED {
        server.publish("cam", "/parts", media.fragment(i)).await;
    }

    let mut h2 = h2_client(connect(server.https, &[&pem.der], &[b"h2"]).await).await;
    let (status, playlist) = h2_read(h2_get(&mut h2, "/live/cam/index.m3u8").await).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&playlist).into_owned();
    let hint = lines(&text, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"")[0];
    let uri = hint.split('"').nth(1).unwrap().to_owned();
    let (msn, part) = uri.trim_start_matches('p').trim_end_matches(".mp4").split_once('.').unwrap();
    let reload = format!("/live/cam/index.m3u8?_HLS_msn={msn}&_HLS_part={part}");

    let mut playlists = Vec::new();
    for _ in 0..20 {
        playlists.push(h2_get(&mut h2, &reload).await);
    }
    let part = h2_get(&mut h2, &format!("/live/cam/{uri}")).await;
    let deadline = Instant::now() + WAIT;
    while server.held_requests("cam").await < 21 {
        assert!(Instant::now() < deadline, "21 requests held on one h2 connection");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }

    let next = media.fragment(PUBLISHED);
    server.publish("cam", "/parts", next.clone()).await;
    let (status, bytes) = h2_read(part).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, next, "the held part is the fragment just published");
    for reload in playlists {
        let (status, body) = h2_read(reload).await;
        assert_eq!(status, 200);
        let text = String::from_utf8_lossy(&body).into_owned();
        assert!(text.contains(&format!("URI=\"{uri}\"")), "the reload lists the part it waited for:\n{text}");
    }
    server.stop().await;
}

/// A small playlist is handed to h2 in pieces (playback.rs, `h2_small`): over h2 it is the same bytes, with the
/// same Content-Length, as over HTTP/1.1, and its gzipped form unzips to them.
#[actix_rt::test]
async fn a_playlist_over_h2_is_the_same_bytes_as_over_http1() {
    let (_dir, pem, server) = Server::with_certificate("same").await;
    let media = Media::h264();
    server.publish("cam", "/init.mp4", media.init.clone()).await;
    for i in 0..7 {
        server.publish("cam", "/parts", media.fragment(i)).await;
    }
    let h1 = http1_get(TcpStream::connect(server.http).await.unwrap(), "/live/cam/index.m3u8").await;
    let (head, h1_body) = h1.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut h2 = h2_client(connect(server.https, &[&pem.der], &[b"h2"]).await).await;
    let mut bodies = Vec::new();
    for gzip in [false, true] {
        let mut req = http::Request::get("https://localhost/live/cam/index.m3u8");
        if gzip {
            req = req.header("accept-encoding", "gzip");
        }
        let mut ready = h2.clone().ready().await.unwrap();
        let (response, _) = ready.send_request(req.body(()).unwrap(), true).unwrap();
        h2 = ready;
        let (status, headers, body, largest) = h2_read_headers(response).await;
        assert_eq!(status, 200);
        assert!(largest <= 255, "DATA frames of at most 255 bytes, not {largest}");
        assert_eq!(headers["content-length"].to_str().unwrap(), body.len().to_string());
        assert_eq!(headers.contains_key("content-encoding"), gzip);
        bodies.push(body);
    }
    assert_eq!(String::from_utf8_lossy(&bodies[0]), h1_body);
    assert!(bodies[0].len() > 255 && bodies[1].len() > 255, "more than one piece each");
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bodies[1][..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, h1_body);
    server.stop().await;
}

/// Waits until a new handshake presents `want`.
async fn wait_presented(addr: SocketAddr, roots: &[&CertificateDer<'static>], want: &CertificateDer<'static>) {
    let deadline = Instant::now() + WAIT;
    while presented(&connect(addr, roots, &[]).await) != *want {
        assert!(Instant::now() < deadline, "the new certificate was not picked up");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A renewal (new files) is served from the next handshake on, without a restart; a broken renewal (not PEM, or a
/// key of another certificate) is refused and the certificate before stays in service; open connections keep
/// working throughout.
#[actix_rt::test]
async fn the_certificate_is_reloaded_when_its_files_change_and_a_broken_one_is_refused() {
    let dir = Dir::new("reload");
    let (first, second, third) = (certificate("first"), certificate("second"), certificate("third"));
    let roots = [&first.der, &second.der, &third.der];
    dir.write(&first.cert, &first.key);
    let server = Server::start(&dir).await;
    let open = connect(server.https, &roots, &[b"h2"]).await;
    assert_eq!(presented(&open), first.der);
    let mut open = h2_client(open).await;

    dir.write(&second.cert, &second.key);
    wait_presented(server.https, &roots, &second.der).await;

    // A certificate with the key of another: refused at the next check; the second stays.
    dir.write(&third.cert, &first.key);
    let refused = server.certificates.reload().unwrap_err().to_string();
    assert!(refused.contains("does not belong"), "a key that is not the certificate's is refused: {refused}");
    dir.write("not a certificate", &third.key);
    assert!(server.certificates.reload().is_err(), "a file that is not PEM is refused");
    actix_rt::time::sleep(Duration::from_millis(1500)).await; // past the server's own check of the files
    assert_eq!(presented(&connect(server.https, &roots, &[]).await), second.der, "the second stays in service");

    // Fixed: picked up by the file check alone (what a SIGHUP does is `reload()`, tested above).
    dir.write(&third.cert, &third.key);
    wait_presented(server.https, &roots, &third.der).await;
    let (status, _) = h2_read(h2_get(&mut open, "/healthz").await).await;
    assert_eq!(status, 200, "the connection made with the first certificate still works");
    server.stop().await;
}

/// Loading fails clearly on files that are missing or hold no certificate or key.
#[test]
fn certificates_that_cannot_be_used_are_errors() {
    let dir = Dir::new("errors");
    let pem = certificate("errors");
    assert!(Certificates::load(dir.cert(), dir.key()).unwrap_err().to_string().contains("cert.pem"), "missing");
    dir.write(&pem.cert, "");
    let e = Certificates::load(dir.cert(), dir.key()).unwrap_err().to_string();
    assert!(e.contains("key.pem") && e.contains("private key"), "{e}");
    dir.write(&pem.key, &pem.key);
    let e = Certificates::load(dir.cert(), dir.key()).unwrap_err().to_string();
    assert!(e.contains("no CERTIFICATE"), "{e}");
    dir.write(&pem.cert, &pem.key);
    assert!(Certificates::load(dir.cert(), dir.key()).is_ok());
}

/// The per-address connection limit holds on the TLS listener too: a connection over it is closed right after its
/// handshake, before it can send a request, and the next one once a slot is free is served.
#[actix_rt::test]
async fn tls_connections_over_the_per_address_limit_are_closed() {
    let dir = Dir::new("limits");
    let pem = certificate("limits");
    dir.write(&pem.cert, &pem.key);
    let root = pem.der.clone();
    let limits = playlists_actors::http::limits::Limits { max_connections_per_addr: 2, ..Default::default() };
    let server = Server::start_with(&dir, EngineConfig { limits, ..EngineConfig::default() }).await;
    let first = connect(server.https, &[&root], &[b"http/1.1"]).await;
    let _second = connect(server.https, &[&root], &[b"http/1.1"]).await;
    let mut third = connect(server.https, &[&root], &[b"http/1.1"]).await;
    let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, third.read_to_end(&mut out)).await.expect("closed in time");
    assert!(read.is_err() || out.is_empty(), "no answer on a refused connection: {}", String::from_utf8_lossy(&out));
    drop(first);
    // The slot is given back once the server sees the first one close.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let answer = http1_get(connect(server.https, &[&root], &[b"http/1.1"]).await, "/healthz").await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no connection served after one closed: {answer}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}
