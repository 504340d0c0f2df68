//! The seed crate's three chunk-cache "benchmarks", rewritten once and run against both caches side by side.
//!
//! Run with: `cargo run --release -- [--duration SECS] [--runs N]` (in `benches/seed`).
//!
//! `playlists` 0.1.3 (the seed) measured its `ChunkCache` with three `#[tokio::test]`s: one writer of 64 B parts
//! and one reader of `last()`; 8 streams of one writer and two readers moving 64 KB parts; one writer and 1,000
//! readers of 1 KB parts. Those tests run every task on one thread, read the clock and bump shared atomics on
//! every operation, so they measure their own loop about as much as the cache. Here each workload is written once,
//! generic over [`Cache`], which both caches implement; tasks count locally and the counts are summed at the end;
//! the runtime is tokio's multi-thread runtime with 2 workers. The seed's methods are `async` (tokio `RwLock`),
//! ours are plain functions: that difference is part of what is compared, so it is kept.
//!
//! Every task calls `tokio::task::yield_now` after a fixed batch of operations, identically for both caches, so a
//! reader that never awaits cannot starve a writer on two workers; the stop flag is checked at the same points.
//! Each workload runs `--runs` times per cache, alternating which cache goes first, and the medians are printed
//! as a markdown table.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use playlists::chunk_cache::Ring;
use playlists::{ChunkCache, Position, StreamId};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Parts per segment when our positions `(msn, part)` are laid out as a flat sequence.
const PARTS: u64 = 5;
/// Slots per row of our rings: room for `PARTS` with a margin, as a real stream would have.
const ROW_LEN: usize = 8;

/// What the workloads need from a cache. Positions are a flat sequence `0, 1, 2, …` per stream; each cache maps
/// them to its own addressing (the seed: ids from 1; ours: `(n / PARTS, n % PARTS)`).
trait Cache: Send + Sync + 'static {
    /// Appends the next part of `stream`; whether it was stored.
    fn append(&self, stream: usize, data: Bytes) -> impl Future<Output = bool> + Send;
    /// The newest position of `stream`, if any.
    fn last(&self, stream: usize) -> Option<u64>;
    /// The part at position `n` of `stream`.
    fn get(&self, stream: usize, n: u64) -> impl Future<Output = Option<Bytes>> + Send;
}

/// The seed's `ChunkCache`, used the way its tests use it: a stream index, `append`, `get(stream, id)`, `last`.
struct Seed(seed::chunk_cache::ChunkCache);

impl Seed {
    /// A seed cache with `streams` streams created, as its tests do.
    fn new(rt: &Runtime, options: seed::Options, streams: usize) -> Self {
        let cache = seed::chunk_cache::ChunkCache::new(options);
        rt.block_on(async {
            for i in 0..streams {
                cache.get_or_create_stream_idx(i as u64).await;
            }
        });
        Self(cache)
    }
}

impl Cache for Seed {
    async fn append(&self, stream: usize, data: Bytes) -> bool {
        self.0.append(stream, data).await.is_ok()
    }

    fn last(&self, stream: usize) -> Option<u64> {
        // The seed's ids start at 1; 0 means nothing written.
        self.0.last(stream).and_then(|id| (id as u64).checked_sub(1))
    }

    async fn get(&self, stream: usize, n: u64) -> Option<Bytes> {
        self.0.get(stream, n as usize + 1).await.map(|(bytes, _hash)| bytes)
    }
}

/// Our `ChunkCache`: readers and the writer hold the stream's `Ring` (no map lookup per operation), positions
/// advance through segments of `PARTS` parts.
struct Ours {
    _cache: ChunkCache,
    rings: Vec<Arc<Ring>>,
}

impl Ours {
    /// Our cache with `streams` streams whose rings hold `rows` segments.
    fn new(streams: usize, rows: usize) -> Self {
        let cache = ChunkCache::with_capacity(rows, ROW_LEN);
        let rings = (0..streams)
            .map(|i| cache.add_stream(&StreamId::parse(&format!("s{i}")).expect("a valid stream id")))
            .collect();
        Self { _cache: cache, rings }
    }

    /// Positions our rings are sure to retain: every row but the one being reused.
    fn retained(rows: usize) -> u64 {
        (rows as u64 - 1) * PARTS
    }
}

fn position(n: u64) -> Position {
    Position::new(n / PARTS, (n % PARTS) as u32)
}

impl Cache for Ours {
    fn append(&self, stream: usize, data: Bytes) -> impl Future<Output = bool> + Send {
        let ring = &self.rings[stream];
        let next = ring.last().map_or(0, |l| l.msn * PARTS + u64::from(l.part) + 1);
        std::future::ready(ring.publish(position(next), data).is_ok())
    }

    fn last(&self, stream: usize) -> Option<u64> {
        self.rings[stream].last().map(|l| l.msn * PARTS + u64::from(l.part))
    }

    fn get(&self, stream: usize, n: u64) -> impl Future<Output = Option<Bytes>> + Send {
        std::future::ready(self.rings[stream].get(position(n)))
    }
}

/// What one task counted.
#[derive(Default, Clone, Copy)]
struct Count {
    ops: u64,
    bytes: u64,
    misses: u64,
    /// W1 only: `get` of the last position after `last()`.
    gets: u64,
}

impl std::ops::AddAssign for Count {
    fn add_assign(&mut self, o: Self) {
        self.ops += o.ops;
        self.bytes += o.bytes;
        self.misses += o.misses;
        self.gets += o.gets;
    }
}

/// Runs writer and reader tasks until `duration` has passed, then returns the summed counts of each and the
/// measured time. The main thread sleeps (it runs no task), so the 2 workers are the only busy threads.
fn run(
    rt: &Runtime,
    duration: Duration,
    spawn: impl FnOnce(&Arc<AtomicBool>) -> (Vec<JoinHandle<Count>>, Vec<JoinHandle<Count>>),
) -> (Count, Count, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let (writers, readers) = {
        let _guard = rt.enter();
        spawn(&stop)
    };
    std::thread::sleep(duration.saturating_sub(t0.elapsed()));
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed();
    let sum = |hs: Vec<JoinHandle<Count>>| {
        rt.block_on(async {
            let mut total = Count::default();
            for h in hs {
                total += h.await.expect("a benchmark task panicked");
            }
            total
        })
    };
    (sum(writers), sum(readers), elapsed)
}

/// W1 rings: the reader only looks at the newest part.
const W1_ROWS: usize = 32;
/// W1 batch: `last()` costs nanoseconds, so yield rarely or the yield is what gets measured.
const W1_BATCH: u64 = 4096;

/// W1: one writer appending 64 B parts (a fresh buffer each, as the seed test does) and one reader calling
/// `last()`, and with `get_last` also `get` of that position.
fn w1<C: Cache>(rt: &Runtime, cache: Arc<C>, duration: Duration, get_last: bool) -> (Count, Count, Duration) {
    run(rt, duration, |stop| {
        let (c, s) = (Arc::clone(&cache), Arc::clone(stop));
        let writer = tokio::spawn(async move {
            let mut count = Count::default();
            let mut id = 0u64;
            while !s.load(Ordering::Relaxed) {
                for _ in 0..W1_BATCH {
                    id += 1;
                    let mut data = vec![0u8; 64];
                    data[..8].copy_from_slice(&id.to_le_bytes());
                    if c.append(0, Bytes::from(data)).await {
                        count.ops += 1;
                    }
                }
                tokio::task::yield_now().await;
            }
            count
        });
        let (c, s) = (Arc::clone(&cache), Arc::clone(stop));
        let reader = tokio::spawn(async move {
            let mut count = Count::default();
            while !s.load(Ordering::Relaxed) {
                for _ in 0..W1_BATCH {
                    if let Some(last) = c.last(0) {
                        count.ops += 1;
                        if get_last {
                            match c.get(0, last).await {
                                Some(_) => count.gets += 1,
                                None => count.misses += 1,
                            }
                        }
                    }
                }
                tokio::task::yield_now().await;
            }
            count
        });
        (vec![writer], vec![reader])
    })
}

/// W2 shape: 8 streams, each with one writer and two readers, 64 KB parts.
const W2_STREAMS: usize = 8;
const W2_READERS_PER_STREAM: usize = 2;
const W2_PART: usize = 64 * 1024;
/// Positions a W2 reader cycles through: the newest `W2_WINDOW`, oldest first. The same for both caches, and
/// within what both retain (ours: `Ours::retained(W2_ROWS)`; the seed: 320,000 per stream).
const W2_WINDOW: u64 = 300;
const W2_ROWS: usize = 64;
/// W2 batch: operations cost 50 ns to several µs.
const W2_BATCH: u64 = 64;

/// W2: per stream one writer appending clones of one preallocated 64 KB `Bytes`, and two readers cycling through
/// the newest `W2_WINDOW` positions from the oldest to the newest, wrapping.
fn w2<C: Cache>(rt: &Runtime, cache: Arc<C>, duration: Duration) -> (Count, Count, Duration) {
    // Seed every stream with one part so readers have something, as the seed test does.
    rt.block_on(async {
        for s in 0..W2_STREAMS {
            cache.append(s, Bytes::from(vec![0u8; W2_PART])).await;
        }
    });
    run(rt, duration, |stop| {
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for stream in 0..W2_STREAMS {
            let (c, s) = (Arc::clone(&cache), Arc::clone(stop));
            writers.push(tokio::spawn(async move {
                let mut count = Count::default();
                let data = Bytes::from(vec![0xABu8; W2_PART]);
                while !s.load(Ordering::Relaxed) {
                    for _ in 0..W2_BATCH {
                        if c.append(stream, data.clone()).await {
                            count.ops += 1;
                            count.bytes += data.len() as u64;
                        }
                    }
                    tokio::task::yield_now().await;
                }
                count
            }));
            for _ in 0..W2_READERS_PER_STREAM {
                let (c, s) = (Arc::clone(&cache), Arc::clone(stop));
                readers.push(tokio::spawn(async move {
                    let mut count = Count::default();
                    let mut cursor = 0u64;
                    while !s.load(Ordering::Relaxed) {
                        for _ in 0..W2_BATCH {
                            let Some(last) = c.last(stream) else { continue };
                            let oldest = (last + 1).saturating_sub(W2_WINDOW);
                            if cursor < oldest || cursor > last {
                                cursor = oldest;
                            }
                            match c.get(stream, cursor).await {
                                Some(b) => {
                                    count.ops += 1;
                                    count.bytes += b.len() as u64;
                                }
                                None => count.misses += 1,
                            }
                            cursor += 1;
                        }
                        tokio::task::yield_now().await;
                    }
                    count
                }));
            }
        }
        (writers, readers)
    })
}

/// W3 shape: one writer of 1 KB parts, 1,000 readers of the 100 newest positions.
const W3_READERS: usize = 1000;
const W3_PART: usize = 1024;
const W3_NEWEST: u64 = 100;
/// Our rings retain `Ours::retained(W3_ROWS)` = 155 positions: the 100 read plus what the writer adds meanwhile.
const W3_ROWS: usize = 32;
/// W3 batch: a reader's pass over the 100 newest positions; the writer appends as many parts between yields.
const W3_BATCH: u64 = W3_NEWEST;

/// W3: one writer appending clones of one 1 KB `Bytes`, 1,000 readers each reading the 100 newest positions in a
/// loop (newest first, from the `last()` seen at the start of the pass). With `distinct`, each write is a fresh
/// copy of the part instead, so that parts do not share one reference count: the seed copies every part into a
/// buffer of its own anyway, a zero-copy cache hands out clones of whatever it was given.
fn w3<C: Cache>(rt: &Runtime, cache: Arc<C>, duration: Duration, distinct: bool) -> (Count, Count, Duration) {
    rt.block_on(async {
        for _ in 0..W3_NEWEST {
            cache.append(0, Bytes::from(vec![0xABu8; W3_PART])).await;
        }
    });
    run(rt, duration, |stop| {
        let (c, s) = (Arc::clone(&cache), Arc::clone(stop));
        let writer = tokio::spawn(async move {
            let mut count = Count::default();
            let data = Bytes::from(vec![0xCDu8; W3_PART]);
            while !s.load(Ordering::Relaxed) {
                for _ in 0..W3_BATCH {
                    let part = if distinct { Bytes::copy_from_slice(&data) } else { data.clone() };
                    if c.append(0, part).await {
                        count.ops += 1;
                    }
                }
                tokio::task::yield_now().await;
            }
            count
        });
        let readers = (0..W3_READERS)
            .map(|_| {
                let (c, s) = (Arc::clone(&cache), Arc::clone(stop));
                tokio::spawn(async move {
                    let mut count = Count::default();
                    while !s.load(Ordering::Relaxed) {
                        if let Some(last) = c.last(0) {
                            for back in 0..W3_BATCH.min(last + 1) {
                                match c.get(0, last - back).await {
                                    Some(_) => count.ops += 1,
                                    None => count.misses += 1,
                                }
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                    count
                })
            })
            .collect();
        (vec![writer], readers)
    })
}

/// The seed's `Options` as its tests use them: defaults for W1 and W3, and for W2 8 streams of 64 KB buffers and
/// 10,000 parts per segment.
fn seed_options(workload: &str) -> seed::Options {
    let mut o = seed::Options::default();
    if workload == "w2" {
        o.num_playlists = W2_STREAMS;
        o.buffer_size_kb = 64;
        o.max_parts_per_segment = 10_000;
    }
    o
}

/// One metric's value per run, for each cache.
struct Metric {
    workload: &'static str,
    name: &'static str,
    unit: &'static str,
    seed: Vec<f64>,
    ours: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "MB/s" => format!("{v:.0} MB/s"),
        _ if v >= 1e6 => format!("{:.2} M/s", v / 1e6),
        _ if v >= 1e3 => format!("{:.1} K/s", v / 1e3),
        _ => format!("{v:.0} /s"),
    }
}

fn rt() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

/// Rates of one workload run: `(metric name, unit, value)`.
type Rates = Vec<(&'static str, &'static str, f64)>;

fn rates(workload: &str, (w, r, t): (Count, Count, Duration)) -> Rates {
    let s = t.as_secs_f64();
    let mb = |b: u64| b as f64 / 1e6 / s;
    let misses = r.misses as f64 / (r.ops + r.misses + r.gets).max(1) as f64;
    if misses > 0.001 {
        eprintln!("  note: {workload}: {:.2}% of reads missed", misses * 100.0);
    }
    match workload {
        "w1" => vec![("writes", "/s", w.ops as f64 / s), ("last()", "/s", r.ops as f64 / s)],
        "w1-get" => vec![("writes", "/s", w.ops as f64 / s), ("last() + get(last)", "/s", r.gets as f64 / s)],
        "w2" => vec![
            ("write", "MB/s", mb(w.bytes)),
            ("read", "MB/s", mb(r.bytes)),
            ("writes", "/s", w.ops as f64 / s),
            ("reads", "/s", r.ops as f64 / s),
        ],
        _ => vec![("reads", "/s", r.ops as f64 / s), ("writes", "/s", w.ops as f64 / s)],
    }
}

fn run_one(workload: &str, ours: bool, duration: Duration) -> Rates {
    let rt = rt();
    let counts = match (workload, ours) {
        ("w1", false) => w1(&rt, Arc::new(Seed::new(&rt, seed_options("w1"), 1)), duration, false),
        ("w1", true) => w1(&rt, Arc::new(Ours::new(1, W1_ROWS)), duration, false),
        ("w1-get", false) => w1(&rt, Arc::new(Seed::new(&rt, seed_options("w1"), 1)), duration, true),
        ("w1-get", true) => w1(&rt, Arc::new(Ours::new(1, W1_ROWS)), duration, true),
        ("w2", false) => w2(&rt, Arc::new(Seed::new(&rt, seed_options("w2"), W2_STREAMS)), duration),
        ("w2", true) => w2(&rt, Arc::new(Ours::new(W2_STREAMS, W2_ROWS)), duration),
        (w, false) => w3(&rt, Arc::new(Seed::new(&rt, seed_options("w3"), 1)), duration, w == "w3-distinct"),
        (w, true) => w3(&rt, Arc::new(Ours::new(1, W3_ROWS)), duration, w == "w3-distinct"),
    };
    rates(workload, counts)
}

/// Command line: `--duration SECS`, `--runs N`, and for profiling `--only WORKLOAD` (w1, w1-get, w2, w3, w3-distinct) and
/// `--cache seed|ours`.
struct Args {
    duration: Duration,
    runs: usize,
    only: Option<String>,
    cache: Option<String>,
}

fn parse_args() -> Args {
    let mut duration = Duration::from_secs(3);
    let mut runs = 3;
    let mut only = None;
    let mut cache = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--duration", Some(v)) => {
                duration = Duration::from_secs_f64(v.parse().expect("--duration takes seconds, e.g. 3 or 0.5"));
            }
            ("--runs", Some(v)) => runs = v.parse().expect("--runs takes a count"),
            ("--only", Some(v)) => only = Some(v),
            ("--cache", Some(v)) => cache = Some(v),
            _ => {
                eprintln!(
                    "usage: seed-compare [--duration SECS] [--runs N] [--only w1|w1-get|w2|w3|w3-distinct] [--cache seed|ours]"
                );
                std::process::exit(2);
            }
        }
    }
    Args { duration, runs: runs.max(1), only, cache }
}

fn main() {
    assert!(Ours::retained(W2_ROWS) >= W2_WINDOW && Ours::retained(W3_ROWS) > W3_NEWEST);
    let Args { duration, runs, only, cache } = parse_args();
    let workloads = [
        ("w1", "W1: 1 writer (64 B) + 1 reader"),
        ("w1-get", "W1: 1 writer (64 B) + 1 reader of the last part"),
        ("w2", "W2: 8 × (1 writer + 2 readers), 64 KB"),
        ("w3", "W3: 1 writer + 1,000 readers of the 100 newest, 1 KB"),
        ("w3-distinct", "W3, each part its own buffer"),
    ];
    let mut metrics: Vec<Metric> = Vec::new();
    for (key, title) in workloads {
        if only.as_deref().is_some_and(|o| o != key) {
            continue;
        }
        let first = metrics.len();
        for run in 0..runs {
            // Alternate which cache goes first, so drift (heat, neighbours) does not favour one.
            for ours in if run % 2 == 0 { [false, true] } else { [true, false] } {
                if cache.as_deref().is_some_and(|c| c != if ours { "ours" } else { "seed" }) {
                    continue;
                }
                eprintln!("{key} run {} {}", run + 1, if ours { "ours" } else { "seed" });
                for (i, (name, unit, v)) in run_one(key, ours, duration).into_iter().enumerate() {
                    if metrics.len() <= first + i {
                        metrics.push(Metric { workload: title, name, unit, seed: vec![], ours: vec![] });
                    }
                    let m = &mut metrics[first + i];
                    if ours { &mut m.ours } else { &mut m.seed }.push(v);
                }
            }
        }
    }
    println!("\nMedians of {runs} runs of {:.1} s, tokio multi-thread runtime, 2 workers\n", duration.as_secs_f64());
    println!("| workload | metric | seed 0.1.3 | ours | ours / seed |");
    println!("|---|---|---|---|---|");
    for m in &metrics {
        let (s, o) = (median(&m.seed), median(&m.ours));
        println!(
            "| {} | {} | {} | {} | {:.2}× |",
            m.workload,
            m.name,
            fmt_value(s, m.unit),
            fmt_value(o, m.unit),
            o / s
        );
    }
}
