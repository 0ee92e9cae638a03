#!/usr/bin/env bash
# PS demux throughput: gb28181-psdemux (release) against `ffmpeg -f mpeg -c copy -f null` on the
# same 1080p H.264 PS file, in the same run.
#
# The file: 10 s of libx264 1920x1080 25 fps at 16 Mbit/s (testsrc2, ultrafast, GOP 50, AUD on;
# about 72 KB a frame, so most frames span two PES), repeated with continuing time stamps and
# muxed by media::ps::PsMuxer as a GB/T 28181 camera sends it (pack per frame, system header and
# PSM on key frames, PES <= 0xFF80) until it reaches PS_MB megabytes (default 400). The muxing
# helper is the ignored test media/tests/ps_gen_fixture.rs.
#
# Usage: scripts/bench-psdemux.sh [work-dir]     env: PS_MB=400 RUNS=10
# Needs ffmpeg (with libx264) and, if present, hyperfine (else plain timing, median of RUNS).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-${TMPDIR:-/tmp}/gb28181-bench-psdemux}
mb=${PS_MB:-400}
runs=${RUNS:-10}
mkdir -p "$work"
clip=$work/clip1080.h264
ps=$work/h264_1080p_${mb}MB.ps

command -v ffmpeg >/dev/null || { echo "ffmpeg is required" >&2; exit 1; }

if [[ ! -s $clip ]]; then
  echo "encoding $clip"
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=25 -t 10 \
    -c:v libx264 -preset ultrafast -b:v 16M -maxrate 16M -bufsize 4M -g 50 \
    -bsf:v h264_metadata=aud=insert "$clip"
fi
if [[ ! -s $ps ]]; then
  echo "muxing $ps"
  (cd "$root" && PS_GEN_IN=$clip PS_GEN_OUT=$ps PS_GEN_MB=$mb \
    cargo test -q --release -p media --test ps_gen_fixture -- --ignored >/dev/null)
fi
(cd "$root" && cargo build -q --release -p gb28181-examples --bin gb28181-psdemux)
tool=$root/target/release/gb28181-psdemux
bytes=$(stat -c %s "$ps")

ours=("$tool" "$ps")
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
  echo "warning: load average $load on $(nproc) cores: wall times are inflated, see the cpu time line" >&2
fi
theirs=(ffmpeg -v error -f mpeg -i "$ps" -c copy -f null -)

# Sanity: ffmpeg and we see the same number of video frames.
"$tool" "$ps" | sed -n '1,6p'
ours_frames=$("$tool" "$ps" | awk '$1 == "frames" { print $2; exit }')
ffmpeg_frames=$(ffprobe -v error -select_streams v:0 -count_packets \
  -show_entries stream=nb_read_packets -of csv=p=0 "$ps")
echo "video frames: gb28181-psdemux $ours_frames, ffprobe $ffmpeg_frames"

median_secs() { # command... ; prints the median wall time of $runs runs
  local t=()
  "$@" >/dev/null 2>&1 # warm the page cache
  for _ in $(seq "$runs"); do
    local s e
    s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
    t+=("$(echo "$e - $s" | bc -l)")
  done
  printf '%s\n' "${t[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

if command -v hyperfine >/dev/null; then
  json=$work/hyperfine.json
  hyperfine -N --warmup 2 --runs "$runs" --export-json "$json" \
    -n gb28181-psdemux "${ours[*]}" -n ffmpeg "${theirs[*]}" >&2
  read -r t_ours t_ffmpeg c_ours c_ffmpeg < <(python3 -c '
import json,sys
r={x["command"]:x for x in json.load(open(sys.argv[1]))["results"]}
o,f=r["gb28181-psdemux"],r["ffmpeg"]
print(o["median"], f["median"], o["user"]+o["system"], f["user"]+f["system"])' "$json")
else
  t_ours=$(median_secs "${ours[@]}")
  t_ffmpeg=$(median_secs "${theirs[@]}")
fi

awk -v b="$bytes" -v a="$t_ours" -v f="$t_ffmpeg" -v ca="${c_ours:-}" -v cf="${c_ffmpeg:-}" 'BEGIN {
  printf "file            %.1f MB\n", b / 1e6
  printf "gb28181-psdemux %.3f s  %8.1f MB/s (median wall time)\n", a, b / 1e6 / a
  printf "ffmpeg -c copy  %.3f s  %8.1f MB/s\n", f, b / 1e6 / f
  printf "ratio           %.2fx (goal >= 3x)\n", f / a
  if (ca != "" && cf != "")
    printf "cpu time        %.3f s vs %.3f s (user+sys, mean): %.2fx\n", ca, cf, cf / ca
}'
