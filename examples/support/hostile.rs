//! Hostile connections for load tests, on a thread and runtime of their own: slow request heads and silent chunked
//! bodies that hold a server's connections open, reconnecting whenever the server closes them.
//!
//! - slow headers: a request head written one byte a second, never finished (`GET ... HTTP/1.1`, `Host`, then a
//!   header value that never ends);
//! - silent chunked: `POST /ingest/x HTTP/1.1` with `Transfer-Encoding: chunked`, then nothing.
//!
//! Each connection reads what the server sends (a 408, say) until the server closes it, then connects again at
//! once. A connect that fails (refused, reset) or a connection the server closes within [`AT_ONCE`] of accepting
//! it (as a per-address cap would) counts as a refusal and waits [`BACKOFF`] before the next try, so a refusing
//! server is not hammered. Connections are first opened in batches ([`BATCH`] every [`BATCH_EVERY`]), which a
//! listen backlog of 128 takes without dropping SYNs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A connection closed this soon after it opened counts as refused.
pub const AT_ONCE: Duration = Duration::from_millis(100);
/// The wait after a refusal.
pub const BACKOFF: Duration = Duration::from_millis(50);
/// Connections opened together at the start.
pub const BATCH: usize = 100;
/// The pause between two batches.
pub const BATCH_EVERY: Duration = Duration::from_millis(20);

/// What the hostile connections have seen so far.
#[derive(Default)]
pub struct Counters {
    /// Slow-header connections open now.
    pub slow_open: AtomicUsize,
    /// Silent-chunked connections open now.
    pub silent_open: AtomicUsize,
    /// Connections the server closed after a while (it read the head's timeout, the body's, ...).
    pub closed: AtomicUsize,
    /// Connects after a close or a refusal.
    pub reconnects: AtomicUsize,
    /// Failed connects, and connections closed at once.
    pub refused: AtomicUsize,
}

/// The hostile connections, started.
pub struct Hostile {
    /// Their counters.
    pub counters: Arc<Counters>,
    /// How many of each were asked for: slow headers, silent chunked.
    pub wanted: (usize, usize),
}

impl Hostile {
    /// Starts `slow` slow-header and `silent` silent-chunked connections to `addr` on a new thread.
    pub fn start(addr: SocketAddr, slow: usize, silent: usize) -> std::io::Result<Self> {
        let counters = Arc::new(Counters::default());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let c = Arc::clone(&counters);
        std::thread::Builder::new().name("hostile".into()).spawn(move || {
            rt.block_on(async move {
                let mut tasks = Vec::with_capacity(slow + silent);
                for i in 0..slow + silent {
                    if i > 0 && i % BATCH == 0 {
                        tokio::time::sleep(BATCH_EVERY).await;
                    }
                    let c = Arc::clone(&c);
                    tasks.push(tokio::spawn(connection(addr, c, i < slow)));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        })?;
        Ok(Self { counters, wanted: (slow, silent) })
    }

    /// Open now: slow headers, silent chunked.
    pub fn open(&self) -> (usize, usize) {
        (self.counters.slow_open.load(Ordering::Relaxed), self.counters.silent_open.load(Ordering::Relaxed))
    }

    /// Waits until every connection asked for is open, for at most `limit`; false if they were not.
    pub async fn wait_open(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let (a, b) = self.open();
            if a >= self.wanted.0 && b >= self.wanted.1 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// One hostile connection, for ever.
async fn connection(addr: SocketAddr, c: Arc<Counters>, slow: bool) {
    let open = if slow { &c.slow_open } else { &c.silent_open };
    let mut first = true;
    loop {
        if !first {
            c.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        let Ok(stream) = TcpStream::connect(addr).await else {
            c.refused.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(BACKOFF).await;
            continue;
        };
        let opened = Instant::now();
        open.fetch_add(1, Ordering::Relaxed);
        if slow {
            slow_headers(stream).await;
        } else {
            silent_chunked(stream).await;
        }
        open.fetch_sub(1, Ordering::Relaxed);
        if opened.elapsed() < AT_ONCE {
            c.refused.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(BACKOFF).await;
        } else {
            c.closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes a request head one byte a second until the server closes the connection.
async fn slow_headers(stream: TcpStream) {
    const HEAD: &[u8] = b"GET /live/held/index.m3u8 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = [0u8; 1024];
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut sent = 0;
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = every.tick() => {
                let byte = HEAD.get(sent).copied().unwrap_or(b'a');
                sent += 1;
                if wr.write_all(&[byte]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes a chunked request head, then nothing, and reads until the server closes the connection.
async fn silent_chunked(mut stream: TcpStream) {
    const HEAD: &[u8] =
        b"POST /ingest/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: video/mp4\r\nTransfer-Encoding: chunked\r\n\r\n";
    if stream.write_all(HEAD).await.is_err() {
        return;
    }
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}
