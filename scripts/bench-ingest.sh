#!/usr/bin/env bash
# Ingest cost of the real gateway: gb28181-sim plays an NVR with N channels, each streaming
# a 2 Mbps H.264 clip as PS over RTP/UDP; whep-load opens one viewer per channel over WHEP, so
# that every stream runs the whole path (receive, demux, loss hold, WebRTC egress). Over a
# measured interval the gateway's CPU time (utime+stime from /proc/<pid>/stat) is divided by
# the RTP packets it ingested (summed from /api/v1/streams), and its RSS growth over the idle
# gateway is divided by N.
#
#   scripts/bench-ingest.sh [N ...]          # default: 50 200 500
#   MEASURE=10 scripts/bench-ingest.sh 200
#   GATEWAY=/path/to/other/gb28181-gateway scripts/bench-ingest.sh 50   # another build, for
#                                                                       # a baseline in one run
#
# Columns: streams playing, ingest packets/s, gateway CPU %, µs of gateway CPU per ingested
# packet (egress to one viewer included), streams per core at 2 Mbps (1 / CPU share of one
# stream), RSS per stream, viewer loss %, and the share of video frames the gateway could not
# hand to the WebRTC thread in time (its queue was full: the frame and those depending on it
# were dropped; above zero, the gateway is overloaded and the CPU figure flatters it). The
# simulator and the viewers share this machine's cores with the gateway: on 2 cores the
# figures at large N include that contention.
#
# Loopback only; every process is bounded in time.
set -euo pipefail
TOKEN=bench-token-0123456789
cd "$(dirname "$0")/.."

COUNTS=${*:-"50 200 500"}
MEASURE=${MEASURE:-10}
WORK=${WORK:-target/bench-ingest}
mkdir -p "$WORK"
cargo build --release -q -p gateway-bin -p gb28181-examples
BIN=target/release

source scripts/bench-common.sh
bench_clip
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
api() { curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$((base + 1))$1"; }
# Sum of a counter over every stream of one /api/v1/streams answer.
total() { grep -o "\"$1\":[0-9]*" | awk -F: '{s += $2} END {print s + 0}'; }
ingested() { api /api/v1/streams | total accepted; }
playing() { api /api/v1/streams | grep -o '"accepted":[0-9]*' | awk -F: '$2 > 0 {n++} END {print n + 0}'; }

printf '%8s %10s %8s %10s %13s %12s %8s %11s\n' streams pkts/s cpu% us/pkt streams/core rss/stream loss% undeliv%
base=28000
for n in $COUNTS; do
    base=$((base + 10))
    data=$(mktemp -d)
    mport=$((base + 1000))
    "${GATEWAY:-$BIN/gb28181-gateway}" --data-dir "$data" --sip-listen "127.0.0.1:$base" \
        --http-listen "127.0.0.1:$((base + 1))" --webrtc-udp-port "$((base + 2))" \
        --media-ports "$mport-$((mport + n + 50))" --sip-password bench --api-token "$TOKEN" \
        >"$WORK/gateway-$n.log" 2>&1 &
    gw=$!
    sleep 1
    rss0=$(rss_kb "$gw")
    "$BIN/gb28181-sim" --server "127.0.0.1:$base" --password bench --kind nvr \
        --channels "$n" --video "$CLIP" --rate 0 --duration 600 >"$WORK/sim-$n.log" 2>&1 &
    sim=$!
    dev=34020000001180000001
    for _ in $(seq 300); do
        api "/api/v1/devices/$dev" | grep -q "\"channel_count\":$n" && break
        sleep 0.1
    done
    api "/api/v1/devices/$dev/channels" | grep -o '"channel_id":"[0-9]*"' | cut -d'"' -f4 |
        sed "s|^|/api/v1/whep/$dev/|" >"$WORK/paths-$n.txt"
    ramp=50
    ramp_s=$(((n + ramp - 1) / ramp))
    load_s=$((ramp_s + 10 + MEASURE + 5))
    "$BIN/whep-load" --url "http://127.0.0.1:$((base + 1))/" --paths "$WORK/paths-$n.txt" \
        --token "$TOKEN" --peers "$n" --ramp "$ramp" --seconds "$load_s" >"$WORK/load-$n.log" 2>&1 &
    load=$!
    sleep $((ramp_s + 10))
    s1=$(api /api/v1/streams)
    c1=$(cpu_ticks "$gw"); p1=$(total accepted <<<"$s1"); t1=$(date +%s.%N)
    f1=$(total video_frames <<<"$s1")
    d1=$(($(total egress_refused_units <<<"$s1") + $(total egress_held_units <<<"$s1")))
    sleep "$MEASURE"
    s2=$(api /api/v1/streams)
    c2=$(cpu_ticks "$gw"); p2=$(total accepted <<<"$s2"); t2=$(date +%s.%N)
    f2=$(total video_frames <<<"$s2")
    d2=$(($(total egress_refused_units <<<"$s2") + $(total egress_held_units <<<"$s2")))
    live=$(playing); rss=$(rss_kb "$gw")
    wait "$load" || true
    kill "$sim" "$gw" 2>/dev/null || true
    wait "$sim" "$gw" 2>/dev/null || true
    rm -rf "$data"
    result=$(grep '^RESULT' "$WORK/load-$n.log" || echo "RESULT")
    loss=$(sed -n 's/.*\bloss_pct=\([0-9.]*\).*/\1/p' <<<"$result")
    awk -v live="$live" -v pk=$((p2 - p1)) -v ticks=$((c2 - c1)) -v tck="$TCK" -v t1="$t1" \
        -v t2="$t2" -v rss="$rss" -v rss0="$rss0" -v loss="${loss:-?}" -v frames=$((f2 - f1)) \
        -v undelivered=$((d2 - d1)) '
    BEGIN {
        wall = t2 - t1; cpu = ticks / tck
        if (live == 0 || pk == 0) { printf "%8d  no media ingested\n", live; exit }
        pps = pk / wall; us = cpu * 1e6 / pk
        printf "%8d %10.0f %7.1f%% %10.2f %13.0f %10.0f KB %8s %11.2f\n", live, pps, 100 * cpu / wall,
            us, live / (cpu / wall), (rss - rss0) / live, loss,
            (frames > 0 ? 100 * undelivered / frames : 0)
    }'
done
