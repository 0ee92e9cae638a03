//! `gb28181-sim` answers INVITE and streams like a camera, in every transport mode: a minimal
//! in-test platform registers it, plays one channel over UDP, TCP (platform listens) and TCP
//! (platform connects) at once, and checks what arrives: SSRC = y=, the clip's access units
//! byte for byte (key frame with SPS/PPS included), marker bits, real-time pacing, PCMA
//! audio; then BYE stops each stream. Misbehaviours (`--wrong-ssrc`, `--no-media`,
//! `--media-delay-ms`), bad offers and the TCP connect retries are checked too.

mod sim_common;

use std::time::{Duration, Instant};

use gb28181::platform::{CallEndReason, PlatformEvent};
use gb28181::sdp::MediaTransport;
use gb28181_examples::sim::es::Clip;
use media::Codec;
use media::codec::{ParameterSetCache, scan_access_unit};
use sim_common::*;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const CLIP_H264: &str = "testsrc2_h264_main_320x240_2slices.h264";
const CLIP_H265: &str = "testsrc2_h265_main_640x360.h265";

/// The received video equals the clip, access unit for access unit, from its first frame.
fn check_video(rx: &Receiver, clip: &Clip, n: usize, what: &str) {
    assert!(
        rx.video.len() >= n,
        "{what}: {} video frames",
        rx.video.len()
    );
    for (i, (au, _)) in rx.video.iter().take(n).enumerate() {
        let want = &clip.units[i % clip.units.len()];
        assert_eq!(au.codec, clip.codec, "{what} frame {i}");
        assert_eq!(au.keyframe, want.keyframe, "{what} frame {i}");
        assert!(
            au.data == want.data,
            "{what}: frame {i} differs from the clip"
        );
        if au.keyframe {
            let scan = scan_access_unit(clip.codec, &au.data);
            assert!(
                ParameterSetCache::scan_has_all(clip.codec, &scan),
                "{what} frame {i}"
            );
        }
    }
    assert!(rx.video[0].0.keyframe, "{what}: starts on a key frame");
    // PTS advance by 3600 (25 fps at 90 kHz).
    let pts: Vec<u64> = rx.video.iter().take(n).filter_map(|(a, _)| a.pts).collect();
    assert!(
        pts.windows(2)
            .all(|w| w[1].wrapping_sub(w[0]) & 0x1_ffff_ffff == 3600),
        "{what}: {pts:?}"
    );
}

/// Frames 0 → 25 take about one second.
fn pacing(rx: &Receiver, what: &str) -> f64 {
    let secs = rx.video[25].1.duration_since(rx.video[0].1).as_secs_f64();
    assert!(
        (0.8..=1.6).contains(&secs),
        "{what}: 25 frames in {secs:.3} s"
    );
    secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_one_channel_over_every_transport_at_once() {
    let clip = Clip::open(&clip_path(CLIP_H264), None).unwrap();
    let mut platform = TestPlatform::start().await;
    let video = clip_path(CLIP_H264);
    let sim = Sim::start(
        platform.addr,
        &[
            "--kind",
            "ipc",
            "--video",
            video.to_str().unwrap(),
            "--audio",
            "pcma",
        ],
    );
    let device = ipc_id(1);
    let channel = platform.wait_channels(&device).await[0].clone();

    // The platform's receive sockets, then the three INVITEs at once.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let tcp_port = listener.local_addr().unwrap().port();
    let modes = [
        (MediaTransport::Udp, udp_port, "0200000001"),
        (MediaTransport::TcpPassive, tcp_port, "0200000002"),
        (MediaTransport::TcpActive, 9, "0200000003"),
    ];
    let mut sessions = Vec::new();
    for (t, port, ssrc) in modes {
        sessions.push(platform.invite(&device, &channel, t, port, ssrc).await);
    }
    let mut answers = Vec::new();
    for (&s, (t, _, ssrc)) in sessions.iter().zip(modes) {
        let sd = platform
            .answer(s)
            .await
            .unwrap_or_else(|st| panic!("{t:?} refused: {st:?}\n{}", sim.logs()));
        answers.push(check_answer(&sd, t, ssrc));
    }
    let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the sim connects to the platform (a=setup:passive offer)")
        .unwrap()
        .0;
    let dialed = TcpStream::connect((answers[2].address.as_str(), answers[2].port))
        .await
        .expect("the sim listens on its answered port (a=setup:active offer)");

    let started = Instant::now();
    let mut receivers = [
        Receiver::new(Socket::Udp(udp)),
        Receiver::new(Socket::Tcp(accepted)),
        Receiver::new(Socket::Tcp(dialed)),
    ];
    let tasks: Vec<_> = receivers
        .iter_mut()
        .map(|rx| {
            rx.run_until(Duration::from_secs(6), |r| {
                r.video.len() >= 31 && r.audio.len() >= 25
            })
        })
        .collect();
    let done = futures_join(tasks).await;
    let elapsed = started.elapsed().as_secs_f64();
    for (((rx, ok), (t, _, ssrc)), name) in
        receivers
            .iter()
            .zip(done)
            .zip(modes)
            .zip(["udp", "tcp-passive", "tcp-active"])
    {
        assert!(
            ok,
            "{name}: {} video, {} audio\n{}",
            rx.video.len(),
            rx.audio.len(),
            sim.logs()
        );
        let want: u32 = ssrc.parse().unwrap();
        assert_eq!(
            rx.ssrcs.iter().copied().collect::<Vec<_>>(),
            [want],
            "{name}: SSRC = y="
        );
        assert_eq!(rx.payload_types.iter().copied().collect::<Vec<_>>(), [96]);
        assert!(
            rx.max_payload <= 1400,
            "{name}: {}-byte payload",
            rx.max_payload
        );
        assert_eq!(
            rx.frames_without_marker(),
            0,
            "{name}: every frame ends with a marker"
        );
        assert_eq!(rx.incomplete_frames(), 0, "{name}");
        check_video(rx, &clip, 31, name);
        let secs = pacing(rx, name);
        // Audio: PCMA (stream type 0x90) in stream 0xC0, 320 samples per 40 ms, a 440 Hz tone.
        let a = &rx.audio[0];
        assert_eq!(
            (a.stream_id, a.codec, a.data.len()),
            (0xC0, Codec::G711A, 320),
            "{name}"
        );
        let rate = alaw_crossing_rate(&rx.audio);
        assert!(
            (0.105..0.115).contains(&rate),
            "{name}: crossing rate {rate}"
        );
        eprintln!(
            "{name:<12} {t:?}: {} packets, {} bytes, {} video + {} audio frames in {elapsed:.2} s \
             ({:.0} packets/s); frames 0-25 in {secs:.3} s (pacing error {:+.1} %)",
            rx.packets,
            rx.bytes,
            rx.video.len(),
            rx.audio.len(),
            rx.packets as f64 / elapsed,
            (secs - 1.0) * 100.0
        );
    }

    // BYE stops each stream: silence on UDP, the TCP connections closed.
    for &s in &sessions {
        platform.hangup(s).await;
    }
    let late = receivers[0]
        .packets_after(Duration::from_millis(300), Duration::from_millis(700))
        .await;
    assert_eq!(late, 0, "UDP packets after BYE");
    for (rx, name) in receivers[1..].iter_mut().zip(["tcp-passive", "tcp-active"]) {
        rx.run_until(Duration::from_secs(3), |_| false).await;
        assert!(rx.closed, "{name}: connection not closed after BYE");
    }

    let report = squash(&sim.stop());
    for line in [
        "invites 3 answered, 0 refused, 3 acked",
        "byes 3 from the platform, 0 sent",
    ] {
        assert!(report.contains(line), "report lacks {line:?}:\n{report}");
    }
    for (mode, rx) in ["udp", "tcp-passive", "tcp-active"].iter().zip(&receivers) {
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("media {mode} streams")))
            .unwrap_or_else(|| panic!("no media {mode} line:\n{report}"));
        let packets: u64 = line
            .split("packets ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!(line.contains("streams 1,"), "{line}");
        assert!(packets >= rx.packets, "{line}: received {}", rx.packets);
    }
}

/// Polls every future to completion concurrently (no extra dependency).
async fn futures_join<F: std::future::Future<Output = bool>>(futs: Vec<F>) -> Vec<bool> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<bool>> = vec![None; futs.len()];
    std::future::poll_fn(|cx| {
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none()
                && let std::task::Poll::Ready(v) = f.as_mut().poll(cx)
            {
                *o = Some(v);
            }
        }
        if out.iter().all(Option::is_some) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap_or(false)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_cameras_and_bad_offers() {
    let mut platform = TestPlatform::start().await;
    let video = clip_path(CLIP_H264);
    // Camera 1 sends another SSRC than y=, 700 ms late, and gives up connecting quickly.
    let liar = Sim::start(
        platform.addr,
        &[
            "--kind",
            "ipc",
            "--first",
            "1",
            "--video",
            video.to_str().unwrap(),
            "--wrong-ssrc",
            "--media-delay-ms",
            "700",
            "--connect-attempts",
            "2",
            "--connect-interval-ms",
            "200",
        ],
    );
    // Camera 2 answers but never sends (and has no clip at all).
    let mute = Sim::start(
        platform.addr,
        &["--kind", "ipc", "--first", "2", "--no-media"],
    );
    let (liar_id, mute_id) = (ipc_id(1), ipc_id(2));
    let liar_ch = platform.wait_channels(&liar_id).await[0].clone();
    let mute_ch = platform.wait_channels(&mute_id).await[0].clone();

    // Offers a camera cannot serve: 488 (or 404 for a channel it lacks), and it stays up.
    let base =
        "v=0\r\no=34020000002000000001 0 0 IN IP4 127.0.0.1\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n";
    for (sdp, status) in [
        ("not sdp at all".to_owned(), 488),
        (
            format!("{base}s=Play\r\nm=video 0 RTP/AVP 96\r\ny=0200000009\r\n"),
            488,
        ),
        (
            format!("{base}s=Play\r\nm=video 5000 RTP/AVP 96\r\ny=12x\r\n"),
            488,
        ),
        (
            format!("{base}s=Play\r\nm=video 5000 RTP/AVP 98\r\na=rtpmap:98 H264/90000\r\n"),
            488,
        ),
        (format!("{base}s=Talk\r\nm=audio 5000 RTP/AVP 8\r\n"), 488),
    ] {
        let s = platform.invite_sdp(&liar_id, &liar_ch, sdp.clone()).await;
        assert_eq!(
            platform.answer(s).await.err(),
            Some(Some(status)),
            "{sdp:?}"
        );
    }
    let s = platform
        .invite(
            &liar_id,
            "34020000001320000099",
            MediaTransport::Udp,
            5000,
            "0200000010",
        )
        .await;
    assert_eq!(platform.answer(s).await.err(), Some(Some(404)));

    // --wrong-ssrc and --media-delay-ms.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = udp.local_addr().unwrap().port();
    let s = platform
        .invite(&liar_id, &liar_ch, MediaTransport::Udp, port, "0200000011")
        .await;
    check_answer(
        &platform.answer(s).await.unwrap(),
        MediaTransport::Udp,
        "0200000011",
    );
    let answered = Instant::now();
    let mut rx = Receiver::new(Socket::Udp(udp));
    assert!(
        rx.run_until(Duration::from_secs(4), |r| r.video.len() >= 3)
            .await,
        "{}",
        liar.logs()
    );
    let delay = rx.first_packet.unwrap().duration_since(answered);
    assert!(
        delay >= Duration::from_millis(650),
        "first packet after {delay:?}"
    );
    assert_eq!(rx.ssrcs.len(), 1);
    assert!(
        !rx.ssrcs.contains(&200_000_011),
        "sent the y= SSRC: {:?}",
        rx.ssrcs
    );
    platform.hangup(s).await;

    // Nobody listens for a TCP passive offer: after 2 attempts the camera hangs up with BYE.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = platform
        .invite(
            &liar_id,
            &liar_ch,
            MediaTransport::TcpPassive,
            port,
            "0200000012",
        )
        .await;
    platform.answer(s).await.unwrap();
    let ended = platform
        .wait(Duration::from_secs(5), |e| match e {
            PlatformEvent::CallEnded { session, reason } if *session == s => Some(*reason),
            _ => None,
        })
        .await;
    assert_eq!(ended, Some(CallEndReason::ByeFromDevice), "{}", liar.logs());

    // --no-media: answered on every transport, not a byte sent.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = udp.local_addr().unwrap().port();
    let s1 = platform
        .invite(&mute_id, &mute_ch, MediaTransport::Udp, port, "0200000013")
        .await;
    check_answer(
        &platform.answer(s1).await.unwrap(),
        MediaTransport::Udp,
        "0200000013",
    );
    let s2 = platform
        .invite(
            &mute_id,
            &mute_ch,
            MediaTransport::TcpActive,
            9,
            "0200000014",
        )
        .await;
    let a = check_answer(
        &platform.answer(s2).await.unwrap(),
        MediaTransport::TcpActive,
        "0200000014",
    );
    let tcp = TcpStream::connect((a.address.as_str(), a.port))
        .await
        .unwrap();
    let mut rx_udp = Receiver::new(Socket::Udp(udp));
    let mut rx_tcp = Receiver::new(Socket::Tcp(tcp));
    assert_eq!(
        rx_udp
            .packets_after(Duration::ZERO, Duration::from_millis(1200))
            .await,
        0
    );
    assert_eq!(
        rx_tcp
            .packets_after(Duration::ZERO, Duration::from_millis(300))
            .await,
        0
    );
    assert!(!rx_tcp.closed);
    // BYE closes the idle connection.
    platform.hangup(s1).await;
    platform.hangup(s2).await;
    rx_tcp.run_until(Duration::from_secs(3), |_| false).await;
    assert!(rx_tcp.closed);

    let report = squash(&liar.stop());
    assert!(report.contains("invites 2 answered, 6 refused"), "{report}");
    assert!(
        report.contains("byes 1 from the platform, 1 sent"),
        "{report}"
    );
    assert!(report.contains("connect failures 1"), "{report}");
    let report = squash(&mute.stop());
    assert!(report.contains("invites 2 answered"), "{report}");
    assert!(
        report.contains("media udp streams 1, packets 0"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_passive_retries_until_the_platform_listens_h265() {
    let clip = Clip::open(&clip_path(CLIP_H265), None).unwrap();
    let mut platform = TestPlatform::start().await;
    let video = clip_path(CLIP_H265);
    let sim = Sim::start(
        platform.addr,
        &[
            "--kind",
            "nvr",
            "--channels",
            "2",
            "--video",
            video.to_str().unwrap(),
        ],
    );
    let device = format!("3402000000118{:07}", 1);
    let channels = platform.wait_channels(&device).await;
    assert_eq!(channels.len(), 2);

    // The platform announces a port but only listens 1.5 s after the answer: the camera's
    // connection attempts 1 s apart get through on a retry.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = platform
        .invite(
            &device,
            &channels[1],
            MediaTransport::TcpPassive,
            port,
            "0200000021",
        )
        .await;
    check_answer(
        &platform.answer(s).await.unwrap(),
        MediaTransport::TcpPassive,
        "0200000021",
    );
    let answered = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (conn, _) = tokio::time::timeout(Duration::from_secs(4), listener.accept())
        .await
        .unwrap_or_else(|_| panic!("no retry reached the platform\n{}", sim.logs()))
        .unwrap();
    let waited = answered.elapsed();
    // Attempts at about 0, 1 and 2 s: the third one gets through.
    assert!(waited < Duration::from_millis(2900), "{waited:?}");
    let mut rx = Receiver::new(Socket::Tcp(conn));
    assert!(
        rx.run_until(Duration::from_secs(4), |r| r.video.len() >= 27)
            .await,
        "{}",
        sim.logs()
    );
    assert_eq!(rx.ssrcs.iter().copied().collect::<Vec<_>>(), [200_000_021]);
    check_video(&rx, &clip, 27, "h265 tcp-passive");
    pacing(&rx, "h265 tcp-passive");
    assert!(rx.audio.is_empty());
    assert!(
        sim.wait_log("media connected to the platform", Duration::from_secs(2)),
        "{}",
        sim.logs()
    );
    let logs = sim.logs();
    assert!(logs.contains("media connect failed; retrying"), "{logs}");
    let line = logs
        .lines()
        .find(|l| l.contains("media connected"))
        .unwrap();
    assert!(line.contains("attempt=3"), "{line}");

    // The platform drops the media connection: the camera hangs up with BYE.
    drop(rx);
    let ended = platform
        .wait(Duration::from_secs(5), |e| match e {
            PlatformEvent::CallEnded { session, reason } if *session == s => Some(*reason),
            _ => None,
        })
        .await;
    assert_eq!(ended, Some(CallEndReason::ByeFromDevice), "{}", sim.logs());
    let report = squash(&sim.stop());
    assert!(
        report.contains("byes 0 from the platform, 1 sent"),
        "{report}"
    );
}
