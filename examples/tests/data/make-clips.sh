#!/bin/sh
# Makes the H.264/H.265 Annex B clips that gb28181-sim streams in tests (`--video FILE`), and
# for each one a `.frames.csv` with what ffprobe's parser takes as its access units
# (`size,flags`, one line per frame): the reference the clip tests check the simulator's
# access-unit splitter against.
#
# All clips: ffmpeg's testsrc2 pattern, 25 fps, a key frame (IDR) every 25 frames (1 s), no
# B-frames, 4:2:0, parameter sets repeated on every key frame.
#
#   testsrc2_h264_main_320x240_2slices.h264  2 s, Main, two slices per picture (new-picture
#                                            detection by first_mb_in_slice)
#   testsrc2_h264_main_640x360.h264          3 s, Main
#   testsrc2_h264_high_640x360_aud.h264      3 s, High, access unit delimiters (aud=1)
#   testsrc2_h265_main_640x360.h265          3 s, Main, IDR_W_RADL key frames, VPS/SPS/PPS
#                                            on each (repeat-headers=1)
#
# Usage: examples/tests/data/make-clips.sh [output dir, default: this script's dir]
set -eu
out=${1:-$(dirname "$0")}
mkdir -p "$out"
x264="-c:v libx264 -g 25 -keyint_min 25 -sc_threshold 0 -bf 0 -pix_fmt yuv420p"

clip() { # name size seconds codec-args...
    name=$1 size=$2 secs=$3
    shift 3
    ffmpeg -v error -y -f lavfi -i "testsrc2=size=$size:rate=25" -t "$secs" "$@" "$out/$name"
    ffprobe -v error -select_streams v:0 -show_entries packet=size,flags -of csv=p=0 \
        "$out/$name" >"$out/$name.frames.csv"
    echo "$name: $(wc -c <"$out/$name") bytes, $(wc -l <"$out/$name.frames.csv") frames"
}

# shellcheck disable=SC2086
clip testsrc2_h264_main_320x240_2slices.h264 320x240 2 $x264 -profile:v main \
    -x264-params slices=2 -f h264
# shellcheck disable=SC2086
clip testsrc2_h264_main_640x360.h264 640x360 3 $x264 -profile:v main -crf 26 -f h264
# shellcheck disable=SC2086
clip testsrc2_h264_high_640x360_aud.h264 640x360 3 $x264 -profile:v high -crf 26 \
    -x264-params aud=1 -f h264
clip testsrc2_h265_main_640x360.h265 640x360 3 -c:v libx265 -pix_fmt yuv420p \
    -x265-params keyint=25:min-keyint=25:scenecut=0:bframes=0:open-gop=0:repeat-headers=1:log-level=error \
    -f hevc
