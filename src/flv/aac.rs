//! AAC: the AudioSpecificConfig (ISO 14496-3 1.6.2.1) an AAC sequence header carries.

use super::bits::Bits;
use crate::error::Error;

/// What the packager needs from an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// `audioObjectType` (2 AAC-LC, 5 SBR, 29 PS, ...): what `mp4a.40.N` names.
    pub object_type: u8,
    /// The sampling frequency of the core coder in Hz: the track's timescale. (With SBR the decoder outputs twice
    /// that, but every frame still counts [`frame_length`](Self::frame_length) ticks of this rate.)
    pub sample_rate: u32,
    /// `channelConfiguration`, mapped to a channel count (7 means 7.1, so 8); 0 when a program config element
    /// defines them instead.
    pub channels: u16,
    /// Samples per frame and channel: 1024, or 960 when `frameLengthFlag` is set.
    pub frame_length: u32,
}

fn malformed(what: &str) -> Error {
    Error::MalformedFlv(format!("AudioSpecificConfig: {what}"))
}

/// `samplingFrequencyIndex` 0..=12 (13 and 14 are reserved, 15 means an explicit 24-bit rate).
const RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

impl AudioSpecificConfig {
    /// Parses an AudioSpecificConfig.
    pub fn parse(asc: &[u8]) -> Result<AudioSpecificConfig, Error> {
        let mut b = Bits::new(asc, "AudioSpecificConfig");
        let mut object_type = object_type(&mut b)?;
        let sample_rate = sample_rate(&mut b)?;
        let channel_config = b.bits(4)?;
        // Explicit SBR/PS signalling: the extension rate follows, then the core object type.
        if object_type == 5 || object_type == 29 {
            sample_rate_index_only(&mut b)?;
            object_type = self::object_type(&mut b)?;
        }
        // GASpecificConfig starts with frameLengthFlag for the object types that use it.
        let frame_length = match object_type {
            0 => return Err(malformed("audioObjectType 0 (null)")),
            1..=4 | 6 | 7 | 17 | 19..=23 if b.bit()? => 960,
            _ => 1024,
        };
        let channels = match channel_config {
            0..=6 => channel_config as u16,
            7 => 8,
            11 => 7,
            12 | 14 => 8,
            13 => 24,
            other => return Err(malformed(&format!("reserved channelConfiguration {other}"))),
        };
        Ok(AudioSpecificConfig { object_type, sample_rate, channels, frame_length })
    }
}

fn object_type(b: &mut Bits<'_>) -> Result<u8, Error> {
    let t = b.bits(5)?;
    let t = if t == 31 { 32 + b.bits(6)? } else { t };
    // At most 32 + 63.
    Ok(t as u8)
}

fn sample_rate(b: &mut Bits<'_>) -> Result<u32, Error> {
    match b.bits(4)? {
        15 => match b.bits(24)? {
            0 => Err(malformed("explicit sampling frequency 0")),
            rate => Ok(rate),
        },
        i @ 0..=12 => Ok(RATES[i as usize]),
        i => Err(malformed(&format!("reserved samplingFrequencyIndex {i}"))),
    }
}

fn sample_rate_index_only(b: &mut Bits<'_>) -> Result<(), Error> {
    sample_rate(b).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ffmpeg_configs() {
        // tests/fixtures/h264_aac.flv: LC, 48 kHz, stereo, then the backward-compatible SBR sync extension.
        let c = AudioSpecificConfig::parse(&[0x11, 0x90, 0x56, 0xe5, 0x00]).expect("asc");
        assert_eq!(c, AudioSpecificConfig { object_type: 2, sample_rate: 48000, channels: 2, frame_length: 1024 });
        // tests/fixtures/h264_bframes.flv: LC, 44.1 kHz, mono.
        let c = AudioSpecificConfig::parse(&[0x12, 0x08]).expect("asc");
        assert_eq!((c.sample_rate, c.channels), (44100, 1));
    }

    #[test]
    fn variants() {
        // LC, 48 kHz, stereo, frameLengthFlag: 960-sample frames.
        assert_eq!(AudioSpecificConfig::parse(&[0x11, 0x94]).map(|c| c.frame_length), Ok(960));
        // HE-AAC explicit: SBR (5), 24 kHz core, stereo, extension 48 kHz, then LC.
        let c = AudioSpecificConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).expect("asc");
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 24000, 2));
        // Explicit 24-bit rate: LC, index 15, 40000 Hz, mono.
        let c = AudioSpecificConfig::parse(&[0x17, 0x80, 0x4e, 0x20, 0x08]).expect("asc");
        assert_eq!((c.sample_rate, c.channels), (40000, 1));
        // 7.1 (channelConfiguration 7).
        assert_eq!(AudioSpecificConfig::parse(&[0x11, 0xb8]).map(|c| c.channels), Ok(8));
    }

    #[test]
    fn malformed_configs() {
        for bad in [&[][..], &[0x11], &[0x17, 0x80], &[0x16, 0x90], &[0x01, 0x90], &[0x11, 0xf8]] {
            assert!(AudioSpecificConfig::parse(bad).is_err(), "{bad:02x?}");
        }
    }
}
