//! `gb28181-psdemux`: demux a GB/T 28181 MPEG-PS file or an RTP-over-TCP capture (RFC 4571)
//! into elementary streams and report what the stream holds: codecs, resolution, frame count,
//! key frame interval, PTS gaps, skipped bytes and every real-device quirk met.
//!
//! ```text
//! gb28181-psdemux camera.ps --video out.h264 --audio out.g711
//! gb28181-psdemux --rtp-tcp capture.rfc4571 --video out.h265
//! ```

use bytes::Bytes;
use clap::Parser;
use media::ps::{DemuxEvent, PsDemuxer, StreamConfig};
use media::rtp::RtpPacket;
use media::tcp::{Framing, TcpDeframer, TcpDeframerConfig};
use media::{AccessUnit, Codec};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Demux GB/T 28181 PS (or RTP/PS over TCP) into elementary streams and report on it.
#[derive(Parser, Debug)]
#[command(name = "gb28181-psdemux", version)]
struct Args {
    /// Input: an MPEG-PS file, or with --rtp-tcp an RFC 4571 RTP capture.
    input: PathBuf,
    /// The input is RTP packets each prefixed by a 2-byte length (RFC 4571; GB/T 28181 TCP).
    #[arg(long)]
    rtp_tcp: bool,
    /// Write the video elementary stream (Annex B) here.
    #[arg(long, value_name = "OUT")]
    video: Option<PathBuf>,
    /// Write the audio elementary stream (G.711 bytes or AAC ADTS) here.
    #[arg(long, value_name = "OUT")]
    audio: Option<PathBuf>,
    /// Read size in bytes.
    #[arg(long, default_value_t = 512 << 10)]
    read_size: usize,
    /// List every quirk occurrence count and every PTS gap, not only a summary.
    #[arg(long)]
    verbose: bool,
}

/// What the report says about one stream.
#[derive(Debug, Default)]
struct StreamReport {
    codec: Option<Codec>,
    config: Option<StreamConfig>,
    frames: u64,
    keyframes: u64,
    bytes: u64,
    last_key_index: Option<u64>,
    key_intervals: Vec<u64>,
    first_pts: Option<u64>,
    last_pts: Option<u64>,
    deltas: Vec<(u64, u32)>,
    pts_backwards: u64,
    missing_pts: u64,
}

impl StreamReport {
    fn add(&mut self, au: &AccessUnit) {
        self.codec = Some(au.codec);
        if au.keyframe && au.codec.is_video() {
            if let Some(k) = self.last_key_index {
                self.key_intervals.push(self.frames - k);
            }
            self.last_key_index = Some(self.frames);
            self.keyframes += 1;
        }
        self.frames += 1;
        self.bytes += au.data.len() as u64;
        let Some(pts) = au.pts else {
            self.missing_pts += 1;
            return;
        };
        self.first_pts.get_or_insert(pts);
        if let Some(last) = self.last_pts {
            let delta = pts.wrapping_sub(last) & ((1 << 33) - 1);
            if delta > (1 << 32) {
                self.pts_backwards += 1;
            } else if delta > 0 {
                self.deltas.push((last, delta as u32));
            }
        }
        self.last_pts = Some(pts);
    }

    /// The usual PTS step (the most common one) and the steps over twice that.
    fn gaps(&self) -> (u32, Vec<(u64, u32)>) {
        let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
        for &(_, d) in &self.deltas {
            *counts.entry(d).or_default() += 1;
        }
        let usual = counts
            .iter()
            .max_by_key(|&(_, n)| *n)
            .map_or(0, |(&d, _)| d);
        let gaps = self
            .deltas
            .iter()
            .filter(|&&(_, d)| d > usual.saturating_mul(2) && d > usual + 900)
            .copied()
            .collect();
        (usual, gaps)
    }
}

/// Reads a file in large blocks handed on as `Bytes`; blocks are reused once the demuxer and
/// the access units are done with them, so steady state allocates and zero-fills nothing.
struct BlockReader {
    file: File,
    size: usize,
    pool: Vec<Bytes>,
}

impl BlockReader {
    fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        let mut buf = None;
        for i in 0..self.pool.len() {
            if self.pool[i].is_unique() {
                let b = self.pool.swap_remove(i);
                buf = b.try_into_mut().ok();
                break;
            }
        }
        let mut buf = buf.unwrap_or_default();
        if buf.len() < self.size {
            buf.resize(self.size, 0);
        }
        let mut filled = 0;
        while filled < self.size {
            let n = self.file.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(None);
        }
        buf.truncate(filled);
        let b = buf.freeze();
        if self.pool.len() < 32 {
            self.pool.push(b.clone());
        }
        Ok(Some(b))
    }
}

struct Sinks {
    video: Option<BufWriter<File>>,
    audio: Option<BufWriter<File>>,
    streams: BTreeMap<u8, StreamReport>,
    quirks_seen: Vec<String>,
    verbose: bool,
}

impl Sinks {
    fn drain(&mut self, demux: &mut PsDemuxer) -> std::io::Result<()> {
        while let Some(ev) = demux.poll() {
            match ev {
                DemuxEvent::AccessUnit(au) => {
                    let sink = if au.codec.is_video() {
                        &mut self.video
                    } else {
                        &mut self.audio
                    };
                    if let Some(w) = sink {
                        w.write_all(&au.data)?;
                    }
                    self.streams.entry(au.stream_id).or_default().add(&au);
                }
                DemuxEvent::StreamConfig(c) => {
                    if self.verbose {
                        eprintln!("stream {:#04x} config: {}", c.stream_id, describe(&c));
                    }
                    let sid = c.stream_id;
                    self.streams.entry(sid).or_default().config = Some(c);
                }
                DemuxEvent::Quirk(q) => {
                    if self.verbose {
                        eprintln!("quirk: {q}");
                    }
                    self.quirks_seen.push(q.to_string());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn describe(c: &StreamConfig) -> String {
    let mut s = c.codec.map_or("unknown", |c| c.name()).to_string();
    if let (Some(w), Some(h)) = (c.width, c.height) {
        s += &format!(" {w}x{h}");
    }
    if let Some(f) = c.frame_rate {
        s += &format!(" {f:.3} fps");
    }
    if let Some(p) = &c.codec_string {
        s += &format!(" ({p})");
    }
    if let Some(r) = c.sample_rate {
        s += &format!(" {r} Hz");
    }
    if let Some(ch) = c.channels {
        s += &format!(" {ch} ch");
    }
    s
}

fn create(path: &Option<PathBuf>) -> std::io::Result<Option<BufWriter<File>>> {
    path.as_ref()
        .map(|p| File::create(p).map(|f| BufWriter::with_capacity(1 << 20, f)))
        .transpose()
}

fn run(args: &Args) -> std::io::Result<()> {
    let started = Instant::now();
    let file = File::open(&args.input)?;
    let mut reader = BlockReader {
        file,
        size: args.read_size.max(4096),
        pool: Vec::new(),
    };
    let mut sinks = Sinks {
        video: create(&args.video)?,
        audio: create(&args.audio)?,
        streams: BTreeMap::new(),
        quirks_seen: Vec::new(),
        verbose: args.verbose,
    };
    let mut demux = PsDemuxer::new();
    let mut rtp = RtpCounters::default();
    if args.rtp_tcp {
        let mut deframer = TcpDeframer::with_config(TcpDeframerConfig {
            framing: Framing::Rfc4571,
            ..TcpDeframerConfig::default()
        });
        while let Some(block) = reader.next()? {
            deframer.push(&block);
            while let Some(pkt) = deframer.poll() {
                rtp.feed(pkt, &mut demux);
                sinks.drain(&mut demux)?;
            }
        }
    } else {
        while let Some(block) = reader.next()? {
            demux.push(block);
            sinks.drain(&mut demux)?;
        }
    }
    demux.finish();
    sinks.drain(&mut demux)?;
    for w in [&mut sinks.video, &mut sinks.audio].into_iter().flatten() {
        w.flush()?;
    }
    report(args, &demux, &sinks, &rtp, started.elapsed().as_secs_f64());
    Ok(())
}

/// RTP sequence tracking for `--rtp-tcp`: a gap is a discontinuity for the demuxer.
#[derive(Debug, Default)]
struct RtpCounters {
    packets: u64,
    invalid: u64,
    lost: u64,
    ts_payloads: u64,
    last_seq: Option<u16>,
}

impl RtpCounters {
    fn feed(&mut self, pkt: Bytes, demux: &mut PsDemuxer) {
        let Ok(p) = RtpPacket::parse(pkt) else {
            self.invalid += 1;
            return;
        };
        self.packets += 1;
        if let Some(last) = self.last_seq {
            let expected = last.wrapping_add(1);
            if p.sequence() != expected {
                let gap = p.sequence().wrapping_sub(expected);
                if gap < 0x8000 {
                    self.lost += u64::from(gap);
                }
                demux.discontinuity();
            }
        }
        self.last_seq = Some(p.sequence());
        if p.payload_looks_like_ts() {
            self.ts_payloads += 1;
            return;
        }
        demux.push(p.into_payload());
    }
}

/// `writeln!` into the report string (formatting into a `String` cannot fail).
macro_rules! say {
    ($o:expr, $($t:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($o, $($t)*);
    }};
}

fn report(args: &Args, demux: &PsDemuxer, sinks: &Sinks, rtp: &RtpCounters, secs: f64) {
    let s = demux.stats();
    let mut o = String::new();
    say!(o, "input        {}", args.input.display());
    say!(
        o,
        "bytes        {} in {:.3} s ({:.1} MB/s)",
        s.bytes_in,
        secs,
        s.bytes_in as f64 / 1e6 / secs.max(1e-9)
    );
    if args.rtp_tcp {
        say!(
            o,
            "rtp          {} packets, {} lost, {} invalid, {} MPEG-TS payloads ignored",
            rtp.packets,
            rtp.lost,
            rtp.invalid,
            rtp.ts_payloads
        );
    }
    say!(
        o,
        "ps           {} packs, {} system headers, {} PSMs, {} PES",
        s.packs,
        s.system_headers,
        s.psms,
        s.pes_packets
    );
    for (sid, st) in &sinks.streams {
        let codec = st.codec.map_or("unknown", |c| c.name());
        let cfg = st.config.as_ref().map(describe).unwrap_or_default();
        say!(o, "stream {sid:#04x}  {codec}: {cfg}");
        let dur = match (st.first_pts, st.last_pts) {
            (Some(a), Some(b)) => format!(
                "{:.3} s",
                (b.wrapping_sub(a) & ((1 << 33) - 1)) as f64 / 90_000.0
            ),
            _ => "-".into(),
        };
        say!(
            o,
            "  frames     {} ({} bytes), PTS span {dur}",
            st.frames,
            st.bytes
        );
        if st.codec.is_some_and(|c| c.is_video()) {
            let iv = &st.key_intervals;
            let gop = if iv.is_empty() {
                "-".to_string()
            } else {
                let avg = iv.iter().sum::<u64>() as f64 / iv.len() as f64;
                format!(
                    "min {} avg {avg:.1} max {}",
                    iv.iter().min().unwrap_or(&0),
                    iv.iter().max().unwrap_or(&0)
                )
            };
            say!(o, "  keyframes  {}, interval (frames) {gop}", st.keyframes);
        }
        let (usual, gaps) = st.gaps();
        say!(
            o,
            "  pts        step {:.1} ms usually; {} gaps over twice that, {} backwards, {} frames without PTS",
            f64::from(usual) / 90.0,
            gaps.len(),
            st.pts_backwards,
            st.missing_pts
        );
        let shown = if args.verbose { gaps.len() } else { 5 };
        for (at, delta) in gaps.iter().take(shown) {
            say!(
                o,
                "    gap of {:.3} s after PTS {at}",
                f64::from(*delta) / 90_000.0
            );
        }
    }
    say!(
        o,
        "skipped      {} bytes resyncing ({} resyncs), {} bytes of private/padding streams",
        s.skipped_bytes,
        s.resyncs,
        s.skipped_stream_bytes
    );
    say!(
        o,
        "dropped      {} damaged frames, {} discontinuities; parameter sets prepended to {} key frames",
        s.dropped_frames,
        s.discontinuities,
        s.parameter_sets_prepended
    );
    let quirks: Vec<String> = s.quirks.iter().map(|(q, n)| format!("{q} ×{n}")).collect();
    say!(
        o,
        "quirks       {}",
        if quirks.is_empty() {
            "none".to_string()
        } else {
            quirks.join(", ")
        }
    );
    let _ = std::io::stdout().write_all(o.as_bytes());
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gb28181-psdemux: {}: {e}", args.input.display());
            ExitCode::FAILURE
        }
    }
}
