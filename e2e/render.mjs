// Renders the JSON results of scripts/e2e.sh (tests/e2e.rs and e2e/play.mjs) into BENCHMARKS.md, between
// <!-- e2e:start --> and <!-- e2e:end -->. Creates the file if missing; leaves everything else in it alone.
//
//   node e2e/render.mjs RESULTS_DIR BENCHMARKS.md [SECONDS_TOTAL] [SECONDS_INSTALLING]

import { execSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

const [dir, file, total, installing] = process.argv.slice(2);
const load = (name) => {
  const path = join(dir, `${name}.json`);
  return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null;
};
const sh = (cmd) => {
  try {
    return execSync(cmd, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch (e) {
    return (e.stderr || '').split('\n')[0].trim() || 'unknown';
  }
};
const f = (x, digits = 2) => (typeof x === 'number' ? x.toFixed(digits) : '–');
const pct = (x) => (typeof x === 'number' ? `${(100 * x).toFixed(1)} %` : '–');

const ingest = [load('ingest_h264_aac'), load('ingest_vp9_opus')].filter(Boolean);
const players = [
  ['demo stream of the release binary, direct', load('demo_binary')],
  ['ffmpeg H.264+AAC, direct to the origin', load('player_h264_aac')],
  ['ffmpeg VP9+Opus, direct to the origin', load('player_vp9_opus')],
  ['ffmpeg over RTMP with OBS settings (x264 CBR, 2 s GOP, AAC 48 kHz), direct', load('player_rtmp')],
  ['ffmpeg fMP4, one fragment per 4 s GOP (cut into parts), direct', load('player_gop4')],
  ['ffmpeg H.264+AAC, played over HTTPS with HTTP/2, direct', load('player_https_h2')],
];
const edge = load('edge_nginx');
if (edge) players.push(['ffmpeg H.264+AAC, through the nginx edge', edge.hlsjs_through_edge]);

const lines = [];
const push = (...l) => lines.push(...l);
push(
  '<!-- e2e:start -->',
  '## End to end: real encoder, real player, edge cache',
  '',
  `Written by \`scripts/e2e.sh\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC` +
    (total ? ` (the whole script took ${total} s, ${installing ?? 0} s of it installing tools)` : '') +
    '. Do not edit by hand: the next run replaces this section.',
  '',
  `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}; ${sh('ffmpeg -version')}; ` +
    `${sh('/usr/bin/chromium --version')}; ${sh('nginx -v 2>&1')}; node ${process.version}; ` +
    `hls.js ${players.find(([, r]) => r)?.[1]?.hlsjs ?? '?'}.`,
  '',
  'Pass criteria (tests/e2e.rs) are counts and ratios, never times: no blocking reload answered with an older',
  'playlist than it asked for; parts concatenated equal their segment; the player advances at ≥ 80 % of real time',
  'with no fatal error, fetching parts and using blocking reloads; behind the edge, at most 2 origin requests per',
  'published part for playlists and for parts, and ≥ 10 viewer requests per origin request. Latencies and times',
  'below are measurements only. These tests run in real time: a busy machine (the load average column) can starve',
  'the encoder or the player.',
  '',
  '### ffmpeg ingest (issue 3)',
  '',
  'ffmpeg (shared/FFMPEG.md, 640x360, 800 kbit/s) POSTs one long chunked fMP4 upload to an in-process origin while a',
  'client follows the playlist with blocking reloads exactly as hls.js does (`_HLS_msn=M&_HLS_part=last+1`).',
  '',
  '| codecs | ffmpeg `-t` | upload summary (parts, bytes, dropped) | blocking answers | answers exactly one part ahead | stale answers | segments where parts = segment |',
  '|---|---|---|---|---|---|---|',
);
for (const r of ingest) {
  push(
    `| ${r.codecs} | ${r.ffmpeg_seconds} s | ${r.ingest_summary?.parts}, ${r.ingest_summary?.bytes}, ${r.ingest_summary?.dropped_bytes} | ${r.blocking_answers} | ${r.answers_one_part_ahead} | ${r.stale_answers} | ${r.segments_checked_parts_equal_segment} |`,
  );
}
push(
  '',
  '### hls.js 1.x in headless Chromium (issue 5)',
  '',
  '`e2e/play.mjs`: muted autoplay, `lowLatencyMode: true`, 20 s watched from the first `playing` event (10 s for the',
  'demo). Advance = currentTime gained / wall-clock time. Latency = `hls.latency` (sampled every 500 ms). Stalls =',
  '`waiting` events.',
  '',
  '| stream | startup | advance | stalls | latency median (max) | fatal errors | parts fetched | blocking reloads | load avg |',
  '|---|---|---|---|---|---|---|---|---|',
);
for (const [name, r] of players) {
  if (!r) continue;
  push(
    `| ${name} | ${r.startup_ms} ms | ${pct(r.advance)} | ${r.waiting} | ${f(r.latency_median)} s (${f(r.latency_max)} s) | ${r.fatal} | ${r.requests.parts} | ${r.requests.blocking_playlists} | ${(r.load_average ?? []).join(' → ')} |`,
  );
}
const cut = [
  ['RTMP (OBS settings)', load('player_rtmp')],
  ['fMP4, one fragment per 4 s GOP', load('player_gop4')],
].filter(([, r]) => r);
if (cut.length) {
  push(
    '',
    'Encoders that do not send 200 ms fragments (issue 10): what the playlist advertised, and where hls.js aimed.',
    'A 4 s fragment reaches the origin only once the encoder has finished it; its parts are then released at the pace',
    'of their media, so hls.js plays them as a steady live stream, its latency counted from that paced edge (about 4 s',
    'after the encoder made the frames). RTMP parts are cut as the frames arrive.',
    '',
    '| stream | PART-TARGET | PART-HOLD-BACK | hls.js target latency | latency median |',
    '|---|---|---|---|---|',
    ...cut.map(
      ([name, r]) =>
        `| ${name} | ${f(r.part_target, 3)} s | ${f(r.part_hold_back, 3)} s | ${f(r.target_latency)} s | ${f(r.latency_median)} s |`,
    ),
  );
}
const https = load('player_https_h2');
if (https?.protocols) {
  const by = (k) => Object.entries(https.protocols[k] ?? {}).map(([p, n]) => `${p}: ${n}`).join(', ') || '–';
  push(
    '',
    'HTTPS (issue 13): the protocol of every answer hls.js got over `https://`, by Chromium\'s own account (DevTools',
    `Network.responseReceived); curl --http2 saw \`${https.curl}\` (HTTP version, status).`,
    '',
    '| answers | by protocol |',
    '|---|---|',
    `| playlists | ${by('playlists')} |`,
    `| parts, segments, init | ${by('media')} |`,
  );
}
const refusals = load('refusals');
if (refusals) {
  const row = (name, r) => `| ${name} | ${r.exit} | ${f(r.seconds_to_exit, 2)} s | ${String(r.stderr ?? '').replaceAll('|', '/')} |`;
  push(
    '',
    'ffmpeg refused (wrong credentials): it exits by itself, non-zero, once the origin refuses and closes.',
    '',
    '| push | exit code | seconds from start to exit | ffmpeg\'s last line |',
    '|---|---|---|---|',
    row('HTTP, wrong bearer token', refusals.http_wrong_token),
    row('RTMP, wrong key', refusals.rtmp_wrong_key),
    row('RTMP, no key', refusals.rtmp_no_key),
  );
}
const readers = [load('player_h264_aac'), load('player_vp9_opus')].filter(Boolean);
if (readers.length) {
  push(
    '',
    `A non-LL client, \`ffmpeg -i …/index.m3u8 -t 10 -c copy -f null -\`, read 10 s of each live stream alongside: ` +
      readers.map((r) => `${r.codec} ${r.ffmpeg_hls_reader_ok ? 'exit 0' : 'FAILED'}`).join(', ') +
      '.',
  );
}
if (edge) {
  const e = edge;
  push(
    '',
    '### nginx edge cache, 50 LL-HLS viewers',
    '',
    '`examples/nginx-edge.conf` in front of the origin; 50 simulated viewers (blocking reload for the next part, then a',
    `GET of each new part) for ${e.viewer_seconds} s; the origin counts what reaches it.`,
    '',
    '| measure | value |',
    '|---|---|',
    `| parts published while the viewers watched | ${e.parts_published} |`,
    `| viewer requests (playlists + parts) | ${e.viewer_requests} (${e.viewer_playlist_requests} + ${e.viewer_part_requests}) |`,
    `| parts received per viewer (fewest) | ${f(e.viewer_parts_received_per_viewer, 1)} (${e.viewer_parts_received_min ?? '–'}) |`,
    `| viewer errors / stale playlist answers | ${e.viewer_errors} / ${e.viewer_stale_answers} |`,
    `| origin requests in all | ${e.origin_requests} |`,
    `| origin blocking playlist requests (distinct URLs) | ${e.origin_blocking_playlists} (${e.origin_blocking_playlist_urls}) |`,
    `| origin blocking playlist requests per published part | ${f(e.origin_blocking_playlists_per_part)} |`,
    `| origin part requests (distinct URLs) | ${e.origin_parts} (${e.origin_part_urls}) |`,
    `| origin part requests per published part | ${f(e.origin_parts_per_part)} |`,
    `| collapse ratio: viewer requests per origin request | ${f(e.collapse_ratio, 1)} |`,
    `| edge cache verdicts (access log) | ${Object.entries(e.edge_cache_status)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')} |`,
  );
  if (e.edge_added_delay_ms) {
    const d = e.edge_added_delay_ms;
    push(
      `| delay the edge adds to a blocking reload answer, ms (median / p90 / max) | ${f(d.median, 0)} / ${f(d.p90, 0)} / ${f(d.max, 0)} |`,
    );
  }
}
const ladders = [
  ['3 video renditions + audio as its own rendition (EXT-X-MEDIA)', load('abr_split')],
  ['3 muxed renditions (video + audio each)', load('abr_muxed')],
].filter(([, r]) => r);
if (ladders.length > 0) {
  push(
    '### ABR ladder from one ffmpeg process (issue 11)',
    '',
    'hls.js plays the group\'s master.m3u8, 5 s on the level it started on, then forced to another level',
    '(`hls.loadLevel`) every 5 s for 30 s; stall events are counted from the first `playing`. Then Shaka Player',
    '(low-latency mode) plays the same stream for 20 s.',
    '',
    '| ladder | hls.js levels / audio tracks | switches landed (ms to LEVEL_SWITCHED) | hls.js fatal / stall events | ' +
      'hls.js latency (s) | Shaka variants / errors | Shaka advanced (s) |',
    '|---|---|---|---|---|---|---|',
  );
  for (const [what, r] of ladders) {
    const h = r.hlsjs ?? {};
    const s = r.shaka ?? {};
    const ms = (h.switches ?? []).map((x) => x.switched_ms ?? '–').join(', ');
    push(
      `| ${what} | ${h.levels_count ?? '–'} / ${h.audio_tracks_count ?? '–'} | ` +
        `${h.switches_landed ?? '–'} of ${(h.switches ?? []).length} (${ms}) | ${h.fatal_count ?? '–'} / ` +
        `${h.stalls_total ?? '–'} | ${f(h.latency)} | ${s.variants_count ?? '–'} / ${s.errors_count ?? '–'} | ` +
        `${f(s.advanced_s)} |`,
    );
  }
  push('');
}
push('<!-- e2e:end -->');
const section = lines.join('\n');

let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
const start = text.indexOf('<!-- e2e:start -->');
const end = text.indexOf('<!-- e2e:end -->');
if (start >= 0 && end > start) {
  text = text.slice(0, start) + section + text.slice(end + '<!-- e2e:end -->'.length);
} else {
  text = text.replace(/\n*$/, '\n\n') + section + '\n';
}
writeFileSync(file, text);
console.log(`${file}: e2e section written`);
