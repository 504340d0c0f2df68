//! Splitting throughput of the fMP4 [`Splitter`] on the H.264 + AAC fixture, fed in 16 KiB chunks.
//!
//! Every ingested byte passes through the splitter before it can be published as a part, so its cost bounds how
//! many streams one core can ingest. It only reads box headers until a box is complete and then parses the small
//! `moof`, handing out the bytes without copying, so it should run at memory speed (target: at least 2 GB/s).
//! 16 KiB is the size of the chunks an HTTP body usually arrives in.
//!
//! Run with `cargo bench --bench splitter -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use playlists::fmp4::{Item, Splitter};

const H264: &[u8] = include_bytes!("../tests/fixtures/h264_aac.mp4");
const CHUNK: usize = 16 << 10;

fn split(input: &[u8]) -> usize {
    let mut splitter = Splitter::new(4 << 20);
    let mut fragments = 0;
    for chunk in input.chunks(CHUNK) {
        splitter.push(chunk);
        while let Some(item) = splitter.next_item().expect("fixture splits") {
            if let Item::Fragment(f) = item {
                fragments += f.tracks.len();
                black_box(f);
            }
        }
    }
    fragments
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("splitter");
    group.throughput(Throughput::Bytes(H264.len() as u64));
    group.bench_function("h264_aac_16KiB_chunks", |b| b.iter(|| split(black_box(H264))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
