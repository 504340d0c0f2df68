//! Tunables of the data plane, validated once.

use std::time::Duration;

use crate::error::Error;

/// Window sizes, durations and limits shared by every stream of a [`crate::Playlists`].
///
/// The defaults follow DESIGN.md section 4: a fixed 2 s target duration (covers 1–2 s GOPs), a segment cut at the
/// first independent part once the open segment holds 1 s, parts listed for the last 3 target durations, and a
/// playlist window of 12 target durations so that delta updates (skip boundary 6 × TD) skip half of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Most streams alive at once.
    pub max_streams: usize,
    /// `EXT-X-TARGETDURATION`, whole seconds. Never changes for the life of a stream (checklist item 68).
    pub target_duration: u32,
    /// A segment is cut at the first independent part once the open segment is at least this long.
    pub min_segment: Duration,
    /// How much media, in complete segments, a playlist lists. At least 6 × target duration (delta updates).
    pub window: Duration,
    /// Parts are listed for segments that end within this much of the live edge (checklist item 74: 3 × TD).
    pub part_window: Duration,
    /// Largest part accepted, in bytes.
    pub max_part_bytes: usize,
    /// Largest init segment accepted, in bytes.
    pub max_init_bytes: usize,
    /// Most parts one segment may hold; a segment is closed before it would hold more.
    pub max_parts_per_segment: usize,
    /// The longest part. An incoming fragment longer than this is cut at sample boundaries into parts of at most
    /// this, so an encoder that sends one fragment per GOP (or 1-10 s fragments) still gets low-latency parts; an
    /// RTMP publish is packaged into parts of at most this. Default 250 ms: ffmpeg's usual 200 ms fragments (221 ms
    /// without `delay_moov`) pass unchanged, and a 30 fps stream is cut into parts of 6-7 frames.
    pub max_part: Duration,
    /// Level for the precompressed playlists (1 = fastest … 9 = smallest). Default 1, as nginx's
    /// `gzip_comp_level`: each part's playlists are compressed before its held requests are answered, and level 1
    /// takes about a third of the time of level 4 for a playlist about a fifth larger (BENCHMARKS.md).
    pub gzip_level: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_streams: 256,
            target_duration: 2,
            min_segment: Duration::from_secs(1),
            window: Duration::from_secs(24),
            part_window: Duration::from_secs(6),
            max_part_bytes: 16 << 20,
            max_init_bytes: 1 << 20,
            max_parts_per_segment: 64,
            max_part: Duration::from_millis(250),
            gzip_level: 1,
        }
    }
}

impl Options {
    /// Checks that the options can work together.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidOptions(m));
        if self.max_streams == 0 {
            return bad("max_streams must be at least 1".into());
        }
        if !(1..=60).contains(&self.target_duration) {
            return bad("target_duration must be 1 to 60 seconds".into());
        }
        let td = self.target_duration_as_duration();
        if self.min_segment.is_zero() || self.min_segment > td {
            return bad("min_segment must be above zero and at most the target duration".into());
        }
        if self.window < td * 6 {
            return bad(format!("window must be at least 6 x target duration ({} s)", 6 * self.target_duration));
        }
        if self.part_window < td || self.part_window > self.window {
            return bad("part_window must be between the target duration and the window".into());
        }
        if self.max_part_bytes == 0 || self.max_init_bytes == 0 {
            return bad("size limits must be above zero".into());
        }
        if !(2..=4096).contains(&self.max_parts_per_segment) {
            return bad("max_parts_per_segment must be 2 to 4096".into());
        }
        // A part shorter than a frame cannot be cut; 20 ms is one frame at 50 fps.
        if self.max_part < Duration::from_millis(20) || self.max_part > td {
            return bad("max_part must be 20 ms to the target duration".into());
        }
        if !(1..=9).contains(&self.gzip_level) {
            return bad("gzip_level must be 1 to 9".into());
        }
        Ok(())
    }

    /// The target duration as a [`Duration`].
    pub fn target_duration_as_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.target_duration))
    }

    /// How long a blocking request is held before 503: 3 × target duration (checklist item 31).
    pub fn blocking_timeout(&self) -> Duration {
        self.target_duration_as_duration() * 3
    }

    /// The skip boundary advertised as `CAN-SKIP-UNTIL`: 6 × target duration (checklist item 44).
    pub fn skip_boundary(&self) -> Duration {
        self.target_duration_as_duration() * 6
    }

    /// Most segments a playlist can list: the window filled with the shortest segments there can be, plus the
    /// open one. Sizes the rings.
    pub fn max_window_segments(&self) -> usize {
        let min = self.min_segment.as_micros().max(1);
        (self.window.as_micros().div_ceil(min)) as usize + 2
    }

    /// Segments retained in memory: the window plus a margin, so that a part or segment that just left the
    /// playlist stays downloadable for at least 3 target durations (checklist item 66).
    pub fn retained_segments(&self) -> usize {
        let min = self.min_segment.as_micros().max(1);
        let margin = (self.target_duration_as_duration() * 3).as_micros().div_ceil(min) as usize;
        self.max_window_segments() + margin + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Options::default().validate().unwrap();
        assert_eq!(Options::default().blocking_timeout(), Duration::from_secs(6));
        assert_eq!(Options::default().skip_boundary(), Duration::from_secs(12));
    }

    #[test]
    fn rejects_a_window_below_six_target_durations() {
        let o = Options { window: Duration::from_secs(11), ..Options::default() };
        assert!(matches!(o.validate(), Err(Error::InvalidOptions(_))));
    }

    #[test]
    fn rings_cover_the_window_and_the_margin() {
        let o = Options::default();
        assert_eq!(o.max_window_segments(), 26);
        assert_eq!(o.retained_segments(), 26 + 6 + 1);
    }
}
