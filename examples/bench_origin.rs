//! Run with: `cargo run --release --example bench_origin -- [ADDR] [WORKERS] [TLS_ADDR CERT KEY]` (default
//! `127.0.0.1:8090 2`, plain HTTP only).
//!
//! An origin for HTTP serving benchmarks (`benches/http.sh`): the playlists engine and its actix-web routes, with
//! no demo stream, and two live streams of synthetic parts whose sizes are exact:
//!
//! - `b25k`: parts of 25,000 bytes, `b64k`: parts of 65,536 bytes, 200 ms each, every part independent, published
//!   at once for a full playlist window (24 s of segments), then kept: nothing ends or evicts them, so a part URL
//!   stays valid for the whole run and the playlists stay live (no `EXT-X-ENDLIST`).
//!
//! The parts are published through `Stream::publish_part` (the Rust API for embedding without fMP4 parsing): the
//! bytes are arbitrary, which is all an HTTP serving benchmark needs. Once ready it prints one line per URL,
//! `URL <name> <path>`, then `READY`, and serves until killed.
//!
//! With `TLS_ADDR CERT KEY` (PEM files) it also listens with TLS on `TLS_ADDR` (HTTP/2 or HTTP/1.1 by ALPN), and
//! then serves through the crate's own [`serve_engine`](playlists_actors::serve_engine), the `serve()` the binary
//! runs (its TLS configuration from `Certificates`, its HTTP/2 windows, h2c on the plain listener). Without them it
//! serves plain HTTP/1.1 from an `HttpServer` of its own, as the plain benchmark always has.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::{App, HttpServer};
use bytes::Bytes;
use playlists::manifest::PartMeta;
use playlists::{Position, StreamId};
use playlists_actors::tls::Certificates;
use playlists_actors::{Engine, EngineConfig, Listeners, ServeConfig, TlsListener};

/// Media duration of one synthetic part.
const PART: Duration = Duration::from_millis(200);

/// Publishes `count` parts of `size` bytes to `name`; returns the newest part's position.
fn publish(engine: &Engine, name: &str, size: usize, count: usize) -> std::io::Result<Position> {
    let id = StreamId::parse(name).map_err(std::io::Error::other)?;
    let stream = engine.playlists().start(&id).map_err(std::io::Error::other)?;
    // Distinct, non-zero, non-compressible-looking bytes (the content does not matter to the server).
    let body: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let body = Bytes::from(body);
    let start = SystemTime::now();
    let mut last = None;
    for i in 0..count {
        let meta =
            PartMeta { duration: PART, independent: true, discontinuity: false, wallclock: start + PART * i as u32 };
        last = Some(stream.publish_part(body.clone(), meta).map_err(std::io::Error::other)?.position);
    }
    last.ok_or_else(|| std::io::Error::other("no part published"))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let workers: usize = match args.next() {
        Some(w) => w.parse().map_err(|_| std::io::Error::other("WORKERS must be a number"))?,
        None => 2,
    };
    let tls = match (args.next(), args.next(), args.next()) {
        (Some(tls_addr), Some(cert), Some(key)) => Some((tls_addr, cert, key)),
        (None, _, _) => None,
        _ => return Err(std::io::Error::other("TLS needs TLS_ADDR CERT KEY")),
    };
    let engine = Engine::start(EngineConfig::default()).map_err(std::io::Error::other)?;
    // 24 s of 200 ms parts: a full window at the default options.
    let count = 120;
    let p25 = publish(&engine, "b25k", 25_000, count)?;
    let p64 = publish(&engine, "b64k", 65_536, count)?;
    let urls = || {
        println!("URL part25k /live/b25k/p{p25}.mp4");
        println!("URL part64k /live/b64k/p{p64}.mp4");
        println!("URL playlist /live/b25k/index.m3u8");
    };
    let Some((tls_addr, cert, key)) = tls else {
        let routes = engine.routes();
        let server =
            HttpServer::new(move || App::new().configure(routes.clone())).workers(workers.max(1)).bind(&addr)?;
        urls();
        println!("READY http://{addr} workers={workers}");
        return server.run().await;
    };
    let certificates = Arc::new(Certificates::load(cert, key).map_err(std::io::Error::other)?);
    let listeners = Listeners {
        http: std::net::TcpListener::bind(&addr)?,
        tls: Some(TlsListener { listener: std::net::TcpListener::bind(&tls_addr)?, certificates }),
        rtmp: None,
    };
    let config = ServeConfig {
        engine: EngineConfig::default(),
        demo: false,
        shutdown_timeout: Duration::from_secs(1),
        workers: workers.max(1),
        pin_workers: false,
    };
    urls();
    println!("READY http://{addr} https://{tls_addr} workers={workers}");
    playlists_actors::serve_engine(engine, config, listeners, std::future::pending()).await
}
