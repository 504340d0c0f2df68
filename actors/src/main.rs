//! The `playlists` binary.
fn main() {}
