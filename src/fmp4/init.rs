//! The init segment: `ftyp` + `moov`, parsed for what the playlists and the fragment parser need.

use bytes::Bytes;

use super::boxes::{children, find, Reader};
use crate::error::Error;

/// What a track carries, from its `hdlr` handler type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// `vide`.
    Video,
    /// `soun`.
    Audio,
    /// Anything else (subtitles, metadata, hints).
    Other,
}

/// One `trak` of the init segment, with its `trex` defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// `tkhd` track id.
    pub id: u32,
    /// From `hdlr`.
    pub kind: TrackKind,
    /// `mdhd` timescale (ticks per second), never 0.
    pub timescale: u32,
    /// RFC 6381 codec string of the first sample entry, `None` when the entry is missing or unknown.
    pub codec: Option<String>,
    /// Width in pixels (`tkhd`, else the visual sample entry); 0 for audio.
    pub width: u32,
    /// Height in pixels (`tkhd`, else the visual sample entry); 0 for audio.
    pub height: u32,
    /// `trex` default sample duration, used when neither `trun` nor `tfhd` gives one.
    pub default_sample_duration: u32,
    /// `trex` default sample flags, used when neither `trun` nor `tfhd` gives them.
    pub default_sample_flags: u32,
    /// `trex` default sample size, used when neither `trun` nor `tfhd` gives one.
    pub default_sample_size: u32,
    /// The track's language as an RFC 5646 tag: `elng`'s when present, else `mdhd`'s ISO 639-2/T code, as its
    /// two-letter ISO 639-1 code where there is one (`eng` is `en`); `None` when neither names one (`und`).
    pub language: Option<String>,
    /// Audio channels: from the codec's configuration (AAC `AudioSpecificConfig`, Opus `dOps`, AC-3 `dac3`)
    /// when it says, else the sample entry's `channelcount`; `None` for other tracks.
    pub channels: Option<u16>,
}

/// A parsed init segment. `bytes` is exactly what was received, served as `EXT-X-MAP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    /// The segment's bytes, unchanged.
    pub bytes: Bytes,
    /// The tracks, in `moov` order.
    pub tracks: Vec<Track>,
}

impl Init {
    /// Parses an init segment: `ftyp` (optional, plus any `free`/`skip`) and a `moov` with `mvex` (fragmented).
    /// Sample tables may be empty, as with `empty_moov`.
    pub fn parse(bytes: Bytes) -> Result<Init, Error> {
        let mut moov = None;
        for child in children(&bytes) {
            let child = child?;
            match &child.kind {
                b"moov" if moov.is_none() => moov = Some(child.body),
                b"moov" => return Err(Error::Malformed("init segment with two moov boxes".into())),
                b"moof" | b"mdat" => return Err(Error::Malformed("init segment holds media".into())),
                _ => {}
            }
        }
        let moov = moov.ok_or_else(|| Error::Malformed("init segment without moov".into()))?;
        let mvex = find(moov, b"mvex")?
            .ok_or_else(|| Error::NotFmp4("moov without mvex: a plain MP4, not a fragmented one".into()))?;

        let mut tracks = Vec::new();
        for child in children(moov) {
            let child = child?;
            if &child.kind == b"trak" {
                tracks.push(parse_trak(child.body)?);
            }
        }
        if tracks.is_empty() {
            return Err(Error::Malformed("moov without tracks".into()));
        }
        for child in children(mvex) {
            let child = child?;
            if &child.kind == b"trex" {
                let mut r = Reader::new(child.body, "trex");
                r.version_flags()?;
                let id = r.u32()?;
                let _description_index = r.u32()?;
                let duration = r.u32()?;
                let size = r.u32()?;
                let flags = r.u32()?;
                if let Some(t) = tracks.iter_mut().find(|t| t.id == id) {
                    t.default_sample_duration = duration;
                    t.default_sample_size = size;
                    t.default_sample_flags = flags;
                }
            }
        }
        Ok(Init { bytes, tracks })
    }

    /// The RFC 6381 `CODECS` list: every track's codec string in track order, without repeats.
    pub fn codecs(&self) -> String {
        let mut out: Vec<&str> = Vec::new();
        for codec in self.tracks.iter().filter_map(|t| t.codec.as_deref()) {
            if !out.contains(&codec) {
                out.push(codec);
            }
        }
        out.join(",")
    }

    /// `(width, height)` of the video track.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        self.tracks
            .iter()
            .find(|t| t.kind == TrackKind::Video)
            .map(|t| (t.width, t.height))
            .filter(|&(w, h)| w > 0 && h > 0)
    }

    /// The track whose timeline defines part durations: video, else audio, else the first.
    pub fn main_track(&self) -> Option<&Track> {
        main_of(&self.tracks, |t| t.kind)
    }

    /// The track with this id.
    pub fn track(&self, id: u32) -> Option<&Track> {
        self.tracks.iter().find(|t| t.id == id)
    }
}

/// Of tracks (or their runs), the one whose timeline defines part durations: video, else audio, else the first.
pub(crate) fn main_of<T>(items: &[T], kind: impl Fn(&T) -> TrackKind) -> Option<&T> {
    let find = |k: TrackKind| items.iter().find(|t| kind(t) == k);
    find(TrackKind::Video).or_else(|| find(TrackKind::Audio)).or_else(|| items.first())
}

fn parse_trak(trak: &[u8]) -> Result<Track, Error> {
    let tkhd = find(trak, b"tkhd")?.ok_or_else(|| Error::Malformed("trak without tkhd".into()))?;
    let mut r = Reader::new(tkhd, "tkhd");
    let (version, _) = r.version_flags()?;
    // creation and modification time, then the track id.
    r.skip(if version == 1 { 16 } else { 8 })?;
    let id = r.u32()?;
    // reserved, duration, reserved[2], layer, alternate_group, volume, reserved, matrix[9]
    r.skip(4 + if version == 1 { 8 } else { 4 } + 8 + 2 + 2 + 2 + 2 + 36)?;
    let mut width = r.u32()? >> 16;
    let mut height = r.u32()? >> 16;

    let mdia = find(trak, b"mdia")?.ok_or_else(|| Error::Malformed("trak without mdia".into()))?;
    let mdhd = find(mdia, b"mdhd")?.ok_or_else(|| Error::Malformed("mdia without mdhd".into()))?;
    let mut r = Reader::new(mdhd, "mdhd");
    let (version, _) = r.version_flags()?;
    r.skip(if version == 1 { 16 } else { 8 })?;
    let timescale = r.u32()?;
    if timescale == 0 {
        return Err(Error::Malformed(format!("track {id} has timescale 0")));
    }
    r.skip(if version == 1 { 8 } else { 4 })?;
    let mut language = iso639(r.u16()?);
    if let Some(elng) = find(mdia, b"elng")? {
        let mut r = Reader::new(elng, "elng");
        r.version_flags()?;
        let tag = &elng[r.position()..];
        let tag = &tag[..tag.iter().position(|&b| b == 0).unwrap_or(tag.len())];
        if let Some(tag) = bcp47(tag) {
            language = Some(tag);
        }
    }

    let hdlr = find(mdia, b"hdlr")?.ok_or_else(|| Error::Malformed("mdia without hdlr".into()))?;
    let mut r = Reader::new(hdlr, "hdlr");
    r.version_flags()?;
    r.skip(4)?;
    let kind = match r.take(4)? {
        b"vide" => TrackKind::Video,
        b"soun" => TrackKind::Audio,
        _ => TrackKind::Other,
    };

    let stsd = find(mdia, b"minf")?
        .map(|minf| find(minf, b"stbl"))
        .transpose()?
        .flatten()
        .map(|stbl| find(stbl, b"stsd"))
        .transpose()?
        .flatten();
    let (mut codec, mut channels) = (None, None);
    if let Some(stsd) = stsd {
        let mut r = Reader::new(stsd, "stsd");
        r.version_flags()?;
        let _count = r.u32()?;
        let entries = &stsd[r.position()..];
        if let Some(entry) = children(entries).next().transpose()? {
            let parsed = sample_entry(kind, entry.kind, entry.body)?;
            codec = parsed.codec;
            channels = parsed.channels;
            if width == 0 || height == 0 {
                (width, height) = (parsed.width, parsed.height);
            }
        }
    }
    Ok(Track {
        id,
        kind,
        timescale,
        codec,
        width,
        height,
        default_sample_duration: 0,
        default_sample_flags: 0,
        default_sample_size: 0,
        language,
        channels,
    })
}

/// The `mdhd` language: three 5-bit letters, each `+ 0x60`, an ISO 639-2/T code, given as the RFC 5646 tag a
/// playlist's `LANGUAGE` takes: the two-letter code where ISO 639-1 has one (`eng` is `en`), else the three
/// letters. `und` (undetermined) and anything that is not three lowercase letters name no language.
fn iso639(packed: u16) -> Option<String> {
    let code: String = [10u16, 5, 0].iter().map(|shift| char::from(((packed >> shift) & 0x1f) as u8 + 0x60)).collect();
    if !code.bytes().all(|b| b.is_ascii_lowercase()) || code == "und" {
        return None;
    }
    let short = isolang::Language::from_639_3(&code).and_then(|l| l.to_639_1());
    Some(short.map_or(code, str::to_owned))
}

/// An `elng` tag, when it is a plausible BCP 47 tag (letters, digits and hyphens, starting with a letter): it goes
/// into a quoted playlist attribute, so nothing else is let through.
fn bcp47(tag: &[u8]) -> Option<String> {
    let ok = tag.len() <= 35
        && tag.first().is_some_and(u8::is_ascii_alphabetic)
        && tag.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    let tag = std::str::from_utf8(tag).ok().filter(|_| ok)?;
    (!tag.eq_ignore_ascii_case("und")).then(|| tag.to_owned())
}

struct SampleEntry {
    codec: Option<String>,
    width: u32,
    height: u32,
    channels: Option<u16>,
}

/// Fixed fields before the child boxes: SampleEntry (8) + VisualSampleEntry (70) / AudioSampleEntry (20).
const VISUAL_FIELDS: usize = 78;
const AUDIO_FIELDS: usize = 28;

fn sample_entry(track: TrackKind, kind: [u8; 4], body: &[u8]) -> Result<SampleEntry, Error> {
    let mut channels = None;
    let (width, height, boxes) = match track {
        TrackKind::Video => {
            let mut r = Reader::new(body, "visual sample entry");
            r.skip(24)?;
            let w = u32::from(r.u16()?);
            let h = u32::from(r.u16()?);
            r.skip(VISUAL_FIELDS - 28)?;
            (w, h, &body[VISUAL_FIELDS..])
        }
        TrackKind::Audio => {
            let mut r = Reader::new(body, "audio sample entry");
            r.skip(8)?;
            // QuickTime sound descriptions reuse the reserved field as a version with extra fields after.
            let version = r.u16()?;
            let extra = match version {
                1 => 16,
                2 => 36,
                _ => 0,
            };
            r.skip(6)?;
            // Version 2 sound descriptions keep the count in their extension; the field here is a placeholder.
            channels = Some(r.u16()?).filter(|&n| n > 0 && version != 2);
            r.skip(AUDIO_FIELDS - 18 + extra)?;
            (0, 0, &body[AUDIO_FIELDS + extra..])
        }
        TrackKind::Other => {
            // Unknown layout: name the format, and do not fail the whole init over a side track.
            let codec = codec_string(kind, &[]).ok().flatten();
            return Ok(SampleEntry { codec, width: 0, height: 0, channels: None });
        }
    };
    // Encrypted entries name their real format in sinf/frma; the codec configuration boxes sit beside sinf.
    let format = if matches!(&kind, b"encv" | b"enca") {
        match find(boxes, b"sinf")?.map(|sinf| find(sinf, b"frma")).transpose()?.flatten() {
            Some(frma) => {
                let mut f = [0u8; 4];
                f.copy_from_slice(Reader::new(frma, "frma").take(4)?);
                f
            }
            None => kind,
        }
    } else {
        kind
    };
    let codec = codec_string(format, boxes)?;
    if track == TrackKind::Audio {
        channels = configured_channels(format, boxes)?.or(channels);
    }
    Ok(SampleEntry { codec, width, height, channels })
}

/// The channel count an audio codec's configuration box gives, when it gives one.
fn configured_channels(format: [u8; 4], boxes: &[u8]) -> Result<Option<u16>, Error> {
    Ok(match &format {
        b"mp4a" => match find(boxes, b"esds")? {
            Some(esds) => audio_specific_config(esds)?.and_then(aac_channels),
            None => None,
        },
        // OpusSpecificBox: Version, OutputChannelCount, ...
        b"Opus" => find(boxes, b"dOps")?.and_then(|d| d.get(1)).map(|&n| u16::from(n)).filter(|&n| n > 0),
        // AC3SpecificBox: fscod(2) bsid(5) bsmod(3) acmod(3) lfeon(1).
        b"ac-3" => find(boxes, b"dac3")?.filter(|d| d.len() >= 3).map(|d| {
            let bits = u32::from(d[0]) << 16 | u32::from(d[1]) << 8 | u32::from(d[2]);
            let (acmod, lfe) = ((bits >> 11) & 0x7, (bits >> 10) & 0x1);
            [2, 1, 2, 3, 3, 4, 4, 5][acmod as usize] + lfe as u16
        }),
        _ => None,
    })
}

/// `channelConfiguration` of an AAC `AudioSpecificConfig` (ISO 14496-3 1.6.2.1): 1–6 channels as numbered, 7 is
/// 7.1 (8 channels); 0 (given by a program config element) and the rest are left to the sample entry.
fn aac_channels(asc: &[u8]) -> Option<u16> {
    if asc.is_empty() {
        return None;
    }
    let bits = asc.iter().take(8).fold(0u64, |acc, &b| acc << 8 | u64::from(b)) << (8 * (8 - asc.len().min(8)));
    let mut at = 5;
    if bits >> (64 - 5) == 31 {
        at += 6;
    }
    let frequency_index = (bits >> (64 - at - 4)) & 0xf;
    at += 4;
    if frequency_index == 15 {
        at += 24;
    }
    if asc.len() * 8 < at + 4 {
        return None;
    }
    match (bits >> (64 - at - 4)) & 0xf {
        n @ 1..=6 => Some(n as u16),
        7 => Some(8),
        _ => None,
    }
}

fn codec_string(format: [u8; 4], boxes: &[u8]) -> Result<Option<String>, Error> {
    let fourcc = String::from_utf8_lossy(&format).into_owned();
    Ok(Some(match &format {
        b"avc1" | b"avc3" => match find(boxes, b"avcC")? {
            Some(avcc) => {
                let mut r = Reader::new(avcc, "avcC");
                let _version = r.u8()?;
                let (profile, compat, level) = (r.u8()?, r.u8()?, r.u8()?);
                format!("{fourcc}.{profile:02x}{compat:02x}{level:02x}")
            }
            None => fourcc,
        },
        b"hvc1" | b"hev1" => match find(boxes, b"hvcC")? {
            Some(hvcc) => hevc(&fourcc, hvcc)?,
            None => fourcc,
        },
        b"av01" => match find(boxes, b"av1C")? {
            Some(av1c) => {
                let mut r = Reader::new(av1c, "av1C");
                let _marker_version = r.u8()?;
                let b1 = r.u8()?;
                let b2 = r.u8()?;
                let (profile, level) = (b1 >> 5, b1 & 0x1f);
                let tier = if b2 & 0x80 != 0 { 'H' } else { 'M' };
                let (high, twelve) = (b2 & 0x40 != 0, b2 & 0x20 != 0);
                let depth = match (high, twelve && profile == 2) {
                    (true, true) => 12,
                    (true, false) => 10,
                    _ => 8,
                };
                format!("av01.{profile}.{level:02}{tier}.{depth:02}")
            }
            None => fourcc,
        },
        b"vp09" | b"vp08" => match find(boxes, b"vpcC")? {
            Some(vpcc) => {
                let mut r = Reader::new(vpcc, "vpcC");
                r.version_flags()?;
                let (profile, level, depth) = (r.u8()?, r.u8()?, r.u8()? >> 4);
                format!("{fourcc}.{profile:02}.{level:02}.{depth:02}")
            }
            None => fourcc,
        },
        b"mp4a" => match find(boxes, b"esds")? {
            Some(esds) => mp4a(esds)?,
            None => fourcc,
        },
        b"Opus" => "opus".into(),
        b"fLaC" => "flac".into(),
        b"ac-3" | b"ec-3" | b"ac-4" => fourcc,
        _ if format.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') => fourcc,
        _ => return Ok(None),
    }))
}

/// `hvc1.[A-C]<profile>.<compat, bit-reversed hex>.<L|H><level>[.<constraint byte>...]`, ISO 14496-15 Annex E.
fn hevc(fourcc: &str, hvcc: &[u8]) -> Result<String, Error> {
    let mut r = Reader::new(hvcc, "hvcC");
    let _version = r.u8()?;
    let b = r.u8()?;
    let space = match b >> 6 {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let tier = if b & 0x20 != 0 { 'H' } else { 'L' };
    let profile = b & 0x1f;
    let compat = r.u32()?.reverse_bits();
    let constraints = r.take(6)?;
    let level = r.u8()?;
    let mut out = format!("{fourcc}.{space}{profile}.{compat:X}.{tier}{level}");
    // Trailing zero constraint bytes are omitted.
    let used = constraints.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    for c in &constraints[..used] {
        out.push_str(&format!(".{c:X}"));
    }
    Ok(out)
}

/// `mp4a.<objectTypeIndication>[.<audioObjectType>]` from the ES descriptor chain in `esds`.
fn mp4a(esds: &[u8]) -> Result<String, Error> {
    Ok(match decoder_config(esds)? {
        Some((0x40, Some(dsi))) if !dsi.is_empty() => {
            let mut aot = dsi[0] >> 3;
            if aot == 31 {
                let next = dsi.get(1).copied().unwrap_or(0);
                aot = 32 + (((dsi[0] & 0x07) << 3) | (next >> 5));
            }
            format!("mp4a.40.{aot}")
        }
        Some((oti, _)) => format!("mp4a.{oti:02X}"),
        None => "mp4a".into(),
    })
}

/// The AAC `AudioSpecificConfig` of an `esds`, when its object type is MPEG-4 audio and it carries one.
fn audio_specific_config(esds: &[u8]) -> Result<Option<&[u8]>, Error> {
    Ok(decoder_config(esds)?.and_then(|(oti, dsi)| dsi.filter(|d| oti == 0x40 && !d.is_empty())))
}

/// A `DecoderConfigDescriptor`'s `objectTypeIndication` and `DecoderSpecificInfo`, if any.
type DecoderConfig<'a> = (u8, Option<&'a [u8]>);

/// The `DecoderConfigDescriptor` of an `esds`.
fn decoder_config(esds: &[u8]) -> Result<Option<DecoderConfig<'_>>, Error> {
    let mut r = Reader::new(esds, "esds");
    r.version_flags()?;
    let (tag, len) = descriptor(&mut r)?;
    if tag != 0x03 {
        return Err(Error::Malformed(format!("esds starts with descriptor tag {tag:#x}, not ES_Descriptor")));
    }
    let mut es = Reader::new(r.take(len)?, "ES_Descriptor");
    es.skip(2)?;
    let flags = es.u8()?;
    if flags & 0x80 != 0 {
        es.skip(2)?;
    }
    if flags & 0x40 != 0 {
        let url_len = es.u8()?;
        es.skip(usize::from(url_len))?;
    }
    if flags & 0x20 != 0 {
        es.skip(2)?;
    }
    while es.remaining() > 0 {
        let (tag, len) = descriptor(&mut es)?;
        let body = es.take(len)?;
        if tag != 0x04 {
            continue;
        }
        let mut dc = Reader::new(body, "DecoderConfigDescriptor");
        let oti = dc.u8()?;
        dc.skip(12)?;
        while dc.remaining() > 0 {
            let (tag, len) = descriptor(&mut dc)?;
            let dsi = dc.take(len)?;
            if tag == 0x05 {
                return Ok(Some((oti, Some(dsi))));
            }
        }
        return Ok(Some((oti, None)));
    }
    Ok(None)
}

/// An MPEG-4 descriptor header: tag and a length of up to four 7-bit groups.
fn descriptor(r: &mut Reader<'_>) -> Result<(u8, usize), Error> {
    let tag = r.u8()?;
    let mut len = 0usize;
    for _ in 0..4 {
        let b = r.u8()?;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    Ok((tag, len))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
        let mut b = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
        b.extend_from_slice(body);
        boxed(kind, &b)
    }

    fn trak(id: u32, handler: &[u8; 4], timescale: u32, entry: Vec<u8>) -> Vec<u8> {
        trak_in(id, handler, timescale, entry, 0, &[])
    }

    /// A `trak` whose `mdhd` has this packed language and whose `mdia` also holds `more` (e.g. an `elng`).
    fn trak_in(id: u32, handler: &[u8; 4], timescale: u32, entry: Vec<u8>, language: u16, more: &[u8]) -> Vec<u8> {
        let mut tkhd = vec![0; 8];
        tkhd.extend_from_slice(&id.to_be_bytes());
        tkhd.extend_from_slice(&[0; 4 + 4 + 8 + 8 + 36]);
        let (w, h) = if handler == b"vide" { (320u32 << 16, 180u32 << 16) } else { (0, 0) };
        tkhd.extend_from_slice(&w.to_be_bytes());
        tkhd.extend_from_slice(&h.to_be_bytes());
        let mut mdhd = vec![0; 8];
        mdhd.extend_from_slice(&timescale.to_be_bytes());
        mdhd.extend_from_slice(&[0; 4]);
        mdhd.extend_from_slice(&language.to_be_bytes());
        mdhd.extend_from_slice(&[0; 2]);
        let mut hdlr = vec![0; 4];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 13]);
        let mut stsd = 1u32.to_be_bytes().to_vec();
        stsd.extend_from_slice(&entry);
        let stbl = boxed(b"stbl", &full(b"stsd", 0, 0, &stsd));
        let minf = boxed(b"minf", &stbl);
        let mut mdia = full(b"mdhd", 0, 0, &mdhd);
        mdia.extend_from_slice(&full(b"hdlr", 0, 0, &hdlr));
        mdia.extend_from_slice(more);
        mdia.extend_from_slice(&minf);
        let mut t = full(b"tkhd", 0, 3, &tkhd);
        t.extend_from_slice(&boxed(b"mdia", &mdia));
        boxed(b"trak", &t)
    }

    fn visual(kind: &[u8; 4], config: Vec<u8>) -> Vec<u8> {
        let mut b = vec![0; VISUAL_FIELDS];
        b[24..26].copy_from_slice(&320u16.to_be_bytes());
        b[26..28].copy_from_slice(&180u16.to_be_bytes());
        b.extend_from_slice(&config);
        boxed(kind, &b)
    }

    fn audio(kind: &[u8; 4], config: Vec<u8>) -> Vec<u8> {
        let mut b = vec![0; AUDIO_FIELDS];
        b[16..18].copy_from_slice(&2u16.to_be_bytes());
        b.extend_from_slice(&config);
        boxed(kind, &b)
    }

    fn trex(id: u32, duration: u32, flags: u32) -> Vec<u8> {
        let mut b = id.to_be_bytes().to_vec();
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&duration.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&flags.to_be_bytes());
        full(b"trex", 0, 0, &b)
    }

    /// An `esds` of AAC with this `AudioSpecificConfig`.
    fn esds(asc: &[u8]) -> Vec<u8> {
        let mut dsi = vec![0x05, asc.len() as u8];
        dsi.extend_from_slice(asc);
        let mut dcd = vec![0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        dcd.append(&mut dsi);
        let mut es = vec![0, 1, 0, 0x04, dcd.len() as u8];
        es.extend_from_slice(&dcd);
        let mut esds = vec![0x03, 0x80, 0x80, 0x80, es.len() as u8];
        esds.extend_from_slice(&es);
        full(b"esds", 0, 0, &esds)
    }

    /// A minimal H.264 + AAC init segment: track 1 video at 15360, track 2 audio at 48000.
    pub(crate) fn h264_aac_init() -> Vec<u8> {
        let avcc = boxed(b"avcC", &[1, 0x64, 0, 0x1f, 0xff]);
        // ES_Descriptor { DecoderConfigDescriptor { oti 0x40, DecoderSpecificInfo { AAC-LC, 48 kHz, stereo } } }
        let mut moov = trak(1, b"vide", 15360, visual(b"avc1", avcc));
        moov.extend_from_slice(&trak(2, b"soun", 48000, audio(b"mp4a", esds(&[0x11, 0x90]))));
        let mut mvex = trex(1, 512, 0x0101_0000);
        mvex.extend_from_slice(&trex(2, 1024, 0x0200_0000));
        moov.extend_from_slice(&boxed(b"mvex", &mvex));
        let mut out = boxed(b"ftyp", b"iso5\0\0\x02\0iso6mp41");
        out.extend_from_slice(&boxed(b"moov", &moov));
        out
    }

    #[test]
    fn parses_tracks_codecs_and_trex() {
        let init = Init::parse(Bytes::from(h264_aac_init())).expect("init");
        assert_eq!(init.codecs(), "avc1.64001f,mp4a.40.2");
        assert_eq!(init.resolution(), Some((320, 180)));
        let main = init.main_track().expect("main");
        assert_eq!((main.id, main.kind, main.timescale), (1, TrackKind::Video, 15360));
        assert_eq!((main.default_sample_duration, main.default_sample_flags), (512, 0x0101_0000));
        let audio = init.track(2).expect("audio");
        assert_eq!((audio.kind, audio.timescale, audio.width), (TrackKind::Audio, 48000, 0));
    }

    /// `mdhd`'s packed ISO 639-2 code.
    fn packed(code: &str) -> u16 {
        code.bytes().fold(0, |acc, b| acc << 5 | u16::from(b - 0x60))
    }

    #[test]
    fn languages_from_mdhd_and_elng() {
        let elng = |tag: &[u8]| full(b"elng", 0, 0, &[tag, b"\0"].concat());
        let aac = || audio(b"mp4a", esds(&[0x11, 0x90]));
        let mut moov = trak_in(1, b"soun", 48000, aac(), packed("eng"), &[]);
        moov.extend_from_slice(&trak_in(2, b"soun", 48000, aac(), packed("por"), &elng(b"pt-BR")));
        moov.extend_from_slice(&trak_in(3, b"soun", 48000, aac(), packed("und"), &[]));
        // A tag that could break out of a quoted attribute is not a language; mdhd's code stands.
        moov.extend_from_slice(&trak_in(4, b"soun", 48000, aac(), packed("deu"), &elng(b"de\",x")));
        moov.extend_from_slice(&trak_in(5, b"soun", 48000, aac(), packed("fra"), &elng(b"und")));
        // No two-letter code for Cantonese: the three letters are the RFC 5646 tag.
        moov.extend_from_slice(&trak_in(6, b"soun", 48000, aac(), packed("yue"), &[]));
        moov.extend_from_slice(&boxed(b"mvex", &trex(1, 1024, 0)));
        let init = Init::parse(Bytes::from(boxed(b"moov", &moov))).expect("init");
        let languages: Vec<_> = init.tracks.iter().map(|t| t.language.as_deref()).collect();
        assert_eq!(languages, [Some("en"), Some("pt-BR"), None, Some("de"), Some("fr"), Some("yue")]);
        // The fixture's mdhd language field is all zeros: no language.
        assert_eq!(Init::parse(Bytes::from(h264_aac_init())).expect("init").tracks[1].language, None);
    }

    #[test]
    fn channels_from_the_codec_configuration_else_the_sample_entry() {
        let channels = |entry: Vec<u8>| {
            let mut moov = trak(1, b"soun", 48000, entry);
            moov.extend_from_slice(&boxed(b"mvex", &trex(1, 1024, 0)));
            Init::parse(Bytes::from(boxed(b"moov", &moov))).expect("init").tracks[0].channels
        };
        // AAC-LC 48 kHz: channel configuration 2, 6 (5.1), 7 (7.1 = 8), 0 (PCE: the sample entry's 2).
        assert_eq!(channels(audio(b"mp4a", esds(&[0x11, 0x90]))), Some(2));
        assert_eq!(channels(audio(b"mp4a", esds(&[0x11, 0xb0]))), Some(6));
        assert_eq!(channels(audio(b"mp4a", esds(&[0x11, 0xb8]))), Some(8));
        assert_eq!(channels(audio(b"mp4a", esds(&[0x11, 0x80]))), Some(2));
        // An explicit 24-bit sampling frequency (index 15) moves the channel configuration 24 bits on.
        assert_eq!(channels(audio(b"mp4a", esds(&[0x17, 0x80, 0x5d, 0xc0, 0x08]))), Some(1));
        // Opus: OutputChannelCount; AC-3: acmod 7 (3/2) + LFE = 6.
        assert_eq!(channels(audio(b"Opus", boxed(b"dOps", &[0, 1, 0, 0, 0, 0, 0xbb, 0x80, 0, 0, 0]))), Some(1));
        assert_eq!(channels(audio(b"ac-3", boxed(b"dac3", &[0x10, 0x3c, 0x00]))), Some(6));
        assert_eq!(channels(audio(b"ec-3", vec![])), Some(2));
        let video = Init::parse(Bytes::from(h264_aac_init())).expect("init");
        assert_eq!((video.tracks[0].channels, video.tracks[1].channels), (None, Some(2)));
    }

    #[test]
    fn codec_strings() {
        let hvcc = [1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93, 0xf0];
        assert_eq!(codec_string(*b"hvc1", &boxed(b"hvcC", &hvcc)).ok().flatten().as_deref(), Some("hvc1.1.6.L93.B0"));
        let hvcc = [1, 0x22, 0x20, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 120, 0xf0];
        assert_eq!(codec_string(*b"hev1", &boxed(b"hvcC", &hvcc)).ok().flatten().as_deref(), Some("hev1.2.4.H120.90"));
        let av1c = [0x81, 0x08, 0x0c, 0];
        assert_eq!(codec_string(*b"av01", &boxed(b"av1C", &av1c)).ok().flatten().as_deref(), Some("av01.0.08M.08"));
        let av1c = [0x81, 0x4d, 0xcc, 0];
        assert_eq!(codec_string(*b"av01", &boxed(b"av1C", &av1c)).ok().flatten().as_deref(), Some("av01.2.13H.10"));
        let vpcc = full(b"vpcC", 1, 0, &[0, 30, 0x82, 1, 1, 1, 0, 0]);
        assert_eq!(codec_string(*b"vp09", &vpcc).ok().flatten().as_deref(), Some("vp09.00.30.08"));
        assert_eq!(codec_string(*b"Opus", &[]).ok().flatten().as_deref(), Some("opus"));
        assert_eq!(codec_string(*b"fLaC", &[]).ok().flatten().as_deref(), Some("flac"));
        assert_eq!(codec_string(*b"ec-3", &[]).ok().flatten().as_deref(), Some("ec-3"));
        assert_eq!(codec_string(*b"\0\0\0\0", &[]), Ok(None));
        // A truncated configuration record is malformed, not a panic.
        assert!(matches!(codec_string(*b"avc1", &boxed(b"avcC", &[1, 0x64])), Err(Error::Malformed(_))));
    }

    #[test]
    fn moov_without_mvex_is_rejected() {
        let mut moov = trak(1, b"vide", 15360, visual(b"avc1", vec![]));
        moov.extend_from_slice(&boxed(b"udta", &[]));
        let mut b = boxed(b"ftyp", b"isom\0\0\0\0");
        b.extend_from_slice(&boxed(b"moov", &moov));
        assert!(matches!(Init::parse(Bytes::from(b)), Err(Error::NotFmp4(m)) if m.contains("mvex")));
    }

    #[test]
    fn every_truncation_of_an_init_is_an_error_not_a_panic() {
        let good = h264_aac_init();
        for n in 0..good.len() {
            let mut b = good[..n].to_vec();
            // Patch the outer moov size so the damage is inside it rather than a short top-level box.
            if n > 40 {
                let moov_len = (n - 24) as u32;
                b[24..28].copy_from_slice(&moov_len.to_be_bytes());
            }
            assert!(Init::parse(Bytes::from(b)).is_err(), "truncated at {n}");
        }
    }

    #[test]
    fn side_tracks_and_quicktime_audio_entries() {
        let mut qt_audio = vec![0; AUDIO_FIELDS + 16];
        qt_audio[8..10].copy_from_slice(&1u16.to_be_bytes());
        qt_audio.extend_from_slice(&boxed(b"dOps", &[0; 11]));
        let mut moov = trak(1, b"soun", 48000, boxed(b"Opus", &qt_audio));
        // A WebVTT entry is a SampleEntry followed by boxes; read with audio offsets it would look truncated.
        let mut wvtt = vec![0; 8];
        wvtt.extend_from_slice(&boxed(b"vttC", b"WEBVTT"));
        moov.extend_from_slice(&trak(3, b"text", 1000, boxed(b"wvtt", &wvtt)));
        moov.extend_from_slice(&boxed(b"mvex", &trex(1, 960, 0)));
        let init = Init::parse(Bytes::from(boxed(b"moov", &moov))).expect("init");
        assert_eq!(init.codecs(), "opus,wvtt");
        assert_eq!(init.main_track().map(|t| t.id), Some(1));
        assert_eq!(init.resolution(), None);
    }

    #[test]
    fn timescale_zero_is_malformed() {
        let mut moov = trak(1, b"vide", 0, visual(b"avc1", vec![]));
        moov.extend_from_slice(&boxed(b"mvex", &trex(1, 0, 0)));
        assert!(matches!(Init::parse(Bytes::from(boxed(b"moov", &moov))), Err(Error::Malformed(_))));
    }
}
