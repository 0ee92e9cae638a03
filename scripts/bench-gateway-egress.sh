#!/usr/bin/env bash
# Egress cost of the real gateway: gb28181-sim streams a 2 Mbps H.264 clip as PS over RTP,
# whep-load opens N viewers of that one channel over WHEP, and the gateway's CPU time
# (utime+stime from /proc/<pid>/stat over a measured interval, ingest and SIP included) is
# divided by the RTP packets the viewers received.
#
#   scripts/bench-gateway-egress.sh [N ...]     # default: 100 250 500
#   MEASURE=10 RAMP=100 scripts/bench-gateway-egress.sh 250
#   GATEWAY=/path/to/other/gb28181-gateway scripts/bench-gateway-egress.sh 500   # a baseline
#
# Loopback only; every process is bounded in time.
set -euo pipefail
TOKEN=bench-token-0123456789
cd "$(dirname "$0")/.."

COUNTS=${*:-"100 250 500"}
MEASURE=${MEASURE:-10}
RAMP=${RAMP:-100}
WORK=${WORK:-target/bench-gateway-egress}
mkdir -p "$WORK"
cargo build --release -q -p gateway-bin -p gb28181-examples
BIN=target/release

source scripts/bench-common.sh
bench_clip

printf '%8s %10s %8s %12s %12s %13s %8s\n' viewers connected cpu% pkts/s/vw us/pkt/vw viewers/core loss%
base=27000
for n in $COUNTS; do
    base=$((base + 10))
    data=$(mktemp -d)
    "${GATEWAY:-$BIN/gb28181-gateway}" --data-dir "$data" --sip-listen "127.0.0.1:$base" \
        --http-listen "127.0.0.1:$((base + 1))" --webrtc-udp-port "$((base + 2))" \
        --media-ports "$((base + 3))-$((base + 9))" --sip-password bench --api-token "$TOKEN" \
        >"$WORK/gateway-$n.log" 2>&1 &
    gw=$!
    sleep 1
    "$BIN/gb28181-sim" --server "127.0.0.1:$base" --password bench --video "$CLIP" \
        --duration 600 >"$WORK/sim-$n.log" 2>&1 &
    sim=$!
    dev=34020000001320000001
    for _ in $(seq 100); do
        curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$((base + 1))/api/v1/devices/$dev" \
            | grep -q '"channel_count":1' && break
        sleep 0.1
    done
    ch=$(curl -sf -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$((base + 1))/api/v1/devices/$dev/channels" | sed -n 's/.*"channel_id":"\([0-9]*\)".*/\1/p')
    ramp_s=$(((n + RAMP - 1) / RAMP))
    load_s=$((ramp_s + 10 + MEASURE + 5))
    "$BIN/whep-load" --url "http://127.0.0.1:$((base + 1))/api/v1/whep/$dev/$ch" --token "$TOKEN" \
        --peers "$n" --ramp "$RAMP" --seconds "$load_s" >"$WORK/load-$n.log" 2>&1 &
    load=$!
    sleep $((ramp_s + 10))
    c1=$(cpu_ticks "$gw"); t1=$(date +%s.%N)
    sleep "$MEASURE"
    c2=$(cpu_ticks "$gw"); t2=$(date +%s.%N)
    wait "$load" || true
    kill "$sim" "$gw" 2>/dev/null || true
    wait "$sim" "$gw" 2>/dev/null || true
    rm -rf "$data"
    result=$(grep '^RESULT' "$WORK/load-$n.log" || echo "RESULT")
    field() { sed -n "s/.*\b$1=\([0-9.a-z]*\).*/\1/p" <<<"$result"; }
    awk -v n="$n" -v conn="$(field connected)" -v pk="$(field packets)" -v secs="$(field seconds)" \
        -v ticks=$((c2 - c1)) -v tck="$TCK" -v t1="$t1" -v t2="$t2" -v loss="$(field loss_pct)" '
    BEGIN {
        wall = t2 - t1; cpu = ticks / tck
        if (conn == 0 || pk == 0) { printf "%8d %10d  no media received\n", n, conn; exit }
        pps = pk / secs / conn          # packets per second per viewer over the whole run
        us = cpu * 1e6 / (pps * conn * wall)
        printf "%8d %10d %7.1f%% %12.0f %12.3f %13.0f %8s\n", n, conn, 100 * cpu / wall, pps, us,
            1e6 / (us * pps), loss
    }'
done
