//! H.264: the AVCDecoderConfigurationRecord (`avcC`, ISO 14496-15 5.3.3) an AVC sequence header carries, and the
//! picture size from its first sequence parameter set (ITU-T H.264 7.3.2.1.1).

use super::bits::{unescape, Bits};
use crate::error::Error;

/// What the packager needs from an `avcC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvcConfig {
    /// `AVCProfileIndication` (66 baseline, 77 main, 100 high, ...).
    pub profile: u8,
    /// `profile_compatibility` (the constraint flags).
    pub compatibility: u8,
    /// `AVCLevelIndication` (31 for level 3.1).
    pub level: u8,
    /// Bytes of the length prefix in front of every NAL unit of a sample (1, 2 or 4).
    pub nal_length_size: u8,
    /// Picture width in pixels, cropping applied.
    pub width: u32,
    /// Picture height in pixels, cropping applied.
    pub height: u32,
}

fn malformed(what: &str) -> Error {
    Error::MalformedFlv(format!("avcC: {what}"))
}

impl AvcConfig {
    /// Parses an `avcC` body and the first SPS in it.
    pub fn parse(avcc: &[u8]) -> Result<AvcConfig, Error> {
        let [version, profile, compatibility, level, length, count, rest @ ..] = avcc else {
            return Err(malformed("shorter than its 6-byte header"));
        };
        if *version != 1 {
            return Err(malformed(&format!("configurationVersion {version}, expected 1")));
        }
        let nal_length_size = (length & 3) + 1;
        if nal_length_size == 3 {
            return Err(malformed("NAL unit length size 3 is not allowed"));
        }
        let sps_count = count & 0x1f;
        if sps_count == 0 {
            return Err(malformed("no sequence parameter set"));
        }
        let mut rest = rest;
        let mut first_sps = None;
        for _ in 0..sps_count {
            let (nal, tail) = length_prefixed(rest).ok_or_else(|| malformed("SPS length past the end"))?;
            first_sps.get_or_insert(nal);
            rest = tail;
        }
        let (&pps_count, mut rest) = rest.split_first().ok_or_else(|| malformed("no PPS count"))?;
        for _ in 0..pps_count {
            let (_, tail) = length_prefixed(rest).ok_or_else(|| malformed("PPS length past the end"))?;
            rest = tail;
        }
        // High profiles may append chroma format and bit depths; nothing here needs them.
        let (width, height) = sps_picture_size(first_sps.unwrap_or_default())?;
        Ok(AvcConfig {
            profile: *profile,
            compatibility: *compatibility,
            level: *level,
            nal_length_size,
            width,
            height,
        })
    }
}

/// A 16-bit length and that many bytes, then the rest; `None` when the length runs past the end.
pub(crate) fn length_prefixed(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices (H.264 7.3.2.1.1).
const HIGH_PROFILES: [u32; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Width and height in pixels of an H.264 SPS NAL unit (header byte included), frame cropping applied.
pub fn sps_picture_size(nal: &[u8]) -> Result<(u32, u32), Error> {
    let (&header, _) = nal.split_first().ok_or_else(|| malformed("empty SPS"))?;
    if header & 0x1f != 7 {
        return Err(malformed(&format!("NAL unit type {} where an SPS (7) belongs", header & 0x1f)));
    }
    let rbsp = unescape(&nal[1..]);
    let mut b = Bits::new(&rbsp, "H.264 SPS");
    let profile = b.bits(8)?;
    b.skip(16)?; // constraint flags, level_idc
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if HIGH_PROFILES.contains(&profile) {
        chroma_format_idc = b.ue()?;
        if chroma_format_idc > 3 {
            return Err(malformed(&format!("chroma_format_idc {chroma_format_idc}")));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = b.bit()?;
        }
        b.ue()?; // bit_depth_luma_minus8
        b.ue()?; // bit_depth_chroma_minus8
        b.bit()?; // qpprime_y_zero_transform_bypass_flag
        if b.bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.bit()? {
                    skip_scaling_list(&mut b, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    match b.ue()? {
        0 => {
            b.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            b.bit()?; // delta_pic_order_always_zero_flag
            b.se()?; // offset_for_non_ref_pic
            b.se()?; // offset_for_top_to_bottom_field
            let cycle = b.ue()?;
            if cycle > 255 {
                return Err(malformed("num_ref_frames_in_pic_order_cnt_cycle above 255"));
            }
            for _ in 0..cycle {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(b.ue()?) + 1;
    let height_units = u64::from(b.ue()?) + 1;
    let frame_mbs_only = b.bit()?;
    if !frame_mbs_only {
        b.bit()?; // mb_adaptive_frame_field_flag
    }
    b.bit()?; // direct_8x8_inference_flag
    let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
    if b.bit()? {
        left = b.ue()?.into();
        right = b.ue()?.into();
        top = b.ue()?.into();
        bottom = b.ue()?.into();
    }
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
    let (crop_x, crop_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let width = (width_mbs * 16).checked_sub(crop_x * (left + right));
    let height = (height_units * 16 * field_factor).checked_sub(crop_y * (top + bottom));
    match (width, height) {
        (Some(w @ 1..=65535), Some(h @ 1..=65535)) => Ok((w as u32, h as u32)),
        _ => Err(malformed("picture size out of range after cropping")),
    }
}

/// `scaling_list()` of H.264 7.3.2.1.1.1: only parsed past.
fn skip_scaling_list(b: &mut Bits<'_>, size: usize) -> Result<(), Error> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = b.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The `avcC` x264 wrote for tests/fixtures/h264_aac.flv: High@1.3, 320x180 (coded 320x192, cropped).
    pub(crate) const AVCC_320X180: [u8; 43] = [
        0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x18, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xb4, 0x0a, 0x0c, 0xfc, 0xf8,
        0x08, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x47, 0x8a, 0x15, 0x50, 0x01, 0x00, 0x04, 0x68,
        0xef, 0x3c, 0xb0, 0xfd, 0xf8, 0xf8, 0x00,
    ];
    /// The `avcC` of tests/fixtures/h264_bframes.flv: High@1.2, 318x178 (coded 320x192: odd crops on both axes).
    const AVCC_318X178: [u8; 45] = [
        0x01, 0x64, 0x00, 0x0c, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x0c, 0xac, 0xd9, 0x41, 0x41, 0x9e, 0xa2,
        0x30, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x14, 0x29, 0x96, 0x01, 0x00,
        0x04, 0x68, 0xef, 0xbc, 0xb0, 0xfd, 0xf8, 0xf8, 0x00,
    ];

    #[test]
    fn parses_x264_high_profile() {
        let c = AvcConfig::parse(&AVCC_320X180).expect("avcC");
        assert_eq!((c.profile, c.compatibility, c.level, c.nal_length_size), (100, 0, 13, 4));
        assert_eq!((c.width, c.height), (320, 180));
        let c = AvcConfig::parse(&AVCC_318X178).expect("avcC");
        assert_eq!((c.level, c.width, c.height), (12, 318, 178));
    }

    #[test]
    fn high_profiles_chroma_formats_and_fields() {
        // x264 High 4:4:4 Predictive (chroma_format_idc 3, JVT scaling matrices), 318x178.
        const AVCC_444: [u8; 48] = [
            0x01, 0xf4, 0x00, 0x0c, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0xf4, 0x00, 0x0c, 0x91, 0x9b, 0x28, 0x28, 0x33, 0xdc,
            0x7e, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x06, 0x41, 0xe2, 0x85, 0x32, 0xc0, 0x01, 0x00,
            0x07, 0x68, 0xef, 0x8f, 0x19, 0x30, 0x00, 0x19, 0xff, 0xf8, 0xf8, 0x00,
        ];
        // x264 High 4:2:2 10-bit, interlaced (frame_mbs_only_flag 0: heights count field pairs), 318x178.
        const AVCC_422I: [u8; 45] = [
            0x01, 0x7a, 0x00, 0x15, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x7a, 0x00, 0x15, 0xb6, 0xcd, 0x94, 0x14, 0x33, 0xd4,
            0x46, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x06, 0x43, 0xe2, 0x85, 0x32, 0xc0, 0x01, 0x00,
            0x04, 0x68, 0xfe, 0x8f, 0xcb, 0xfe, 0xfa, 0xfa, 0x00,
        ];
        let c = AvcConfig::parse(&AVCC_444).expect("4:4:4");
        assert_eq!((c.profile, c.width, c.height), (244, 318, 178));
        let c = AvcConfig::parse(&AVCC_422I).expect("4:2:2 interlaced");
        assert_eq!((c.profile, c.width, c.height), (122, 318, 178));
    }

    /// Writes H.264 syntax elements, to build SPSs for paths no fixture takes.
    #[derive(Default)]
    struct Writer {
        bits: Vec<bool>,
    }

    impl Writer {
        fn u(&mut self, n: u32, v: u32) -> &mut Self {
            (0..n).rev().for_each(|i| self.bits.push((v >> i) & 1 == 1));
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let len = 32 - (v + 1).leading_zeros();
            self.u(len - 1, 0).u(len, v + 1)
        }
        fn se(&mut self, v: i32) -> &mut Self {
            self.ue(if v > 0 { 2 * v as u32 - 1 } else { (-2 * v) as u32 })
        }
        fn nal(&mut self) -> Vec<u8> {
            self.u(1, 1);
            while self.bits.len() % 8 != 0 {
                self.bits.push(false);
            }
            let mut out = vec![0x67];
            out.extend(self.bits.chunks(8).map(|c| c.iter().fold(0u8, |b, &bit| (b << 1) | u8::from(bit))));
            out
        }
    }

    #[test]
    fn scaling_lists_and_poc_type_1() {
        let mut w = Writer::default();
        w.u(8, 100).u(8, 0).u(8, 30).ue(0); // High, level 3.0, sps id
        w.ue(1).ue(0).ue(0).u(1, 0); // 4:2:0, 8-bit, no bypass
        w.u(1, 1); // seq_scaling_matrix_present_flag
        w.u(1, 1); // list 0 (4x4): explicit deltas
        (0..16).for_each(|i| {
            w.se(if i % 2 == 0 { 3 } else { -2 });
        });
        w.u(1, 0).u(1, 0).u(1, 0).u(1, 0).u(1, 0); // lists 1..5 absent
        w.u(1, 1).se(-8); // list 6 (8x8): nextScale 0 at once, "use the default"
        w.u(1, 0); // list 7 absent
        w.ue(0).ue(1); // log2_max_frame_num_minus4, pic_order_cnt_type 1
        w.u(1, 0).se(-1).se(2).ue(3).se(1).se(-1).se(4); // its cycle of 3 offsets
        w.ue(2).u(1, 0); // max_num_ref_frames, gaps
        w.ue(79).ue(44).u(1, 1).u(1, 1); // 1280x720 in macroblocks, frame_mbs_only, direct_8x8
        w.u(1, 1).ue(0).ue(2).ue(0).ue(4); // cropping: 4 px right, 8 px bottom (units of 2)
        w.u(1, 0); // no VUI
        assert_eq!(sps_picture_size(&w.nal()), Ok((1276, 712)));
    }

    #[test]
    fn every_truncation_is_an_error() {
        // The last 4 bytes are the optional high-profile extension; cutting anywhere before them is malformed.
        let whole = &AVCC_320X180[..];
        for len in 0..whole.len() - 4 {
            assert!(AvcConfig::parse(&whole[..len]).is_err(), "cut at {len}");
        }
        let mut bad = whole.to_vec();
        bad[0] = 0;
        assert!(AvcConfig::parse(&bad).is_err());
        let mut no_sps = whole.to_vec();
        no_sps[5] = 0xe0;
        assert!(AvcConfig::parse(&no_sps).is_err());
        assert!(sps_picture_size(&[0x68, 1, 2, 3]).is_err(), "a PPS is not an SPS");
    }
}
