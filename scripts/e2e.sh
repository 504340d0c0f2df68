#!/usr/bin/env bash
# End to end: a real encoder, a real player, an edge cache (DESIGN.md section 5; issues 3 and 5).
#
#   scripts/e2e.sh
#
# 1. Installs what is missing on a Debian machine: ffmpeg, curl, chromium and nginx from Debian's packages (apt-get), and
#    hls.js, shaka-player + playwright-core into e2e/node_modules from e2e/package-lock.json (npm ci). Never a browser download:
#    Playwright drives Debian's /usr/bin/chromium.
# 2. Builds the server (release), plays its built-in demo stream with hls.js in headless Chromium, and opens its
#    status page there (the demo row appears and advances; a screenshot goes to target/e2e/status-page.png).
# 3. Runs the #[ignore] tests of tests/e2e.rs: ffmpeg ingest (H.264+AAC and VP9+Opus) followed part by part,
#    hls.js and ffmpeg's HLS reader playing ffmpeg's stream, nginx (examples/nginx-edge.conf) with 50 viewers;
#    and the encoders of issue 10: ffmpeg over RTMP with OBS's settings and ffmpeg sending one fragment per 4 s GOP,
#    each played by hls.js, and ffmpeg with wrong credentials over HTTP and RTMP, which must exit with an error;
#    hls.js playing over HTTPS with HTTP/2 (every answer h2 by Chromium's account), curl --http2 beside it;
#    and playback tokens (issue 13): hls.js given a token on the playlist URL alone, the cookie carrying the rest,
#    and curl refused without one; and the ABR ladders of issue 11: one ffmpeg pushing 3 video renditions and an
#    audio rendition (and a muxed ladder), hls.js forced to switch level every 5 s for 30 s, Shaka Player in
#    low-latency mode for 20 s.
# 4. Writes what was measured into BENCHMARKS.md, between <!-- e2e:start --> and <!-- e2e:end --> (nothing else
#    in the file is touched).
#
# Only loopback traffic (besides the installs); every step has a time limit; children are killed on exit.
# Measured on a 2-core machine: 2.5 minutes once the tools and the build are there (the tests run in real time);
# a fresh machine adds about 2 minutes of apt/npm installs and 5-8 minutes of compiling.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
started=$(date +%s)
export CARGO_TERM_COLOR=never
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
out="$root/target/e2e"
export E2E_OUT="$out"

server_pid=""
child=""
cleanup() {
  # `timeout` leads its own process group and, when signalled, passes the signal to the whole group: cargo, the
  # test binary and every ffmpeg, nginx, node and chromium it started.
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command with a time limit, in the background so that a signal to this script reaches the trap at once.
bounded() {
  local secs=$1 rc=0
  shift
  timeout --kill-after=10 "$secs" "$@" &
  child=$!
  wait "$child" || rc=$?
  child=""
  return "$rc"
}

log() { printf '== %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }

# --- 1. tools ---------------------------------------------------------------------------------------------------
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v curl >/dev/null || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  bounded 600 $sudo apt-get update
  bounded 1200 $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
fi
if [ ! -f e2e/node_modules/hls.js/dist/hls.min.js ] || [ ! -d e2e/node_modules/playwright-core ] \
  || [ ! -f e2e/node_modules/shaka-player/dist/shaka-player.compiled.js ] \
  || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
  log "npm ci (hls.js, shaka-player, playwright-core)"
  bounded 600 npm ci --prefix e2e --no-audit --no-fund
fi
installed=$(($(date +%s) - started))

# --- 2. the server binary and its demo stream ---------------------------------------------------------------------
log "cargo build --release --bin playlists"
bounded 1200 cargo build --release --bin playlists
target_dir=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
rm -rf "$out"
mkdir -p "$out"

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
log "demo binary on 127.0.0.1:$port, hls.js for 10 s"
"$target_dir/release/playlists" --bind "127.0.0.1:$port" >"$out/demo-server.log" 2>&1 &
server_pid=$!
# Wait (at most 15 s) until the demo stream has a complete segment.
timeout 20 node -e '
  const url = process.argv[1];
  const end = Date.now() + 15000;
  (async () => {
    while (Date.now() < end) {
      try { if ((await (await fetch(url)).json()).segments > 0) return; } catch {}
      await new Promise((r) => setTimeout(r, 100));
    }
    console.error("the demo stream never got a segment"); process.exit(1);
  })();
' "http://127.0.0.1:$port/api/streams/demo"
bounded 120 node e2e/play.mjs "http://127.0.0.1:$port/live/demo/index.m3u8" 10 >"$out/demo_binary.line" 2>"$out/demo_binary.err"
mv "$out/demo_binary.line" "$out/demo_binary.json"
# Issue 4: the status page, in the same browser, sees the demo stream's row appear and its msn advance.
log "status page in headless Chromium"
NODE_PATH="$root/e2e/node_modules" bounded 120 node e2e/status-page.mjs "http://127.0.0.1:$port" "$out/status-page.png"
cleanup
server_pid=""
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const ok = r.started && r.advance >= 0.8 && r.fatal === 0 && r.requests.parts > 0 && r.requests.blocking_playlists > 0;
  console.log(`demo: advance ${r.advance.toFixed(3)}, latency ${r.latency_median} s, stalls ${r.waiting}, fatal ${r.fatal}`);
  if (!ok) { console.error("the demo stream did not play: " + JSON.stringify(r)); process.exit(1); }
' "$out/demo_binary.json"

# --- 3. the end-to-end tests -----------------------------------------------------------------------------------------
log "cargo test --test e2e -- --include-ignored --test-threads=1"
bounded 1500 cargo test --test e2e -- --include-ignored --test-threads=1

# --- 4. BENCHMARKS.md ---------------------------------------------------------------------------------------------------
elapsed=$(($(date +%s) - started))
log "writing BENCHMARKS.md"
node e2e/render.mjs "$out" BENCHMARKS.md "$elapsed" "$installed"
log "done"
