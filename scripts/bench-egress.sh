#!/usr/bin/env bash
# WebRTC egress load benchmark on loopback: egress-bench-server loops a 2 Mbps H.264 clip over
# WHEP to whep-load viewers; the server's CPU time (utime+stime from /proc/<pid>/stat over a
# measured interval) is divided by the datagrams it sent, for the shared-packetization + GSO
# egress and for the per-viewer-packetization + one-send-per-packet baseline, in the same run.
#
#   scripts/bench-egress.sh [N ...]          # default: 100 250 500 1000 viewers
#   MEASURE=10 RAMP=200 scripts/bench-egress.sh 100
#
# Needs ffmpeg with libx264 for the 2 Mbps clip (falls back to the 0.3 Mbps
# media/tests/data/srs_bench_avatar.h264). Every process is bounded in time and stops by
# itself; all traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS=${*:-"100 250 500 1000"}
MEASURE=${MEASURE:-10}
RAMP=${RAMP:-100}
WORK=${WORK:-target/bench-egress}
MODES=${MODES:-"shared:gso per-viewer:plain"}
mkdir -p "$WORK"

cargo build --release -q -p gb28181-examples --bin egress-bench-server --bin whep-load
BIN=target/release

CLIP="$WORK/clip-2mbps.h264"
if [ ! -s "$CLIP" ]; then
    if command -v ffmpeg >/dev/null && ffmpeg -v error -y -f lavfi \
        -i testsrc2=size=1280x720:rate=25 -t 20 -c:v libx264 -preset veryfast \
        -profile:v high -b:v 2M -maxrate 2M -bufsize 1M -g 50 -bf 0 \
        -x264-params nal-hrd=cbr -f h264 "$CLIP"; then
        :
    else
        echo "ffmpeg/libx264 unavailable: using srs_bench_avatar.h264 (about 0.3 Mbps)" >&2
        CLIP=media/tests/data/srs_bench_avatar.h264
    fi
fi
CLIP_BYTES=$(stat -c %s "$CLIP")
TCK=$(getconf CLK_TCK)

cpu_ticks() { # utime + stime of a pid, in clock ticks (fields 14 and 15 after the comm)
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'
}
stat_field() { # key from the server's /stats line
    sed -n "s/.*\b$2=\([0-9]*\).*/\1/p" <<<"$1"
}

echo "clip: $CLIP ($CLIP_BYTES bytes), measured interval ${MEASURE}s, loopback, $(nproc) cores"
printf '%-18s %6s %9s %8s %9s %10s %10s %9s %8s\n' mode viewers connected cpu% pkts/s/vw \
    us/pkt/vw viewers/core dgr/send loss%
port=18100
for spec in $MODES; do
    mode=${spec%%:*}
    send=${spec##*:}
    for n in $COUNTS; do
        port=$((port + 2))
        ramp_s=$(((n + RAMP - 1) / RAMP))
        # Connection setup (DTLS handshakes) shares the server's thread with the media: allow
        # the ramp plus 30 s to connect, then the measured interval.
        wait_s=$((ramp_s + 30))
        load_s=$((wait_s + MEASURE + 10))
        log="$WORK/server-$mode-$n.log"
        "$BIN/egress-bench-server" --clip "$CLIP" --mode "$mode" --send "$send" \
            --http "127.0.0.1:$port" --udp "127.0.0.1:$((port + 1))" \
            --max-seconds $((load_s + 60)) >"$log" 2>&1 &
        server=$!
        url="http://127.0.0.1:$port"
        for _ in $(seq 50); do curl -sf "$url/stats" >/dev/null && break; sleep 0.1; done
        "$BIN/whep-load" --url "$url/whep/1" --peers "$n" --ramp "$RAMP" \
            --seconds "$load_s" >"$WORK/load-$mode-$n.log" 2>&1 &
        load=$!
        # Wait until everyone is connected (or give up after the ramp plus 30 s).
        for _ in $(seq $((wait_s * 4))); do
            s=$(curl -sf -m 2 "$url/stats" || true)
            [ "$(stat_field "$s" connected)" = "$n" ] && break
            sleep 0.2
        done
        sleep 2
        s1=$(curl -sf -m 5 "$url/stats" || true)
        c1=$(cpu_ticks "$server" || echo 0)
        t1=$(date +%s.%N)
        sleep "$MEASURE"
        s2=$(curl -sf -m 5 "$url/stats" || true)
        c2=$(cpu_ticks "$server" || echo 0)
        t2=$(date +%s.%N)
        kill -TERM "$load" 2>/dev/null || true
        wait "$load" || true
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        result=$(grep '^RESULT' "$WORK/load-$mode-$n.log" || echo "RESULT loss_pct=nan")
        loss=$(sed -n 's/.*loss_pct=\([0-9.a-z]*\).*/\1/p' <<<"$result")
        connected=$(stat_field "$s2" connected)
        d=$(($(stat_field "$s2" datagrams) - $(stat_field "$s1" datagrams) + 0))
        sends=$(($(stat_field "$s2" sends) - $(stat_field "$s1" sends) + 0))
        awk -v mode="$mode/$send" -v n="$n" -v conn="$connected" -v ticks=$((c2 - c1)) \
            -v tck="$TCK" -v t1="$t1" -v t2="$t2" -v d="$d" -v sends="$sends" -v loss="$loss" '
        BEGIN {
            wall = t2 - t1; cpu = ticks / tck
            if (d == 0 || conn == 0) { printf "%-18s %6d %9d  no datagrams\n", mode, n, conn; exit }
            us = cpu * 1e6 / d; pps = d / wall / conn
            printf "%-18s %6d %9d %7.1f%% %9.0f %10.3f %10.0f %9.1f %8s\n", mode, n, conn,
                100 * cpu / wall, pps, us, 1e6 / (us * pps), d / (sends ? sends : 1), loss
        }'
    done
done
