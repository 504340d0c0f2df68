//! Run with: `cargo run --example embed -- [FILE.mp4] [--bind 127.0.0.1:8081]`
//!
//! Embeds the playlists engine in an application's own actix-web `App`: the engine's routes are mounted next to
//! the application's own (`/hello` here), and a fragmented MP4 file (by default the committed test fixture) is
//! published as the live stream `file` through the Rust API, with no HTTP ingest, looped at real-time pace.
//! Play it at http://127.0.0.1:8081/live/file/index.m3u8.

use actix_web::{web, App, HttpServer};
use playlists::StreamId;
use playlists_actors::{demo, Engine, EngineConfig};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut file = format!("{}/tests/fixtures/h264_aac.mp4", env!("CARGO_MANIFEST_DIR"));
    let mut bind = "127.0.0.1:8081".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => bind = args.next().unwrap_or(bind),
            _ => file = arg,
        }
    }
    let bytes = std::fs::read(&file).map_err(|e| std::io::Error::other(format!("{file}: {e}")))?;

    // Start the engine inside this actix system, before the HTTP server (whose factory runs once per worker).
    let engine = Engine::start(EngineConfig::default()).map_err(std::io::Error::other)?;
    let publisher = engine.clone();
    actix_web::rt::spawn(async move {
        let id = StreamId::parse("file").expect("a valid stream id");
        if let Err(e) = demo::run(&publisher, &id, &bytes).await {
            eprintln!("publishing {file} stopped: {e}");
        }
    });

    println!("serving http://{bind}/live/file/index.m3u8 and http://{bind}/hello");
    let routes = engine.routes();
    HttpServer::new(move || {
        App::new()
            .route("/hello", web::get().to(|| async { "hello from the host application\n" }))
            .configure(routes.clone())
    })
    // Counts connections against the engine's limits (per address, in all) and closes those over them.
    .on_connect(engine.on_connect())
    .bind(&bind)?
    .run()
    .await
}
