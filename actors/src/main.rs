//! The `playlists` binary: `cargo run --release` serves 127.0.0.1:8080 with the demo stream `demo`.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use playlists_actors::config::Config;
use playlists_actors::tls::Certificates;
use playlists_actors::TlsListener;
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr (README), so that stdout stays free for whoever pipes the binary.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let config = Config::parse().load()?;
    let serve = config.serve_config()?;
    let bind = config.bind();
    let listener = std::net::TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?;
    tracing::info!("listening on http://{bind}");
    if serve.demo {
        tracing::info!("demo stream: http://{bind}/live/demo/index.m3u8 (--no-demo turns it off)");
    }
    let rtmp = match config.rtmp_bind() {
        Some(addr) => {
            let rtmp = std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding {addr} for RTMP (--no-rtmp turns it off)"))?;
            tracing::info!("RTMP ingest on rtmp://{addr}/live/{{stream}}");
            Some(rtmp)
        }
        None => None,
    };
    let tls = match config.tls()? {
        Some((addr, cert, key)) => {
            let certificates =
                Arc::new(Certificates::load(&cert, &key).with_context(|| format!("--tls-cert {}", cert.display()))?);
            let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr} for HTTPS"))?;
            tracing::info!("listening on https://{addr} (HTTP/2 and HTTP/1.1)");
            reload_at_sighup(Arc::clone(&certificates));
            Some(TlsListener { listener, certificates })
        }
        None => None,
    };
    let listeners = playlists_actors::Listeners { http: listener, tls, rtmp };
    playlists_actors::serve(serve, listeners, shutdown_signal()).await.context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

/// Reads the TLS certificate again at every SIGHUP (what certbot's deploy hooks send).
fn reload_at_sighup(certificates: Arc<Certificates>) {
    #[cfg(unix)]
    actix_web::rt::spawn(async move {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => return tracing::error!("cannot listen for SIGHUP: {e}"),
        };
        while hup.recv().await.is_some() {
            match certificates.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => tracing::error!("SIGHUP: TLS certificate not reloaded, the one before stays in service: {e}"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = certificates;
}

/// Resolves at SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}
