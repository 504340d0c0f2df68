//! Shared by the integration tests: a real server on 127.0.0.1:0, fixtures, a small HTTP helper.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{App, HttpServer};
use awc::http::StatusCode;
use bytes::Bytes;
use playlists::fmp4::{self, Item, Splitter};
use playlists::StreamId;
use playlists_actors::{Engine, EngineConfig};

/// A running server.
pub struct Server {
    pub base: String,
    pub engine: Engine,
    pub client: awc::Client,
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

pub async fn start(config: EngineConfig) -> Server {
    let engine = Engine::start(config).expect("engine");
    let routes = engine.routes();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .on_connect(engine.on_connect())
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    actix_rt::spawn(server);
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    Server { base: format!("http://{addr}"), engine, client }
}

pub async fn start_default() -> Server {
    start(EngineConfig::default()).await
}

impl Server {
    /// Waits until `done` holds of the engine, a state the server reaches on its own threads; panics after 10 s.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Engine) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done(&self.engine) {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until `n` requests are held on `stream`: they reached the server and wait for a part.
    pub async fn wait_held(&self, stream: &str, n: u64) {
        let id = StreamId::parse(stream).expect("id");
        let held = |e: &Engine| e.playlists().stream(&id).map_or(0, |s| s.read_stats().counts().held);
        self.wait_until(&format!("{n} held requests on {stream}"), |e| held(e) == n).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: awc::ClientRequest, body: Option<Bytes>) -> Reply {
        let req = req.no_decompress();
        let mut resp = match body {
            Some(b) => req.send_body(b).await,
            None => req.send().await,
        }
        .expect("request");
        let body = resp.body().limit(64 << 20).await.expect("body");
        Reply { status: resp.status(), headers: resp.headers().clone(), body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path)), None).await
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.send(self.client.post(self.url(path)), Some(body.into())).await
    }

    pub async fn put(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.send(self.client.put(self.url(path)), Some(body.into())).await
    }

    /// Publishes the init and then `n` fragments of `media` to `stream` through the Rust API.
    pub async fn publish(&self, stream: &str, media: &Media, n: usize) {
        let id = StreamId::parse(stream).expect("id");
        if self.engine.playlists().stream(&id).and_then(|s| s.current_init()).is_none() {
            self.engine.publish_init(&id, media.init.clone()).await.expect("init");
        }
        self.publish_range(stream, media, 0..n).await;
    }

    /// Publishes fragments `range` of `media` (the init must be there already).
    pub async fn publish_range(&self, stream: &str, media: &Media, range: std::ops::Range<usize>) {
        let id = StreamId::parse(stream).expect("id");
        for i in range {
            self.engine.publish_fragment(&id, media.fragment(i)).await.expect("publish");
        }
    }
}

pub fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// A fixture split into its init and fragments; fragments past the end loop the file with a continuous timeline.
pub struct Media {
    pub file: Bytes,
    pub init: Bytes,
    pub fragments: Vec<Bytes>,
    ticks: HashMap<u32, u64>,
}

impl Media {
    pub fn load(name: &str) -> Self {
        let file = fixture(name);
        let mut s = Splitter::new(file.len());
        s.push(&file);
        let (mut init, mut fragments, mut ticks) = (None, Vec::new(), HashMap::new());
        while let Some(item) = s.next_item().expect("fixture splits") {
            match item {
                Item::Init(i) => init = Some(i.bytes.clone()),
                Item::Fragment(f) => {
                    for run in &f.tracks {
                        *ticks.entry(run.track_id).or_insert(0) += run.duration;
                    }
                    fragments.push(f.bytes);
                }
            }
        }
        Self { file, init: init.expect("init"), fragments, ticks }
    }

    pub fn h264() -> Self {
        Self::load("h264_aac.mp4")
    }

    /// Fragment `i`, looping the file.
    pub fn fragment(&self, i: usize) -> Bytes {
        let n = self.fragments.len();
        let round = (i / n) as u64;
        let f = &self.fragments[i % n];
        if round == 0 {
            return f.clone();
        }
        fmp4::shift_decode_times(f, |t| self.ticks.get(&t).copied().unwrap_or(0) * round).expect("shift")
    }
}

/// Parses a media playlist with an independent parser (m3u8-rs).
pub fn parse_media(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_media_playlist_res(text.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("not a media playlist ({e:?}):\n{text}"),
    }
}

/// The newest part `stream` has published, if any.
pub fn last_part(engine: &Engine, stream: &str) -> Option<playlists::Position> {
    engine.playlists().stream(&StreamId::parse(stream).ok()?).and_then(|s| s.edge().last_part)
}

/// The lines of `text` starting with `tag`.
pub fn lines<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(tag)).collect()
}

/// Sleeps a little so that a request sent concurrently is surely held by the server before the test goes on.
pub async fn settle() {
    actix_rt::time::sleep(Duration::from_millis(150)).await;
}
