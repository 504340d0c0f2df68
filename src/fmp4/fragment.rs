//! A media fragment: `moof` + `mdat` (and whatever `styp`/`prft`/`emsg`/`sidx` came in front), parsed for timing.

use std::time::Duration;

use bytes::Bytes;

use super::boxes::{children, Child, Reader};
use super::init::{Init, TrackKind};
use crate::error::Error;

/// `sample_is_non_sync_sample` in ISO 14496-12 sample flags.
const NON_SYNC: u32 = 0x0001_0000;

/// One complete fragment, ready to be published as a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Everything from any `styp`/`prft`/`emsg`/`sidx` in front through the end of `mdat`, unchanged.
    pub bytes: Bytes,
    /// One run per `traf`, in `moof` order.
    pub tracks: Vec<TrackRun>,
}

/// The timing of one track within a fragment (all `trun`s of one `traf` together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackRun {
    /// `tfhd` track id.
    pub track_id: u32,
    /// The track's kind, from the init segment.
    pub kind: TrackKind,
    /// `tfdt` base media decode time, in `timescale` ticks.
    pub base_decode_time: u64,
    /// Sum of the sample durations, in ticks.
    pub duration: u64,
    /// Number of samples.
    pub samples: u32,
    /// The track's timescale, from the init segment.
    pub timescale: u32,
    /// Whether the first sample is a sync sample.
    pub starts_with_sync: bool,
}

impl TrackRun {
    /// The run's duration as wall-clock time.
    pub fn wall_duration(&self) -> Duration {
        ticks_to_duration(self.duration, self.timescale)
    }
}

fn ticks_to_duration(ticks: u64, timescale: u32) -> Duration {
    if timescale == 0 {
        return Duration::ZERO;
    }
    let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(timescale);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// One sample as a fragment's `trun` describes it, with the `tfhd`/`trex` defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleEntry {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Size in bytes.
    pub size: u32,
    /// ISO 14496-12 sample flags (bit 16 set: not a sync sample).
    pub flags: u32,
    /// Composition time minus decode time (unsigned in a version 0 `trun`, signed in version 1).
    pub composition_offset: i64,
    /// Where the sample's bytes start within [`Fragment::bytes`].
    pub offset: usize,
}

impl SampleEntry {
    /// Whether this is a sync sample.
    pub fn is_sync(&self) -> bool {
        self.flags & NON_SYNC == 0
    }
}

/// Every sample of one `traf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSamples {
    /// `tfhd` track id.
    pub track_id: u32,
    /// `tfdt` decode time of the first sample.
    pub base_decode_time: u64,
    /// The samples in decode order, over all the `traf`'s `trun`s.
    pub samples: Vec<SampleEntry>,
}

/// A fragment's full sample tables (what [`Fragment`] itself does not keep).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleTables {
    /// `mfhd` sequence number.
    pub sequence: u32,
    /// Where the `moof` starts within [`Fragment::bytes`]: everything before it are boxes such as `styp`.
    pub moof_offset: usize,
    /// One entry per `traf`, in `moof` order.
    pub tracks: Vec<TrackSamples>,
}

impl Fragment {
    /// Parses every sample of every `traf` (durations, sizes, flags, composition offsets and where the bytes
    /// are). A `tfhd` with an absolute base data offset leaves the samples unlocatable: [`Error::Malformed`].
    pub fn sample_tables(&self, init: &Init) -> Result<SampleTables, Error> {
        let mut tables = SampleTables::default();
        parse_fragment(&self.bytes, init, Some(&mut tables))?;
        Ok(tables)
    }

    /// Parses a fragment against the init segment that describes its tracks. Every `trun`'s samples must lie
    /// inside the `mdat` (unless `tfhd` gives an absolute base data offset, which a live stream cannot check).
    pub fn parse(bytes: Bytes, init: &Init) -> Result<Fragment, Error> {
        let tracks = parse_runs(&bytes, init)?;
        Ok(Fragment { bytes, tracks })
    }

    /// The run whose timeline defines the part: video, else audio, else the first (see FFMPEG.md: summing the
    /// longest track would overcount, since AAC fragments alternate around the video duration).
    pub fn main_run(&self) -> Option<&TrackRun> {
        super::init::main_of(&self.tracks, |r| r.kind)
    }

    /// Duration of the main track's run.
    pub fn duration(&self) -> Duration {
        self.main_run().map_or(Duration::ZERO, TrackRun::wall_duration)
    }

    /// Whether the video track's first sample is a sync sample; `true` without a video track.
    pub fn independent(&self) -> bool {
        self.tracks.iter().find(|r| r.kind == TrackKind::Video).is_none_or(|r| r.starts_with_sync)
    }

    /// `(base decode time, timescale)` of the main track.
    pub fn decode_time(&self) -> Option<(u64, u32)> {
        self.main_run().map(|r| (r.base_decode_time, r.timescale))
    }
}

fn parse_runs(bytes: &[u8], init: &Init) -> Result<Vec<TrackRun>, Error> {
    parse_fragment(bytes, init, None)
}

fn parse_fragment(bytes: &[u8], init: &Init, mut tables: Option<&mut SampleTables>) -> Result<Vec<TrackRun>, Error> {
    let mut moof: Option<Child<'_>> = None;
    let mut mdat: Option<(u64, u64)> = None;
    for child in children(bytes) {
        let child = child?;
        match &child.kind {
            b"moof" if moof.is_some() => return Err(Error::Malformed("fragment with two moof boxes".into())),
            b"moof" => moof = Some(child),
            b"mdat" if moof.is_none() => return Err(Error::Malformed("mdat before moof".into())),
            b"mdat" if mdat.is_some() => return Err(Error::Malformed("fragment with two mdat boxes".into())),
            b"mdat" => {
                let start = (child.offset + child.header_len) as u64;
                mdat = Some((start, start + child.body.len() as u64));
            }
            b"ftyp" | b"moov" => return Err(Error::Malformed("init segment boxes inside a fragment".into())),
            _ => {}
        }
    }
    let moof = moof.ok_or_else(|| Error::Malformed("fragment without moof".into()))?;
    let mdat = mdat.ok_or_else(|| Error::Malformed("fragment without mdat".into()))?;

    let mut runs = Vec::with_capacity(2);
    // Where the previous traf's data ended: `None` before the first traf, `Some(None)` when it cannot be known.
    let mut previous_traf_end = None;
    for traf in children(moof.body) {
        let traf = traf?;
        match &traf.kind {
            b"traf" => {}
            b"mfhd" => {
                if let Some(t) = tables.as_deref_mut() {
                    let mut r = Reader::new(traf.body, "mfhd");
                    r.version_flags()?;
                    t.sequence = r.u32()?;
                }
                continue;
            }
            _ => continue,
        }
        let ctx = TrafContext { moof_start: moof.offset as u64, mdat, previous_traf_end };
        let samples = match tables.as_deref_mut() {
            Some(t) => {
                t.tracks.push(TrackSamples { track_id: 0, base_decode_time: 0, samples: Vec::new() });
                t.tracks.last_mut().map(|t| &mut t.samples)
            }
            None => None,
        };
        let (run, data_end) = parse_traf(traf.body, init, ctx, samples)?;
        if let Some(t) = tables.as_deref_mut().and_then(|t| t.tracks.last_mut()) {
            (t.track_id, t.base_decode_time) = (run.track_id, run.base_decode_time);
        }
        previous_traf_end = Some(data_end);
        runs.push(run);
    }
    if let Some(t) = tables {
        t.moof_offset = moof.offset;
    }
    if runs.is_empty() {
        return Err(Error::Malformed("moof without traf".into()));
    }
    Ok(runs)
}

#[derive(Clone, Copy)]
struct TrafContext {
    moof_start: u64,
    /// Payload range of the mdat, as offsets into the fragment.
    mdat: (u64, u64),
    previous_traf_end: Option<Option<u64>>,
}

struct Tfhd {
    track_id: u32,
    base_data_offset: Option<u64>,
    default_base_is_moof: bool,
    duration: Option<u32>,
    size: Option<u32>,
    flags: Option<u32>,
}

fn parse_tfhd(body: &[u8]) -> Result<Tfhd, Error> {
    let mut r = Reader::new(body, "tfhd");
    let (_, flags) = r.version_flags()?;
    let track_id = r.u32()?;
    let base_data_offset = if flags & 0x01 != 0 { Some(r.u64()?) } else { None };
    if flags & 0x02 != 0 {
        r.skip(4)?;
    }
    let duration = if flags & 0x08 != 0 { Some(r.u32()?) } else { None };
    let size = if flags & 0x10 != 0 { Some(r.u32()?) } else { None };
    let sample_flags = if flags & 0x20 != 0 { Some(r.u32()?) } else { None };
    Ok(Tfhd {
        track_id,
        base_data_offset,
        default_base_is_moof: flags & 0x02_0000 != 0,
        duration,
        size,
        flags: sample_flags,
    })
}

fn parse_tfdt(body: &[u8]) -> Result<u64, Error> {
    let mut r = Reader::new(body, "tfdt");
    let (version, _) = r.version_flags()?;
    if version == 1 {
        r.u64()
    } else {
        r.u32().map(u64::from)
    }
}

/// Parses one `traf`; returns its run and where its sample data ends (`None` when it cannot be known).
fn parse_traf(
    traf: &[u8],
    init: &Init,
    ctx: TrafContext,
    mut samples: Option<&mut Vec<SampleEntry>>,
) -> Result<(TrackRun, Option<u64>), Error> {
    let mut tfhd = None;
    let mut tfdt = None;
    for child in children(traf) {
        let child = child?;
        match &child.kind {
            b"tfhd" => tfhd = Some(parse_tfhd(child.body)?),
            b"tfdt" => tfdt = Some(parse_tfdt(child.body)?),
            _ => {}
        }
    }
    let tfhd = tfhd.ok_or_else(|| Error::Malformed("traf without tfhd".into()))?;
    let track = init
        .track(tfhd.track_id)
        .ok_or_else(|| Error::Malformed(format!("traf for track {} that the init does not declare", tfhd.track_id)))?;
    // HLS requires tfdt; without it a part's place on the timeline is unknown.
    let base_decode_time =
        tfdt.ok_or_else(|| Error::Malformed(format!("traf of track {} without tfdt", tfhd.track_id)))?;

    // Where sample data offsets count from (ISO 14496-12 8.8.7.1). An explicit base_data_offset is relative to
    // the start of a file this live fragment is not part of, so its data cannot be checked against the mdat.
    let base = match tfhd.base_data_offset {
        Some(_) => None,
        None if tfhd.default_base_is_moof => Some(ctx.moof_start),
        None => ctx.previous_traf_end.unwrap_or(Some(ctx.moof_start)),
    };
    let defaults = SampleDefaults {
        duration: tfhd.duration.unwrap_or(track.default_sample_duration),
        size: tfhd.size.unwrap_or(track.default_sample_size),
        flags: tfhd.flags.unwrap_or(track.default_sample_flags),
    };

    let mut run = TrackRun {
        track_id: tfhd.track_id,
        kind: track.kind,
        base_decode_time,
        duration: 0,
        samples: 0,
        timescale: track.timescale,
        starts_with_sync: false,
    };
    let mut data_end = base;
    for child in children(traf) {
        let child = child?;
        if &child.kind != b"trun" {
            continue;
        }
        let first = samples.as_ref().map_or(0, |s| s.len());
        let mdat_len = ctx.mdat.1 - ctx.mdat.0;
        let trun = parse_trun(child.body, defaults, samples.as_deref_mut().map(|s| (s, mdat_len)))?;
        if run.samples == 0 && trun.samples > 0 {
            run.starts_with_sync = trun.first_flags & NON_SYNC == 0;
        }
        run.samples =
            run.samples.checked_add(trun.samples).ok_or_else(|| Error::Malformed("sample count overflows".into()))?;
        run.duration += trun.duration;
        // Without a data offset a trun's data follows the previous trun's (or starts at the base).
        let start = match (trun.data_offset, base) {
            // A negative result points before the fragment; u64::MAX fails the mdat check below.
            (Some(offset), Some(base)) => Some(base.checked_add_signed(i64::from(offset)).unwrap_or(u64::MAX)),
            (None, _) => data_end,
            (Some(_), None) => None,
        };
        if let Some(start) = start {
            let end = start.saturating_add(trun.data_size);
            if start < ctx.mdat.0 || end > ctx.mdat.1 {
                return Err(Error::Malformed(format!(
                    "trun of track {} points at bytes {start}..{end}, outside the mdat payload {}..{}",
                    run.track_id, ctx.mdat.0, ctx.mdat.1
                )));
            }
            data_end = Some(end);
            if let Some(samples) = samples.as_deref_mut() {
                // Inside the mdat, which is inside the fragment's bytes: the offsets fit a usize.
                let start = start as usize;
                samples[first..].iter_mut().for_each(|s| s.offset += start);
            }
        } else {
            if trun.data_offset.is_some() {
                data_end = None;
            }
            if samples.is_some() {
                return Err(Error::Malformed(format!(
                    "trun of track {} with an absolute base data offset: its samples cannot be located",
                    run.track_id
                )));
            }
        }
    }
    Ok((run, data_end))
}

#[derive(Clone, Copy)]
struct SampleDefaults {
    duration: u32,
    size: u32,
    flags: u32,
}

struct Trun {
    samples: u32,
    data_offset: Option<i32>,
    first_flags: u32,
    duration: u64,
    data_size: u64,
}

/// Parses a `trun`. With `collect`, every sample is also appended to the vector, its `offset` relative to the
/// run's first byte; the second value bounds the count of a run without per-sample fields (the mdat's length).
fn parse_trun(
    body: &[u8],
    defaults: SampleDefaults,
    mut collect: Option<(&mut Vec<SampleEntry>, u64)>,
) -> Result<Trun, Error> {
    let mut r = Reader::new(body, "trun");
    let (version, flags) = r.version_flags()?;
    let samples = r.u32()?;
    let data_offset = if flags & 0x001 != 0 { Some(r.u32()? as i32) } else { None };
    let first_flags = if flags & 0x004 != 0 { Some(r.u32()?) } else { None };
    let (has_duration, has_size, has_flags, has_cto) =
        (flags & 0x100 != 0, flags & 0x200 != 0, flags & 0x400 != 0, flags & 0x800 != 0);
    let per_sample = 4 * [has_duration, has_size, has_flags, has_cto].iter().filter(|&&b| b).count();
    // Check the declared count against the bytes present before looping over it.
    if per_sample > 0 && (samples as usize).checked_mul(per_sample).is_none_or(|need| need > r.remaining()) {
        return Err(Error::Malformed(format!(
            "trun declares {samples} samples of {per_sample} bytes but holds {} bytes",
            r.remaining()
        )));
    }
    let mut out =
        Trun { samples, data_offset, first_flags: first_flags.unwrap_or(defaults.flags), duration: 0, data_size: 0 };
    if per_sample == 0 {
        out.duration = u64::from(samples) * u64::from(defaults.duration);
        out.data_size = u64::from(samples) * u64::from(defaults.size);
        if let Some((entries, limit)) = collect {
            // Nothing in the box bounds the count; the mdat does (zero-size samples count as one byte).
            if u64::from(samples) * u64::from(defaults.size.max(1)) > limit {
                return Err(Error::Malformed(format!("trun declares {samples} samples, more than its mdat holds")));
            }
            entries.reserve(samples as usize);
            for i in 0..u64::from(samples) {
                let flags = if i == 0 { out.first_flags } else { defaults.flags };
                let offset = (i * u64::from(defaults.size)) as usize;
                entries.push(SampleEntry {
                    duration: defaults.duration,
                    size: defaults.size,
                    flags,
                    composition_offset: 0,
                    offset,
                });
            }
        }
        return Ok(out);
    }
    if let Some((entries, _)) = collect.as_mut() {
        entries.reserve(samples as usize);
    }
    for i in 0..samples {
        let duration = if has_duration { r.u32()? } else { defaults.duration };
        let size = if has_size { r.u32()? } else { defaults.size };
        let sample_flags = if has_flags { Some(r.u32()?) } else { None };
        let cto = if has_cto { r.u32()? } else { 0 };
        if i == 0 && first_flags.is_none() {
            out.first_flags = sample_flags.unwrap_or(defaults.flags);
        }
        if let Some((entries, _)) = collect.as_mut() {
            let flags = match (i, first_flags) {
                (0, Some(f)) => f,
                _ => sample_flags.unwrap_or(defaults.flags),
            };
            // Version 0 offsets are unsigned, version 1 signed.
            let composition_offset = if version == 0 { i64::from(cto) } else { i64::from(cto as i32) };
            // The run's data ends inside the mdat (checked by the caller), so these fit a usize there.
            let offset = out.data_size as usize;
            entries.push(SampleEntry { duration, size, flags, composition_offset, offset });
        }
        out.duration += u64::from(duration);
        out.data_size += u64::from(size);
    }
    Ok(out)
}

/// Returns a copy of `fragment` with every `traf`'s `tfdt` base decode time increased by `shift(track_id)`, all
/// other bytes unchanged. Used to loop a file as a live stream with a continuous timeline. A version 0 `tfdt`
/// stays version 0 (the sizes must not change); a shifted value that no longer fits 32 bits is an error.
pub fn shift_decode_times(fragment: &[u8], shift: impl Fn(u32) -> u64) -> Result<Bytes, Error> {
    let mut out = fragment.to_vec();
    for top in children(fragment) {
        let top = top?;
        if &top.kind != b"moof" {
            continue;
        }
        let moof_body = top.offset + top.header_len;
        for traf in children(top.body) {
            let traf = traf?;
            if &traf.kind != b"traf" {
                continue;
            }
            let traf_body = moof_body + traf.offset + traf.header_len;
            let mut track_id = None;
            let mut tfdt_at = None;
            for child in children(traf.body) {
                let child = child?;
                match &child.kind {
                    b"tfhd" => track_id = Some(parse_tfhd(child.body)?.track_id),
                    b"tfdt" => tfdt_at = Some((traf_body + child.offset + child.header_len, child.body)),
                    _ => {}
                }
            }
            let (Some(track_id), Some((at, body))) = (track_id, tfdt_at) else { continue };
            let old = parse_tfdt(body)?;
            let delta = shift(track_id);
            let new = old
                .checked_add(delta)
                .ok_or_else(|| Error::Malformed(format!("tfdt of track {track_id} overflows when shifted")))?;
            if body.first() == Some(&1) {
                out[at + 4..at + 12].copy_from_slice(&new.to_be_bytes());
            } else {
                let new = u32::try_from(new)
                    .map_err(|_| Error::Malformed(format!("version 0 tfdt of track {track_id} cannot hold {new}")))?;
                out[at + 4..at + 8].copy_from_slice(&new.to_be_bytes());
            }
        }
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fmp4::init::tests::{boxed, h264_aac_init};

    fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
        let mut b = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
        b.extend_from_slice(body);
        boxed(kind, &b)
    }

    pub(crate) fn init() -> Init {
        Init::parse(Bytes::from(h264_aac_init())).expect("init")
    }

    /// Options for a synthetic one-track fragment.
    pub(crate) struct Spec {
        pub track: u32,
        pub tfdt_version: u8,
        pub tfdt: u64,
        pub samples: u32,
        pub first_flags: Option<u32>,
        pub sample_size: u32,
        /// Added to the correct data offset.
        pub offset_error: i32,
        /// Overrides the trun sample count (after the per-sample entries are written).
        pub declared_samples: Option<u32>,
        pub mdat_extra: usize,
    }

    impl Default for Spec {
        fn default() -> Self {
            Spec {
                track: 1,
                tfdt_version: 1,
                tfdt: 15360,
                samples: 6,
                first_flags: Some(0x0200_0000),
                sample_size: 10,
                offset_error: 0,
                declared_samples: None,
                mdat_extra: 0,
            }
        }
    }

    /// `moof` (mfhd, traf(tfhd default-base-is-moof, tfdt, trun with duration + size)) + `mdat`.
    pub(crate) fn fragment(spec: &Spec) -> Vec<u8> {
        let tfhd = full(b"tfhd", 0, 0x02_0000, &spec.track.to_be_bytes());
        let tfdt = if spec.tfdt_version == 1 {
            full(b"tfdt", 1, 0, &spec.tfdt.to_be_bytes())
        } else {
            full(b"tfdt", 0, 0, &(spec.tfdt as u32).to_be_bytes())
        };
        let mut trun_body = spec.declared_samples.unwrap_or(spec.samples).to_be_bytes().to_vec();
        trun_body.extend_from_slice(&0i32.to_be_bytes());
        let mut flags = 0x001 | 0x100 | 0x200;
        if let Some(f) = spec.first_flags {
            flags |= 0x004;
            trun_body.extend_from_slice(&f.to_be_bytes());
        }
        for _ in 0..spec.samples {
            trun_body.extend_from_slice(&512u32.to_be_bytes());
            trun_body.extend_from_slice(&spec.sample_size.to_be_bytes());
        }
        let trun = full(b"trun", 0, flags, &trun_body);
        let mut traf = tfhd;
        traf.extend_from_slice(&tfdt);
        // moof header, mfhd, traf header, tfhd + tfdt, then the trun's header, version/flags and sample_count.
        let at = 8 + 16 + 8 + traf.len() + 8 + 4 + 4;
        traf.extend_from_slice(&trun);
        let mut moof = full(b"mfhd", 0, 0, &1u32.to_be_bytes());
        moof.extend_from_slice(&boxed(b"traf", &traf));
        let mut out = boxed(b"moof", &moof);
        let data_offset = ((out.len() + 8) as i32).wrapping_add(spec.offset_error);
        out[at..at + 4].copy_from_slice(&data_offset.to_be_bytes());
        let mdat_len = (spec.samples as usize * spec.sample_size as usize).min(1 << 16) + spec.mdat_extra;
        out.extend_from_slice(&boxed(b"mdat", &vec![0xab; mdat_len]));
        out
    }

    #[test]
    fn parses_a_fragment() {
        let f = Fragment::parse(Bytes::from(fragment(&Spec::default())), &init()).expect("fragment");
        assert_eq!(f.tracks.len(), 1);
        let r = f.tracks[0];
        assert_eq!((r.track_id, r.base_decode_time, r.duration, r.samples, r.timescale), (1, 15360, 3072, 6, 15360));
        assert!(r.starts_with_sync);
        assert!(f.independent());
        assert_eq!(f.duration(), Duration::from_millis(200));
        assert_eq!(f.decode_time(), Some((15360, 15360)));
    }

    #[test]
    fn sync_falls_back_to_trex_defaults() {
        // trex of track 1 says 0x01010000: depends on others, non-sync.
        let f = Fragment::parse(Bytes::from(fragment(&Spec { first_flags: None, ..Spec::default() })), &init())
            .expect("fragment");
        assert!(!f.independent());
        let f = Fragment::parse(
            Bytes::from(fragment(&Spec { first_flags: Some(0x0101_0000), ..Spec::default() })),
            &init(),
        )
        .expect("fragment");
        assert!(!f.independent());
    }

    #[test]
    fn audio_only_fragment_is_independent() {
        let f =
            Fragment::parse(Bytes::from(fragment(&Spec { track: 2, first_flags: None, ..Spec::default() })), &init())
                .expect("fragment");
        assert!(f.independent());
        assert_eq!(f.decode_time(), Some((15360, 48000)));
        assert_eq!(f.duration(), Duration::from_millis(64));
    }

    #[test]
    fn data_outside_mdat_is_malformed() {
        for offset_error in [-1, 1, 1000, i32::MIN, i32::MAX] {
            let b = fragment(&Spec { offset_error, ..Spec::default() });
            assert!(
                matches!(Fragment::parse(Bytes::from(b), &init()), Err(Error::Malformed(m)) if m.contains("outside")),
                "offset error {offset_error}"
            );
        }
        let b = fragment(&Spec { sample_size: u32::MAX, ..Spec::default() });
        assert!(matches!(Fragment::parse(Bytes::from(b), &init()), Err(Error::Malformed(_))));
        // Spare bytes after the samples are fine.
        let b = fragment(&Spec { mdat_extra: 3, ..Spec::default() });
        assert!(Fragment::parse(Bytes::from(b), &init()).is_ok());
    }

    /// Two trafs without default-base-is-moof: the second's data follows the first's (ISO 14496-12 8.8.7.1).
    fn chained_trafs(mdat_len: usize) -> Vec<u8> {
        let traf = |track: u32, trun: Vec<u8>| {
            let mut t = full(b"tfhd", 0, 0, &track.to_be_bytes());
            t.extend_from_slice(&full(b"tfdt", 1, 0, &0u64.to_be_bytes()));
            t.extend_from_slice(&trun);
            boxed(b"traf", &t)
        };
        // sample_count 2, data_offset (patched below), sizes 10 and 10
        let trun1 = full(b"trun", 0, 0x201, &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 10]);
        // sample_count 1, no data offset, size 5
        let trun2 = full(b"trun", 0, 0x200, &[0, 0, 0, 1, 0, 0, 0, 5]);
        let mut moof = full(b"mfhd", 0, 0, &1u32.to_be_bytes());
        let offset_at = 8 + moof.len() + 8 + 16 + 20 + 16;
        moof.extend_from_slice(&traf(1, trun1));
        moof.extend_from_slice(&traf(2, trun2));
        let mut out = boxed(b"moof", &moof);
        let data_offset = (out.len() + 8) as u32;
        out[offset_at..offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
        out.extend_from_slice(&boxed(b"mdat", &vec![0; mdat_len]));
        out
    }

    #[test]
    fn trafs_without_a_base_chain_their_data() {
        let f = Fragment::parse(Bytes::from(chained_trafs(25)), &init()).expect("fragment");
        assert_eq!(f.tracks.iter().map(|r| (r.track_id, r.samples)).collect::<Vec<_>>(), [(1, 2), (2, 1)]);
        // trex durations: 512 (video), 1024 (audio).
        assert_eq!(f.tracks.iter().map(|r| r.duration).collect::<Vec<_>>(), [1024, 1024]);
        assert!(matches!(Fragment::parse(Bytes::from(chained_trafs(24)), &init()), Err(Error::Malformed(_))));
    }

    #[test]
    fn sample_tables_locate_every_sample() {
        let f = Fragment::parse(Bytes::from(fragment(&Spec::default())), &init()).expect("fragment");
        let t = f.sample_tables(&init()).expect("tables");
        assert_eq!((t.sequence, t.moof_offset, t.tracks.len()), (1, 0, 1));
        let mdat_payload = f.bytes.len() - 60;
        let s = &t.tracks[0].samples;
        assert_eq!((t.tracks[0].track_id, t.tracks[0].base_decode_time, s.len()), (1, 15360, 6));
        // First-sample flags from the trun, the rest from trex; sizes 10 laid end to end in the mdat.
        assert!(s[0].is_sync() && !s[1].is_sync());
        assert_eq!(
            s.iter().map(|s| s.offset).collect::<Vec<_>>(),
            (0..6).map(|i| mdat_payload + 10 * i).collect::<Vec<_>>()
        );
        assert!(s.iter().all(|s| (s.duration, s.size, s.composition_offset) == (512, 10, 0)));

        // Chained trafs: the second's data follows the first's; trex durations fill in.
        let bytes = chained_trafs(25);
        let f = Fragment::parse(Bytes::from(bytes), &init()).expect("fragment");
        let t = f.sample_tables(&init()).expect("tables");
        let start = f.bytes.len() - 25;
        let offsets: Vec<Vec<usize>> = t.tracks.iter().map(|t| t.samples.iter().map(|s| s.offset).collect()).collect();
        assert_eq!(offsets, [vec![start, start + 10], vec![start + 20]]);
        assert_eq!(t.tracks[1].samples[0].duration, 1024);
    }

    #[test]
    fn absurd_sample_count_is_malformed() {
        for declared in [7, 1 << 20, u32::MAX] {
            let b = fragment(&Spec { declared_samples: Some(declared), ..Spec::default() });
            assert!(
                matches!(Fragment::parse(Bytes::from(b), &init()), Err(Error::Malformed(m)) if m.contains("declares")),
                "{declared}"
            );
        }
    }

    #[test]
    fn unknown_track_and_missing_parts_are_malformed() {
        let b = fragment(&Spec { track: 9, ..Spec::default() });
        assert!(matches!(Fragment::parse(Bytes::from(b), &init()), Err(Error::Malformed(m)) if m.contains("track 9")));
        let b = fragment(&Spec::default());
        let moof_len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        assert!(matches!(Fragment::parse(Bytes::copy_from_slice(&b[..moof_len]), &init()), Err(Error::Malformed(_))));
        assert!(matches!(Fragment::parse(Bytes::copy_from_slice(&b[moof_len..]), &init()), Err(Error::Malformed(_))));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let good = fragment(&Spec::default());
        for n in 0..good.len() {
            assert!(Fragment::parse(Bytes::copy_from_slice(&good[..n]), &init()).is_err(), "{n}");
        }
    }

    #[test]
    fn shifts_tfdt_v0_and_v1() {
        for version in [0, 1] {
            let original = fragment(&Spec { tfdt_version: version, ..Spec::default() });
            let shifted = shift_decode_times(&original, |id| u64::from(id) * 1000).expect("shift");
            assert_eq!(shifted.len(), original.len());
            let f = Fragment::parse(shifted.clone(), &init()).expect("fragment");
            assert_eq!(f.tracks[0].base_decode_time, 15360 + 1000);
            let differing = original.iter().zip(shifted.iter()).filter(|(a, b)| a != b).count();
            assert!(differing <= 2, "only the low bytes of the tfdt change, {differing} did");
        }
    }

    #[test]
    fn shift_overflowing_v0_is_malformed() {
        let original = fragment(&Spec { tfdt_version: 0, ..Spec::default() });
        let r = shift_decode_times(&original, |_| u64::from(u32::MAX));
        assert!(matches!(r, Err(Error::Malformed(m)) if m.contains("version 0")));
        let original = fragment(&Spec { tfdt: u64::MAX - 1, ..Spec::default() });
        assert!(matches!(shift_decode_times(&original, |_| 2), Err(Error::Malformed(_))));
    }
}
