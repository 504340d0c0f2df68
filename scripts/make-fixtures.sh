#!/usr/bin/env bash
# Writes the fMP4 fixtures used by tests/fmp4.rs, tests/fmp4_writer.rs and the benches.
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

ls -l "$out"
