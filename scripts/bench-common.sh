# Sourced by the gateway benchmark scripts (bash): the 2 Mbps test clip and CPU time of a pid.
# Expects WORK (the scratch folder) to be set.

# A 20 s 1280x720 25 fps H.264 clip at a constant 2 Mbit/s, a key frame every 2 s, no
# B-frames, made once with ffmpeg (libx264) into $WORK; sets CLIP.
bench_clip() {
    CLIP="$WORK/clip-2mbps.h264"
    if [ ! -s "$CLIP" ]; then
        ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=25 -t 20 -c:v libx264 \
            -preset veryfast -profile:v high -b:v 2M -maxrate 2M -bufsize 1M -g 50 -bf 0 \
            -x264-params nal-hrd=cbr -f h264 "$CLIP"
    fi
}

TCK=$(getconf CLK_TCK)
# utime + stime of a pid, in clock ticks (fields 14 and 15 of /proc/<pid>/stat).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }
