#!/usr/bin/env bash
# One gateway node under many simulated devices, release builds, loopback, both on this
# machine (the simulator's CPU is part of the load).
#
#   1. storm      10,000 IPCs register at once (--rate 0), then 10,000 at 2,000/s: time until
#                 all are registered, failures, latency.
#   2. keepalive  12,000 IPCs each sending a keepalive every second for 30 s: keepalives per
#                 second answered, failures, gateway CPU.
#   3. scale      DEVICES IPCs (100,000) registering at RATE/s (2,000) with the automatic
#                 DeviceInfo + Catalog queries, keepalives every 60 s, held HOLD seconds (600):
#                 registered, final failures, false offline, gateway RSS (peak, and per device).
#
# Usage: scripts/bench-scale.sh [DEVICES] [RATE] [HOLD_SECS]
# Env:   SCALE_ONLY=storm|keepalive|scale   run one part only
# Logs and samples: target/bench-scale/. Every process is bounded in time.
set -euo pipefail

cd "$(dirname "$0")/.."
DEVICES=${1:-100000}
RATE=${2:-2000}
HOLD=${3:-600}
ONLY=${SCALE_ONLY:-}
OUT=target/bench-scale
mkdir -p "$OUT"

cargo build --release -q -p gateway-bin -p gb28181-examples --bin gb28181-gateway --bin gb28181-sim
GW=target/release/gb28181-gateway
SIM=target/release/gb28181-sim
TOKEN=bench-token-0123456789

GW_PID=""
SAMPLER=""
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Start a fresh gateway; sets GW_PID, SIP_ADDR, HTTP_ADDR.
start_gateway() {
  local name=$1
  rm -rf "$OUT/$name-data"
  "$GW" --data-dir "$OUT/$name-data" --sip-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --sip-password 12345678 --api-token "$TOKEN" --webrtc-udp-port 0 \
    >"$OUT/$name-gateway.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 100); do
    SIP_ADDR=$(sed -n 's/^ *SIP   udp+tcp \([0-9.:]*\) .*/\1/p' "$OUT/$name-gateway.log")
    HTTP_ADDR=$(sed -n 's|^ *HTTP  http://\([0-9.:]*\)/.*|\1|p' "$OUT/$name-gateway.log")
    [ -n "$SIP_ADDR" ] && [ -n "$HTTP_ADDR" ] && return 0
    sleep 0.1
  done
  echo "gateway did not start:"; cat "$OUT/$name-gateway.log"; exit 1
}

stop_gateway() {
  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  GW_PID=""
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$GW_PID/status"; }
cpu_secs() { # utime + stime of the gateway, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$GW_PID/stat"
}
metric() { # sum of a Prometheus series (all label sets matching $2)
  curl -s "http://$HTTP_ADDR/metrics" | awk -v m="$1" -v l="${2:-}" \
    '$1 ~ "^"m"({|$)" && index($1, l) {s += $2} END {printf "%d", s}'
}
sim_line() { grep -E "^$1" "$2" | head -1; }

# Sample RSS every 5 s into a file while the gateway runs.
sample() {
  local file=$1
  : >"$file"
  (while kill -0 "$GW_PID" 2>/dev/null; do
     echo "$(date +%s) $(rss_kb) $(cpu_secs)" >>"$file"
     sleep 5
   done) &
  SAMPLER=$!
}

summary=()

if [ -z "$ONLY" ] || [ "$ONLY" = storm ]; then
  for rate in 0 2000; do
    start_gateway "storm$rate"
    timeout 120 "$SIM" --server "$SIP_ADDR" --devices 10000 --rate "$rate" --duration 30 \
      --keepalive 60 --ips 100 >"$OUT/storm$rate-sim.txt" 2>"$OUT/storm$rate-sim.err" || true
    online=$(metric devices_online)
    cpu=$(cpu_secs)
    stop_gateway
    reg=$(sim_line registrations "$OUT/storm$rate-sim.txt")
    lat=$(sim_line "register latency" "$OUT/storm$rate-sim.txt")
    summary+=("storm (10,000 IPCs, rate ${rate/#0/all at once}): online $online; $reg; $lat; gateway CPU ${cpu} s")
  done
fi

if [ -z "$ONLY" ] || [ "$ONLY" = keepalive ]; then
  start_gateway keepalive
  # 50 devices per address: a keepalive a second each keeps 1,600 transactions per address
  # alive (64·T1), well under the per-source bound; 12,000 a second keep about 400,000 in
  # all, under the total bound (500,000; at 15,000 a second it is reached, by design).
  timeout 120 "$SIM" --server "$SIP_ADDR" --devices 12000 --rate 5000 --duration 35 \
    --keepalive 1 --ips 240 >"$OUT/keepalive-sim.txt" 2>"$OUT/keepalive-sim.err" || true
  cpu=$(cpu_secs)
  hwm=$(hwm_kb)
  offline=$(metric device_offline_transitions_total)
  hits=$(metric sip_limit_hits_total)
  stop_gateway
  # Steady rate: the keepalives of the last 25 s, from the progress lines (every 5 s).
  steady=$(sed -n 's/^\[ *\([0-9.]*\)s\] registered .* keepalives \([0-9]*\),.*/\1 \2/p' \
    "$OUT/keepalive-sim.err" | awk '{t[n] = $1; k[n] = $2; n++}
      END {if (n >= 6) printf "%.0f", (k[n-1] - k[n-6]) / (t[n-1] - t[n-6]); else print "n/a"}')
  ka=$(sim_line keepalives "$OUT/keepalive-sim.txt")
  lat=$(sim_line "keepalive latency" "$OUT/keepalive-sim.txt")
  summary+=("keepalive (12,000 IPCs, 1 s interval): steady ${steady} MESSAGE/s; $ka; $lat; offline transitions $offline; bound hits $hits; gateway CPU ${cpu} s over 35 s, peak RSS $((hwm / 1024)) MB")
fi

if [ -z "$ONLY" ] || [ "$ONLY" = scale ]; then
  start_gateway scale
  base=$(rss_kb)
  sample "$OUT/scale-rss.txt"
  ips=$(( (DEVICES + 99) / 100 ))
  start_secs=$(( DEVICES / RATE + 100 ))
  duration=$(( start_secs + HOLD ))
  echo "scale: $DEVICES IPCs at $RATE/s, held ${HOLD} s after a ${start_secs} s start (about $(( duration / 60 + 1 )) min)"
  timeout $(( duration + 120 )) "$SIM" --server "$SIP_ADDR" --devices "$DEVICES" --rate "$RATE" \
    --duration "$duration" --keepalive 60 --ips "$ips" \
    >"$OUT/scale-sim.txt" 2>"$OUT/scale-sim.err" &
  SIM_PID=$!
  # All registered within start_secs?
  t0=$(date +%s)
  registered_at=""
  while kill -0 "$SIM_PID" 2>/dev/null; do
    online=$(metric devices_online)
    if [ -z "$registered_at" ] && [ "$online" -ge "$DEVICES" ]; then
      registered_at=$(( $(date +%s) - t0 ))
      rss_registered=$(rss_kb)
    fi
    sleep 5
  done
  wait "$SIM_PID" || true
  online_end=$(metric devices_online)
  offline=$(metric device_offline_transitions_total)
  hits=$(metric sip_limit_hits_total)
  refused=$(metric sip_register_failures_total)
  rss_end=$(rss_kb)
  hwm=$(hwm_kb)
  cpu=$(cpu_secs)
  stop_gateway
  kill "$SAMPLER" 2>/dev/null || true; SAMPLER=""
  reg=$(sim_line registrations "$OUT/scale-sim.txt")
  ka=$(sim_line keepalives "$OUT/scale-sim.txt")
  lat=$(sim_line "register latency" "$OUT/scale-sim.txt")
  klat=$(sim_line "keepalive latency" "$OUT/scale-sim.txt")
  summary+=("scale ($DEVICES IPCs at $RATE/s, auto queries on, keepalive 60 s, held ${HOLD} s):"
    "  all $DEVICES online after: ${registered_at:-never} s; online at the end: $online_end"
    "  sim: $reg"
    "  sim: $lat"
    "  sim: $ka"
    "  sim: $klat"
    "  offline transitions (false offline): $offline; registrations refused: $refused; bound hits: $hits"
    "  gateway RSS: start $((base / 1024)) MB, all registered $(( ${rss_registered:-0} / 1024 )) MB, end $((rss_end / 1024)) MB, peak $((hwm / 1024)) MB"
    "  bytes per device (end - start): $(( (rss_end - base) * 1024 / DEVICES )); gateway CPU ${cpu} s"
    "  RSS samples (unix time, kB, CPU s): $OUT/scale-rss.txt")
fi

printf '\n--- bench-scale summary ---\n'
printf '%s\n' "${summary[@]}"
