// ABR ladder (issue 11): hls.js plays a group's master.m3u8 in Debian's headless Chromium, SWITCH_S seconds on the
// level it started on, then forced to switch level every SWITCH_S seconds (`hls.loadLevel`, with automatic
// selection off), cycling through every level, for SECONDS (SECONDS / SWITCH_S switches); prints ONE line of JSON.
// Stalls are counted from the first `playing` on, the first window included.
//
//   node e2e/abr.mjs MASTER_URL [SECONDS] [SWITCH_S]     (defaults 30 and 5)
//
// Reported: levels (bitrate, resolution, codecs) and audio tracks as hls.js parsed them; each forced switch
// (the level asked for, when, and whether and when LEVEL_SWITCHED arrived for it); fatal errors and non-fatal
// errors by details; stalls (BUFFER_STALLED_ERROR and `waiting` after the first `playing`); currentTime progress;
// audio continuity per window (video.webkitAudioDecodedByteCount growth, and the audio buffer's end: the audio
// SourceBuffer's when hls.js has one, else the muxed one); hls.latency at the end. Bounded: 30 s startup +
// SWITCH_S + SECONDS + 20 s.

import { hardLimit, launch, videoPage } from './browser.mjs';

const [url, secondsArg, switchArg] = process.argv.slice(2);
if (!url) {
  console.error('usage: node e2e/abr.mjs MASTER_URL [SECONDS] [SWITCH_S]');
  process.exit(2);
}
const seconds = Number(secondsArg ?? 30);
const switchS = Number(switchArg ?? 5);
const limit = hardLimit('abr.mjs', 30 + switchS + seconds + 20);

const { context, close } = await launch();
let result;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await videoPage(page, 'node_modules/hls.js/dist/hls.min.js');
  result = await page.evaluate(
    async ({ url, seconds, switchS }) => {
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const v = document.getElementById('v');
      const out = {
        hlsjs: Hls.version,
        started: false,
        startup_ms: null,
        levels: [],
        audio_tracks: [],
        switches: [],
        fatal: [],
        errors: {},
        stalls: { buffer_stalled: 0, waiting: 0 },
        holes: [],
        windows: [],
        window_s: 0,
        advance: null,
        latency: null,
        play_error: null,
      };
      const hls = new Hls({ lowLatencyMode: true });
      let t0 = null;
      const since = () => (t0 === null ? null : Math.round(performance.now() - t0));
      hls.on(Hls.Events.ERROR, (_e, d) => {
        if (d.fatal && out.fatal.length < 20) out.fatal.push({ type: d.type, details: d.details, at_ms: since(), reason: String(d.reason ?? d.error?.message ?? '') });
        if (!d.fatal) out.errors[d.details] = (out.errors[d.details] ?? 0) + 1;
        if (d.details === 'bufferStalledError' && t0 !== null) out.stalls.buffer_stalled += 1;
        // Where a stall or a hole was: the playhead and the audio and video buffers as the last append left them.
        if ((d.details === 'bufferStalledError' || d.details === 'bufferSeekOverHole') && out.holes.length < 10) {
          out.holes.push({ details: d.details, at_ms: since(), current_time: Number(v.currentTime.toFixed(3)), hole: d.hole ?? null, ...ranges });
        }
      });
      const ranges = { audio: [], video: [], audiovideo: [] };
      const asList = (r) => Array.from({ length: r.length }, (_, i) => [Number(r.start(i).toFixed(3)), Number(r.end(i).toFixed(3))]);
      // The end of the buffer that holds audio, as hls.js reports each append (the audio SourceBuffer's when audio
      // is its own rendition, the muxed one's otherwise).
      let lastAudioEnd = 0;
      hls.on(Hls.Events.BUFFER_APPENDED, (_e, d) => {
        const r = d.timeRanges?.audio ?? d.timeRanges?.audiovideo;
        if (r && r.length) lastAudioEnd = r.end(r.length - 1);
        if (d.timeRanges?.audio) ranges.audio = asList(d.timeRanges.audio);
        if (d.timeRanges?.video) ranges.video = asList(d.timeRanges.video);
        if (d.timeRanges?.audiovideo) ranges.audiovideo = asList(d.timeRanges.audiovideo);
      });
      let pending = null;
      hls.on(Hls.Events.LEVEL_SWITCHED, (_e, d) => {
        if (pending && d.level === pending.level && pending.switched_ms === null) {
          pending.switched_ms = since() - pending.at_ms;
        }
      });
      let playingAt = null;
      v.addEventListener('playing', () => {
        if (playingAt === null) playingAt = performance.now();
      });
      v.addEventListener('waiting', () => {
        if (t0 !== null) out.stalls.waiting += 1;
      });
      const begin = performance.now();
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        v.muted = true;
        v.play().catch((e) => (out.play_error = String(e)));
      });
      hls.loadSource(url);
      hls.attachMedia(v);
      while (playingAt === null && performance.now() - begin < 30000) {
        if (out.fatal.length) break;
        await sleep(100);
      }
      out.levels = hls.levels.map((l) => ({
        bitrate: l.bitrate,
        resolution: `${l.width}x${l.height}`,
        codecs: [l.videoCodec, l.audioCodec].filter(Boolean).join(','),
        url: String(l.url).split('/').slice(-2).join('/'),
      }));
      out.audio_tracks = (hls.audioTracks ?? []).map((t) => ({ name: t.name, group: t.groupId, lang: t.lang, default: t.default }));
      if (playingAt === null) {
        hls.destroy();
        return out;
      }
      out.started = true;
      out.startup_ms = Math.round(playingAt - begin);
      t0 = performance.now();
      const c0 = v.currentTime;
      const audioEnd = () => lastAudioEnd;
      let bytes = v.webkitAudioDecodedByteCount ?? 0;
      let aEnd = audioEnd();
      let time = v.currentTime;
      const n = hls.levels.length;
      // Window 0 plays the level hls.js started on; each later window begins with a switch.
      for (let w = 0; w * switchS <= seconds; w++) {
        if (w > 0) {
          // Ask for the next level in turn: every level is visited, none twice in a row.
          const level = (Math.max(hls.currentLevel, 0) + 1) % Math.max(n, 1);
          pending = { level, at_ms: since(), switched_ms: null };
          out.switches.push(pending);
          // `loadLevel`, as hls.js's own ABR switches: the next fragment or part is loaded from `level`, and what
          // is buffered plays out. (`currentLevel` would flush the whole buffer, a stall at any live edge.)
          hls.loadLevel = level;
        }
        const wEnd = t0 + (w + 1) * switchS * 1000;
        while (performance.now() < wEnd) await sleep(250);
        const nb = v.webkitAudioDecodedByteCount ?? 0;
        const na = audioEnd();
        out.windows.push({
          audio_bytes: nb - bytes,
          audio_buffer_end: Number(na.toFixed(2)),
          audio_buffer_advanced: na > aEnd,
          time_advanced: Number((v.currentTime - time).toFixed(2)),
          level: hls.currentLevel,
        });
        bytes = nb;
        aEnd = na;
        time = v.currentTime;
        if (out.fatal.length) break;
      }
      out.window_s = (performance.now() - t0) / 1000;
      out.advance = Number(((v.currentTime - c0) / out.window_s).toFixed(3));
      out.latency = Number.isFinite(hls.latency) ? Number(hls.latency.toFixed(3)) : null;
      hls.destroy();
      return out;
    },
    { url, seconds, switchS },
  );
} finally {
  await close();
}
result.levels_count = result.levels.length;
result.audio_tracks_count = result.audio_tracks.length;
result.fatal_count = result.fatal.length;
result.switches_landed = result.switches.filter((s) => s.switched_ms !== null).length;
result.stalls_total = result.stalls.buffer_stalled + result.stalls.waiting;
result.audio_every_window = result.windows.length > 0 && result.windows.every((w) => w.audio_bytes > 0 && w.audio_buffer_advanced);
clearTimeout(limit);
process.stdout.write(JSON.stringify(result) + '\n');
