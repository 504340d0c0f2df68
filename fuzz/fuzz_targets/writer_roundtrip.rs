//! The CMAF writer against the parsers: arbitrary tracks and samples are written, split and parsed back.
//!
//! Invariants: an init the writer accepts parses to the tracks it was given; a fragment it writes splits and
//! parses to exactly the samples it was given (durations, sync flags, composition offsets, bytes, decode times,
//! sequence number); the cutter keeps every sample, and no piece it makes lasts longer than the part target
//! unless it is one main-track sample.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use playlists::fmp4::{
    refragment, write_fragment, write_init, CodecConfig, Fragment, Init, Item, Sample, Splitter, TrackConfig,
    TrackFragment, TrackKind,
};
use playlists_fuzz::{joined, same_tracks, samples, ReadSample};

#[derive(Debug, Arbitrary)]
enum Codec {
    H264(Vec<u8>, u16, u16),
    Hevc(Vec<u8>, u16, u16),
    Av1(Vec<u8>, u16, u16),
    Aac(Vec<u8>, u16, u32),
    Opus(u16, u32, u16),
}

#[derive(Debug, Arbitrary)]
struct TrackSpec {
    track_id: u8,
    timescale: u32,
    codec: Codec,
}

#[derive(Debug, Arbitrary)]
struct SampleSpec {
    duration: u32,
    composition_offset: i32,
    sync: bool,
    len: u8,
}

#[derive(Debug, Arbitrary)]
struct RunSpec {
    track: u8,
    base_decode_time: u64,
    samples: Vec<SampleSpec>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    tracks: Vec<TrackSpec>,
    sequence: u32,
    runs: Vec<RunSpec>,
    part_target_ms: u16,
    /// Whether the first record bytes are made valid (version byte, length), so that most inits get written.
    fix_records: bool,
}

fn codec(c: &Codec, fix: bool) -> CodecConfig {
    let record = |mut b: Vec<u8>, first: u8, min: usize| {
        if fix {
            b.resize(b.len().max(min), 0);
            b[0] = first;
        }
        Bytes::from(b)
    };
    match c {
        Codec::H264(b, w, h) => CodecConfig::H264 { avcc: record(b.clone(), 1, 7), width: *w, height: *h },
        Codec::Hevc(b, w, h) => CodecConfig::Hevc { hvcc: record(b.clone(), 1, 23), width: *w, height: *h },
        Codec::Av1(b, w, h) => CodecConfig::Av1 { av1c: record(b.clone(), 0x81, 4), width: *w, height: *h },
        Codec::Aac(b, channels, rate) => {
            let mut asc = b.clone();
            if fix {
                asc.resize(asc.len().max(2), 0x10);
            }
            CodecConfig::Aac { asc: Bytes::from(asc), channels: *channels, sample_rate: *rate }
        }
        Codec::Opus(channels, rate, pre_skip) => CodecConfig::Opus {
            channels: if fix { 1 + channels % 2 } else { *channels },
            sample_rate: *rate,
            pre_skip: *pre_skip,
        },
    }
}

fn is_video(c: &CodecConfig) -> bool {
    matches!(c, CodecConfig::H264 { .. } | CodecConfig::Hevc { .. } | CodecConfig::Av1 { .. })
}

fuzz_target!(|input: Input| {
    let configs: Vec<TrackConfig> = input
        .tracks
        .iter()
        .take(4)
        .map(|t| TrackConfig {
            track_id: u32::from(t.track_id),
            timescale: t.timescale,
            codec: codec(&t.codec, input.fix_records),
        })
        .collect();
    let Ok(init_bytes) = write_init(&configs) else { return };
    let init = Init::parse(init_bytes.clone()).expect("an init the writer wrote parses");
    assert_eq!(init.tracks.len(), configs.len());
    for (t, c) in init.tracks.iter().zip(&configs) {
        assert_eq!((t.id, t.timescale), (c.track_id, c.timescale));
        let kind = if is_video(&c.codec) { TrackKind::Video } else { TrackKind::Audio };
        assert_eq!(t.kind, kind);
        assert!(t.codec.is_some(), "the writer's sample entries have codec strings: {c:?}");
    }

    // The samples: payloads cut from one buffer, as the packager's are.
    let payload: Bytes = (0..=255u8).cycle().take(256 * 8).collect::<Vec<u8>>().into();
    let mut all: Vec<(u32, u64, Vec<Sample>)> = Vec::new();
    for run in input.runs.iter().take(4) {
        let Some(track) = configs.get(usize::from(run.track) % configs.len()) else { return };
        let list: Vec<Sample> = run
            .samples
            .iter()
            .take(300)
            .enumerate()
            .map(|(i, s)| Sample {
                duration: s.duration,
                composition_offset: s.composition_offset,
                sync: s.sync,
                data: payload.slice(i % 256..i % 256 + usize::from(s.len)),
            })
            .collect();
        all.push((track.track_id, run.base_decode_time, list));
    }
    let fragments: Vec<TrackFragment<'_>> = all
        .iter()
        .map(|(id, base, list)| TrackFragment { track_id: *id, base_decode_time: *base, samples: list })
        .collect();
    let Ok(bytes) = write_fragment(input.sequence, &fragments) else { return };

    // Split init + fragment in one stream, as an encoder's upload would come.
    let mut s = Splitter::new(16 << 20);
    s.push(&init_bytes);
    s.push(&bytes);
    let Ok(Some(Item::Init(split_init))) = s.next_item() else { panic!("the init splits") };
    assert_eq!(*split_init, init);
    let Ok(Some(Item::Fragment(fragment))) = s.next_item() else { panic!("the fragment splits") };
    assert_eq!(s.next_item(), Ok(None));
    assert_eq!(Fragment::parse(bytes.clone(), &init).as_ref(), Ok(&fragment));
    assert_eq!(fragment.bytes, bytes);

    let tables = fragment.sample_tables(&init).expect("the writer's fragment has sample tables");
    assert_eq!(tables.sequence, input.sequence);
    let mut expected: Vec<(u32, Vec<ReadSample>)> = Vec::new();
    for (id, base, list) in all.iter().filter(|(_, _, l)| !l.is_empty()) {
        let mut t = *base;
        let read = list
            .iter()
            .map(|s| {
                let r = ReadSample {
                    decode_time: t,
                    duration: s.duration,
                    flags: if s.sync { 0x0200_0000 } else { 0x0101_0000 },
                    composition_offset: i64::from(s.composition_offset),
                    data: s.data.to_vec(),
                };
                t = t.wrapping_add(u64::from(s.duration));
                r
            })
            .collect();
        expected.push((*id, read));
    }
    let Some(read) = samples(&fragment, &init) else {
        // Only a decode time past 2^64 stops the samples from reading back.
        assert!(all
            .iter()
            .any(|(_, base, l)| l.iter().try_fold(*base, |t, s| t.checked_add(u64::from(s.duration))).is_none()));
        return;
    };
    assert_eq!(read, expected, "the samples read back as written");
    for run in &fragment.tracks {
        let (_, _, list) = all.iter().find(|(id, _, l)| *id == run.track_id && !l.is_empty()).expect("a written track");
        assert_eq!(run.samples as usize, list.len());
        assert_eq!(run.duration, list.iter().map(|s| u64::from(s.duration)).sum::<u64>());
        assert_eq!(run.starts_with_sync, list[0].sync);
    }

    // The cutter.
    let max = Duration::from_millis(1 + u64::from(input.part_target_ms % 2000));
    let Ok(pieces) = refragment(fragment.clone(), &init, max) else { return };
    let after = joined(&pieces, &init).expect("pieces have sample tables");
    assert!(same_tracks(&read, &after), "the cutter keeps every sample");
    if pieces.len() > 1 {
        for piece in &pieces {
            assert_eq!(Fragment::parse(piece.bytes.clone(), &init).as_ref(), Ok(piece));
            let main = piece.main_run().expect("a piece has a main run");
            assert!(piece.duration() <= max || main.samples == 1, "a piece over the target: {piece:?}");
        }
    }
});
