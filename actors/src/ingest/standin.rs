//! A stand-in for the FLV packager (`playlists::flv::Packager`, written on another branch), with its announced
//! signature, so that the RTMP server builds and its protocol is tested before it lands. It goes when the real one
//! is merged: the RTMP code then names that instead.

use std::time::Duration;

use bytes::Bytes;
use playlists::fmp4::Item;

/// The encoder's onMetaData.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metadata {
    /// Picture width.
    pub width: Option<u32>,
    /// Picture height.
    pub height: Option<u32>,
    /// Frames per second.
    pub framerate: Option<f64>,
    /// Whether the stream has video.
    pub has_video: Option<bool>,
    /// Whether the stream has audio.
    pub has_audio: Option<bool>,
}

/// FLV tag bodies in, CMAF items out (this stand-in counts the tags and yields nothing).
pub struct Packager {
    tags: u64,
}

impl Packager {
    /// A packager whose fragments are at most `max_part` long.
    pub fn new(_max_part: Duration) -> Self {
        Self { tags: 0 }
    }

    /// The encoder's onMetaData.
    pub fn metadata(&mut self, _meta: &Metadata) {}

    /// One RTMP video message.
    pub fn video(&mut self, _timestamp_ms: u32, _tag: Bytes) -> Result<(), playlists::Error> {
        self.tags += 1;
        Ok(())
    }

    /// One RTMP audio message.
    pub fn audio(&mut self, _timestamp_ms: u32, _tag: Bytes) -> Result<(), playlists::Error> {
        self.tags += 1;
        Ok(())
    }

    /// The next ready item.
    pub fn next_item(&mut self) -> Option<Item> {
        None
    }

    /// End of the publish.
    pub fn flush(&mut self) {}
}
