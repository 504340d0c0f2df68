//! Run with: cargo run --release --example rtmp_load -- N SECS
//! (a third argument `colocate` starts each stream's actor on its RTMP session's arbiter, as `--pin-workers` does).
//!
//! How many RTMP publishers this machine takes: N encoders (rml_rtmp client sessions, each its own TCP connection
//! to 127.0.0.1) loop a 640x360 H.264/AAC FLV of about 1.5 Mbit/s at real-time pace, timestamps continued across
//! loops, for SECS seconds, against `ingest::rtmp::run` and an engine started in this process (`max_streams`
//! raised to N). The fixture is made with ffmpeg into target/ on the first run (not committed).
//!
//! For every `PartPublished` event it measures the lag behind the encoder's schedule: the wall time the part was
//! published minus the time its last media instant was due to be sent (the stream's start plus the media time at
//! the part's end). A part is late when that exceeds the part target: a player at the live edge would stall on
//! it. It prints the lag percentiles, the parts late and the process's CPU seconds (/proc/self/stat), split into
//! the encoders' thread and the rest (the server). N is capped at 1000 and SECS at 600.

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use playlists::Options;
use playlists_actors::status::Event;
use playlists_actors::{Engine, EngineConfig};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

#[path = "support/stats.rs"]
mod stats;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The encoders' starts are spread over this, as unsynchronized encoders' keyframes would be.
const SPREAD: Duration = Duration::from_secs(2);
/// Time given to every encoder to connect and be accepted before the schedule starts.
const SETUP: Duration = Duration::from_secs(3);
const MAX_N: usize = 1000;
const MAX_SECS: u64 = 600;

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let secs: u64 = args.next().map_or(Ok(20), |a| a.parse())?;
    let (n, secs) = (n.clamp(1, MAX_N), secs.clamp(1, MAX_SECS));
    let colocate = args.next().is_some_and(|a| a == "colocate");
    let tags = load_tags(&fixture()?)?;
    actix_rt::System::new().block_on(run(n, secs, colocate, tags))
}

/// Makes target/rtmp_load_640x360.flv with ffmpeg unless it is there.
fn fixture() -> Res<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/rtmp_load_640x360.flv");
    if !path.exists() {
        let status = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "60"])
            .args(["-b:v", "1400k", "-maxrate", "1400k", "-bufsize", "700k"])
            .args(["-c:a", "aac", "-ar", "48000", "-b:a", "96k", "-t", "10", "-f", "flv"])
            .arg(&path)
            .status()?;
        if !status.success() {
            return Err(format!("ffmpeg failed: {status}").into());
        }
    }
    Ok(path)
}

/// One FLV tag: 8 audio, 9 video.
#[derive(Clone)]
struct Tag {
    video: bool,
    timestamp: u32,
    body: Bytes,
    /// A sequence header (codec configuration), sent on the first loop only.
    config: bool,
}

fn load_tags(path: &PathBuf) -> Res<Vec<Tag>> {
    let flv = Bytes::from(std::fs::read(path)?);
    let (_, tags) = playlists::flv::read_file(&flv)?;
    let media = tags.into_iter().filter(|t| t.kind == 8 || t.kind == 9);
    Ok(media
        .map(|t| Tag { video: t.kind == 9, timestamp: t.timestamp_ms, config: t.body.get(1) == Some(&0), body: t.body })
        .collect())
}

async fn run(n: usize, secs: u64, colocate: bool, tags: Vec<Tag>) -> Res<()> {
    let options = Options { max_streams: n + 16, ..Options::default() };
    let max_part = options.max_part;
    let config =
        EngineConfig { options, event_buffer: 1 << 18, actors_on_ingest_workers: colocate, ..EngineConfig::default() };
    let engine = Engine::start(config)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = actix_rt::spawn(playlists_actors::ingest::rtmp::run(listener, engine.publishers().clone(), async {
        let _ = stopped.await;
    }));
    let mut events = engine.hub().subscribe();

    // The encoders get a thread of their own, so the CPU they take can be told from the server's.
    let t0 = Instant::now() + SETUP;
    let end = t0 + Duration::from_secs(secs);
    let step = SPREAD / n as u32;
    let starts: HashMap<String, Instant> = (0..n).map(|i| (format!("load{i}"), t0 + step * i as u32)).collect();
    let encoder_starts = starts.clone();
    let encoders = std::thread::Builder::new().name("encoders".into()).spawn(move || -> Res<(usize, f64)> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async move {
            let mut set = tokio::task::JoinSet::new();
            for (name, start) in encoder_starts {
                set.spawn(encoder(addr, name, start, end, tags.clone()));
            }
            let mut failed = 0;
            while let Some(done) = set.join_next().await {
                if let Err(e) = done.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                    eprintln!("encoder: {e}");
                    failed += 1;
                }
            }
            // Read here: once the thread is gone its time is only in the process's total.
            Ok((failed, cpu_of("/proc/thread-self/stat")?))
        })
    })?;

    let cpu_before = cpu_of("/proc/self/stat")?;
    let mut published: HashMap<String, f64> = HashMap::new();
    let mut lags = Vec::new();
    let (mut late, mut early, mut missed) = (0usize, 0usize, 0u64);
    let deadline = end + Duration::from_secs(2);
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = tokio::time::sleep_until(deadline) => break,
        };
        let event = match event {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                missed += k;
                continue;
            }
            Err(_) => break,
        };
        let Event::PartPublished { stream, duration, .. } = &*event else { continue };
        let Some(start) = starts.get(stream) else { continue };
        let media_end = published.entry(stream.clone()).or_default();
        *media_end += duration;
        let due = *start + Duration::from_secs_f64(*media_end);
        let now = Instant::now();
        if now < due {
            early += 1;
            lags.push(Duration::ZERO);
        } else {
            let lag = now - due;
            late += usize::from(lag > max_part);
            lags.push(lag);
        }
    }
    let (failed, encoder_cpu) = encoders.join().map_err(|_| "encoders panicked")??;
    let cpu_after = cpu_of("/proc/self/stat")?;
    let threads = thread_cpu()?;
    let _ = stop.send(());
    server.await??;

    let parts = lags.len();
    let media: f64 = published.values().sum();
    let placement =
        if colocate { "stream actors on the RTMP arbiters" } else { "stream actors on the engine's thread" };
    println!("rtmp_load: {n} publishers x {secs} s, part target {max_part:?}, {placement}, {failed} encoders failed");
    println!(
        "parts published {parts}, {:.1} s of media ({:.0}% of real time)",
        media,
        100.0 * media / (n as f64 * secs as f64)
    );
    println!("late (lag > part target) {late}, published before due {early}, events missed {missed}");
    stats::summary("lag behind the encoder schedule", lags);
    let wall = (deadline - t0 + SETUP).as_secs_f64();
    let server_cpu = cpu_after - cpu_before - encoder_cpu;
    println!(
        "CPU seconds over the run: server {server_cpu:.2} ({:.0}% of one core), encoders {encoder_cpu:.2}",
        100.0 * server_cpu / wall
    );
    println!("server threads' CPU seconds (whole life): {threads}");
    Ok(())
}

/// One publisher: connects, publishes `name`, sends the tags on their schedule from `start` until `end`.
async fn encoder(addr: SocketAddr, name: String, start: Instant, end: Instant, tags: Vec<Tag>) -> Res<()> {
    let mut client = Client::publishing(addr, &name).await?;
    // A loop lasts until the end of its last frame of either kind (30 fps video, 1024-sample AAC at 48 kHz), so
    // the next loop's timestamps never go back.
    let span = tags.iter().map(|t| t.timestamp + if t.video { 34 } else { 22 }).max().unwrap_or(1000);
    let mut offset = 0u32;
    'run: loop {
        for tag in &tags {
            if tag.config && offset > 0 {
                continue;
            }
            let ts = tag.timestamp + offset;
            let due = start + Duration::from_millis(u64::from(ts));
            if due >= end {
                break 'run;
            }
            tokio::time::sleep_until(due).await;
            client.send_tag(tag, ts).await?;
        }
        offset += span;
    }
    Ok(())
}

struct Client {
    tcp: TcpStream,
    session: ClientSession,
}

impl Client {
    async fn publishing(addr: SocketAddr, name: &str) -> Res<Client> {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut handshake = Handshake::new(PeerType::Client);
        tcp.write_all(&handshake.generate_outbound_p0_and_p1()?).await?;
        let mut buf = vec![0u8; 8192];
        let leftover = loop {
            let n = tcp.read(&mut buf).await?;
            let read = buf.get(..n).filter(|r| !r.is_empty()).ok_or("closed in the handshake")?;
            match handshake.process_bytes(read)? {
                HandshakeProcessResult::InProgress { response_bytes } => tcp.write_all(&response_bytes).await?,
                HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                    tcp.write_all(&response_bytes).await?;
                    break remaining_bytes;
                }
            }
        };
        let (session, results) = ClientSession::new(ClientSessionConfig::new())?;
        let mut client = Client { tcp, session };
        client.send(results).await?;
        let results = client.session.handle_input(&leftover)?;
        client.send(results).await?;
        let connect = client.session.request_connection("live".to_owned())?;
        client.send(vec![connect]).await?;
        client.until(ClientSessionEvent::ConnectionRequestAccepted).await?;
        let publish = client.session.request_publishing(name.to_owned(), PublishRequestType::Live)?;
        client.send(vec![publish]).await?;
        client.until(ClientSessionEvent::PublishRequestAccepted).await?;
        Ok(client)
    }

    async fn send(&mut self, results: Vec<ClientSessionResult>) -> Res<Vec<ClientSessionEvent>> {
        let mut events = Vec::new();
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => self.tcp.write_all(&packet.bytes).await?,
                ClientSessionResult::RaisedEvent(event) => events.push(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    async fn until(&mut self, wanted: ClientSessionEvent) -> Res<()> {
        let mut buf = vec![0u8; 8192];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(10), self.tcp.read(&mut buf)).await??;
            let read = buf.get(..n).filter(|r| !r.is_empty()).ok_or("closed by the server")?;
            let results = self.session.handle_input(read)?;
            if self.send(results).await?.contains(&wanted) {
                return Ok(());
            }
        }
    }

    async fn send_tag(&mut self, tag: &Tag, ts: u32) -> Res<()> {
        let timestamp = RtmpTimestamp::new(ts);
        let result = if tag.video {
            self.session.publish_video_data(tag.body.clone(), timestamp, false)?
        } else {
            self.session.publish_audio_data(tag.body.clone(), timestamp, false)?
        };
        self.send(vec![result]).await.map(drop)
    }
}

/// CPU seconds of this process's live threads, summed by thread name.
fn thread_cpu() -> Res<String> {
    let mut by_name: Vec<(String, f64)> = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?.path();
        let name = std::fs::read_to_string(task.join("comm"))?.trim().to_owned();
        // actix names its threads by arbiter number; one entry per thread is what tells them apart.
        let secs = cpu_of(&task.join("stat").to_string_lossy())?;
        by_name.push((name, secs));
    }
    by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(by_name.iter().take(6).map(|(n, s)| format!("{n} {s:.2}")).collect::<Vec<_>>().join(", "))
}

/// CPU seconds (user + system) in a /proc `stat` file: the process's or a thread's.
fn cpu_of(path: &str) -> Res<f64> {
    // Clock ticks per second: /proc counts in USER_HZ, 100 on Linux.
    const HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(path)?;
    // After the parenthesised name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').ok_or("bad stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).ok_or("bad stat");
    Ok((field(11)? + field(12)?) / HZ)
}
