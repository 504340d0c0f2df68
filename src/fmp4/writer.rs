//! The CMAF writer: init segments from codec configuration, fragments from samples.
//!
//! This is the other direction of [`Init::parse`](super::Init::parse) and [`Fragment::parse`](super::Fragment::parse):
//! sources that deliver samples instead of fMP4 (RTMP) are muxed here, and the re-fragmenter rebuilds long
//! fragments with the same code. What is written is the least a CMAF player needs: `ftyp` + `moov` with empty
//! sample tables and an `mvex`, then per fragment one `moof` (one `traf` per track, `default-base-is-moof`, a `tfdt`
//! and a `trun` with every per-sample field) and one `mdat`.
//!
//! Output is built in one [`BytesMut`] sized up front; box sizes are patched in once a box is closed. Sample
//! payloads are copied exactly once, from the caller's `Bytes` into that buffer.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Error;

/// Codec configuration of one track, as an encoder announces it (RTMP sequence headers, or read off an init).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecConfig {
    /// H.264: the AVCDecoderConfigurationRecord (the body of an `avcC` box); picture size in pixels.
    H264 {
        /// The `avcC` body.
        avcc: Bytes,
        /// Picture width in pixels.
        width: u16,
        /// Picture height in pixels.
        height: u16,
    },
    /// HEVC: the HEVCDecoderConfigurationRecord (body of `hvcC`).
    Hevc {
        /// The `hvcC` body.
        hvcc: Bytes,
        /// Picture width in pixels.
        width: u16,
        /// Picture height in pixels.
        height: u16,
    },
    /// AV1: the AV1CodecConfigurationRecord (body of `av1C`).
    Av1 {
        /// The `av1C` body.
        av1c: Bytes,
        /// Picture width in pixels.
        width: u16,
        /// Picture height in pixels.
        height: u16,
    },
    /// AAC: the AudioSpecificConfig (the DecoderSpecificInfo of `esds`).
    Aac {
        /// The AudioSpecificConfig.
        asc: Bytes,
        /// Channel count for the sample entry (the ASC is what decoders use).
        channels: u16,
        /// Sampling rate in Hz for the sample entry.
        sample_rate: u32,
    },
    /// Opus (`Opus` sample entry with `dOps`; mapping family 0, so at most 2 channels).
    Opus {
        /// Output channel count, 1 or 2.
        channels: u16,
        /// The input sample rate `dOps` reports (informational: Opus always decodes at 48 kHz).
        sample_rate: u32,
        /// Samples (at 48 kHz) to drop from the start of the decoded stream.
        pre_skip: u16,
    },
}

impl CodecConfig {
    fn is_video(&self) -> bool {
        matches!(self, CodecConfig::H264 { .. } | CodecConfig::Hevc { .. } | CodecConfig::Av1 { .. })
    }
}

/// One track of an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// The track id, non-zero and unique within the init; fragments name their tracks by it.
    pub track_id: u32,
    /// Ticks per second of the track's timeline (e.g. 90000 for video, the sample rate for audio).
    pub timescale: u32,
    /// What the track carries.
    pub codec: CodecConfig,
}

/// One media sample: its payload is a `Bytes` slice of what came in (never copied before the writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Composition time minus decode time, in the track's timescale (B-frames); 0 for audio.
    pub composition_offset: i32,
    /// A sync sample (keyframe); audio samples are always sync.
    pub sync: bool,
    /// The sample's bytes (for H.264/HEVC: length-prefixed NAL units, as in MP4).
    pub data: Bytes,
}

/// The samples of one track in one fragment.
#[derive(Debug, Clone, Copy)]
pub struct TrackFragment<'a> {
    /// The track id, as declared in the init.
    pub track_id: u32,
    /// Decode time of the first sample (`tfdt`), in the track's timescale.
    pub base_decode_time: u64,
    /// The samples, in decode order.
    pub samples: &'a [Sample],
}

/// Sample flags of a sync sample: `sample_depends_on` = 2 (an I-frame), sync.
pub(crate) const SYNC_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample: `sample_depends_on` = 1, `sample_is_non_sync_sample`.
pub(crate) const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// The brands of `ftyp`: ISO BMFF 6 (the `tfdt`/`default-base-is-moof` era), CMAF, and MP4 for old parsers.
const BRANDS: [&[u8; 4]; 3] = [b"iso6", b"cmfc", b"mp41"];

/// `und`, packed as three 5-bit letters minus 0x60 (ISO 639-2/T in `mdhd`).
const LANGUAGE_UND: u16 = (21 << 10) | (14 << 5) | 4;

/// The unity transformation matrix of `mvhd`/`tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// A box builder over one growing buffer: a box is opened with a placeholder size that is patched once its
/// body is written.
struct Boxes {
    buf: BytesMut,
}

impl Boxes {
    fn with_capacity(capacity: usize) -> Self {
        Boxes { buf: BytesMut::with_capacity(capacity) }
    }

    fn boxed(&mut self, kind: &[u8; 4], body: impl FnOnce(&mut Self) -> Result<(), Error>) -> Result<(), Error> {
        let start = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_slice(kind);
        body(self)?;
        let size = u32::try_from(self.buf.len() - start)
            .map_err(|_| Error::Malformed(format!("'{}' box over 4 GiB", super::boxes::name(*kind))))?;
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
        Ok(())
    }

    fn full(
        &mut self,
        kind: &[u8; 4],
        version: u8,
        flags: u32,
        body: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.boxed(kind, |b| {
            b.buf.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
            body(b)
        })
    }

    fn u16(&mut self, v: u16) {
        self.buf.put_u16(v);
    }

    fn u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }

    fn u64(&mut self, v: u64) {
        self.buf.put_u64(v);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
    }

    fn zeros(&mut self, n: usize) {
        self.buf.put_bytes(0, n);
    }
}

/// ftyp (major iso6, compatible iso6 cmfc mp41) + moov with mvex (trex per track), zero samples.
///
/// No tracks, a track id of 0 or used twice, or a timescale of 0 are [`Error::InvalidOptions`]; a codec
/// configuration that cannot be what it claims (a truncated record, a wrong version byte, Opus with more than
/// 2 channels) is [`Error::Malformed`].
pub fn write_init(tracks: &[TrackConfig]) -> Result<Bytes, Error> {
    if tracks.is_empty() {
        return Err(Error::InvalidOptions("an init segment needs at least one track".into()));
    }
    for (i, t) in tracks.iter().enumerate() {
        if t.track_id == 0 {
            return Err(Error::InvalidOptions("track id 0 is reserved".into()));
        }
        if t.timescale == 0 {
            return Err(Error::InvalidOptions(format!("track {} has timescale 0", t.track_id)));
        }
        if tracks[..i].iter().any(|o| o.track_id == t.track_id) {
            return Err(Error::InvalidOptions(format!("track id {} used twice", t.track_id)));
        }
        check_codec(t)?;
    }
    let next_track_id = tracks.iter().map(|t| t.track_id).max().unwrap_or(0).saturating_add(1);
    // The fixed boxes take about 600 bytes per track; the configuration records are the rest.
    let config_bytes: usize = tracks.iter().map(|t| config_len(&t.codec)).sum();
    let mut w = Boxes::with_capacity(128 + 640 * tracks.len() + config_bytes);
    w.boxed(b"ftyp", |w| {
        w.bytes(BRANDS[0]);
        w.u32(0);
        for brand in BRANDS {
            w.bytes(brand);
        }
        Ok(())
    })?;
    w.boxed(b"moov", |w| {
        w.full(b"mvhd", 0, 0, |w| {
            w.zeros(8); // creation, modification time
            w.u32(1000); // timescale of the (empty) movie timeline
            w.u32(0); // duration: unknown, live
            w.u32(0x0001_0000); // rate 1.0
            w.u16(0x0100); // volume 1.0
            w.zeros(10); // reserved
            MATRIX.iter().for_each(|&m| w.u32(m));
            w.zeros(24); // pre_defined
            w.u32(next_track_id);
            Ok(())
        })?;
        for t in tracks {
            trak(w, t)?;
        }
        w.boxed(b"mvex", |w| {
            for t in tracks {
                w.full(b"trex", 0, 0, |w| {
                    w.u32(t.track_id);
                    w.u32(1); // sample description index
                    w.zeros(12); // default duration, size, flags: every trun carries its own
                    Ok(())
                })?;
            }
            Ok(())
        })
    })?;
    Ok(w.buf.freeze())
}

fn config_len(codec: &CodecConfig) -> usize {
    match codec {
        CodecConfig::H264 { avcc: c, .. } | CodecConfig::Hevc { hvcc: c, .. } | CodecConfig::Av1 { av1c: c, .. } => {
            c.len()
        }
        CodecConfig::Aac { asc, .. } => asc.len(),
        CodecConfig::Opus { .. } => 0,
    }
}

/// Checks what [`Init::parse`](super::Init::parse) and players read of a configuration record: its version byte
/// and fixed-size head.
fn check_codec(t: &TrackConfig) -> Result<(), Error> {
    let bad = |what: &str| Err(Error::Malformed(format!("track {}: {what}", t.track_id)));
    match &t.codec {
        // configurationVersion, profile, compatibility, level, lengthSizeMinusOne, numOfSequenceParameterSets,
        // numOfPictureParameterSets at the least.
        CodecConfig::H264 { avcc, .. } if avcc.len() < 7 || avcc[0] != 1 => bad("avcC is not a version 1 record"),
        // 22 bytes of fixed fields, then numOfArrays.
        CodecConfig::Hevc { hvcc, .. } if hvcc.len() < 23 || hvcc[0] != 1 => bad("hvcC is not a version 1 record"),
        // marker 1 + version 1, then three bytes of profile, level, tier and colour fields.
        CodecConfig::Av1 { av1c, .. } if av1c.len() < 4 || av1c[0] != 0x81 => bad("av1C is not a version 1 record"),
        // audioObjectType and samplingFrequencyIndex take at least 9 bits; a descriptor length has 28 bits.
        CodecConfig::Aac { asc, .. } if asc.len() < 2 => bad("AudioSpecificConfig shorter than 2 bytes"),
        CodecConfig::Aac { asc, .. } if asc.len() > 1 << 20 => bad("AudioSpecificConfig over 1 MiB"),
        CodecConfig::Opus { channels, .. } if !(1..=2).contains(channels) => {
            bad("Opus with mapping family 0 has 1 or 2 channels")
        }
        _ => Ok(()),
    }
}

fn trak(w: &mut Boxes, t: &TrackConfig) -> Result<(), Error> {
    let video = t.codec.is_video();
    let (width, height) = match &t.codec {
        CodecConfig::H264 { width, height, .. }
        | CodecConfig::Hevc { width, height, .. }
        | CodecConfig::Av1 { width, height, .. } => (*width, *height),
        _ => (0, 0),
    };
    w.boxed(b"trak", |w| {
        // Flags: enabled, in movie.
        w.full(b"tkhd", 0, 3, |w| {
            w.zeros(8); // creation, modification time
            w.u32(t.track_id);
            w.zeros(4); // reserved
            w.u32(0); // duration
            w.zeros(8); // reserved
            w.u16(0); // layer
            w.u16(0); // alternate group
            w.u16(if video { 0 } else { 0x0100 }); // volume
            w.zeros(2); // reserved
            MATRIX.iter().for_each(|&m| w.u32(m));
            w.u32(u32::from(width) << 16);
            w.u32(u32::from(height) << 16);
            Ok(())
        })?;
        w.boxed(b"mdia", |w| {
            w.full(b"mdhd", 0, 0, |w| {
                w.zeros(8); // creation, modification time
                w.u32(t.timescale);
                w.u32(0); // duration
                w.u16(LANGUAGE_UND);
                w.u16(0); // pre_defined
                Ok(())
            })?;
            w.full(b"hdlr", 0, 0, |w| {
                w.u32(0); // pre_defined
                w.bytes(if video { b"vide" } else { b"soun" });
                w.zeros(12); // reserved
                w.bytes(if video { b"VideoHandler\0" } else { b"SoundHandler\0" });
                Ok(())
            })?;
            w.boxed(b"minf", |w| {
                if video {
                    // Flags 1 (no lean ahead); graphicsmode copy, opcolor 0.
                    w.full(b"vmhd", 0, 1, |w| {
                        w.zeros(8);
                        Ok(())
                    })?;
                } else {
                    w.full(b"smhd", 0, 0, |w| {
                        w.zeros(4); // balance, reserved
                        Ok(())
                    })?;
                }
                w.boxed(b"dinf", |w| {
                    w.full(b"dref", 0, 0, |w| {
                        w.u32(1);
                        // Flags 1: the media is in this file.
                        w.full(b"url ", 0, 1, |_| Ok(()))
                    })
                })?;
                w.boxed(b"stbl", |w| {
                    w.full(b"stsd", 0, 0, |w| {
                        w.u32(1);
                        sample_entry(w, &t.codec)
                    })?;
                    w.full(b"stts", 0, 0, |w| {
                        w.u32(0);
                        Ok(())
                    })?;
                    w.full(b"stsc", 0, 0, |w| {
                        w.u32(0);
                        Ok(())
                    })?;
                    w.full(b"stsz", 0, 0, |w| {
                        w.zeros(8); // sample size, sample count
                        Ok(())
                    })?;
                    w.full(b"stco", 0, 0, |w| {
                        w.u32(0);
                        Ok(())
                    })
                })
            })
        })
    })
}

fn sample_entry(w: &mut Boxes, codec: &CodecConfig) -> Result<(), Error> {
    match codec {
        CodecConfig::H264 { avcc, width, height } => visual_entry(w, b"avc1", *width, *height, b"avcC", avcc),
        CodecConfig::Hevc { hvcc, width, height } => visual_entry(w, b"hvc1", *width, *height, b"hvcC", hvcc),
        CodecConfig::Av1 { av1c, width, height } => visual_entry(w, b"av01", *width, *height, b"av1C", av1c),
        CodecConfig::Aac { asc, channels, sample_rate } => w.boxed(b"mp4a", |w| {
            audio_fields(w, *channels, *sample_rate);
            w.full(b"esds", 0, 0, |w| esds(w, asc))
        }),
        CodecConfig::Opus { channels, sample_rate, pre_skip } => w.boxed(b"Opus", |w| {
            // Opus in ISOBMFF: the entry's rate is always 48 kHz, the rate Opus decodes at.
            audio_fields(w, *channels, 48_000);
            w.boxed(b"dOps", |w| {
                w.buf.put_u8(0); // version
                w.buf.put_u8(u8::try_from(*channels).unwrap_or(2)); // checked to be 1 or 2
                w.u16(*pre_skip);
                w.u32(*sample_rate);
                w.u16(0); // output gain
                w.buf.put_u8(0); // channel mapping family
                Ok(())
            })
        }),
    }
}

fn visual_entry(
    w: &mut Boxes,
    kind: &[u8; 4],
    width: u16,
    height: u16,
    config_kind: &[u8; 4],
    config: &[u8],
) -> Result<(), Error> {
    w.boxed(kind, |w| {
        w.zeros(6); // reserved
        w.u16(1); // data reference index
        w.zeros(16); // pre_defined, reserved
        w.u16(width);
        w.u16(height);
        w.u32(0x0048_0000); // 72 dpi
        w.u32(0x0048_0000);
        w.u32(0); // reserved
        w.u16(1); // frame count
        w.zeros(32); // compressor name
        w.u16(0x0018); // depth
        w.u16(0xffff); // pre_defined = -1
        w.boxed(config_kind, |w| {
            w.bytes(config);
            Ok(())
        })
    })
}

fn audio_fields(w: &mut Boxes, channels: u16, sample_rate: u32) {
    w.zeros(6); // reserved
    w.u16(1); // data reference index
    w.zeros(8); // reserved (version, revision, vendor in QuickTime)
    w.u16(channels);
    w.u16(16); // sample size
    w.zeros(4); // pre_defined, reserved
                // 16.16 fixed point; rates above 65535 Hz do not fit and are written as 0, as ffmpeg does (the codec
                // configuration carries the real rate).
    w.u32(u32::from(u16::try_from(sample_rate).unwrap_or(0)) << 16);
}

/// ES_Descriptor { DecoderConfigDescriptor { MPEG-4 audio, DecoderSpecificInfo = the ASC }, SLConfigDescriptor }.
fn esds(w: &mut Boxes, asc: &[u8]) -> Result<(), Error> {
    // The ASC is at most 1 MiB (checked), so every length fits a 4-group descriptor size.
    let dsi = descriptor_len(asc.len());
    let dcd = 13 + dsi;
    let es = 3 + descriptor_len(dcd) + 3;
    descriptor_head(w, 0x03, es);
    w.u16(0); // ES_ID: 0 in MP4, the track id says which stream it is
    w.buf.put_u8(0); // no dependency, URL or OCR stream; priority 0
    descriptor_head(w, 0x04, dcd);
    w.buf.put_u8(0x40); // objectTypeIndication: MPEG-4 Audio
    w.buf.put_u8((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
    w.zeros(3 + 4 + 4); // bufferSizeDB, maxBitrate, avgBitrate: unknown
    descriptor_head(w, 0x05, asc.len());
    w.bytes(asc);
    descriptor_head(w, 0x06, 1);
    w.buf.put_u8(0x02); // SLConfig predefined: MP4
    Ok(())
}

/// Bytes a descriptor with a body of `body` bytes takes, header included.
fn descriptor_len(body: usize) -> usize {
    1 + size_groups(body) + body
}

fn size_groups(body: usize) -> usize {
    match body {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        _ => 4,
    }
}

fn descriptor_head(w: &mut Boxes, tag: u8, body: usize) {
    w.buf.put_u8(tag);
    let groups = size_groups(body);
    for i in (0..groups).rev() {
        let mut b = ((body >> (7 * i)) & 0x7f) as u8;
        if i > 0 {
            b |= 0x80;
        }
        w.buf.put_u8(b);
    }
}

/// What the fragment writer needs of a sample; implemented by [`Sample`] and by the re-fragmenter's view of a
/// parsed sample (which keeps the original flags exactly).
pub(crate) trait SampleView {
    fn duration(&self) -> u32;
    fn flags(&self) -> u32;
    fn composition_offset(&self) -> i32;
    fn data(&self) -> &[u8];
}

impl SampleView for Sample {
    fn duration(&self) -> u32 {
        self.duration
    }
    fn flags(&self) -> u32 {
        if self.sync {
            SYNC_FLAGS
        } else {
            NON_SYNC_FLAGS
        }
    }
    fn composition_offset(&self) -> i32 {
        self.composition_offset
    }
    fn data(&self) -> &[u8] {
        &self.data
    }
}

/// One `traf` to write: [`TrackFragment`] over any [`SampleView`].
pub(crate) struct Run<'a, S> {
    pub(crate) track_id: u32,
    pub(crate) base_decode_time: u64,
    pub(crate) samples: &'a [S],
}

/// moof (mfhd `sequence`, one traf per non-empty track: tfhd default-base-is-moof, tfdt v1, trun with data offset
/// and per-sample duration/size/flags/cto) + one mdat holding the samples, track by track. The payloads are
/// copied exactly once, into the one contiguous buffer a part is stored as.
///
/// Sync samples get the flags `0x02000000` (depends on no other sample), others `0x01010000` (depends on
/// others, non-sync). The `trun` is version 0 unless a composition offset is negative. No samples at all, a
/// track id of 0 or a track given twice are [`Error::InvalidOptions`]; a sample over 4 GiB, or data offsets
/// beyond 2 GiB, are [`Error::Malformed`].
pub fn write_fragment(sequence: u32, tracks: &[TrackFragment<'_>]) -> Result<Bytes, Error> {
    let runs: Vec<Run<'_, Sample>> = tracks
        .iter()
        .map(|t| Run { track_id: t.track_id, base_decode_time: t.base_decode_time, samples: t.samples })
        .collect();
    write_moof_mdat(&[], sequence, &runs)
}

/// [`write_fragment`] over any sample view, with `prefix` (whole boxes such as `styp`) copied in front.
pub(crate) fn write_moof_mdat<S: SampleView>(
    prefix: &[u8],
    sequence: u32,
    runs: &[Run<'_, S>],
) -> Result<Bytes, Error> {
    let mut moof_len = 8 + 16;
    let mut data_len = 0usize;
    let mut nonempty = 0;
    for (i, run) in runs.iter().enumerate() {
        if run.samples.is_empty() {
            continue;
        }
        if run.track_id == 0 {
            return Err(Error::InvalidOptions("track id 0 is reserved".into()));
        }
        if runs[..i].iter().any(|o| o.track_id == run.track_id && !o.samples.is_empty()) {
            return Err(Error::InvalidOptions(format!("track {} given twice in one fragment", run.track_id)));
        }
        u32::try_from(run.samples.len())
            .map_err(|_| Error::Malformed(format!("track {}: over 2^32 samples", run.track_id)))?;
        nonempty += 1;
        // traf header, tfhd (track id), tfdt v1, trun (count, data offset, 16 bytes a sample).
        moof_len += 8 + 16 + 20 + 20 + 16 * run.samples.len();
        for s in run.samples {
            let size = s.data().len();
            if u32::try_from(size).is_err() {
                return Err(Error::Malformed(format!("track {}: a sample of {size} bytes", run.track_id)));
            }
            data_len = data_len.saturating_add(size);
        }
    }
    if nonempty == 0 {
        return Err(Error::InvalidOptions("a fragment needs at least one sample".into()));
    }
    // trun data offsets are signed 32-bit counts from the moof: the last track's data must start below 2 GiB.
    if moof_len.saturating_add(8).saturating_add(data_len) > i32::MAX as usize {
        return Err(Error::Malformed(format!("a fragment of {data_len} sample bytes is over 2 GiB")));
    }

    let mut w = Boxes::with_capacity(prefix.len() + moof_len + 8 + data_len);
    w.bytes(prefix);
    let moof_start = w.buf.len();
    // Where each trun's data offset goes, patched once the moof's size is known.
    let mut offset_at = Vec::with_capacity(nonempty);
    w.boxed(b"moof", |w| {
        w.full(b"mfhd", 0, 0, |w| {
            w.u32(sequence);
            Ok(())
        })?;
        for run in runs.iter().filter(|r| !r.samples.is_empty()) {
            w.boxed(b"traf", |w| {
                w.full(b"tfhd", 0, 0x02_0000, |w| {
                    w.u32(run.track_id);
                    Ok(())
                })?;
                w.full(b"tfdt", 1, 0, |w| {
                    w.u64(run.base_decode_time);
                    Ok(())
                })?;
                let version = u8::from(run.samples.iter().any(|s| s.composition_offset() < 0));
                // data offset, then per sample: duration, size, flags, composition time offset.
                w.full(b"trun", version, 0x001 | 0x100 | 0x200 | 0x400 | 0x800, |w| {
                    w.u32(run.samples.len() as u32); // checked above
                    offset_at.push(w.buf.len());
                    w.u32(0);
                    for s in run.samples {
                        w.u32(s.duration());
                        w.u32(s.data().len() as u32); // checked above
                        w.u32(s.flags());
                        w.u32(s.composition_offset() as u32); // two's complement, as version 1 reads it
                    }
                    Ok(())
                })
            })?;
        }
        Ok(())
    })?;
    let mut offset = w.buf.len() - moof_start + 8;
    for (at, run) in offset_at.iter().zip(runs.iter().filter(|r| !r.samples.is_empty())) {
        // Below i32::MAX: checked against the total above.
        w.buf[*at..*at + 4].copy_from_slice(&(offset as u32).to_be_bytes());
        offset += run.samples.iter().map(|s| s.data().len()).sum::<usize>();
    }
    w.boxed(b"mdat", |w| {
        for run in runs {
            for s in run.samples {
                w.bytes(s.data());
            }
        }
        Ok(())
    })?;
    Ok(w.buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::{Fragment, Init, TrackKind};

    pub(crate) fn avcc() -> Bytes {
        // version 1, High@3.1, 4-byte lengths, one SPS, one PPS.
        Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2, 0x68, 0xee])
    }

    fn h264_aac() -> Vec<TrackConfig> {
        vec![
            TrackConfig {
                track_id: 1,
                timescale: 15360,
                codec: CodecConfig::H264 { avcc: avcc(), width: 320, height: 180 },
            },
            TrackConfig {
                track_id: 2,
                timescale: 48000,
                codec: CodecConfig::Aac { asc: Bytes::from_static(&[0x11, 0x90]), channels: 2, sample_rate: 48000 },
            },
        ]
    }

    fn sample(duration: u32, sync: bool, len: usize, fill: u8) -> Sample {
        Sample { duration, composition_offset: 0, sync, data: Bytes::from(vec![fill; len]) }
    }

    #[test]
    fn init_parses_back() {
        let init = Init::parse(write_init(&h264_aac()).expect("init")).expect("parse");
        assert_eq!(init.codecs(), "avc1.64001f,mp4a.40.2");
        assert_eq!(init.resolution(), Some((320, 180)));
        assert_eq!(
            init.tracks.iter().map(|t| (t.id, t.kind, t.timescale)).collect::<Vec<_>>(),
            [(1, TrackKind::Video, 15360), (2, TrackKind::Audio, 48000)]
        );
    }

    #[test]
    fn every_codec_string() {
        let hvcc = {
            let mut h =
                vec![1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f];
            h.push(0);
            Bytes::from(h)
        };
        let cases = [
            (CodecConfig::Hevc { hvcc, width: 1920, height: 1080 }, "hvc1.1.6.L93.B0"),
            (
                CodecConfig::Av1 { av1c: Bytes::from_static(&[0x81, 0x08, 0x0c, 0]), width: 640, height: 360 },
                "av01.0.08M.08",
            ),
            (CodecConfig::Opus { channels: 2, sample_rate: 48000, pre_skip: 312 }, "opus"),
            (CodecConfig::Aac { asc: Bytes::from_static(&[0x13, 0x10]), channels: 1, sample_rate: 96000 }, "mp4a.40.2"),
            (
                CodecConfig::Aac { asc: Bytes::from_static(&[0x2b, 0x8a, 0x08]), channels: 2, sample_rate: 44100 },
                "mp4a.40.5",
            ),
        ];
        for (codec, expected) in cases {
            let t = TrackConfig { track_id: 7, timescale: 90000, codec };
            let init = Init::parse(write_init(std::slice::from_ref(&t)).expect("init")).expect("parse");
            assert_eq!(init.codecs(), expected);
        }
    }

    #[test]
    fn bad_inits_are_errors() {
        assert!(matches!(write_init(&[]), Err(Error::InvalidOptions(_))));
        let mut two = h264_aac();
        two[1].track_id = 1;
        assert!(matches!(write_init(&two), Err(Error::InvalidOptions(_))));
        let mut zero = h264_aac();
        zero[0].timescale = 0;
        assert!(matches!(write_init(&zero), Err(Error::InvalidOptions(_))));
        zero[0].timescale = 1;
        zero[0].track_id = 0;
        assert!(matches!(write_init(&zero), Err(Error::InvalidOptions(_))));
        for codec in [
            CodecConfig::H264 { avcc: Bytes::from_static(&[1, 0x64]), width: 1, height: 1 },
            CodecConfig::H264 { avcc: Bytes::from_static(&[0; 10]), width: 1, height: 1 },
            CodecConfig::Hevc { hvcc: Bytes::from_static(&[1; 10]), width: 1, height: 1 },
            CodecConfig::Av1 { av1c: Bytes::from_static(&[1, 2, 3, 4]), width: 1, height: 1 },
            CodecConfig::Aac { asc: Bytes::from_static(&[0x11]), channels: 2, sample_rate: 48000 },
            CodecConfig::Opus { channels: 6, sample_rate: 48000, pre_skip: 0 },
            CodecConfig::Opus { channels: 0, sample_rate: 48000, pre_skip: 0 },
        ] {
            let t = TrackConfig { track_id: 1, timescale: 1000, codec };
            assert!(matches!(write_init(&[t]), Err(Error::Malformed(_))));
        }
    }

    #[test]
    fn long_asc_uses_multi_byte_descriptor_sizes() {
        let mut asc = vec![0x11, 0x90];
        asc.resize(300, 0);
        let t = TrackConfig {
            track_id: 1,
            timescale: 48000,
            codec: CodecConfig::Aac { asc: Bytes::from(asc), channels: 2, sample_rate: 48000 },
        };
        let init = Init::parse(write_init(&[t]).expect("init")).expect("parse");
        assert_eq!(init.codecs(), "mp4a.40.2");
    }

    #[test]
    fn fragment_parses_back() {
        let init = Init::parse(write_init(&h264_aac()).expect("init")).expect("parse");
        let video: Vec<Sample> = (0..6).map(|i| sample(512, i == 0, 100 + i, i as u8)).collect();
        let audio: Vec<Sample> = (0..10).map(|i| sample(1024, true, 20, 0x80 + i as u8)).collect();
        let bytes = write_fragment(
            9,
            &[
                TrackFragment { track_id: 1, base_decode_time: 3072, samples: &video },
                TrackFragment { track_id: 2, base_decode_time: 9600, samples: &audio },
            ],
        )
        .expect("fragment");
        let data: usize = video.iter().chain(&audio).map(|s| s.data.len()).sum();
        let f = Fragment::parse(bytes.clone(), &init).expect("parse");
        assert_eq!(f.duration(), std::time::Duration::from_millis(200));
        assert!(f.independent());
        assert_eq!(f.decode_time(), Some((3072, 15360)));
        assert_eq!(f.tracks[1].duration, 10240);
        assert_eq!(f.tracks[1].base_decode_time, 9600);
        // The payloads are the tail of the bytes, in order.
        let tail: Vec<u8> = video.iter().chain(&audio).flat_map(|s| s.data.iter().copied()).collect();
        assert_eq!(&bytes[bytes.len() - data..], &tail[..]);

        let later = write_fragment(10, &[TrackFragment { track_id: 1, base_decode_time: 0, samples: &video[1..] }])
            .expect("fragment");
        assert!(!Fragment::parse(later, &init).expect("parse").independent());
    }

    #[test]
    fn capacity_is_exact() {
        let video: Vec<Sample> = (0..6).map(|i| sample(512, i == 0, 100, 0)).collect();
        let runs = [Run { track_id: 1, base_decode_time: 0, samples: &video[..] }];
        let bytes = write_moof_mdat(b"", 1, &runs).expect("fragment");
        // The one allocation was sized for exactly this.
        assert_eq!(bytes.len(), 8 + 16 + 8 + 16 + 20 + 20 + 16 * 6 + 8 + 600);
    }

    #[test]
    fn bad_fragments_are_errors() {
        let one = [sample(1, true, 1, 0)];
        assert!(matches!(write_fragment(1, &[]), Err(Error::InvalidOptions(_))));
        let empty = TrackFragment { track_id: 1, base_decode_time: 0, samples: &[] };
        assert!(matches!(write_fragment(1, &[empty]), Err(Error::InvalidOptions(_))));
        let t = TrackFragment { track_id: 1, base_decode_time: 0, samples: &one };
        assert!(matches!(write_fragment(1, &[t, t]), Err(Error::InvalidOptions(_))));
        let zero = TrackFragment { track_id: 0, ..t };
        assert!(matches!(write_fragment(1, &[zero]), Err(Error::InvalidOptions(_))));
        // An empty track beside a full one is left out, not an error.
        assert!(write_fragment(1, &[empty, TrackFragment { track_id: 2, ..t }]).is_ok());
    }
}
