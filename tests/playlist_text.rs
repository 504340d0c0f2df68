//! Every playlist version a real stream goes through, checked against the playlist-text items of
//! LLHLS-CHECKLIST.md sections A, D and G that are easiest to state over a whole run: the fixture is published
//! part by part (looped to 30 s) and each rendered version, full and delta, plain and gzip, is checked.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::time::SystemTime;

use common::Media;
use playlists::fmp4::{Fragment, Init};
use playlists::{Options, Playlists, Position, StreamId};

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (_, rest) = line.split_once(':')?;
    rest.split(',').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Items 1, 3, 10, 70, 75 (and the structure m3u8-rs needs) for one playlist text.
fn check(text: &str, listed_parts_exist: impl Fn(Position) -> bool) {
    // Item 1: starts with #EXTM3U, no BOM, only LF line ends, no control characters.
    assert!(text.starts_with("#EXTM3U\n"), "item 1:\n{text}");
    assert!(!text.contains('\r') && text.ends_with('\n'));
    assert!(text.chars().all(|c| c == '\n' || !c.is_control()), "item 1: control characters");
    // Item 3: each playlist tag at most once; no attribute repeated inside a tag.
    for tag in [
        "#EXT-X-VERSION",
        "#EXT-X-TARGETDURATION",
        "#EXT-X-MEDIA-SEQUENCE",
        "#EXT-X-DISCONTINUITY-SEQUENCE",
        "#EXT-X-PART-INF",
        "#EXT-X-SERVER-CONTROL",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-SKIP",
        "#EXT-X-ENDLIST",
        "#EXT-X-PRELOAD-HINT",
    ] {
        let n = text.lines().filter(|l| l.split(':').next() == Some(tag)).count();
        assert!(n <= 1, "item 3: {tag} {n} times\n{text}");
    }
    for line in text.lines().filter(|l| l.starts_with("#EXT-X-") && l.contains('=')) {
        let (_, attrs) = line.split_once(':').unwrap();
        let mut names = HashSet::new();
        for kv in attrs.split(',') {
            let name = kv.split('=').next().unwrap();
            assert!(names.insert(name), "item 3: {name} repeated in {line}");
        }
    }
    // Item 10: no GAP, because every listed part is really available.
    assert!(!text.contains("GAP"));
    let part_target: f64 = text.lines().find_map(|l| attr(l, "PART-TARGET")).unwrap().parse().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.starts_with("#EXT-X-PART:")) {
        let uri = attr(line, "URI").unwrap().trim_matches('"');
        let (msn, part) = uri.trim_start_matches('p').trim_end_matches(".mp4").split_once('.').unwrap();
        let position = Position::new(msn.parse().unwrap(), part.parse().unwrap());
        assert!(listed_parts_exist(position), "item 10: {uri} listed but not available");
        // Item 70: parts are at least 0.85 x PART-TARGET, except independent ones and the last of a parent.
        let duration: f64 = attr(line, "DURATION").unwrap().parse().unwrap();
        let independent = line.contains("INDEPENDENT=YES");
        let last_of_parent = !lines.get(i + 1).is_some_and(|l| l.starts_with("#EXT-X-PART:"));
        assert!(duration <= part_target + 1e-9, "item 69: {line}");
        assert!(independent || last_of_parent || duration >= 0.85 * part_target, "item 70: {line}");
    }
    // Item 75: no EXT-X-START at all.
    assert!(!text.contains("#EXT-X-START"));
    common::parse_media(text);
}

fn gunzip(b: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(b).read_to_string(&mut s).unwrap();
    s
}

#[test]
fn items_1_3_10_17_48_69_70_75_hold_for_every_version_of_a_stream() {
    let media = Media::h264();
    let playlists = Playlists::new(Options::default()).unwrap();
    let stream = playlists.start(&StreamId::parse("cam").unwrap()).unwrap();
    let init = std::sync::Arc::new(Init::parse(media.init.clone()).unwrap());
    stream.set_init(init.clone()).unwrap();
    let mut versions = 0;
    for i in 0..150 {
        let fragment = Fragment::parse(media.fragment(i), &init).unwrap();
        let published = stream.publish(fragment, SystemTime::now()).unwrap();
        let Some(rendered) = stream.latest_playlist() else { continue };
        // Item 17: the version stored under this part is whole, and is the one readers get.
        assert_eq!(rendered.position, published.position);
        let exists = |p: Position| stream.part(p).is_some();
        for (text, gz) in [(&rendered.full, &rendered.full_gzip), (&rendered.delta, &rendered.delta_gzip)] {
            let text = std::str::from_utf8(text).unwrap();
            check(text, exists);
            assert_eq!(gunzip(gz), text, "item 59: the gzip form is the same playlist");
            // Item 48: without date ranges (no CAN-SKIP-DATERANGES) `_HLS_skip=v2` is served as YES: VERSION
            // 9 at most, no RECENTLY-REMOVED-DATERANGES.
            assert!(!text.contains("DATERANGES") && !text.contains("#EXT-X-VERSION:10"));
        }
        versions += 1;
    }
    assert!(versions > 100);
    stream.end().unwrap();
    let last = stream.latest_playlist().unwrap();
    check(std::str::from_utf8(&last.full).unwrap(), |p| stream.part(p).is_some());
}
