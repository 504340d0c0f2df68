//! The fMP4 splitter against real ffmpeg output (`scripts/make-fixtures.sh`), cross-checked with `mp4-atom` as an
//! independent parser, plus chunking and mutation property tests.
#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mp4_atom::{Any, Decode};
use playlists::fmp4::{shift_decode_times, Fragment, Init, Item, Splitter, TrackKind};
use playlists::Error;
use proptest::prelude::*;

const H264: &[u8] = include_bytes!("fixtures/h264_aac.mp4");
const VP9: &[u8] = include_bytes!("fixtures/vp9_opus.mp4");
const MAX_BOX: usize = 4 << 20;

/// Feeds `input` in chunks of the given lengths (cycled), draining after every push.
fn split(input: &[u8], chunks: &[usize]) -> Result<(Vec<Item>, usize), Error> {
    let mut s = Splitter::new(MAX_BOX);
    let mut items = Vec::new();
    let mut rest = input;
    let mut lens = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = lens.next().unwrap_or(rest.len()).clamp(1, rest.len());
        s.push(&rest[..n]);
        rest = &rest[n..];
        while let Some(item) = s.next_item()? {
            items.push(item);
        }
    }
    Ok((items, s.pending()))
}

fn item_bytes(item: &Item) -> &Bytes {
    match item {
        Item::Init(i) => &i.bytes,
        Item::Fragment(f) => &f.bytes,
    }
}

fn whole(input: &[u8]) -> (Arc<Init>, Vec<Fragment>) {
    let (items, pending) = split(input, &[input.len()]).unwrap();
    assert_eq!(pending, 0, "bytes left over");
    let mut items = items.into_iter();
    let Some(Item::Init(init)) = items.next() else { panic!("first item is not the init") };
    let fragments = items
        .map(|i| match i {
            Item::Fragment(f) => f,
            Item::Init(_) => panic!("second init"),
        })
        .collect();
    (init, fragments)
}

/// What mp4-atom says about one traf.
#[derive(Debug, PartialEq)]
struct OracleRun {
    track_id: u32,
    tfdt: u64,
    samples: u32,
    duration: u64,
    sync: bool,
}

fn oracle(input: &[u8]) -> (Vec<(u32, u32)>, Vec<Vec<OracleRun>>) {
    let mut cursor = Cursor::new(input);
    let mut trex = Vec::new();
    let mut timescales = Vec::new();
    let mut fragments = Vec::new();
    while (cursor.position() as usize) < input.len() {
        match Any::decode(&mut cursor).unwrap() {
            Any::Moov(moov) => {
                trex = moov.mvex.unwrap().trex;
                timescales = moov.trak.iter().map(|t| (t.tkhd.track_id, t.mdia.mdhd.timescale)).collect();
            }
            Any::Moof(moof) => {
                let runs = moof
                    .traf
                    .iter()
                    .map(|traf| {
                        let tx = trex.iter().find(|t| t.track_id == traf.tfhd.track_id).unwrap();
                        let default_duration = traf.tfhd.default_sample_duration.unwrap_or(tx.default_sample_duration);
                        let default_flags = traf.tfhd.default_sample_flags.unwrap_or(tx.default_sample_flags);
                        let mut samples = 0;
                        let mut duration = 0u64;
                        let mut first_flags = None;
                        for trun in &traf.trun {
                            for entry in trun.samples.iter() {
                                if samples == 0 {
                                    first_flags = Some(entry.flags.unwrap_or(default_flags));
                                }
                                samples += 1;
                                duration += u64::from(entry.duration.unwrap_or(default_duration));
                            }
                        }
                        OracleRun {
                            track_id: traf.tfhd.track_id,
                            tfdt: traf.tfdt.as_ref().unwrap().base_media_decode_time,
                            samples,
                            duration,
                            sync: first_flags.is_some_and(|f| f & 0x0001_0000 == 0),
                        }
                    })
                    .collect();
                fragments.push(runs);
            }
            _ => {}
        }
    }
    (timescales, fragments)
}

fn check_fixture(input: &[u8], codecs: &str) -> (Arc<Init>, Vec<Fragment>) {
    let (init, fragments) = whole(input);
    // No byte lost or duplicated.
    let mut joined = init.bytes.to_vec();
    for f in &fragments {
        joined.extend_from_slice(&f.bytes);
    }
    assert!(joined == input, "items do not concatenate to the file");

    assert_eq!(init.codecs(), codecs);
    assert_eq!(init.resolution(), Some((320, 180)));
    let kinds: Vec<_> = init.tracks.iter().map(|t| (t.id, t.kind)).collect();
    assert_eq!(kinds, [(1, TrackKind::Video), (2, TrackKind::Audio)]);

    let (timescales, oracle) = oracle(input);
    assert_eq!(timescales, init.tracks.iter().map(|t| (t.id, t.timescale)).collect::<Vec<_>>());
    assert_eq!(oracle.len(), fragments.len());
    for (i, (f, o)) in fragments.iter().zip(&oracle).enumerate() {
        let ours: Vec<_> = f
            .tracks
            .iter()
            .map(|r| OracleRun {
                track_id: r.track_id,
                tfdt: r.base_decode_time,
                samples: r.samples,
                duration: r.duration,
                sync: r.starts_with_sync,
            })
            .collect();
        assert_eq!(&ours, o, "fragment {i}");
    }
    (init, fragments)
}

/// Prints what a fixture holds (run with `--nocapture`); the numbers are noted in `scripts/make-fixtures.sh`.
fn summary(name: &str, fragments: &[Fragment]) {
    let durations: Vec<_> = fragments.iter().map(|f| f.duration().as_secs_f64()).collect();
    let runs: Vec<Vec<_>> = fragments
        .iter()
        .map(|f| f.tracks.iter().map(|r| (r.track_id, r.duration, r.starts_with_sync)).collect())
        .collect();
    println!("{name}: {} fragments, main durations {durations:?}, runs (track, ticks, sync) {runs:?}", fragments.len());
}

#[test]
fn h264_aac_fixture() {
    let (init, fragments) = check_fixture(H264, "avc1.64000d,mp4a.40.2");
    summary("h264_aac", &fragments);
    assert_eq!(init.main_track().map(|t| (t.id, t.timescale)), Some((1, 15360)));
    assert_eq!(fragments.len(), 25);
    for (i, f) in fragments.iter().enumerate() {
        let video = f.tracks.iter().find(|r| r.track_id == 1).unwrap();
        assert_eq!((video.duration, video.samples, video.timescale), (3072, 6, 15360), "fragment {i}");
        assert_eq!(f.duration(), Duration::from_millis(200), "fragment {i}");
        assert_eq!(f.decode_time(), Some((3072 * i as u64, 15360)), "fragment {i}");
        assert_eq!(f.independent(), i % 5 == 0, "fragment {i}");
    }
}

#[test]
fn vp9_opus_fixture() {
    let (init, fragments) = check_fixture(VP9, "vp09.00.11.08,opus");
    summary("vp9_opus", &fragments);
    assert_eq!(init.main_track().map(|t| (t.id, t.timescale)), Some((1, 15360)));
    assert_eq!(fragments.len(), 26);
    let (tail, video) = fragments.split_last().unwrap();
    for (i, f) in video.iter().enumerate() {
        let run = f.tracks.iter().find(|r| r.track_id == 1).unwrap();
        assert_eq!((run.duration, run.samples), (3072, 6), "fragment {i}");
        assert_eq!(f.duration(), Duration::from_millis(200), "fragment {i}");
        assert_eq!(f.decode_time(), Some((3072 * i as u64, 15360)), "fragment {i}");
        assert_eq!(f.independent(), i % 5 == 0, "fragment {i}");
        let opus = f.tracks.iter().find(|r| r.track_id == 2).unwrap();
        assert_eq!(opus.duration, 9600, "Opus is exactly 200 ms too");
    }
    // ffmpeg flushes the Opus tail (312 ticks) as an audio-only fragment: its duration comes from audio and,
    // holding no video, it counts as independent.
    assert_eq!(tail.tracks.len(), 1);
    assert_eq!(tail.decode_time(), Some((240_000, 48000)));
    assert_eq!(tail.duration(), Duration::from_micros(6500));
    assert!(tail.independent());
}

#[test]
fn one_byte_chunks() {
    for input in [H264, VP9] {
        let (items, pending) = split(input, &[1]).unwrap();
        let (reference, _) = split(input, &[input.len()]).unwrap();
        assert_eq!(pending, 0);
        assert_eq!(items, reference);
    }
}

#[test]
fn truncated_body_leaves_pending_bytes() {
    let cut = H264.len() - 100;
    let (items, pending) = split(&H264[..cut], &[16 << 10]).unwrap();
    let emitted: usize = items.iter().map(|i| item_bytes(i).len()).sum();
    assert_eq!(emitted + pending, cut);
    assert!(pending > 0);
}

#[test]
fn parts_request_with_an_earlier_init() {
    let (init, fragments) = whole(H264);
    let mut s = Splitter::with_init(MAX_BOX, Arc::clone(&init));
    s.push(&H264[init.bytes.len()..]);
    let mut n = 0;
    while let Some(item) = s.next_item().unwrap() {
        assert_eq!(item, Item::Fragment(fragments[n].clone()));
        n += 1;
    }
    assert_eq!(n, fragments.len());
    // Without the init the same request is refused.
    let mut s = Splitter::new(MAX_BOX);
    s.push(&H264[init.bytes.len()..]);
    assert_eq!(s.next_item(), Err(Error::NoInit));
}

#[test]
fn limit_below_the_largest_fragment() {
    let (_, fragments) = whole(H264);
    let largest = fragments.iter().map(|f| f.bytes.len()).max().unwrap();
    let mut s = Splitter::new(largest - 1);
    s.push(H264);
    let err = loop {
        match s.next_item() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no error"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::TooLarge { what: "part", limit, .. } if limit == largest - 1), "{err:?}");
}

#[test]
fn shifted_decode_times() {
    for input in [H264, VP9] {
        let (init, fragments) = whole(input);
        for f in &fragments {
            let shift = |track: u32| u64::from(track) * 1_000_000;
            let shifted = shift_decode_times(&f.bytes, shift).unwrap();
            let reparsed = Fragment::parse(shifted.clone(), &init).unwrap();
            assert_eq!(reparsed.tracks.len(), f.tracks.len());
            for (a, b) in f.tracks.iter().zip(&reparsed.tracks) {
                assert_eq!(b.base_decode_time, a.base_decode_time + shift(a.track_id));
                assert_eq!((b.duration, b.samples, b.starts_with_sync), (a.duration, a.samples, a.starts_with_sync));
            }
            // Only bytes of tfdt values changed.
            assert_eq!(shifted.len(), f.bytes.len());
            let tfdt_values: Vec<usize> =
                f.bytes.windows(4).enumerate().filter(|(_, w)| w == b"tfdt").map(|(i, _)| i + 8).collect();
            for (i, (a, b)) in f.bytes.iter().zip(shifted.iter()).enumerate() {
                if a != b {
                    assert!(tfdt_values.iter().any(|&v| (v..v + 8).contains(&i)), "byte {i} changed");
                }
            }
        }
    }
}

/// Byte offsets of everything that is not mdat payload: where mutations exercise the parsers.
fn structural_offsets(input: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= input.len() {
        let size = u32::from_be_bytes(input[pos..pos + 4].try_into().unwrap()) as usize;
        let body = if &input[pos + 4..pos + 8] == b"mdat" { 8 } else { size };
        out.extend(pos..pos + body);
        pos += size;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_gives_the_same_items(
        chunks in prop::collection::vec(prop_oneof![1usize..8, 8usize..5000, 5000usize..200_000], 1..40),
        vp9 in any::<bool>(),
    ) {
        let input = if vp9 { VP9 } else { H264 };
        let (items, pending) = split(input, &chunks).unwrap();
        let (reference, _) = split(input, &[input.len()]).unwrap();
        prop_assert_eq!(pending, 0);
        prop_assert_eq!(items, reference);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutations_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        chunk in 1usize..70_000,
        vp9 in any::<bool>(),
    ) {
        let input = if vp9 { VP9 } else { H264 };
        let targets = structural_offsets(input);
        let mut bytes = input.to_vec();
        for (at, value) in edits {
            bytes[*at.get(&targets)] = value;
        }
        // Errors are fine; panics and lost bytes are not.
        if let Ok((items, pending)) = split(&bytes, &[chunk]) {
            let emitted: usize = items.iter().map(|i| item_bytes(i).len()).sum();
            prop_assert_eq!(emitted + pending, bytes.len());
        }
    }
}
