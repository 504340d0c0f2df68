//! The fMP4 splitter, fed the input in pieces, and the init/fragment parsers and the cutter behind it.
//!
//! Input: one byte that picks the chunking, then the stream. Invariants: the items (or the error) do not depend
//! on how the stream was cut; items are the stream's bytes, in order, unchanged; an item re-parses to itself; a
//! failed splitter holds no memory; the cutter keeps every sample of a fragment it cuts.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use playlists::fmp4::{refragment, write_init, CodecConfig, Fragment, Init, Item, Splitter, TrackConfig};
use playlists::Error;
use playlists_fuzz::{chunks, joined, same_tracks, samples};

/// The largest item: as in the server's default, small enough to keep runs fast.
const MAX_BOX: usize = 1 << 20;

/// Items and the first error of a splitter fed `data` in pieces of the given lengths.
fn split(data: &[u8], lengths: &[usize], init: Option<Arc<Init>>) -> (Vec<Item>, Option<Error>) {
    let mut s = match init {
        Some(init) => Splitter::with_init(MAX_BOX, init),
        None => Splitter::new(MAX_BOX),
    };
    let (mut items, mut at) = (Vec::new(), 0);
    for &n in lengths {
        s.push(&data[at..at + n]);
        at += n;
        loop {
            match s.next_item() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(s.pending(), 0, "a failed splitter holds no bytes");
                    s.push(data);
                    assert_eq!(s.next_item(), Err(e.clone()), "a failed splitter stays failed");
                    return (items, Some(e));
                }
            }
        }
        assert!(s.pending() <= MAX_BOX, "the splitter holds at most one item");
    }
    let consumed: usize = items.iter().map(item_bytes).map(|b| b.len()).sum();
    assert_eq!(s.pending(), data.len() - consumed, "every byte is in an item or pending");
    (items, None)
}

fn item_bytes(item: &Item) -> &Bytes {
    match item {
        Item::Init(i) => &i.bytes,
        Item::Fragment(f) => &f.bytes,
    }
}

/// An init with an H.264 track 1 and an AAC track 2, for fragments that come without one.
fn default_init() -> Arc<Init> {
    static INIT: OnceLock<Arc<Init>> = OnceLock::new();
    INIT.get_or_init(|| {
        let avcc = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]);
        let tracks = [
            TrackConfig { track_id: 1, timescale: 90_000, codec: CodecConfig::H264 { avcc, width: 640, height: 360 } },
            TrackConfig {
                track_id: 2,
                timescale: 48_000,
                codec: CodecConfig::Aac { asc: Bytes::from_static(&[0x11, 0x90]), channels: 2, sample_rate: 48_000 },
            },
        ];
        Arc::new(Init::parse(write_init(&tracks).expect("the writer's init")).expect("the writer's init parses"))
    })
    .clone()
}

/// A fragment re-parses to itself; a cut fragment keeps its samples.
fn check_fragment(fragment: &Fragment, init: &Init, max: Duration) {
    assert_eq!(Fragment::parse(fragment.bytes.clone(), init).as_ref(), Ok(fragment), "a fragment re-parses");
    let before = samples(fragment, init);
    if let Some(before) = &before {
        for (id, read) in before {
            let run = fragment.tracks.iter().filter(|r| r.track_id == *id);
            let count: u64 = run.clone().map(|r| u64::from(r.samples)).sum();
            assert_eq!(count, read.len() as u64, "the tables hold the run's samples");
        }
    }
    let Ok(pieces) = refragment(fragment.clone(), init, max) else { return };
    assert!(!pieces.is_empty());
    if pieces.len() == 1 && pieces[0] == *fragment {
        return;
    }
    let after = joined(&pieces, init).expect("the cutter's pieces have sample tables");
    let before = before.expect("a fragment that was cut has sample tables");
    assert!(same_tracks(&before, &after), "the cutter keeps every sample:\n{before:?}\n{after:?}");
    for piece in &pieces {
        assert_eq!(Fragment::parse(piece.bytes.clone(), init).as_ref(), Ok(piece), "a piece re-parses");
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else { return };
    let with_init = seed & 0x80 != 0;
    let init = with_init.then(default_init);
    let (items, error) = split(data, &[data.len()], init.clone());
    let lengths = chunks(seed, data.len());
    let (again, error_again) = split(data, &lengths, init.clone());
    assert_eq!(items, again, "the items do not depend on the chunking");
    assert_eq!(error, error_again, "the error does not depend on the chunking");

    let mut at = 0;
    let mut current = init;
    let max = Duration::from_millis(50 + u64::from(seed & 0x0f) * 50);
    for item in &items {
        let bytes = item_bytes(item);
        assert_eq!(&data[at..at + bytes.len()], &bytes[..], "items are the stream's bytes, in order");
        at += bytes.len();
        match item {
            Item::Init(i) => {
                assert_eq!(Init::parse(i.bytes.clone()).as_ref(), Ok(&**i), "an init re-parses");
                current = Some(i.clone());
            }
            Item::Fragment(f) => check_fragment(f, current.as_deref().expect("a fragment follows an init"), max),
        }
    }

    // The parsers on their own, on the whole input.
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(init) = Init::parse(bytes.clone()) {
        let _ = (init.codecs(), init.resolution(), init.main_track());
    }
    if let Ok(f) = Fragment::parse(bytes, &default_init()) {
        let _ = (f.duration(), f.independent(), f.decode_time());
        check_fragment(&f, &default_init(), max);
    }
});
