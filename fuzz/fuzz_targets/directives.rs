//! The delivery directives: `PlaylistRequest::parse` on arbitrary query strings, `decide` on arbitrary edges.
//!
//! Invariants: a parsed request renders to a canonical query that parses back to it; `_HLS_part` never comes
//! without `_HLS_msn`; a decision agrees with `Want::is_met`; only a request with `_HLS_msn` is refused, and an
//! ended stream refuses nothing.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use playlists::{Decision, Edge, PlaylistRequest, Position, Skip, Want};

#[derive(Debug, Arbitrary)]
struct Input {
    query: String,
    last_part: Option<(u64, u32)>,
    last_segment: Option<u64>,
    part_target_ms: Option<u32>,
    hint: Option<(u64, u32)>,
    ended: bool,
    removed: bool,
}

fn render(r: &PlaylistRequest) -> String {
    let mut pairs = Vec::new();
    if let Some(msn) = r.msn {
        pairs.push(format!("_HLS_msn={msn}"));
    }
    if let Some(part) = r.part {
        pairs.push(format!("_HLS_part={part}"));
    }
    match r.skip {
        Skip::No => {}
        Skip::Yes => pairs.push("_HLS_skip=YES".into()),
        Skip::V2 => pairs.push("_HLS_skip=v2".into()),
    }
    pairs.join("&")
}

fuzz_target!(|input: Input| {
    let edge = Edge {
        last_part: input.last_part.map(|(m, p)| Position::new(m, p)),
        last_segment: input.last_segment,
        part_target: input.part_target_ms.map(|ms| Duration::from_millis(u64::from(ms))),
        hint: input.hint.map(|(m, p)| Position::new(m, p)),
        ended: input.ended,
        removed: input.removed,
    };
    let Ok(req) = PlaylistRequest::parse(&input.query) else { return };
    assert!(req.part.is_none() || req.msn.is_some(), "_HLS_part without _HLS_msn: {req:?}");
    let canonical = render(&req);
    assert_eq!(PlaylistRequest::parse(&canonical), Ok(req), "{canonical:?} parses back");
    // Unknown parameters are ignored wherever they stand.
    assert_eq!(PlaylistRequest::parse(&format!("a=1&{canonical}&b")), Ok(req));
    assert_eq!(req.is_blocking(), req.msn.is_some());

    let want = req.want();
    match req.decide(&edge) {
        Decision::Ready => assert!(edge.ended || want.is_met(&edge), "ready but {want:?} is not met by {edge:?}"),
        Decision::Wait(w) => {
            assert!(!w.is_met(&edge), "waiting for {w:?}, which {edge:?} meets");
            assert!(w == want || (edge.ended && w == Want::Playlist));
        }
        Decision::Reject(reason) => {
            assert!(!edge.ended, "an ended stream refuses nothing ({reason})");
            assert!(req.msn.is_some(), "only a blocking request is refused ({reason})");
        }
    }
});
