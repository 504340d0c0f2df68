//! The crate's one error type.

use crate::position::Position;

/// Everything that can go wrong in the data plane. Each variant says what the caller did or what the data was;
/// the HTTP layer maps them to status codes in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A stream id that is empty, too long or has characters outside `[A-Za-z0-9_-]` (and one `/`).
    #[error("invalid stream id: {0}")]
    InvalidStreamId(&'static str),
    /// A delivery directive (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) that breaks the LL-HLS rules.
    #[error("bad playlist request: {0}")]
    BadRequest(&'static str),
    /// No such stream.
    #[error("unknown stream")]
    UnknownStream,
    /// The stream limit of the options is reached.
    #[error("too many streams (limit {0})")]
    TooManyStreams(usize),
    /// The stream has ended; no more parts are accepted.
    #[error("stream has ended")]
    StreamEnded,
    /// A fragment arrived before any init segment.
    #[error("fragment before init segment")]
    NoInit,
    /// A part or init segment larger than the options allow.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// "part" or "init segment".
        what: &'static str,
        /// The size that was offered.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The bytes are not fragmented MP4 at all (wrong first box).
    #[error("not fragmented MP4: {0}")]
    NotFmp4(String),
    /// The bytes look like MP4 but are malformed.
    #[error("malformed MP4: {0}")]
    Malformed(String),
    /// An FLV tag of an RTMP publish that is malformed or of a codec that is not taken.
    #[error("bad FLV: {0}")]
    MalformedFlv(String),
    /// Options that cannot work together.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A blocking request was not satisfied before its deadline.
    #[error("timed out waiting for {0}")]
    Timeout(Position),
    /// No new streams: the server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The position is outside the retained window, or beyond what is hinted.
    #[error("not found")]
    NotFound,
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
