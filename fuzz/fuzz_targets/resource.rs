//! The names under `/live/{stream}/`: `playback::parse_resource` on arbitrary names.
//!
//! Invariants: a name that parses renders (the way the playlists write URIs) to a name that parses to the same
//! resource; that canonical name is the input itself for the init names (`init.mp4` and `init-{16 hex}.mp4` have
//! one spelling each) and the input up to leading zeros for parts and segments; the numbered init names of earlier
//! versions (`init{N}.mp4`) never parse; every resource rendered from arbitrary numbers or init bytes parses back
//! to itself, and an init name carries the 64 bits it was made from.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use playlists::{InitName, Position};
use playlists_actors::http::playback::{parse_resource, Resource};

#[derive(Debug, Arbitrary)]
enum Made {
    Playlist,
    Master,
    /// An init name from its 64 bits, spelled as the playlists spell it.
    InitBits(u64),
    /// The name of an init with these bytes.
    InitOf(Vec<u8>),
    CurrentInit,
    /// A numbered init name of an earlier version: no longer a resource.
    OldInit(u32),
    Part(u64, u32),
    Segment(u64),
}

/// The URI the playlists write for `r` (`EXT-X-MAP` through `InitName::put`).
fn render(r: &Resource) -> String {
    match r {
        Resource::Playlist => "index.m3u8".into(),
        Resource::Master => "master.m3u8".into(),
        Resource::Init(name) => {
            let mut out = Vec::new();
            name.put(&mut out);
            let rendered = String::from_utf8(out).expect("an init name is ASCII");
            assert_eq!(rendered, name.to_string(), "put and Display agree");
            rendered
        }
        Resource::CurrentInit => "init.mp4".into(),
        Resource::Part(p) => format!("p{}.{}.mp4", p.msn, p.part),
        Resource::Segment(m) => format!("s{m}.mp4"),
    }
}

/// The name with leading zeros dropped from every number.
fn without_leading_zeros(name: &str) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let in_number_start = !previous.is_some_and(|p| p.is_ascii_digit());
        let next_is_digit = chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if c == '0' && in_number_start && next_is_digit {
            continue;
        }
        out.push(c);
        previous = Some(c);
    }
    out
}

fuzz_target!(|input: (String, Made)| {
    let (name, made) = input;
    if let Some(r) = parse_resource(&name) {
        let canonical = render(&r);
        assert_eq!(parse_resource(&canonical).as_ref(), Some(&r), "{canonical:?} parses back");
        match r {
            // Hex digits, leading zeros included, are the name: one spelling only.
            Resource::Init(_) | Resource::CurrentInit => assert_eq!(canonical, name, "{name:?} is {r:?}"),
            _ => assert_eq!(canonical, without_leading_zeros(&name), "{name:?} is {r:?}"),
        }
    }
    let made = match made {
        Made::Playlist => Resource::Playlist,
        Made::Master => Resource::Master,
        Made::InitBits(bits) => {
            let spelled = format!("init-{bits:016x}.mp4");
            let name = InitName::parse(&spelled).expect("16 lowercase hex digits parse");
            assert_eq!(name.bits(), bits, "{spelled}");
            assert_eq!(render(&Resource::Init(name)), spelled);
            Resource::Init(name)
        }
        Made::InitOf(bytes) => Resource::Init(InitName::of(&bytes)),
        Made::CurrentInit => Resource::CurrentInit,
        Made::OldInit(n) => {
            let old = format!("init{n}.mp4");
            assert_eq!(parse_resource(&old), None, "{old} is gone");
            return;
        }
        Made::Part(m, p) => Resource::Part(Position::new(m, p)),
        Made::Segment(m) => Resource::Segment(m),
    };
    assert_eq!(parse_resource(&render(&made)).as_ref(), Some(&made), "{made:?}");
});
