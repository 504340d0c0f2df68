//! Per-operation cost of a stream's part ring (`chunk_cache::Ring`), the data structure every player read goes
//! through.
//!
//! Run with: `cargo bench -p playlists --bench chunk_cache`.
//!
//! Measured: `publish` of a 64 B part (the writer's cost per part, including the eviction of the part it replaces
//! once the ring is full), `get` of a retained part, `last()`, `segment()` of a complete 5-part segment, and the
//! two contended cases that matter on a 2-core origin: `publish` while another thread reads the newest parts, and
//! `get` while another thread publishes. Uncontended figures bound what one core can do; the contended ones show
//! what the per-slot locks cost when the writer and a reader touch the same cache lines. The side-by-side
//! comparison with the seed crate's workloads lives in `benches/seed` (see BENCHMARKS.md).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use playlists::chunk_cache::Ring;
use playlists::Position;

/// Parts per segment in these benches: a 1 s segment of 200 ms parts.
const PARTS: u64 = 5;
/// Rows and slots per row: a few seconds of parts, like a real ring.
const ROWS: usize = 32;
const ROW_LEN: usize = 8;

fn position(n: u64) -> Position {
    Position::new(n / PARTS, (n % PARTS) as u32)
}

/// A ring holding positions `0..n` of 64 B parts.
fn filled(n: u64) -> Ring {
    let ring = Ring::new(1, ROWS, ROW_LEN);
    let part = Bytes::from(vec![0u8; 64]);
    for i in 0..n {
        ring.publish(position(i), part.clone()).expect("positions advance");
    }
    ring
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring");
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));

    let part = Bytes::from(vec![0u8; 64]);
    let ring = Ring::new(1, ROWS, ROW_LEN);
    let mut n = 0u64;
    g.bench_function("publish 64 B", |b| {
        b.iter(|| {
            ring.publish(position(n), part.clone()).expect("positions advance");
            n += 1;
        })
    });

    let ring = filled(100);
    g.bench_function("get retained", |b| b.iter(|| ring.get(black_box(position(90)))));
    g.bench_function("last", |b| b.iter(|| black_box(&ring).last()));
    // Segments 0..=18 are complete (part 0 of segment 19 closed 18).
    g.bench_function("segment of 5 parts", |b| b.iter(|| ring.segment(black_box(15))));
    g.finish();
}

/// Runs `work` on another thread until the returned guard is dropped.
struct Background(Arc<AtomicBool>, Option<thread::JoinHandle<()>>);

impl Background {
    fn start(work: impl Fn(&AtomicBool) + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        Self(stop, Some(thread::spawn(move || work(&s))))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            h.join().expect("background thread");
        }
    }
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring contended");
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));

    // The writer benchmarked here; a reader on the other core reads the newest part and the one before, the
    // slots the writer is about to reuse or has just written.
    let ring = Arc::new(filled(PARTS));
    let reader = {
        let ring = Arc::clone(&ring);
        Background::start(move |stop| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(last) = ring.last() {
                    black_box(ring.get(last));
                    black_box(ring.get(Position::new(last.msn.saturating_sub(1), last.part)));
                }
            }
        })
    };
    let part = Bytes::from(vec![0u8; 64]);
    let mut n = PARTS;
    g.bench_function("publish 64 B, 1 reader thread", |b| {
        b.iter(|| {
            ring.publish(position(n), part.clone()).expect("positions advance");
            n += 1;
        })
    });
    drop(reader);

    // A reader benchmarked here, reading the newest part while the other core publishes as fast as it can.
    let ring = Arc::new(filled(PARTS));
    let writer = {
        let ring = Arc::clone(&ring);
        Background::start(move |stop| {
            let part = Bytes::from(vec![0u8; 64]);
            let mut n = PARTS;
            while !stop.load(Ordering::Relaxed) {
                ring.publish(position(n), part.clone()).expect("positions advance");
                n += 1;
            }
        })
    };
    g.bench_function("last + get, 1 writer thread", |b| b.iter(|| ring.last().and_then(|l| ring.get(l))));
    drop(writer);
    g.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
