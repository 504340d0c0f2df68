//! Cost per published part of [`refragment`], on its two paths.
//!
//! Every fragment an encoder sends goes through `refragment` before it is published, so its pass-through path
//! (a fragment already within the part target, the usual case with `-frag_duration`) is on the hot path of
//! every part and must cost next to nothing: it reads the duration `Fragment` already holds and hands the same
//! `Bytes` back. The cutting path runs for encoders that fragment once per GOP: it parses every sample, plans
//! the cuts and writes each piece with the CMAF writer (one copy of the payload), then parses each piece again.
//! Its cost per resulting part should stay small against the part's duration (200 ms) and against what the
//! splitter already spends per byte.
//!
//! - `pass_through_200ms`: a 200 ms fragment of `h264_aac.mp4` (6 video + ~10 audio samples), max 200 ms.
//! - `cut_4s_gop_per_part`: a 4 s GOP fragment of `h264_aac_gop4.mp4` (120 video + 189 audio samples, ~120 KB)
//!   cut at 200 ms into 20 parts; throughput is reported in parts, so time per part = time / 20.
//!
//! Run with `cargo bench --bench refragment -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use playlists::fmp4::{refragment, Fragment, Init, Item, Splitter};

const H264: &[u8] = include_bytes!("../tests/fixtures/h264_aac.mp4");
const GOP4: &[u8] = include_bytes!("../tests/fixtures/h264_aac_gop4.mp4");
const PART: Duration = Duration::from_millis(200);

fn split(input: &[u8]) -> (Arc<Init>, Vec<Fragment>) {
    let mut splitter = Splitter::new(4 << 20);
    splitter.push(input);
    let mut init = None;
    let mut fragments = Vec::new();
    while let Some(item) = splitter.next_item().expect("fixture splits") {
        match item {
            Item::Init(i) => init = Some(i),
            Item::Fragment(f) => fragments.push(f),
        }
    }
    (init.expect("fixture has an init"), fragments)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("refragment");

    let (init, fragments) = split(H264);
    let short = fragments[1].clone();
    group.throughput(Throughput::Elements(1));
    group.bench_function("pass_through_200ms", |b| {
        b.iter_batched(
            || short.clone(),
            |f| black_box(refragment(f, &init, PART).expect("refragments")),
            BatchSize::SmallInput,
        )
    });

    let (init, fragments) = split(GOP4);
    let gop = fragments[0].clone();
    let parts = refragment(gop.clone(), &init, PART).expect("refragments").len();
    group.throughput(Throughput::Elements(parts as u64));
    group.bench_function("cut_4s_gop_per_part", |b| {
        b.iter_batched(
            || gop.clone(),
            |f| black_box(refragment(f, &init, PART).expect("refragments")),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
