//! Ingest sources that are not HTTP, one file each (HTTP ingest lives in `crate::http`): [`rtmp`].

pub mod rtmp;
pub mod standin;
