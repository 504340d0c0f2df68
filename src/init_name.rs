//! The name of an init segment in playlists and URLs: `init-{16 hex digits}.mp4`, named by its bytes.
//!
//! # Why a content hash
//!
//! Parts and segments are `immutable` because their names (`p{msn}.{part}.mp4`, `s{msn}.mp4`) never repeat for a
//! stream id (a stream re-created under the same id continues its MSNs). An init named `init.mp4` could not be:
//! the next stream under the same id, or the same stream after a server restart, starts at `init.mp4` again with
//! other bytes. Naming the init by a hash of its bytes makes the name and the bytes one thing: the same URI always
//! means the same bytes, across a stream re-created under its id, a server restart and every origin behind a CDN,
//! with no state to keep or persist; an encoder that restarts with other media parameters gets a new name by
//! itself, and one that comes back with the same init keeps its name, so players and caches keep what they have.
//! So a cache may keep an init for a year, like a part. (A generation counter would also make names unique,
//! but only while the server remembers it: a restart would reuse them.)
//!
//! # Why SHA-256, and why 64 bits of it
//!
//! The name must come out the same on every build, Rust version and machine, so it is not std's `DefaultHasher`
//! (SipHash with keys it may change). It is not FNV or xxHash either: those are stable but not second-preimage
//! resistant, and whoever can publish to a stream id could then craft an init with the name of the init a later,
//! legitimate publisher of that id will send, and have caches serve the crafted bytes under that name for a year.
//! With SHA-256 that takes about 2^64 hash evaluations for the 64 bits kept.
//!
//! 64 bits are enough because a name only has to be unique among the inits of one stream id: the id is in the URL,
//! and a lookup searches one stream's inits. By the birthday bound, a million different inits ever sent under one
//! id collide with probability about 10^12 / 2^65 ≈ 3 × 10^-8. A publisher who crafts two colliding inits
//! (about 2^32 work) only confuses viewers of a stream it publishes itself. 16 hex digits keep the URI short.
//!
//! The name is computed once, when a stream's init changes ([`crate::playlists::Stream::set_init`]), never
//! per render or per request.

use std::fmt;

use sha2::{Digest, Sha256};

const PREFIX: &str = "init-";
const SUFFIX: &str = ".mp4";
/// Hex digits in a name: 64 bits.
const DIGITS: usize = 16;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// The name of an init segment: `init-{16 lowercase hex digits}.mp4`, the digits being the first 64 bits of the
/// SHA-256 of its bytes. See the [module docs](self) for why.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InitName(u64);

impl InitName {
    /// The name of an init segment of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        Self(u64::from_be_bytes(first))
    }

    /// Parses a file name as the playlists write it: `init-` and exactly 16 lowercase hex digits, then `.mp4`.
    /// Any other spelling (upper case, fewer digits) is `None`, so that each init has one URL for caches to key on.
    pub fn parse(file: &str) -> Option<Self> {
        let digits = file.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
        if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        u64::from_str_radix(digits, 16).ok().map(Self)
    }

    /// The 64 bits the name carries.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// Appends the file name to `out`, without formatting machinery (playlists are rendered on the publish path).
    pub fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(PREFIX.as_bytes());
        out.extend_from_slice(&self.hex());
        out.extend_from_slice(SUFFIX.as_bytes());
    }

    fn hex(self) -> [u8; DIGITS] {
        let mut hex = [0; DIGITS];
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = HEX[(self.0 >> (60 - 4 * i) & 0xf) as usize];
        }
        hex
    }
}

impl fmt::Display for InitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{:016x}{SUFFIX}", self.0)
    }
}

impl fmt::Debug for InitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InitName({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_first_64_bits_of_the_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea 414140de5dae2223 b00361a396177a9c b410ff61f20015ad (FIPS 180-2, B.1):
        // fixed for every build, so a name a cache holds stays right across versions of this server.
        assert_eq!(InitName::of(b"abc").to_string(), "init-ba7816bf8f01cfea.mp4");
        // SHA-256 of nothing: e3b0c44298fc1c14...
        assert_eq!(InitName::of(b"").to_string(), "init-e3b0c44298fc1c14.mp4");
        assert_eq!(InitName::of(b"abc"), InitName::of(b"abc"));
        assert_ne!(InitName::of(b"abc"), InitName::of(b"abd"));
    }

    #[test]
    fn rendered_and_displayed_alike_and_parsed_back() {
        for bytes in [&b"abc"[..], b"", b"\x00\x01"] {
            let name = InitName::of(bytes);
            let mut out = Vec::new();
            name.put(&mut out);
            assert_eq!(out, name.to_string().as_bytes());
            assert_eq!(InitName::parse(&name.to_string()), Some(name));
        }
        assert_eq!(InitName::parse("init-0000000000000001.mp4").map(InitName::bits), Some(1));
        assert_eq!(InitName(1).to_string(), "init-0000000000000001.mp4");
    }

    #[test]
    fn only_the_one_spelling_parses() {
        for bad in [
            "init.mp4",
            "init1.mp4",
            "init-.mp4",
            "init-ba7816bf8f01cfe.mp4",
            "init-ba7816bf8f01cfea0.mp4",
            "init-BA7816BF8F01CFEA.mp4",
            "init-ba7816bf8f01cfeg.mp4",
            "init-+a7816bf8f01cfea.mp4",
            "init-ba7816bf8f01cfea.m4s",
            "init_ba7816bf8f01cfea.mp4",
        ] {
            assert_eq!(InitName::parse(bad), None, "{bad}");
        }
    }
}
