//! The LL-HLS media playlist of one stream: segment/part rollover and rendering.
//!
//! [`M3u8Manifest`] is fed one part at a time ([`M3u8Manifest::push`]) by the stream's owner, decides where
//! segments start and end, and renders the media playlist (full or delta form) as a pure function of its state.
//! It does no I/O and never reads a clock: the wallclock of every part comes in with the part.
//!
//! Resource names are relative to the playlist (`/live/{stream}/index.m3u8`): the init segment is named by its
//! bytes (`init-{16 hex digits}.mp4`, see [`InitName`]), part `i` of segment `n` is `p{n}.{i}.mp4`, and the whole
//! segment is `s{n}.mp4`. Until the owner names an init ([`M3u8Manifest::set_map`]) no `EXT-X-MAP` is written: the
//! playlist never names an init that is not there.
//!
//! # Rollover
//!
//! Before a part is appended the open segment is closed when:
//! - the part carries a discontinuity (a new timeline starts a new segment, checklist item 7 and 12);
//! - the part is independent and the open segment is at least `min_segment` long (segments start at keyframes,
//!   item 13). This also holds when the preload hint named the next part of the open segment: a keyframe-aligned
//!   segment is worth a wrong hint, and the hint only errs when the encoder's keyframe cadence changes;
//! - the open segment already holds `max_parts_per_segment` parts, or one more part as long as `PART-TARGET`
//!   (or this part, if longer) would make its `EXTINF` round above the target duration (item 68). Both are
//!   forced cuts, reported as [`Warning::ForcedCut`]. Judging by `PART-TARGET` rather than by the part at hand
//!   cuts at most one part early, and lets the preload hint announce the cut before the part arrives.
//!
//! A rendition of a group is pushed with [`M3u8Manifest::push_at`] instead: its group's timeline
//! ([`crate::timeline`]) decides where its segments start, so that every rendition cuts at the same media times;
//! only a discontinuity or a forced cut overrides it.
//!
//! # Preload hint
//!
//! [`M3u8Manifest::next_part`] names part 0 of the next segment when a forced cut is due, or when the open
//! segment has reached `min_segment` and the keyframe cadence seen so far (the distance in parts between the last
//! two independent parts) says the next part is independent; otherwise the next part of the open segment. A part
//! that contradicts the hint wins: a dependent part after a hinted new segment stays in the open segment, an
//! independent one after a hinted next part starts a new segment, as above.
//!
//! # Window
//!
//! Complete segments are dropped from the head while the rest still hold `window` (at least 6 × TD) of media,
//! and whenever more than `Options::max_window_segments` would be listed: the rings of the other modules are
//! sized by that count, so it wins over the media-time rule in the (pathological) case of many tiny segments.
//! Parts are listed for the open segment and for complete segments that end within `part_window` of the end
//! of the playlist (the end of its last part).
//!
//! # Durations
//!
//! Part durations are shown rounded to the millisecond, and a segment's `EXTINF` is the sum of its parts' shown
//! durations, so the two always agree in the text; except between two boundaries of a group's timeline, where it
//! is their distance, so that it reads the same in every rendition (an audio rendition's parts then add up to it
//! within an audio frame). Media time (the window, the part window, the skip boundary
//! and `PROGRAM-DATE-TIME`) uses the exact durations.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::init_name::InitName;
use crate::options::Options;
use crate::position::{Edge, Position};
use crate::timeline::Placement;

/// One part as its producer describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartMeta {
    /// Media duration of the part.
    pub duration: Duration,
    /// The part starts with an independent (sync) frame.
    pub independent: bool,
    /// The part starts a new timeline (encoder restart, timestamp jump): it opens a new segment that carries
    /// `EXT-X-DISCONTINUITY` and a fresh `EXT-X-PROGRAM-DATE-TIME`.
    pub discontinuity: bool,
    /// Wallclock time of the part's first sample. Only read for the first part of the stream and for parts that
    /// start a discontinuity; other dates follow from media time, so they stay consistent across versions.
    pub wallclock: SystemTime,
}

/// What another rendition of the same presentation has published, for `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// URI of the other media playlist relative to this one, e.g. `../v360/index.m3u8`.
    pub uri: String,
    /// Its newest part.
    pub last: Position,
}

/// A segment that has just been closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedSegment {
    /// Its Media Sequence Number.
    pub msn: u64,
    /// Its exact media duration (the sum of its parts).
    pub duration: Duration,
    /// How many parts it holds.
    pub parts: u32,
}

/// Something about the pushed media that a player may not like; the part is published anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    /// A part longer than the advertised `PART-TARGET` (checklist item 69): strict players may reject the playlist.
    PartOverTarget {
        /// The part.
        position: Position,
        /// Its duration.
        duration: Duration,
        /// The advertised `PART-TARGET`.
        part_target: Duration,
    },
    /// A segment was closed without a keyframe to start the next one: the GOP is longer than the target
    /// duration allows, or the segment reached `max_parts_per_segment`.
    ForcedCut {
        /// The segment that was closed.
        msn: u64,
        /// Its duration.
        duration: Duration,
    },
    /// A rendition of a group started a segment under another MSN than the group's timeline gives that media
    /// (it missed a boundary, see [`crate::timeline`]): rendition switches at this segment land on other media.
    Misaligned {
        /// The MSN this rendition gave the segment.
        msn: u64,
        /// The MSN of the group's segment at that media time.
        group_msn: u64,
    },
    /// The first GOP was longer than the configured target duration: the stream's target duration was raised to
    /// fit it (up to `Options::max_target_duration`), and is fixed from now on.
    TargetDurationRaised {
        /// The duration of the first segment (the first GOP).
        gop: Duration,
        /// The configured target duration, seconds.
        from: u32,
        /// The stream's target duration, seconds.
        to: u32,
    },
}

/// The result of [`M3u8Manifest::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Where the part went.
    pub position: Position,
    /// The segment closed before the part was appended, if any.
    pub closed: Option<ClosedSegment>,
    /// Problems with the media, if any.
    pub warnings: Vec<Warning>,
}

/// A part as the manifest keeps it.
#[derive(Debug, Clone, Copy)]
struct Part {
    /// Shown duration, milliseconds.
    ms: u64,
    independent: bool,
}

/// A segment, complete or open.
#[derive(Debug, Clone, Copy)]
struct Segment {
    msn: u64,
    /// Media time of its start since the stream started.
    start: Duration,
    /// Exact media duration.
    duration: Duration,
    /// Shown duration: the sum of its parts' shown durations.
    ms: u64,
    parts: u32,
    /// Stream-wide index of its first part: where its parts are in [`M3u8Manifest::parts`].
    first_part: u64,
    discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME` of its first sample.
    date: SystemTime,
    /// The init segment its parts need (`EXT-X-MAP`), if one was named.
    map: Option<InitName>,
    /// Where it starts on its group's timeline (nanoseconds), when a group boundary started it.
    group_at: Option<u64>,
}

impl Segment {
    fn end(&self) -> Duration {
        self.start + self.duration
    }
}

/// The LL-HLS media playlist of one stream. See the [module docs](self) for the rules it follows.
#[derive(Debug, Clone)]
pub struct M3u8Manifest {
    /// `EXT-X-TARGETDURATION`: the configured one, raised to fit the first segment when that was longer.
    target_duration: u32,
    /// How long the first segment may grow to reach its keyframe, seconds: `Options::max_target_duration`.
    max_target_duration: u32,
    min_segment: Duration,
    /// Complete segments are dropped from the head while the rest still hold this much media.
    window: Duration,
    part_window: Duration,
    skip_boundary: Duration,
    max_parts: u32,
    max_segments: usize,
    /// Complete segments in the window, oldest first.
    segments: VecDeque<Segment>,
    /// Sum of the exact durations of `segments`.
    segments_total: Duration,
    /// The open segment; it has no parts only before the first part and after [`M3u8Manifest::end`].
    open: Segment,
    /// Parts of `segments` and `open`, oldest first; the front one has stream-wide index `parts_base`.
    parts: VecDeque<Part>,
    parts_base: u64,
    /// Stream-wide index of the next part.
    parts_total: u64,
    last_part: Option<Position>,
    /// Longest part seen before `part_target` was fixed.
    longest_part: Duration,
    part_target: Option<Duration>,
    discontinuity_sequence: u64,
    /// The init segment that parts pushed from now on need.
    map: Option<InitName>,
    ended: bool,
    /// Where media time and wallclock were last tied together (stream start or the latest discontinuity).
    anchor_date: SystemTime,
    anchor_start: Duration,
    /// Stream-wide index of the newest independent part, and the distance in parts to the one before it: the
    /// encoder's keyframe cadence, which the preload hint relies on.
    last_independent: Option<u64>,
    gop_parts: Option<u64>,
    /// The last segment a group boundary started had another MSN than the group's.
    misaligned: bool,
    /// The longest `PART-TARGET` of the renditions of the stream's group, which `PART-HOLD-BACK` covers.
    group_part_target: Option<Duration>,
    /// Whether the next part starts a segment, when the group's timeline knows it better than the keyframe
    /// cadence does (an audio rendition, whose cuts the video decides).
    next_cut: Option<bool>,
}

/// Segments capacity reserved up front beyond `max_window_segments` (the open one and one being dropped).
const SEGMENT_SLACK: usize = 2;
/// Parts per segment reserved up front; the deque grows once to its steady size if segments hold more.
const PARTS_PER_SEGMENT_GUESS: usize = 8;

impl M3u8Manifest {
    /// An empty manifest; the stream starts at MSN 0.
    pub fn new(options: &Options) -> Self {
        let max_segments = options.max_window_segments().max(1);
        let empty = Segment {
            msn: 0,
            start: Duration::ZERO,
            duration: Duration::ZERO,
            ms: 0,
            parts: 0,
            first_part: 0,
            discontinuity: false,
            date: UNIX_EPOCH,
            map: None,
            group_at: None,
        };
        Self {
            target_duration: options.target_duration.max(1),
            max_target_duration: options.max_target_duration.max(options.target_duration).max(1),
            min_segment: options.min_segment,
            window: options.window.max(options.skip_boundary()),
            part_window: options.part_window,
            skip_boundary: options.skip_boundary(),
            max_parts: u32::try_from(options.max_parts_per_segment).unwrap_or(u32::MAX).max(1),
            max_segments,
            segments: VecDeque::with_capacity(max_segments + SEGMENT_SLACK),
            segments_total: Duration::ZERO,
            open: empty,
            parts: VecDeque::with_capacity((max_segments + SEGMENT_SLACK) * PARTS_PER_SEGMENT_GUESS),
            parts_base: 0,
            parts_total: 0,
            last_part: None,
            longest_part: Duration::ZERO,
            part_target: None,
            discontinuity_sequence: 0,
            map: None,
            ended: false,
            anchor_date: UNIX_EPOCH,
            anchor_start: Duration::ZERO,
            last_independent: None,
            gop_parts: None,
            misaligned: false,
            group_part_target: None,
            next_cut: None,
        }
    }

    /// An empty manifest whose first segment has MSN `first_msn`: for a stream re-created under an id that
    /// players and caches may still hold, so that its URLs never repeat those of the stream before it
    /// (checklist item 16: a given MSN keeps the same URI forever).
    pub fn starting_at(options: &Options, first_msn: u64) -> Self {
        let mut m = Self::new(options);
        m.open.msn = first_msn;
        m
    }

    /// Names the init segment that the parts pushed from now on need. A new init once parts exist changes the
    /// timeline, so the caller pushes the next part with `discontinuity`; that part's segment then carries its own
    /// `EXT-X-MAP` with the new init's URI. Init names follow from their bytes, so no player or cache keeps using
    /// an old init under an unchanged URI.
    pub fn set_map(&mut self, name: InitName) {
        self.map = Some(name);
    }

    /// Whether a listed segment, or the parts pushed from now on, need the init `name`: its owner must keep
    /// serving it.
    pub fn needs_map(&self, name: InitName) -> bool {
        let name = Some(name);
        self.map == name || self.open.map == name || self.segments.iter().any(|s| s.map == name)
    }

    /// Appends one part, first closing the open segment when the rollover rules say so (see the module docs).
    ///
    /// The stream's owner refuses parts once the stream has ended ([`crate::Error::StreamEnded`]); should one
    /// arrive anyway, the manifest resumes live and starts a new segment with a discontinuity rather than panic.
    pub fn push(&mut self, part: PartMeta) -> Pushed {
        self.push_at(part, None)
    }

    /// Whether [`push`](Self::push) would start a new segment with `part` by the stream's own rules.
    pub fn would_cut(&self, part: &PartMeta) -> bool {
        self.open.parts > 0
            && (part.discontinuity
                || self.ended
                || (part.independent && self.open.duration >= self.min_segment)
                || self.must_cut(round_ms(part.duration)))
    }

    /// The MSN of the open segment, once it has a part.
    pub fn open_msn(&self) -> Option<u64> {
        (self.open.parts > 0).then_some(self.open.msn)
    }

    /// [`push`](Self::push), where the group's timeline decides the rollover ([`crate::timeline`]): with
    /// [`Placement::Start`] the part starts a segment (the MSN the boundary gives when this is the stream's first
    /// part, its date, and an `EXTINF` from the boundaries' distance), with [`Placement::Continue`] it does not
    /// unless a discontinuity or a forced cut demands it. `None` follows the stream's own rules.
    pub fn push_at(&mut self, part: PartMeta, placement: Option<Placement>) -> Pushed {
        let mut warnings = Vec::new();
        let mut discontinuity = part.discontinuity;
        if self.ended {
            self.ended = false;
            discontinuity = true;
        }
        let ms = round_ms(part.duration);

        let mut closed = None;
        if self.open.parts > 0 {
            let forced = self.must_cut(ms);
            let keyframe = part.independent && self.open.duration >= self.min_segment;
            let (cut, boundary) = match placement {
                None => (discontinuity || keyframe || forced, false),
                Some(Placement::Start(b)) => {
                    if let Some(from) = self.open.group_at.filter(|&from| b.at > from) {
                        // The group's distance between the boundaries: the same text in every rendition.
                        self.open.ms = round_ms(Duration::from_nanos(b.at - from));
                    }
                    (true, true)
                }
                Some(Placement::Continue) => (discontinuity || forced, false),
            };
            if cut {
                self.longest_part = self.longest_part.max(part.duration);
                let configured = self.target_duration;
                let c = self.close();
                if forced && !discontinuity && !keyframe && !boundary {
                    warnings.push(Warning::ForcedCut { msn: c.msn, duration: c.duration });
                }
                if self.target_duration > configured {
                    warnings.push(Warning::TargetDurationRaised {
                        gop: c.duration,
                        from: configured,
                        to: self.target_duration,
                    });
                }
                closed = Some(c);
            }
        }

        if self.open.parts == 0 {
            // Nothing precedes the first segment of the stream, so a discontinuity there means nothing.
            self.open.discontinuity = discontinuity && self.parts_total > 0;
            if self.parts_total == 0 || discontinuity {
                self.anchor_date = part.wallclock;
                self.anchor_start = self.open.start;
            }
            self.open.date = add_time(self.anchor_date, self.open.start - self.anchor_start);
            self.open.map = self.map;
            self.open.group_at = None;
            if let Some(Placement::Start(b)) = placement {
                if self.parts_total == 0 {
                    // The stream's first part joins the group's numbering (never below an MSN its id used).
                    self.open.msn = self.open.msn.max(b.msn);
                }
                // Reported when it starts, not at every segment after it.
                let misaligned = self.open.msn != b.msn;
                if misaligned && !self.misaligned {
                    warnings.push(Warning::Misaligned { msn: self.open.msn, group_msn: b.msn });
                }
                self.misaligned = misaligned;
                self.open.date = b.date;
                self.open.group_at = Some(b.at);
                self.anchor_date = b.date;
                self.anchor_start = self.open.start;
            }
        }

        let position = Position::new(self.open.msn, self.open.parts);
        match self.part_target {
            Some(target) if part.duration > target => {
                warnings.push(Warning::PartOverTarget { position, duration: part.duration, part_target: target });
            }
            Some(_) => {}
            None => self.longest_part = self.longest_part.max(part.duration),
        }
        if part.independent {
            if let Some(prev) = self.last_independent {
                self.gop_parts = Some(self.parts_total - prev);
            }
            self.last_independent = Some(self.parts_total);
        }
        self.parts.push_back(Part { ms, independent: part.independent });
        self.parts_total += 1;
        self.open.parts += 1;
        self.open.duration += part.duration;
        self.open.ms += ms;
        self.last_part = Some(position);
        Pushed { position, closed, warnings }
    }

    /// Closes the open segment (if it has parts) and marks the playlist ended (`EXT-X-ENDLIST`).
    pub fn end(&mut self) -> Option<ClosedSegment> {
        let closed = (self.open.parts > 0).then(|| self.close());
        self.ended = true;
        closed
    }

    /// The playlist carries `EXT-X-ENDLIST`.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// What the stream has published, for the position watch.
    pub fn edge(&self) -> Edge {
        Edge {
            last_part: self.last_part,
            last_segment: self.segments.back().map(|s| s.msn),
            part_target: self.part_target,
            hint: self.next_part(),
            ended: self.ended,
            removed: false,
        }
    }

    /// Sets the longest `PART-TARGET` of the renditions of the stream's group: `PART-HOLD-BACK` is three times
    /// the longest of it and the stream's own, so that every rendition advertises the same.
    pub fn set_group_part_target(&mut self, longest: Option<Duration>) {
        self.group_part_target = longest;
    }

    /// Tells whether the next part will start a segment (`None`: judge by the keyframe cadence), for the preload
    /// hint: a rendition that follows its group's timeline knows where the next boundary is.
    pub fn set_next_cut(&mut self, next_cut: Option<bool>) {
        self.next_cut = next_cut;
    }

    /// The advertised `PART-TARGET`: fixed when the first segment closes.
    pub fn part_target(&self) -> Option<Duration> {
        self.part_target
    }

    /// The part the `EXT-X-PRELOAD-HINT` names: the part [`push`](Self::push) will most likely produce next.
    /// `None` once ended.
    pub fn next_part(&self) -> Option<Position> {
        if self.ended {
            return None;
        }
        if self.open.parts == 0 {
            return Some(Position::new(self.open.msn, 0));
        }
        Some(if self.must_cut(0) || self.next_cut.unwrap_or_else(|| self.expects_cut()) {
            Position::new(self.open.msn + 1, 0)
        } else {
            Position::new(self.open.msn, self.open.parts)
        })
    }

    /// `EXT-X-MEDIA-SEQUENCE`: the MSN of the first segment of the current window.
    pub fn first_msn(&self) -> u64 {
        self.segments.front().map_or(self.open.msn, |s| s.msn)
    }

    /// Whether a playlist may be served: it holds at least one complete segment (checklist item 19).
    pub fn can_render(&self) -> bool {
        !self.segments.is_empty()
    }

    /// Appends the media playlist to `out`: the full form, or with `delta` the delta-update form (checklist
    /// section D) when it would skip anything. An ended playlist is always rendered in full (item 47).
    ///
    /// Meant for [`can_render`](Self::can_render) states; before the first segment closes the output is still
    /// well-formed, with `PART-TARGET` taken from the parts seen so far.
    pub fn render(&self, delta: bool, reports: &[RenditionReport], out: &mut Vec<u8>) {
        let skipped = if delta && !self.ended { self.skippable() } else { 0 };
        let td = u64::from(self.target_duration);
        let part_target = ceil_ms(self.part_target.unwrap_or(self.longest_part));
        // The same PART-HOLD-BACK in every rendition of a group (checklist items 21 and 71).
        let hold_back = part_target.max(self.group_part_target.map_or(0, ceil_ms));

        out.extend_from_slice(if skipped > 0 {
            b"#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:"
        } else {
            b"#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:"
        });
        put_u64(out, td);
        out.extend_from_slice(b"\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=");
        put_u64(out, self.skip_boundary.as_secs());
        out.extend_from_slice(b".0,PART-HOLD-BACK=");
        put_ms(out, hold_back * 3);
        out.extend_from_slice(b",HOLD-BACK=");
        put_u64(out, 3 * td);
        out.extend_from_slice(b".0\n#EXT-X-PART-INF:PART-TARGET=");
        put_ms(out, part_target);
        out.extend_from_slice(b"\n#EXT-X-MEDIA-SEQUENCE:");
        put_u64(out, self.first_msn());
        out.extend_from_slice(b"\n#EXT-X-DISCONTINUITY-SEQUENCE:");
        put_u64(out, self.discontinuity_sequence);
        out.extend_from_slice(b"\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        if skipped > 0 {
            out.extend_from_slice(b"#EXT-X-SKIP:SKIPPED-SEGMENTS=");
            put_u64(out, skipped as u64);
            out.push(b'\n');
        }
        let first_map = self.segments.get(skipped).map_or(self.open.map, |s| s.map);
        if let Some(name) = first_map {
            put_map(out, name);
        }

        let end = if self.open.parts > 0 {
            self.open.end()
        } else {
            self.segments.back().map_or(Duration::ZERO, Segment::end)
        };
        let mut first = true;
        let mut map = first_map;
        for seg in self.segments.iter().skip(skipped) {
            self.put_segment_head(seg, first, map, out);
            first = false;
            map = seg.map;
            if end.saturating_sub(seg.end()) <= self.part_window {
                self.put_parts(seg, out);
            }
            out.extend_from_slice(b"#EXTINF:");
            put_ms(out, seg.ms);
            out.extend_from_slice(b",\ns");
            put_u64(out, seg.msn);
            out.extend_from_slice(b".mp4\n");
        }
        if self.open.parts > 0 {
            self.put_segment_head(&self.open, first, map, out);
            self.put_parts(&self.open, out);
        }

        if let Some(next) = self.next_part() {
            out.extend_from_slice(b"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"");
            put_part_uri(out, next);
            out.extend_from_slice(b"\"\n");
        } else {
            out.extend_from_slice(b"#EXT-X-ENDLIST\n");
        }
        for report in reports {
            out.extend_from_slice(b"#EXT-X-RENDITION-REPORT:URI=\"");
            out.extend_from_slice(report.uri.as_bytes());
            out.extend_from_slice(b"\",LAST-MSN=");
            put_u64(out, report.last.msn);
            out.extend_from_slice(b",LAST-PART=");
            put_u64(out, u64::from(report.last.part));
            out.push(b'\n');
        }
    }

    /// Tags that apply to a whole segment, before its first part (item 7): the discontinuity, and the date on
    /// the first listed segment and after every discontinuity (item 12).
    /// `map` is the init of the segment listed before it: a segment that needs another one gets its own
    /// `EXT-X-MAP`.
    fn put_segment_head(&self, seg: &Segment, first: bool, map: Option<InitName>, out: &mut Vec<u8>) {
        if seg.discontinuity {
            out.extend_from_slice(b"#EXT-X-DISCONTINUITY\n");
        }
        if let Some(name) = seg.map.filter(|_| seg.map != map) {
            put_map(out, name);
        }
        if first || seg.discontinuity {
            out.extend_from_slice(b"#EXT-X-PROGRAM-DATE-TIME:");
            put_date(out, seg.date);
            out.push(b'\n');
        }
    }

    fn put_parts(&self, seg: &Segment, out: &mut Vec<u8>) {
        let from = (seg.first_part - self.parts_base) as usize;
        for (i, part) in self.parts.range(from..from + seg.parts as usize).enumerate() {
            out.extend_from_slice(b"#EXT-X-PART:DURATION=");
            put_ms(out, part.ms);
            out.extend_from_slice(b",URI=\"");
            put_part_uri(out, Position::new(seg.msn, i as u32));
            out.extend_from_slice(if part.independent { b"\",INDEPENDENT=YES\n" } else { b"\"\n" });
        }
    }

    /// How many segments a delta update skips: those that end more than the skip boundary before the end of the
    /// last complete segment (the conservative reading of item 45, checklist section 3).
    fn skippable(&self) -> usize {
        let Some(last) = self.segments.back() else { return 0 };
        let end = last.end();
        self.segments.iter().take_while(|s| end.saturating_sub(s.end()) > self.skip_boundary).count()
    }

    /// Whether a part of `ms` milliseconds must start a new segment: the open segment is full, or a part as long
    /// as the longest one expected ([`guard_ms`](Self::guard_ms)), or this one if longer, would round its
    /// `EXTINF` above the target. Judging by the expected length rather than this part's own is what lets the
    /// preload hint announce a forced cut and `push` then honour it.
    fn must_cut(&self, ms: u64) -> bool {
        let next = ms.max(self.guard_ms());
        self.open.parts >= self.max_parts || rounds_above(self.open.ms + next, self.longest_segment())
    }

    /// The longest `EXTINF` (rounded), in seconds, the open segment may reach, so also the longest part: the target
    /// duration, or while the first segment waits for its GOP to end (the target duration is not fixed yet), the
    /// most it may be raised to.
    pub fn longest_segment(&self) -> u32 {
        if self.part_target.is_none() {
            self.max_target_duration
        } else {
            self.target_duration
        }
    }

    /// `EXT-X-TARGETDURATION`, seconds: fixed when the first segment closes (raised to fit it if it was longer than
    /// the configured one).
    pub fn target_duration(&self) -> u32 {
        self.target_duration
    }

    /// The longest part expected: `PART-TARGET` once known, else the longest part so far.
    fn guard_ms(&self) -> u64 {
        ceil_ms(self.part_target.unwrap_or(self.longest_part))
    }

    /// Whether the next part will most likely start a new segment: it must ([`must_cut`](Self::must_cut)), or
    /// the keyframe cadence says it will be independent and the open segment is long enough.
    fn expects_cut(&self) -> bool {
        if self.must_cut(0) {
            return true;
        }
        let keyframe_next = match (self.last_independent, self.gop_parts) {
            (Some(last), Some(gop)) if gop > 0 => (self.parts_total - last) % gop == 0,
            _ => false,
        };
        keyframe_next && self.open.duration >= self.min_segment
    }

    /// Closes the open segment (it has parts), slides the window and opens the next one.
    fn close(&mut self) -> ClosedSegment {
        let seg = self.open;
        if self.part_target.is_none() {
            // Rounded up so that every part seen so far is within it (item 69).
            self.part_target = Some(Duration::from_millis(ceil_ms(self.longest_part).max(1)));
            // The first GOP decides: every EXTINF rounds to at most TARGETDURATION (item 68), and the delta
            // boundary and the window grow with it (items 44, 74).
            self.fit_target_duration(seg.ms);
        }
        self.segments.push_back(seg);
        self.segments_total += seg.duration;
        while self.segments.len() > 1 {
            let Some(oldest) = self.segments.front() else { break };
            let over_count = self.segments.len() > self.max_segments;
            // The count limit wins over the media-time rule: the part and segment rings are sized by it, and a
            // listed segment must stay downloadable.
            if !over_count && self.segments_total - oldest.duration < self.window {
                break;
            }
            self.drop_oldest();
        }
        self.open = Segment {
            msn: seg.msn + 1,
            start: seg.end(),
            duration: Duration::ZERO,
            ms: 0,
            parts: 0,
            first_part: self.parts_total,
            discontinuity: false,
            date: seg.date,
            map: seg.map,
            group_at: None,
        };
        ClosedSegment { msn: seg.msn, duration: seg.duration, parts: seg.parts }
    }

    /// Raises the target duration to fit a first segment of `ms` (shown) milliseconds, if it is longer than the
    /// configured one; the skip boundary (6 × TD) and the window (at least the skip boundary) follow.
    fn fit_target_duration(&mut self, ms: u64) {
        let needed = u32::try_from((ms + 500) / 1000).unwrap_or(u32::MAX).min(self.max_target_duration);
        if needed <= self.target_duration {
            return;
        }
        self.target_duration = needed;
        self.skip_boundary = self.skip_boundary.max(Duration::from_secs(6 * u64::from(needed)));
        self.window = self.window.max(self.skip_boundary);
    }

    fn drop_oldest(&mut self) {
        let Some(old) = self.segments.pop_front() else { return };
        self.segments_total -= old.duration;
        let n = (old.parts as usize).min(self.parts.len());
        self.parts.drain(..n);
        self.parts_base += n as u64;
        // The discontinuity tag leaves with the segment; the sequence number keeps the later ones right (item 15).
        if old.discontinuity {
            self.discontinuity_sequence += 1;
        }
    }
}

/// `#EXT-X-MAP` naming the init segment `name`.
fn put_map(out: &mut Vec<u8>, name: InitName) {
    out.extend_from_slice(b"#EXT-X-MAP:URI=\"");
    name.put(out);
    out.extend_from_slice(b"\"\n");
}

/// Whether `ms` rounds (to the nearest second, halves up) above `target` seconds.
fn rounds_above(ms: u64, target: u32) -> bool {
    (ms + 500) / 1000 > u64::from(target)
}

fn round_ms(d: Duration) -> u64 {
    u64::try_from((d.as_nanos() + 500_000) / 1_000_000).unwrap_or(u64::MAX / 4)
}

fn ceil_ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX / 4)
}

fn add_time(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or(t)
}

/// Appends a decimal integer without going through `fmt`.
fn put_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `n` zero-padded to `width` digits (at most 3, or more when `n` needs them).
fn put_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = 1;
    let mut x = n / 10;
    while x > 0 {
        digits += 1;
        x /= 10;
    }
    for _ in digits..width {
        out.push(b'0');
    }
    put_u64(out, n);
}

/// Appends milliseconds as seconds with three decimals, e.g. `1.000`.
fn put_ms(out: &mut Vec<u8>, ms: u64) {
    put_u64(out, ms / 1000);
    out.push(b'.');
    put_padded(out, ms % 1000, 3);
}

fn put_part_uri(out: &mut Vec<u8>, p: Position) {
    out.push(b'p');
    put_u64(out, p.msn);
    out.push(b'.');
    put_u64(out, u64::from(p.part));
    out.extend_from_slice(b".mp4");
}

/// Appends `t` as an ISO 8601 UTC date with milliseconds, e.g. `2026-03-01T12:00:00.000Z` (times before 1970
/// are written as 1970-01-01).
fn put_date(out: &mut Vec<u8>, t: SystemTime) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rest = secs % 86_400;
    put_padded(out, year, 4);
    out.push(b'-');
    put_padded(out, month, 2);
    out.push(b'-');
    put_padded(out, day, 2);
    out.push(b'T');
    put_padded(out, rest / 3600, 2);
    out.push(b':');
    put_padded(out, rest / 60 % 60, 2);
    out.push(b':');
    put_padded(out, rest % 60, 2);
    out.push(b'.');
    put_padded(out, u64::from(since.subsec_millis()), 3);
    out.push(b'Z');
}

/// Year, month (1–12) and day (1–31) of the proleptic Gregorian calendar, `days` after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, restricted to dates from 1970 on).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// 2026-03-01T12:00:00Z, the date of the checklist's example.
    const T0: u64 = 1_772_366_400;

    /// The init every [`Feed`] names: `init-bb54068aea85faa7.mp4` in the expected texts.
    fn init() -> InitName {
        InitName::of(b"init")
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(ms)
    }

    /// TD 1 s, 1 s segments of two 0.5 s parts: short enough to write whole playlists out.
    fn small() -> Options {
        Options {
            target_duration: 1,
            min_segment: Duration::from_secs(1),
            window: Duration::from_secs(6),
            part_window: Duration::from_secs(3),
            ..Options::default()
        }
    }

    /// The checklist's section 3 example: TD 4 s, segments of four 1 s parts, a 48 s window.
    fn checklist() -> Options {
        Options {
            target_duration: 4,
            min_segment: Duration::from_secs(4),
            window: Duration::from_secs(48),
            part_window: Duration::from_secs(12),
            ..Options::default()
        }
    }

    /// Pushes parts of a fixed duration with a keyframe every `gop` parts; wallclock follows media time.
    struct Feed {
        m: M3u8Manifest,
        part_ms: u64,
        gop: u64,
        n: u64,
    }

    impl Feed {
        fn new(options: &Options, part_ms: u64, gop: u64) -> Self {
            options.validate().unwrap();
            let mut m = M3u8Manifest::new(options);
            m.set_map(init());
            Self { m, part_ms, gop, n: 0 }
        }

        fn push(&mut self) -> Pushed {
            let part = PartMeta {
                duration: Duration::from_millis(self.part_ms),
                independent: self.n % self.gop == 0,
                discontinuity: false,
                wallclock: at(self.n * self.part_ms),
            };
            self.n += 1;
            self.m.push(part)
        }

        fn push_n(&mut self, n: usize) {
            for _ in 0..n {
                self.push();
            }
        }

        /// Pushes `n` parts and answers what the last one did.
        fn push_n_last(&mut self, n: usize) -> Pushed {
            self.push_n(n - 1);
            self.push()
        }

        fn text(&self, delta: bool, reports: &[RenditionReport]) -> String {
            let mut out = Vec::new();
            self.m.render(delta, reports, &mut out);
            String::from_utf8(out).unwrap()
        }
    }

    const HEADER_DEFAULTS: &str = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=0.600,HOLD-BACK=6.0
#EXT-X-PART-INF:PART-TARGET=0.200
";

    const SEGMENT_0_DEFAULTS: &str = "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z
#EXT-X-PART:DURATION=0.200,URI=\"p0.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.200,URI=\"p0.1.mp4\"
#EXT-X-PART:DURATION=0.200,URI=\"p0.2.mp4\"
#EXT-X-PART:DURATION=0.200,URI=\"p0.3.mp4\"
#EXT-X-PART:DURATION=0.200,URI=\"p0.4.mp4\"
#EXTINF:1.000,
s0.mp4
";

    // Items 4, 5, 11, 12, 13, 14, 19, 20, 21, 37, 44, 71, 72: the header of the first version that may be served.
    #[test]
    fn item_19_first_renderable_version_has_one_complete_segment() {
        let mut f = Feed::new(&Options::default(), 200, 5);
        f.push_n(5);
        assert!(!f.m.can_render());
        assert_eq!(f.m.part_target(), None);
        assert_eq!(f.m.edge().last_segment, None);
        let p = f.push();
        assert_eq!(p.position, Position::new(1, 0));
        assert_eq!(p.closed, Some(ClosedSegment { msn: 0, duration: Duration::from_secs(1), parts: 5 }));
        assert!(p.warnings.is_empty());
        assert!(f.m.can_render());
        let expected = [
            HEADER_DEFAULTS,
            "#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"
",
            SEGMENT_0_DEFAULTS,
            "#EXT-X-PART:DURATION=0.200,URI=\"p1.0.mp4\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p1.1.mp4\"
",
        ]
        .concat();
        assert_eq!(f.text(false, &[]), expected);
        // Nothing to skip yet: the delta form is the full playlist (checklist section 5).
        assert_eq!(f.text(true, &[]), expected);
        assert_eq!(
            f.m.edge(),
            Edge {
                last_part: Some(Position::new(1, 0)),
                last_segment: Some(0),
                part_target: Some(Duration::from_millis(200)),
                hint: Some(Position::new(1, 1)),
                ended: false,
                removed: false,
            }
        );
    }

    // Items 6, 8, 9: parts restart at 0 in the new parent and sit between the previous URI and their EXTINF.
    #[test]
    fn item_6_rollover_to_a_new_segment() {
        let mut f = Feed::new(&Options::default(), 200, 5);
        f.push_n(10);
        let p = f.push();
        assert_eq!(p.position, Position::new(2, 0));
        assert_eq!(p.closed, Some(ClosedSegment { msn: 1, duration: Duration::from_secs(1), parts: 5 }));
        let expected = [
            HEADER_DEFAULTS,
            "#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"
",
            SEGMENT_0_DEFAULTS,
            "#EXT-X-PART:DURATION=0.200,URI=\"p1.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.200,URI=\"p1.1.mp4\"
#EXT-X-PART:DURATION=0.200,URI=\"p1.2.mp4\"
#EXT-X-PART:DURATION=0.200,URI=\"p1.3.mp4\"
#EXT-X-PART:DURATION=0.200,URI=\"p1.4.mp4\"
#EXTINF:1.000,
s1.mp4
#EXT-X-PART:DURATION=0.200,URI=\"p2.0.mp4\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p2.1.mp4\"
",
        ]
        .concat();
        assert_eq!(f.text(false, &[]), expected);
    }

    // Items 37, 38: the hint names the part push really produces next, in both forms, with a regular 5-part GOP.
    #[test]
    fn item_38_preload_hint_names_the_next_part_in_both_forms() {
        let mut f = Feed::new(&Options::default(), 200, 5);
        f.push_n(6);
        // Mid-GOP: the next part of the open segment.
        assert_eq!(f.m.next_part(), Some(Position::new(1, 1)));
        f.push_n(4);
        // 1.4 published, open segment 1.0 s, cadence 5 parts: the next part starts a GOP, so a new segment.
        assert_eq!(f.m.next_part(), Some(Position::new(2, 0)));
        assert!(f.text(false, &[]).ends_with(
            "#EXT-X-PART:DURATION=0.200,URI=\"p1.4.mp4\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p2.0.mp4\"
"
        ));
        assert_eq!(f.push().position, Position::new(2, 0));
        for _ in 0..100 {
            let hint = f.m.next_part();
            assert_eq!(Some(f.push().position), hint);
        }
    }

    // The documented choice: before the cadence is known the hint says "next part of this segment", and an
    // independent part that arrives once the segment is long enough still starts a new segment.
    #[test]
    fn keyframe_beats_a_hint_made_before_the_cadence_was_known() {
        let mut f = Feed::new(&Options::default(), 200, 5);
        f.push_n(5);
        assert_eq!(f.m.next_part(), Some(Position::new(0, 5)));
        assert_eq!(f.push().position, Position::new(1, 0));
    }

    // Equally: a hinted new segment whose first part turns out not to be independent stays in the open segment.
    #[test]
    fn a_wrong_new_segment_hint_keeps_a_dependent_part_in_the_open_segment() {
        let mut f = Feed::new(&Options::default(), 200, 5);
        f.push_n(10);
        assert_eq!(f.m.next_part(), Some(Position::new(2, 0)));
        f.gop = 7; // the keyframe is late: part 10 is not independent
        let p = f.push();
        assert_eq!(p.position, Position::new(1, 5));
        assert_eq!(p.closed, None);
    }

    const HEADER_SMALL: &str = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,PART-HOLD-BACK=1.500,HOLD-BACK=3.0
#EXT-X-PART-INF:PART-TARGET=0.500
";

    // Item 74: parts are listed only for segments ending within 3 TD of the playlist end; item 15: the window slides.
    #[test]
    fn item_74_parts_vanish_from_segments_older_than_3_td() {
        let mut f = Feed::new(&small(), 500, 2);
        f.push_n(17);
        let expected = [
            HEADER_SMALL,
            "#EXT-X-MEDIA-SEQUENCE:2
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:02.000Z
#EXTINF:1.000,
s2.mp4
#EXTINF:1.000,
s3.mp4
#EXTINF:1.000,
s4.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p5.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p5.1.mp4\"
#EXTINF:1.000,
s5.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p6.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p6.1.mp4\"
#EXTINF:1.000,
s6.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p7.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p7.1.mp4\"
#EXTINF:1.000,
s7.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p8.0.mp4\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p8.1.mp4\"
",
        ]
        .concat();
        assert_eq!(f.text(false, &[]), expected);
        f.push();
        // Segment 5 ends exactly 3 TD before the end: still listed.
        assert!(f.text(false, &[]).contains("p5.1.mp4"));
        f.push();
        let expected = [
            HEADER_SMALL,
            "#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:03.000Z
#EXTINF:1.000,
s3.mp4
#EXTINF:1.000,
s4.mp4
#EXTINF:1.000,
s5.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p6.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p6.1.mp4\"
#EXTINF:1.000,
s6.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p7.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p7.1.mp4\"
#EXTINF:1.000,
s7.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p8.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p8.1.mp4\"
#EXTINF:1.000,
s8.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p9.0.mp4\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p9.1.mp4\"
",
        ]
        .concat();
        assert_eq!(f.text(false, &[]), expected);
        assert_eq!(f.m.first_msn(), 3);
    }

    // Items 45, 46, 49, 11, 12 and checklist section 3: the delta form of a 48 s window, MSNs 0-11 for 1000-1011.
    #[test]
    fn item_46_delta_update_matches_the_checklist_example() {
        let mut f = Feed::new(&checklist(), 1000, 4);
        f.push_n(12 * 4 + 2);
        let reports = [RenditionReport { uri: "../v360/index.m3u8".into(), last: Position::new(12, 1) }];
        let delta = f.text(true, &reports);
        let mut expected = String::from(
            "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=24.0,PART-HOLD-BACK=3.000,HOLD-BACK=12.0
#EXT-X-PART-INF:PART-TARGET=1.000
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SKIP:SKIPPED-SEGMENTS=5
#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:20.000Z
#EXTINF:4.000,
s5.mp4
#EXTINF:4.000,
s6.mp4
#EXTINF:4.000,
s7.mp4
#EXTINF:4.000,
s8.mp4
",
        );
        for msn in 9..=11 {
            expected += &format!(
                "#EXT-X-PART:DURATION=1.000,URI=\"p{msn}.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.000,URI=\"p{msn}.1.mp4\"
#EXT-X-PART:DURATION=1.000,URI=\"p{msn}.2.mp4\"
#EXT-X-PART:DURATION=1.000,URI=\"p{msn}.3.mp4\"
#EXTINF:4.000,
s{msn}.mp4
"
            );
        }
        expected += "#EXT-X-PART:DURATION=1.000,URI=\"p12.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.000,URI=\"p12.1.mp4\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p12.2.mp4\"
#EXT-X-RENDITION-REPORT:URI=\"../v360/index.m3u8\",LAST-MSN=12,LAST-PART=1
";
        assert_eq!(delta, expected);

        // Every non-skipped line is as in the full playlist (item 46), which lists all 12 segments at VERSION 6.
        let full = f.text(false, &reports);
        let tail = "#EXTINF:4.000,\ns5.mp4\n";
        assert_eq!(full[full.find(tail).unwrap()..], delta[delta.find(tail).unwrap()..]);
        assert!(full.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n"));
        assert!(!full.contains("EXT-X-SKIP"));
        let parsed = m3u8_rs::parse_media_playlist_res(full.as_bytes()).unwrap();
        assert_eq!((parsed.media_sequence, parsed.segments.len()), (0, 12));
        let parsed = m3u8_rs::parse_media_playlist_res(delta.as_bytes()).unwrap();
        assert_eq!((parsed.media_sequence, parsed.segments.len()), (0, 7));
    }

    // Checklist section 5: a delta that would skip nothing is the full playlist; item 47: so is an ended one.
    #[test]
    fn item_47_delta_falls_back_to_the_full_playlist() {
        let mut f = Feed::new(&checklist(), 1000, 4);
        f.push_n(7 * 4 + 1);
        // Segment 0 ends exactly 24 s before the end of segment 6: not farther than the skip boundary.
        assert_eq!(f.text(true, &[]), f.text(false, &[]));
        f.push_n(4);
        assert!(f.text(true, &[]).contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n"));
        f.m.end();
        assert_eq!(f.text(true, &[]), f.text(false, &[]));
    }

    // Item 18: ENDLIST once ended, and no PRELOAD-HINT with it.
    #[test]
    fn item_18_endlist_has_no_preload_hint() {
        let mut f = Feed::new(&small(), 500, 2);
        f.push_n(5);
        let closed = f.m.end();
        assert_eq!(closed, Some(ClosedSegment { msn: 2, duration: Duration::from_millis(500), parts: 1 }));
        assert_eq!(f.m.end(), None);
        assert!(f.m.is_ended());
        assert_eq!(f.m.next_part(), None);
        assert_eq!(f.m.edge().last_segment, Some(2));
        assert!(f.m.edge().ended);
        let expected = [
            HEADER_SMALL,
            "#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z
#EXT-X-PART:DURATION=0.500,URI=\"p0.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p0.1.mp4\"
#EXTINF:1.000,
s0.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p1.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p1.1.mp4\"
#EXTINF:1.000,
s1.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p2.0.mp4\",INDEPENDENT=YES
#EXTINF:0.500,
s2.mp4
#EXT-X-ENDLIST
",
        ]
        .concat();
        assert_eq!(f.text(false, &[]), expected);
        let parsed = m3u8_rs::parse_media_playlist_res(expected.as_bytes()).unwrap();
        assert!(parsed.end_list);
        assert_eq!(parsed.segments.len(), 3);
    }

    // Items 7, 12, 15: a discontinuity starts a segment with DISCONTINUITY and a fresh PDT before its first part;
    // the DISCONTINUITY-SEQUENCE goes up when that segment slides out.
    #[test]
    fn item_12_discontinuity_gets_a_date_and_bumps_the_sequence_when_it_slides_out() {
        let mut f = Feed::new(&small(), 500, 2);
        f.push_n(4);
        let restart = SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + 3600);
        let p = f.m.push(PartMeta {
            duration: Duration::from_millis(500),
            independent: true,
            discontinuity: true,
            wallclock: restart,
        });
        assert_eq!(p.position, Position::new(2, 0));
        assert!(p.closed.is_some());
        let expected = [
            HEADER_SMALL,
            "#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z
#EXT-X-PART:DURATION=0.500,URI=\"p0.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p0.1.mp4\"
#EXTINF:1.000,
s0.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p1.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p1.1.mp4\"
#EXTINF:1.000,
s1.mp4
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T13:00:00.000Z
#EXT-X-PART:DURATION=0.500,URI=\"p2.0.mp4\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p2.1.mp4\"
",
        ]
        .concat();
        assert_eq!(f.text(false, &[]), expected);

        // Continue the new timeline up to 8.0: 2.1, then segments 3-7 (the clock is only read at discontinuities).
        f.n = 1;
        f.push_n(1 + 2 * 5 + 1);
        let text = f.text(false, &[]);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"), "{text}");
        assert!(text.contains(
            "#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T13:00:00.000Z
#EXTINF:1.000,
s2.mp4
"
        ));
        f.push_n(2);
        let expected = [
            HEADER_SMALL,
            "#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T13:00:01.000Z
#EXTINF:1.000,
s3.mp4
#EXTINF:1.000,
s4.mp4
#EXTINF:1.000,
s5.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p6.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p6.1.mp4\"
#EXTINF:1.000,
s6.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p7.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p7.1.mp4\"
#EXTINF:1.000,
s7.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p8.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"p8.1.mp4\"
#EXTINF:1.000,
s8.mp4
#EXT-X-PART:DURATION=0.500,URI=\"p9.0.mp4\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p9.1.mp4\"
",
        ]
        .concat();
        assert_eq!(f.text(false, &[]), expected);
        let parsed = m3u8_rs::parse_media_playlist_res(expected.as_bytes()).unwrap();
        assert_eq!((parsed.media_sequence, parsed.discontinuity_sequence), (3, 1));
    }

    // Items 52-54: one report per other rendition, both attributes always, LAST-PART=0 included.
    #[test]
    fn item_54_rendition_reports_always_carry_both_attributes() {
        let mut f = Feed::new(&Options::default(), 200, 5);
        f.push_n(6);
        let reports = [
            RenditionReport { uri: "../v360/index.m3u8".into(), last: Position::new(1, 0) },
            RenditionReport { uri: "../a128/index.m3u8".into(), last: Position::new(0, 4) },
        ];
        let expected = [
            HEADER_DEFAULTS,
            "#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"
",
            SEGMENT_0_DEFAULTS,
            "#EXT-X-PART:DURATION=0.200,URI=\"p1.0.mp4\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p1.1.mp4\"
#EXT-X-RENDITION-REPORT:URI=\"../v360/index.m3u8\",LAST-MSN=1,LAST-PART=0
#EXT-X-RENDITION-REPORT:URI=\"../a128/index.m3u8\",LAST-MSN=0,LAST-PART=4
",
        ]
        .concat();
        assert_eq!(f.text(false, &reports), expected);
    }

    // Item 68: with no keyframe in time the segment is cut before its EXTINF would round above the target.
    #[test]
    fn item_68_forced_cut_keeps_extinf_within_the_target_duration() {
        // A target duration that cannot be raised for the long first GOP.
        let options = Options { max_target_duration: 2, ..Options::default() };
        let mut f = Feed::new(&options, 200, 1000);
        f.push_n(12);
        // 2.4 s open; 2.6 s would round to 3: the hint already names the new segment.
        assert_eq!(f.m.next_part(), Some(Position::new(1, 0)));
        let p = f.push();
        assert_eq!(p.position, Position::new(1, 0));
        assert_eq!(p.warnings, vec![Warning::ForcedCut { msn: 0, duration: Duration::from_millis(2400) }]);
        assert!(f.text(false, &[]).contains("#EXTINF:2.400,\ns0.mp4\n"));
    }

    // A first GOP longer than the target duration raises it to fit (rounded), and it stays fixed: the segments of
    // a 4 s GOP start at keyframes, with TARGETDURATION 4 and the boundaries that follow from it (items 44, 72).
    #[test]
    fn a_long_first_gop_raises_the_target_duration_once() {
        let mut f = Feed::new(&Options::default(), 200, 20);
        assert_eq!(f.m.next_part(), Some(Position::new(0, 0)));
        f.push_n(19);
        assert_eq!(f.m.next_part(), Some(Position::new(0, 19)), "no cut before the GOP ends: it may still fit");
        assert_eq!(f.m.target_duration(), 2, "not decided yet");
        let p = f.push_n_last(22);
        assert_eq!(p.position, Position::new(2, 0), "segments of 20 parts");
        let mut warnings = Vec::new();
        let mut g = Feed::new(&Options::default(), 200, 20);
        for _ in 0..100 {
            warnings.extend(g.push().warnings);
        }
        assert_eq!(
            warnings,
            vec![Warning::TargetDurationRaised { gop: Duration::from_secs(4), from: 2, to: 4 }],
            "raised once, and no forced cut after that"
        );
        assert_eq!(g.m.target_duration(), 4);
        let text = g.text(false, &[]);
        assert!(
            text.contains(
                "#EXT-X-TARGETDURATION:4
"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "CAN-SKIP-UNTIL=24.0,PART-HOLD-BACK=0.600,HOLD-BACK=12.0
"
            ),
            "{text}"
        );
        assert_eq!(text.lines().filter(|l| l.starts_with("#EXTINF:")).collect::<Vec<_>>(), ["#EXTINF:4.000,"; 4]);
        // Every listed segment starts with an independent part, and only there are keyframes.
        let first_parts: Vec<_> =
            text.lines().filter(|l| l.starts_with("#EXT-X-PART:") && l.contains(".0.mp4")).collect();
        assert!(first_parts.len() >= 2 && first_parts.iter().all(|l| l.ends_with("INDEPENDENT=YES")), "{text}");
        assert_eq!(text.matches("INDEPENDENT=YES").count(), first_parts.len());
    }

    // A first GOP longer than the most the target duration may be raised to: cut at that, without a keyframe.
    #[test]
    fn a_first_gop_over_the_maximum_is_cut_at_the_maximum() {
        let options = Options { max_target_duration: 6, window: Duration::from_secs(36), ..Options::default() };
        let mut f = Feed::new(&options, 200, 60);
        let mut warnings = Vec::new();
        for _ in 0..33 {
            warnings.extend(f.push().warnings);
        }
        // 6.4 s is the longest EXTINF that rounds to 6 (item 68).
        assert_eq!(
            warnings,
            vec![
                Warning::ForcedCut { msn: 0, duration: Duration::from_millis(6400) },
                Warning::TargetDurationRaised { gop: Duration::from_millis(6400), from: 2, to: 6 },
            ]
        );
        assert_eq!(f.m.target_duration(), 6);
    }

    #[test]
    fn max_parts_per_segment_forces_a_cut() {
        let options = Options { max_parts_per_segment: 4, ..Options::default() };
        let mut f = Feed::new(&options, 100, 1000);
        f.push_n(4);
        assert_eq!(f.m.next_part(), Some(Position::new(1, 0)));
        let p = f.push();
        assert_eq!(p.position, Position::new(1, 0));
        assert_eq!(p.warnings, vec![Warning::ForcedCut { msn: 0, duration: Duration::from_millis(400) }]);
    }

    fn meta(ms_micros: u64, independent: bool) -> PartMeta {
        PartMeta { duration: Duration::from_micros(ms_micros), independent, discontinuity: false, wallclock: at(0) }
    }

    // Item 69: PART-TARGET is the longest part of the first segment (closing part included), rounded up, fixed.
    #[test]
    fn item_69_part_target_is_learned_rounded_up_then_fixed() {
        let mut m = M3u8Manifest::new(&Options::default());
        for (i, us) in [200_000, 200_000, 200_500, 200_000, 200_000].into_iter().enumerate() {
            m.push(meta(us, i == 0));
        }
        assert_eq!(m.part_target(), None);
        m.push(meta(200_000, true));
        assert_eq!(m.part_target(), Some(Duration::from_millis(201)));
        let p = m.push(meta(250_000, false));
        assert_eq!(
            p.warnings,
            vec![Warning::PartOverTarget {
                position: Position::new(1, 1),
                duration: Duration::from_millis(250),
                part_target: Duration::from_millis(201),
            }]
        );
        assert_eq!(m.part_target(), Some(Duration::from_millis(201)));
        let mut out = Vec::new();
        m.render(false, &[], &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("PART-HOLD-BACK=0.603,"));
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.201\n"));
        // The part is still published, with its real duration; parts shown to the ms sum to the EXTINF.
        assert!(text.contains("#EXT-X-PART:DURATION=0.250,URI=\"p1.1.mp4\"\n"));
        assert!(text.contains("#EXTINF:1.001,\ns0.mp4\n"));

        let mut m = M3u8Manifest::new(&Options::default());
        for i in 0..5 {
            m.push(meta(200_000, i == 0));
        }
        m.push(meta(300_000, true));
        assert_eq!(m.part_target(), Some(Duration::from_millis(300)));
    }

    // The state lives in deques sized up front: once the window has filled, pushing and rendering do not grow them.
    #[test]
    fn steady_state_does_not_reallocate() {
        let mut f = Feed::new(&Options::default(), 200, 5);
        f.push_n(5 * 30);
        let capacity = (f.m.segments.capacity(), f.m.parts.capacity());
        let mut out = Vec::new();
        for _ in 0..5 * 100 {
            f.push();
            out.clear();
            f.m.render(false, &[], &mut out);
        }
        assert_eq!((f.m.segments.capacity(), f.m.parts.capacity()), capacity);
        assert_eq!(f.m.segments.len(), 24);
    }

    // Nothing precedes the first segment: a discontinuity flag on the very first part adds no tag.
    #[test]
    fn item_7_no_discontinuity_tag_on_the_first_segment_of_the_stream() {
        let mut m = M3u8Manifest::new(&small());
        let part = |independent, discontinuity| PartMeta {
            duration: Duration::from_millis(500),
            independent,
            discontinuity,
            wallclock: at(0),
        };
        m.push(part(true, true));
        m.push(part(false, false));
        m.push(part(true, false));
        let mut out = Vec::new();
        m.render(false, &[], &mut out);
        assert!(!String::from_utf8(out).unwrap().contains("DISCONTINUITY\n"));
        assert_eq!(m.discontinuity_sequence, 0);
    }

    // Callers refuse parts after the end; if one comes anyway the stream resumes on a new timeline, not a panic.
    #[test]
    fn a_part_after_the_end_resumes_with_a_discontinuity() {
        let mut f = Feed::new(&small(), 500, 2);
        f.push_n(3);
        f.m.end();
        let p = f.push();
        assert_eq!(p.position, Position::new(2, 0));
        assert!(!f.m.is_ended());
        let text = f.text(false, &[]);
        assert!(text.ends_with(
            "#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:01.500Z
#EXT-X-PART:DURATION=0.500,URI=\"p2.0.mp4\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p2.1.mp4\"
"
        ));
    }

    #[test]
    fn dates_are_utc_with_milliseconds() {
        let date = |secs: u64, ms: u64| {
            let mut out = Vec::new();
            put_date(&mut out, UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(date(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(date(T0, 7), "2026-03-01T12:00:00.007Z");
        assert_eq!(date(951_782_400, 999), "2000-02-29T00:00:00.999Z");
        assert_eq!(date(1_735_689_599, 120), "2024-12-31T23:59:59.120Z");
        assert_eq!(date(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    /// xorshift64*: deterministic, dependency-free randomness for the property test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn attr<'a>(line: &'a str, name: &str) -> &'a str {
        let at = line.find(name).unwrap() + name.len();
        let rest = &line[at..];
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        &rest[..rest.find([',', '"']).unwrap_or(rest.len())]
    }

    fn ms(decimal: &str) -> u64 {
        let (s, f) = decimal.split_once('.').unwrap();
        assert_eq!(f.len(), 3, "{decimal} has three decimals");
        s.parse::<u64>().unwrap() * 1000 + f.parse::<u64>().unwrap()
    }

    fn part_uri(uri: &str) -> Position {
        let (msn, part) = uri.strip_prefix('p').unwrap().strip_suffix(".mp4").unwrap().split_once('.').unwrap();
        Position::new(msn.parse().unwrap(), part.parse().unwrap())
    }

    /// What [`check`] read from a playlist.
    struct Seen {
        media_sequence: u64,
        discontinuity_sequence: u64,
        skipped: u64,
        segments: u64,
        total_ms: u64,
    }

    /// Walks a rendered playlist line by line and checks the invariants that hold for every version.
    fn check(m: &M3u8Manifest, text: &str, warned: &HashSet<Position>) -> Seen {
        let live = !m.is_ended();
        let mut seen = Seen { media_sequence: 0, discontinuity_sequence: 0, skipped: 0, segments: 0, total_ms: 0 };
        let (mut part_target, mut next_msn, mut hints) = (0, 0, 0);
        let (mut parts_ms, mut next_part) = (0, 0u32);
        let mut extinf = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                // Item 68: fixed for the life of the stream.
                assert_eq!(v, "2");
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:PART-TARGET=") {
                part_target = ms(v);
                assert_eq!(Some(Duration::from_millis(part_target)), m.part_target());
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                seen.media_sequence = v.parse().unwrap();
                next_msn = seen.media_sequence;
            } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
                seen.discontinuity_sequence = v.parse().unwrap();
            } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
                seen.skipped = v.parse().unwrap();
                next_msn += seen.skipped;
            } else if line.starts_with("#EXT-X-PART:") {
                let d = ms(attr(line, "DURATION="));
                let p = part_uri(attr(line, "URI="));
                // Items 6, 8: parts of one parent, in order from 0, before its EXTINF.
                assert_eq!(p, Position::new(next_msn, next_part), "{text}");
                // Item 69: within PART-TARGET unless the push said otherwise.
                assert!(d <= part_target || warned.contains(&p), "{p} {d} > {part_target}");
                next_part += 1;
                parts_ms += d;
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                let d = ms(v.strip_suffix(',').unwrap());
                // Every EXTINF is the sum of its parts' DURATIONs, and rounds to at most TARGETDURATION.
                assert!(next_part == 0 || d == parts_ms, "EXTINF {d} vs parts {parts_ms}");
                assert!((d + 500) / 1000 <= 2, "EXTINF {d} above the target");
                extinf = Some(d);
            } else if let Some(v) = line.strip_prefix('s') {
                assert_eq!(v, format!("{next_msn}.mp4"));
                seen.total_ms += extinf.take().unwrap();
                seen.segments += 1;
                next_msn += 1;
                next_part = 0;
                parts_ms = 0;
            } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=") {
                hints += 1;
                assert_eq!(Some(part_uri(v.trim_matches('"'))), m.next_part());
            }
        }
        // Items 18, 37: exactly one hint while live, none once ended.
        assert_eq!(hints, u32::from(live));
        assert_eq!(text.contains("#EXT-X-ENDLIST\n"), !live);
        assert_eq!(seen.media_sequence, m.first_msn());
        assert_eq!(next_msn - u64::from(next_part == 0), m.edge().last_part.map_or(0, |p| p.msn));
        seen
    }

    // Items 8, 15, 18, 37, 38, 68, 69, 74 over 10,000 random parts: jittered durations, GOPs of 1-15 parts that
    // change now and then (some longer than the target: forced cuts), rare discontinuities.
    #[test]
    fn property_random_pushes_keep_every_invariant() {
        let options = Options::default();
        let mut m = M3u8Manifest::new(&options);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut gop, mut since_keyframe) = (5, 0);
        let mut clock = at(0);
        let mut warned = HashSet::new();
        let mut discontinuities = Vec::new();
        let mut prev: Option<Position> = None;
        let (mut filled, mut last_seq, mut last_dseq) = (false, 0, 0);
        let mut out = Vec::new();
        let (mut forced, mut hint_misses) = (0, 0);
        for i in 0..10_000 {
            if rng.below(200) == 0 {
                gop = 1 + rng.below(15);
            }
            let duration = Duration::from_micros(150_000 + rng.below(250_000));
            let discontinuity = i > 0 && rng.below(700) == 0;
            if discontinuity {
                clock += Duration::from_secs(3600);
                since_keyframe = 0;
            }
            let independent = since_keyframe % gop == 0;
            since_keyframe += 1;
            let part = PartMeta { duration, independent, discontinuity, wallclock: clock };
            clock += duration;

            let hint = m.next_part();
            let open = (m.open.duration, m.open.parts);
            let guard = m.guard_ms();
            let pushed = m.push(part);
            let p = pushed.position;
            // Positions advance by one part, or to part 0 of the next MSN (item 8).
            if let Some(prev) = prev {
                assert!(
                    p == Position::new(prev.msn, prev.part + 1) || p == Position::new(prev.msn + 1, 0),
                    "{prev} -> {p}"
                );
            }
            prev = Some(p);
            assert_eq!(pushed.closed.is_some(), p.part == 0 && i > 0);
            // The hint is honoured unless the part itself rules it out (the documented choices).
            if Some(p) != hint {
                hint_misses += 1;
                let hint = hint.unwrap();
                if p.part == 0 {
                    // Unforeseeable: a discontinuity, a keyframe early in the cadence, or a part so long that it
                    // forces a cut nobody expected.
                    let keyframe = independent && open.0 >= options.min_segment;
                    assert!(discontinuity || keyframe || round_ms(duration) > guard, "{hint} -> {p}");
                } else {
                    // A hinted keyframe that did not come.
                    assert!(!independent && hint.part == 0 && open.1 < 64, "{hint} -> {p}");
                }
            }
            if discontinuity {
                assert_eq!(p.part, 0);
                discontinuities.push(p.msn);
            }
            for w in &pushed.warnings {
                match *w {
                    Warning::PartOverTarget { position, .. } => {
                        warned.insert(position);
                    }
                    Warning::ForcedCut { .. } => forced += 1,
                    Warning::TargetDurationRaised { .. } => panic!("a first GOP of 5 parts fits 2 s"),
                    Warning::Misaligned { .. } => panic!("no group here"),
                }
            }
            if !m.can_render() {
                continue;
            }
            for delta in [false, true] {
                out.clear();
                m.render(delta, &[], &mut out);
                let text = std::str::from_utf8(&out).unwrap();
                let seen = check(&m, text, &warned);
                // The independent parser is slow in debug builds: every 10th version is plenty.
                if i % 10 == 0 {
                    let parsed = m3u8_rs::parse_media_playlist_res(&out).unwrap();
                    assert_eq!(parsed.media_sequence, seen.media_sequence);
                    assert_eq!(parsed.segments.len() as u64, seen.segments);
                    assert_eq!(parsed.target_duration, 2);
                }
                // Item 15: the sequence numbers only grow, and count what slid out.
                assert!(seen.media_sequence >= last_seq && seen.discontinuity_sequence >= last_dseq);
                last_seq = seen.media_sequence;
                last_dseq = seen.discontinuity_sequence;
                let slid_out = discontinuities.iter().filter(|&&d| d < seen.media_sequence).count() as u64;
                assert_eq!(seen.discontinuity_sequence, slid_out);
                if delta {
                    assert_eq!(seen.segments + seen.skipped, m.segments.len() as u64);
                } else {
                    assert_eq!(seen.segments, m.segments.len() as u64);
                    // Once the window has filled it never holds less than 6 x TD (delta updates, item 74).
                    filled |= seen.total_ms >= 12_000;
                    assert!(!filled || seen.total_ms >= 12_000, "window {} ms", seen.total_ms);
                    assert!(seen.segments as usize <= options.max_window_segments());
                }
            }
        }
        assert!(filled && forced > 0 && !discontinuities.is_empty(), "the generator covers the cases");
        eprintln!("{forced} forced cuts, {} over-target parts, {hint_misses} hint misses", warned.len());
        assert!(hint_misses < 1000, "{hint_misses} hint misses");
        m.end();
        out.clear();
        m.render(true, &[], &mut out);
        check(&m, std::str::from_utf8(&out).unwrap(), &warned);
    }

    #[test]
    fn item_16_a_recreated_stream_starts_past_the_old_msns() {
        let mut m = M3u8Manifest::starting_at(&Options::default(), 100);
        for i in 0..6 {
            m.push(PartMeta {
                duration: Duration::from_millis(200),
                independent: i % 5 == 0,
                discontinuity: false,
                wallclock: UNIX_EPOCH,
            });
        }
        assert_eq!(m.first_msn(), 100);
        assert_eq!(m.edge().last_part, Some(Position::new(101, 0)));
        let mut out = Vec::new();
        m.render(false, &[], &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:100\n") && text.contains("\ns100.mp4\n"), "{text}");
    }

    #[test]
    fn item_7_a_new_init_gets_its_own_map_after_the_discontinuity() {
        let part = |i: u64, discontinuity: bool| PartMeta {
            duration: Duration::from_millis(200),
            independent: i % 5 == 0,
            discontinuity,
            wallclock: UNIX_EPOCH,
        };
        let mut m = M3u8Manifest::new(&Options::default());
        m.set_map(init());
        for i in 0..10 {
            m.push(part(i, false));
        }
        let restarted = InitName::of(b"init1");
        assert!(!m.needs_map(restarted));
        m.set_map(restarted);
        assert!(m.needs_map(init()) && m.needs_map(restarted), "both are listed or about to be");
        for i in 10..16 {
            m.push(part(i, i == 10));
        }
        for delta in [false, true] {
            let mut out = Vec::new();
            m.render(delta, &[], &mut out);
            let text = String::from_utf8(out).unwrap();
            let maps: Vec<&str> = text.lines().filter(|l| l.starts_with("#EXT-X-MAP")).collect();
            assert_eq!(
                maps,
                ["#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\"", "#EXT-X-MAP:URI=\"init-f191fdfc7445fab3.mp4\""],
                "{text}"
            );
            let after = text.split("#EXT-X-DISCONTINUITY\n").nth(1).unwrap();
            assert!(
                after.starts_with("#EXT-X-MAP:URI=\"init-f191fdfc7445fab3.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:"),
                "{text}"
            );
            let before_parts = after.split("#EXT-X-PART").next().unwrap();
            assert!(before_parts.contains("init-f191fdfc7445fab3.mp4"), "item 7: the map precedes the first part");
        }
    }

    // A playlist never names an init its owner has not named: no `EXT-X-MAP` until there is one, then the map of
    // the segments that need it.
    #[test]
    fn no_map_before_an_init_is_named() {
        let mut m = M3u8Manifest::new(&small());
        let part = |independent| PartMeta {
            duration: Duration::from_millis(500),
            independent,
            discontinuity: false,
            wallclock: at(0),
        };
        for i in 0..3 {
            m.push(part(i % 2 == 0));
        }
        let render = |m: &M3u8Manifest| {
            let mut out = Vec::new();
            m.render(false, &[], &mut out);
            String::from_utf8(out).unwrap()
        };
        assert!(!render(&m).contains("#EXT-X-MAP"), "{}", render(&m));
        assert!(!m.needs_map(init()));
        m.set_map(init());
        for i in 3..5 {
            m.push(part(i % 2 == 0));
        }
        let text = render(&m);
        let maps: Vec<&str> = text.lines().filter(|l| l.starts_with("#EXT-X-MAP")).collect();
        assert_eq!(maps, ["#EXT-X-MAP:URI=\"init-bb54068aea85faa7.mp4\""], "{text}");
        let (before, after) = text.split_once("#EXT-X-MAP").unwrap();
        assert!(before.contains("s0.mp4") && !after.contains("s0.mp4"), "the map applies from segment 2 on: {text}");
    }

    #[test]
    fn a_group_timeline_decides_the_rollover_numbers_and_dates() {
        use crate::timeline::Boundary;
        let options = Options { target_duration: 2, ..small() };
        let mut m = M3u8Manifest::starting_at(&options, 3);
        m.set_map(init());
        let part = |independent: bool| PartMeta {
            duration: Duration::from_millis(500),
            independent,
            discontinuity: false,
            wallclock: at(99_000), // a late arrival: the dates come from the boundaries, not from this
        };
        let start = |msn: u64, ms: u64| Some(Placement::Start(Boundary { msn, at: ms * 1_000_000, date: at(ms) }));
        // The first part joins the group's numbering; never below the MSN the stream's id already used.
        assert_eq!(m.push_at(part(true), start(7, 0)).position, Position::new(7, 0));
        m.push_at(part(false), Some(Placement::Continue));
        // A keyframe where the stream's own rules would cut (1 s in): the timeline says continue.
        let p = m.push_at(part(true), Some(Placement::Continue));
        assert_eq!((p.position, p.closed), (Position::new(7, 2), None));
        // The boundary cuts, even before a dependent part; the EXTINF is the boundaries' distance (1.6 s, not
        // the 1.5 s of the parts), and the date is the boundary's.
        let p = m.push_at(part(false), start(8, 1600));
        assert_eq!(p.position, Position::new(8, 0));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        m.push_at(part(true), start(9, 2600));
        let mut text = Vec::new();
        m.render(false, &[], &mut text);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:7\n"), "{text}");
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z\n"), "{text}");
        assert!(text.contains("#EXTINF:1.600,\ns7.mp4\n"), "{text}");
        assert!(text.contains("#EXTINF:1.000,\ns8.mp4\n"), "{text}");
        // A boundary past the next MSN (a boundary was missed): MSNs stay consecutive, reported once.
        let p = m.push_at(part(true), start(12, 3600));
        assert_eq!(p.position, Position::new(10, 0));
        assert_eq!(p.warnings, vec![Warning::Misaligned { msn: 10, group_msn: 12 }]);
        let p = m.push_at(part(true), start(13, 4600));
        assert_eq!((p.position, p.warnings), (Position::new(11, 0), vec![]));
        // The stream's first MSN wins over a lower one from the group.
        let mut late = M3u8Manifest::starting_at(&options, 20);
        assert_eq!(late.push_at(part(true), start(7, 0)).position, Position::new(20, 0));
    }
}
