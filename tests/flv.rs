//! The FLV packager on real encoder output: ffmpeg's FLV files (H.264 + AAC, with and without B-frames) read tag
//! by tag as an RTMP session would deliver them, and Enhanced RTMP HEVC, AV1 and Opus tag bodies built from
//! ffmpeg's fragmented MP4 (Debian's ffmpeg 5.1 cannot write Enhanced FLV). The output is checked against the
//! input with the crate's own parsers and with mp4-atom as an independent oracle.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mp4_atom::{Any, Codec, Decode, Moof};
use playlists::flv::{Audio, Metadata, Packager, Video, MAX_HELD_SAMPLES};
use playlists::fmp4::{Fragment, Init, Item, TrackKind};
use playlists::Error;
use proptest::prelude::*;

const PART: Duration = Duration::from_millis(200);

fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run scripts/make-fixtures.sh)")))
}

/// One FLV tag: its type (8 audio, 9 video, 18 script), timestamp and body (a slice of the file).
#[derive(Debug, Clone)]
struct Tag {
    kind: u8,
    ms: u32,
    body: Bytes,
}

/// The file's header flags as the packager's metadata, and its tags.
fn read_flv(file: &Bytes) -> (Metadata, Vec<Tag>) {
    let (header, tags) = playlists::flv::read_file(file).expect("an FLV file");
    let meta = Metadata { has_audio: Some(header.has_audio), has_video: Some(header.has_video), ..Metadata::default() };
    (meta, tags.into_iter().map(|t| Tag { kind: t.kind, ms: t.timestamp_ms, body: t.body }).collect())
}

/// Feeds tags to a packager as the RTMP layer would and drains every item.
fn package(meta: &Metadata, tags: &[Tag]) -> (Vec<Item>, Packager) {
    let mut p = Packager::new(PART);
    p.metadata(meta);
    let mut items = Vec::new();
    for t in tags {
        match t.kind {
            8 => p.audio(t.ms, t.body.clone()).expect("audio"),
            9 => p.video(t.ms, t.body.clone()).expect("video"),
            _ => {}
        }
        items.extend(std::iter::from_fn(|| p.next_item()));
    }
    p.flush();
    items.extend(std::iter::from_fn(|| p.next_item()));
    (items, p)
}

/// One sample as the oracle reads it back from a fragment.
#[derive(Debug, Clone, PartialEq)]
struct OutSample {
    dts: u64,
    duration: u32,
    cto: i64,
    sync: bool,
    data: Bytes,
}

/// What mp4-atom reads from a fragment: per track id, its samples.
fn oracle_fragment(bytes: &Bytes) -> Vec<(u32, Vec<OutSample>)> {
    let mut cursor = std::io::Cursor::new(&bytes[..]);
    let moof = Moof::decode(&mut cursor).expect("mp4-atom decodes the moof");
    let moof_len = cursor.position() as usize;
    assert_eq!(&bytes[moof_len + 4..moof_len + 8], b"mdat");
    let mut out = Vec::new();
    for traf in &moof.traf {
        assert!(traf.tfhd.default_base_is_moof);
        let mut dts = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
        let mut samples = Vec::new();
        for trun in &traf.trun {
            let mut at = trun.data_offset.expect("data offset") as usize;
            for e in trun.samples.iter() {
                // ffmpeg's fixtures lean on tfhd defaults; the packager writes every field.
                let size = e.size.or(traf.tfhd.default_sample_size).expect("size") as usize;
                let duration = e.duration.or(traf.tfhd.default_sample_duration).expect("duration");
                let flags = e.flags.or(traf.tfhd.default_sample_flags).expect("flags");
                samples.push(OutSample {
                    dts,
                    duration,
                    cto: e.cts.unwrap_or(0),
                    sync: flags & 0x0001_0000 == 0,
                    data: bytes.slice(at..at + size),
                });
                at += size;
                dts += u64::from(duration);
            }
        }
        out.push((traf.tfhd.track_id, samples));
    }
    out
}

/// The input side: one coded frame with its FLV time.
#[derive(Debug, Clone)]
struct InFrame {
    ms: u32,
    key: bool,
    cts_ms: i32,
    data: Bytes,
}

fn frames_of(tags: &[Tag]) -> (Vec<InFrame>, Vec<InFrame>) {
    let (mut video, mut audio) = (Vec::new(), Vec::new());
    for t in tags {
        match t.kind {
            9 => {
                if let Ok(Video::Frame { keyframe, composition_ms, data, .. }) = Video::parse(t.body.clone()) {
                    video.push(InFrame { ms: t.ms, key: keyframe, cts_ms: composition_ms, data });
                }
            }
            8 => {
                if let Ok(Audio::Frame { data, .. }) = Audio::parse(t.body.clone()) {
                    audio.push(InFrame { ms: t.ms, key: true, cts_ms: 0, data });
                }
            }
            _ => {}
        }
    }
    (video, audio)
}

/// Everything the packager's output must satisfy for an input it takes whole (no drops, no restarts).
struct Checked {
    init: Arc<Init>,
    fragments: Vec<Fragment>,
    audio: Vec<OutSample>,
}

fn check_output(items: &[Item], video_in: &[InFrame], audio_in: &[InFrame], audio_rate: u32) -> Checked {
    let Some(Item::Init(init)) = items.first() else { panic!("an init comes first") };
    assert_eq!(items.iter().filter(|i| matches!(i, Item::Init(_))).count(), 1, "one init");
    let fragments: Vec<Fragment> = items[1..]
        .iter()
        .map(|i| match i {
            Item::Fragment(f) => f.clone(),
            Item::Init(_) => panic!("a second init"),
        })
        .collect();
    let (mut video, mut audio) = (Vec::new(), Vec::new());
    let max_video = PART.as_secs_f64() * 90000.0;
    for (n, f) in fragments.iter().enumerate() {
        // The crate's parser (what the publisher uses) agrees with the oracle.
        let reparsed = Fragment::parse(f.bytes.clone(), init).expect("Fragment::parse");
        assert_eq!(&reparsed, f);
        let tracks = oracle_fragment(&f.bytes);
        let mut times = (None, None);
        for (id, samples) in tracks {
            let run = f.tracks.iter().find(|r| r.track_id == id).expect("run");
            assert_eq!(run.samples as usize, samples.len());
            assert_eq!(run.duration, samples.iter().map(|s| u64::from(s.duration)).sum::<u64>());
            match id {
                1 => {
                    assert!(run.duration as f64 <= max_video, "fragment {n}: {} ticks of video", run.duration);
                    assert!(samples.iter().skip(1).all(|s| !s.sync), "fragment {n}: a keyframe starts a fragment");
                    times.0 = Some(run.base_decode_time as f64 / 90000.0);
                    video.extend(samples);
                }
                2 => {
                    assert!(samples.iter().all(|s| s.sync && s.cto == 0));
                    times.1 = Some(run.base_decode_time as f64 / f64::from(audio_rate));
                    audio.extend(samples);
                }
                other => panic!("track {other}"),
            }
        }
        // The first fragment starts where each track's input starts (ffmpeg's B-frame FLV has video decode
        // times 57 ms ahead of audio, since their presentation starts at 80 ms).
        if let (Some(v), Some(a), true) = (times.0, times.1, n > 0) {
            let frame = 1024.0 / f64::from(audio_rate);
            assert!((v - a).abs() <= frame, "fragment {n}: video at {v:.4} s, audio at {a:.4} s");
        }
    }
    // Every frame, in order, byte for byte; each a slice of the one buffer of its fragment.
    assert_eq!(video.len(), video_in.len(), "video frames");
    assert_eq!(audio.len(), audio_in.len(), "audio frames");
    for (i, (o, f)) in video.iter().zip(video_in).enumerate() {
        assert_eq!(o.data, f.data, "video frame {i}");
        assert_eq!(o.sync, f.key, "video frame {i} sync");
        assert_eq!(o.dts, u64::from(f.ms) * 90, "video frame {i} decode time");
        assert_eq!(o.cto, i64::from(f.cts_ms) * 90, "video frame {i} composition offset");
    }
    for (i, (o, f)) in audio.iter().zip(audio_in).enumerate() {
        assert_eq!(o.data, f.data, "audio frame {i}");
    }
    // Every keyframe starts a fragment: as many independent fragments as keyframes.
    let keys = video_in.iter().filter(|f| f.key).count();
    let starts = fragments.iter().filter(|f| f.tracks.iter().any(|r| r.kind == TrackKind::Video && r.starts_with_sync));
    assert_eq!(starts.count(), keys);
    // Durations: video spans first to last frame plus the last frame's (the previous one's) duration.
    if let (Some(first), Some(last)) = (video_in.first(), video_in.last()) {
        let total: u64 = video.iter().map(|s| u64::from(s.duration)).sum();
        let last_duration = u64::from(video[video.len() - 1].duration);
        assert_eq!(total, u64::from(last.ms - first.ms) * 90 + last_duration);
        assert_eq!(last_duration, u64::from(video[video.len() - 2].duration));
    }
    Checked { init: Arc::clone(init), fragments, audio }
}

#[test]
fn h264_aac_fixture() {
    let (meta, tags) = read_flv(&fixture("h264_aac.flv"));
    let (video_in, audio_in) = frames_of(&tags);
    assert_eq!((video_in.len(), audio_in.len()), (120, 189));
    let (items, p) = package(&meta, &tags);
    let out = check_output(&items, &video_in, &audio_in, 48000);
    assert_eq!(out.init.codecs(), "avc1.64000d,mp4a.40.2");
    assert_eq!(out.init.resolution(), Some((320, 180)));
    let scales: Vec<_> = out.init.tracks.iter().map(|t| (t.id, t.kind, t.timescale)).collect();
    assert_eq!(scales, [(1, TrackKind::Video, 90000), (2, TrackKind::Audio, 48000)]);
    // 30 fps, 2 s GOPs: 6 frames (exactly 200 ms) per fragment, 20 fragments.
    // 30 fps, 2 s GOPs: 6 frames (exactly 200 ms) per fragment. At the end the last frame, given its
    // predecessor's 34 ms, would make the 20th fragment 201 ms: it goes alone into a 21st.
    assert_eq!(out.fragments.len(), 21);
    assert!(out.fragments[..19].iter().all(|f| f.tracks[0].samples == 6 && f.duration() == PART));
    assert_eq!(out.fragments[19].tracks[0].samples + out.fragments[20].tracks[0].samples, 6);
    // AAC: 1024 ticks per frame from the anchor at the first frame, contiguous.
    assert!(out.audio.iter().enumerate().all(|(i, s)| s.duration == 1024 && s.dts == i as u64 * 1024));
    assert_eq!(p.stats().dropped_video + p.stats().dropped_audio + p.stats().audio_reanchors, 0);
    // mp4-atom reads the init as written: the avcC and ASC exactly as the sequence headers carried them.
    let mut cursor = std::io::Cursor::new(&out.init.bytes[..]);
    let Any::Ftyp(ftyp) = Any::decode(&mut cursor).expect("ftyp") else { panic!("ftyp first") };
    assert_eq!(ftyp.major_brand, mp4_atom::FourCC::new(b"iso6"));
    let Any::Moov(moov) = Any::decode(&mut cursor).expect("moov") else { panic!("moov second") };
    assert_eq!(cursor.position() as usize, out.init.bytes.len());
    let Codec::Avc1(avc1) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else { panic!("avc1") };
    assert_eq!((avc1.visual.width, avc1.visual.height), (320, 180));
    assert_eq!(avc1.avcc.avc_profile_indication, 100);
    let (video_header, _) = sequence_headers("h264_aac.flv");
    assert_eq!(find_box(&out.init.bytes, b"avcC"), video_header.slice(5..), "the avcC as sent");
    let Codec::Mp4a(mp4a) = &moov.trak[1].mdia.minf.stbl.stsd.codecs[0] else { panic!("mp4a") };
    assert_eq!((mp4a.audio.channel_count, mp4a.audio.sample_rate.integer()), (2, 48000));
    assert_eq!((p.stats().inits, p.stats().fragments), (1, 21));
}

#[test]
fn packager_is_send() {
    // The RTMP layer runs one per connection on a tokio task.
    fn send<T: Send>() {}
    send::<Packager>();
}

#[test]
fn h264_bframes_fixture() {
    let (meta, tags) = read_flv(&fixture("h264_bframes.flv"));
    let (video_in, audio_in) = frames_of(&tags);
    assert!(video_in.iter().any(|f| f.cts_ms > 0), "the fixture has B-frames");
    let (items, p) = package(&meta, &tags);
    let out = check_output(&items, &video_in, &audio_in, 44100);
    assert_eq!(out.init.codecs(), "avc1.64000c,mp4a.40.2");
    assert_eq!(out.init.resolution(), Some((318, 178)));
    assert_eq!(out.init.tracks[1].timescale, 44100);
    // 25 fps: 5 frames of 40 ms per fragment.
    assert!(out.fragments.iter().all(|f| f.duration() <= PART));
    assert_eq!(p.stats().dropped_video, 0);
}

/// Top-level boxes of an MP4 file: `(type, body)`.
fn boxes(file: &Bytes) -> Vec<([u8; 4], Bytes)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= file.len() {
        let size = u32::from_be_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]]) as usize;
        let kind = [file[at + 4], file[at + 5], file[at + 6], file[at + 7]];
        out.push((kind, file.slice(at..at + size)));
        at += size;
    }
    out
}

/// The body of the first box of this type anywhere in `data` (found by its type; enough for these fixtures).
fn find_box(data: &[u8], kind: &[u8; 4]) -> Bytes {
    let i = data.windows(4).position(|w| w == kind).expect("box");
    let size = u32::from_be_bytes([data[i - 4], data[i - 3], data[i - 2], data[i - 1]]) as usize;
    Bytes::copy_from_slice(&data[i + 4..i - 4 + size])
}

/// The samples of one track of a fragmented MP4, with its timescale: `(dts, cts offset, sync, data)`.
fn mp4_samples(file: &Bytes, track: u32) -> Vec<(u32, i32, bool, Bytes)> {
    let mut out = Vec::new();
    let all = boxes(file);
    let init = Init::parse(Bytes::from([&all[0].1[..], &all[1].1[..]].concat())).expect("fixture init");
    let timescale = init.track(track).expect("track").timescale;
    for (i, (kind, moof)) in all.iter().enumerate() {
        if kind != b"moof" {
            continue;
        }
        let mut bytes = moof.to_vec();
        bytes.extend_from_slice(&all[i + 1].1);
        for (id, samples) in oracle_fragment(&Bytes::from(bytes)) {
            if id != track {
                continue;
            }
            for s in samples {
                let ms = |t: i64| (t * 1000 / i64::from(timescale)) as i32;
                out.push((ms(s.dts as i64) as u32, ms(s.dts as i64 + s.cto) - ms(s.dts as i64), s.sync, s.data));
            }
        }
    }
    out
}

/// Enhanced RTMP video tags from a fragmented MP4's only track: SequenceStart, then CodedFrames (with a
/// composition time when there is one and the codec has it) or CodedFramesX.
fn enhanced_video(file: &Bytes, fourcc: &[u8; 4], record: &[u8; 4], prefix: &[u8]) -> (Vec<Tag>, Vec<InFrame>) {
    let config = find_box(file, record);
    let mut tags = vec![Tag { kind: 9, ms: 0, body: Bytes::from([&[0x90], &fourcc[..], &config].concat()) }];
    let mut frames = Vec::new();
    for (ms, cts, sync, data) in mp4_samples(file, 1) {
        let frame_type = if sync { 0x10 } else { 0x20 };
        let with_cts = cts != 0 && fourcc != b"av01";
        let mut body = vec![0x80 | frame_type | if with_cts { 1 } else { 3 }];
        body.extend_from_slice(fourcc);
        if with_cts {
            body.extend_from_slice(&cts.to_be_bytes()[1..]);
        }
        body.extend_from_slice(prefix);
        body.extend_from_slice(&data);
        tags.push(Tag { kind: 9, ms, body: Bytes::from(body) });
        frames.push(InFrame { ms, key: sync, cts_ms: cts, data });
    }
    (tags, frames)
}

#[test]
fn hevc_enhanced_rtmp() {
    let (tags, frames) = enhanced_video(&fixture("hevc.mp4"), b"hvc1", b"hvcC", &[]);
    assert!(frames.iter().any(|f| f.cts_ms != 0), "x265 with B-frames");
    let meta = Metadata { has_audio: Some(false), has_video: Some(true), ..Metadata::default() };
    let (items, _) = package(&meta, &tags);
    let out = check_output(&items, &frames, &[], 48000);
    assert!(out.init.codecs().starts_with("hvc1.1."), "{}", out.init.codecs());
    assert_eq!(out.init.resolution(), Some((320, 180)));
}

#[test]
fn av1_enhanced_rtmp() {
    // Every temporal unit with a temporal delimiter in front, as encoders send it: the packager slices it off.
    let (tags, frames) = enhanced_video(&fixture("av1.mp4"), b"av01", b"av1C", &[0x12, 0x00]);
    let meta = Metadata { has_audio: Some(false), ..Metadata::default() };
    let (items, _) = package(&meta, &tags);
    let out = check_output(&items, &frames, &[], 48000);
    assert!(out.init.codecs().starts_with("av01.0."), "{}", out.init.codecs());
    assert_eq!(out.init.resolution(), Some((320, 180)));
}

#[test]
fn opus_enhanced_rtmp_audio_only() {
    let file = fixture("vp9_opus.mp4");
    // dOps (big-endian, version 0) into OpusHead (little-endian, version 1).
    let dops = find_box(&file, b"dOps");
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, dops[1]]);
    head.extend_from_slice(&[dops[3], dops[2], dops[7], dops[6], dops[5], dops[4], dops[9], dops[8], dops[10]]);
    let mut tags = vec![Tag { kind: 8, ms: 0, body: Bytes::from([&b"\x90Opus"[..], &head].concat()) }];
    let mut frames = Vec::new();
    for (ms, _, _, data) in mp4_samples(&file, 2) {
        tags.push(Tag { kind: 8, ms, body: Bytes::from([&b"\x91Opus"[..], &data].concat()) });
        frames.push(InFrame { ms, key: true, cts_ms: 0, data });
    }
    let meta = Metadata { has_video: Some(false), ..Metadata::default() };
    let (items, _) = package(&meta, &tags);
    let out = check_output(&items, &[], &frames, 48000);
    assert_eq!(out.init.codecs(), "opus");
    // 20 ms packets: 10 per 200 ms fragment.
    assert!(out.fragments.iter().all(|f| f.duration() <= PART));
    assert!(out.fragments[..out.fragments.len() - 1].iter().all(|f| f.tracks[0].samples == 10));
    assert!(out.audio.iter().all(|s| s.duration == 960));
}

// ---- Behaviour on synthetic streams (real sequence headers from the fixtures, made-up frames) ----

/// The sequence headers of a fixture: `(video, audio)`.
fn sequence_headers(name: &str) -> (Bytes, Bytes) {
    let (_, tags) = read_flv(&fixture(name));
    let video = tags.iter().find(|t| t.kind == 9).expect("video header").body.clone();
    let audio = tags.iter().find(|t| t.kind == 8).expect("audio header").body.clone();
    (video, audio)
}

fn video_frame(key: bool, n: u32) -> Bytes {
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 4, if key { 0x65 } else { 0x41 }];
    v.extend_from_slice(&n.to_be_bytes()[1..]);
    Bytes::from(v)
}

fn aac_frame(n: u32) -> Bytes {
    Bytes::from([&[0xaf, 0x01][..], &n.to_be_bytes()].concat())
}

fn drain(p: &mut Packager) -> Vec<Item> {
    std::iter::from_fn(|| p.next_item()).collect()
}

fn inits(items: &[Item]) -> Vec<Arc<Init>> {
    items.iter().filter_map(|i| if let Item::Init(init) = i { Some(Arc::clone(init)) } else { None }).collect()
}

fn fragments(items: &[Item]) -> Vec<Fragment> {
    items.iter().filter_map(|i| if let Item::Fragment(f) = i { Some(f.clone()) } else { None }).collect()
}

/// Video at 30 fps (33/34 ms) from `from_ms` for `count` frames, a keyframe every `gop`.
fn feed_video(p: &mut Packager, from_ms: u32, count: u32, gop: u32) {
    for i in 0..count {
        let ms = from_ms + i * 100 / 3;
        p.video(ms, video_frame(i % gop == 0, i)).expect("video frame");
    }
}

#[test]
fn frames_before_the_first_keyframe_are_dropped() {
    let (avc, aac) = sequence_headers("h264_aac.flv");
    let mut p = Packager::new(PART);
    p.video(0, avc).expect("avc");
    p.audio(0, aac).expect("aac");
    for i in 0..3 {
        p.video(i * 33, video_frame(false, i)).expect("inter");
    }
    feed_video(&mut p, 100, 30, 30);
    p.flush();
    let items = drain(&mut p);
    assert_eq!(inits(&items).len(), 1);
    let f = fragments(&items);
    assert!(f[0].independent());
    assert_eq!(f[0].decode_time(), Some((100 * 90, 90000)));
    assert_eq!(f.iter().map(|f| f.tracks[0].samples).sum::<u32>(), 30);
    assert_eq!(p.stats().dropped_video, 3);
}

#[test]
fn init_waits_for_audio_then_goes_without_it() {
    let (avc, aac) = sequence_headers("h264_aac.flv");
    let mut p = Packager::new(PART);
    p.video(0, avc).expect("avc");
    feed_video(&mut p, 0, 30, 30);
    assert!(drain(&mut p).is_empty(), "under a second of media: still waiting for an audio header");
    feed_video(&mut p, 1000, 6, 1000);
    let items = drain(&mut p);
    let first = inits(&items);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].codecs(), "avc1.64000d", "video only");
    assert!(fragments(&items).len() >= 5, "what waited is written after the init");
    // Audio turns up late: a second init with both tracks, and video restarts at the next keyframe.
    p.audio(1300, aac).expect("aac");
    for i in 0..20 {
        p.audio(1300 + i * 21, aac_frame(i)).expect("aac frame");
    }
    feed_video(&mut p, 1300, 12, 6);
    p.flush();
    let items = drain(&mut p);
    let second = inits(&items);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].codecs(), "avc1.64000d,mp4a.40.2");
    let after: Vec<Fragment> = items
        .iter()
        .skip_while(|i| matches!(i, Item::Fragment(_)))
        .skip(1)
        .filter_map(|i| if let Item::Fragment(f) = i { Some(f.clone()) } else { None })
        .collect();
    assert!(after[0].independent(), "the first fragment after a new init starts with a keyframe");
}

#[test]
fn metadata_without_audio_starts_at_once() {
    let (avc, _) = sequence_headers("h264_aac.flv");
    let mut p = Packager::new(PART);
    p.metadata(&Metadata { has_audio: Some(false), width: Some(320), height: Some(180), ..Metadata::default() });
    p.video(0, avc).expect("avc");
    assert!(drain(&mut p).is_empty(), "the init waits for media, not for audio");
    p.video(0, video_frame(true, 0)).expect("key");
    let items = drain(&mut p);
    assert!(matches!(&items[..], [Item::Init(i)] if i.codecs() == "avc1.64000d"));
}

#[test]
fn a_new_sequence_header_writes_a_new_init() {
    let (avc, aac) = sequence_headers("h264_aac.flv");
    let (other, _) = sequence_headers("h264_bframes.flv");
    let mut p = Packager::new(PART);
    p.video(0, avc.clone()).expect("avc");
    p.audio(0, aac.clone()).expect("aac");
    feed_video(&mut p, 0, 10, 30);
    // The same headers again (encoders repeat them): nothing changes.
    p.video(333, avc).expect("avc again");
    p.audio(333, aac).expect("aac again");
    p.video(340, other).expect("new avc");
    feed_video(&mut p, 340, 10, 30);
    p.flush();
    let items = drain(&mut p);
    let all = inits(&items);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].resolution(), Some((320, 180)));
    assert_eq!(all[1].resolution(), Some((318, 178)));
    // Before the second init: all 10 frames of the first configuration, the last one included.
    let split = items.iter().rposition(|i| matches!(i, Item::Init(_))).expect("second init");
    let before: u32 = fragments(&items[..split]).iter().map(|f| f.tracks[0].samples).sum();
    assert_eq!(before, 10);
    assert!(fragments(&items[split..])[0].independent());
}

#[test]
fn timestamps_going_back_or_jumping_start_a_new_timeline() {
    let (avc, aac) = sequence_headers("h264_aac.flv");
    let mut p = Packager::new(PART);
    p.video(0, avc).expect("avc");
    p.audio(0, aac).expect("aac");
    feed_video(&mut p, 5000, 30, 10);
    feed_video(&mut p, 100, 30, 10); // back in time
    feed_video(&mut p, 60_000, 30, 10); // a minute later
    p.flush();
    let items = drain(&mut p);
    assert_eq!(inits(&items).len(), 1, "a new timeline is not a new configuration");
    assert_eq!(p.stats().timeline_restarts, 2);
    let starts: Vec<u64> = fragments(&items).iter().map(|f| f.tracks[0].base_decode_time / 90).collect();
    // 10-frame GOPs (333 ms): fragments of 200 and 133 ms, six per 30 frames.
    for (at, ms) in [(0, 5000), (6, 100), (12, 60_000)] {
        assert_eq!(starts[at], ms, "{starts:?}");
    }
    // No fragment spans a jump: within one, decode times only grow by the frame durations.
    assert!(fragments(&items).iter().all(|f| f.tracks[0].duration <= 200 * 90));
}

#[test]
fn audio_reanchors_when_frames_go_missing() {
    let (_, aac) = sequence_headers("h264_aac.flv");
    let mut p = Packager::new(PART);
    p.metadata(&Metadata { has_video: Some(false), ..Metadata::default() });
    p.audio(0, aac).expect("aac");
    // 48 kHz AAC: 21.33 ms per frame. Frames 0..30, then the encoder drops 10 frames (213 ms).
    let ms = |n: u32| n * 1024 * 1000 / 48000;
    for n in (0..30).chain(40..70) {
        p.audio(ms(n), aac_frame(n)).expect("frame");
    }
    p.flush();
    let items = drain(&mut p);
    assert_eq!(p.stats().audio_reanchors, 1);
    let f = fragments(&items);
    let times: Vec<(u64, u64)> = f.iter().map(|f| (f.tracks[0].base_decode_time, f.tracks[0].duration)).collect();
    // Audio-only: 9 frames (192 ms) per fragment; the one before the gap is cut there.
    assert!(times.iter().all(|&(_, d)| d <= 9600), "{times:?}");
    let after = times.iter().position(|&(t, _)| t >= u64::from(ms(40)) * 48).expect("after the gap");
    assert_eq!(times[after].0, u64::from(ms(40)) * 48, "re-anchored on the FLV timestamp");
    assert_eq!(times[after - 1].0 + times[after - 1].1, 30 * 1024, "counted frames up to the gap");
}

#[test]
fn memory_is_bounded() {
    let (avc, _) = sequence_headers("h264_aac.flv");
    let meta = Metadata { has_audio: Some(false), ..Metadata::default() };
    // Frames that never advance the clock: samples pile up until the bound.
    let mut p = Packager::new(PART);
    p.metadata(&meta);
    p.video(0, avc.clone()).expect("avc");
    let mut result = Ok(());
    for i in 0..=MAX_HELD_SAMPLES as u32 + 1 {
        result = p.video(0, video_frame(i == 0, i));
        if result.is_err() {
            break;
        }
    }
    let err = result.expect_err("bounded");
    assert!(matches!(&err, Error::MalformedFlv(m) if m.contains("samples pending")), "{err}");
    assert_eq!(p.video(0, video_frame(true, 0)), Err(err), "the packager stays failed");
    // Big frames on one millisecond: bounded in bytes.
    let mut p = Packager::new(PART);
    p.metadata(&meta);
    p.video(0, avc).expect("avc");
    let big = Bytes::from([&[0x17u8, 1, 0, 0, 0][..], &vec![0u8; 4 << 20]].concat());
    let err = (0..20).map(|_| p.video(0, big.clone())).find_map(Result::err).expect("bounded");
    assert!(matches!(err, Error::TooLarge { limit, .. } if limit == playlists::flv::MAX_HELD_BYTES));
}

#[test]
fn malformed_messages_are_errors_that_change_nothing() {
    let (avc, aac) = sequence_headers("h264_aac.flv");
    let mut p = Packager::new(PART);
    p.video(0, avc).expect("avc");
    p.audio(0, aac).expect("aac");
    assert!(p.video(0, Bytes::from_static(&[0x22, 0, 0, 0, 0])).is_err(), "H.263");
    assert!(p.audio(0, Bytes::from_static(&[0x2f, 0xff])).is_err(), "MP3");
    assert!(p.video(0, Bytes::from_static(b"\x90hvc1\x01")).is_err(), "a truncated hvcC");
    assert!(p.video(0, Bytes::from_static(b"\x91hvc1\0\0\0\0")).is_err(), "HEVC frames in an H.264 stream");
    feed_video(&mut p, 0, 12, 6);
    p.flush();
    assert_eq!(fragments(&drain(&mut p)).len(), 2);
}

fn fixture_tags() -> Vec<Tag> {
    let (_, mut tags) = read_flv(&fixture("h264_aac.flv"));
    tags.retain(|t| t.kind != 18);
    tags.truncate(80);
    tags
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes as either message kind: errors or nothing, never a panic.
    #[test]
    fn random_messages_never_panic(msgs in prop::collection::vec((any::<bool>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)), 0..40)) {
        let (avc, aac) = sequence_headers("h264_aac.flv");
        let mut p = Packager::new(PART);
        let _ = p.video(0, avc);
        let _ = p.audio(0, aac);
        for (video, ms, bytes) in msgs {
            let bytes = Bytes::from(bytes);
            let _ = Video::parse(bytes.clone());
            let _ = Audio::parse(bytes.clone());
            let _ = if video { p.video(ms % 10_000, bytes) } else { p.audio(ms % 10_000, bytes) };
            while p.next_item().is_some() {}
        }
        p.flush();
    }

    /// The real stream with random tags cut short (sequence headers included): never a panic, and whatever comes
    /// out still parses.
    #[test]
    fn truncated_real_tags_never_panic(cuts in prop::collection::vec((0usize..80, 0usize..64), 1..12)) {
        let mut tags = fixture_tags();
        for (i, len) in cuts {
            let t = &mut tags[i];
            t.body = t.body.slice(..len.min(t.body.len()));
        }
        let mut p = Packager::new(PART);
        let mut init: Option<Arc<Init>> = None;
        for t in &tags {
            let _ = if t.kind == 9 { p.video(t.ms, t.body.clone()) } else { p.audio(t.ms, t.body.clone()) };
            while let Some(item) = p.next_item() {
                match item {
                    Item::Init(i) => init = Some(i),
                    Item::Fragment(f) => {
                        let init = init.as_ref().expect("an init before fragments");
                        prop_assert!(Fragment::parse(f.bytes.clone(), init).is_ok());
                    }
                }
            }
        }
        p.flush();
    }
}

#[test]
fn a_header_replaced_before_any_frame_gives_one_init() {
    let (avc, aac) = sequence_headers("h264_aac.flv");
    let (other, _) = sequence_headers("h264_bframes.flv");
    let mut p = Packager::new(PART);
    p.audio(0, aac).expect("aac");
    p.video(0, avc).expect("avc");
    p.video(0, other).expect("replaced at once");
    feed_video(&mut p, 0, 6, 6);
    p.flush();
    let items = drain(&mut p);
    let all = inits(&items);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].resolution(), Some((318, 178)));
}

#[test]
fn audio_alone_without_metadata_waits_then_cuts_what_piled_up() {
    let (_, aac) = sequence_headers("h264_aac.flv");
    let mut p = Packager::new(PART);
    p.audio(0, aac).expect("aac");
    let ms = |n: u32| n * 1024 * 1000 / 48000;
    let mut n = 0;
    while ms(n) < 1000 {
        p.audio(ms(n), aac_frame(n)).expect("frame");
        n += 1;
    }
    assert!(drain(&mut p).is_empty(), "a video header may still come");
    for n in n..100 {
        p.audio(ms(n), aac_frame(n)).expect("frame");
    }
    p.flush();
    let items = drain(&mut p);
    assert_eq!(inits(&items)[0].codecs(), "mp4a.40.2");
    let f = fragments(&items);
    // 9 frames (192 ms) each, the last with the remaining 1; contiguous from 0.
    assert_eq!(f.len(), 12);
    assert!(f[..11].iter().all(|f| f.tracks[0].samples == 9));
    assert!(f
        .windows(2)
        .all(|w| w[0].tracks[0].base_decode_time + w[0].tracks[0].duration == w[1].tracks[0].base_decode_time));
}

#[test]
fn picture_size_falls_back_on_metadata() {
    // An hvcC with no parameter set arrays has no SPS to read the size from: onMetaData's is used.
    let hvcc = find_box(&fixture("hevc.mp4"), b"hvcC");
    let mut bare = hvcc[..23].to_vec();
    bare[22] = 0;
    let mut p = Packager::new(PART);
    p.metadata(&Metadata { width: Some(640), height: Some(360), has_audio: Some(false), ..Metadata::default() });
    p.video(0, Bytes::from([&b"\x90hvc1"[..], &bare].concat())).expect("hvcC without arrays");
    p.video(0, Bytes::from_static(b"\x93hvc1\x00\x00\x00\x01\x26")).expect("key");
    p.flush();
    let items = drain(&mut p);
    assert_eq!(inits(&items)[0].resolution(), Some((640, 360)));
}

proptest! {
    /// Every codec record parser on random bytes, and on the real records with a byte changed and cut short:
    /// an `Ok` or an `Err`, never a panic.
    #[test]
    fn record_parsers_never_panic(
        random in prop::collection::vec(any::<u8>(), 0..128),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        use playlists::flv::{aac::AudioSpecificConfig, av1::Av1Config, avc, hevc, opus};
        let parse_all = |b: &[u8]| {
            let _ = avc::AvcConfig::parse(b);
            let _ = avc::sps_picture_size(b);
            let _ = hevc::HevcConfig::parse(b);
            let _ = hevc::sps_picture_size(b);
            let _ = Av1Config::parse(b);
            let _ = AudioSpecificConfig::parse(b);
            let _ = opus::OpusHead::parse(b);
            let _ = opus::packet_duration(b);
        };
        parse_all(&random);
        let (avc_header, aac_header) = sequence_headers("h264_aac.flv");
        let records = [
            avc_header.slice(5..),
            aac_header.slice(2..),
            find_box(&fixture("hevc.mp4"), b"hvcC"),
            find_box(&fixture("av1.mp4"), b"av1C"),
        ];
        for record in records {
            let mut r = record.to_vec();
            let i = at.index(r.len());
            r[i] ^= byte;
            parse_all(&r);
            parse_all(&r[..cut.index(r.len() + 1)]);
        }
    }
}
