//! Ingest sources that are not HTTP, one file each (HTTP ingest lives in `crate::http`): [`rtmp`].

mod chunks;
pub mod rtmp;
