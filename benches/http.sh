#!/usr/bin/env bash
# Run with: benches/http.sh   (as root or with sudo for the apt-get step; everything else runs as you)
#
# HTTP serving benchmark, side by side in one run on loopback: our origin (examples/bench_origin.rs: the engine
# and its actix-web routes, parts of exactly 25,000 and 65,536 bytes, a live playlist) against nginx serving
# byte-identical files from disk (fetched from our origin with curl first), with the nginx settings of
# shared/BENCH.md (2 workers, sendfile, tcp_nopush, tcp_nodelay, access_log off, keepalive_requests 1000000).
#
# For each of: a 25 KB part, a 64 KB part, the playlist gzipped (Accept-Encoding: gzip; nginx serves the
# pre-gzipped file with Content-Encoding: gzip), it runs `wrk -t2 -c100 -d8s` against ours and against nginx,
# alternating which goes first, ROUNDS times, and records requests/s, transfer/s, the client's CPU (user+sys of
# wrk, /usr/bin/time) and the server's CPU (utime+stime from /proc over the run).
#
# Settings (environment): WORKERS (our HTTP workers, default 2 = nginx's), ROUNDS (default 2), DURATION (default
# 8s), CONNS (default 100), THREADS (default 2), PORT_OURS (default 18090), PORT_NGINX (default 18091),
# UPDATE (default 1: write the table into BENCHMARKS.md between <!-- http:start --> and <!-- http:end -->).
#
# Only 127.0.0.1; every run is bounded by DURATION; the servers started here are killed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORKERS=${WORKERS:-2}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-8s}
CONNS=${CONNS:-100}
THREADS=${THREADS:-2}
PORT_OURS=${PORT_OURS:-18090}
PORT_NGINX=${PORT_NGINX:-18091}
UPDATE=${UPDATE:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    apt-get install -y "${need[@]}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "building (release)" >&2
cargo build --release -q -p playlists-actors --bin playlists
cargo build --release -q --example bench_origin
ORIGIN_BIN=$CARGO_TARGET_DIR/release/examples/bench_origin

WORK=$(mktemp -d /tmp/http-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers run as an unprivileged user
ORIGIN_PID=""
NGINX_PID=""
cleanup() {
    [ -n "$ORIGIN_PID" ] && kill "$ORIGIN_PID" 2>/dev/null && wait "$ORIGIN_PID" 2>/dev/null
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----- our origin -----
"$ORIGIN_BIN" "127.0.0.1:$PORT_OURS" "$WORKERS" >"$WORK/origin.out" 2>"$WORK/origin.err" &
ORIGIN_PID=$!
for _ in $(seq 100); do
    grep -q '^READY' "$WORK/origin.out" 2>/dev/null && break
    kill -0 "$ORIGIN_PID" 2>/dev/null || { cat "$WORK/origin.err" >&2; exit 1; }
    sleep 0.1
done
grep -q '^READY' "$WORK/origin.out" || { echo "bench_origin did not start" >&2; exit 1; }
url_of() { awk -v n="$1" '$1 == "URL" && $2 == n { print $3 }' "$WORK/origin.out"; }
PART25=$(url_of part25k)
PART64=$(url_of part64k)
PLAYLIST=$(url_of playlist)
OURS=http://127.0.0.1:$PORT_OURS

# ----- the same bytes on disk for nginx -----
mkdir -p "$WORK/www" "$WORK/tmp"
curl -sf -o "$WORK/www/part25k.mp4" "$OURS$PART25"
curl -sf -o "$WORK/www/part64k.mp4" "$OURS$PART64"
# No --compressed: the gzipped bytes are stored as they came.
curl -sf -H 'Accept-Encoding: gzip' -D "$WORK/playlist.headers" -o "$WORK/www/index.m3u8.gz" "$OURS$PLAYLIST"
grep -qi '^content-encoding: gzip' "$WORK/playlist.headers" || { echo "the playlist did not come gzipped" >&2; exit 1; }
SIZE25=$(stat -c %s "$WORK/www/part25k.mp4")
SIZE64=$(stat -c %s "$WORK/www/part64k.mp4")
SIZEPL=$(stat -c %s "$WORK/www/index.m3u8.gz")
[ "$SIZE25" = 25000 ] && [ "$SIZE64" = 65536 ] || { echo "unexpected part sizes $SIZE25 $SIZE64" >&2; exit 1; }

cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 4096; }
http {
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path $WORK/tmp;
    proxy_temp_path $WORK/tmp;
    fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp;
    scgi_temp_path $WORK/tmp;
    types { video/mp4 mp4; }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$PORT_NGINX;
        root $WORK/www;
        location = /index.m3u8.gz {
            types { }
            default_type application/vnd.apple.mpegurl;
            add_header Content-Encoding gzip;
            add_header Vary Accept-Encoding;
        }
    }
}
EOF
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" 2>"$WORK/nginx.start.err" &
NGINX_PID=$!
NG=http://127.0.0.1:$PORT_NGINX
for _ in $(seq 50); do curl -sf -o /dev/null "$NG/part25k.mp4" && break; sleep 0.1; done
cmp -s <(curl -sf "$NG/part64k.mp4") "$WORK/www/part64k.mp4" || { echo "nginx does not serve the files" >&2; cat "$WORK/nginx.start.err" "$WORK/nginx.err" >&2; exit 1; }
curl -sf -H 'Accept-Encoding: gzip' -D - -o /dev/null "$NG/index.m3u8.gz" | grep -qi '^content-encoding: gzip' \
    || { echo "nginx does not serve the playlist gzipped" >&2; exit 1; }

# CPU ticks (utime+stime) of a process and its children's threads: $1 = pid of ours or nginx's master.
ticks() {
    local total=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        [ -r "/proc/$p/stat" ] || continue
        # Fields 14 and 15 after the ')' that ends the command name.
        total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

# run NAME SERVER PID URL [HEADER] -> appends "name server req/s transfer client_cpu% server_cpu%" to results
run() {
    local name=$1 server=$2 pid=$3 url=$4 header=${5:-}
    local args=(-t"$THREADS" -c"$CONNS" -d"$DURATION" --latency)
    [ -n "$header" ] && args+=(-H "$header")
    local before after out
    before=$(ticks "$pid")
    out=$(/usr/bin/time -f 'CPU %U %S %e' wrk "${args[@]}" "$url" 2>&1)
    after=$(ticks "$pid")
    if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
        echo "$out" >&2
        echo "errors while benchmarking $server $name" >&2
        exit 1
    fi
    local rps tps cpu
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    tps=$(awk '/^Transfer\/sec:/ { print $2 }' <<<"$out")
    cpu=$(awk '/^CPU / { printf "%.0f", 100 * ($2 + $3) / $4 }' <<<"$out")
    local wall
    wall=$(awk '/^CPU / { print $4 }' <<<"$out")
    local scpu
    scpu=$(awk -v d=$((after - before)) -v hz="$HZ" -v w="$wall" 'BEGIN { printf "%.0f", 100 * d / hz / w }')
    echo "$name $server $rps $tps $cpu $scpu" >>"$WORK/results"
    printf '%-14s %-6s %12s req/s %10s/s  wrk CPU %4s%%  server CPU %4s%%\n' "$name" "$server" "$rps" "$tps" "$cpu" "$scpu" >&2
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$WORK/results"
# A short warm-up of both servers.
for u in "$OURS$PART25" "$NG/part25k.mp4"; do wrk -t"$THREADS" -c"$CONNS" -d1s "$u" >/dev/null; done
for round in $(seq "$ROUNDS"); do
    for target in part25k part64k playlist; do
        case $target in
            part25k) o=$OURS$PART25 n=$NG/part25k.mp4 h="" ;;
            part64k) o=$OURS$PART64 n=$NG/part64k.mp4 h="" ;;
            playlist) o=$OURS$PLAYLIST n=$NG/index.m3u8.gz h="Accept-Encoding: gzip" ;;
        esac
        if [ $((round % 2)) = 1 ]; then
            run "$target" ours "$ORIGIN_PID" "$o" "$h"
            run "$target" nginx "$NGINX_PID" "$n" "$h"
        else
            run "$target" nginx "$NGINX_PID" "$n" "$h"
            run "$target" ours "$ORIGIN_PID" "$o" "$h"
        fi
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ----- the table: means over the rounds -----
to_mb() { awk '{ v = $1; u = substr(v, length(v) - 1); n = v + 0;
    if (u == "GB") n *= 1024; else if (u == "KB") n /= 1024; else if (u != "MB") n /= 1048576; printf "%.1f\n", n }'; }
{
    echo "Machine: $(lscpu | awk -F: '/^Model name/ { gsub(/^ +/, "", $2); print $2 }'), $(nproc) cores," \
        "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); $(uname -r);" \
        "$(nginx -v 2>&1 | sed 's/.*: //'); $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }');" \
        "load average before/after: $LOAD_BEFORE / $LOAD_AFTER."
    echo
    echo "Command: \`WORKERS=$WORKERS ROUNDS=$ROUNDS benches/http.sh\` — each cell is \`wrk -t$THREADS -c$CONNS -d$DURATION\`" \
        "on 127.0.0.1, mean of $ROUNDS rounds alternating which server goes first; ours with $WORKERS HTTP workers," \
        "nginx with 2. Sizes: parts $SIZE25 and $SIZE64 bytes, playlist $SIZEPL bytes gzipped. CPU: % of one core" \
        "over the run (wrk: user+sys from /usr/bin/time; server: utime+stime from /proc)."
    echo
    echo "| resource | ours req/s | nginx req/s | ours / nginx | ours transfer | nginx transfer | wrk CPU ours / nginx | server CPU ours / nginx | server CPU µs per request ours / nginx |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for target in part25k part64k playlist; do
        awk -v t="$target" '$1 == t && $2 == "ours" { r += $3; c += $5; s += $6; n++ } END { printf "%s %.0f %.0f %.0f\n", "ours", r / n, c / n, s / n }' "$WORK/results" >"$WORK/o"
        awk -v t="$target" '$1 == t && $2 == "nginx" { r += $3; c += $5; s += $6; n++ } END { printf "%s %.0f %.0f %.0f\n", "nginx", r / n, c / n, s / n }' "$WORK/results" >"$WORK/n"
        otps=$(awk -v t="$target" '$1 == t && $2 == "ours" { print $4 }' "$WORK/results" | while read -r v; do echo "$v" | to_mb; done | awk '{ s += $1; n++ } END { printf "%.0f MB/s", s / n }')
        ntps=$(awk -v t="$target" '$1 == t && $2 == "nginx" { print $4 }' "$WORK/results" | while read -r v; do echo "$v" | to_mb; done | awk '{ s += $1; n++ } END { printf "%.0f MB/s", s / n }')
        read -r _ orps ocpu oscpu <"$WORK/o"
        read -r _ nrps ncpu nscpu <"$WORK/n"
        case $target in
            part25k) label="25 KB part" ;;
            part64k) label="64 KB part" ;;
            playlist) label="playlist, gzip ($SIZEPL B)" ;;
        esac
        ratio=$(awk -v a="$orps" -v b="$nrps" 'BEGIN { printf "%.2f", a / b }')
        ous=$(awk -v c="$oscpu" -v r="$orps" 'BEGIN { printf "%.1f", c * 1e4 / r }')
        nus=$(awk -v c="$nscpu" -v r="$nrps" 'BEGIN { printf "%.1f", c * 1e4 / r }')
        echo "| $label | $orps | $nrps | **$ratio** | $otps | $ntps | $ocpu% / $ncpu% | $oscpu% / $nscpu% | $ous / $nus |"
    done
    echo
    echo "Every run (req/s, transfer/s, wrk CPU %, server CPU %):"
    echo
    echo '```'
    awk '{ printf "%-9s %-6s %12s %10s %4s%% %4s%%\n", $1, $2, $3, $4, $5, $6 }' "$WORK/results"
    echo '```'
} >"$WORK/table.md"
cat "$WORK/table.md"

if [ "$UPDATE" = 1 ]; then
    [ -f BENCHMARKS.md ] || printf '# Benchmarks\n' >BENCHMARKS.md
    if ! grep -q '<!-- http:start -->' BENCHMARKS.md; then
        printf '\n## HTTP serving: ours vs nginx\n\n<!-- http:start -->\n<!-- http:end -->\n' >>BENCHMARKS.md
    fi
    awk -v f="$WORK/table.md" '
        /<!-- http:start -->/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
        /<!-- http:end -->/ { skip = 0 }
        !skip { print }' BENCHMARKS.md >"$WORK/B.md"
    cp "$WORK/B.md" BENCHMARKS.md
    echo "BENCHMARKS.md updated" >&2
fi
