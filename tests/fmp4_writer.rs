//! The CMAF writer read back by `mp4-atom` (an independent parser) and by our own splitter, and a round trip of
//! the ffmpeg fixture: its configuration and samples, rewritten by the writer, read back equal.
#![allow(clippy::unwrap_used)]

use std::io::Cursor;

use bytes::Bytes;
use mp4_atom::{Any, Codec, Decode, Encode, Moof, Moov};
use playlists::fmp4::{
    write_fragment, write_init, CodecConfig, Fragment, Item, Sample, Splitter, TrackConfig, TrackFragment,
};
use playlists::Error;

const H264: &[u8] = include_bytes!("fixtures/h264_aac.mp4");

/// One sample as mp4-atom reads it, defaults resolved, with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OSample {
    duration: u32,
    size: u32,
    flags: u32,
    cto: i64,
    data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OTrack {
    track_id: u32,
    tfdt: u64,
    samples: Vec<OSample>,
}

#[derive(Debug)]
struct OFragment {
    sequence: u32,
    tracks: Vec<OTrack>,
    mdat: Vec<u8>,
}

/// Every box of a file through mp4-atom: the moov, and each moof with its samples cut out of the mdat.
fn oracle(input: &[u8]) -> (Option<Moov>, Vec<OFragment>) {
    let mut cursor = Cursor::new(input);
    let mut moov: Option<Moov> = None;
    let mut fragments = Vec::new();
    let mut pending: Option<(usize, Moof)> = None;
    while (cursor.position() as usize) < input.len() {
        let start = cursor.position() as usize;
        match Any::decode(&mut cursor).unwrap() {
            Any::Moov(m) => moov = Some(m),
            Any::Moof(m) => pending = Some((start, m)),
            Any::Mdat(mdat) => {
                let (moof_start, moof) = pending.take().expect("mdat after moof");
                let trex = &moov.as_ref().expect("moov first").mvex.as_ref().expect("mvex").trex;
                let tracks = moof
                    .traf
                    .iter()
                    .map(|traf| {
                        assert!(traf.tfhd.default_base_is_moof && traf.tfhd.base_data_offset.is_none());
                        let tx = trex.iter().find(|t| t.track_id == traf.tfhd.track_id).unwrap();
                        let mut samples = Vec::new();
                        for trun in &traf.trun {
                            let mut at = moof_start + trun.data_offset.unwrap() as usize;
                            for e in trun.samples.iter() {
                                let size = e.size.or(traf.tfhd.default_sample_size).unwrap_or(tx.default_sample_size);
                                samples.push(OSample {
                                    duration: e
                                        .duration
                                        .or(traf.tfhd.default_sample_duration)
                                        .unwrap_or(tx.default_sample_duration),
                                    size,
                                    flags: e
                                        .flags
                                        .or(traf.tfhd.default_sample_flags)
                                        .unwrap_or(tx.default_sample_flags),
                                    cto: e.cts.unwrap_or(0),
                                    data: input[at..at + size as usize].to_vec(),
                                });
                                at += size as usize;
                            }
                        }
                        OTrack {
                            track_id: traf.tfhd.track_id,
                            tfdt: traf.tfdt.as_ref().unwrap().base_media_decode_time,
                            samples,
                        }
                    })
                    .collect();
                fragments.push(OFragment { sequence: moof.mfhd.sequence_number, tracks, mdat: mdat.data });
            }
            _ => {}
        }
    }
    (moov, fragments)
}

/// An atom's body as bytes (its encoding without the 8-byte header).
fn body<T: Encode>(atom: &T) -> Bytes {
    let mut v = Vec::new();
    atom.encode(&mut v).unwrap();
    Bytes::from(v.split_off(8))
}

/// The fixture's avcC, ASC and picture size, as mp4-atom reads them.
fn fixture_config() -> (mp4_atom::Avc1, Vec<u8>) {
    let moov = oracle(H264).0.unwrap();
    let Codec::Avc1(avc1) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else { panic!("avc1") };
    let Codec::Mp4a(mp4a) = &moov.trak[1].mdia.minf.stbl.stsd.codecs[0] else { panic!("mp4a") };
    let asc = mp4a.esds.es_desc.dec_config.dec_specific.as_ref().unwrap().raw.clone();
    (avc1.clone(), asc)
}

fn h264_aac_tracks() -> Vec<TrackConfig> {
    let (avc1, asc) = fixture_config();
    vec![
        TrackConfig {
            track_id: 1,
            timescale: 15360,
            codec: CodecConfig::H264 { avcc: body(&avc1.avcc), width: avc1.visual.width, height: avc1.visual.height },
        },
        TrackConfig {
            track_id: 2,
            timescale: 48000,
            codec: CodecConfig::Aac { asc: Bytes::from(asc), channels: 2, sample_rate: 48000 },
        },
    ]
}

#[test]
fn mp4_atom_reads_the_init() {
    let (avc1, asc) = fixture_config();
    let hvcc = mp4_atom::Hvcc {
        configuration_version: 1,
        general_profile_idc: 1,
        general_profile_compatibility_flags: [0x60, 0, 0, 0],
        general_constraint_indicator_flags: [0xb0, 0, 0, 0, 0, 0],
        general_level_idc: 93,
        chroma_format_idc: 1,
        length_size_minus_one: 3,
        arrays: vec![mp4_atom::HvcCArray { completeness: true, nal_unit_type: 33, nalus: vec![vec![0x42, 1, 2, 3]] }],
        ..Default::default()
    };
    let av1c = mp4_atom::Av1c {
        seq_profile: 0,
        seq_level_idx_0: 8,
        chroma_subsampling_x: true,
        chroma_subsampling_y: true,
        config_obus: vec![0x0a, 0x0b, 0, 0, 0, 0x42],
        ..Default::default()
    };
    let tracks = vec![
        TrackConfig {
            track_id: 1,
            timescale: 15360,
            codec: CodecConfig::H264 { avcc: body(&avc1.avcc), width: 320, height: 180 },
        },
        TrackConfig {
            track_id: 2,
            timescale: 48000,
            codec: CodecConfig::Aac { asc: Bytes::from(asc.clone()), channels: 2, sample_rate: 48000 },
        },
        TrackConfig {
            track_id: 3,
            timescale: 90000,
            codec: CodecConfig::Hevc { hvcc: body(&hvcc), width: 1920, height: 1080 },
        },
        TrackConfig {
            track_id: 5,
            timescale: 90000,
            codec: CodecConfig::Av1 { av1c: body(&av1c), width: 640, height: 360 },
        },
        TrackConfig {
            track_id: 9,
            timescale: 48000,
            codec: CodecConfig::Opus { channels: 1, sample_rate: 44100, pre_skip: 312 },
        },
    ];
    let bytes = write_init(&tracks).unwrap();

    let mut cursor = Cursor::new(&bytes[..]);
    let Any::Ftyp(ftyp) = Any::decode(&mut cursor).unwrap() else { panic!("ftyp first") };
    assert_eq!(ftyp.major_brand, mp4_atom::FourCC::new(b"iso6"));
    assert!(ftyp.compatible_brands.contains(&mp4_atom::FourCC::new(b"cmfc")));
    let Any::Moov(moov) = Any::decode(&mut cursor).unwrap() else { panic!("moov second") };
    assert_eq!(cursor.position() as usize, bytes.len());
    assert_eq!(moov.mvhd.next_track_id, 10);
    let ids: Vec<_> = moov.trak.iter().map(|t| (t.tkhd.track_id, t.mdia.mdhd.timescale)).collect();
    assert_eq!(ids, [(1, 15360), (2, 48000), (3, 90000), (5, 90000), (9, 48000)]);
    let trex: Vec<_> = moov.mvex.as_ref().unwrap().trex.iter().map(|t| t.track_id).collect();
    assert_eq!(trex, [1, 2, 3, 5, 9]);
    let entry = |i: usize| &moov.trak[i].mdia.minf.stbl.stsd.codecs[0];

    let Codec::Avc1(a) = entry(0) else { panic!("avc1") };
    assert_eq!(a.avcc, avc1.avcc);
    assert_eq!((a.visual.width, a.visual.height), (320, 180));
    assert_eq!((moov.trak[0].tkhd.width.integer(), moov.trak[0].tkhd.height.integer()), (320, 180));
    assert_eq!(moov.trak[0].mdia.hdlr.handler, mp4_atom::FourCC::new(b"vide"));
    assert!(moov.trak[0].mdia.minf.vmhd.is_some());

    let Codec::Mp4a(m) = entry(1) else { panic!("mp4a") };
    let dc = &m.esds.es_desc.dec_config;
    assert_eq!((dc.object_type_indication, dc.stream_type), (0x40, 5));
    assert_eq!(dc.dec_specific.as_ref().unwrap().raw, asc);
    assert_eq!((m.audio.channel_count, m.audio.sample_rate.integer()), (2, 48000));
    assert_eq!(moov.trak[1].mdia.hdlr.handler, mp4_atom::FourCC::new(b"soun"));
    assert!(moov.trak[1].mdia.minf.smhd.is_some());

    let Codec::Hvc1(h) = entry(2) else { panic!("hvc1") };
    assert_eq!(h.hvcc, hvcc);
    assert_eq!((h.visual.width, h.visual.height), (1920, 1080));

    let Codec::Av01(v) = entry(3) else { panic!("av01") };
    assert_eq!(v.av1c, av1c);
    assert_eq!((v.visual.width, v.visual.height), (640, 360));

    let Codec::Opus(o) = entry(4) else { panic!("Opus") };
    assert_eq!((o.dops.output_channel_count, o.dops.pre_skip, o.dops.input_sample_rate), (1, 312, 44100));
    assert_eq!((o.dops.output_gain, o.dops.channel_mapping.clone()), (0, None));
    assert_eq!((o.audio.channel_count, o.audio.sample_rate.integer()), (1, 48000));

    // And our own parser.
    let init = playlists::fmp4::Init::parse(bytes).unwrap();
    assert_eq!(init.codecs(), "avc1.64000d,mp4a.40.2,hvc1.1.6.L93.B0,av01.0.08M.08,opus");
    assert_eq!(init.resolution(), Some((320, 180)));
    assert_eq!(init.track(3).map(|t| (t.width, t.height)), Some((1920, 1080)));
}

fn samples(n: usize, duration: u32, gop: usize, cto: impl Fn(usize) -> i32, seed: u8) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            duration: duration + (i % 3) as u32,
            composition_offset: cto(i),
            sync: i % gop == 0,
            data: Bytes::from((0..(37 + i * 11)).map(|j| seed.wrapping_add((i * 7 + j) as u8)).collect::<Vec<_>>()),
        })
        .collect()
}

#[test]
fn mp4_atom_reads_the_fragment() {
    let init = write_init(&h264_aac_tracks()).unwrap();
    // B-frames: negative composition offsets force a version 1 trun.
    let video = samples(12, 512, 5, |i| [0, 1024, -512, 512, 0][i % 5], 1);
    let audio = samples(7, 1024, 1, |_| 0, 100);
    let fragment = write_fragment(
        42,
        &[
            TrackFragment { track_id: 1, base_decode_time: 1 << 40, samples: &video },
            TrackFragment { track_id: 2, base_decode_time: 77, samples: &audio },
        ],
    )
    .unwrap();
    let mut file = init.to_vec();
    file.extend_from_slice(&fragment);
    let (_, fragments) = oracle(&file);
    assert_eq!(fragments.len(), 1);
    let f = &fragments[0];
    assert_eq!(f.sequence, 42);
    let expect = |track_id, tfdt, s: &[Sample]| OTrack {
        track_id,
        tfdt,
        samples: s
            .iter()
            .map(|s| OSample {
                duration: s.duration,
                size: s.data.len() as u32,
                flags: if s.sync { 0x0200_0000 } else { 0x0101_0000 },
                cto: i64::from(s.composition_offset),
                data: s.data.to_vec(),
            })
            .collect(),
    };
    assert_eq!(f.tracks, [expect(1, 1 << 40, &video), expect(2, 77, &audio)]);
    let all: Vec<u8> = video.iter().chain(&audio).flat_map(|s| s.data.iter().copied()).collect();
    assert_eq!(f.mdat, all, "the mdat is the payloads, track by track");

    // Our splitter on the same bytes.
    let mut s = Splitter::new(1 << 20);
    s.push(&file);
    let Some(Item::Init(parsed)) = s.next_item().unwrap() else { panic!("init") };
    assert_eq!(parsed.codecs(), "avc1.64000d,mp4a.40.2");
    let Some(Item::Fragment(ours)) = s.next_item().unwrap() else { panic!("fragment") };
    assert_eq!(s.pending(), 0);
    assert!(ours.independent());
    let runs: Vec<_> = ours.tracks.iter().map(|r| (r.track_id, r.base_decode_time, r.samples, r.duration)).collect();
    let sum = |s: &[Sample]| s.iter().map(|s| u64::from(s.duration)).sum::<u64>();
    assert_eq!(runs, [(1, 1 << 40, 12, sum(&video)), (2, 77, 7, sum(&audio))]);
    assert_eq!(ours.bytes, fragment);
}

#[test]
fn writer_errors_are_errors() {
    let too_many = TrackConfig {
        track_id: 1,
        timescale: 48000,
        codec: CodecConfig::Opus { channels: 3, sample_rate: 48000, pre_skip: 0 },
    };
    assert!(matches!(write_init(&[too_many]), Err(Error::Malformed(_))));
    assert!(matches!(write_init(&[]), Err(Error::InvalidOptions(_))));
    assert!(matches!(write_fragment(1, &[]), Err(Error::InvalidOptions(_))));
}

/// The fixture's samples, rewritten by the writer with its own avcC and ASC, read back equal by mp4-atom, and
/// split by us into fragments of the same durations and independence.
#[test]
fn ffmpeg_fixture_round_trip() {
    let (_, original) = oracle(H264);
    assert_eq!(original.len(), 25);
    let mut file = write_init(&h264_aac_tracks()).unwrap().to_vec();
    for f in &original {
        let converted: Vec<Vec<Sample>> = f
            .tracks
            .iter()
            .map(|t| {
                t.samples
                    .iter()
                    .map(|s| Sample {
                        duration: s.duration,
                        composition_offset: i32::try_from(s.cto).unwrap(),
                        sync: s.flags & 0x0001_0000 == 0,
                        data: Bytes::copy_from_slice(&s.data),
                    })
                    .collect()
            })
            .collect();
        let tracks: Vec<TrackFragment<'_>> = f
            .tracks
            .iter()
            .zip(&converted)
            .map(|(t, s)| TrackFragment { track_id: t.track_id, base_decode_time: t.tfdt, samples: s })
            .collect();
        file.extend_from_slice(&write_fragment(f.sequence, &tracks).unwrap());
    }

    let (moov, rewritten) = oracle(&file);
    let moov = moov.unwrap();
    let (avc1, _) = fixture_config();
    let Codec::Avc1(a) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else { panic!("avc1") };
    assert_eq!(a.avcc, avc1.avcc);
    assert_eq!(rewritten.len(), original.len());
    let mut samples = 0;
    for (i, (a, b)) in original.iter().zip(&rewritten).enumerate() {
        assert_eq!(a.sequence, b.sequence, "fragment {i}");
        assert_eq!(a.tracks.len(), b.tracks.len(), "fragment {i}");
        for (ta, tb) in a.tracks.iter().zip(&b.tracks) {
            assert_eq!((ta.track_id, ta.tfdt), (tb.track_id, tb.tfdt), "fragment {i}");
            assert_eq!(ta.samples.len(), tb.samples.len());
            for (sa, sb) in ta.samples.iter().zip(&tb.samples) {
                assert_eq!((sa.duration, sa.size, sa.cto), (sb.duration, sb.size, sb.cto), "fragment {i}");
                assert_eq!(sa.flags & 0x0001_0000, sb.flags & 0x0001_0000, "sync, fragment {i}");
                assert!(sa.data == sb.data, "payload, fragment {i}");
                samples += 1;
            }
        }
    }
    assert!(samples > 150 + 230, "{samples} samples compared");

    // Our splitter sees the same parts in both files.
    let split = |bytes: &[u8]| {
        let mut s = Splitter::new(4 << 20);
        s.push(bytes);
        let mut out: Vec<Fragment> = Vec::new();
        let mut codecs = String::new();
        while let Some(item) = s.next_item().unwrap() {
            match item {
                Item::Init(i) => codecs = i.codecs(),
                Item::Fragment(f) => out.push(f),
            }
        }
        (codecs, out)
    };
    let (codecs_a, a) = split(H264);
    let (codecs_b, b) = split(&file);
    assert_eq!(codecs_a, codecs_b);
    assert_eq!(a.len(), b.len());
    for (fa, fb) in a.iter().zip(&b) {
        assert_eq!(fa.tracks, fb.tracks);
        assert_eq!((fa.duration(), fa.independent()), (fb.duration(), fb.independent()));
    }
}
