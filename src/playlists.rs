//! playlists (in progress)
/// Placeholder.
pub struct Playlists;
