//! Positions in a stream and the LL-HLS delivery directives, parsed into a typed request.
//!
//! A player asks for a playlist with `_HLS_msn`, `_HLS_part` and `_HLS_skip` (checklist section B). The query is
//! parsed once into a [`PlaylistRequest`]; [`PlaylistRequest::decide`] then compares it with the stream's
//! [`Edge`] and says whether to answer now, to hold the request until the edge reaches a point ([`Want`]), or to
//! refuse it with a reason (400).

use std::fmt;
use std::time::Duration;

use crate::error::Error;

/// A part's place in a stream: the Media Sequence Number of its parent segment and its index in that segment.
/// Ordered by `(msn, part)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Media Sequence Number of the parent segment.
    pub msn: u64,
    /// Part index inside the parent, from 0.
    pub part: u32,
}

impl Position {
    /// A position.
    pub const fn new(msn: u64, part: u32) -> Self {
        Self { msn, part }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.msn, self.part)
    }
}

/// What a stream has published so far, as far as a playlist request cares. Sent on the stream's position watch
/// every time it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Edge {
    /// The newest published part.
    pub last_part: Option<Position>,
    /// MSN of the newest complete segment (one with an `EXTINF` and URI): `L` in the 400 rules.
    pub last_segment: Option<u64>,
    /// The advertised `PART-TARGET`, once known.
    pub part_target: Option<Duration>,
    /// The part named by the `EXT-X-PRELOAD-HINT`: a request for it is held until it exists (checklist item 39).
    pub hint: Option<Position>,
    /// The playlist carries `EXT-X-ENDLIST`.
    pub ended: bool,
    /// The stream was removed: nothing more will come.
    pub removed: bool,
}

impl Edge {
    /// Whether a playlist can be served at all: one complete segment exists (checklist item 19), or the stream
    /// ended.
    pub fn has_playlist(&self) -> bool {
        self.last_segment.is_some() || (self.ended && self.last_part.is_some())
    }
}

/// The point a held request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Any playlist at all (the stream has no complete segment yet).
    Playlist,
    /// A playlist holding this part, or any later one (`_HLS_msn` with `_HLS_part`, item 23 and 24).
    Part(Position),
    /// A playlist holding a complete segment with MSN at least this (`_HLS_msn` alone, item 22).
    Segment(u64),
}

impl Want {
    /// Whether `edge` satisfies this want. An ended stream satisfies everything (item 29).
    pub fn is_met(&self, edge: &Edge) -> bool {
        if edge.ended {
            return edge.has_playlist();
        }
        if !edge.has_playlist() {
            return false;
        }
        match *self {
            Want::Playlist => true,
            Want::Part(p) => {
                edge.last_segment.is_some_and(|l| p.msn <= l) || edge.last_part.is_some_and(|last| p <= last)
            }
            Want::Segment(m) => edge.last_segment.is_some_and(|l| m <= l),
        }
    }
}

/// The delta-update directive `_HLS_skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Skip {
    /// Full playlist.
    #[default]
    No,
    /// `_HLS_skip=YES`: skip old segments.
    Yes,
    /// `_HLS_skip=v2`: skip old segments and old date ranges.
    V2,
}

/// A media playlist request with its delivery directives parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaylistRequest {
    /// `_HLS_msn`.
    pub msn: Option<u64>,
    /// `_HLS_part`.
    pub part: Option<u32>,
    /// `_HLS_skip`.
    pub skip: Skip,
}

/// What to do with a [`PlaylistRequest`] given the stream's [`Edge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Answer now.
    Ready,
    /// Hold until the edge meets the want (or the blocking timeout passes: 503).
    Wait(Want),
    /// Answer 400 with this reason.
    Reject(&'static str),
}

/// Media past the last published part beyond which `_HLS_part` is refused (checklist section 5: the Advance Part
/// Limit applied leniently, since hls.js treats a 400 on a single-variant stream as fatal).
pub const ADVANCE_LIMIT: Duration = Duration::from_secs(3);

/// Decimal digits at most in a directive value (item 34).
const MAX_DIGITS: usize = 20;

fn parse_number(value: &str, what: &'static str) -> Result<u64, Error> {
    if value.is_empty() || value.len() > MAX_DIGITS || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::BadRequest(what));
    }
    value.parse().map_err(|_| Error::BadRequest(what))
}

impl PlaylistRequest {
    /// Parses a URL query string (without the `?`). Unknown parameters are ignored and directives may come in any
    /// order among them (item 34); a directive given twice, a malformed value, or `_HLS_part` without `_HLS_msn`
    /// (item 26) is an error.
    pub fn parse(query: &str) -> Result<Self, Error> {
        let mut req = Self::default();
        let mut skip_seen = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "_HLS_msn" => {
                    if req.msn.is_some() {
                        return Err(Error::BadRequest("_HLS_msn given twice"));
                    }
                    req.msn = Some(parse_number(value, "_HLS_msn must be a decimal integer")?);
                }
                "_HLS_part" => {
                    if req.part.is_some() {
                        return Err(Error::BadRequest("_HLS_part given twice"));
                    }
                    let n = parse_number(value, "_HLS_part must be a decimal integer")?;
                    req.part = Some(u32::try_from(n).map_err(|_| Error::BadRequest("_HLS_part is too large"))?);
                }
                "_HLS_skip" => {
                    if skip_seen {
                        return Err(Error::BadRequest("_HLS_skip given twice"));
                    }
                    skip_seen = true;
                    req.skip = match value {
                        "YES" => Skip::Yes,
                        "v2" => Skip::V2,
                        _ => return Err(Error::BadRequest("_HLS_skip must be YES or v2")),
                    };
                }
                _ => {}
            }
        }
        if req.part.is_some() && req.msn.is_none() {
            return Err(Error::BadRequest("_HLS_part without _HLS_msn"));
        }
        Ok(req)
    }

    /// Whether the request blocks (carries `_HLS_msn`).
    pub fn is_blocking(&self) -> bool {
        self.msn.is_some()
    }

    /// What the request waits for, ignoring the edge.
    pub fn want(&self) -> Want {
        match (self.msn, self.part) {
            (Some(msn), Some(part)) => Want::Part(Position::new(msn, part)),
            (Some(msn), None) => Want::Segment(msn),
            _ => Want::Playlist,
        }
    }

    /// Applies checklist section B (items 22–34) and the decisions of section 5 to this request and `edge`.
    pub fn decide(&self, edge: &Edge) -> Decision {
        if edge.ended {
            // Item 29: directives are ignored once the playlist has EXT-X-ENDLIST.
            return if edge.has_playlist() { Decision::Ready } else { Decision::Wait(Want::Playlist) };
        }
        let want = self.want();
        if let Some(msn) = self.msn {
            // Item 27: L+2 blocks, L+3 is refused. Before the first complete segment L is "minus one".
            let limit = edge.last_segment.map_or(1, |l| l.saturating_add(2));
            if msn > limit {
                return Decision::Reject("_HLS_msn is more than two segments past the last segment");
            }
        }
        if let (Want::Part(p), Some(last), Some(pt)) = (want, edge.last_part, edge.part_target) {
            if parts_ahead(p, last).is_some_and(|n| pt.saturating_mul(n) > ADVANCE_LIMIT) {
                return Decision::Reject("_HLS_part is more than 3 s of media past the last part");
            }
        }
        if want.is_met(edge) {
            Decision::Ready
        } else {
            Decision::Wait(want)
        }
    }
}

/// How many parts past `last` the position `want` is at the least (lower bound across a segment boundary, where
/// the open segment may close after its current part). `None` when it is not ahead.
fn parts_ahead(want: Position, last: Position) -> Option<u32> {
    if want <= last {
        return None;
    }
    if want.msn == last.msn {
        Some(want.part - last.part)
    } else {
        Some(want.part.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(last_segment: u64, last_part: (u64, u32)) -> Edge {
        Edge {
            last_part: Some(Position::new(last_part.0, last_part.1)),
            last_segment: Some(last_segment),
            part_target: Some(Duration::from_secs(1)),
            hint: None,
            ended: false,
            removed: false,
        }
    }

    fn decide(q: &str, e: &Edge) -> Decision {
        PlaylistRequest::parse(q).unwrap().decide(e)
    }

    // The expected answers of LLHLS-CHECKLIST.md section 3: L = 1004, last part 1005.1, PART-TARGET 1.0.
    #[test]
    fn checklist_section_3_answers() {
        let e = edge(1004, (1005, 1));
        assert_eq!(decide("_HLS_msn=1005&_HLS_part=1", &e), Decision::Ready);
        assert_eq!(decide("_HLS_msn=1005&_HLS_part=2", &e), Decision::Wait(Want::Part(Position::new(1005, 2))));
        assert_eq!(decide("_HLS_msn=1006", &e), Decision::Wait(Want::Segment(1006)));
        assert_eq!(decide("_HLS_msn=1006&_HLS_part=0", &e), Decision::Wait(Want::Part(Position::new(1006, 0))));
        assert!(matches!(decide("_HLS_msn=1007", &e), Decision::Reject(_)));
        assert_eq!(PlaylistRequest::parse("_HLS_part=2"), Err(Error::BadRequest("_HLS_part without _HLS_msn")));
        // 9 parts of 1 s past the last part: more than the 3 s lenient limit.
        assert!(matches!(decide("_HLS_msn=1005&_HLS_part=9", &e), Decision::Reject(_)));
        assert!(matches!(decide("_HLS_msn=1005&_HLS_part=4", &e), Decision::Wait(_)));
    }

    #[test]
    fn item_22_msn_alone_waits_for_a_complete_segment() {
        let e = edge(1004, (1005, 3));
        assert_eq!(decide("_HLS_msn=1004", &e), Decision::Ready);
        assert_eq!(decide("_HLS_msn=1005", &e), Decision::Wait(Want::Segment(1005)));
    }

    #[test]
    fn item_24_part_past_a_closed_parent_is_met_by_the_next_segment() {
        // Segment 1005 closed (L = 1005) with parts 0..=3; 1006.0 published.
        let e = edge(1005, (1006, 0));
        assert_eq!(decide("_HLS_msn=1005&_HLS_part=4", &e), Decision::Ready);
        assert_eq!(decide("_HLS_msn=1005&_HLS_part=40", &e), Decision::Ready);
        assert!(Want::Part(Position::new(1005, 4)).is_met(&e));
        assert!(!Want::Part(Position::new(1006, 1)).is_met(&e));
    }

    #[test]
    fn item_25_behind_the_window_is_still_answered() {
        let e = edge(1004, (1005, 1));
        assert_eq!(decide("_HLS_msn=3&_HLS_part=0", &e), Decision::Ready);
        assert_eq!(decide("_HLS_msn=0", &e), Decision::Ready);
    }

    #[test]
    fn item_29_ended_ignores_directives() {
        let mut e = edge(1004, (1004, 3));
        e.ended = true;
        assert_eq!(decide("_HLS_msn=1007&_HLS_part=9&_HLS_skip=YES", &e), Decision::Ready);
    }

    #[test]
    fn item_34_malformed_values_are_rejected_and_unknown_params_ignored() {
        for bad in [
            "_HLS_msn=-1",
            "_HLS_msn=+1",
            "_HLS_msn=1.0",
            "_HLS_msn=",
            "_HLS_msn=0x10",
            "_HLS_msn=123456789012345678901",
            "_HLS_msn=99999999999999999999",
            "_HLS_msn=1&_HLS_part=4294967296",
            "_HLS_msn=1&_HLS_msn=2",
            "_HLS_skip=yes",
            "_HLS_skip=NO",
        ] {
            assert!(PlaylistRequest::parse(bad).is_err(), "{bad} should be rejected");
        }
        let r = PlaylistRequest::parse("token=abc&_HLS_skip=v2&x&_HLS_part=3&_HLS_msn=10&_HLS_foo=1").unwrap();
        assert_eq!(r, PlaylistRequest { msn: Some(10), part: Some(3), skip: Skip::V2 });
        assert_eq!(PlaylistRequest::parse("").unwrap(), PlaylistRequest::default());
    }

    #[test]
    fn before_the_first_segment_everything_waits() {
        let e = Edge { last_part: Some(Position::new(0, 2)), ..Edge::default() };
        assert_eq!(decide("", &e), Decision::Wait(Want::Playlist));
        assert_eq!(decide("_HLS_msn=1", &e), Decision::Wait(Want::Segment(1)));
        assert!(matches!(decide("_HLS_msn=2", &e), Decision::Reject(_)));
        assert!(!Want::Playlist.is_met(&Edge::default()));
    }

    #[test]
    fn part_limit_counts_across_the_segment_boundary() {
        // 0.2 s parts: 3 s is 15 parts.
        let mut e = edge(10, (11, 2));
        e.part_target = Some(Duration::from_millis(200));
        assert!(matches!(decide("_HLS_msn=11&_HLS_part=17", &e), Decision::Wait(_)));
        assert!(matches!(decide("_HLS_msn=11&_HLS_part=18", &e), Decision::Reject(_)));
        assert!(matches!(decide("_HLS_msn=12&_HLS_part=14", &e), Decision::Wait(_)));
        assert!(matches!(decide("_HLS_msn=12&_HLS_part=15", &e), Decision::Reject(_)));
    }
}
