//! AV1: the AV1CodecConfigurationRecord (`av1C`, AV1-ISOBMFF 2.3.3) an AV1 sequence start carries, and the
//! maximum frame size from the sequence header OBU among its configOBUs (AV1 spec 5.5).

use super::bits::Bits;
use crate::error::Error;

/// What the packager needs from an `av1C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Av1Config {
    /// `seq_profile` (0 Main, 1 High, 2 Professional).
    pub profile: u8,
    /// `seq_level_idx_0`.
    pub level: u8,
    /// `max_frame_width_minus_1 + 1` of the sequence header; 0 when the record carries none.
    pub width: u32,
    /// `max_frame_height_minus_1 + 1` of the sequence header; 0 when the record carries none.
    pub height: u32,
}

fn malformed(what: &str) -> Error {
    Error::MalformedFlv(format!("av1C: {what}"))
}

/// OBU type of a sequence header.
const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU type of a temporal delimiter, which AV1-ISOBMFF keeps out of samples.
pub(crate) const OBU_TEMPORAL_DELIMITER: u8 = 2;

impl Av1Config {
    /// Parses an `av1C` body and the sequence header among its configOBUs, if any.
    pub fn parse(av1c: &[u8]) -> Result<Av1Config, Error> {
        let [marker, profile_level, _flags, _delay, obus @ ..] = av1c else {
            return Err(malformed("shorter than its 4-byte header"));
        };
        if *marker != 0x81 {
            return Err(malformed(&format!("marker/version byte {marker:#04x}, expected 0x81")));
        }
        let mut rest = obus;
        let (mut width, mut height) = (0, 0);
        while !rest.is_empty() {
            let (kind, payload, tail) = obu(rest)?;
            if kind == OBU_SEQUENCE_HEADER {
                (width, height) = sequence_header_size(payload)?;
                break;
            }
            rest = tail;
        }
        Ok(Av1Config { profile: profile_level >> 5, level: profile_level & 0x1f, width, height })
    }
}

/// The first OBU of `data`: `(obu_type, payload, rest)`. Without `obu_has_size_field` the OBU runs to the end.
pub(crate) fn obu(data: &[u8]) -> Result<(u8, &[u8], &[u8]), Error> {
    let (&header, mut rest) = data.split_first().ok_or_else(|| malformed("empty OBU"))?;
    if header & 0x80 != 0 {
        return Err(malformed("OBU forbidden bit set"));
    }
    let kind = (header >> 3) & 0x0f;
    if header & 0x04 != 0 {
        rest = rest.get(1..).ok_or_else(|| malformed("OBU extension header past the end"))?;
    }
    if header & 0x02 == 0 {
        return Ok((kind, rest, &[]));
    }
    let mut size: u64 = 0;
    let mut i = 0;
    loop {
        let &b = rest.get(i).ok_or_else(|| malformed("OBU size past the end"))?;
        size |= u64::from(b & 0x7f) << (7 * i);
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i == 8 {
            return Err(malformed("OBU size longer than 8 bytes"));
        }
    }
    let rest = &rest[i..];
    let size = usize::try_from(size).ok().filter(|&s| s <= rest.len()).ok_or_else(|| malformed("OBU past the end"))?;
    Ok((kind, &rest[..size], &rest[size..]))
}

/// `(max_frame_width, max_frame_height)` of a sequence header OBU payload (AV1 spec 5.5.1).
fn sequence_header_size(payload: &[u8]) -> Result<(u32, u32), Error> {
    let mut b = Bits::new(payload, "AV1 sequence header");
    b.skip(4)?; // seq_profile, still_picture
    if b.bit()? {
        // reduced_still_picture_header: one seq_level_idx
        b.skip(5)?;
    } else {
        let mut buffer_delay_bits = 0;
        let timing_info = b.bit()?;
        let mut decoder_model_info = false;
        if timing_info {
            b.skip(64)?; // num_units_in_display_tick, time_scale
            if b.bit()? {
                b.uvlc()?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info = b.bit()?;
            if decoder_model_info {
                buffer_delay_bits = b.bits(5)? as usize + 1;
                b.skip(32 + 5 + 5)?; // num_units_in_decoding_tick, two length fields
            }
        }
        let initial_display_delay = b.bit()?;
        let operating_points = b.bits(5)? + 1;
        for _ in 0..operating_points {
            b.skip(12)?; // operating_point_idc
            if b.bits(5)? > 7 {
                b.skip(1)?; // seq_tier
            }
            if decoder_model_info && b.bit()? {
                b.skip(2 * buffer_delay_bits + 1)?; // decoder/encoder buffer delay, low_delay_mode_flag
            }
            if initial_display_delay && b.bit()? {
                b.skip(4)?;
            }
        }
    }
    let width_bits = b.bits(4)? + 1;
    let height_bits = b.bits(4)? + 1;
    let width = b.bits(width_bits)? + 1;
    let height = b.bits(height_bits)? + 1;
    if width > 65535 || height > 65535 {
        return Err(malformed("frame size above 65535"));
    }
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `av1C` SVT-AV1 1.4 wrote for 320x180 Main.
    const AV1C_320X180: [u8; 17] =
        [0x81, 0x00, 0x0c, 0x00, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x04, 0x3c, 0xfe, 0xcc, 0x02, 0xf8, 0x00, 0x40];

    #[test]
    fn parses_svt_av1() {
        let c = Av1Config::parse(&AV1C_320X180).expect("av1C");
        assert_eq!((c.profile, c.level, c.width, c.height), (0, 0, 320, 180));
        assert_eq!(Av1Config::parse(&AV1C_320X180[..4]).map(|c| c.width), Ok(0), "no configOBUs");
    }

    #[test]
    fn every_truncation_is_an_error() {
        for len in (0..4).chain(5..AV1C_320X180.len()) {
            assert!(Av1Config::parse(&AV1C_320X180[..len]).is_err(), "cut at {len}");
        }
        assert!(obu(&[0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert_eq!(obu(&[0x12, 0x00, 0xaa]).map(|(k, p, r)| (k, p.len(), r.len())), Ok((2, 0, 1)));
    }
}
