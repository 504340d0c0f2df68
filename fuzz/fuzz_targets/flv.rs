//! FLV: the tag parsers, the codec configuration parsers and the packager fed arbitrary tags.
//!
//! Input: an FLV file (`read_file`), or else records of `[type][timestamp: 3 bytes][length: 2 bytes][body]`.
//! Invariants: the packager's items are an init first, and every fragment re-parses against the init before it;
//! an init re-parses to itself.
#![no_main]

use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use playlists::flv::{aac, av1, avc, hevc, opus, read_file, Audio, Packager, Video};
use playlists::fmp4::{Fragment, Init, Item};

fn records(data: &[u8]) -> Vec<(u8, u32, Bytes)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [kind, t0, t1, t2, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*l0, *l1])).min(tail.len());
        out.push((*kind, u32::from_be_bytes([0, *t0, *t1, *t2]), Bytes::copy_from_slice(&tail[..len])));
        rest = &tail[len..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let file = Bytes::copy_from_slice(data);
    let tags: Vec<(u8, u32, Bytes)> = match read_file(&file) {
        Ok((_, tags)) => tags.into_iter().map(|t| (t.kind, t.timestamp_ms, t.body)).collect(),
        Err(_) => records(data),
    };
    // The record parsers on every body.
    for (_, _, body) in tags.iter().take(8) {
        let _ = (Video::parse(body.clone()), Audio::parse(body.clone()));
        let _ = (avc::AvcConfig::parse(body), hevc::HevcConfig::parse(body), av1::Av1Config::parse(body));
        let _ = (aac::AudioSpecificConfig::parse(body), opus::OpusHead::parse(body), opus::packet_duration(body));
        let _ = (avc::sps_picture_size(body), hevc::sps_picture_size(body));
    }
    let mut p = Packager::new(Duration::from_millis(200));
    let mut init: Option<std::sync::Arc<Init>> = None;
    let mut check = |p: &mut Packager| {
        while let Some(item) = p.next_item() {
            match item {
                Item::Init(i) => {
                    assert_eq!(Init::parse(i.bytes.clone()).as_ref(), Ok(&*i), "an init re-parses");
                    init = Some(i);
                }
                Item::Fragment(f) => {
                    let i = init.as_deref().expect("an init comes before any fragment");
                    assert_eq!(Fragment::parse(f.bytes.clone(), i).as_ref(), Ok(&f), "a fragment re-parses");
                    assert!(f.sample_tables(i).is_ok());
                }
            }
        }
    };
    for (kind, ts, body) in tags {
        let _ = match kind & 1 {
            1 => p.video(ts, body),
            _ => p.audio(ts, body),
        };
        check(&mut p);
    }
    p.flush();
    check(&mut p);
});
