//! CPU per published part on the three ingest paths of the data plane, side by side in one run, each with and
//! without the publish so that the share of `Stream::publish` (manifest, part ring, render, gzip, watch) is visible.
//!
//! The ingest of a stream costs its path's work for every part it publishes, so the per-part cost of each path
//! bounds how many streams one core can ingest (a 250 ms part cadence is 4 parts/s per stream):
//!
//! - `ingest_fmp4`: `h264_aac.mp4` (200 ms fragments, the usual `-frag_duration` encoder) fed in 16 KiB chunks to
//!   a long-lived [`Splitter`], every fragment published as a part. `split` stops before the publish.
//! - `ingest_refragment`: `h264_aac_gop4.mp4` (one fragment per 4 s GOP, as some encoders send) split the same
//!   way, every fragment cut by [`refragment`] into parts of at most 250 ms (the default `max_part`), every piece
//!   published. `split` and `split+cut` stop earlier.
//! - `ingest_rtmp`: `h264_aac.flv` read as FLV tags, the audio and video tag bodies fed to a long-lived
//!   [`Packager`] (250 ms parts) as the RTMP layer delivers its messages, every fragment published. `package`
//!   stops before the publish. Reading the RTMP chunk stream itself is not measured.
//!
//! One iteration is one pass over the file; the file loops with a continuous timeline (decode times shifted by
//! [`shift_decode_times`], FLV timestamps advanced by the file's length), so every publish is a steady-state
//! publish into a full 24 s window, never a discontinuity. The shifting copy is made in criterion's untimed
//! setup, the same for both variants of a path. Throughput is set to the parts one pass publishes, so criterion's
//! `thrpt` is parts per second of one core and time / parts is the time per part (the parts per pass are
//! printed before each group).
//!
//! Run with `cargo bench --bench ingest` (about 40 s: 1 s warm-up and 3 s measurement per benchmark).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput};
use playlists::flv::{Audio, Packager, Video};
use playlists::fmp4::{refragment, shift_decode_times, Fragment, Init, Item, Splitter};
use playlists::playlists::Stream;
use playlists::{Options, Playlists, StreamId};

const H264: &[u8] = include_bytes!("../tests/fixtures/h264_aac.mp4");
const GOP4: &[u8] = include_bytes!("../tests/fixtures/h264_aac_gop4.mp4");
const FLV: &[u8] = include_bytes!("../tests/fixtures/h264_aac.flv");
/// The size HTTP bodies usually arrive in (as in benches/splitter.rs).
const CHUNK: usize = 16 << 10;
/// The default `Options::max_part`: what the server cuts long fragments to and packages RTMP into.
const PART: Duration = Duration::from_millis(250);
/// Passes published before measuring: 24 s of window / 4-5 s per pass, and some more, so that the window is
/// full and every later publish also evicts.
const FILL_ROUNDS: u64 = 8;

/// An fMP4 file as a loop: its init, its fragments, and how long each track runs per pass (in its own ticks).
struct Fmp4Loop {
    init: Arc<Init>,
    fragments: Vec<Fragment>,
    track_ticks: HashMap<u32, u64>,
}

impl Fmp4Loop {
    fn new(file: &[u8]) -> Self {
        let mut splitter = Splitter::new(file.len());
        splitter.push(file);
        let (mut init, mut fragments) = (None, Vec::new());
        while let Some(item) = splitter.next_item().expect("fixture splits") {
            match item {
                Item::Init(i) => init = Some(i),
                Item::Fragment(f) => fragments.push(f),
            }
        }
        let mut track_ticks = HashMap::new();
        for run in fragments.iter().flat_map(|f| &f.tracks) {
            *track_ticks.entry(run.track_id).or_insert(0) += run.duration;
        }
        Fmp4Loop { init: init.expect("fixture has an init"), fragments, track_ticks }
    }

    /// The bytes an encoder sends in pass `round`: every fragment, decode times continuing the previous pass.
    fn round(&self, round: u64) -> Bytes {
        let mut out = BytesMut::new();
        for f in &self.fragments {
            let shifted =
                shift_decode_times(&f.bytes, |track| self.track_ticks.get(&track).copied().unwrap_or(0) * round)
                    .expect("fixture shifts");
            out.extend_from_slice(&shifted);
        }
        out.freeze()
    }
}

/// Feeds `input` in chunks to a splitter that already has the init, and hands out every fragment.
fn split(splitter: &mut Splitter, input: &[u8], mut each: impl FnMut(Fragment)) {
    for chunk in input.chunks(CHUNK) {
        splitter.push(chunk);
        while let Some(item) = splitter.next_item().expect("fixture splits") {
            if let Item::Fragment(f) = item {
                each(f);
            }
        }
    }
}

fn new_stream(playlists: &Playlists, name: &str) -> Arc<Stream> {
    playlists.start(&StreamId::parse(name).expect("stream id")).expect("stream starts")
}

fn publish(stream: &Stream, fragment: Fragment, round: u64) {
    let published = stream.publish(fragment, SystemTime::now()).expect("publishes");
    // A discontinuity would mean the loop is not seamless, and the bench would measure something else.
    assert!(round == 0 || !published.discontinuity, "pass {round}: the timeline is not continuous");
    black_box(published);
}

/// One FLV tag body the packager is fed, with what it is.
struct Tag {
    video: bool,
    config: bool,
    ms: u32,
    body: Bytes,
}

/// An FLV file as a loop: its configuration and frame tags in file order, and its length in milliseconds.
struct FlvLoop {
    tags: Vec<Tag>,
    loop_ms: u64,
}

impl FlvLoop {
    /// The audio and video tags of an FLV file, with whether each is a sequence header.
    fn new(file: &'static [u8]) -> Self {
        let (_, file_tags) = playlists::flv::read_file(&Bytes::from_static(file)).expect("an FLV file");
        let mut tags = Vec::new();
        for t in file_tags {
            // Sequence ends (and anything the packager ignores) would not recur in a live stream: left out.
            let tag = match t.kind {
                9 => match Video::parse(t.body.clone()).expect("fixture video tag") {
                    Video::Config { .. } => Some((true, true)),
                    Video::Frame { .. } => Some((true, false)),
                    _ => None,
                },
                8 => match Audio::parse(t.body.clone()).expect("fixture audio tag") {
                    Audio::Config { .. } => Some((false, true)),
                    Audio::Frame { .. } => Some((false, false)),
                    _ => None,
                },
                _ => None,
            };
            if let Some((video, config)) = tag {
                tags.push(Tag { video, config, ms: t.timestamp_ms, body: t.body });
            }
        }
        // The pass lasts until the frame after the last one of the track that ends last: the last timestamp
        // plus the mean frame interval, rounded up. For this fixture, audio decides: 189 AAC frames of 21.33 ms
        // make 4032 ms, so the audio clock continues exactly and video gets one longer frame per pass.
        let track_end = |video: bool| {
            let ms: Vec<u32> = tags.iter().filter(|t| t.video == video && !t.config).map(|t| t.ms).collect();
            let (first, last) = (f64::from(ms[0]), f64::from(ms[ms.len() - 1]));
            last + (last - first) / (ms.len() - 1) as f64
        };
        let loop_ms = track_end(true).max(track_end(false)).ceil() as u64;
        FlvLoop { tags, loop_ms }
    }

    /// Feeds pass `round` (the configurations only in pass 0, as an encoder sends them once) and hands out every
    /// item.
    fn feed(&self, p: &mut Packager, round: u64, mut each: impl FnMut(Item)) {
        let shift = self.loop_ms * round;
        for t in self.tags.iter().filter(|t| round == 0 || !t.config) {
            let ms = u32::try_from(u64::from(t.ms) + shift).expect("timestamp fits 32 bits");
            if t.video {
                p.video(ms, t.body.clone()).expect("video tag");
            } else {
                p.audio(ms, t.body.clone()).expect("audio tag");
            }
            while let Some(item) = p.next_item() {
                each(item);
            }
        }
    }
}

fn publish_item(stream: &Stream, item: Item, round: u64) {
    match item {
        Item::Init(init) => stream.set_init(init).expect("init"),
        Item::Fragment(f) => publish(stream, f, round),
    }
}

fn fmp4(c: &mut Criterion, playlists: &Playlists) {
    let pass = Fmp4Loop::new(H264);
    let parts = pass.fragments.len() as u64;
    let stream = new_stream(playlists, "fmp4");
    stream.set_init(pass.init.clone()).expect("init");
    let mut splitter = Splitter::with_init(4 << 20, pass.init.clone());
    let mut round = 0;
    while round < FILL_ROUNDS {
        split(&mut splitter, &pass.round(round), |f| publish(&stream, f, round));
        round += 1;
    }
    println!("ingest_fmp4: {parts} parts per pass");

    let mut group = c.benchmark_group("ingest_fmp4");
    group.throughput(Throughput::Elements(parts));
    bench_split(&mut group, &pass);
    group.bench_function("split+publish", |b| {
        b.iter_batched(
            || {
                let r = round;
                round += 1;
                (r, pass.round(r))
            },
            |(r, input)| split(&mut splitter, &input, |f| publish(&stream, f, r)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The "split" bench of a group: passes of `pass` through a splitter of their own, nothing published.
fn bench_split(group: &mut BenchmarkGroup<'_, WallTime>, pass: &Fmp4Loop) {
    let mut next = 0;
    let mut split_only = Splitter::with_init(4 << 20, pass.init.clone());
    group.bench_function("split", |b| {
        b.iter_batched(
            || {
                next += 1;
                pass.round(next)
            },
            |input| split(&mut split_only, &input, |f| drop(black_box(f))),
            BatchSize::SmallInput,
        )
    });
}

fn cut(fragment: Fragment, init: &Init, each: impl FnMut(Fragment)) {
    refragment(fragment, init, PART).expect("refragments").into_iter().for_each(each);
}

fn refragmented(c: &mut Criterion, playlists: &Playlists) {
    let pass = Fmp4Loop::new(GOP4);
    let init = pass.init.clone();
    let parts: usize =
        pass.fragments.iter().map(|f| refragment(f.clone(), &init, PART).expect("refragments").len()).sum();
    let stream = new_stream(playlists, "gop4");
    stream.set_init(init.clone()).expect("init");
    let mut splitter = Splitter::with_init(4 << 20, init.clone());
    let mut round = 0;
    while round < FILL_ROUNDS {
        split(&mut splitter, &pass.round(round), |f| cut(f, &init, |p| publish(&stream, p, round)));
        round += 1;
    }
    println!(
        "ingest_refragment: {} fragments ({:?}) cut into {parts} parts per pass",
        pass.fragments.len(),
        pass.fragments.iter().map(Fragment::duration).collect::<Vec<_>>()
    );

    let mut group = c.benchmark_group("ingest_refragment");
    group.throughput(Throughput::Elements(parts as u64));
    bench_split(&mut group, &pass);
    let mut next = 0;
    let mut split_only = Splitter::with_init(4 << 20, init.clone());
    group.bench_function("split+cut", |b| {
        b.iter_batched(
            || {
                next += 1;
                pass.round(next)
            },
            |input| split(&mut split_only, &input, |f| cut(f, &init, |p| drop(black_box(p)))),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("split+cut+publish", |b| {
        b.iter_batched(
            || {
                let r = round;
                round += 1;
                (r, pass.round(r))
            },
            |(r, input)| split(&mut splitter, &input, |f| cut(f, &init, |p| publish(&stream, p, r))),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn rtmp(c: &mut Criterion, playlists: &Playlists) {
    let pass = FlvLoop::new(FLV);
    // A dry run counts the parts of a steady-state pass (the packager holds the last frame of a pass until the
    // next one, so pass 0 differs) and checks that the loop is seamless.
    let mut dry = Packager::new(PART);
    let mut counts = Vec::new();
    for round in 0..FILL_ROUNDS {
        let mut n = 0;
        pass.feed(&mut dry, round, |item| n += u64::from(matches!(item, Item::Fragment(_))));
        counts.push(n);
    }
    let stats = dry.stats();
    println!("ingest_rtmp: {} ms per pass, parts per pass {counts:?}, packager {stats:?}", pass.loop_ms);
    assert_eq!(stats.timeline_restarts, 0, "the FLV loop restarts the timeline");
    let parts = counts[1];
    assert!(counts[1..].iter().all(|&n| n == parts), "passes differ in parts: {counts:?}");

    let stream = new_stream(playlists, "rtmp");
    let mut packager = Packager::new(PART);
    let mut round = 0;
    while round < FILL_ROUNDS {
        pass.feed(&mut packager, round, |item| publish_item(&stream, item, round));
        round += 1;
    }
    let mut package_only = Packager::new(PART);
    let mut next = 0;
    pass.feed(&mut package_only, next, drop);

    let mut group = c.benchmark_group("ingest_rtmp");
    group.throughput(Throughput::Elements(parts));
    group.bench_function("package", |b| {
        b.iter(|| {
            next += 1;
            pass.feed(&mut package_only, next, |item| drop(black_box(item)));
        })
    });
    group.bench_function("package+publish", |b| {
        b.iter(|| {
            let r = round;
            round += 1;
            pass.feed(&mut packager, r, |item| publish_item(&stream, item, r));
        })
    });
    group.finish();
    let stats = packager.stats();
    assert_eq!(stats.timeline_restarts, 0, "the FLV loop restarted the timeline: {stats:?}");
}

fn bench(c: &mut Criterion) {
    let playlists = Playlists::new(Options::default()).expect("valid options");
    fmp4(c, &playlists);
    refragmented(c, &playlists);
    rtmp(c, &playlists);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
