//! The work done once per published part, in steady state: rendering the playlist (full and delta forms),
//! gzip-compressing both (and, for comparison, one playlist at levels 1 and 4 with a kept or a fresh deflate
//! state), and the whole publish path of a stream (manifest rollover, part ring, rendered-playlist
//! cache, position watch); the same with four rendition reports (a stream of a five-rendition ladder); and the
//! multivariant playlist of a ladder.
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
use playlists::playlists::{render_master, Rendition, StreamInfo};
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
            render_both(&m, &reports, &mut full, &mut delta);
            black_box((&full, &delta));
        })
    });

    let mut gzip = Gzip::new(options.gzip_level);
    c.bench_function("render + gzip (full and delta)", |b| {
        b.iter(|| {
            render_both(&m, &reports, &mut full, &mut delta);
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

    // An ABR ladder of five renditions (issue 11): every published part's playlist reports the other four.
    let four: Vec<RenditionReport> =
        (0..4).map(|r| RenditionReport { uri: format!("../r{r}/index.m3u8"), last: Position::new(80, 2) }).collect();
    full.clear();
    m.render(false, &four, &mut full);
    println!("steady state with 4 rendition reports: full {} bytes", full.len());
    c.bench_function("render full + delta, 4 rendition reports", |b| {
        b.iter(|| {
            render_both(&m, &four, &mut full, &mut delta);
            black_box((&full, &delta));
        })
    });
    let ladder: Vec<_> = (0..5)
        .map(|r| playlists.start(&StreamId::parse(&format!("ladder/r{r}")).expect("id")).expect("stream"))
        .collect();
    for _ in 0..400 {
        for s in &ladder {
            s.publish_part(payload.clone(), part(i)).expect("publish");
        }
        i += 1;
    }
    c.bench_function("Stream::publish_part in a ladder of 5 (4 rendition reports, whole path)", |b| {
        b.iter(|| {
            black_box(ladder[0].publish_part(payload.clone(), part(i)).expect("publish"));
            i += 1;
        })
    });

    // The multivariant playlist of a ladder of three video renditions and two audio ones: rendered per request
    // (the kept text, its gzip and ETag reused while it does not change).
    let renditions: Vec<Rendition> =
        [("v1080", 6_000_000, (1920, 1080)), ("v720", 3_000_000, (1280, 720)), ("v360", 800_000, (640, 360))]
            .into_iter()
            .map(|(name, bps, size)| video_rendition(name, bps, size))
            .chain([audio_rendition("en"), audio_rendition("fr")])
            .collect();
    let text = render_master(&renditions);
    println!("multivariant playlist of 3 video + 2 audio renditions: {} bytes", text.len());
    c.bench_function("render_master (3 video + 2 audio renditions)", |b| {
        b.iter(|| black_box(render_master(black_box(&renditions))))
    });
}

/// Renders the full and the delta playlist of `m` into `full` and `delta`, as each published part does.
fn render_both(m: &M3u8Manifest, reports: &[RenditionReport], full: &mut Vec<u8>, delta: &mut Vec<u8>) {
    full.clear();
    delta.clear();
    m.render(false, reports, full);
    m.render(true, reports, delta);
}

fn video_rendition(name: &str, bps: u64, size: (u32, u32)) -> Rendition {
    let info = StreamInfo {
        codecs: Some("avc1.640028".into()),
        resolution: Some(size),
        peak_bandwidth: bps,
        average_bandwidth: bps * 9 / 10,
        frame_rate: Some(30.0),
        ..StreamInfo::default()
    };
    Rendition { name: name.into(), info, video: true }
}

fn audio_rendition(language: &str) -> Rendition {
    let info = StreamInfo {
        codecs: Some("mp4a.40.2".into()),
        peak_bandwidth: 130_000,
        average_bandwidth: 128_000,
        language: Some(language.into()),
        channels: Some(2),
        ..StreamInfo::default()
    };
    Rendition { name: format!("audio_{language}"), info, video: false }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
