//! Run with: `cargo run --release --example held_latency -- [ROUNDS] [HELD] [ADDR]` (default `200 100`, and an
//! in-process origin on 127.0.0.1:0 with 2 HTTP workers; give ADDR, e.g. `127.0.0.1:8080`, to target a running
//! server that accepts ingest from loopback).
//!
//! Held-request latency: the time from the last byte of a fragment arriving at ingest to the blocking playlist
//! requests that wait for it being answered.
//!
//! Each round: HELD kept-alive connections each send `GET /live/held/index.m3u8?_HLS_msn=M&_HLS_part=N`
//! (`Accept-Encoding: gzip`, as browsers send) for the part the playlist's `EXT-X-PRELOAD-HINT` names; once every
//! request is written the tool waits a settle time so the server holds them all, then writes one fragment to
//! ingest on another kept-alive connection. Every answer is checked: status 200, not before the fragment was
//! written, and its (gunzipped) playlist lists the part just published.
//!
//! Two clocks, both printed:
//! - the kernel's (Linux): `t0` is the kernel's stamp of the fragment's last byte leaving the client's socket,
//!   which on loopback is its arrival at the server's (`SO_TIMESTAMPING`, software transmit stamp), and each
//!   answer's time is the kernel's stamp of its arrival at the client's socket (`SO_TIMESTAMPNS`). That is the
//!   server's own latency, whenever this one client thread gets round to reading: "answer arrived", the
//!   headline.
//! - the client's: `Instant`s taken when the client's thread reads each response's first and last byte, from just
//!   before the fragment's write. These add the client's own scheduling: the HELD responses are read one after
//!   another by one thread that shares the machine's cores with the server.
//!
//! `HELD_READ=after` keeps the client off the CPU (asleep) for 5 ms once the fragment is written, as players on
//! other machines would be, and reads the answers afterwards; the kernel stamps still say when each one came.
//! By default (`live`) the client reads the answers as they come, competing with the server for the cores.
//!
//! With `HELD_SPLIT=1` (in-process origin only) it also reports where the time goes: when the stream's edge moved,
//! as seen by a watch receiver on the client's thread; when the ingest `POST` was answered; the round trip of
//! `GET /healthz`; `Engine::publish_fragment` (actor path, no HTTP); and `Stream::publish` alone (data plane, at
//! gzip levels 4 and 1). The watcher adds one more wakeup per round, so the headline runs go without it.
//! `HELD_SETTLE_MS` changes the settle time (default 20 ms); `HELD_WORKERS` the in-process origin's HTTP workers
//! (default 2); `HELD_GZIP` its playlist gzip level (default: `Options`' default); `HELD_PIN=1` pins its workers
//! one per CPU and starts the stream's actor on the ingest's worker, as `playlists --pin-workers` does.
//!
//! `HELD_INGEST` chooses how the fragment arrives: `upload` (the default) sends it as the next chunk of ONE long
//! chunked `POST /ingest/held`, as an encoder such as ffmpeg does; `parts` sends each fragment as its own
//! `POST /ingest/held/parts` request, which adds the request's own routing to the path.
//!
//! The client is raw HTTP/1.1 over tokio `TcpStream` on ONE thread (a current-thread runtime); the origin runs in
//! the same process on its own threads.
//!
//! `HELD_PROTO=h2` sends the HELD blocking requests as HTTP/2 streams over TLS instead, spread over
//! `HELD_H2_CONNS` connections (default 10: 10 held streams per connection for HELD=100), with the `h2` crate over
//! tokio-rustls, on the same one client thread. The in-process origin then runs through the crate's own
//! `serve_engine` (the `serve()` the binary runs) with a plain and a TLS listener, on a certificate made in the
//! process with rcgen; ingest and the control requests stay on plain HTTP/1.1, as an encoder beside the players
//! would publish. Against a running server (ADDR given), `HELD_TLS_ADDR` is its TLS address and `HELD_TLS_CA` a PEM
//! file of the certificate it presents (for the name `localhost`). Only the client's clock applies (no per-stream
//! kernel stamps: the answers of 10 streams share one socket and TLS records): "client read: first byte" is when
//! the response's HEADERS have been decoded, "whole response" when its body's last DATA frame has, each as the
//! client thread gets round to it. So compare h1 and h2 on the client-read lines, in `live` mode (`after` adds its
//! 5 ms pause to every client-clock figure).
//!
//! Hostile load, on a thread and runtime of its own (`support/hostile.rs`), against the plain HTTP listener, opened
//! after the held connections and all open before the first round: `HELD_SLOW_HEADERS=N` connections that write a
//! request head one byte a second and never finish it, and `HELD_SILENT_CHUNKED=N` that send
//! `POST /ingest/x HTTP/1.1` with `Transfer-Encoding: chunked` and then nothing. Both reconnect when the server
//! closes them (its request-head timeout, its ingest body timeout), so N stay open; a connect that fails, or a
//! connection closed at once, counts as a refusal and backs off 50 ms (a server that caps connections per address
//! refuses the excess, and the tool goes on). The report gives, over the rounds, how many were open as each
//! fragment was written (min / mean), and the closes, reconnects and refusals. Every client here is 127.0.0.1,
//! so the in-process origin's per-address limits (README "Limits") would refuse most hostile connections: it sets
//! `HELD_CONN_CAP` per address (default 0, no limit, so that every hostile connection stays open: the worst case
//! for the held requests) and no limit on held requests per address. The tool raises its soft open-files limit to
//! the hard one.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::{App, HttpServer};
use bytes::Bytes;
use playlists::fmp4::{self, Item, Splitter};
use playlists_actors::pinning::Pinning;
use playlists_actors::tls::Certificates;
use playlists_actors::{Engine, EngineConfig, Listeners, ServeConfig, TlsListener};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const STREAM: &str = "held";
/// Time given to the server to read and park every held request once they are all written (milliseconds;
/// `HELD_SETTLE_MS` overrides it).
const SETTLE_MS: u64 = 20;
/// With `HELD_READ=after`: how long the client stays off the CPU once the fragment is written.
const DEFER: Duration = Duration::from_millis(5);

/// One kept-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    scratch: Box<[u8]>,
}

/// A response, read whole.
struct Response {
    status: u16,
    gzip: bool,
    body: Vec<u8>,
    first_byte: Instant,
    last_byte: Instant,
    /// When the kernel received the response's first bytes (`SO_TIMESTAMPNS`; Linux only): the moment the
    /// server's write of the answer reached this socket, however late this thread got round to reading it.
    arrived: Option<SystemTime>,
}

#[path = "support/arrival.rs"]
mod arrival;
#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/stats.rs"]
mod stats;

use stats::summary;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    async fn open(addr: SocketAddr) -> Res<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        arrival::enable(&stream)?;
        Ok(Self { stream, buf: Vec::with_capacity(16 << 10), scratch: vec![0; 64 << 10].into_boxed_slice() })
    }

    async fn send(&mut self, head: &str, body: &[u8]) -> Res<()> {
        self.stream.write_all(head.as_bytes()).await?;
        if !body.is_empty() {
            self.stream.write_all(body).await?;
        }
        Ok(())
    }

    /// Reads what the socket has (at least one byte) onto the end of `buf`; returns how many bytes and, on
    /// Linux, when the kernel received them.
    async fn read_some(&mut self) -> Res<(usize, Option<SystemTime>)> {
        let (n, at) = arrival::read(&self.stream, &mut self.scratch).await?;
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok((n, at))
    }

    /// Reads one response with a `Content-Length`.
    async fn read(&mut self) -> Res<Response> {
        let mut first_byte = (!self.buf.is_empty()).then(Instant::now);
        let mut arrived = None;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            let (n, at) = self.read_some().await?;
            if n == 0 {
                return Err("connection closed".into());
            }
            first_byte.get_or_insert_with(Instant::now);
            arrived = arrived.or(at);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).ok_or("bad status line")?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("no content-length")?;
        let gzip = head.lines().any(|l| l.starts_with("content-encoding:") && l.contains("gzip"));
        while self.buf.len() < head_end + length {
            if self.read_some().await?.0 == 0 {
                return Err("connection closed".into());
            }
        }
        let last_byte = Instant::now();
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        let first_byte = first_byte.unwrap_or(last_byte);
        Ok(Response { status, gzip, body, first_byte, last_byte, arrived })
    }

    async fn request(&mut self, head: &str, body: &[u8]) -> Res<Response> {
        self.send(head, body).await?;
        self.read().await
    }
}

fn get(path: &str, gzip: bool) -> String {
    let enc = if gzip { "Accept-Encoding: gzip\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{enc}\r\n")
}

fn post(path: &str, len: usize) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: video/mp4\r\nContent-Length: {len}\r\n\r\n")
}

/// The committed fixture, split; fragments past its end loop it with a continuous timeline.
struct Media {
    init: Bytes,
    fragments: Vec<Bytes>,
    loop_ticks: Vec<(u32, u64)>,
}

impl Media {
    fn load() -> Res<Self> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/h264_aac.mp4");
        let file = std::fs::read(path)?;
        let mut s = Splitter::new(file.len());
        s.push(&file);
        let (mut init, mut fragments, mut loop_ticks) = (None, Vec::new(), Vec::<(u32, u64)>::new());
        while let Some(item) = s.next_item()? {
            match item {
                Item::Init(i) => init = Some(i.bytes.clone()),
                Item::Fragment(f) => {
                    for run in &f.tracks {
                        match loop_ticks.iter_mut().find(|(t, _)| *t == run.track_id) {
                            Some((_, d)) => *d += run.duration,
                            None => loop_ticks.push((run.track_id, run.duration)),
                        }
                    }
                    fragments.push(f.bytes);
                }
            }
        }
        Ok(Self { init: init.ok_or("the fixture has no init")?, fragments, loop_ticks })
    }

    fn fragment(&self, i: usize) -> Res<Bytes> {
        let n = self.fragments.len();
        let round = (i / n) as u64;
        let f = &self.fragments[i % n];
        if round == 0 {
            return Ok(f.clone());
        }
        let shift = |track| self.loop_ticks.iter().find(|(t, _)| *t == track).map_or(0, |(_, d)| d * round);
        Ok(fmp4::shift_decode_times(f, shift)?)
    }
}

/// Starts the origin in this process, on its own thread and actix system.
fn start_origin(workers: usize, pin: bool) -> Res<(SocketAddr, Engine)> {
    let (tx, rx) = std::sync::mpsc::channel::<Res<(SocketAddr, Engine)>>();
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        let served = system.block_on(async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let pinning = pin.then(Pinning::new).transpose()?;
            let engine = Engine::start(engine_config(pin)).map_err(std::io::Error::other)?;
            let routes = engine.routes();
            let handle = engine.clone();
            let server = HttpServer::new(move || {
                if let Some(p) = &pinning {
                    if let Err(e) = p.pin_current_thread() {
                        eprintln!("origin: a worker not pinned: {e}");
                    }
                }
                App::new().configure(routes.clone())
            })
            .workers(workers)
            .disable_signals()
            .listen(listener)?
            .run();
            let _ = tx.send(Ok((addr, handle)));
            server.await
        });
        if let Err(e) = served {
            eprintln!("origin: {e}");
        }
    });
    rx.recv_timeout(Duration::from_secs(10))?
}

/// The in-process origin's engine settings: `HELD_GZIP`, and with `pin` the stream's actor on the ingest's worker,
/// as `playlists --pin-workers` does.
fn engine_config(pin: bool) -> EngineConfig {
    let mut config = EngineConfig::default();
    if let Some(level) = std::env::var("HELD_GZIP").ok().and_then(|v| v.parse().ok()) {
        config.options.gzip_level = level;
    }
    config.actors_on_ingest_workers = pin;
    config.limits.max_connections_per_addr =
        std::env::var("HELD_CONN_CAP").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    config.limits.max_held_per_addr = 0;
    config
}

/// A directory holding the in-process origin's certificate files, removed at exit.
struct CertDir(std::path::PathBuf);

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the held requests need to reach a TLS listener.
struct Tls {
    addr: SocketAddr,
    root: CertificateDer<'static>,
    conns: usize,
}

/// Starts the origin in this process through `serve_engine` (the binary's `serve()`), with a plain and a TLS
/// listener and a certificate made here: `(plain, tls)` addresses, the engine, the certificate.
fn start_origin_tls(
    workers: usize,
    pin: bool,
) -> Res<(SocketAddr, SocketAddr, Engine, CertificateDer<'static>, CertDir)> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let dir = CertDir(std::env::temp_dir().join(format!("held-latency-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert, made.cert.pem())?;
    std::fs::write(&key, made.signing_key.serialize_pem())?;
    let root = made.cert.der().clone();
    let (tx, rx) = std::sync::mpsc::channel::<Res<(SocketAddr, SocketAddr, Engine)>>();
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        let served = system.block_on(async move {
            let http = std::net::TcpListener::bind("127.0.0.1:0")?;
            let tls = std::net::TcpListener::bind("127.0.0.1:0")?;
            let (addr, tls_addr) = (http.local_addr()?, tls.local_addr()?);
            let certificates = Arc::new(Certificates::load(cert, key).map_err(std::io::Error::other)?);
            let engine = Engine::start(engine_config(pin)).map_err(std::io::Error::other)?;
            let config = ServeConfig {
                engine: EngineConfig::default(),
                demo: false,
                shutdown_timeout: Duration::from_secs(1),
                workers,
                pin_workers: pin,
            };
            let listeners = Listeners { http, tls: Some(TlsListener { listener: tls, certificates }), rtmp: None };
            let _ = tx.send(Ok((addr, tls_addr, engine.clone())));
            playlists_actors::serve_engine(engine, config, listeners, std::future::pending()).await
        });
        if let Err(e) = served {
            eprintln!("origin: {e}");
        }
    });
    let (addr, tls_addr, engine) = rx.recv_timeout(Duration::from_secs(10))??;
    Ok((addr, tls_addr, engine, root, dir))
}

/// An HTTP/2 connection over TLS (ALPN `h2` only); its connection task runs on the client's thread.
async fn h2_connect(tls: &Tls) -> Res<h2::client::SendRequest<Bytes>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(tls.root.clone())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(tls.addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost")?;
    let io = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    if io.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the server did not choose h2".into());
    }
    let (client, connection) = h2::client::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("h2 connection: {e}");
        }
    });
    Ok(client)
}

/// One held request as an HTTP/2 stream on `client`, read whole (client clock only).
async fn h2_held(client: h2::client::SendRequest<Bytes>, path: &str, written: &AtomicUsize) -> Res<Response> {
    let req = http::Request::get(format!("https://localhost{path}")).header("accept-encoding", "gzip").body(())?;
    let sent = async {
        let mut client = client.ready().await?;
        Res::Ok(client.send_request(req, true)?.0)
    }
    .await;
    written.fetch_add(1, Ordering::Release);
    let response = sent?.await?;
    let first_byte = Instant::now();
    let status = response.status().as_u16();
    let gzip = response.headers().get("content-encoding").is_some_and(|v| v.as_bytes() == b"gzip");
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok(Response { status, gzip, body: out, first_byte, last_byte: Instant::now(), arrived: None })
}

/// Raises the soft limit of open files to the hard one (the hostile connections need thousands).
fn raise_open_files() {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            if soft < hard {
                if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                    eprintln!("open files limit stays at {soft}: {e}");
                }
            }
        }
    }
}

/// The part the playlist's preload hint names, `(msn, part)`.
async fn hint(control: &mut Conn) -> Res<(u64, u32)> {
    let r = control.request(&get(&format!("/live/{STREAM}/index.m3u8"), false), &[]).await?;
    let text = String::from_utf8_lossy(&r.body);
    let uri = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p"))
        .and_then(|l| l.strip_suffix(".mp4\""))
        .ok_or("the playlist has no part preload hint")?;
    let (msn, part) = uri.split_once('.').ok_or("bad hint")?;
    Ok((msn.parse()?, part.parse()?))
}

/// The `"last"` position of an ingest summary.
fn last_published(json: &[u8]) -> Res<String> {
    let text = String::from_utf8_lossy(json);
    let rest = text.split_once("\"last\":\"").ok_or("no \"last\" in the ingest summary")?.1;
    Ok(rest.split_once('"').ok_or("bad ingest summary")?.0.to_owned())
}

/// Whether a held answer lists the part `position` ("M.N").
fn lists_part(r: &Response, position: &str) -> bool {
    let mut text = String::new();
    let ok = if r.gzip {
        flate2::read::GzDecoder::new(&r.body[..]).read_to_string(&mut text).is_ok()
    } else {
        String::from_utf8(r.body.clone()).map(|t| text = t).is_ok()
    };
    let uri = format!("URI=\"p{position}.mp4\"");
    ok && text.lines().any(|l| l.starts_with("#EXT-X-PART:") && l.contains(&uri))
}

/// The data plane's own cost of publishing one part (manifest, part ring, playlist rendered in full and delta
/// form and gzipped at `gzip_level`, watch send), timed on a separate `Playlists` with no HTTP and no actor, and
/// the cost of the gzip alone (the same playlist bytes compressed by `Rendered::new`).
fn publish_cost(media: &Media, gzip_level: u32, n: usize) -> Res<(Vec<Duration>, usize)> {
    let options = playlists::Options { gzip_level, ..playlists::Options::default() };
    let data = playlists::Playlists::new(options)?;
    let stream = data.start(&playlists::StreamId::parse("cost")?)?;
    let init = Arc::new(playlists::fmp4::Init::parse(media.init.clone())?);
    stream.set_init(Arc::clone(&init))?;
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let fragment = playlists::fmp4::Fragment::parse(media.fragment(i)?, &init)?;
        let t = Instant::now();
        stream.publish(fragment, std::time::SystemTime::now())?;
        took.push(t.elapsed());
    }
    let size = stream.latest_playlist().map_or(0, |r| r.body(false, false).len());
    // The first parts render small playlists: keep the steady state.
    Ok((took.split_off(n / 2), size))
}

/// Records when the stream's edge moves, as seen by a task on the client's thread: the moment the part was
/// published and the held requests' waiters were woken.
fn watch_edge(engine: &Engine) -> Res<Arc<std::sync::Mutex<Vec<Instant>>>> {
    let id = playlists::StreamId::parse(STREAM)?;
    let stream = engine.playlists().stream(&id).ok_or("no stream to watch")?;
    let mut rx = stream.subscribe();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = Arc::clone(&seen);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let now = Instant::now();
            out.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(now);
        }
    });
    Ok(seen)
}

async fn run(addr: SocketAddr, engine: Option<Engine>, rounds: usize, held: usize, tls: Option<Tls>) -> Res<()> {
    let media = Media::load()?;
    let mut ingest = Conn::open(addr).await?;
    arrival::enable_sent(&ingest.stream)?;
    let mut control = Conn::open(addr).await?;
    let r = ingest
        .request(&post(&format!("/ingest/{STREAM}/init.mp4"), media.init.len()).replace("POST", "PUT"), &media.init)
        .await?;
    if r.status != 200 {
        return Err(format!("PUT init: {} {}", r.status, String::from_utf8_lossy(&r.body)).into());
    }
    let parts_path = format!("/ingest/{STREAM}/parts");
    let upload = std::env::var("HELD_INGEST").map_or(true, |v| v != "parts");
    let mut next = 0;
    // A few segments first, so that the playlist is rendered and carries a preload hint.
    if upload {
        let head = format!(
            "POST /ingest/{STREAM} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: video/mp4\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        ingest.send(&head, &[]).await?;
        // An upload carries its own init first, as an encoder's does.
        ingest.send(&format!("{:x}\r\n", media.init.len()), &media.init).await?;
        ingest.send("\r\n", &[]).await?;
        for _ in 0..12 {
            let f = media.fragment(next)?;
            next += 1;
            ingest.send(&format!("{:x}\r\n", f.len()), &f).await?;
            ingest.send("\r\n", &[]).await?;
        }
        // The upload is answered only when it ends: wait until the status API counts all 12 parts.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = control.request(&get(&format!("/api/streams/{STREAM}"), false), &[]).await?;
            if String::from_utf8_lossy(&r.body).contains("\"parts\":12,") {
                break;
            }
            if Instant::now() > deadline {
                return Err("the uploaded fragments were not all published".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        for _ in 0..12 {
            let f = media.fragment(next)?;
            next += 1;
            let r = ingest.request(&post(&parts_path, f.len()), &f).await?;
            if r.status != 200 {
                return Err(format!("POST part: {} {}", r.status, String::from_utf8_lossy(&r.body)).into());
            }
        }
    }
    let mut conns = Vec::with_capacity(held);
    let mut h2_conns = Vec::new();
    match &tls {
        None => {
            for _ in 0..held {
                conns.push(Conn::open(addr).await?);
            }
        }
        Some(tls) => {
            for _ in 0..tls.conns.clamp(1, held) {
                h2_conns.push(h2_connect(tls).await?);
            }
        }
    }
    // Hostile connections, once the held ones are open; all of them open before the first round.
    let env_count = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    let (slow, silent) = (env_count("HELD_SLOW_HEADERS"), env_count("HELD_SILENT_CHUNKED"));
    let hostile = if slow + silent > 0 {
        let h = hostile::Hostile::start(addr, slow, silent)?;
        if !h.wait_open(Duration::from_secs(30)).await {
            let (a, b) = h.open();
            eprintln!("held_latency: only {a} slow-header and {b} silent-chunked connections open after 30 s");
        }
        Some(h)
    } else {
        None
    };
    let mut hostile_open = Vec::with_capacity(rounds);
    // With HELD_SPLIT=1 and the origin in process: also when the edge moved and when ingest answered.
    let split = std::env::var("HELD_SPLIT").is_ok_and(|v| v == "1");
    let settle =
        Duration::from_millis(std::env::var("HELD_SETTLE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(SETTLE_MS));
    let edges = match (&engine, split) {
        (Some(e), true) => Some(watch_edge(e)?),
        _ => None,
    };
    let (mut to_edge, mut edge_to_last, mut ingest_answered) = (Vec::new(), Vec::new(), Vec::new());
    let (mut first, mut full, mut slowest) = (Vec::new(), Vec::new(), Vec::new());
    let (mut kernel, mut kernel_slowest) = (Vec::new(), Vec::new());
    let defer = std::env::var("HELD_READ").is_ok_and(|v| v == "after");
    let (mut early, mut wrong) = (0usize, 0usize);
    let started = Instant::now();
    for _ in 0..rounds {
        let (msn, part) = hint(&mut control).await?;
        let path = Arc::new(format!("/live/{STREAM}/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"));
        let head = Arc::new(get(&path, true));
        let written = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(held);
        for mut c in conns.drain(..) {
            let (head, written) = (Arc::clone(&head), Arc::clone(&written));
            tasks.push(tokio::spawn(async move {
                let sent = c.send(&head, &[]).await;
                written.fetch_add(1, Ordering::Release);
                sent?;
                let r = c.read().await?;
                Res::Ok((Some(c), r))
            }));
        }
        for i in 0..if h2_conns.is_empty() { 0 } else { held } {
            let client = h2_conns[i % h2_conns.len()].clone();
            let (path, written) = (Arc::clone(&path), Arc::clone(&written));
            tasks.push(tokio::spawn(async move { Res::Ok((None, h2_held(client, &path, &written).await?)) }));
        }
        while written.load(Ordering::Acquire) < held {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(settle).await;
        if let Some(h) = &hostile {
            hostile_open.push(h.open());
        }
        let f = media.fragment(next)?;
        next += 1;
        let (head, body) = if upload {
            // Size line, fragment, and the chunk's CRLF in one write: its last byte is the fragment's.
            let mut chunk = format!("{:x}\r\n", f.len()).into_bytes();
            chunk.extend_from_slice(&f);
            chunk.extend_from_slice(b"\r\n");
            (String::new(), Bytes::from(chunk))
        } else {
            (post(&parts_path, f.len()), f)
        };
        // The client clock's t0 is taken before the write, not after: the last byte reaches the server inside the
        // write, and the server may answer before this thread runs again. So the client-read figures include the
        // write itself (conservative).
        let t0 = Instant::now();
        let before_wall = SystemTime::now();
        ingest.send(&head, &body).await?;
        // The kernel clock's t0: its stamp of the last byte's departure, on loopback its arrival at the server
        // (without stamps, the time before the write).
        let t0_wall = arrival::last_sent(&ingest.stream).unwrap_or(before_wall);
        if defer {
            // Off the CPU, as a player on another machine would be: the answers wait in the sockets, and their
            // kernel timestamps say when they came.
            std::thread::sleep(DEFER);
        }
        let mut answers = Vec::with_capacity(held);
        for t in tasks {
            let (c, r) = t.await??;
            conns.extend(c);
            answers.push(r);
        }
        let (position, posted_at) = if upload {
            // The fragment went where the preload hint said.
            (format!("{msn}.{part}"), None)
        } else {
            let posted = ingest.read().await?;
            if posted.status != 200 {
                return Err(format!("POST part: {} {}", posted.status, String::from_utf8_lossy(&posted.body)).into());
            }
            (last_published(&posted.body)?, Some(posted.first_byte))
        };
        let (mut round_max, mut round_arrived) = (Duration::ZERO, None::<Duration>);
        for r in &answers {
            let arrived = r.arrived.map(|a| a.duration_since(t0_wall));
            if r.first_byte < t0 || matches!(arrived, Some(Err(_))) {
                early += 1;
                continue;
            }
            if r.status != 200 || !lists_part(r, &position) {
                wrong += 1;
                continue;
            }
            first.push(r.first_byte - t0);
            full.push(r.last_byte - t0);
            round_max = round_max.max(r.last_byte - t0);
            if let Some(Ok(a)) = arrived {
                kernel.push(a);
                round_arrived = round_arrived.max(Some(a));
            }
        }
        slowest.push(round_max);
        kernel_slowest.extend(round_arrived);
        if let Some(edges) = &edges {
            let mut seen = edges.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(e) = seen.drain(..).find(|e| *e >= t0) {
                to_edge.push(e - t0);
                edge_to_last.push((t0 + round_max).saturating_duration_since(e));
            }
            if let Some(at) = posted_at {
                ingest_answered.push(at - t0);
            }
        }
    }
    println!(
        "held_latency: {rounds} rounds x {held} held blocking playlist requests (gzip), origin {addr}, ingest by {}, \
         client reads {}, {:.1} s",
        if upload { "one chunked upload" } else { "POST /parts per fragment" },
        if defer { "after a 5 ms pause" } else { "as answers come" },
        started.elapsed().as_secs_f64()
    );
    if let Some(tls) = &tls {
        println!(
            "held requests over HTTP/2 + TLS to {}: {} connections, ~{} streams each (client clock only)",
            tls.addr,
            h2_conns.len(),
            held.div_ceil(h2_conns.len().max(1))
        );
    }
    if let Some(h) = &hostile {
        let c = &h.counters;
        let stat = |f: fn(&(usize, usize)) -> usize| {
            let min = hostile_open.iter().map(f).min().unwrap_or(0);
            let mean = hostile_open.iter().map(f).sum::<usize>() as f64 / hostile_open.len().max(1) as f64;
            format!("min {min} mean {mean:.0}")
        };
        println!(
            "hostile: {} slow-header connections (open as fragments were written: {}), {} silent-chunked ({}); \
             closed by the server {}, reconnects {}, refused or closed at once {}",
            h.wanted.0,
            stat(|o| o.0),
            h.wanted.1,
            stat(|o| o.1),
            c.closed.load(Ordering::Relaxed),
            c.reconnects.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed)
        );
    }
    println!("answers before the fragment was written: {early}; wrong status or playlist: {wrong}");
    summary("client read: first byte", first);
    summary("client read: whole response", full);
    summary("client read: last of round", slowest);
    if !kernel.is_empty() {
        summary("answer arrived (kernel)", kernel);
        summary("kernel: last of round", kernel_slowest);
    }
    if edges.is_some() {
        summary("edge moved (seen by a watcher)", to_edge);
        summary("edge moved -> last answer", edge_to_last);
        summary("ingest answered (POST response)", ingest_answered);
        let mut rtt = Vec::new();
        for _ in 0..400 {
            let t = Instant::now();
            control.request(&get("/healthz", false), &[]).await?;
            rtt.push(t.elapsed());
        }
        summary("GET /healthz round trip", rtt.split_off(200));
        if let Some(engine) = &engine {
            let id = playlists::StreamId::parse("held-api")?;
            engine.publish_init(&id, media.init.clone()).await?;
            let mut took = Vec::new();
            for i in 0..400 {
                let f = media.fragment(i)?;
                let t = Instant::now();
                engine.publish_fragment(&id, f).await?;
                took.push(t.elapsed());
            }
            summary("Engine::publish_fragment (no HTTP)", took.split_off(200));
        }
        for level in [4, 1] {
            let (took, size) = publish_cost(&media, level, 400)?;
            summary(&format!("Stream::publish, gzip {level}, {size} B"), took);
        }
    }
    // The server's own view: from each publication to the held answers it released being ready to send
    // (the `playlists_hold_release_seconds` histogram of /metrics; without the client's reading).
    let metrics = control.request(&get("/metrics", false), &[]).await?;
    let text = String::from_utf8_lossy(&metrics.body);
    let buckets: Vec<(f64, u64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("playlists_hold_release_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, n) = l.split_once("\"} ")?;
            Some((le.parse().ok()?, n.trim().parse().ok()?))
        })
        .collect();
    if let Some(&(_, total)) = buckets.last() {
        let under = |q: f64| buckets.iter().find(|(_, n)| *n as f64 >= q * total as f64).map(|(le, _)| *le);
        let show = |q: f64| under(q).map_or("?".to_owned(), |le| format!("<= {:.0} µs", le * 1e6));
        println!(
            "server: publication -> held answer ready   n={total}  p50 {}  p99 {}  (histogram buckets)",
            show(0.5),
            show(0.99)
        );
    }
    if early + wrong > 0 {
        return Err("some held requests were not answered as expected".into());
    }
    Ok(())
}

fn main() -> Res<()> {
    raise_open_files();
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let held: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let h2 = match std::env::var("HELD_PROTO").as_deref() {
        Err(_) | Ok("h1") => false,
        Ok("h2") => true,
        Ok(other) => return Err(format!("HELD_PROTO is h1 or h2, not {other}").into()),
    };
    let h2_conns = std::env::var("HELD_H2_CONNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut _certificate_files = None;
    let (addr, engine, tls) = match args.next() {
        Some(a) => {
            let tls = if h2 {
                let tls_addr =
                    std::env::var("HELD_TLS_ADDR").map_err(|_| "HELD_PROTO=h2 with ADDR needs HELD_TLS_ADDR")?;
                let ca = std::env::var("HELD_TLS_CA").map_err(|_| "HELD_PROTO=h2 with ADDR needs HELD_TLS_CA")?;
                let root = CertificateDer::from_pem_slice(&std::fs::read(ca)?)?;
                Some(Tls { addr: tls_addr.parse()?, root, conns: h2_conns })
            } else {
                None
            };
            (a.parse()?, None, tls)
        }
        None => {
            let workers = std::env::var("HELD_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
            let pin = std::env::var("HELD_PIN").is_ok_and(|v| v == "1");
            if h2 {
                let (addr, tls_addr, engine, root, dir) = start_origin_tls(workers, pin)?;
                _certificate_files = Some(dir);
                (addr, Some(engine), Some(Tls { addr: tls_addr, root, conns: h2_conns }))
            } else {
                let (addr, engine) = start_origin(workers, pin)?;
                (addr, Some(engine), None)
            }
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(addr, engine, rounds.max(1), held.max(1), tls))
}
