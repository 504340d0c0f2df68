#!/usr/bin/env bash
# Writes the fMP4 fixtures used by tests/fmp4.rs, tests/fmp4_writer.rs and the benches, and the RTMP ones of
# tests/flv.rs.
#
# The commands are those of ../shared/FFMPEG.md in their "write a fixture file" form (everything after
# `-frag_duration 200000` replaced by `-t 5 out.mp4`), with a smaller picture and bitrate so the files stay small.
# The file then holds exactly the bytes ffmpeg would POST to /ingest/<id>.
#
# What they hold (measured with ffprobe and the splitter):
# - h264_aac.mp4 (~290 KB): ftyp, moov (avc1.64000d High@1.3 320x180, mp4a.40.2 48 kHz stereo), then 25 fragments
#   (moof+mdat, both tracks in each). Video (track 1, timescale 15360): every fragment 6 samples = 3072 ticks =
#   0.200 s, a sync sample starting fragments 0, 5, 10, 15, 20. Audio (track 2, 48000): 10240 or 9216 ticks
#   (213.3 / 192.0 ms), the last 9600.
# - vp9_opus.mp4 (~260 KB): ftyp, moov (vp09.00.11.08 320x180, opus 48 kHz stereo), then 26 fragments: 25 with both
#   tracks, video exactly 3072 ticks (0.200 s) with sync samples at fragments 0, 5, 10, 15, 20, Opus exactly 9600
#   ticks; the last is audio only, the 312-tick (6.5 ms) Opus tail.
# - h264_aac_gop4.mp4 (long GOPs, for the re-fragmenter): the h264_aac command with a 4 s GOP (-g 120), no
#   -frag_duration (so frag_keyframe cuts one fragment per GOP), 8 s, lower bitrates. ftyp, moov (avc1 320x180,
#   mp4a.40.2 48 kHz stereo), then one fragment per GOP, each starting with a sync sample.
# Re-encoding gives different bytes (x264/libvpx timing under -re), so tests assert the structure above.
#
# The RTMP fixtures of tests/flv.rs (the FLV packager). An FLV file holds exactly the tag bodies an RTMP publish
# of the same command sends (`-f flv rtmp://...`), with the same millisecond timestamps; no -re, since the
# timestamps do not depend on it. Measured with a small tag reader:
# - h264_aac.flv (~215 KB): onMetaData, then AVC and AAC sequence headers at 0 ms (avcC High@1.3 320x180, ASC
#   11 90 56 e5 00 = AAC-LC 48 kHz stereo), then 120 video frames (-tune zerolatency: no B-frames, every
#   composition time 0; 30 fps as 21, 54, 88, 121 ... ms; keyframes at 21 and 2021 ms: a 2 s GOP like OBS) and
#   189 AAC frames at 0, 21, 42, 64 ... 4010 ms, interleaved by timestamp.
# - h264_bframes.flv (~99 KB): 318x178 (odd crops in the SPS), 25 fps with B-frames (composition times 40..160
#   ms, video decode times from 0), keyframes at 0 and 2000 ms; AAC-LC 44.1 kHz mono from 57 ms.
# - hevc.mp4 (~43 KB), av1.mp4 (~40 KB): 2 s of 320x180 HEVC (x265, B-frames, 1 s GOP) and AV1 (SVT-AV1) as
#   fragmented MP4: Debian's ffmpeg 5.1 cannot write Enhanced RTMP FLV, so tests/flv.rs builds the Enhanced RTMP
#   tag bodies (hvc1/av01 SequenceStart with the hvcC/av1C, CodedFrames/CodedFramesX) from them, and Opus ones
#   from vp9_opus.mp4's audio.
set -euo pipefail

cd "$(dirname "$0")/.."
out=tests/fixtures
mkdir -p "$out"

if ! command -v ffmpeg >/dev/null; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y ffmpeg
fi

ffmpeg -hide_banner -nostdin -loglevel warning -y \
  -re -f lavfi -i testsrc2=size=320x180:rate=30 \
  -re -f lavfi -i sine=frequency=440:beep_factor=4:sample_rate=48000 \
  -map 0:v -map 1:a \
  -c:v libx264 -preset veryfast -tune zerolatency -pix_fmt yuv420p -b:v 300k -g 30 -keyint_min 30 -sc_threshold 0 \
  -c:a aac -b:a 128k -ac 2 -ar 48000 \
  -f mp4 -movflags empty_moov+delay_moov+default_base_moof+frag_keyframe+skip_trailer \
  -frag_duration 200000 -t 5 "$out/h264_aac.mp4"

ffmpeg -hide_banner -nostdin -loglevel warning -y \
  -re -f lavfi -i testsrc2=size=320x180:rate=30 \
  -re -f lavfi -i sine=frequency=440:beep_factor=4:sample_rate=48000 \
  -map 0:v -map 1:a \
  -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -row-mt 1 -lag-in-frames 0 -error-resilient 1 -pix_fmt yuv420p -b:v 300k -g 30 -keyint_min 30 \
  -c:a libopus -b:a 128k -ac 2 -ar 48000 \
  -f mp4 -movflags empty_moov+delay_moov+default_base_moof+frag_keyframe+skip_trailer \
  -frag_duration 200000 -t 5 "$out/vp9_opus.mp4"

ffmpeg -hide_banner -nostdin -loglevel warning -y \
  -re -f lavfi -i testsrc2=size=320x180:rate=30 \
  -re -f lavfi -i sine=frequency=440:beep_factor=4:sample_rate=48000 \
  -map 0:v -map 1:a \
  -c:v libx264 -preset veryfast -tune zerolatency -pix_fmt yuv420p -b:v 150k -g 120 -keyint_min 120 -sc_threshold 0 \
  -c:a aac -b:a 64k -ac 2 -ar 48000 \
  -f mp4 -movflags empty_moov+delay_moov+default_base_moof+frag_keyframe+skip_trailer \
  -t 8 "$out/h264_aac_gop4.mp4"

ffmpeg -hide_banner -nostdin -loglevel warning -y \
  -f lavfi -i testsrc2=size=320x180:rate=30 \
  -f lavfi -i sine=frequency=440:beep_factor=4:sample_rate=48000 \
  -map 0:v -map 1:a \
  -c:v libx264 -preset veryfast -tune zerolatency -pix_fmt yuv420p -g 60 -keyint_min 60 -sc_threshold 0 -b:v 300k \
  -c:a aac -ar 48000 -ac 2 -b:a 96k \
  -t 4 -f flv "$out/h264_aac.flv"

ffmpeg -hide_banner -nostdin -loglevel warning -y \
  -f lavfi -i testsrc2=size=318x178:rate=25 \
  -f lavfi -i sine=frequency=660:sample_rate=44100 \
  -map 0:v -map 1:a \
  -c:v libx264 -preset veryfast -bf 2 -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 -b:v 200k \
  -c:a aac -ar 44100 -ac 1 -b:a 64k \
  -t 3 -f flv "$out/h264_bframes.flv"

ffmpeg -hide_banner -nostdin -loglevel error -y \
  -f lavfi -i testsrc2=size=320x180:rate=30 \
  -c:v libx265 -preset ultrafast -x265-params keyint=30:min-keyint=30:bframes=2:log-level=error -pix_fmt yuv420p \
  -b:v 150k -tag:v hvc1 \
  -t 2 -f mp4 -movflags empty_moov+default_base_moof+frag_keyframe "$out/hevc.mp4"

ffmpeg -hide_banner -nostdin -loglevel error -y \
  -f lavfi -i testsrc2=size=320x180:rate=30 \
  -c:v libsvtav1 -preset 12 -g 30 -b:v 150k -pix_fmt yuv420p \
  -t 2 -f mp4 -movflags empty_moov+default_base_moof+frag_keyframe "$out/av1.mp4"

# The ABR ladder of tests/abr.rs: ONE ffmpeg process, one input, four outputs as four separate uploads would carry
# them (issue 11): three video-only renditions with the same 1 s GOP and one audio-only rendition, all on the
# input's timeline, so their decode times line up.
mp4flags=(-f mp4 -movflags empty_moov+delay_moov+default_base_moof+frag_keyframe+skip_trailer -frag_duration 200000)
ffmpeg -hide_banner -nostdin -loglevel warning -y \
  -f lavfi -i testsrc2=size=320x180:rate=30 \
  -f lavfi -i sine=frequency=440:beep_factor=4:sample_rate=48000 \
  -filter_complex '[0:v]split=3[a][b][c];[b]scale=256:144[b2];[c]scale=160:90[c2]' \
  -map '[a]' -c:v libx264 -preset veryfast -tune zerolatency -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0 \
  -b:v 200k -t 5 "${mp4flags[@]}" "$out/ladder_v180.mp4" \
  -map '[b2]' -c:v libx264 -preset veryfast -tune zerolatency -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0 \
  -b:v 120k -t 5 "${mp4flags[@]}" "$out/ladder_v144.mp4" \
  -map '[c2]' -c:v libx264 -preset veryfast -tune zerolatency -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0 \
  -b:v 60k -t 5 "${mp4flags[@]}" "$out/ladder_v90.mp4" \
  -map 1:a -c:a aac -ar 48000 -ac 2 -b:a 64k -t 5 "${mp4flags[@]}" "$out/ladder_audio.mp4"

ls -l "$out"
