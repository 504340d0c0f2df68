//! The names under `/live/{stream}/`: `playback::parse_resource` on arbitrary names.
//!
//! Invariants: a name that parses renders (the way the playlists write URIs) to a name that parses to the same
//! resource, and that canonical name is the input itself unless the input had leading zeros; every resource
//! rendered from arbitrary numbers parses back to itself.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use playlists::Position;
use playlists_actors::http::playback::{parse_resource, Resource};

#[derive(Debug, Arbitrary)]
enum Made {
    Playlist,
    Master,
    Init(u32),
    Part(u64, u32),
    Segment(u64),
}

fn render(r: &Resource) -> String {
    match r {
        Resource::Playlist => "index.m3u8".into(),
        Resource::Master => "master.m3u8".into(),
        Resource::Init(0) => "init.mp4".into(),
        Resource::Init(v) => format!("init{v}.mp4"),
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
        assert_eq!(canonical, without_leading_zeros(&name), "{name:?} is {r:?}");
    }
    let made = match made {
        Made::Playlist => Resource::Playlist,
        Made::Master => Resource::Master,
        Made::Init(v) => Resource::Init(v),
        Made::Part(m, p) => Resource::Part(Position::new(m, p)),
        Made::Segment(m) => Resource::Segment(m),
    };
    assert_eq!(parse_resource(&render(&made)).as_ref(), Some(&made), "{made:?}");
});
