//! An incremental, zero-copy ISO-BMFF splitter for fragmented MP4 pushed by an encoder.
//!
//! Bytes flow in layers: received chunks → [`boxes`] (top-level box headers, check then parse) → [`Splitter`]
//! (groups boxes into items) → [`Init`] / [`Fragment`] (parsed for tracks, codecs and timing).
//!
//! - `ftyp` + `moov` become an [`Item::Init`]; the `moov` must carry `mvex` (a fragmented file).
//! - `styp`, `prft`, `emsg`, `sidx`, `free`, `skip` (or any other box) in front of a `moof` stay at the front of that
//!   fragment's bytes, and `moof` + `mdat` complete an [`Item::Fragment`].
//! - Every item's bytes are one `Bytes` split off the receive buffer, never copied, so the fragment handed to
//!   the part ring is the exact byte range the encoder sent. Concatenating the items gives back the input.
//!
//! The splitter only reads box headers until a box is complete, and a declared size above `max_box` is refused
//! as soon as its header is seen, before any of its bytes are buffered on purpose.
//!
//! # Layout
//! - [`boxes`]: box headers, child iteration, a bounds-checked field reader.
//! - [`init`]: [`Init`], [`Track`], [`TrackKind`]; codec strings (RFC 6381) from the sample entries.
//! - [`fragment`]: [`Fragment`], [`TrackRun`] and [`shift_decode_times`].
//! - [`writer`]: the other direction, [`write_init`] from [`CodecConfig`]s and [`write_fragment`] from
//!   [`Sample`]s (RTMP ingest, re-fragmenting).

use std::sync::Arc;

use bytes::BytesMut;

use crate::error::Error;

pub mod boxes;
pub mod fragment;
pub mod init;
pub mod writer;

pub use fragment::{shift_decode_times, Fragment, TrackRun};
pub use init::{Init, Track, TrackKind};
pub use writer::{write_fragment, write_init, CodecConfig, Sample, TrackConfig, TrackFragment};

/// One complete unit split off the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An init segment (`ftyp` + `moov`); later fragments are parsed against it.
    Init(Arc<Init>),
    /// A media fragment (`moof` + `mdat`, with any boxes that preceded the `moof`).
    Fragment(Fragment),
}

/// What the boxes buffered so far (but not yet emitted) are building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Building {
    /// Only boxes that may precede either kind of item (`styp`, `free`, …), or nothing.
    Prefix,
    /// `ftyp` seen, waiting for `moov`.
    Init,
    /// `moof` seen, waiting for `mdat`.
    Fragment,
}

/// The least a splitter's buffer is sized for, whatever the last item's size.
const MIN_BUFFER: usize = 4096;

/// Box types a fragmented MP4 stream may start with. Anything else first means the body is not fMP4 at all
/// (a plain MP4 starts with `ftyp` too, and is rejected later for its `moov` lacking `mvex`).
const FIRST_BOXES: [&[u8; 4]; 8] = [b"ftyp", b"styp", b"moof", b"free", b"skip", b"sidx", b"prft", b"emsg"];

/// Splits a byte stream of fragmented MP4 into init segments and fragments, incrementally.
///
/// Feed it with [`push`](Splitter::push) in any chunking and drain it with [`next_item`](Splitter::next_item)
/// until that returns `Ok(None)`.
#[derive(Debug)]
pub struct Splitter {
    buf: BytesMut,
    max_box: usize,
    init: Option<Arc<Init>>,
    /// Bytes at the front of `buf` that are whole boxes belonging to the item being built.
    scanned: usize,
    building: Building,
    /// Whether any box has been seen (the first one decides "is this fMP4 at all").
    started: bool,
    poisoned: Option<Error>,
}

impl Splitter {
    /// A splitter accepting top-level boxes, and items, of at most `max_box` bytes.
    pub fn new(max_box: usize) -> Self {
        Splitter {
            buf: BytesMut::new(),
            max_box,
            init: None,
            scanned: 0,
            building: Building::Prefix,
            started: false,
            poisoned: None,
        }
    }

    /// A splitter that parses fragments against an init received earlier (e.g. in another request).
    pub fn with_init(max_box: usize, init: Arc<Init>) -> Self {
        Splitter { init: Some(init), ..Splitter::new(max_box) }
    }

    /// Appends received bytes. After an error they are dropped, since nothing will read them.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.poisoned.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Bytes buffered that do not yet form a complete item; a body that ends with `pending() > 0` broke off
    /// mid-item. After an error the buffer is released, so this is 0.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The most recent init segment, if any.
    pub fn init(&self) -> Option<&Arc<Init>> {
        self.init.as_ref()
    }

    /// The next complete item, `Ok(None)` when more bytes are needed. After an error the splitter is poisoned
    /// and returns that error again.
    pub fn next_item(&mut self) -> Result<Option<Item>, Error> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let result = self.advance();
        if let Err(e) = &result {
            self.poisoned = Some(e.clone());
            self.buf = BytesMut::new();
        }
        result
    }

    fn advance(&mut self) -> Result<Option<Item>, Error> {
        loop {
            let rest = &self.buf[self.scanned..];
            // The type is judged before the size, so garbage is "not fMP4" whatever its first four bytes say.
            if let Some(kind) = rest.get(4..8) {
                let name = || boxes::name([kind[0], kind[1], kind[2], kind[3]]);
                if !boxes::printable(kind) {
                    return Err(Error::NotFmp4(format!("box type '{}' is not printable", name())));
                }
                if !self.started && !FIRST_BOXES.iter().any(|first| first[..] == *kind) {
                    return Err(Error::NotFmp4(format!("stream starts with box '{}'", name())));
                }
            }
            let Some(header) = boxes::check(rest)? else { return Ok(None) };
            self.started = true;
            let Some(size) = header.size else {
                return Err(Error::Malformed(format!(
                    "box '{}' has size 0 (to end of file), which a live stream cannot have",
                    header.name()
                )));
            };
            let what = match (&header.kind, self.building) {
                (b"ftyp" | b"moov", _) | (_, Building::Init) => "init segment",
                _ => "part",
            };
            // The item, not just the box, is bounded: that is what gets buffered.
            let item_size = u64::try_from(self.scanned).unwrap_or(u64::MAX).saturating_add(size);
            if item_size > self.max_box as u64 {
                return Err(Error::TooLarge {
                    what,
                    size: usize::try_from(item_size).unwrap_or(usize::MAX),
                    limit: self.max_box,
                });
            }
            // Order errors are reported as soon as the header shows them, before the body is buffered.
            match (&header.kind, self.building) {
                (b"moof", _) if self.init.is_none() && self.building != Building::Init => return Err(Error::NoInit),
                (b"moof", Building::Init) => return Err(Error::Malformed("moof after ftyp without moov".into())),
                (b"moof", Building::Fragment) => return Err(Error::Malformed("moof without mdat".into())),
                (b"mdat", Building::Prefix) => return Err(Error::Malformed("mdat without moof".into())),
                (b"mdat", Building::Init) => return Err(Error::Malformed("mdat inside the init segment".into())),
                (b"ftyp" | b"moov", Building::Fragment) => {
                    return Err(Error::Malformed(format!("'{}' between moof and mdat", header.name())))
                }
                (b"ftyp", Building::Init) => return Err(Error::Malformed("two ftyp boxes".into())),
                _ => {}
            }
            // `item_size <= max_box`, so this fits a usize.
            let end = self.scanned + size as usize;
            if self.buf.len() < end {
                return Ok(None);
            }
            match &header.kind {
                b"ftyp" => self.building = Building::Init,
                b"moof" => self.building = Building::Fragment,
                b"moov" => {
                    let bytes = self.take(end);
                    let init = Arc::new(Init::parse(bytes)?);
                    self.init = Some(Arc::clone(&init));
                    return Ok(Some(Item::Init(init)));
                }
                b"mdat" => {
                    let bytes = self.take(end);
                    let init = self.init.as_deref().ok_or(Error::NoInit)?;
                    return Ok(Some(Item::Fragment(Fragment::parse(bytes, init)?)));
                }
                _ => {}
            }
            self.scanned = end;
        }
    }

    fn take(&mut self, end: usize) -> bytes::Bytes {
        self.scanned = 0;
        self.building = Building::Prefix;
        let item = self.buf.split_to(end).freeze();
        // The item keeps its allocation for as long as the part is retained. Less than an item's worth left after
        // it (the usual case: the start of the next fragment, or nothing) moves to a buffer of its own, sized for
        // an item like this one: growing the shared remainder would make `BytesMut` allocate at least its original
        // capacity (64 KiB) for every next item, which each retained part would then pin. More than that stays in
        // place: it holds whole items that are split off without copying.
        let room = item.len().saturating_add(item.len() / 4).clamp(MIN_BUFFER, self.max_box.max(MIN_BUFFER));
        if self.buf.len() < room {
            let mut next = BytesMut::with_capacity(room);
            next.extend_from_slice(&self.buf);
            self.buf = next;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::fragment::tests::{fragment, Spec};
    use super::init::tests::{boxed, h264_aac_init};
    use super::*;

    fn stream() -> Vec<u8> {
        let mut s = h264_aac_init();
        s.extend_from_slice(&boxed(b"styp", b"msdhmsdh"));
        s.extend_from_slice(&fragment(&Spec::default()));
        s.extend_from_slice(&fragment(&Spec { tfdt: 15360 + 3072, first_flags: None, ..Spec::default() }));
        s
    }

    fn drain(s: &mut Splitter) -> Result<Vec<Item>, Error> {
        let mut out = Vec::new();
        while let Some(item) = s.next_item()? {
            out.push(item);
        }
        Ok(out)
    }

    fn first_error(bytes: &[u8], max_box: usize) -> Error {
        let mut s = Splitter::new(max_box);
        s.push(bytes);
        let err = drain(&mut s).expect_err("should fail");
        assert_eq!(s.pending(), 0, "a poisoned splitter holds no memory");
        // Poisoned: the same error again, whatever arrives next.
        s.push(&stream());
        assert_eq!(s.next_item(), Err(err.clone()));
        err
    }

    #[test]
    fn splits_init_and_fragments_whole() {
        let input = stream();
        let mut s = Splitter::new(1 << 20);
        s.push(&input);
        let items = drain(&mut s).expect("items");
        assert_eq!(items.len(), 3);
        assert_eq!(s.pending(), 0);
        let mut joined = Vec::new();
        for item in &items {
            match item {
                Item::Init(i) => joined.extend_from_slice(&i.bytes),
                Item::Fragment(f) => joined.extend_from_slice(&f.bytes),
            }
        }
        assert_eq!(joined, input);
        let Item::Fragment(first) = &items[1] else { panic!("fragment expected") };
        assert_eq!(&first.bytes[4..8], b"styp", "prefix boxes stay in front");
        assert!(first.independent());
        let Item::Fragment(second) = &items[2] else { panic!("fragment expected") };
        assert!(!second.independent());
        assert_eq!(second.decode_time(), Some((15360 + 3072, 15360)));
    }

    #[test]
    fn byte_at_a_time() {
        let input = stream();
        let mut s = Splitter::new(1 << 20);
        let mut items = 0;
        for (i, b) in input.iter().enumerate() {
            s.push(&[*b]);
            items += drain(&mut s).expect("items").len();
            assert!(s.pending() <= i + 1);
        }
        assert_eq!(items, 3);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn fragment_before_init_is_no_init() {
        assert_eq!(first_error(&fragment(&Spec::default()), 1 << 20), Error::NoInit);
    }

    #[test]
    fn with_init_accepts_fragments_alone() {
        let init = Arc::new(Init::parse(bytes::Bytes::from(h264_aac_init())).expect("init"));
        let mut s = Splitter::with_init(1 << 20, init);
        s.push(&fragment(&Spec::default()));
        assert!(matches!(drain(&mut s).expect("items")[..], [Item::Fragment(_)]));
        assert!(s.init().is_some());
    }

    #[test]
    fn not_fmp4() {
        assert!(matches!(first_error(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1 << 20), Error::NotFmp4(_)));
        assert!(matches!(first_error(&boxed(b"moov", &[]), 1 << 20), Error::NotFmp4(_)));
        assert!(matches!(first_error(b"\0\0\0\x03\xff\xd8\xff\xe0", 1 << 20), Error::NotFmp4(_)));
        assert!(matches!(first_error(b"\0\0\0\x03ftyp", 1 << 20), Error::Malformed(_)));
        assert!(matches!(first_error(&boxed(b"mdat", &[]), 1 << 20), Error::NotFmp4(_)));
        let mut s = stream();
        s.extend_from_slice(&boxed(b"mo\x01f", &[]));
        assert!(matches!(first_error(&s, 1 << 20), Error::NotFmp4(_)));
    }

    #[test]
    fn too_large_is_refused_at_the_header() {
        // A moof, then an mdat declaring 2^64 - 1 bytes: refused with only its header buffered.
        let mut f = fragment(&Spec::default());
        let moof_len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        f.truncate(moof_len);
        f.extend_from_slice(&[0, 0, 0, 1]);
        f.extend_from_slice(b"mdat");
        f.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut whole = h264_aac_init();
        whole.extend_from_slice(&f);
        let mut sp = Splitter::new(1 << 20);
        sp.push(&whole);
        assert!(matches!(sp.next_item(), Ok(Some(Item::Init(_)))));
        assert!(matches!(sp.next_item(), Err(Error::TooLarge { what: "part", size: usize::MAX, limit: 1048576 })));
        assert!(matches!(first_error(&h264_aac_init(), 100), Error::TooLarge { what: "init segment", .. }));
        let mut big = stream();
        big.truncate(h264_aac_init().len() + 8);
        let mut sp = Splitter::new(h264_aac_init().len());
        sp.push(&big);
        assert!(matches!(sp.next_item(), Ok(Some(Item::Init(_)))));
        assert!(matches!(sp.next_item(), Ok(None)), "the styp header fits");
    }

    #[test]
    fn size_zero_and_small_sizes_are_malformed() {
        let mut s = h264_aac_init();
        s.extend_from_slice(b"\0\0\0\0moof");
        assert!(matches!(first_error(&s, 1 << 20), Error::Malformed(m) if m.contains("size 0")));
        assert!(matches!(first_error(b"\0\0\0\x05ftyp", 1 << 20), Error::Malformed(_)));
        assert!(matches!(first_error(b"\0\0\0\x01ftyp\0\0\0\0\0\0\0\x08", 1 << 20), Error::Malformed(_)));
    }

    #[test]
    fn order_errors() {
        let init = h264_aac_init();
        let ftyp = &init[..24];
        let f = fragment(&Spec::default());
        let moof_len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        let cases: Vec<Vec<u8>> = vec![
            [ftyp, &f[..]].concat(),                      // moof after ftyp without moov
            [&init[..], &f[..moof_len], &f[..]].concat(), // moof moof
            [&init[..], &f[moof_len..]].concat(),         // mdat without moof
            [&init[..], &f[..moof_len], ftyp].concat(),   // ftyp between moof and mdat
            [ftyp, ftyp].concat(),                        // two ftyp
            [ftyp, &f[moof_len..]].concat(),              // mdat in the init
        ];
        for (i, case) in cases.iter().enumerate() {
            assert!(matches!(first_error(case, 1 << 20), Error::Malformed(_)), "case {i}");
        }
    }

    #[test]
    fn malformed_fragment_content_poisons() {
        let mut s = h264_aac_init();
        s.extend_from_slice(&fragment(&Spec { offset_error: 5, ..Spec::default() }));
        assert!(matches!(first_error(&s, 1 << 20), Error::Malformed(_)));
    }

    #[test]
    fn a_second_init_replaces_the_first() {
        let mut s = stream();
        s.extend_from_slice(&h264_aac_init());
        s.extend_from_slice(&fragment(&Spec::default()));
        let mut sp = Splitter::new(1 << 20);
        sp.push(&s);
        let items = drain(&mut sp).expect("items");
        assert_eq!(items.iter().filter(|i| matches!(i, Item::Init(_))).count(), 2);
        assert_eq!(items.len(), 5);
    }
}
