//! manifest (in progress)
/// Placeholder.
pub struct M3u8Manifest;
