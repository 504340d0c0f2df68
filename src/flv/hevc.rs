//! HEVC: the HEVCDecoderConfigurationRecord (`hvcC`, ISO 14496-15 8.3.3) an HEVC sequence start carries, and the
//! picture size from its SPS (ITU-T H.265 7.3.2.2).

use super::bits::{unescape, Bits};
use crate::error::Error;

/// What the packager needs from an `hvcC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcConfig {
    /// `general_profile_idc` (1 Main, 2 Main 10, ...).
    pub profile: u8,
    /// `general_level_idc` (30 × the level: 93 for 3.1).
    pub level: u8,
    /// Bytes of the length prefix in front of every NAL unit of a sample (1, 2 or 4).
    pub nal_length_size: u8,
    /// Picture width in pixels, conformance window applied; 0 when the record has no SPS.
    pub width: u32,
    /// Picture height in pixels, conformance window applied; 0 when the record has no SPS.
    pub height: u32,
}

fn malformed(what: &str) -> Error {
    Error::MalformedFlv(format!("hvcC: {what}"))
}

/// `hvcC` bytes before its NAL unit arrays.
const HEADER: usize = 23;
/// NAL unit type of an SPS.
const SPS: u8 = 33;

impl HevcConfig {
    /// Parses an `hvcC` body and the first SPS in it.
    pub fn parse(hvcc: &[u8]) -> Result<HevcConfig, Error> {
        if hvcc.len() < HEADER {
            return Err(malformed("shorter than its 23-byte header"));
        }
        if hvcc[0] != 1 {
            return Err(malformed(&format!("configurationVersion {}, expected 1", hvcc[0])));
        }
        let profile = hvcc[1] & 0x1f;
        let level = hvcc[12];
        let nal_length_size = (hvcc[21] & 3) + 1;
        if nal_length_size == 3 {
            return Err(malformed("NAL unit length size 3 is not allowed"));
        }
        let arrays = hvcc[22];
        let mut rest = &hvcc[HEADER..];
        let mut sps = None;
        for _ in 0..arrays {
            let [kind, n0, n1, tail @ ..] = rest else { return Err(malformed("NAL unit array past the end")) };
            rest = tail;
            for _ in 0..u16::from_be_bytes([*n0, *n1]) {
                let (nal, tail) =
                    super::avc::length_prefixed(rest).ok_or_else(|| malformed("NAL unit length past the end"))?;
                if kind & 0x3f == SPS && sps.is_none() {
                    sps = Some(nal);
                }
                rest = tail;
            }
        }
        let (width, height) = match sps {
            Some(nal) => sps_picture_size(nal)?,
            None => (0, 0),
        };
        Ok(HevcConfig { profile, level, nal_length_size, width, height })
    }
}

/// Width and height in pixels of an HEVC SPS NAL unit (2-byte header included), conformance window applied.
pub fn sps_picture_size(nal: &[u8]) -> Result<(u32, u32), Error> {
    let [h0, _h1, body @ ..] = nal else { return Err(malformed("SPS shorter than its NAL header")) };
    if (h0 >> 1) & 0x3f != SPS {
        return Err(malformed(&format!("NAL unit type {} where an SPS (33) belongs", (h0 >> 1) & 0x3f)));
    }
    let rbsp = unescape(body);
    let mut b = Bits::new(&rbsp, "HEVC SPS");
    b.skip(4)?; // sps_video_parameter_set_id
    let sub_layers = b.bits(3)? as usize; // sps_max_sub_layers_minus1
    b.skip(1)?; // sps_temporal_id_nesting_flag
                // profile_tier_level(1, sps_max_sub_layers_minus1): the general part is 88 bits of profile, 8 of level.
    b.skip(96)?;
    let mut present = [(false, false); 7];
    for p in present.iter_mut().take(sub_layers) {
        *p = (b.bit()?, b.bit()?);
    }
    if sub_layers > 0 {
        b.skip(2 * (8 - sub_layers))?; // reserved_zero_2bits
    }
    for &(profile, level) in present.iter().take(sub_layers) {
        if profile {
            b.skip(88)?;
        }
        if level {
            b.skip(8)?;
        }
    }
    b.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = b.ue()?;
    if chroma_format_idc > 3 {
        return Err(malformed(&format!("chroma_format_idc {chroma_format_idc}")));
    }
    let separate_colour_plane = chroma_format_idc == 3 && b.bit()?;
    let width = u64::from(b.ue()?);
    let height = u64::from(b.ue()?);
    let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
    if b.bit()? {
        left = b.ue()?.into();
        right = b.ue()?.into();
        top = b.ue()?.into();
        bottom = b.ue()?.into();
    }
    let (sub_width, sub_height) = match (separate_colour_plane, chroma_format_idc) {
        (false, 1) => (2, 2),
        (false, 2) => (2, 1),
        _ => (1, 1),
    };
    let width = width.checked_sub(sub_width * (left + right));
    let height = height.checked_sub(sub_height * (top + bottom));
    match (width, height) {
        (Some(w @ 1..=65535), Some(h @ 1..=65535)) => Ok((w as u32, h as u32)),
        _ => Err(malformed("picture size out of range after the conformance window")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VPS, SPS and PPS arrays of the `hvcC` x265 wrote for 320x180 Main@L2 (its SEI array left out).
    const HVCC_320X180: [u8; 111] = [
        0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c, 0xf0, 0x00, 0xfc, 0xfd, 0xf8,
        0xf8, 0x00, 0x00, 0x0f, 0x03, 0xa0, 0x00, 0x01, 0x00, 0x18, 0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60,
        0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x95, 0x90, 0x09, 0xa1, 0x00,
        0x01, 0x00, 0x2b, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0c, 0x1f, 0x3e, 0x59, 0x59, 0x12, 0x93, 0x0b, 0xc0, 0x5a, 0x02, 0x00,
        0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x10, 0xa2, 0x00, 0x01, 0x00, 0x06, 0x44, 0x01, 0xc0,
        0x73, 0xc1, 0x89,
    ];

    #[test]
    fn parses_x265_main() {
        let c = HevcConfig::parse(&HVCC_320X180).expect("hvcC");
        assert_eq!((c.profile, c.level, c.nal_length_size), (1, 60, 4));
        assert_eq!((c.width, c.height), (320, 180));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for len in 0..HVCC_320X180.len() {
            assert!(HevcConfig::parse(&HVCC_320X180[..len]).is_err(), "cut at {len}");
        }
        let mut no_arrays = HVCC_320X180[..23].to_vec();
        no_arrays[22] = 0;
        assert_eq!(HevcConfig::parse(&no_arrays).map(|c| (c.width, c.height)), Ok((0, 0)));
        assert!(sps_picture_size(&[0x44, 0x01, 0xc0]).is_err(), "a PPS is not an SPS");
    }
}
