//! The RTMP chunk guard (`ingest::Guard::check`) in front of rml_rtmp, fed arbitrary bytes in pieces.
//!
//! Input: one byte that picks the chunking, then the chunk stream after the handshake. Invariant: the verdict
//! (and its reason) does not depend on how the bytes were cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use playlists_actors::ingest::Guard;
use playlists_fuzz::chunks;

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else { return };
    let whole = Guard::default().check(data);
    let mut guard = Guard::default();
    let mut at = 0;
    let mut cut = Ok(());
    for n in chunks(seed, data.len()) {
        cut = guard.check(&data[at..at + n]);
        at += n;
        if cut.is_err() {
            break;
        }
    }
    assert_eq!(whole, cut, "the guard does not depend on the chunking");
});
