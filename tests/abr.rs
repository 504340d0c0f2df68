//! Aligned renditions (issue 11): the renditions of a group cut their segments at the same media times, under the
//! same MSN, `EXTINF` and `PROGRAM-DATE-TIME`, whenever each upload started and also across a reconnect; audio is
//! cut where the video's segments start; rendition reports name positions that exist.
//!
//! The ladder fixtures come from ONE ffmpeg process (scripts/make-fixtures.sh): three video-only renditions with
//! the same 1 s GOP and an audio-only one, on one timeline, each uploaded on its own as DASH-IF ingest would.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use std::time::Duration;

use common::{start, start_default, Media, Server};
use playlists::fmp4::{Fragment, Init};
use playlists::Options;
use playlists_actors::EngineConfig;

const VIDEO: [&str; 3] = ["v180", "v144", "v90"];

/// One upload of `stream` (`path` under /ingest/): the init, then fragments `range`.
async fn upload(server: &Server, path: &str, media: &Media, range: std::ops::Range<usize>) {
    let mut body = BytesMut::from(&media.init[..]);
    for i in range {
        body.extend_from_slice(&media.fragments[i]);
    }
    let reply = server.post(&format!("/ingest/{path}"), body.freeze()).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
}

/// Per MSN of a rendition's complete segments: `EXTINF` as written, and its `PROGRAM-DATE-TIME` in milliseconds of
/// the day (as written where the tag is, else the previous segment's plus its `EXTINF`).
fn segments(text: &str) -> BTreeMap<u64, (String, u64)> {
    let playlist = common::parse_media(text);
    let mut out = BTreeMap::new();
    let (mut extinf, mut date) = (None, None::<u64>);
    let mut msn = playlist.media_sequence;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            date = Some(day_ms(d));
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            extinf = Some(d.trim_end_matches(',').to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let e = extinf.take().unwrap();
            let at = date.expect("a date before the first segment");
            date = Some(at + (e.parse::<f64>().unwrap() * 1000.0).round() as u64);
            out.insert(msn, (e, at));
            msn += 1;
        }
    }
    assert_eq!(out.len(), playlist.segments.len(), "m3u8-rs sees the same segments:\n{text}");
    out
}

/// `2026-12-07T13:53:53.231Z` as milliseconds since the start of its day.
fn day_ms(date: &str) -> u64 {
    let time = date.split_once('T').unwrap().1.trim_end_matches('Z');
    let mut f = time.split(':');
    let (h, m, s): (u64, u64, f64) =
        (f.next().unwrap().parse().unwrap(), f.next().unwrap().parse().unwrap(), f.next().unwrap().parse().unwrap());
    (h * 3600 + m * 60) * 1000 + (s * 1000.0).round() as u64
}

/// `(uri, last msn, last part)` of each `EXT-X-RENDITION-REPORT`.
fn reports(text: &str) -> Vec<(String, u64, u32)> {
    common::lines(text, "#EXT-X-RENDITION-REPORT:")
        .into_iter()
        .map(|l| {
            let attr = |name: &str| {
                l.split(',').find_map(|a| a.split_once('=').filter(|(k, _)| k.ends_with(name)).map(|(_, v)| v))
            };
            let uri = attr("URI").unwrap().trim_matches('"').to_owned();
            (uri, attr("LAST-MSN").unwrap().parse().unwrap(), attr("LAST-PART").unwrap().parse().unwrap())
        })
        .collect()
}

/// Decode time in seconds of the first sample of part `msn.0` of `rendition`.
async fn part_start(server: &Server, rendition: &str, msn: u64, init: &Init) -> f64 {
    let reply = server.get(&format!("/live/ladder/{rendition}/p{msn}.0.mp4")).await;
    assert_eq!(reply.status, 200, "{rendition} p{msn}.0");
    let fragment = Fragment::parse(reply.body, init).unwrap();
    let (ticks, timescale) = fragment.decode_time().unwrap();
    ticks as f64 / f64::from(timescale)
}

#[actix_rt::test]
async fn renditions_started_at_different_moments_cut_the_same_segments() {
    let server = start_default().await;
    let media: BTreeMap<&str, Media> =
        VIDEO.iter().chain(["audio"].iter()).map(|&r| (r, Media::load(&format!("ladder_{r}.mp4")))).collect();
    let (v180, v144, v90, audio) = (&media["v180"], &media["v144"], &media["v90"], &media["audio"]);
    assert_eq!(v180.fragments.len(), 25, "5 s of 200 ms fragments, a keyframe every 5th");
    let audio_frames = audio.fragments.len();

    // v180 first, in the DASH-IF form; v144 starts at the 1 s keyframe; audio follows the video; v90 starts last
    // and overtakes; v144 reconnects (a new upload going on with the same timeline); then everyone finishes.
    upload(&server, "ladder/Streams(v180)", v180, 0..10).await;
    upload(&server, "ladder/v144", v144, 5..15).await;
    upload(&server, "ladder/audio", audio, 0..audio_frames / 3).await;
    upload(&server, "ladder/v90", v90, 0..25).await;
    upload(&server, "ladder/v144", v144, 15..25).await;
    upload(&server, "ladder/Streams(v180.cmfv)", v180, 10..25).await;
    upload(&server, "ladder/audio", audio, audio_frames / 3..audio_frames).await;

    let mut texts = BTreeMap::new();
    for r in VIDEO.iter().chain(["audio"].iter()) {
        let reply = server.get(&format!("/live/ladder/{r}/index.m3u8")).await;
        assert_eq!(reply.status, 200, "{r}");
        texts.insert(*r, reply.text());
    }
    // One SERVER-CONTROL for the presentation (checklist item 21): PART-HOLD-BACK covers the longest PART-TARGET
    // (the audio's 0.214 s, against the video's 0.200 s).
    let control: Vec<_> = texts.values().map(|t| common::lines(t, "#EXT-X-SERVER-CONTROL:")).collect();
    assert!(control.windows(2).all(|w| w[0] == w[1]), "{control:?}");
    assert!(control[0][0].contains("PART-HOLD-BACK=0.642"), "{control:?}");
    let listed: BTreeMap<&str, BTreeMap<u64, (String, u64)>> = texts.iter().map(|(r, t)| (*r, segments(t))).collect();
    assert_eq!(listed["v144"].keys().next(), Some(&1), "v144 joined at the 1 s keyframe: segment 1");
    assert_eq!(listed["v180"].keys().next(), Some(&0));

    // Every MSN two renditions list: the same EXTINF and PROGRAM-DATE-TIME, as text.
    let mut compared = 0;
    for (a, sa) in &listed {
        for (b, sb) in &listed {
            if a >= b {
                continue;
            }
            for (msn, seg) in sa {
                if let Some(other) = sb.get(msn) {
                    assert_eq!(seg, other, "segment {msn} of {a} and {b}:\n{}\n{}", texts[a], texts[b]);
                    compared += 1;
                }
            }
        }
    }
    assert!(compared >= 6 * 3, "{compared} segment pairs compared");

    // The audio's segments start within half a part (of the 250 ms maximum) of the video's: at the edge of the
    // audio fragment nearest the video's boundary, or where the boundary cuts a fragment into two pieces neither of
    // which is a sliver (under half a part), at the frame nearest it. So no audio part but the stream's last one is
    // a sliver (hls.js skips a sliver at a segment's edge: a hole in its audio buffer).
    let inits: BTreeMap<&str, Init> =
        media.iter().map(|(r, m)| (*r, Init::parse(Bytes::clone(&m.init)).unwrap())).collect();
    for &msn in listed["audio"].keys().filter(|&&m| m > 0) {
        let a = part_start(&server, "audio", msn, &inits["audio"]).await;
        let v = part_start(&server, "v180", msn, &inits["v180"]).await;
        assert!((a - v).abs() <= 0.125, "segment {msn}: audio starts at {a} s, video at {v} s");
    }
    let parts = common::lines(texts["audio"].as_str(), "#EXT-X-PART:");
    let durations: Vec<f64> = parts
        .iter()
        .map(|l| l.split_once("DURATION=").unwrap().1.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(durations.len() > 5, "{}", texts["audio"]);
    for d in &durations[..durations.len() - 1] {
        assert!(*d >= 0.125, "an audio sliver of {d} s:\n{}", texts["audio"]);
    }

    // Every rendition report names a part that exists, in a rendition of the group.
    for (r, text) in &texts {
        let found = reports(text);
        assert_eq!(found.len(), 3, "{r} reports the other three:\n{text}");
        for (uri, msn, part) in found {
            let other = uri.strip_prefix("../").and_then(|u| u.strip_suffix("/index.m3u8")).unwrap();
            assert!(media.contains_key(other), "{uri}");
            let reply = server.get(&format!("/live/ladder/{other}/p{msn}.{part}.mp4")).await;
            assert_eq!(reply.status, 200, "{r} reports {uri} at {msn}.{part}");
        }
    }

    // The multivariant playlist: the audio as an EXT-X-MEDIA rendition every video variant names, lowest first.
    let master = server.get("/live/ladder/master.m3u8").await;
    assert_eq!(master.status, 200);
    let text = master.text();
    let media = common::lines(&text, "#EXT-X-MEDIA:");
    assert_eq!(
        media,
        vec![
            r#"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8""#
        ],
        "{text}"
    );
    let parsed = match m3u8_rs::parse_master_playlist_res(text.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("not a multivariant playlist ({e:?}):\n{text}"),
    };
    let uris: Vec<_> = parsed.variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, ["v90/index.m3u8", "v144/index.m3u8", "v180/index.m3u8"], "{text}");
    let sizes: Vec<_> = parsed.variants.iter().filter_map(|v| v.resolution.map(|r| (r.width, r.height))).collect();
    assert_eq!(sizes, [(160, 90), (256, 144), (320, 180)], "{text}");
    for v in &parsed.variants {
        assert_eq!(v.audio.as_deref(), Some("audio"), "{text}");
        let codecs = v.codecs.as_deref().unwrap_or_default();
        assert!(codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"), "{text}");
        // testsrc2 at 30 fps; the averages over complete segments are under the peaks, the audio's 64 kb/s in both.
        assert_eq!(v.frame_rate, Some(30.0), "{text}");
        let average = v.average_bandwidth.unwrap_or_default();
        assert!(average > 64_000 && average <= v.bandwidth, "{text}");
    }
    assert_eq!(parsed.alternatives.len(), 1);
}

/// Issue 11 item 2: a master asked for while the ladder comes up waits for the renditions that have started, then
/// is cached like a plain reload, with an ETag (304) and gzip.
#[actix_rt::test]
async fn the_master_waits_for_the_renditions_that_have_started() {
    let server = start_default().await;
    let (v90, v180) = (Media::load("ladder_v90.mp4"), Media::load("ladder_v180.mp4"));
    server.publish("wait/v90", &v90, 10).await;
    // Announced, with a part but no complete segment: no playlist yet.
    server.publish("wait/v180", &v180, 3).await;
    let (client, url) = (server.client.clone(), server.url("/live/wait/master.m3u8"));
    let asked = actix_rt::spawn(async move {
        let mut resp = client.get(url).send().await.unwrap();
        (resp.status(), resp.body().await.unwrap())
    });
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert!(!asked.is_finished(), "the master was answered before v180 had a playlist");
    // The keyframe at 1 s closes v180's first segment.
    server.publish_range("wait/v180", &v180, 3..6).await;
    let (status, body) = asked.await.unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body.to_vec()).unwrap();
    let uris: Vec<_> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(uris, ["v90/index.m3u8", "v180/index.m3u8"], "{text}");

    let plain = server.get("/live/wait/master.m3u8").await;
    assert_eq!(plain.text(), text, "unchanged while no segment closes");
    assert_eq!(plain.header("cache-control").as_deref(), Some("public, max-age=1"));
    assert_eq!(plain.header("vary").as_deref(), Some("Accept-Encoding"));
    assert_eq!(plain.header("content-type").as_deref(), Some("application/vnd.apple.mpegurl"));
    let etag = plain.header("etag").expect("an ETag");
    let again = server.client.get(server.url("/live/wait/master.m3u8")).insert_header(("If-None-Match", etag.clone()));
    let again = server.send(again, None).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let gz = server.client.get(server.url("/live/wait/master.m3u8")).insert_header(("Accept-Encoding", "gzip"));
    let gz = server.send(gz, None).await;
    assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(gz.header("etag"), Some(etag.clone()));
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz.body[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, text);

    // A segment closing changes the bit rates, so the text and its ETag.
    server.publish_range("wait/v180", &v180, 6..11).await;
    let changed = server.get("/live/wait/master.m3u8").await;
    assert_ne!(changed.header("etag"), Some(etag), "{}", changed.text());
    assert_eq!(server.get("/live/nowhere/master.m3u8").await.status, 404);
}

/// The wait is bounded by 3 × the target duration: then the renditions that are ready are listed, and a group none
/// of whose renditions is ready is 503.
#[actix_rt::test]
async fn the_master_wait_is_bounded() {
    let options = Options { target_duration: 1, min_segment: Duration::from_secs(1), ..Options::default() };
    let server = start(EngineConfig { options, ..EngineConfig::default() }).await;
    let (v90, v180) = (Media::load("ladder_v90.mp4"), Media::load("ladder_v180.mp4"));
    server.publish("late/v180", &v180, 2).await;
    let none = server.get("/live/late/master.m3u8").await;
    assert_eq!(none.status, 503, "{}", none.text());
    assert!(none.text().contains("error"), "{}", none.text());
    server.publish("late/v90", &v90, 10).await;
    let some = server.get("/live/late/master.m3u8").await;
    assert_eq!(some.status, 200);
    let uris: Vec<_> = some.text().lines().filter(|l| !l.starts_with('#')).map(str::to_owned).collect();
    assert_eq!(uris, ["v90/index.m3u8"], "{}", some.text());
}
