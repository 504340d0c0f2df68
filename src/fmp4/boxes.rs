//! Zero-copy ISO-BMFF box headers, a child-box iterator and a bounds-checked field reader.
//!
//! Everything here borrows the caller's bytes. [`check`] follows the check-then-parse pattern: a header that is not
//! fully buffered yet is `Ok(None)`, cheap and expected; only bytes that can never form a valid header are errors.

use crate::error::Error;

/// A box type, the four bytes after the size.
pub type FourCc = [u8; 4];

/// A parsed box header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    /// The box type.
    pub kind: FourCc,
    /// Bytes taken by the header itself: 8, or 16 with a 64-bit `largesize`.
    pub header_len: usize,
    /// The whole box's size including the header; `None` for size 0, "extends to the end of the enclosing
    /// container (or file)".
    pub size: Option<u64>,
}

impl BoxHeader {
    /// Whether every byte of the type is printable ASCII, as in every registered box type. Random bytes fail
    /// this quickly, which is how a stream that is not MP4 at all is told apart from a damaged one.
    pub fn printable(&self) -> bool {
        printable(&self.kind)
    }

    /// The type as text, for error messages.
    pub fn name(&self) -> String {
        name(self.kind)
    }
}

/// Whether every byte of a box type is printable ASCII (see [`BoxHeader::printable`]).
pub fn printable(kind: &[u8]) -> bool {
    kind.iter().all(|b| (0x20..0x7f).contains(b))
}

/// A box type as text, with non-printable bytes escaped.
pub fn name(kind: FourCc) -> String {
    kind.iter().flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect()
}

/// Reads the box header at the start of `buf`.
///
/// `Ok(None)` when fewer bytes than the header needs are buffered. A declared size smaller than the header
/// (2..=7, or a `largesize` below 16) is [`Error::Malformed`]. The declared size is only reported, never trusted
/// for an allocation.
pub fn check(buf: &[u8]) -> Result<Option<BoxHeader>, Error> {
    let Some(head) = buf.get(..8) else { return Ok(None) };
    let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let kind = [head[4], head[5], head[6], head[7]];
    let (header_len, size) = match size32 {
        0 => (8, None),
        1 => {
            let Some(large) = buf.get(8..16) else { return Ok(None) };
            let mut b = [0u8; 8];
            b.copy_from_slice(large);
            let large = u64::from_be_bytes(b);
            if large < 16 {
                return Err(Error::Malformed(format!("box '{}' has largesize {large} < 16", name(kind))));
            }
            (16, Some(large))
        }
        2..=7 => return Err(Error::Malformed(format!("box '{}' has size {size32} < 8", name(kind)))),
        n => (8, Some(u64::from(n))),
    };
    Ok(Some(BoxHeader { kind, header_len, size }))
}

/// One child box inside a fully buffered parent.
#[derive(Debug, Clone, Copy)]
pub struct Child<'a> {
    /// The box type.
    pub kind: FourCc,
    /// Offset of the box's first header byte within the parent body handed to [`children`].
    pub offset: usize,
    /// Bytes taken by the header.
    pub header_len: usize,
    /// The body, after the header.
    pub body: &'a [u8],
}

/// Iterates the boxes laid end to end in `buf` (a fully buffered container body).
///
/// A child that declares more bytes than its parent holds yields [`Error::Malformed`] and ends the iteration;
/// size 0 means "to the end of the parent", as ISO 14496-12 allows.
pub fn children(buf: &[u8]) -> Children<'_> {
    Children { buf, pos: 0 }
}

/// Iterator returned by [`children`].
#[derive(Debug, Clone)]
pub struct Children<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Child<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..).filter(|r| !r.is_empty())?;
        let result = match check(rest) {
            Ok(Some(h)) => {
                let size = h.size.map_or(Ok(rest.len()), |s| usize::try_from(s).map_err(|_| ()));
                match size {
                    Ok(size) if size <= rest.len() => {
                        let child = Child {
                            kind: h.kind,
                            offset: self.pos,
                            header_len: h.header_len,
                            body: &rest[h.header_len..size],
                        };
                        self.pos += size;
                        return Some(Ok(child));
                    }
                    _ => Err(Error::Malformed(format!(
                        "box '{}' declares {} bytes but only {} remain in its parent",
                        h.name(),
                        h.size.unwrap_or(0),
                        rest.len()
                    ))),
                }
            }
            Ok(None) => Err(Error::Malformed(format!("{} stray bytes where a box header was expected", rest.len()))),
            Err(e) => Err(e),
        };
        self.pos = self.buf.len();
        Some(result)
    }
}

/// The body of the first child of type `kind`, if any.
pub fn find<'a>(buf: &'a [u8], kind: &FourCc) -> Result<Option<&'a [u8]>, Error> {
    for child in children(buf) {
        let child = child?;
        if &child.kind == kind {
            return Ok(Some(child.body));
        }
    }
    Ok(None)
}

/// A bounds-checked big-endian field reader over a box body. Running out of bytes is [`Error::Malformed`] naming
/// the box, never a panic.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf`, the body of a box called `what` (for error messages).
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| {
            Error::Malformed(format!("'{}' truncated: needs {n} more bytes, has {}", self.what, self.remaining()))
        })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), Error> {
        self.take(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> Result<u16, Error> {
        self.array().map(u16::from_be_bytes)
    }

    /// A big-endian u32.
    pub fn u32(&mut self) -> Result<u32, Error> {
        self.array().map(u32::from_be_bytes)
    }

    /// A big-endian u64.
    pub fn u64(&mut self) -> Result<u64, Error> {
        self.array().map(u64::from_be_bytes)
    }

    /// A full box's version byte and 24-bit flags.
    pub fn version_flags(&mut self) -> Result<(u8, u32), Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn partial_headers_need_more_bytes() {
        let full = boxed(b"moof", &[0; 4]);
        for n in 0..8 {
            assert_eq!(check(&full[..n]), Ok(None), "{n} bytes");
        }
        assert_eq!(check(&full).ok().flatten().map(|h| (h.kind, h.header_len, h.size)), Some((*b"moof", 8, Some(12))));
    }

    #[test]
    fn size_zero_means_to_the_end() {
        let h = check(b"\0\0\0\0mdatxyz").ok().flatten();
        assert_eq!(h.map(|h| h.size), Some(None));
        let kids: Vec<_> = children(b"\0\0\0\0mdatxyz").collect();
        assert_eq!(kids.len(), 1);
        assert!(matches!(&kids[0], Ok(c) if c.body == b"xyz"));
    }

    #[test]
    fn largesize() {
        let mut b = vec![0, 0, 0, 1];
        b.extend_from_slice(b"mdat");
        assert_eq!(check(&b), Ok(None), "largesize not buffered yet");
        b.extend_from_slice(&20u64.to_be_bytes());
        assert_eq!(check(&b[..15]), Ok(None));
        let h = check(&b).ok().flatten();
        assert_eq!(h.map(|h| (h.header_len, h.size)), Some((16, Some(20))));
        b.extend_from_slice(b"abcd");
        let kids: Vec<_> = children(&b).collect();
        assert!(matches!(&kids[..], [Ok(c)] if c.body == b"abcd" && c.header_len == 16));
    }

    #[test]
    fn sizes_below_the_header_are_malformed() {
        for size in 2u32..8 {
            let mut b = size.to_be_bytes().to_vec();
            b.extend_from_slice(b"free");
            assert!(matches!(check(&b), Err(Error::Malformed(_))), "size {size}");
        }
        let mut b = vec![0, 0, 0, 1];
        b.extend_from_slice(b"free");
        b.extend_from_slice(&15u64.to_be_bytes());
        assert!(matches!(check(&b), Err(Error::Malformed(_))));
    }

    #[test]
    fn huge_declared_size_is_reported_not_trusted() {
        let mut b = vec![0, 0, 0, 1];
        b.extend_from_slice(b"mdat");
        b.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(check(&b).ok().flatten().and_then(|h| h.size), Some(u64::MAX));
        let kids: Vec<_> = children(&b).collect();
        assert!(matches!(&kids[..], [Err(Error::Malformed(_))]));
    }

    #[test]
    fn truncated_children_are_malformed_and_stop() {
        let mut b = boxed(b"tfhd", &[0; 8]);
        b.extend_from_slice(&boxed(b"trun", &[0; 8])[..10]);
        let kids: Vec<_> = children(&b).collect();
        assert_eq!(kids.len(), 2);
        assert!(kids[0].is_ok());
        assert!(matches!(kids[1], Err(Error::Malformed(_))));
        // Fewer than 8 trailing bytes cannot even hold a header.
        let kids: Vec<_> = children(&[0, 0, 0]).collect();
        assert!(matches!(&kids[..], [Err(Error::Malformed(_))]));
    }

    #[test]
    fn printable_and_names() {
        let h = BoxHeader { kind: *b"mo\x00f", header_len: 8, size: Some(8) };
        assert!(!h.printable());
        assert_eq!(h.name(), "mo\\x00f");
        assert!(BoxHeader { kind: *b"ac-3", header_len: 8, size: None }.printable());
    }

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3], "test");
        assert_eq!(r.u16(), Ok(0x0102));
        assert!(matches!(r.u16(), Err(Error::Malformed(_))));
        assert_eq!(r.u8(), Ok(3));
        assert!(matches!(r.skip(usize::MAX), Err(Error::Malformed(_))));
        assert_eq!(r.remaining(), 0);
    }
}
