// Plays one LL-HLS stream with hls.js in Debian's headless Chromium and prints ONE line of JSON with what happened.
//
//   node e2e/play.mjs URL [SECONDS]
//
// The page is an empty document (page.setContent, so every request to the server is cross-origin and exercises
// CORS) with hls.js injected from e2e/node_modules. Playback is muted autoplay with `lowLatencyMode: true`. From
// the first `playing` event the script watches the video for SECONDS (default 20) and reports:
//   advance      currentTime gained / wall-clock time elapsed over that window (1.0 = real time)
//   waiting      `waiting` events (stalls) in that window
//   latency      hls.latency samples (seconds behind the live edge), one every 500 ms
//   errors       every hls.js ERROR event (type, details, fatal)
//   requests     what hls.js asked the server for: parts (p{msn}.{part}.mp4), blocking playlist reloads (with
//                _HLS_msn), plain playlist loads, segments, init
//   protocols    how the server's answers came, by the browser's own account (DevTools' Network.responseReceived):
//                {"h2": n, "http/1.1": n}, for playlists and for media (parts, segments, init)
//   seeks        every `seeking` event (from, to), to explain a jump; timeline: [ms, currentTime, buffer end,
//                latency] every 500 ms; load_average: the machine's 1-minute load before and after
//   token_in_query  requests whose URL carries `token=`, playlists and media apart; refused: answers 401 or 403
// With PLAY_SAME_ORIGIN=1 the empty document is one of the stream's own origin instead (its /healthz, replaced by
// setContent, which keeps the URL): the player's requests are then same-origin and carry cookies, as a page served
// by the origin's site does (the playback-token cookie, README "Playback access control").
// Nothing is downloaded: the browser is /usr/bin/chromium (override with CHROMIUM=...), never a Playwright build.
// Everything else goes to stderr. The whole run is bounded (startup 30 s + SECONDS + 15 s).

import { loadavg } from 'node:os';
import { hardLimit, here, launch } from './browser.mjs';
import { join } from 'node:path';

const [url, secondsArg] = process.argv.slice(2);
if (!url) {
  console.error('usage: node e2e/play.mjs URL [SECONDS]');
  process.exit(2);
}
const seconds = Number(secondsArg ?? 20);
const hlsPath = join(here, 'node_modules', 'hls.js', 'dist', 'hls.min.js');

const limit = hardLimit('play.mjs', 30 + seconds + 15);

// A real-time test: other processes on the machine (builds, benchmarks) can starve the player. Say how busy it was.
const loadBefore = loadavg()[0];
const { context, close } = await launch();

const requests = [];
const protocols = { playlists: {}, media: {} };
let refused = 0;
let result;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', ({ response }) => {
    const kind = /\.m3u8(\?|$)/.test(response.url) ? 'playlists' : /\.mp4(\?|$)/.test(response.url) ? 'media' : null;
    if (kind) protocols[kind][response.protocol] = (protocols[kind][response.protocol] ?? 0) + 1;
  });
  page.on('request', (r) => requests.push(r.url()));
  page.on('response', (r) => {
    if (r.status() === 401 || r.status() === 403) refused += 1;
  });
  if (process.env.PLAY_SAME_ORIGIN) await page.goto(new URL(url).origin + '/healthz');
  page.on('console', (m) => console.error(`[page] ${m.text()}`));
  await page.setContent('<!doctype html><html><body><video id="v" muted autoplay playsinline></video></body></html>');
  await page.addScriptTag({ path: hlsPath });
  result = await page.evaluate(
    async ({ url, seconds }) => {
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const v = document.getElementById('v');
      const out = {
        hlsjs: Hls.version,
        supported: Hls.isSupported(),
        mse: {
          h264_aac: MediaSource.isTypeSupported('video/mp4; codecs="avc1.64001e,mp4a.40.2"'),
          vp9_opus: MediaSource.isTypeSupported('video/mp4; codecs="vp09.00.21.08,opus"'),
        },
        started: false,
        startup_ms: null,
        window_s: 0,
        advance: 0,
        waiting: 0,
        latency: [],
        target_latency: null,
        errors: [],
        play_error: null,
        seeks: [],
        timeline: [],
      };
      if (!out.supported) return out;
      const hls = new Hls({ lowLatencyMode: true });
      hls.on(Hls.Events.ERROR, (_e, d) => {
        if (out.errors.length < 50) out.errors.push({ type: d.type, details: d.details, fatal: !!d.fatal });
      });
      let t0 = null;
      let c0 = 0;
      let playingAt = null;
      v.addEventListener('playing', () => {
        if (playingAt === null) playingAt = performance.now();
      });
      let lastTime = 0;
      v.addEventListener('timeupdate', () => {
        if (!v.seeking) lastTime = v.currentTime;
      });
      v.addEventListener('seeking', () => {
        if (out.seeks.length < 20) {
          const t = playingAt === null ? null : Math.round(performance.now() - playingAt);
          out.seeks.push({ at_ms: t, from: Number(lastTime.toFixed(3)), to: Number(v.currentTime.toFixed(3)) });
        }
      });
      v.addEventListener('waiting', () => {
        if (t0 !== null) out.waiting += 1;
      });
      const begin = performance.now();
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        v.muted = true;
        v.play().catch((e) => (out.play_error = String(e)));
      });
      hls.loadSource(url);
      hls.attachMedia(v);
      // Startup: up to 30 s for the first `playing`.
      while (playingAt === null && performance.now() - begin < 30000) {
        if (out.errors.some((e) => e.fatal)) break;
        await sleep(100);
      }
      if (playingAt === null) {
        hls.destroy();
        return out;
      }
      out.started = true;
      out.startup_ms = Math.round(playingAt - begin);
      t0 = performance.now();
      c0 = v.currentTime;
      while (performance.now() - t0 < seconds * 1000) {
        await sleep(500);
        if (Number.isFinite(hls.latency) && hls.latency > 0) out.latency.push(Number(hls.latency.toFixed(3)));
        const b = v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0;
        // [ms since first `playing`, currentTime, end of buffer, hls.latency]
        out.timeline.push([
          Math.round(performance.now() - t0),
          Number(v.currentTime.toFixed(2)),
          Number(b.toFixed(2)),
          Number((hls.latency ?? 0).toFixed(2)),
        ]);
        if (out.errors.some((e) => e.fatal)) break;
      }
      out.window_s = (performance.now() - t0) / 1000;
      out.advance = (v.currentTime - c0) / out.window_s;
      out.target_latency = hls.targetLatency;
      hls.destroy();
      return out;
    },
    { url, seconds },
  );
} finally {
  await close();
}

const count = (re) => requests.filter((u) => re.test(u)).length;
const parts = requests.filter((u) => /\/p\d+\.\d+\.mp4(\?|$)/.test(u));
result.requests = {
  total: requests.length,
  parts: parts.length,
  distinct_parts: new Set(parts).size,
  segments: count(/\/s\d+\.mp4(\?|$)/),
  init: count(/\/init[^/]*\.mp4(\?|$)/),
  blocking_playlists: count(/\.m3u8\?(.*&)?_HLS_msn=/),
  plain_playlists: requests.filter((u) => /\.m3u8/.test(u) && !/_HLS_msn=/.test(u)).length,
  skip_playlists: count(/_HLS_skip=/),
  first: requests.filter((u) => u.startsWith('http')).slice(0, 6),
  token_in_query: {
    playlists: requests.filter((u) => /\.m3u8\?(.*&)?token=/.test(u)).length,
    media: requests.filter((u) => /\.mp4\?(.*&)?token=/.test(u)).length,
  },
  refused,
};
result.protocols = protocols;
result.load_average = [loadBefore, loadavg()[0]].map((x) => Number(x.toFixed(2)));
result.fatal = result.errors.filter((e) => e.fatal).length;
const lat = [...result.latency].sort((a, b) => a - b);
result.latency_median = lat.length ? lat[Math.floor(lat.length / 2)] : null;
result.latency_max = lat.length ? lat[lat.length - 1] : null;
delete result.latency;
result.latency_samples = lat.length;
clearTimeout(limit);
process.stdout.write(JSON.stringify(result) + '\n');
