//! chunk cache (in progress)
/// Placeholder.
pub struct ChunkCache;
