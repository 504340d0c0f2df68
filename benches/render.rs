//! The work done once per published part, in steady state: rendering the playlist (full and delta forms),
//! gzip-compressing both (and, for comparison, one playlist at levels 1 and 4 with a kept or a fresh deflate
//! state), and the whole publish path of a stream (manifest rollover, part ring, rendered-playlist
//! cache, position watch).
//!
//! A playlist is rendered once per part, never per request, so this cost bounds how many streams one core can
//! carry (a 0.2 s part cadence leaves 200 ms per part per stream). Target: render + gzip under 100 µs per part.
//! The state is the default options' steady state: a 24 s window of 1 s segments of five 0.2 s parts, with parts
//! listed for the last 6 s, one rendition report.
//!
//! Run with `cargo bench --bench render -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use playlists::m3u8_cache::{Gzip, Rendered};
use playlists::manifest::{PartMeta, RenditionReport};
use playlists::{M3u8Manifest, Options, Playlists, Position, StreamId};

const PART: Duration = Duration::from_millis(200);

fn part(i: u64) -> PartMeta {
    PartMeta { duration: PART, independent: i % 5 == 0, discontinuity: false, wallclock: SystemTime::UNIX_EPOCH }
}

fn steady_manifest(options: &Options) -> M3u8Manifest {
    let mut m = M3u8Manifest::new(options);
    for i in 0..400 {
        m.push(part(i));
    }
    m
}

fn bench(c: &mut Criterion) {
    let options = Options::default();
    let m = steady_manifest(&options);
    let reports = [RenditionReport { uri: "../lo/index.m3u8".into(), last: Position::new(80, 2) }];
    let (mut full, mut delta) = (Vec::with_capacity(8 << 10), Vec::with_capacity(8 << 10));
    m.render(false, &reports, &mut full);
    m.render(true, &reports, &mut delta);
    println!("steady state: full {} bytes, delta {} bytes", full.len(), delta.len());

    c.bench_function("render full + delta", |b| {
        b.iter(|| {
            full.clear();
            delta.clear();
            m.render(false, &reports, &mut full);
            m.render(true, &reports, &mut delta);
            black_box((&full, &delta));
        })
    });

    let mut gzip = Gzip::new(options.gzip_level);
    c.bench_function("render + gzip (full and delta)", |b| {
        b.iter(|| {
            full.clear();
            delta.clear();
            m.render(false, &reports, &mut full);
            m.render(true, &reports, &mut delta);
            let r = Rendered::new(
                Position::new(80, 3),
                false,
                Bytes::copy_from_slice(&full),
                Some(Bytes::copy_from_slice(&delta)),
                &mut gzip,
            );
            black_box(r);
        })
    });

    // The full playlist alone, by level and by whether the deflate state is kept (as a stream's writer keeps it)
    // or made afresh for each body (as a `GzEncoder` per body would).
    let full_bytes = Bytes::copy_from_slice(&full);
    for level in [1, 4] {
        let mut kept = Gzip::new(level);
        println!("gzip level {level}: {} -> {} bytes", full_bytes.len(), kept.compress(&full_bytes).len());
        c.bench_function(&format!("gzip full playlist, level {level}, kept state"), |b| {
            b.iter(|| black_box(kept.compress(&full_bytes)))
        });
        c.bench_function(&format!("gzip full playlist, level {level}, fresh state"), |b| {
            b.iter(|| black_box(playlists::m3u8_cache::gzip(&full_bytes, level)))
        });
    }

    let playlists = Playlists::new(options.clone()).expect("valid options");
    let stream = playlists.start(&StreamId::parse("bench").expect("id")).expect("stream");
    let payload = Bytes::from(vec![0u8; 25_000]);
    let mut i = 0u64;
    for _ in 0..400 {
        stream.publish_part(payload.clone(), part(i)).expect("publish");
        i += 1;
    }
    c.bench_function("Stream::publish_part (25 kB part, whole path)", |b| {
        b.iter(|| {
            black_box(stream.publish_part(payload.clone(), part(i)).expect("publish"));
            i += 1;
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
