//! Run with: cargo run --example ws_monitor -- ws://127.0.0.1:8080/ws demo
//!
//! A WebSocket monitor: subscribes to one stream's events on a running `playlists` server and prints each one
//! as it arrives (once-a-second stats included), answering the server's pings so that it is not dropped.

use futures_util::{SinkExt as _, StreamExt as _};

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:8080/ws".to_owned());
    let stream = args.next().unwrap_or_else(|| "demo".to_owned());

    let (_, mut conn) = awc::Client::new().ws(url.as_str()).connect().await.map_err(|e| format!("{url}: {e}"))?;
    let subscribe = serde_json::json!({ "subscribe": [stream] }).to_string();
    conn.send(awc::ws::Message::Text(subscribe.into())).await?;
    eprintln!("following {stream} on {url}");

    while let Some(frame) = conn.next().await {
        match frame? {
            awc::ws::Frame::Text(text) => println!("{}", String::from_utf8_lossy(&text)),
            awc::ws::Frame::Ping(p) => conn.send(awc::ws::Message::Pong(p)).await?,
            awc::ws::Frame::Close(reason) => {
                eprintln!("closed by the server: {reason:?}");
                break;
            }
            _ => {}
        }
    }
    Ok(())
}
