//! The WebSocket control plane: client messages applied to a session's settings, and the frame-header guard.
//!
//! Input: one byte that picks the chunking, then either frames for the guard (odd first byte) or client
//! messages separated by newlines. Invariants: a refused message changes nothing; a message applied twice does
//! what it did once (every key sets or adds); the settings the `subscription` answer describes are the ones the
//! session filters by; the guard's verdict does not depend on how the bytes were cut, and it refuses exactly a
//! frame that declares more than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use playlists_actors::http::ws::fuzzing::{Control, Frames, KINDS, MAX_MESSAGE};
use playlists_fuzz::chunks;

/// The guard's verdict, computed from the frame headers one frame at a time.
fn frames_model(mut bytes: &[u8]) -> Result<(), u64> {
    loop {
        let Some(&[_, second]) = bytes.get(..2).map(|b| <&[u8; 2]>::try_from(b).expect("two bytes")) else {
            return Ok(());
        };
        let masked = second & 0x80 != 0;
        let (length, header) = match second & 0x7f {
            126 => match bytes.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(()),
            },
            127 => match bytes.get(2..10) {
                Some(b) => (u64::from_be_bytes(b.try_into().expect("eight bytes")), 10),
                None => return Ok(()),
            },
            n => (u64::from(n), 2),
        };
        let header = header + if masked { 4 } else { 0 };
        if bytes.len() < header {
            return Ok(());
        }
        if length > MAX_MESSAGE as u64 {
            return Err(length);
        }
        let end = usize::try_from(length).map_or(usize::MAX, |l| l.saturating_add(header));
        bytes = bytes.get(end..).unwrap_or_default();
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else { return };
    if seed & 1 == 1 {
        let mut whole = Frames::default();
        let verdict = whole.check(data);
        let mut cut = Frames::default();
        let mut at = 0;
        let mut cut_verdict = Ok(());
        for n in chunks(seed, data.len()) {
            cut_verdict = cut.check(&data[at..at + n]);
            at += n;
            if cut_verdict.is_err() {
                break;
            }
        }
        assert_eq!(verdict, cut_verdict, "the guard does not depend on the chunking");
        assert_eq!(verdict, frames_model(data), "the guard reads frame headers as RFC 6455 writes them");
        if let Err(length) = verdict {
            assert_eq!(whole.check(b"\x81\x00"), Err(length), "a refused stream stays refused");
        }
        return;
    }

    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut control = Control::default();
    for message in text.split('\n') {
        let before = control.describe();
        match control.apply(message) {
            Err(_) => assert_eq!(control.describe(), before, "a refused message changes nothing: {message:?}"),
            Ok(()) => {
                let once = control.describe();
                assert_eq!(control.apply(message), Ok(()), "a valid message stays valid: {message:?}");
                assert_eq!(control.describe(), once, "a message applied twice does what it did once: {message:?}");
            }
        }
        let described = control.describe();
        assert_eq!(described["type"], "subscription");
        match &described["events"] {
            serde_json::Value::String(all) => {
                assert_eq!(all, "*");
                assert!(KINDS.iter().all(|k| control.wants_kind(k)));
            }
            serde_json::Value::Array(kinds) => {
                for k in KINDS {
                    assert_eq!(control.wants_kind(k), kinds.iter().any(|v| v == k), "{k}");
                }
            }
            other => panic!("events described as {other}"),
        }
        let except = described["except"].as_array().expect("except is a list");
        match &described["streams"] {
            serde_json::Value::String(all) => {
                assert_eq!(all, "*");
                for name in except {
                    assert!(!control.wants_stream(name.as_str().expect("a name")), "{name} is excepted");
                }
            }
            serde_json::Value::Array(only) => {
                assert!(except.is_empty());
                for name in only {
                    assert!(control.wants_stream(name.as_str().expect("a name")), "{name} is subscribed");
                }
                assert!(!control.wants_stream("not a stream name"), "only the subscribed streams");
            }
            other => panic!("streams described as {other}"),
        }
    }
});
