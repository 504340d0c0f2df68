//! The packager: timed FLV messages in, CMAF items out.
//!
//! Video decode times are the FLV timestamps at 90 kHz, and a sample's duration is the next sample's decode time
//! minus its own, so a video sample is complete only when the next one arrives. Audio decode times count frames
//! from an anchor on the FLV clock, re-anchored when the count drifts from the timestamps, so both tracks stay on
//! the one millisecond clock the encoder stamped them with.
//!
//! Fragments: a video keyframe starts one; otherwise one is closed before a complete video sample that would make
//! it longer than `max_part`. Pending audio goes into whichever fragment closes. Without video, audio is cut by
//! its own duration. Every new init segment is followed by fragments whose video starts with a keyframe.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::aac::AudioSpecificConfig;
use super::av1::{self, Av1Config};
use super::avc::AvcConfig;
use super::hevc::HevcConfig;
use super::opus::{self, OpusHead};
use super::tag::{Audio, AudioCodec, Video, VideoCodec};
use super::Metadata;
use crate::error::Error;
use crate::fmp4::{write_fragment, write_init, CodecConfig, Fragment, Init, Item, Sample, TrackConfig, TrackFragment};

/// Video timescale: the MPEG clock, an exact multiple of the FLV millisecond.
const VIDEO_TIMESCALE: u32 = 90_000;
/// Video ticks per FLV millisecond.
const TICKS_PER_MS: u64 = (VIDEO_TIMESCALE / 1000) as u64;
/// Track ids: fixed, so a player sees the same ids across the inits of one publish.
const VIDEO_TRACK: u32 = 1;
/// See [`VIDEO_TRACK`].
const AUDIO_TRACK: u32 = 2;
/// How much media (by timestamp) may pass while a track the stream probably has is still without its sequence
/// header, before the init is written without it: encoders send both headers before the first frames, so a
/// second is generous, and short enough not to delay a stream that really has one track.
const START_WAIT_MS: u64 = 1000;
/// A forward jump of the FLV clock beyond this is a new timeline rather than a gap in the media: no encoder
/// leaves this long between two frames of a live stream, and it stays below what would give one sample an
/// absurd duration.
const MAX_GAP_MS: u64 = 5000;
/// Audio frames the FLV timestamps may run ahead or behind the frame count before audio is re-anchored: more
/// than millisecond rounding, less than an encoder dropping audio.
const DRIFT_FRAMES: u64 = 2;
/// With video, pending audio beyond this much (while video is flowing) means video stalled: audio is then cut
/// on its own so it keeps reaching players.
const AUDIO_STALL: Duration = Duration::from_secs(1);
/// While video waits for a keyframe, audio older than this is dropped: players could not start on it anyway.
const PRE_KEY_AUDIO: Duration = Duration::from_secs(5);
/// Bytes held by the packager (pending samples, fragments waiting for the first init, items not yet taken):
/// far above any real fragment of a part target, low enough that a hostile peer cannot exhaust memory.
pub const MAX_HELD_BYTES: usize = 64 << 20;
/// Samples held, per track: a few seconds of anything an encoder sends (1000 fps video or 1024-sample audio at
/// 96 kHz fill well under this in the part target), a bound on a peer sending empty frames without advancing time.
pub const MAX_HELD_SAMPLES: usize = 4096;
/// The frame duration assumed for the last video sample when there is no previous one (30 fps).
const DEFAULT_FRAME_MS: u64 = 33;

/// Counters of what the packager dropped or restarted, for the RTMP layer's logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Video frames dropped: before the first sequence header, before a keyframe (at the start, after a new init
    /// or a new timeline), or empty.
    pub dropped_video: u64,
    /// Audio frames dropped: before the sequence header, empty, or older than the first video keyframe.
    pub dropped_audio: u64,
    /// Times the video timestamps went backwards or jumped beyond a few seconds.
    pub timeline_restarts: u64,
    /// Times audio was re-anchored on the FLV clock (timestamps drifting from the frame count).
    pub audio_reanchors: u64,
    /// Init segments emitted.
    pub inits: u64,
    /// Fragments emitted.
    pub fragments: u64,
}

/// A video frame waiting for the next one, which gives its duration.
#[derive(Debug)]
struct Waiting {
    dts: u64,
    composition_offset: i32,
    sync: bool,
    data: Bytes,
}

/// The samples of one track in the open fragment.
#[derive(Debug, Default)]
struct Run {
    base: u64,
    duration: u64,
    bytes: usize,
    samples: Vec<Sample>,
}

impl Run {
    fn push(&mut self, dts: u64, sample: Sample) -> Result<(), Error> {
        if self.samples.is_empty() {
            self.base = dts;
        }
        if self.samples.len() >= MAX_HELD_SAMPLES {
            return Err(Error::MalformedFlv(format!("more than {MAX_HELD_SAMPLES} samples pending in one track")));
        }
        self.duration += u64::from(sample.duration);
        self.bytes += sample.data.len();
        self.samples.push(sample);
        Ok(())
    }

    fn take(&mut self) -> Option<(u64, Vec<Sample>)> {
        if self.samples.is_empty() {
            return None;
        }
        self.duration = 0;
        self.bytes = 0;
        Some((self.base, std::mem::take(&mut self.samples)))
    }
}

#[derive(Debug, Default)]
struct VideoTrack {
    /// The latest sequence header's configuration, with its codec.
    config: Option<(VideoCodec, CodecConfig)>,
    waiting: Option<Waiting>,
    last_duration: Option<u32>,
    run: Run,
    /// Frames are dropped until a keyframe (at the start, after an init, after a new timeline).
    need_key: bool,
    last_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct AudioTrack {
    config: Option<(AudioCodec, CodecConfig)>,
    /// Ticks per second: the AAC core rate, or 48000 for Opus.
    rate: u32,
    /// AAC samples per frame (1024 or 960); Opus packets carry their own.
    frame_length: u32,
    /// `(FLV ms, ticks)` of the frame counting started from.
    anchor: Option<(u64, u64)>,
    /// Ticks counted since the anchor.
    counted: u64,
    run: Run,
}

impl AudioTrack {
    fn ticks(&self, d: Duration) -> u64 {
        duration_ticks(d, self.rate)
    }
}

/// A closed fragment not yet written (before the first init).
#[derive(Debug)]
struct Closed {
    video: Option<(u64, Vec<Sample>)>,
    audio: Option<(u64, Vec<Sample>)>,
    bytes: usize,
}

/// Turns the audio and video messages of an RTMP publish into init segments and fragments.
#[derive(Debug)]
pub struct Packager {
    max_part: Duration,
    meta: Metadata,
    video: VideoTrack,
    audio: AudioTrack,
    /// Whether any audio or video message arrived (a stream has the tracks it sends).
    seen_video: bool,
    seen_audio: bool,
    /// FLV time of the first and latest message, for the start wait.
    first_ms: Option<u64>,
    latest_ms: u64,
    /// The init the fragments are written against, with the configurations it was written from.
    init: Option<(Arc<Init>, Vec<TrackConfig>)>,
    /// Whether the configurations differ from `init` (or there is none yet).
    dirty: bool,
    /// Fragments closed before the first init.
    closed: Vec<Closed>,
    closed_bytes: usize,
    out: VecDeque<Item>,
    sequence: u32,
    stats: Stats,
    failed: Option<Error>,
}

fn duration_ticks(d: Duration, timescale: u32) -> u64 {
    u64::try_from(d.as_nanos() * u128::from(timescale) / 1_000_000_000).unwrap_or(u64::MAX)
}

fn to_u16(v: u32, what: &str) -> Result<u16, Error> {
    u16::try_from(v).map_err(|_| Error::MalformedFlv(format!("{what} {v} above 65535")))
}

impl Packager {
    /// `max_part`: the longest fragment it emits (the part target, e.g. 200 ms); a video keyframe always starts
    /// a new fragment.
    pub fn new(max_part: Duration) -> Self {
        Packager {
            max_part,
            meta: Metadata::default(),
            video: VideoTrack { need_key: true, ..VideoTrack::default() },
            audio: AudioTrack::default(),
            seen_video: false,
            seen_audio: false,
            first_ms: None,
            latest_ms: 0,
            init: None,
            dirty: true,
            closed: Vec::new(),
            closed_bytes: 0,
            out: VecDeque::new(),
            sequence: 0,
            stats: Stats::default(),
            failed: None,
        }
    }

    /// The encoder's onMetaData (width, height, ...) when it sends one; optional, the configs are enough.
    pub fn metadata(&mut self, meta: &Metadata) {
        self.meta = *meta;
    }

    /// What was dropped or restarted so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// One RTMP video message (FLV VIDEODATA: legacy AVC, or Enhanced RTMP with a FourCC), zero-copy.
    ///
    /// A malformed or unsupported message is an `Err` and changes nothing. Exceeding the memory bounds, or a
    /// configuration the writer refuses, is an `Err` that ends the packager: every later call returns it again.
    pub fn video(&mut self, timestamp_ms: u32, tag: Bytes) -> Result<(), Error> {
        self.check_failed()?;
        let parsed = Video::parse(tag)?;
        let ms = u64::from(timestamp_ms);
        let result = match parsed {
            Video::Config { codec, record } => {
                let config = self.video_config(codec, record)?;
                self.seen(ms, true);
                self.set_video_config(codec, config)
            }
            Video::Frame { codec, keyframe, composition_ms, data } => {
                if let Some((current, _)) = &self.video.config {
                    if *current != codec {
                        return Err(Error::MalformedFlv(format!(
                            "a {codec:?} frame in a {current:?} stream without a new sequence header"
                        )));
                    }
                }
                self.seen(ms, true);
                self.video_frame(ms, keyframe, composition_ms, codec, data)
            }
            Video::End { .. } | Video::Ignored(_) => Ok(()),
        };
        self.settle(result)
    }

    /// One RTMP audio message (FLV AUDIODATA: AAC, or Enhanced RTMP audio with a FourCC such as Opus).
    ///
    /// Errors as for [`video`](Self::video).
    pub fn audio(&mut self, timestamp_ms: u32, tag: Bytes) -> Result<(), Error> {
        self.check_failed()?;
        let parsed = Audio::parse(tag)?;
        let ms = u64::from(timestamp_ms);
        let result = match parsed {
            Audio::Config { codec, record } => {
                let (config, rate, frame_length) = audio_config(codec, record)?;
                self.seen(ms, false);
                self.set_audio_config(codec, config, rate, frame_length)
            }
            Audio::Frame { codec, data } => {
                if let Some((current, _)) = &self.audio.config {
                    if *current != codec {
                        return Err(Error::MalformedFlv(format!(
                            "a {codec:?} frame in a {current:?} stream without a new sequence header"
                        )));
                    }
                }
                let duration = match codec {
                    AudioCodec::Opus if !data.is_empty() => opus::packet_duration(&data)?,
                    _ => self.audio.frame_length,
                };
                self.seen(ms, false);
                self.audio_frame(ms, duration, data)
            }
            Audio::End { .. } | Audio::Ignored(_) => Ok(()),
        };
        self.settle(result)
    }

    /// The next ready item: `fmp4::Item::Init(Arc<Init>)` first (and again whenever a codec configuration
    /// changes), then `fmp4::Item::Fragment(Fragment)`s in order. `None`: nothing ready.
    pub fn next_item(&mut self) -> Option<Item> {
        self.out.pop_front()
    }

    /// End of the publish: whatever is pending becomes a last fragment (the last video sample lasting as long
    /// as the one before it), after an init if none was written for it yet.
    pub fn flush(&mut self) {
        if self.failed.is_some() {
            return;
        }
        let result = self.finish_waiting().and_then(|()| self.close()).and_then(|()| {
            if (self.init.is_none() || self.dirty) && self.has_media() {
                self.emit_init()?;
            }
            Ok(())
        });
        if let Err(e) = result {
            self.failed = Some(e);
        }
    }

    fn check_failed(&self) -> Result<(), Error> {
        self.failed.as_ref().map_or(Ok(()), |e| Err(e.clone()))
    }

    /// After a message changed state: start if ready, enforce the bounds, and poison on failure.
    fn settle(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        let result = result.and_then(|()| self.maybe_start()).and_then(|()| self.check_bounds());
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.video.run = Run::default();
            self.audio.run = Run::default();
            self.video.waiting = None;
            self.closed.clear();
        }
        result
    }

    fn seen(&mut self, ms: u64, video: bool) {
        if video {
            self.seen_video = true;
        } else {
            self.seen_audio = true;
        }
        self.first_ms.get_or_insert(ms);
        self.latest_ms = self.latest_ms.max(ms);
    }

    fn check_bounds(&self) -> Result<(), Error> {
        let waiting = self.video.waiting.as_ref().map_or(0, |w| w.data.len());
        let queued: usize = self
            .out
            .iter()
            .map(|i| match i {
                Item::Init(init) => init.bytes.len(),
                Item::Fragment(f) => f.bytes.len(),
            })
            .sum();
        let held = self.video.run.bytes + self.audio.run.bytes + waiting + self.closed_bytes + queued;
        if held > MAX_HELD_BYTES {
            return Err(Error::TooLarge { what: "RTMP media held by the packager", size: held, limit: MAX_HELD_BYTES });
        }
        Ok(())
    }

    fn video_config(&self, codec: VideoCodec, record: Bytes) -> Result<CodecConfig, Error> {
        let (w, h) = match codec {
            VideoCodec::Avc => AvcConfig::parse(&record).map(|c| (c.width, c.height))?,
            VideoCodec::Hevc => HevcConfig::parse(&record).map(|c| (c.width, c.height))?,
            VideoCodec::Av1 => Av1Config::parse(&record).map(|c| (c.width, c.height))?,
        };
        // A record without a readable size (HEVC without SPS, AV1 without a sequence header) falls back on
        // what onMetaData said.
        let (w, h) =
            if w == 0 || h == 0 { (self.meta.width.unwrap_or(0), self.meta.height.unwrap_or(0)) } else { (w, h) };
        let (width, height) = (to_u16(w, "width")?, to_u16(h, "height")?);
        Ok(match codec {
            VideoCodec::Avc => CodecConfig::H264 { avcc: record, width, height },
            VideoCodec::Hevc => CodecConfig::Hevc { hvcc: record, width, height },
            VideoCodec::Av1 => CodecConfig::Av1 { av1c: record, width, height },
        })
    }

    fn set_video_config(&mut self, codec: VideoCodec, config: CodecConfig) -> Result<(), Error> {
        if self.video.config.as_ref().is_some_and(|(_, c)| *c == config) {
            // Encoders repeat the sequence header (some before every keyframe): nothing changes.
            return Ok(());
        }
        self.reconfigure(self.video.config.is_some())?;
        self.video.config = Some((codec, config));
        Ok(())
    }

    fn set_audio_config(
        &mut self,
        codec: AudioCodec,
        config: CodecConfig,
        rate: u32,
        frame_length: u32,
    ) -> Result<(), Error> {
        if self.audio.config.as_ref().is_some_and(|(_, c)| *c == config) {
            return Ok(());
        }
        self.reconfigure(self.audio.config.is_some())?;
        self.audio.config = Some((codec, config));
        self.audio.rate = rate;
        self.audio.frame_length = frame_length;
        self.audio.anchor = None;
        Ok(())
    }

    /// Before a track's configuration is set. While no init is written for the current configurations (before
    /// the first, or after a change no media followed yet), a first configuration of a track, or one replacing a
    /// configuration nothing was coded with, changes nothing else. Otherwise what is pending goes out under the
    /// current init (written now, with the old configurations, if it is not yet), a new init follows, and video
    /// restarts at a keyframe.
    fn reconfigure(&mut self, replaces: bool) -> Result<(), Error> {
        if (self.init.is_none() || self.dirty) && !(replaces && self.has_media()) {
            return Ok(());
        }
        self.finish_waiting()?;
        self.close()?;
        if self.init.is_none() || self.dirty {
            self.emit_init()?;
        }
        self.dirty = true;
        self.video.need_key = true;
        self.video.last_ms = None;
        Ok(())
    }

    /// Whether samples are pending or waiting for an init.
    fn has_media(&self) -> bool {
        self.video.waiting.is_some()
            || !self.video.run.samples.is_empty()
            || !self.audio.run.samples.is_empty()
            || !self.closed.is_empty()
    }

    fn video_frame(
        &mut self,
        ms: u64,
        keyframe: bool,
        composition_ms: i32,
        codec: VideoCodec,
        data: Bytes,
    ) -> Result<(), Error> {
        if self.video.config.is_none() || data.is_empty() {
            self.stats.dropped_video += 1;
            return Ok(());
        }
        if let Some(last) = self.video.last_ms {
            if ms < last || ms - last > MAX_GAP_MS {
                self.stats.timeline_restarts += 1;
                self.finish_waiting()?;
                self.close()?;
                self.video.need_key = true;
            }
        }
        self.video.last_ms = Some(ms);
        if self.video.need_key {
            if !keyframe {
                self.stats.dropped_video += 1;
                return Ok(());
            }
            self.video.need_key = false;
            self.trim_audio_before(ms);
        }
        let data = match codec {
            VideoCodec::Av1 => strip_temporal_delimiter(data),
            _ => data,
        };
        let mut dts = ms * TICKS_PER_MS;
        if let Some(prev) = self.video.waiting.take() {
            // Two frames on one millisecond (some encoders round that way): one tick apart, so none lasts 0.
            dts = dts.max(prev.dts + 1);
            let duration = u32::try_from(dts - prev.dts).unwrap_or(u32::MAX);
            self.complete(prev, duration)?;
        }
        if keyframe && !self.video.run.samples.is_empty() {
            // A keyframe starts the next fragment: this one is complete now, not one frame later.
            self.close()?;
        }
        self.video.waiting = Some(Waiting {
            dts,
            composition_offset: composition_ms.saturating_mul(TICKS_PER_MS as i32),
            sync: keyframe,
            data,
        });
        Ok(())
    }

    /// Adds a video sample whose duration is now known, closing the fragment before it if it would not fit.
    fn complete(&mut self, frame: Waiting, duration: u32) -> Result<(), Error> {
        let max = duration_ticks(self.max_part, VIDEO_TIMESCALE);
        let run = &self.video.run;
        if !run.samples.is_empty() && (frame.sync || run.duration + u64::from(duration) > max) {
            self.close()?;
        }
        self.video.last_duration = Some(duration);
        let sample =
            Sample { duration, composition_offset: frame.composition_offset, sync: frame.sync, data: frame.data };
        self.video.run.push(frame.dts, sample)?;
        if self.video.run.duration >= max {
            self.close()?;
        }
        Ok(())
    }

    /// The waiting video frame completed with the previous frame's duration (end of stream, new timeline, new
    /// configuration).
    fn finish_waiting(&mut self) -> Result<(), Error> {
        if let Some(frame) = self.video.waiting.take() {
            let fallback = self
                .meta
                .framerate
                .filter(|f| *f >= 1.0)
                .map_or(DEFAULT_FRAME_MS * TICKS_PER_MS, |f| (f64::from(VIDEO_TIMESCALE) / f) as u64);
            let duration = self.video.last_duration.unwrap_or(u32::try_from(fallback).unwrap_or(3000));
            self.complete(frame, duration)?;
        }
        Ok(())
    }

    fn audio_frame(&mut self, ms: u64, duration: u32, data: Bytes) -> Result<(), Error> {
        if self.audio.config.is_none() || data.is_empty() || duration == 0 {
            self.stats.dropped_audio += 1;
            return Ok(());
        }
        let rate = u64::from(self.audio.rate);
        match self.audio.anchor {
            None => self.audio.anchor = Some((ms, ms * rate / 1000)),
            Some((anchor_ms, _)) => {
                let expected_ms = anchor_ms + self.audio.counted * 1000 / rate;
                let tolerance_ms = DRIFT_FRAMES * u64::from(duration) * 1000 / rate;
                if ms.abs_diff(expected_ms) > tolerance_ms {
                    self.stats.audio_reanchors += 1;
                    // The run's decode times are contiguous: what was counted on the old anchor goes out first.
                    if !self.audio.run.samples.is_empty() {
                        self.close()?;
                    }
                    self.audio.anchor = Some((ms, ms * rate / 1000));
                    self.audio.counted = 0;
                }
            }
        }
        let (_, anchor_ticks) = self.audio.anchor.unwrap_or((ms, ms * rate / 1000));
        let dts = anchor_ticks + self.audio.counted;
        self.audio.counted += u64::from(duration);
        self.audio.run.push(dts, Sample { duration, composition_offset: 0, sync: true, data })?;

        let has_video = self.video.config.is_some();
        if !has_video && self.video_unlikely() {
            self.cut_audio_alone()?;
        } else if has_video && self.video.need_key {
            // Waiting for a keyframe: keep only the most recent audio, which the keyframe will trim.
            let keep = self.audio.ticks(PRE_KEY_AUDIO);
            self.drop_audio_while(|first_end, run_end| run_end - first_end >= keep);
        } else if has_video && self.audio.run.duration > self.audio.ticks(AUDIO_STALL) {
            self.close()?;
        }
        Ok(())
    }

    /// Whether the stream is to be treated as audio-only: no video sequence header, and either the metadata says
    /// there is no video or the init has been written without it.
    fn video_unlikely(&self) -> bool {
        self.meta.has_video == Some(false) || self.init.is_some()
    }

    /// Audio-only: closes fragments of at most `max_part`, as many as the pending audio fills (more than one only
    /// when audio piled up waiting for the init).
    fn cut_audio_alone(&mut self) -> Result<(), Error> {
        let max = self.audio.ticks(self.max_part);
        loop {
            let run = &mut self.audio.run;
            let next = u64::from(run.samples.last().map_or(0, |s| s.duration));
            if run.samples.is_empty() || run.duration + next <= max {
                return Ok(());
            }
            let mut fit = 0;
            let mut duration = 0;
            for s in &run.samples {
                if fit > 0 && duration + u64::from(s.duration) > max {
                    break;
                }
                duration += u64::from(s.duration);
                fit += 1;
            }
            let rest = run.samples.split_off(fit);
            let first = std::mem::replace(&mut run.samples, rest);
            let base = run.base;
            run.base += duration;
            run.duration -= duration;
            let bytes: usize = first.iter().map(|s| s.data.len()).sum();
            run.bytes -= bytes;
            self.emit(Closed { video: None, audio: Some((base, first)), bytes })?;
        }
    }

    /// Drops pending audio from the front while `keep_going(end of the first sample, end of the run)`.
    fn drop_audio_while(&mut self, keep_going: impl Fn(u64, u64) -> bool) {
        let run = &mut self.audio.run;
        let run_end = run.base + run.duration;
        let mut n = 0;
        let mut t = run.base;
        for s in &run.samples {
            let end = t + u64::from(s.duration);
            if !keep_going(end, run_end) {
                break;
            }
            t = end;
            n += 1;
        }
        if n > 0 {
            for s in run.samples.drain(..n) {
                run.bytes -= s.data.len();
                run.duration -= u64::from(s.duration);
            }
            run.base = t;
            self.stats.dropped_audio += n as u64;
        }
    }

    /// At the keyframe video starts on: audio that ends before it is dropped, so a player starting here has both.
    fn trim_audio_before(&mut self, ms: u64) {
        if self.audio.rate == 0 {
            return;
        }
        let key = ms * u64::from(self.audio.rate) / 1000;
        self.drop_audio_while(|first_end, _| first_end <= key);
    }

    /// Closes the open fragment: the complete samples of both tracks.
    fn close(&mut self) -> Result<(), Error> {
        let video = self.video.run.take();
        let audio = self.audio.run.take();
        if video.is_none() && audio.is_none() {
            return Ok(());
        }
        let bytes = [&video, &audio].iter().filter_map(|r| r.as_ref()).flat_map(|(_, s)| s).map(|s| s.data.len()).sum();
        self.emit(Closed { video, audio, bytes })
    }

    /// Writes a closed fragment, or keeps it until the first init.
    fn emit(&mut self, closed: Closed) -> Result<(), Error> {
        if self.init.is_some() && !self.dirty {
            self.write(closed)
        } else {
            self.closed_bytes += closed.bytes;
            self.closed.push(closed);
            Ok(())
        }
    }

    fn write(&mut self, closed: Closed) -> Result<(), Error> {
        let Some((init, _)) = &self.init else { return Err(Error::NoInit) };
        let mut tracks = Vec::with_capacity(2);
        if let Some((base, samples)) = &closed.video {
            tracks.push(TrackFragment { track_id: VIDEO_TRACK, base_decode_time: *base, samples });
        }
        if let Some((base, samples)) = &closed.audio {
            tracks.push(TrackFragment { track_id: AUDIO_TRACK, base_decode_time: *base, samples });
        }
        // A fragment with a track the init lacks cannot happen: samples exist only for configured tracks, and
        // every configuration change writes a new init first.
        self.sequence = self.sequence.wrapping_add(1);
        let bytes = write_fragment(self.sequence, &tracks)?;
        let fragment = Fragment::parse(bytes, init)?;
        self.stats.fragments += 1;
        self.out.push_back(Item::Fragment(fragment));
        Ok(())
    }

    /// Writes the init when every track the stream has is configured (or the start wait is over) and media has
    /// come (so a header replaced before any frame does not cost an init), then the fragments closed while
    /// waiting for it.
    fn maybe_start(&mut self) -> Result<(), Error> {
        if !self.dirty || !self.has_media() {
            return Ok(());
        }
        let (have_video, have_audio) = (self.video.config.is_some(), self.audio.config.is_some());
        if !have_video && !have_audio {
            return Ok(());
        }
        // A track is awaited unless the metadata rules it out; after the first init, a change is complete as
        // soon as it arrives.
        let want_video = self.meta.has_video != Some(false) || self.seen_video;
        let want_audio = self.meta.has_audio != Some(false) || self.seen_audio;
        let complete = (have_video || !want_video) && (have_audio || !want_audio);
        let waited = self.first_ms.is_some_and(|first| self.latest_ms.saturating_sub(first) >= START_WAIT_MS);
        if complete || waited || self.init.is_some() {
            self.emit_init()?;
            if !have_video {
                self.cut_audio_alone()?;
            }
        }
        Ok(())
    }

    fn emit_init(&mut self) -> Result<(), Error> {
        let mut tracks = Vec::with_capacity(2);
        if let Some((_, codec)) = &self.video.config {
            tracks.push(TrackConfig { track_id: VIDEO_TRACK, timescale: VIDEO_TIMESCALE, codec: codec.clone() });
        }
        if let Some((_, codec)) = &self.audio.config {
            tracks.push(TrackConfig { track_id: AUDIO_TRACK, timescale: self.audio.rate, codec: codec.clone() });
        }
        if tracks.is_empty() {
            return Ok(());
        }
        if self.init.as_ref().is_none_or(|(_, current)| *current != tracks) {
            let init = Arc::new(Init::parse(write_init(&tracks)?)?);
            self.stats.inits += 1;
            self.out.push_back(Item::Init(Arc::clone(&init)));
            self.init = Some((init, tracks));
        }
        self.dirty = false;
        for closed in std::mem::take(&mut self.closed) {
            self.write(closed)?;
        }
        self.closed_bytes = 0;
        Ok(())
    }
}

/// AV1-ISOBMFF keeps temporal delimiters out of samples; encoders put one at the start of every temporal unit.
/// Slicing it off keeps the payload zero-copy.
fn strip_temporal_delimiter(data: Bytes) -> Bytes {
    match av1::obu(&data) {
        Ok((av1::OBU_TEMPORAL_DELIMITER, _, rest)) if !rest.is_empty() => {
            let at = data.len() - rest.len();
            data.slice(at..)
        }
        _ => data,
    }
}

/// The CMAF configuration, timescale and frame length of an audio sequence header.
fn audio_config(codec: AudioCodec, record: Bytes) -> Result<(CodecConfig, u32, u32), Error> {
    match codec {
        AudioCodec::Aac => {
            let asc = AudioSpecificConfig::parse(&record)?;
            // A channel layout from a program config element: the sample entry's count is informational.
            let channels = if asc.channels == 0 { 2 } else { asc.channels };
            Ok((
                CodecConfig::Aac { asc: record, channels, sample_rate: asc.sample_rate },
                asc.sample_rate,
                asc.frame_length,
            ))
        }
        AudioCodec::Opus => {
            let head = OpusHead::parse(&record)?;
            let sample_rate = if head.input_sample_rate == 0 { opus::OPUS_RATE } else { head.input_sample_rate };
            Ok((
                CodecConfig::Opus { channels: head.channels, sample_rate, pre_skip: head.pre_skip },
                opus::OPUS_RATE,
                0,
            ))
        }
    }
}
