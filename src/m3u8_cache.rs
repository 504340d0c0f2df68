//! m3u8 cache (in progress)
/// Placeholder.
pub struct M3u8Cache;
