//! `playlists-actors`: the control plane and HTTP front end of the playlists LL-HLS server.
//!
//! # Layout
//!
//! - [`publisher`]: `Publishers` and `Publisher`, the publishing core every ingest source (HTTP, RTMP, this API,
//!   the demo) hands its inits and fragments to; re-fragmenting to the part target happens there.
//! - [`auth`]: `IngestAuth`, who may publish (tokens, per-stream keys, loopback).
//! - [`stream`]: `StreamActor`, the one writer of a live stream (rollover, publish, idle and end).
//! - [`registry`]: `Registry`, which routes stream ids to actors, creates, ends and removes streams, and re-creates
//!   an actor that died without losing what it published.
//! - [`status`]: `StatusHub`, stream events and once-a-second stats fanned out to subscribers.
//! - [`http`]: the actix-web routes (ingest, playback, API, `/ws`, `/metrics`, the status page `/`) and the one
//!   error-to-status mapping.
//! - [`ingest`]: ingest sources beside HTTP: [`ingest::rtmp`], RTMP publishing (`rtmp://host/live/{stream}`).
//! - [`config`]: the one `Config` (CLI, environment, TOML file).
//! - [`demo`]: the built-in demo stream, a committed fixture looped at real-time pace.
//! - [`pinning`]: one CPU per HTTP worker (`--pin-workers`).
//! - [`tls`]: the TLS listener's certificate, reloaded without a restart.
//!
//! # Embedding
//!
//! Start an [`Engine`] inside a running actix system and mount its routes into your own `App`:
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use actix_web::{App, HttpServer};
//! let engine = playlists_actors::Engine::start(Default::default()).expect("valid options");
//! let routes = engine.routes();
//! HttpServer::new(move || App::new().configure(routes.clone())).bind("127.0.0.1:8080")?.run().await
//! # }
//! ```

pub mod auth;
pub mod config;
pub mod demo;
pub mod http;
pub mod ingest;
pub mod pinning;
pub mod publisher;
pub mod registry;
pub mod status;
pub mod stream;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::{web, App, HttpServer};
use bytes::Bytes;
use playlists::fmp4::{Fragment, Init, Item};
use playlists::playlists::Published;
use playlists::{Options, Playlists, StreamId};

use crate::auth::IngestAuth;
use crate::http::metrics::Metrics;
use crate::http::page::{Page, DEFAULT_HLS_JS_URL};
use crate::http::AppState;
use crate::publisher::{PublishError, Publisher, Publishers, Source};
use crate::registry::{EndAll, EndStream, Registry};
use crate::status::{Sampler, StatusHub};
use crate::stream::Lifetimes;

/// What an [`Engine`] is built from.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The data plane's options.
    pub options: Options,
    /// Who may ingest.
    pub auth: IngestAuth,
    /// Idle timeout and grace period of streams.
    pub lifetimes: Lifetimes,
    /// Where the status page loads hls.js from.
    pub hls_js_url: String,
    /// Stream events buffered for WebSocket sessions before a slow one is sent a snapshot instead.
    pub event_buffer: usize,
    /// Start a stream's actor on the HTTP worker thread of the ingest request that creates it, instead of the
    /// engine's own thread: a part is then split, published and its local held requests woken without a hop
    /// between threads. Pays off with workers pinned one per CPU ([`ServeConfig::pin_workers`] sets it); unpinned,
    /// the kernel may crowd the other worker onto the publishing one's CPU (BENCHMARKS.md, held requests).
    pub actors_on_ingest_workers: bool,
    /// An ingest connection (an HTTP upload, an RTMP publish) that sends nothing for this long is cut off (HTTP:
    /// 408), so that a stalled or hostile encoder does not hold its connection and its stream forever.
    pub ingest_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            options: Options::default(),
            auth: IngestAuth::default(),
            lifetimes: Lifetimes { idle: Duration::from_secs(10), grace: Duration::from_secs(30) },
            hls_js_url: DEFAULT_HLS_JS_URL.to_owned(),
            event_buffer: status::CAPACITY,
            actors_on_ingest_workers: false,
            // Longer than any fragment an encoder sends (one per 10 s GOP at most): ffmpeg writes a fragment's
            // bytes only once it is complete.
            ingest_timeout: Duration::from_secs(30),
        }
    }
}

/// How often [`Stats`](status::Stats) are taken.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// A running engine: the caches, the registry and the status hub. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    state: web::Data<AppState>,
    /// The publisher of each stream the `publish_*` methods have published to, kept instead of asking the
    /// registry for every part.
    api: Arc<std::sync::Mutex<std::collections::HashMap<StreamId, Publisher>>>,
}

impl Engine {
    /// Starts the registry in the current actix system. Call it from inside one (`#[actix_web::main]`), before
    /// `HttpServer::new` (whose factory runs once per worker).
    pub fn start(config: EngineConfig) -> Result<Self, playlists::Error> {
        let playlists = Arc::new(Playlists::new(config.options)?);
        let hub = StatusHub::with_capacity(config.event_buffer);
        let metrics = Arc::new(Metrics::new());
        let registry = Registry::new(Arc::clone(&playlists), hub.clone(), config.lifetimes).start();
        let page = Page::new(&config.hls_js_url);
        let cache = http::playback::CacheHeaders::new(u64::from(playlists.options().target_duration));
        let publishers = Publishers::new(
            Arc::clone(&playlists),
            registry.clone(),
            hub.clone(),
            config.auth,
            config.actors_on_ingest_workers,
            config.ingest_timeout,
        );
        let state = web::Data::new(AppState {
            playlists,
            registry,
            hub,
            publishers,
            metrics,
            page,
            cache,
            actors_on_ingest_workers: config.actors_on_ingest_workers,
        });
        spawn_sampler(Arc::downgrade(&state.clone().into_inner()));
        Ok(Self { state, api: Arc::default() })
    }

    /// The Prometheus text of `/metrics`.
    pub fn render_metrics(&self) -> String {
        self.state.metrics.render(&self.state.playlists)
    }

    /// The routes, for `App::new().configure(engine.routes())`.
    pub fn routes(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        let state = self.state.clone();
        move |cfg| http::configure(cfg, state.clone())
    }

    /// The data plane.
    pub fn playlists(&self) -> &Arc<Playlists> {
        &self.state.playlists
    }

    /// The stream events.
    pub fn hub(&self) -> &StatusHub {
        &self.state.hub
    }

    /// The registry actor.
    pub fn registry(&self) -> &Addr<Registry> {
        &self.state.registry
    }

    /// Opens streams for publishing: what HTTP and RTMP ingest use, for an application's own sources.
    pub fn publishers(&self) -> &Publishers {
        &self.state.publishers
    }

    /// Publishes `item` to `id` through the publisher kept for it (opened on first use, and again once the stream
    /// it published to is gone).
    async fn publish(&self, id: &StreamId, item: Item) -> Result<Vec<Published>, PublishError> {
        let kept = self.kept().get(id).filter(|p| p.is_live()).cloned();
        let mut publisher = match kept {
            Some(p) => p,
            None => self.state.publishers.attach(id, Source::Api).await?,
        };
        let result = publisher.publish(item).await;
        let mut kept = self.kept();
        if !publisher.is_live() {
            kept.remove(id);
        } else if kept.insert(id.clone(), publisher).is_none() {
            // A new entry: drop those of streams that are gone, so the map holds live streams only.
            kept.retain(|_, p| p.is_live());
        }
        result
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<StreamId, Publisher>> {
        self.api.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the init segment of `id` (creating the stream), without HTTP.
    pub async fn publish_init(&self, id: &StreamId, init: Bytes) -> Result<Arc<Init>, PublishError> {
        let init = Arc::new(Init::parse(init)?);
        self.publish(id, Item::Init(Arc::clone(&init))).await?;
        Ok(init)
    }

    /// Publishes one fragment (moof+mdat) as the next part of `id`, without HTTP. A fragment longer than the part
    /// target becomes several parts: the first is published at once (and answered), the others follow at the pace
    /// of their media.
    pub async fn publish_fragment(&self, id: &StreamId, fragment: Bytes) -> Result<Published, PublishError> {
        let stream = self.playlists().stream(id).ok_or(playlists::Error::UnknownStream)?;
        let init = stream.current_init().ok_or(playlists::Error::NoInit)?;
        let fragment = Fragment::parse(fragment, &init)?;
        self.publish_parsed(id, fragment).await
    }

    /// Publishes an already parsed fragment, as [`publish_fragment`](Self::publish_fragment) does.
    pub async fn publish_parsed(&self, id: &StreamId, fragment: Fragment) -> Result<Published, PublishError> {
        self.publish(id, Item::Fragment(fragment)).await?.pop().ok_or_else(stopped)
    }

    /// Ends `id` (`EXT-X-ENDLIST`); false if it was not live.
    pub async fn end_stream(&self, id: &StreamId) -> bool {
        self.state.registry.send(EndStream { id: id.clone() }).await.unwrap_or(false)
    }

    /// Ends every stream, so that every player sees `EXT-X-ENDLIST`, and closes the `/ws` sessions (a close frame,
    /// so that none holds the exit): the first step of a graceful shutdown.
    pub async fn shutdown(&self) -> usize {
        let ended = self.state.registry.send(EndAll).await.unwrap_or(0);
        self.state.hub.close();
        ended
    }

    /// Sends a fault to the actor of `id` (tests of fault isolation and back-pressure).
    #[cfg(feature = "fault-injection")]
    pub async fn inject_fault(&self, id: &StreamId, fault: stream::Fault) -> bool {
        match self.state.registry.send(registry::Lookup { id: id.clone() }).await {
            Ok(Some(addr)) => addr.try_send(fault).is_ok(),
            _ => false,
        }
    }
}

/// Takes the stats once a second for as long as the engine exists (it holds only a weak reference, so a dropped
/// engine ends the task), keeps the metrics' histogram drained, and reads the ingest keys file again when it
/// changed.
fn spawn_sampler(state: std::sync::Weak<AppState>) {
    actix::spawn(async move {
        let mut sampler = Sampler::default();
        let mut every = actix::clock::interval(STATS_EVERY);
        loop {
            every.tick().await;
            let Some(state) = state.upgrade() else { break };
            state.hub.publish_stats(sampler.sample(&state.playlists));
            state.metrics.upkeep();
            if let Some(file) = &state.publishers.auth().file {
                match file.reload_if_changed() {
                    Ok(Some(n)) => tracing::info!(path = %file.path().display(), keys = n, "ingest keys file read"),
                    Ok(None) => {}
                    Err(e) => tracing::error!("ingest keys file not read again, the keys before stay: {e}"),
                }
            }
        }
    });
}

/// Reloads the TLS certificate whenever its files change, for as long as the server runs; a pair that cannot be
/// used is logged once per change, and the pair before stays in service.
async fn watch_certificates(certificates: Arc<tls::Certificates>) {
    let mut every = actix::clock::interval(CERTIFICATE_POLL);
    loop {
        every.tick().await;
        match certificates.reload_if_changed() {
            Ok(true) => tracing::info!(cert = %certificates.paths().0.display(), "TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!("TLS certificate not reloaded, the one before stays in service: {e}"),
        }
    }
}

fn stopped() -> PublishError {
    PublishError::Unavailable("the stream's actor failed while publishing; retry".into())
}

/// Settings of [`serve`] beyond the engine's.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The engine.
    pub engine: EngineConfig,
    /// Run the built-in demo stream `demo`.
    pub demo: bool,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    /// Pin the HTTP workers one per CPU ([`pinning`]) and start each stream's actor on the worker of its ingest
    /// ([`EngineConfig::actors_on_ingest_workers`]).
    pub pin_workers: bool,
}

/// The sockets [`serve`] listens on: HTTP, HTTPS and RTMP if wanted (`From<TcpListener>`: HTTP alone).
#[derive(Debug)]
pub struct Listeners {
    /// Plain HTTP: ingest, playback, status; HTTP/1.1, and HTTP/2 for clients that start with its preface (h2c).
    pub http: std::net::TcpListener,
    /// HTTPS: the same routes over TLS, HTTP/2 or HTTP/1.1 by ALPN.
    pub tls: Option<TlsListener>,
    /// RTMP publishing ([`ingest::rtmp`]).
    pub rtmp: Option<std::net::TcpListener>,
}

/// A TLS listener and the certificates it serves.
#[derive(Debug)]
pub struct TlsListener {
    /// The socket.
    pub listener: std::net::TcpListener,
    /// The certificate and key; [`serve`] reloads them when their files change, and the caller may
    /// [`reload`](tls::Certificates::reload) them at any time (the binary does at SIGHUP).
    pub certificates: Arc<tls::Certificates>,
}

impl From<std::net::TcpListener> for Listeners {
    fn from(http: std::net::TcpListener) -> Self {
        Self { http, tls: None, rtmp: None }
    }
}

/// HTTP/2 flow-control windows, per stream and per connection: what a client may send before the server reads.
/// Players send almost nothing; an encoder pushing over h2 sends a part at a time (tens of KB at 1.5 Mbit/s, a
/// few MB at most), so one stream window holds a large part, and the connection window a few streams' worth.
const H2_STREAM_WINDOW: u32 = 1 << 20;
const H2_CONNECTION_WINDOW: u32 = 4 << 20;

/// How often the TLS certificate's files are checked for a change.
const CERTIFICATE_POLL: Duration = Duration::from_secs(1);

/// Runs the server on `listeners` until `shutdown` resolves; then stops RTMP sessions (each publishes what it
/// has), ends every stream (`EXT-X-ENDLIST`, so held requests are answered), stops accepting, and drains
/// in-flight requests for at most `shutdown_timeout`.
pub async fn serve(
    config: ServeConfig,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let Listeners { http: listener, tls, rtmp } = listeners.into();
    let pinning = config
        .pin_workers
        .then(pinning::Pinning::new)
        .transpose()
        .map_err(|e| std::io::Error::new(e.kind(), format!("--pin-workers: {e}")))?;
    let colocate = config.pin_workers || config.engine.actors_on_ingest_workers;
    let engine_config = EngineConfig { actors_on_ingest_workers: colocate, ..config.engine };
    let engine = Engine::start(engine_config).map_err(std::io::Error::other)?;
    if config.demo {
        demo::spawn(engine.clone(), demo::DEMO_STREAM);
    }
    let routes = engine.routes();
    // The factory runs once on each worker thread as it starts.
    let mut server = HttpServer::new(move || {
        if let Some(pinning) = &pinning {
            match pinning.pin_current_thread() {
                Ok(cpu) => tracing::info!(cpu, "HTTP worker pinned"),
                Err(e) => tracing::warn!(error = %e, "HTTP worker not pinned"),
            }
        }
        App::new().configure(routes.clone())
    })
    .disable_signals()
    .shutdown_timeout(config.shutdown_timeout.as_secs().max(1))
    .h2_initial_window_size(H2_STREAM_WINDOW)
    .h2_initial_connection_window_size(H2_CONNECTION_WINDOW);
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    server = server.listen_auto_h2c(listener)?;
    let mut watcher = None;
    if let Some(TlsListener { listener, certificates }) = tls {
        let tls_config = certificates.server_config().map_err(std::io::Error::other)?;
        server = server.listen_rustls_0_23(listener, tls_config)?;
        watcher = Some(actix::spawn(watch_certificates(certificates)));
    }
    let server = server.run();
    let handle = server.handle();
    let (stop_rtmp, rtmp_stopping) = tokio::sync::watch::channel(false);
    if let Some(rtmp) = rtmp {
        let publishers = engine.publishers().clone();
        let mut stopping = rtmp_stopping;
        actix::spawn(async move {
            let stop = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            if let Err(e) = ingest::rtmp::run(rtmp, publishers, stop).await {
                tracing::error!("RTMP ingest stopped: {e}");
            }
        });
    }
    actix::spawn(async move {
        shutdown.await;
        let _ = stop_rtmp.send(true);
        let ended = engine.shutdown().await;
        tracing::info!(streams = ended, "shutting down: every stream ended");
        // Let held requests see the ENDLIST before the listener closes.
        actix::clock::sleep(Duration::from_millis(100)).await;
        handle.stop(true).await;
    });
    let served = server.await;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    served
}
