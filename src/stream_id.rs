//! Stream names, parsed once at the edge.

use std::fmt;
use std::sync::Arc;

use crate::error::Error;

/// Longest name (or group, or rendition) accepted, in bytes.
pub const MAX_PART_LEN: usize = 64;

/// A stream's name: 1–64 characters of `[A-Za-z0-9_-]`, optionally `group/name` where `group` names the
/// multivariant presentation the stream is a rendition of. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(Arc<str>);

fn check_part(s: &str) -> Result<(), Error> {
    if s.is_empty() {
        return Err(Error::InvalidStreamId("empty name"));
    }
    if s.len() > MAX_PART_LEN {
        return Err(Error::InvalidStreamId("longer than 64 characters"));
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(Error::InvalidStreamId("only A-Z, a-z, 0-9, '_' and '-' are allowed"));
    }
    Ok(())
}

impl StreamId {
    /// Parses a name; `group/name` is accepted with exactly one `/`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.split_once('/') {
            None => check_part(s)?,
            Some((group, name)) => {
                check_part(group)?;
                check_part(name)?;
            }
        }
        Ok(Self(Arc::from(s)))
    }

    /// The whole id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The group of a `group/name` id.
    pub fn group(&self) -> Option<&str> {
        self.0.split_once('/').map(|(g, _)| g)
    }

    /// The last component: `name` of `group/name`, or the whole id.
    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or(&self.0, |(_, n)| n)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", &self.0)
    }
}

impl std::str::FromStr for StreamId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_and_groups() {
        assert_eq!(StreamId::parse("cam_1-a").unwrap().as_str(), "cam_1-a");
        let id = StreamId::parse("show/v720").unwrap();
        assert_eq!(id.group(), Some("show"));
        assert_eq!(id.name(), "v720");
        assert_eq!(StreamId::parse(&"a".repeat(64)).unwrap().name().len(), 64);
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "a b", "../x", "a/b/c", "/a", "a/", "é", "a.m3u8", &"a".repeat(65)] {
            assert!(StreamId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
