//! `playlists`: the data plane of a Low-Latency HLS origin.
//!
//! Encoders push fragmented MP4 (or RTMP, packaged into fMP4 here); every complete fragment becomes an LL-HLS part,
//! or several when it is longer than the part target. This crate holds what players
//! read, in shared per-stream rings that readers reach without going through the stream's writer:
//! the parts and segments, the rendered playlists (plain and gzip, full and delta), and the init segment. It also
//! renders the playlists and splits fMP4. It knows nothing of HTTP or actors; the `playlists-actors` crate builds
//! the server on top of it.
//!
//! # Layout
//!
//! - [`options`]: window sizes, target duration, limits; validated once.
//! - [`stream_id`]: [`StreamId`], a stream's name, parsed at the edge.
//! - [`position`]: [`Position`] `(msn, part)`, the stream's [`Edge`], and the delivery directives
//!   (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) parsed into a [`PlaylistRequest`] that decides ready / wait / reject.
//! - [`chunk_cache`]: [`ChunkCache`], per-stream rings of part slots (one lock per slot, generation-checked).
//! - [`m3u8_cache`]: [`M3u8Cache`], per-stream rings of rendered playlist versions and the init segments.
//! - [`init_name`]: [`InitName`], an init segment's URI (`init-{16 hex digits}.mp4`), named by its bytes so that
//!   it can be cached as immutably as a part.
//! - [`manifest`]: [`M3u8Manifest`], segment/part rollover and LL-HLS rendering as a pure function of its state.
//! - [`timeline`]: the segment boundaries a group's renditions share, so that one MSN covers the same media
//!   (and carries the same date) in every rendition.
//! - [`playlists`]: [`Playlists`], which ties the caches together, tracks live streams and owns each stream's
//!   position watch that wakes held requests.
//! - [`fmp4`]: an incremental, zero-copy ISO-BMFF splitter (init segments, fragments, durations, codecs, sample
//!   tables), the CMAF writer (inits from codec configuration, fragments from samples) and the cutter that turns
//!   a long fragment into parts of at most the part target.
//! - [`flv`]: RTMP's FLV audio/video tag bodies parsed (legacy and Enhanced RTMP) and packaged into the same
//!   CMAF items as the splitter's, through the fMP4 writer.
//! - [`error`]: the crate's one [`Error`].
//!
//! Writes to one stream are serialized by its owner (the stream actor in the server); reads never block on a
//! writer for longer than a `Bytes` clone, and unrelated streams never contend.

pub mod chunk_cache;
pub mod error;
pub mod flv;
pub mod fmp4;
pub mod init_name;
pub mod m3u8_cache;
pub mod manifest;
pub mod options;
pub mod playlists;
pub mod position;
pub mod stream_id;
pub mod timeline;

pub use chunk_cache::ChunkCache;
pub use error::{Error, Result};
pub use init_name::InitName;
pub use m3u8_cache::M3u8Cache;
pub use manifest::M3u8Manifest;
pub use options::Options;
pub use playlists::Playlists;
pub use position::{Decision, Edge, PlaylistRequest, Position, Skip, Want};
pub use stream_id::StreamId;
