//! FLV VIDEODATA and AUDIODATA bodies (the payloads of RTMP messages 9 and 8), legacy and Enhanced RTMP, parsed
//! into typed values whose payloads are slices of the message (never copied).
//!
//! Enhanced RTMP (veovera/enhanced-rtmp, v1 and v2): the top bit of a video tag (`IsExHeader`) or sound format 9
//! of an audio tag switches to a FourCC codec and a packet type; ModEx prefixes are skipped (the only one defined,
//! a nanosecond timestamp offset, is below the millisecond clock used here); multitrack messages are refused.

use bytes::Bytes;

use crate::error::Error;

/// A video codec the packager can describe in CMAF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 (legacy CodecID 7, or FourCC `avc1`).
    Avc,
    /// HEVC (FourCC `hvc1`, or the legacy CodecID 12 some Chinese encoders and servers use).
    Hevc,
    /// AV1 (FourCC `av01`).
    Av1,
}

/// An audio codec the packager can describe in CMAF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC (legacy SoundFormat 10, or FourCC `mp4a`).
    Aac,
    /// Opus (FourCC `Opus`).
    Opus,
}

/// Why a message carries nothing for the packager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// A video info/command frame (FrameType 5).
    Command,
    /// Enhanced RTMP `Metadata` (HDR colour information and the like, AMF-encoded).
    Metadata,
    /// Enhanced RTMP `MPEG2TSSequenceStart` (an MPEG-2 TS descriptor, not needed for CMAF).
    Mpeg2TsSequenceStart,
    /// Enhanced RTMP audio `MultichannelConfig`: the configuration record is what the writer describes.
    MultichannelConfig,
}

/// One parsed RTMP video message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Video {
    /// A sequence header / sequence start: the decoder configuration record (`avcC`, `hvcC` or `av1C` body).
    Config {
        /// The codec.
        codec: VideoCodec,
        /// The record, a slice of the message.
        record: Bytes,
    },
    /// One coded frame (an access unit / temporal unit).
    Frame {
        /// The codec.
        codec: VideoCodec,
        /// FrameType 1 (or 4, generated key frame): a sync sample.
        keyframe: bool,
        /// Presentation minus decode time, in milliseconds (signed 24 bits on the wire).
        composition_ms: i32,
        /// Length-prefixed NAL units (AVC, HEVC) or OBUs (AV1), a slice of the message.
        data: Bytes,
    },
    /// End of sequence.
    End {
        /// The codec.
        codec: VideoCodec,
    },
    /// Nothing to package.
    Ignored(Ignored),
}

/// One parsed RTMP audio message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audio {
    /// A sequence header / sequence start: AudioSpecificConfig (AAC) or `OpusHead` (Opus, possibly empty).
    Config {
        /// The codec.
        codec: AudioCodec,
        /// The record, a slice of the message.
        record: Bytes,
    },
    /// One coded frame (AAC raw data block, or one Opus packet).
    Frame {
        /// The codec.
        codec: AudioCodec,
        /// The frame, a slice of the message.
        data: Bytes,
    },
    /// End of sequence (Enhanced RTMP).
    End {
        /// The codec.
        codec: AudioCodec,
    },
    /// Nothing to package.
    Ignored(Ignored),
}

fn malformed(what: String) -> Error {
    Error::MalformedFlv(what)
}

/// The legacy video CodecIDs, for error messages.
fn legacy_video_codec(id: u8) -> &'static str {
    match id {
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "On2 VP6",
        5 => "On2 VP6 with alpha",
        6 => "Screen video v2",
        _ => "unknown",
    }
}

/// The legacy SoundFormats, for error messages.
fn legacy_sound_format(id: u8) -> &'static str {
    match id {
        0 | 3 => "linear PCM",
        1 => "ADPCM",
        2 | 14 => "MP3",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        11 => "Speex",
        15 => "device-specific",
        _ => "reserved",
    }
}

fn fourcc_name(f: [u8; 4]) -> String {
    f.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '?' }).collect()
}

/// A signed 24-bit big-endian integer.
fn si24(b: [u8; 3]) -> i32 {
    (i32::from_be_bytes([b[0], b[1], b[2], 0])) >> 8
}

/// Skips the ModEx prefixes of an Enhanced RTMP header: returns the real packet type and the offset after the
/// prefixes. `first` is the packet type in the first byte; `at` the offset of the byte after it.
fn skip_mod_ex(tag: &[u8], first: u8, at: usize, mod_ex: u8, what: &str) -> Result<(u8, usize), Error> {
    let (mut packet_type, mut at) = (first, at);
    while packet_type == mod_ex {
        let &size = tag.get(at).ok_or_else(|| malformed(format!("{what}: ModEx size past the end")))?;
        at += 1;
        let mut size = usize::from(size) + 1;
        if size == 256 {
            let two = tag.get(at..at + 2).ok_or_else(|| malformed(format!("{what}: ModEx size past the end")))?;
            size = usize::from(u16::from_be_bytes([two[0], two[1]])) + 1;
            at += 2;
        }
        at += size;
        let &next = tag.get(at).ok_or_else(|| malformed(format!("{what}: ModEx data past the end")))?;
        // High nibble: the ModEx type (0, TimestampOffsetNano, is the only one); low nibble: the next packet type.
        packet_type = next & 0x0f;
        at += 1;
    }
    Ok((packet_type, at))
}

impl Video {
    /// Parses a VIDEODATA body.
    pub fn parse(tag: Bytes) -> Result<Video, Error> {
        let &first = tag.first().ok_or_else(|| malformed("empty video message".into()))?;
        if first & 0x80 != 0 {
            return Self::parse_enhanced(tag, first);
        }
        let frame_type = first >> 4;
        let codec_id = first & 0x0f;
        if frame_type == 5 {
            return Ok(Video::Ignored(Ignored::Command));
        }
        let codec = match codec_id {
            7 => VideoCodec::Avc,
            12 => VideoCodec::Hevc,
            other => {
                return Err(malformed(format!(
                    "unsupported video codec id {other} ({}); only H.264, or Enhanced RTMP HEVC/AV1",
                    legacy_video_codec(other)
                )))
            }
        };
        let [_, packet_type, c0, c1, c2, ..] = tag[..] else {
            return Err(malformed(format!("video message of {} bytes, shorter than its 5-byte header", tag.len())));
        };
        let composition_ms = si24([c0, c1, c2]);
        match packet_type {
            0 => Ok(Video::Config { codec, record: tag.slice(5..) }),
            1 => Ok(Video::Frame { codec, keyframe: is_key(frame_type)?, composition_ms, data: tag.slice(5..) }),
            2 => Ok(Video::End { codec }),
            other => Err(malformed(format!("unknown AVCPacketType {other}"))),
        }
    }

    fn parse_enhanced(tag: Bytes, first: u8) -> Result<Video, Error> {
        let frame_type = (first >> 4) & 0x07;
        let (packet_type, mut at) = skip_mod_ex(&tag, first & 0x0f, 1, 7, "video")?;
        if frame_type == 5 && packet_type != 4 {
            // A command frame: one VideoCommand byte, no FourCC, no body.
            return Ok(Video::Ignored(Ignored::Command));
        }
        if packet_type == 6 {
            return Err(malformed("unsupported: Enhanced RTMP multitrack video".into()));
        }
        let fourcc: [u8; 4] = tag
            .get(at..at + 4)
            .and_then(|f| f.try_into().ok())
            .ok_or_else(|| malformed("enhanced video message without its FourCC".into()))?;
        at += 4;
        let codec = match &fourcc {
            b"avc1" => VideoCodec::Avc,
            b"hvc1" => VideoCodec::Hevc,
            b"av01" => VideoCodec::Av1,
            b"vp09" | b"vp08" | b"vvc1" => {
                return Err(malformed(format!("unsupported video codec '{}'", fourcc_name(fourcc))))
            }
            _ => return Err(malformed(format!("unknown video FourCC '{}'", fourcc_name(fourcc)))),
        };
        match packet_type {
            0 => Ok(Video::Config { codec, record: tag.slice(at..) }),
            1 | 3 => {
                let keyframe = is_key(frame_type)?;
                // Only AVC and HEVC carry a composition time in CodedFrames; CodedFramesX means 0.
                let composition_ms = if packet_type == 1 && codec != VideoCodec::Av1 {
                    let c = tag
                        .get(at..at + 3)
                        .ok_or_else(|| malformed("CodedFrames without its composition time".into()))?;
                    at += 3;
                    si24([c[0], c[1], c[2]])
                } else {
                    0
                };
                Ok(Video::Frame { codec, keyframe, composition_ms, data: tag.slice(at..) })
            }
            2 => Ok(Video::End { codec }),
            4 => Ok(Video::Ignored(Ignored::Metadata)),
            5 => Ok(Video::Ignored(Ignored::Mpeg2TsSequenceStart)),
            other => Err(malformed(format!("unknown VideoPacketType {other}"))),
        }
    }
}

/// Whether a frame of this FrameType is a sync sample; types other than key/inter frames carry no decodable
/// picture for CMAF.
fn is_key(frame_type: u8) -> Result<bool, Error> {
    match frame_type {
        1 | 4 => Ok(true),
        2 | 3 => Ok(false),
        other => Err(malformed(format!("video FrameType {other} on a coded frame"))),
    }
}

impl Audio {
    /// Parses an AUDIODATA body.
    pub fn parse(tag: Bytes) -> Result<Audio, Error> {
        let &first = tag.first().ok_or_else(|| malformed("empty audio message".into()))?;
        match first >> 4 {
            10 => {
                let &packet_type =
                    tag.get(1).ok_or_else(|| malformed("AAC message without its AACPacketType".into()))?;
                match packet_type {
                    0 => Ok(Audio::Config { codec: AudioCodec::Aac, record: tag.slice(2..) }),
                    1 => Ok(Audio::Frame { codec: AudioCodec::Aac, data: tag.slice(2..) }),
                    other => Err(malformed(format!("unknown AACPacketType {other}"))),
                }
            }
            9 => Self::parse_enhanced(tag, first),
            other => Err(malformed(format!(
                "unsupported sound format {other} ({}); only AAC, or Enhanced RTMP Opus/AAC",
                legacy_sound_format(other)
            ))),
        }
    }

    fn parse_enhanced(tag: Bytes, first: u8) -> Result<Audio, Error> {
        let (packet_type, mut at) = skip_mod_ex(&tag, first & 0x0f, 1, 7, "audio")?;
        if packet_type == 5 {
            return Err(malformed("unsupported: Enhanced RTMP multitrack audio".into()));
        }
        let fourcc: [u8; 4] = tag
            .get(at..at + 4)
            .and_then(|f| f.try_into().ok())
            .ok_or_else(|| malformed("enhanced audio message without its FourCC".into()))?;
        at += 4;
        let codec = match &fourcc {
            b"mp4a" => AudioCodec::Aac,
            b"Opus" => AudioCodec::Opus,
            b"ac-3" | b"ec-3" | b".mp3" | b"fLaC" => {
                return Err(malformed(format!("unsupported audio codec '{}'", fourcc_name(fourcc))))
            }
            _ => return Err(malformed(format!("unknown audio FourCC '{}'", fourcc_name(fourcc)))),
        };
        match packet_type {
            0 => Ok(Audio::Config { codec, record: tag.slice(at..) }),
            1 => Ok(Audio::Frame { codec, data: tag.slice(at..) }),
            2 => Ok(Audio::End { codec }),
            4 => Ok(Audio::Ignored(Ignored::MultichannelConfig)),
            other => Err(malformed(format!("unknown AudioPacketType {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(bytes: &[u8]) -> Result<Video, Error> {
        Video::parse(Bytes::copy_from_slice(bytes))
    }

    fn audio(bytes: &[u8]) -> Result<Audio, Error> {
        Audio::parse(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn legacy_avc() {
        let tag = Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1, 2, 3]);
        let Ok(Video::Config { codec: VideoCodec::Avc, record }) = Video::parse(tag.clone()) else { panic!() };
        assert_eq!(&record[..], &[1, 2, 3]);
        assert_eq!(record.as_ptr(), tag[5..].as_ptr(), "a slice of the message, not a copy");
        assert_eq!(
            video(&[0x27, 0x01, 0xff, 0xff, 0xd8, 9]),
            Ok(Video::Frame {
                codec: VideoCodec::Avc,
                keyframe: false,
                composition_ms: -40,
                data: Bytes::from_static(&[9])
            })
        );
        assert!(matches!(
            video(&[0x17, 0x01, 0x00, 0x00, 0x50]),
            Ok(Video::Frame { keyframe: true, composition_ms: 80, .. })
        ));
        assert_eq!(video(&[0x17, 0x02, 0, 0, 0]), Ok(Video::End { codec: VideoCodec::Avc }));
        assert_eq!(video(&[0x57, 0x00]), Ok(Video::Ignored(Ignored::Command)));
        assert!(matches!(video(&[0x1c, 0x01, 0, 0, 0, 1]), Ok(Video::Frame { codec: VideoCodec::Hevc, .. })));
    }

    #[test]
    fn legacy_errors() {
        for bad in
            [&[][..], &[0x17], &[0x17, 0x01, 0, 0], &[0x17, 0x03, 0, 0, 0], &[0x12, 0, 0, 0, 0], &[0x67, 1, 0, 0, 0]]
        {
            assert!(matches!(video(bad), Err(Error::MalformedFlv(_))), "{bad:02x?}");
        }
        let Err(Error::MalformedFlv(m)) = video(&[0x22, 1, 2, 3, 4]) else { panic!() };
        assert!(m.contains("Sorenson H.263"), "{m}");
    }

    #[test]
    fn enhanced_video() {
        // SequenceStart hvc1, CodedFrames with cts 33, CodedFramesX, SequenceEnd.
        assert!(
            matches!(video(b"\x90hvc1\x01\x02"), Ok(Video::Config { codec: VideoCodec::Hevc, record }) if record[..] == [1, 2])
        );
        assert!(matches!(
            video(b"\x91hvc1\x00\x00\x21\xaa"),
            Ok(Video::Frame { codec: VideoCodec::Hevc, keyframe: true, composition_ms: 33, data }) if data[..] == [0xaa]
        ));
        assert!(matches!(video(b"\xa3hvc1\xaa"), Ok(Video::Frame { keyframe: false, composition_ms: 0, .. })));
        // AV1 CodedFrames has no composition time.
        assert!(
            matches!(video(b"\x91av01\x12\x00"), Ok(Video::Frame { codec: VideoCodec::Av1, data, .. }) if data.len() == 2)
        );
        assert_eq!(video(b"\x92avc1"), Ok(Video::End { codec: VideoCodec::Avc }));
        assert_eq!(video(b"\x94hvc1\x02"), Ok(Video::Ignored(Ignored::Metadata)));
        assert_eq!(video(b"\x95av01"), Ok(Video::Ignored(Ignored::Mpeg2TsSequenceStart)));
        assert_eq!(video(b"\xd1\x01"), Ok(Video::Ignored(Ignored::Command)));
        // ModEx (TimestampOffsetNano, 3 bytes) then CodedFramesX.
        assert!(
            matches!(video(b"\x97\x02\x00\x01\x02\x03hvc1\xbb"), Ok(Video::Frame { data, .. }) if data[..] == [0xbb])
        );
        // A 256+-byte ModEx payload uses the 16-bit size.
        let mut long = vec![0x97, 0xff, 0x01, 0x2b];
        long.extend(std::iter::repeat_n(0u8, 300));
        long.extend_from_slice(b"\x03av01\xcc");
        assert!(matches!(video(&long), Ok(Video::Frame { data, .. }) if data[..] == [0xcc]));
    }

    #[test]
    fn enhanced_video_errors() {
        let cases: [(&[u8], &str); 8] = [
            (b"\x96\x00hvc1", "multitrack"),
            (b"\x90vp09", "unsupported video codec 'vp09'"),
            (b"\x90xyz\x01", "unknown video FourCC 'xyz?'"),
            (b"\x90hvc", "FourCC"),
            (b"\x91hvc1\x00\x00", "composition time"),
            (b"\x98hvc1", "VideoPacketType 8"),
            (b"\x97\x02\x00\x01", "ModEx data"),
            (b"\xf1hvc1\x00\x00\x00", "FrameType 7"),
        ];
        for (bad, want) in cases {
            let Err(Error::MalformedFlv(m)) = video(bad) else { panic!("{bad:02x?} accepted") };
            assert!(m.contains(want), "{bad:02x?}: {m}");
        }
    }

    #[test]
    fn audio_tags() {
        assert!(
            matches!(audio(&[0xaf, 0x00, 0x11, 0x90]), Ok(Audio::Config { codec: AudioCodec::Aac, record }) if record[..] == [0x11, 0x90])
        );
        assert!(
            matches!(audio(&[0xaf, 0x01, 0x21]), Ok(Audio::Frame { codec: AudioCodec::Aac, data }) if data[..] == [0x21])
        );
        assert!(
            matches!(audio(b"\x90Opus"), Ok(Audio::Config { codec: AudioCodec::Opus, record }) if record.is_empty())
        );
        assert!(
            matches!(audio(b"\x91Opus\xfc\x01"), Ok(Audio::Frame { codec: AudioCodec::Opus, data }) if data.len() == 2)
        );
        assert!(matches!(audio(b"\x91mp4a\x21"), Ok(Audio::Frame { codec: AudioCodec::Aac, .. })));
        assert_eq!(audio(b"\x92Opus"), Ok(Audio::End { codec: AudioCodec::Opus }));
        assert_eq!(audio(b"\x94Opus\x00\x02"), Ok(Audio::Ignored(Ignored::MultichannelConfig)));
        assert!(
            matches!(audio(b"\x97\x02\x00\x01\x02\x01Opus\xfc"), Ok(Audio::Frame { data, .. }) if data[..] == [0xfc])
        );
        let cases: [(&[u8], &str); 7] = [
            (&[0x2f, 0xff], "sound format 2 (MP3)"),
            (&[0xaf], "AACPacketType"),
            (&[0xaf, 0x02], "AACPacketType 2"),
            (b"\x95\x00Opus", "multitrack"),
            (b"\x90fLaC", "unsupported audio codec 'fLaC'"),
            (b"\x90Op", "FourCC"),
            (b"\x93Opus", "AudioPacketType 3"),
        ];
        for (bad, want) in cases {
            let Err(Error::MalformedFlv(m)) = audio(bad) else { panic!("{bad:02x?} accepted") };
            assert!(m.contains(want), "{bad:02x?}: {m}");
        }
        assert!(audio(&[]).is_err());
    }
}
