//! `Timeline`: where the segments of a group's renditions start, so that one MSN covers the same media in all.
//!
//! The renditions of a group (`group/name` streams) are separate uploads of one presentation: the outputs of one
//! encoder, or the tracks of a DASH-IF Live Media Ingest source. They share a media timeline (the decode times in
//! their `tfdt`s, in seconds), and the encoder puts their keyframes at the same media times. The group keeps the
//! segment boundaries of that timeline, each a [`Boundary`]: an MSN, the media time its segment starts at and its
//! `PROGRAM-DATE-TIME`.
//!
//! - The first rendition to reach a keyframe where its own rules cut a segment (see [`crate::manifest`]) declares
//!   the boundary there, numbered one past the newest: it leads. A rendition behind it cuts where a boundary lies
//!   (within half of its part) and nowhere else: it follows, whenever its upload started and however far behind
//!   it is. So every rendition cuts at the same media times, under the same MSN and date.
//! - A rendition without video (audio) never declares a boundary while a video rendition is publishing: it cannot
//!   know where the next keyframe will be. Its publisher waits (bounded) until the video has passed its fragment,
//!   and cuts the fragment at the boundaries inside it, at the nearest audio sample
//!   ([`fmp4::refragment::split_at`](crate::fmp4::refragment::split_at)), unless a piece would be a sliver (under
//!   half a part): then the whole fragment is placed, starting the boundary's segment if it starts within half its
//!   length of the boundary.
//! - A segment between two boundaries has, in every rendition, the `EXTINF` of the boundaries' distance and the
//!   date of its first boundary: the same text everywhere (an audio segment's media starts within half an audio
//!   frame of it, or within half a part where a cut would have left a sliver).
//! - A rendition whose first part lies between boundaries (it started mid-GOP) starts with a shorter segment under
//!   the MSN of the boundary before it, and is aligned from its next boundary on.
//! - A rendition whose timeline is not the group's (its media time is more than [`UNRELATED`] from where the
//!   group is now: a separate encoder restarted from 0) is mapped onto it by arrival time; its keyframes are then
//!   where they fall, so it is aligned only as far as they happen to match.
//!
//! Media sequence numbers of one playlist are consecutive, so a rendition that missed a boundary (an upload that
//! lost media across a segment) keeps counting its own and is reported misaligned.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// Boundaries kept: more than a window of segments (players switch within the window).
const KEPT: usize = 256;

/// A rendition whose media time is further than this from where the group's timeline is now does not share it.
pub const UNRELATED: Duration = Duration::from_secs(10);

/// How long after the newest video media an audio rendition may lead again: the video stopped.
const VIDEO_GONE: Duration = Duration::from_secs(3);

/// Where a segment of the group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    /// Its Media Sequence Number, the same in every rendition.
    pub msn: u64,
    /// Its media time on the group's timeline, nanoseconds.
    pub at: u64,
    /// Its `EXT-X-PROGRAM-DATE-TIME`.
    pub date: SystemTime,
}

/// What the timeline says about one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The part starts the segment of this boundary.
    Start(Boundary),
    /// The part continues the open segment.
    Continue,
}

/// One part of a rendition, as the timeline sees it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Media time of its first sample on the group's timeline, nanoseconds.
    pub at: u64,
    /// Its duration.
    pub duration: Duration,
    /// The MSN of the rendition's open segment; `None` for its first part.
    pub open: Option<u64>,
    /// Whether the rendition's own rules would start a segment here (a keyframe far enough into the segment, or a
    /// forced cut).
    pub wants_cut: bool,
    /// Whether the part starts with an independent frame: a video rendition cuts at a boundary only there.
    pub independent: bool,
    /// Whether the rendition has video (only video may lead while video is publishing).
    pub video: bool,
    /// When the part arrived.
    pub wallclock: SystemTime,
}

#[derive(Debug, Default)]
struct State {
    /// The group's first part: its media time and wallclock tie media time to dates.
    anchor: Option<(u64, SystemTime)>,
    boundaries: VecDeque<Boundary>,
    /// The end of the newest media placed, and when it arrived.
    front: Option<(u64, SystemTime)>,
    /// The same for video renditions only.
    video_front: Option<(u64, SystemTime)>,
    /// The longest `PART-TARGET` a rendition has fixed.
    part_target: Option<Duration>,
}

/// The shared segment boundaries of one group. See the [module docs](self).
#[derive(Debug)]
pub struct Timeline {
    state: Mutex<State>,
    /// The end of the newest video media placed, for audio renditions waiting to cut.
    video_end: watch::Sender<u64>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self { state: Mutex::default(), video_end: watch::Sender::new(0) }
    }
}

impl Timeline {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the group's timeline is at `now`: the newest media end, moved on by the time since it arrived.
    /// `None` before the group's first part.
    pub fn now(&self, now: SystemTime) -> Option<u64> {
        let (end, at) = self.state().front?;
        let since = now.duration_since(at).unwrap_or(Duration::ZERO);
        Some(end.saturating_add(nanos(since)))
    }

    /// Places one part (see the [module docs](self)) and records it as published. `first_msn` numbers the
    /// group's first boundary.
    pub fn place(&self, part: Arrival, first_msn: u64) -> Placement {
        let mut s = self.state();
        let s = &mut *s;
        let (anchor_at, anchor_date) = *s.anchor.get_or_insert((part.at, part.wallclock));
        let end = part.at.saturating_add(nanos(part.duration));
        let tolerance = nanos(part.duration) / 2;
        // At the front: no rendition that may lead (video, or any when there is none) has published media past
        // this part's start yet.
        let front = if part.video { s.video_front } else { s.front };
        let ahead = front.is_none_or(|(front, _)| part.at.saturating_add(tolerance) >= front);
        s.front = Some(later(s.front, (end, part.wallclock)));
        if part.video {
            s.video_front = Some(later(s.video_front, (end, part.wallclock)));
            self.video_end.send_if_modified(|e| {
                let newer = end > *e;
                if newer {
                    *e = end;
                }
                newer
            });
        }
        let near = s.boundaries.iter().rev().find(|b| b.at.abs_diff(part.at) <= tolerance).copied();
        let newest = s.boundaries.back().copied();
        let video_publishing =
            s.video_front.is_some_and(|(_, t)| part.wallclock.duration_since(t).unwrap_or(Duration::ZERO) < VIDEO_GONE);
        let may_lead = part.video || !video_publishing;
        let date = date_at(anchor_at, anchor_date, part.at);
        match (near, part.open) {
            (Some(b), None) => Placement::Start(b),
            (Some(b), Some(open)) if b.msn > open && (part.independent || !part.video) => Placement::Start(b),
            (Some(_), Some(_)) => Placement::Continue,
            (None, open) if ahead && may_lead && (open.is_none() || part.wants_cut) => {
                let msn = match (newest, open) {
                    (Some(b), _) => b.msn + 1,
                    (None, Some(open)) => open + 1,
                    (None, None) => first_msn,
                };
                let b = Boundary { msn, at: part.at, date };
                if s.boundaries.len() == KEPT {
                    s.boundaries.pop_front();
                }
                s.boundaries.push_back(b);
                Placement::Start(b)
            }
            (None, None) => {
                // Joined between boundaries: the segment of the boundary before it, from here.
                let before = s.boundaries.iter().rev().find(|b| b.at <= part.at);
                before.map_or(Placement::Continue, |b| Placement::Start(Boundary { msn: b.msn, at: part.at, date }))
            }
            (None, Some(_)) => Placement::Continue,
        }
    }

    /// Notes a rendition's `PART-TARGET` (once fixed) and returns the longest of the group's, which every
    /// rendition's `PART-HOLD-BACK` covers (checklist item 71).
    pub fn part_target(&self, own: Option<Duration>) -> Option<Duration> {
        let mut s = self.state();
        if let Some(own) = own {
            s.part_target = Some(s.part_target.map_or(own, |p| p.max(own)));
        }
        s.part_target
    }

    /// Where the next boundary will most likely be: the newest one plus the distance from the one before it.
    pub fn predicted_next(&self) -> Option<u64> {
        let s = self.state();
        let mut newest = s.boundaries.iter().rev();
        let (last, before) = (newest.next()?, newest.next()?);
        Some(last.at.saturating_add(last.at.saturating_sub(before.at)))
    }

    /// Whether a boundary lies within `tolerance` of `at`: a rendition whose part ends there starts a segment next.
    pub fn boundary_near(&self, at: u64, tolerance: u64) -> bool {
        self.state().boundaries.iter().rev().any(|b| b.at.abs_diff(at) <= tolerance)
    }

    /// The boundaries strictly between `from` and `to` (media times on the group's timeline, nanoseconds).
    pub fn boundaries_between(&self, from: u64, to: u64) -> Vec<u64> {
        self.state().boundaries.iter().map(|b| b.at).filter(|&at| at > from && at < to).collect()
    }

    /// Whether a video rendition has published within the last few seconds before `now`.
    pub fn video_publishing(&self, now: SystemTime) -> bool {
        self.state().video_front.is_some_and(|(_, t)| now.duration_since(t).unwrap_or(Duration::ZERO) < VIDEO_GONE)
    }

    /// Waits until the video renditions have published media up to `end` (nanoseconds on the group's timeline),
    /// at most `timeout`; whether they did.
    pub async fn wait_video(&self, end: u64, timeout: Duration) -> bool {
        let mut rx = self.video_end.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|&e| e >= end)).await;
        matches!(reached, Ok(Ok(_)))
    }
}

fn later(a: Option<(u64, SystemTime)>, b: (u64, SystemTime)) -> (u64, SystemTime) {
    match a {
        Some(a) if a.0 >= b.0 => a,
        _ => b,
    }
}

/// The date of media time `at`, from the group's anchor.
fn date_at(anchor_at: u64, anchor_date: SystemTime, at: u64) -> SystemTime {
    let moved = if at >= anchor_at {
        anchor_date.checked_add(Duration::from_nanos(at - anchor_at))
    } else {
        anchor_date.checked_sub(Duration::from_nanos(anchor_at - at))
    };
    moved.unwrap_or(anchor_date)
}

/// Nanoseconds of `d`, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Media time in nanoseconds of `ticks` at `timescale`, saturating.
pub fn ticks_to_nanos(ticks: u64, timescale: u32) -> u64 {
    if timescale == 0 {
        return 0;
    }
    u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(timescale)).unwrap_or(u64::MAX)
}

/// `nanos` of media time as ticks at `timescale`, rounded to the nearest tick.
pub fn nanos_to_ticks(nanos: u64, timescale: u32) -> u64 {
    u64::try_from((u128::from(nanos) * u128::from(timescale) + 500_000_000) / 1_000_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn arrival(at_ms: u64, open: Option<u64>, wants_cut: bool, video: bool) -> Arrival {
        Arrival {
            at: at_ms * MS,
            duration: Duration::from_millis(200),
            open,
            wants_cut,
            independent: true,
            video,
            wallclock: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000) + Duration::from_millis(at_ms),
        }
    }

    #[test]
    fn the_first_rendition_leads_and_the_others_follow_under_the_same_msn_and_date() {
        let t = Timeline::default();
        let Placement::Start(b0) = t.place(arrival(0, None, true, true), 7) else { panic!("first part starts") };
        assert_eq!(b0.msn, 7);
        assert_eq!(t.place(arrival(200, Some(7), false, true), 7), Placement::Continue);
        let Placement::Start(b1) = t.place(arrival(1000, Some(7), true, true), 7) else { panic!("keyframe cuts") };
        assert_eq!((b1.msn, b1.at), (8, 1000 * MS));
        assert_eq!(b1.date, b0.date + Duration::from_secs(1));
        // A second rendition, behind: it cuts at the boundaries only, even where its own rules would not.
        assert_eq!(t.place(arrival(0, None, true, true), 0), Placement::Start(b0));
        assert_eq!(t.place(arrival(600, Some(7), true, true), 0), Placement::Continue, "a keyframe off the boundaries");
        let mut dependent = arrival(1000, Some(7), false, true);
        dependent.independent = false;
        assert_eq!(t.place(dependent, 0), Placement::Continue, "video cuts only at a keyframe");
        assert_eq!(t.place(arrival(1000, Some(7), false, true), 0), Placement::Start(b1));
        for at in [1200, 1400, 1600] {
            assert_eq!(t.place(arrival(at, Some(8), false, true), 0), Placement::Continue);
        }
        // Late, mid-segment: the segment of the boundary before it, from its own start.
        let Placement::Start(late) = t.place(arrival(1400, None, false, true), 0) else { panic!("joins") };
        assert_eq!((late.msn, late.at), (8, 1400 * MS));
    }

    #[test]
    fn audio_does_not_lead_while_video_publishes() {
        let t = Timeline::default();
        t.place(arrival(0, None, true, true), 0);
        assert_eq!(t.place(arrival(1000, Some(0), true, false), 0), Placement::Continue, "audio ahead of the video");
        let Placement::Start(b) = t.place(arrival(1000, Some(0), true, true), 0) else { panic!("video cuts") };
        // Audio that was split at the boundary finds it within half a part.
        assert_eq!(t.place(arrival(1005, Some(0), true, false), 0), Placement::Start(b));
        assert_eq!(t.boundaries_between(900 * MS, 1100 * MS), vec![1000 * MS]);
        assert!(t.boundaries_between(1000 * MS, 1100 * MS).is_empty(), "strictly between");
        // Without video for a while, audio leads.
        let mut gone = arrival(2000, Some(1), true, false);
        gone.wallclock += VIDEO_GONE * 2;
        assert!(matches!(t.place(gone, 0), Placement::Start(Boundary { msn: 2, .. })));
    }

    #[tokio::test]
    async fn audio_waits_for_the_video_to_pass() {
        let t = std::sync::Arc::new(Timeline::default());
        t.place(arrival(0, None, true, true), 0);
        assert!(t.wait_video(200 * MS, Duration::from_millis(1)).await, "already there");
        assert!(!t.wait_video(400 * MS, Duration::from_millis(1)).await, "not yet, and bounded");
        let waiter = {
            let t = std::sync::Arc::clone(&t);
            tokio::spawn(async move { t.wait_video(400 * MS, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        t.place(arrival(200, Some(0), false, true), 0);
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn conversions_round_trip() {
        assert_eq!(ticks_to_nanos(15360, 15360), 1_000_000_000);
        assert_eq!(nanos_to_ticks(1_000_000_000, 48000), 48000);
        assert_eq!(nanos_to_ticks(ticks_to_nanos(1001, 30000), 30000), 1001);
        assert_eq!(ticks_to_nanos(5, 0), 0);
    }
}
