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
# PROTO chooses the protocol: `h1` (the default: plain HTTP/1.1, the table between <!-- http:start --> and
# <!-- http:end -->), `h2` (HTTP/2 over TLS, loaded by h2load; table between <!-- https-h2:start/end -->) or `h1tls`
# (HTTP/1.1 over TLS, loaded by wrk; table between <!-- https-h1:start/end -->). In both TLS modes the script makes
# one self-signed ECDSA P-256 certificate with openssl and BOTH servers serve it: ours through the crate's `serve()`
# (bench_origin's TLS listener on PORT_OURS_TLS, default 18092; its plain listener still gives curl the bytes) and
# nginx with `listen ... ssl http2` (TLSv1.3 and TLSv1.2, a shared session cache, the same 2 workers). Both servers
# offer h2 and http/1.1 by ALPN in both modes; the client picks. h2 load: `h2load -tTHREADS -cCONNS -mSTREAMS
# -DDURATION` (STREAMS default 10: concurrent streams per connection; a player keeps at most a few requests in
# flight per connection, a blocking playlist request, a part or two, so 100 connections x 10 streams is many
# players' worth, and keeps the client busy enough to load the server on 2 shared cores).
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
PROTO=${PROTO:-h1}
STREAMS=${STREAMS:-10}
PORT_OURS_TLS=${PORT_OURS_TLS:-18092}
case $PROTO in
    h1) MARK=http CLIENT=wrk ;;
    h2) MARK=https-h2 CLIENT=h2load ;;
    h1tls) MARK=https-h1 CLIENT=wrk ;;
    *) echo "PROTO must be h1, h2 or h1tls" >&2; exit 1 ;;
esac
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/time ] || need+=(time)
if [ "$PROTO" != h1 ]; then
    command -v openssl >/dev/null || need+=(openssl)
    [ "$PROTO" = h2 ] && { command -v h2load >/dev/null || need+=(nghttp2-client); }
fi
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
    # `|| true`: a server killed by the signal exits non-zero, which must not end the trap (set -e) before the rest.
    [ -n "$ORIGIN_PID" ] && kill "$ORIGIN_PID" 2>/dev/null && wait "$ORIGIN_PID" 2>/dev/null || true
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----- one certificate for both servers (TLS modes) -----
origin_args=("127.0.0.1:$PORT_OURS" "$WORKERS")
if [ "$PROTO" != h1 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
    chmod 644 "$WORK/key.pem" # read by nginx's master (root) and by us
    origin_args+=("127.0.0.1:$PORT_OURS_TLS" "$WORK/cert.pem" "$WORK/key.pem")
fi

# ----- our origin -----
"$ORIGIN_BIN" "${origin_args[@]}" >"$WORK/origin.out" 2>"$WORK/origin.err" &
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

if [ "$PROTO" = h1 ]; then
    NGINX_LISTEN="listen 127.0.0.1:$PORT_NGINX;"
else
    # nginx 1.22 (Debian 12): \`http2\` is a parameter of listen (the \`http2 on;\` directive came in 1.25.1).
    NGINX_LISTEN="listen 127.0.0.1:$PORT_NGINX ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.3 TLSv1.2;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;"
fi
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
        $NGINX_LISTEN
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
if [ "$PROTO" = h1 ]; then
    NG=http://127.0.0.1:$PORT_NGINX
    CURL=(curl -sf)
else
    NG=https://127.0.0.1:$PORT_NGINX
    OURS=https://127.0.0.1:$PORT_OURS_TLS
    CURL=(curl -sf --cacert "$WORK/cert.pem")
    [ "$PROTO" = h2 ] && CURL+=(--http2) || CURL+=(--http1.1)
fi
for _ in $(seq 50); do "${CURL[@]}" -o /dev/null "$NG/part25k.mp4" && break; sleep 0.1; done
for u in "$NG/part64k.mp4" "$OURS$PART64"; do
    cmp -s <("${CURL[@]}" "$u") "$WORK/www/part64k.mp4" || { echo "$u: not the part's bytes" >&2; cat "$WORK/nginx.start.err" "$WORK/nginx.err" "$WORK/origin.err" >&2; exit 1; }
done
"${CURL[@]}" -H 'Accept-Encoding: gzip' -D - -o /dev/null "$NG/index.m3u8.gz" | grep -qi '^content-encoding: gzip' \
    || { echo "nginx does not serve the playlist gzipped" >&2; exit 1; }
if [ "$PROTO" != h1 ]; then
    # Both present the one certificate, and speak what the client asks for.
    want=HTTP/2
    [ "$PROTO" = h2 ] || want=HTTP/1.1
    for u in "$NG/part25k.mp4" "$OURS$PART25"; do
        "${CURL[@]}" -o /dev/null -w '%{http_version}\n' "$u" | grep -qx "${want#HTTP/}" || { echo "$u: not $want" >&2; exit 1; }
    done
fi

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
    local rps tps cpu
    before=$(ticks "$pid")
    if [ "$PROTO" = h2 ]; then
        args=(-t"$THREADS" -c"$CONNS" -m"$STREAMS" -D"${DURATION%s}")
        [ -n "$header" ] && args+=(-H "$header")
        out=$(/usr/bin/time -f 'CPU %U %S %e' h2load "${args[@]}" "$url" 2>&1)
        after=$(ticks "$pid")
        # "requests: N total, N started, N done, N succeeded, 0 failed, 0 errored, 0 timeout"; "status codes: N 2xx, ..."
        if ! awk '/^requests:/ { ok = ($10 == 0 && $12 == 0 && $14 == 0) } /^status codes:/ { s = ($5 + $7 + $9 == 0) }
                END { exit !(ok && s) }' <<<"$out" || ! grep -q '^Application protocol: h2' <<<"$out"; then
            echo "$out" >&2
            echo "errors while benchmarking $server $name" >&2
            exit 1
        fi
        # "finished in 8.00s, 61234.50 req/s, 1.43GB/s"
        rps=$(awk '/^finished in/ { print $4 }' <<<"$out")
        tps=$(awk '/^finished in/ { sub(/\/s$/, "", $6); print $6 }' <<<"$out")
        [ -f "$WORK/tls.$server" ] || grep -E '^(TLS Protocol|Cipher|Server Temp Key|Application protocol):' <<<"$out" >"$WORK/tls.$server"
    else
        out=$(/usr/bin/time -f 'CPU %U %S %e' wrk "${args[@]}" "$url" 2>&1)
        after=$(ticks "$pid")
        if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
            echo "$out" >&2
            echo "errors while benchmarking $server $name" >&2
            exit 1
        fi
        rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
        tps=$(awk '/^Transfer\/sec:/ { print $2 }' <<<"$out")
    fi
    cpu=$(awk '/^CPU / { printf "%.0f", 100 * ($2 + $3) / $4 }' <<<"$out")
    local wall
    wall=$(awk '/^CPU / { print $4 }' <<<"$out")
    local scpu
    scpu=$(awk -v d=$((after - before)) -v hz="$HZ" -v w="$wall" 'BEGIN { printf "%.0f", 100 * d / hz / w }')
    echo "$name $server $rps $tps $cpu $scpu" >>"$WORK/results"
    printf '%-14s %-6s %12s req/s %10s/s  %s CPU %4s%%  server CPU %4s%%\n' "$name" "$server" "$rps" "$tps" "$CLIENT" "$cpu" "$scpu" >&2
}

# What a TLS client of the same OpenSSL as wrk and h2load negotiates with each (protocol, cipher, key exchange).
negotiated() {
    local alpn=http/1.1
    [ "$PROTO" = h2 ] && alpn=h2
    openssl s_client -connect "127.0.0.1:$1" -alpn "$alpn" </dev/null 2>/dev/null |
        awk '/^New, / { p = $2 " " $5 } /^Server Temp Key:/ { sub(/^Server Temp Key: /, ""); k = $0 }
            /^ALPN protocol:/ { a = $3 } END { printf "%s, key exchange %s, ALPN %s", p, k, a }'
}
if [ "$PROTO" = h1 ]; then
    LOADCMD="wrk -t$THREADS -c$CONNS -d$DURATION"
    CLIENT_VERSION=$(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }')
else
    TLS_OURS=$(negotiated "$PORT_OURS_TLS")
    TLS_NGINX=$(negotiated "$PORT_NGINX")
    if [ "$PROTO" = h2 ]; then
        LOADCMD="h2load -t$THREADS -c$CONNS -m$STREAMS -D${DURATION%s}"
        CLIENT_VERSION=$(h2load --version 2>&1 | head -1)
    else
        LOADCMD="wrk -t$THREADS -c$CONNS -d$DURATION"
        CLIENT_VERSION="$(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }') (OpenSSL $(openssl version | awk '{ print $2 }'))"
    fi
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$WORK/results"
# A short warm-up of both servers.
for u in "$OURS$PART25" "$NG/part25k.mp4"; do
    if [ "$PROTO" = h2 ]; then
        h2load -t"$THREADS" -c"$CONNS" -m"$STREAMS" -D1 "$u" >/dev/null
    else
        wrk -t"$THREADS" -c"$CONNS" -d1s "$u" >/dev/null
    fi
done
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
        "$(nginx -v 2>&1 | sed 's/.*: //'); $CLIENT_VERSION;" \
        "load average before/after: $LOAD_BEFORE / $LOAD_AFTER."
    echo
    prefix=""
    [ "$PROTO" = h1 ] || prefix="PROTO=$PROTO "
    echo "Command: \`${prefix}WORKERS=$WORKERS ROUNDS=$ROUNDS benches/http.sh\` — each cell is \`$LOADCMD\`" \
        "on 127.0.0.1, mean of $ROUNDS rounds alternating which server goes first; ours with $WORKERS HTTP workers," \
        "nginx with 2. Sizes: parts $SIZE25 and $SIZE64 bytes, playlist $SIZEPL bytes gzipped. CPU: % of one core" \
        "over the run ($CLIENT: user+sys from /usr/bin/time; server: utime+stime from /proc)."
    if [ "$PROTO" != h1 ]; then
        echo
        echo "TLS: one self-signed ECDSA P-256 certificate for both. Negotiated (openssl s_client): ours $TLS_OURS;" \
            "nginx $TLS_NGINX."
    fi
    echo
    echo "| resource | ours req/s | nginx req/s | ours / nginx | ours transfer | nginx transfer | $CLIENT CPU ours / nginx | server CPU ours / nginx | server CPU µs per request ours / nginx |"
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
    echo "Every run (req/s, transfer/s, $CLIENT CPU %, server CPU %):"
    echo
    echo '```'
    awk '{ printf "%-9s %-6s %12s %10s %4s%% %4s%%\n", $1, $2, $3, $4, $5, $6 }' "$WORK/results"
    echo '```'
} >"$WORK/table.md"
cat "$WORK/table.md"

if [ "$UPDATE" = 1 ]; then
    [ -f BENCHMARKS.md ] || printf '# Benchmarks\n' >BENCHMARKS.md
    if ! grep -q "<!-- $MARK:start -->" BENCHMARKS.md; then
        printf '\n## HTTP serving: ours vs nginx (%s)\n\n<!-- %s:start -->\n<!-- %s:end -->\n' "$PROTO" "$MARK" "$MARK" >>BENCHMARKS.md
    fi
    awk -v f="$WORK/table.md" -v start="<!-- $MARK:start -->" -v end="<!-- $MARK:end -->" '
        $0 == start { print; while ((getline l < f) > 0) print l; skip = 1; next }
        $0 == end { skip = 0 }
        !skip { print }' BENCHMARKS.md >"$WORK/B.md"
    cp "$WORK/B.md" BENCHMARKS.md
    echo "BENCHMARKS.md updated" >&2
fi
