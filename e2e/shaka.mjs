// A second real player (issue 11): Shaka Player (npm shaka-player) plays a master.m3u8 in Debian's headless
// Chromium in low-latency mode for SECONDS and prints ONE line of JSON.
//
//   node e2e/shaka.mjs MASTER_URL [SECONDS]     (default 20)
//
// Reported: errors (player `error` events and a rejected load, with code, category and data), variant tracks,
// playhead progress, stalls (`buffering` events turning on after the first `playing`, and `waiting`), and the
// live latency at the end (getStats().liveLatency, and seekRange().end - currentTime as seek_range_gap). Bounded: 30 s startup + SECONDS + 20 s.

import { hardLimit, launch, videoPage } from './browser.mjs';

const [url, secondsArg] = process.argv.slice(2);
if (!url) {
  console.error('usage: node e2e/shaka.mjs MASTER_URL [SECONDS]');
  process.exit(2);
}
const seconds = Number(secondsArg ?? 20);
const limit = hardLimit('shaka.mjs', 30 + seconds + 20);

const { context, close } = await launch();
let result;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await videoPage(page, 'node_modules/shaka-player/dist/shaka-player.compiled.js');
  result = await page.evaluate(
    async ({ url, seconds }) => {
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const v = document.getElementById('v');
      shaka.polyfill.installAll();
      const out = {
        shaka: shaka.Player.version,
        supported: shaka.Player.isBrowserSupported(),
        started: false,
        startup_ms: null,
        errors: [],
        load_error: null,
        variants: [],
        buffering: 0,
        waiting: 0,
        window_s: 0,
        advanced_s: 0,
        advance: null,
        latency: null,
        is_live: null,
        timeline: [],
      };
      const err = (e) => ({ code: e.code, category: e.category, severity: e.severity, data: JSON.stringify(e.data ?? []).slice(0, 400) });
      const player = new shaka.Player();
      await player.attach(v);
      player.configure({ streaming: { lowLatencyMode: true } });
      let t0 = null;
      player.addEventListener('error', (ev) => {
        if (out.errors.length < 20) out.errors.push(err(ev.detail));
      });
      player.addEventListener('buffering', (ev) => {
        if (t0 !== null && ev.buffering) out.buffering += 1;
      });
      let playingAt = null;
      v.addEventListener('playing', () => {
        if (playingAt === null) playingAt = performance.now();
      });
      v.addEventListener('waiting', () => {
        if (t0 !== null) out.waiting += 1;
      });
      const begin = performance.now();
      try {
        await player.load(url);
        v.muted = true;
        v.play().catch(() => {});
      } catch (e) {
        out.load_error = err(e);
        await player.destroy();
        return out;
      }
      while (playingAt === null && performance.now() - begin < 30000) await sleep(100);
      out.is_live = player.isLive();
      if (playingAt === null) {
        await player.destroy();
        return out;
      }
      out.started = true;
      out.startup_ms = Math.round(playingAt - begin);
      t0 = performance.now();
      const c0 = v.currentTime;
      while (performance.now() - t0 < seconds * 1000) {
        await sleep(1000);
        const r = player.seekRange();
        out.timeline.push([Math.round(performance.now() - t0), Number(v.currentTime.toFixed(2)), Number((r.end - v.currentTime).toFixed(2))]);
      }
      out.window_s = (performance.now() - t0) / 1000;
      out.advanced_s = Number((v.currentTime - c0).toFixed(2));
      out.advance = Number((out.advanced_s / out.window_s).toFixed(3));
      // seekRange's end already leaves Shaka's own safety margin out, so this can be slightly negative; the stats'
      // liveLatency is the distance to the newest media.
      out.seek_range_gap = Number((player.seekRange().end - v.currentTime).toFixed(3));
      out.variants = player.getVariantTracks().map((t) => ({
        bandwidth: t.bandwidth,
        resolution: `${t.width}x${t.height}`,
        codecs: t.codecs,
        active: t.active,
      }));
      out.stats = (({ estimatedBandwidth, streamBandwidth, stallsDetected, gapsJumped, bufferingTime, liveLatency }) => ({ estimatedBandwidth, streamBandwidth, stallsDetected, gapsJumped, bufferingTime, liveLatency }))(player.getStats());
      out.latency = Number.isFinite(out.stats.liveLatency) ? Number(out.stats.liveLatency.toFixed(3)) : null;
      await player.destroy();
      return out;
    },
    { url, seconds },
  );
} finally {
  await close();
}
result.errors_count = result.errors.length + (result.load_error ? 1 : 0);
result.variants_count = result.variants.length;
clearTimeout(limit);
process.stdout.write(JSON.stringify(result) + '\n');
