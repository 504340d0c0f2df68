//! Opus: the identification header (`OpusHead`, RFC 7845 5.1) an Enhanced RTMP Opus sequence start carries, and
//! packet durations from the TOC byte (RFC 6716 3.1).

use crate::error::Error;

/// What the packager needs from an `OpusHead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channel count.
    pub channels: u16,
    /// Samples (at 48 kHz) to discard from the decoder's output at the start.
    pub pre_skip: u16,
    /// The encoder's input sample rate, informational (Opus always decodes at 48 kHz); 0 when unknown.
    pub input_sample_rate: u32,
}

fn malformed(what: &str) -> Error {
    Error::MalformedFlv(format!("Opus: {what}"))
}

/// Opus timestamps and durations are always at 48 kHz (RFC 7845 4).
pub const OPUS_RATE: u32 = 48000;

impl OpusHead {
    /// Parses an `OpusHead`. An empty one means stereo without pre-skip, as Enhanced RTMP allows. Only channel
    /// mapping family 0 (mono or stereo) is accepted, since that is what the CMAF writer describes.
    pub fn parse(head: &[u8]) -> Result<OpusHead, Error> {
        if head.is_empty() {
            return Ok(OpusHead { channels: 2, pre_skip: 0, input_sample_rate: 0 });
        }
        let [b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', version, channels, s0, s1, r0, r1, r2, r3, _g0, _g1, family, ..] =
            *head
        else {
            return Err(malformed("not a 19-byte OpusHead"));
        };
        if version >> 4 != 0 {
            return Err(malformed(&format!("unsupported OpusHead version {version}")));
        }
        if family != 0 || !(1..=2).contains(&channels) {
            return Err(malformed(&format!(
                "unsupported: channel mapping family {family} with {channels} channels (only mono or stereo)"
            )));
        }
        Ok(OpusHead {
            channels: channels.into(),
            pre_skip: u16::from_le_bytes([s0, s1]),
            input_sample_rate: u32::from_le_bytes([r0, r1, r2, r3]),
        })
    }
}

/// The duration of an Opus packet in 48 kHz samples: frame size (from the TOC's config) times frame count.
pub fn packet_duration(packet: &[u8]) -> Result<u32, Error> {
    let (&toc, rest) = packet.split_first().ok_or_else(|| malformed("empty packet"))?;
    let config = toc >> 3;
    // 2.5, 5, 10, 20, 40, 60 ms at 48 kHz.
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let &count = rest.first().ok_or_else(|| malformed("code 3 packet without a frame count"))?;
            u32::from(count & 0x3f)
        }
    };
    let duration = frame * frames;
    // RFC 6716 3.2.5: a packet holds at least one frame and at most 120 ms.
    if frames == 0 || duration > 5760 {
        return Err(malformed(&format!("{frames} frames of {frame} samples in one packet")));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let head = [b"OpusHead".as_slice(), &[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]].concat();
        assert_eq!(OpusHead::parse(&head), Ok(OpusHead { channels: 2, pre_skip: 312, input_sample_rate: 48000 }));
        assert_eq!(OpusHead::parse(&[]).map(|h| h.channels), Ok(2));
        for len in 1..head.len() {
            assert!(OpusHead::parse(&head[..len]).is_err(), "cut at {len}");
        }
        let mut six = head.clone();
        six[9] = 6;
        six[18] = 1;
        assert!(OpusHead::parse(&six).is_err());
        assert!(OpusHead::parse(b"OpusTags\x01\x02\0\0\0\0\0\0\0\0\0").is_err());
    }

    #[test]
    fn durations() {
        // CELT 20 ms, one frame (what libopus sends by default).
        assert_eq!(packet_duration(&[0xfc, 0xff]), Ok(960));
        // SILK 60 ms; two CELT 10 ms frames; code 3 with three 2.5 ms frames.
        assert_eq!(packet_duration(&[0x18]), Ok(2880));
        assert_eq!(packet_duration(&[0xf1]), Ok(960));
        assert_eq!(packet_duration(&[0x83, 0x03]), Ok(360));
        // Hybrid 10 ms.
        assert_eq!(packet_duration(&[0x60]), Ok(480));
        assert!(packet_duration(&[]).is_err());
        assert!(packet_duration(&[0x83]).is_err());
        assert!(packet_duration(&[0x83, 0x00]).is_err());
        assert!(packet_duration(&[0x1b, 0x03]).is_err(), "three 60 ms frames exceed 120 ms");
    }
}
