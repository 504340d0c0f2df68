//! Re-fragmenting: cutting a fragment longer than the part target into parts at sample boundaries.
//!
//! An encoder that fragments only at keyframes (ffmpeg's `frag_keyframe` without `-frag_duration`, most RTMP-fed
//! muxers) sends one fragment per GOP, seconds long; an LL-HLS part must not exceed the part target. The fragment
//! is cut on the main track (video, else audio): a video sync sample always starts a piece, so a GOP that starts
//! inside a long fragment starts an independent part (segments must start at keyframes), and between sync samples
//! the pieces are as even as possible. Samples of the other tracks follow the main track's time ranges.
//!
//! The pieces are written by the [`writer`](super::writer)'s fragment code, so there is one place that writes
//! `moof` + `mdat`. Every sample keeps its duration, flags, composition offset and bytes exactly.

use std::ops::Range;
use std::time::Duration;

use super::fragment::{Fragment, SampleTables, TrackSamples};
use super::init::{Init, TrackKind};
use super::writer::{write_moof_mdat, Run, SampleView};
use crate::error::Error;

/// Cuts a fragment longer than `max` into fragments of at most `max` (at sample boundaries), same samples.
///
/// A fragment whose main track lasts at most `max` comes back untouched (the same `Bytes`, nothing parsed).
/// Otherwise the main track (see [`Fragment::main_run`]) is cut: each of its video sync samples starts a piece,
/// and the stretches between them are cut into the fewest, most even pieces of at most `max`; a single sample
/// longer than `max` is a piece of its own. A sample of another track goes to the piece whose main-track time
/// range holds its decode time (the first piece takes any before, the last any after). Each piece has one
/// `traf` per track with samples in it and the original `mfhd` sequence number; boxes in front of the `moof`
/// (`styp`, `prft`, `emsg`, `sidx`) stay in front of the first piece only.
///
/// A fragment whose samples cannot be located (a `tfhd` with an absolute base data offset), or that has two
/// `traf`s for one track, is [`Error::Malformed`].
pub fn refragment(fragment: Fragment, init: &Init, max: Duration) -> Result<Vec<Fragment>, Error> {
    if fragment.duration() <= max {
        return Ok(vec![fragment]);
    }
    let Some(main) = fragment.main_run().copied() else { return Ok(vec![fragment]) };
    let tables = fragment.sample_tables(init)?;
    let main_index = main_track_index(&tables, main.track_id)?;

    // The most ticks a piece may last; floored, so a piece of at most this many ticks is at most `max`.
    let max_ticks = u64::try_from(max.as_nanos() * u128::from(main.timescale) / 1_000_000_000).unwrap_or(u64::MAX);
    let main_samples = &tables.tracks[main_index].samples;
    let durations: Vec<u32> = main_samples.iter().map(|s| s.duration).collect();
    let mut starts = Vec::new();
    let mut group_start = 0;
    for i in 1..=durations.len() {
        let sync_cut = main.kind == TrackKind::Video && main_samples.get(i).is_some_and(|s| s.is_sync());
        if i == durations.len() || sync_cut {
            split_group(&durations[group_start..i], max_ticks, group_start, &mut starts);
            group_start = i;
        }
    }
    let decode_times: Vec<Vec<u64>> = tables.tracks.iter().map(decode_times).collect::<Result<_, _>>()?;
    pieces_at(&fragment, init, &tables, main_index, &decode_times, &starts)
}

/// Cuts `fragment` where its main track's decode time is nearest to each of `at` (ticks of the main track's
/// timescale): the boundaries a group's timeline gave (see [`crate::timeline`]). A time nearest to the first sample
/// or beyond the last cuts nothing, so the pieces are the fragment's samples in order, none empty; with nothing to
/// cut the fragment comes back untouched. Errors as [`refragment`].
pub fn split_at(fragment: Fragment, init: &Init, at: &[u64]) -> Result<Vec<Fragment>, Error> {
    let Some(main) = fragment.main_run().copied() else { return Ok(vec![fragment]) };
    let end = main.base_decode_time.saturating_add(main.duration);
    if !at.iter().any(|&t| t > main.base_decode_time && t < end) {
        return Ok(vec![fragment]);
    }
    let tables = fragment.sample_tables(init)?;
    let main_index = main_track_index(&tables, main.track_id)?;
    let decode_times: Vec<Vec<u64>> = tables.tracks.iter().map(decode_times).collect::<Result<_, _>>()?;
    let times = &decode_times[main_index];
    let mut at = at.to_vec();
    at.sort_unstable();
    let mut starts = vec![0];
    for t in at {
        // The sample boundary nearest to `t`: the first sample at or after it, or the one before when closer.
        let after = times.partition_point(|&x| x < t);
        let nearest = match (after.checked_sub(1), times.get(after)) {
            (Some(before), Some(&next)) if t - times[before] < next - t => before,
            (Some(before), None) => before + usize::from(end - t <= t - times[before]),
            _ => after,
        };
        if nearest > starts[starts.len() - 1] && nearest < times.len() {
            starts.push(nearest);
        }
    }
    if starts.len() == 1 {
        return Ok(vec![fragment]);
    }
    pieces_at(&fragment, init, &tables, main_index, &decode_times, &starts)
}

fn main_track_index(tables: &SampleTables, track_id: u32) -> Result<usize, Error> {
    for (i, t) in tables.tracks.iter().enumerate() {
        if tables.tracks[..i].iter().any(|o| o.track_id == t.track_id) {
            return Err(Error::Malformed(format!("two trafs for track {} in one fragment", t.track_id)));
        }
    }
    tables
        .tracks
        .iter()
        .position(|t| t.track_id == track_id)
        .ok_or_else(|| Error::Malformed("main track without samples".into()))
}

/// Writes the pieces of `fragment` that start at the main track's samples `starts` (ascending, the first 0); the
/// other tracks' samples follow the main track's time ranges.
fn pieces_at(
    fragment: &Fragment,
    init: &Init,
    tables: &SampleTables,
    main_index: usize,
    decode_times: &[Vec<u64>],
    starts: &[usize],
) -> Result<Vec<Fragment>, Error> {
    let pieces = starts.len();
    let main_timescale = init
        .track(tables.tracks[main_index].track_id)
        .map(|t| t.timescale)
        .ok_or_else(|| Error::Malformed("main track not in the init".into()))?;
    let main_times = &decode_times[main_index];
    let mut ranges: Vec<Vec<Range<usize>>> = Vec::with_capacity(tables.tracks.len());
    for (t, track) in tables.tracks.iter().enumerate() {
        if t == main_index {
            ranges.push(
                (0..pieces).map(|p| starts[p]..starts.get(p + 1).copied().unwrap_or(track.samples.len())).collect(),
            );
            continue;
        }
        let timescale = init
            .track(track.track_id)
            .map(|t| t.timescale)
            .ok_or_else(|| Error::Malformed(format!("track {} not in the init", track.track_id)))?;
        // The decode time of each piece's first main sample, compared across timescales without rounding.
        let piece_start = |p: usize| u128::from(main_times[starts[p]]) * u128::from(timescale);
        let mut piece = 0;
        let mut from = 0;
        let mut track_ranges = Vec::with_capacity(pieces);
        for (i, &dt) in decode_times[t].iter().enumerate() {
            let at = u128::from(dt) * u128::from(main_timescale);
            while piece + 1 < pieces && at >= piece_start(piece + 1) {
                track_ranges.push(from..i);
                from = i;
                piece += 1;
            }
        }
        track_ranges.push(from..track.samples.len());
        track_ranges.resize(pieces, track.samples.len()..track.samples.len());
        ranges.push(track_ranges);
    }

    let views: Vec<Vec<Cut<'_>>> = tables.tracks.iter().map(|t| cuts(&fragment.bytes, t)).collect::<Result<_, _>>()?;
    (0..pieces)
        .map(|p| {
            let runs: Vec<Run<'_, Cut<'_>>> = tables
                .tracks
                .iter()
                .enumerate()
                .filter(|(t, _)| !ranges[*t][p].is_empty())
                .map(|(t, track)| {
                    let range = ranges[t][p].clone();
                    Run {
                        track_id: track.track_id,
                        base_decode_time: decode_times[t][range.start],
                        samples: &views[t][range],
                    }
                })
                .collect();
            let prefix = if p == 0 { fragment.bytes.get(..tables.moof_offset).unwrap_or_default() } else { &[] };
            let bytes = write_moof_mdat(prefix, tables.sequence, &runs)?;
            Fragment::parse(bytes, init)
        })
        .collect()
}

/// Cuts one stretch of main-track samples (durations `d`, starting at sample `offset`) into pieces of at most `max`
/// ticks (a longer sample alone), with boundaries closest to even shares of the stretch; pushes each piece's first
/// sample index.
///
/// It takes the fewest pieces whose lengths are all within [`EVEN`] of each other, so that every part is at least
/// 0.85 × PART-TARGET (checklist item 70, which only the part before a keyframe may break): 50 frames of 25 fps
/// under 250 ms are 10 parts of 5 frames rather than 9 of 5 or 6 (200 ms against 240 ms). If no count up to twice
/// the fewest gets there, the fewest pieces that fit are taken.
fn split_group(d: &[u32], max: u64, offset: usize, starts: &mut Vec<usize>) {
    let n = d.len();
    let mut c = Vec::with_capacity(n + 1);
    c.push(0u64);
    for &x in d {
        c.push(c[c.len() - 1] + u64::from(x));
    }
    let total = c[n];
    if n <= 1 || total <= max {
        starts.push(offset);
        return;
    }
    // Greedy packing gives the fewest pieces (and the fallback when even shares do not fit).
    let mut greedy = vec![0];
    for i in 1..n {
        if c[i + 1] - c[greedy[greedy.len() - 1]] > max {
            greedy.push(i);
        }
    }
    let fewest = greedy.len();
    let fits = |cut: &[usize]| cut.windows(2).all(|w| w[1] - w[0] == 1 || c[w[1]] - c[w[0]] <= max);
    let even = |cut: &[usize]| {
        let lengths = cut.windows(2).map(|w| c[w[1]] - c[w[0]]);
        let (shortest, longest) = lengths.fold((u64::MAX, 0), |(lo, hi), l| (lo.min(l), hi.max(l)));
        u128::from(shortest) * EVEN.1 >= u128::from(longest) * EVEN.0
    };
    let mut fallback = None;
    for k in fewest..=(2 * fewest).min(n) {
        let cut = even_shares(&c, k);
        if !fits(&cut) {
            continue;
        }
        if even(&cut) {
            fallback = Some(cut);
            break;
        }
        fallback.get_or_insert(cut);
    }
    let cut = fallback.unwrap_or_else(|| {
        greedy.push(n);
        greedy
    });
    starts.extend(cut[..cut.len() - 1].iter().map(|&i| offset + i));
}

/// How unequal the pieces of one stretch may be: the shortest at least 85/100 of the longest (checklist item 70).
const EVEN: (u128, u128) = (85, 100);

/// Boundaries (sample indices, from 0 to the stretch's end) of `k` pieces closest to even shares of the stretch
/// whose cumulative durations are `c`.
fn even_shares(c: &[u64], k: usize) -> Vec<usize> {
    let n = c.len() - 1;
    let total = c[n];
    let mut cut = Vec::with_capacity(k + 1);
    cut.push(0);
    for j in 1..k {
        // Boundaries strictly increase and leave a sample for each piece still to come.
        let (lo, hi) = (cut[cut.len() - 1] + 1, n - (k - j));
        // The target is total * j / k; compare c[i] * k with total * j to stay exact.
        let target = u128::from(total) * j as u128;
        let scaled = |i: usize| u128::from(c[i]) * k as u128;
        let after = (lo + c[lo..=hi].partition_point(|&x| u128::from(x) * (k as u128) < target)).min(hi);
        let before = after.saturating_sub(1).max(lo);
        let pick = if target.abs_diff(scaled(before)) <= scaled(after).abs_diff(target) { before } else { after };
        cut.push(pick);
    }
    cut.push(n);
    cut
}

fn decode_times(track: &TrackSamples) -> Result<Vec<u64>, Error> {
    let mut out = Vec::with_capacity(track.samples.len());
    let mut t = track.base_decode_time;
    for s in &track.samples {
        out.push(t);
        t = t
            .checked_add(u64::from(s.duration))
            .ok_or_else(|| Error::Malformed(format!("decode times of track {} overflow", track.track_id)))?;
    }
    Ok(out)
}

/// A parsed sample as the writer sees it: its original flags and composition offset, its bytes in place.
struct Cut<'a> {
    duration: u32,
    flags: u32,
    composition_offset: i32,
    data: &'a [u8],
}

impl SampleView for Cut<'_> {
    fn duration(&self) -> u32 {
        self.duration
    }
    fn flags(&self) -> u32 {
        self.flags
    }
    fn composition_offset(&self) -> i32 {
        self.composition_offset
    }
    fn data(&self) -> &[u8] {
        self.data
    }
}

fn cuts<'a>(bytes: &'a [u8], track: &TrackSamples) -> Result<Vec<Cut<'a>>, Error> {
    track
        .samples
        .iter()
        .map(|s| {
            let data =
                s.offset.checked_add(s.size as usize).and_then(|end| bytes.get(s.offset..end)).ok_or_else(|| {
                    Error::Malformed(format!("a sample of track {} outside the fragment", track.track_id))
                })?;
            let composition_offset = i32::try_from(s.composition_offset).map_err(|_| {
                Error::Malformed(format!(
                    "composition offset {} of track {} over 2^31",
                    s.composition_offset, track.track_id
                ))
            })?;
            Ok(Cut { duration: s.duration, flags: s.flags, composition_offset, data })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::fmp4::writer::{write_fragment, write_init, CodecConfig, Sample, TrackConfig, TrackFragment};

    fn init() -> Init {
        let avcc = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0]);
        let tracks = [
            TrackConfig { track_id: 1, timescale: 15360, codec: CodecConfig::H264 { avcc, width: 320, height: 180 } },
            TrackConfig {
                track_id: 2,
                timescale: 48000,
                codec: CodecConfig::Aac { asc: Bytes::from_static(&[0x11, 0x90]), channels: 2, sample_rate: 48000 },
            },
        ];
        Init::parse(write_init(&tracks).expect("init")).expect("parse")
    }

    fn video(n: usize, duration: u32, sync: impl Fn(usize) -> bool) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                duration,
                composition_offset: 0,
                sync: sync(i),
                data: Bytes::from(vec![i as u8; 10 + i]),
            })
            .collect()
    }

    fn pieces(v: &[Sample], a: &[Sample], prefix: &[u8], max: Duration) -> Vec<Fragment> {
        let mut bytes = prefix.to_vec();
        let mut tracks = vec![TrackFragment { track_id: 1, base_decode_time: 1000, samples: v }];
        if !a.is_empty() {
            tracks.push(TrackFragment { track_id: 2, base_decode_time: 5000, samples: a });
        }
        bytes.extend_from_slice(&write_fragment(3, &tracks).expect("fragment"));
        let f = Fragment::parse(Bytes::from(bytes), &init()).expect("parse");
        refragment(f, &init(), max).expect("refragment")
    }

    #[test]
    fn short_fragments_pass_through_untouched() {
        let v = video(6, 512, |i| i == 0);
        let bytes = write_fragment(1, &[TrackFragment { track_id: 1, base_decode_time: 0, samples: &v }]).expect("w");
        let f = Fragment::parse(bytes.clone(), &init()).expect("parse");
        let out = refragment(f, &init(), Duration::from_millis(200)).expect("refragment");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes.as_ptr(), bytes.as_ptr(), "the same bytes, not a copy");
    }

    #[test]
    fn two_seconds_at_200_ms_are_ten_parts_of_six() {
        let out = pieces(&video(60, 512, |i| i == 0), &[], b"", Duration::from_millis(200));
        assert_eq!(out.len(), 10);
        for (i, f) in out.iter().enumerate() {
            assert_eq!((f.tracks[0].samples, f.tracks[0].duration), (6, 3072), "piece {i}");
            assert_eq!(f.tracks[0].base_decode_time, 1000 + 3072 * i as u64);
            assert_eq!(f.independent(), i == 0);
        }
    }

    #[test]
    fn a_keyframe_inside_starts_an_independent_part() {
        // 60 samples, a keyframe at 20: 0..20 (666 ms) in 4 pieces of 5, 20..60 in 7 pieces of 5 or 6.
        let out = pieces(&video(60, 512, |i| i == 0 || i == 20), &[], b"", Duration::from_millis(200));
        let counts: Vec<u32> = out.iter().map(|f| f.tracks[0].samples).collect();
        assert_eq!(counts.iter().take(4).copied().collect::<Vec<_>>(), [5, 5, 5, 5]);
        assert_eq!(counts.iter().sum::<u32>(), 60);
        assert!(counts.iter().all(|&c| c <= 6));
        let independent: Vec<bool> = out.iter().map(Fragment::independent).collect();
        assert_eq!(independent.iter().filter(|&&b| b).count(), 2);
        assert!(independent[0] && independent[4]);
    }

    #[test]
    fn audio_follows_video_and_the_prefix_stays_in_front() {
        let v = video(60, 512, |i| i == 0);
        // 2 s of AAC, 1024 ticks at 48 kHz, starting at 5000 ticks (104 ms); video starts at 1000/15360 (65 ms).
        let a: Vec<Sample> = (0..94)
            .map(|_| Sample { duration: 1024, composition_offset: 0, sync: true, data: Bytes::from(vec![0xa0; 7]) })
            .collect();
        let styp = [0, 0, 0, 16, b's', b't', b'y', b'p', b'm', b's', b'd', b'h', 0, 0, 0, 0];
        let out = pieces(&v, &a, &styp, Duration::from_millis(200));
        assert_eq!(out.len(), 10);
        assert_eq!(&out[0].bytes[..16], &styp);
        assert!(out[1..].iter().all(|f| &f.bytes[4..8] == b"moof"));
        let audio: u32 = out.iter().flat_map(|f| f.tracks.iter().filter(|r| r.track_id == 2)).map(|r| r.samples).sum();
        assert_eq!(audio, 94);
        for f in &out {
            let (v, a) = (f.tracks[0], f.tracks.get(1).copied());
            let Some(a) = a else { continue };
            // Each audio run starts inside its piece's video range.
            let v_start = u128::from(v.base_decode_time) * 48000;
            let a_start = u128::from(a.base_decode_time) * 15360;
            assert!(a_start >= v_start || v.base_decode_time == 1000);
            assert!(a_start < u128::from(v.base_decode_time + v.duration) * 48000);
        }
    }

    #[test]
    fn a_long_sample_is_a_piece_of_its_own() {
        let mut v = video(4, 512, |i| i == 0);
        v[1].duration = 15360;
        let out = pieces(&v, &[], b"", Duration::from_millis(200));
        let counts: Vec<u32> = out.iter().map(|f| f.tracks[0].samples).collect();
        assert_eq!(counts, [1, 1, 2]);
        let out = pieces(&video(5, 512, |_| false), &[], b"", Duration::ZERO);
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn absolute_base_data_offsets_cannot_be_cut() {
        use crate::fmp4::init::tests::boxed;
        let full = |kind: &[u8; 4], flags: u32, body: &[u8]| {
            let mut b = flags.to_be_bytes().to_vec();
            b.extend_from_slice(body);
            boxed(kind, &b)
        };
        let mut tfhd = 1u32.to_be_bytes().to_vec();
        tfhd.extend_from_slice(&0u64.to_be_bytes());
        let mut traf = full(b"tfhd", 0x01, &tfhd);
        traf.extend_from_slice(&full(b"tfdt", 1 << 24, &0u64.to_be_bytes()));
        // Two samples of 1 s each, 4 bytes: duration + size per sample, data offset.
        traf.extend_from_slice(&full(
            b"trun",
            0x301,
            &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x3c, 0, 0, 0, 0, 4, 0, 0, 0x3c, 0, 0, 0, 0, 4],
        ));
        let mut moof = full(b"mfhd", 0, &1u32.to_be_bytes());
        moof.extend_from_slice(&boxed(b"traf", &traf));
        let mut bytes = boxed(b"moof", &moof);
        bytes.extend_from_slice(&boxed(b"mdat", &[0; 8]));
        let f = Fragment::parse(Bytes::from(bytes), &init()).expect("parse");
        assert_eq!(f.duration(), Duration::from_secs(2));
        assert!(matches!(refragment(f, &init(), Duration::from_millis(200)), Err(Error::Malformed(_))));
    }

    #[test]
    fn split_group_is_even_and_bounded() {
        let mut starts = Vec::new();
        split_group(&[512; 120], 3072, 0, &mut starts);
        assert_eq!(starts, (0..120).step_by(6).collect::<Vec<_>>());
        starts.clear();
        // 7 samples of 512, max 1024: 4 pieces would be 2, 2, 2 and 1 (a part of half the others, item 70), so 7.
        split_group(&[512; 7], 1024, 10, &mut starts);
        assert_eq!(starts, (10..17).collect::<Vec<_>>());
        starts.clear();
        // 25 fps at 90 kHz, a 2 s GOP, at most 250 ms: 10 parts of 5 frames, not 9 of 5 or 6 (200 vs 240 ms).
        split_group(&[3600; 50], 22_500, 0, &mut starts);
        assert_eq!(starts, (0..50).step_by(5).collect::<Vec<_>>());
        starts.clear();
        // Uneven durations that no count evens out: the fewest pieces that fit.
        split_group(&[900, 500, 900], 1000, 0, &mut starts);
        assert_eq!(starts, [0, 1, 2]);
        starts.clear();
        // Uneven samples that even shares balance: 1000, 900, 1000 rather than the greedy 1000, 1000, 900.
        split_group(&[900, 100, 900, 100, 900], 1000, 0, &mut starts);
        assert_eq!(starts, [0, 2, 3]);
    }

    #[test]
    fn split_at_cuts_audio_at_the_nearest_sample_and_keeps_every_byte() {
        // An audio-only fragment: ten AAC frames of 1024 ticks at 48 kHz from tick 47104 (frame 46).
        let frames: Vec<Sample> = (0..10)
            .map(|i| Sample { duration: 1024, composition_offset: 0, sync: true, data: Bytes::from(vec![i as u8; 7]) })
            .collect();
        let tracks = [TrackFragment { track_id: 2, base_decode_time: 47104, samples: &frames }];
        let bytes = write_fragment(9, &tracks).expect("fragment");
        let f = || Fragment::parse(bytes.clone(), &init()).expect("parse");
        // 48000 (1 s) lies 896 ticks after frame 46 and 128 before frame 47: the cut is at 47's start, 48128.
        let p = split_at(f(), &init(), &[48000]).expect("split");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].decode_time(), Some((47104, 48000)));
        assert_eq!(p[1].decode_time(), Some((48128, 48000)));
        assert_eq!(p[0].tracks[0].samples + p[1].tracks[0].samples, 10);
        let payload =
            |f: &Fragment| f.sample_tables(&init()).unwrap().tracks[0].samples.iter().map(|s| s.size).sum::<u32>();
        assert_eq!(payload(&p[0]) + payload(&p[1]), 70, "every sample's bytes, once");
        // Times at the edges or outside cut nothing: the same bytes come back.
        for at in [vec![], vec![47104], vec![47200], vec![57300], vec![1 << 40]] {
            let same = split_at(f(), &init(), &at).expect("split");
            assert_eq!(same.len(), 1, "{at:?}");
            assert_eq!(same[0].bytes, bytes, "{at:?}");
        }
        // Two boundaries inside, out of order or repeated, give ordered pieces.
        let p = split_at(f(), &init(), &[50176, 48128, 48128]).expect("split");
        let starts: Vec<_> = p.iter().map(|f| f.decode_time().unwrap().0).collect();
        assert_eq!(starts, vec![47104, 48128, 50176]);
    }
}
