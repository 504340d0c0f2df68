//! RTMP ingest's media layer: FLV audio and video tag bodies in, CMAF init segments and fragments out.
//!
//! An RTMP encoder (OBS, ffmpeg, vMix, Larix, hardware) sends FLV AUDIODATA/VIDEODATA bodies as RTMP messages
//! with a millisecond timestamp. Bytes flow in layers: message → [`tag`] ([`Video`] / [`Audio`], payloads sliced,
//! never copied) → the codec records ([`avc`], [`hevc`], [`av1`], [`aac`], [`opus`]) → [`Packager`] (samples,
//! timing, fragment cuts) → [`crate::fmp4::writer`] → the same [`crate::fmp4::Item`]s the fMP4 splitter yields.
//!
//! # Layout
//! - [`tag`]: [`Video`], [`Audio`]: legacy FLV and Enhanced RTMP (FourCC) tag bodies.
//! - [`avc`], [`hevc`], [`av1`]: decoder configuration records and the picture size from their SPS / sequence
//!   header.
//! - [`aac`]: the AudioSpecificConfig. [`opus`]: `OpusHead` and packet durations.
//! - `packager`: [`Packager`], timing and fragment cuts; [`Stats`].
//! - `bits`: the bit reader those use (exp-Golomb, emulation prevention).
//! - [`file`]: [`read_file`], the tags of a stored FLV file.

mod bits;

pub mod aac;
pub mod av1;
pub mod avc;
pub mod file;
pub mod hevc;
pub mod opus;
mod packager;
pub mod tag;

pub use file::{read_file, FileHeader, FileTag};
pub use packager::{Packager, Stats, MAX_HELD_BYTES, MAX_HELD_SAMPLES};
pub use tag::{Audio, AudioCodec, Ignored, Video, VideoCodec};

/// What an encoder's `onMetaData` (`@setDataFrame`) says, as far as the packager uses it. The RTMP layer decodes
/// the AMF0 and fills what it finds; every field is optional because encoders differ in what they send.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metadata {
    /// `width`, in pixels: the fallback when a sequence header's size cannot be read.
    pub width: Option<u32>,
    /// `height`, in pixels.
    pub height: Option<u32>,
    /// `framerate` (or `videoframerate`), frames per second.
    pub framerate: Option<f64>,
    /// Whether the stream has video: `Some(true)` when `videocodecid` is present, `Some(false)` when the encoder
    /// says there is none (e.g. `videocodecid` absent while `audiocodecid` is present), `None` when unknown.
    pub has_video: Option<bool>,
    /// Whether the stream has audio, as for `has_video` with `audiocodecid`.
    pub has_audio: Option<bool>,
}
