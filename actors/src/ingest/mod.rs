//! Ingest sources that are not HTTP, one file each (HTTP ingest lives in `crate::http`): [`rtmp`].

mod chunks;
#[doc(hidden)] // for the fuzz targets in fuzz/ only
pub use chunks::Guard;
pub mod rtmp;
