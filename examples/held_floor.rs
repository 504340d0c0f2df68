//! Run with: `cargo run --release --example held_floor -- [ROUNDS] [HELD]` (default `200 100`; `FLOOR_PIN=1` pins
//! the two server threads one per CPU).
//!
//! The floor under `held_latency`: the same fan-out with everything but the sockets and the wakeups taken away.
//! Two server threads, each a tokio current-thread runtime as an actix-web worker is, share HELD kept-alive
//! connections; each connection's task reads a request, waits on one `tokio::sync::watch` for the round it asked
//! for, and writes a prepared answer of the size of a held playlist answer (headers and gzipped playlist). One more
//! connection, on the first thread, carries length-prefixed fragments of the fixture's size; when a fragment's
//! last byte is read the watch is sent the round. No HTTP parsing, no splitting, no publishing, no rendering.
//!
//! Timed like `held_latency`: from the kernel's transmit stamp of the fragment's last byte to the kernel's receive
//! stamp of each answer at the client's socket (Linux), the client asleep while the answers arrive.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, SystemTime};

use playlists_actors::pinning::Pinning;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

#[path = "support/arrival.rs"]
mod arrival;
#[path = "support/stats.rs"]
mod stats;

use stats::summary;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Bytes of one answer: a held playlist answer's headers and gzipped body.
const ANSWER: usize = 788;
/// Bytes of one fragment: the fixture's.
const FRAGMENT: usize = 10_564;
/// Time given to the server to read every held request before the fragment is written.
const SETTLE: Duration = Duration::from_millis(20);
/// How long the client stays off the CPU once the fragment is written.
const DEFER: Duration = Duration::from_millis(5);

/// A held connection: reads `GET /{round}\r\n\r\n`, waits for the round, answers, again.
async fn held(mut stream: TcpStream, mut rx: watch::Receiver<u64>) -> Res<()> {
    let answer = vec![b'x'; ANSWER];
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let line = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let round: u64 = line.trim_start_matches("GET /").parse()?;
        rx.wait_for(|r| *r >= round).await?;
        stream.write_all(&answer).await?;
    }
}

/// The ingest connection: length-prefixed fragments; each one read whole moves the watch to the next round.
async fn ingest(mut stream: TcpStream, tx: watch::Sender<u64>) -> Res<()> {
    let mut round = 0;
    let mut fragment = vec![0u8; FRAGMENT];
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return Ok(());
        }
        let len = u32::from_be_bytes(len) as usize;
        fragment.resize(len, 0);
        stream.read_exact(&mut fragment).await?;
        round += 1;
        tx.send_replace(round);
    }
}

/// Starts the two server threads; connections are handed to them round-robin, the ingest one to the first.
fn start_server(listener: TcpListener, held_count: usize, pin: bool) -> Res<()> {
    let (tx, rx) = watch::channel(0u64);
    // As `playlists --pin-workers` pins its HTTP workers.
    let pinning = pin.then(Pinning::new).transpose()?;
    let mut inboxes = Vec::new();
    for _ in 0..2 {
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel::<(std::net::TcpStream, bool)>();
        inboxes.push(conn_tx);
        let (rx, tx, pinning) = (rx.clone(), tx.clone(), pinning.clone());
        std::thread::spawn(move || {
            if let Some(Err(e)) = pinning.map(|p| p.pin_current_thread()) {
                eprintln!("a server thread not pinned: {e}");
            }
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                while let Some((std_stream, is_ingest)) = conn_rx.recv().await {
                    let Ok(stream) = TcpStream::from_std(std_stream) else { continue };
                    let (rx, tx) = (rx.clone(), tx.clone());
                    tokio::spawn(async move {
                        let served = if is_ingest { ingest(stream, tx).await } else { held(stream, rx).await };
                        if let Err(e) = served {
                            eprintln!("a connection failed: {e}");
                        }
                    });
                }
                // Every connection is handed over: keep serving them.
                std::future::pending::<()>().await;
            });
        });
    }
    std::thread::spawn(move || {
        for i in 0..=held_count {
            let Ok((stream, _)) = listener.accept() else { return };
            let ready = stream.set_nonblocking(true).and_then(|()| stream.set_nodelay(true));
            if ready.is_err() {
                return;
            }
            // The first connection, the ingest one, goes to the first thread.
            if inboxes[i % 2].send((stream, i == 0)).is_err() {
                return;
            }
        }
    });
    Ok(())
}

async fn run(addr: SocketAddr, rounds: u64, held_count: usize) -> Res<()> {
    let ingest = TcpStream::connect(addr).await?;
    ingest.set_nodelay(true)?;
    arrival::enable_sent(&ingest)?;
    let mut ingest = ingest;
    let mut conns = Vec::with_capacity(held_count);
    for _ in 0..held_count {
        let c = TcpStream::connect(addr).await?;
        c.set_nodelay(true)?;
        arrival::enable(&c)?;
        conns.push(c);
    }
    let mut fragment = (FRAGMENT as u32).to_be_bytes().to_vec();
    fragment.resize(4 + FRAGMENT, b'f');
    let (mut all, mut last) = (Vec::new(), Vec::new());
    let mut scratch = vec![0u8; 64 << 10];
    for round in 1..=rounds {
        let request = format!("GET /{round}\r\n\r\n");
        for c in &mut conns {
            c.write_all(request.as_bytes()).await?;
        }
        tokio::time::sleep(SETTLE).await;
        let before = SystemTime::now();
        ingest.write_all(&fragment).await?;
        let t0 = arrival::last_sent(&ingest).unwrap_or(before);
        std::thread::sleep(DEFER);
        let mut round_last = Duration::ZERO;
        for c in &mut conns {
            let mut got = 0;
            let mut arrived = None;
            while got < ANSWER {
                let (n, at) = arrival::read(c, &mut scratch[..ANSWER - got]).await?;
                if n == 0 {
                    return Err("the server closed a held connection".into());
                }
                got += n;
                arrived = arrived.or(at);
            }
            if let Some(Ok(d)) = arrived.map(|a| a.duration_since(t0)) {
                all.push(d);
                round_last = round_last.max(d);
            }
        }
        last.push(round_last);
    }
    println!("held_floor: {rounds} rounds x {held_count} held connections, {ANSWER} B answers, {FRAGMENT} B fragments");
    summary("answer arrived (kernel)", all);
    summary("kernel: last of round", last);
    Ok(())
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let rounds: u64 = args.next().map_or(Ok(200), |a| a.parse())?;
    let held_count: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let pin = std::env::var("FLOOR_PIN").is_ok_and(|v| v == "1");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    start_server(listener, held_count.max(1), pin)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(addr, rounds.max(1), held_count.max(1)))
}
