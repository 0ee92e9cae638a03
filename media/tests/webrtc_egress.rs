//! `media::webrtc::Egress` against str0m client peers over an in-memory network with simulated
//! time: a real H.264 clip arrives NAL unit for NAL unit, late joiners start with the cached
//! GOP (or at the next key frame without the cache),
//! PCMA arrives, H.265 without an H.265 offer is refused, silent viewers are reaped and a PLI
//! surfaces as a key frame request.
#![cfg(feature = "webrtc")]

mod webrtc_common;

use bytes::Bytes;
use media::webrtc::{
    EgressConfig, EgressError, EgressEvent, Packetization, StreamId, Tracks, ViewerLocation,
};
use media::{AccessUnit, Codec};
use std::time::Duration;
use str0m::Rtc;
use str0m::format::Codec as RtcCodec;
use str0m::media::KeyframeRequestKind;
use webrtc_common::{Net, access_units, chromium_like, nal_units, testdata};

const CAM: StreamId = StreamId(7);
const FRAME: Duration = Duration::from_millis(40);

fn clip(name: &str, codec: Codec) -> Vec<AccessUnit> {
    let es = Bytes::from(std::fs::read(testdata(name)).expect("test clip"));
    access_units(&es, codec)
}

fn config() -> EgressConfig {
    EgressConfig::new("127.0.0.1:8189".parse().unwrap())
}

/// The NAL units a viewer should receive: all but SEI, access unit delimiters and filler,
/// which the egress leaves out.
fn nals_of(aus: &[AccessUnit]) -> Vec<Vec<u8>> {
    aus.iter()
        .flat_map(|au| {
            let h265 = au.codec == Codec::H265;
            nal_units(&au.data).into_iter().filter(move |n| {
                if h265 {
                    !matches!((n[0] >> 1) & 0x3f, 35 | 38 | 39 | 40)
                } else {
                    !matches!(n[0] & 0x1f, 6 | 9 | 12)
                }
            })
        })
        .collect()
}

/// Writes `aus` one per 40 ms of simulated time.
fn play(net: &mut Net, aus: &[AccessUnit]) {
    for au in aus {
        net.egress.write_video(net.now, CAM, au);
        net.pump();
        net.advance(FRAME);
    }
}

fn h264_clip_arrives_exactly(packetization: Packetization, cache: bool) {
    let aus = clip("srs_bench_avatar.h264", Codec::H264);
    assert!(aus.len() > 300 && aus[0].keyframe);
    let mut config = EgressConfig {
        packetization,
        ..config()
    };
    if !cache {
        config.gop_cache.frames = 0;
    }
    let mut net = Net::new(config);
    let tracks = Tracks::new(CAM, Some(Codec::H264), None);
    let a = net.add_client(chromium_like(), false, tracks).unwrap();
    net.connect_all();
    assert!(matches!(net.events[..], [EgressEvent::Connected { .. }]));

    // 100 frames: the key frame at 0, then P frames; a second viewer joins at frame 20,
    // mid-GOP.
    let second_key = aus.iter().skip(1).position(|au| au.keyframe).unwrap() + 1;
    assert!(second_key > 20 && second_key < 100, "GOP {second_key}");
    play(&mut net, &aus[..20]);
    let b = net.add_client(chromium_like(), false, tracks).unwrap();
    net.connect_all();
    play(&mut net, &aus[20..100]);
    net.advance(Duration::from_millis(500));

    let got = net.clients[a].video_nals();
    assert_eq!(got.len(), nals_of(&aus[..100]).len());
    assert!(got == nals_of(&aus[..100]), "viewer A: NAL units differ");
    assert_eq!(net.clients[a].video_frames().len(), 100);
    assert!(net.clients[a].video_frames().iter().all(|m| m.contiguous));

    if cache {
        // The late viewer starts at once with the cached GOP (the key frame at 0 and the
        // frames since, with their first RTP times), then gets the live frames.
        let late = net.clients[b].video_frames();
        assert_eq!(late.len(), 100);
        assert!(nal_units(&late[0].data).iter().any(|n| n[0] & 0x1f == 5));
        assert_eq!(late[0].time, net.clients[a].video_frames()[0].time);
        assert!(net.clients[b].video_nals() == nals_of(&aus[..100]));
        assert!(net.events.contains(&EgressEvent::Connected {
            viewer: net.clients[b].viewer.unwrap(),
            started: true
        }));
    } else {
        // Without the cache its first frame is the next key frame, and everything after it.
        let late = net.clients[b].video_frames();
        assert_eq!(late.len(), 100 - second_key);
        assert!(nal_units(&late[0].data).iter().any(|n| n[0] & 0x1f == 5));
        assert!(net.clients[b].video_nals() == nals_of(&aus[second_key..100]));
        assert!(net.events.contains(&EgressEvent::Connected {
            viewer: net.clients[b].viewer.unwrap(),
            started: false
        }));
    }

    let offered = net.clients[a].video_frames()[0].params.spec();
    assert_eq!(offered.codec, RtcCodec::H264);
    assert_eq!(offered.format.packetization_mode, Some(1));
    assert_eq!(net.lost, 0);
}

#[test]
fn h264_clip_arrives_exactly_shared() {
    h264_clip_arrives_exactly(Packetization::Shared, true);
}

#[test]
fn h264_clip_arrives_exactly_shared_without_cache() {
    h264_clip_arrives_exactly(Packetization::Shared, false);
}

#[test]
fn h264_clip_arrives_exactly_per_viewer_baseline() {
    h264_clip_arrives_exactly(Packetization::PerViewer, true);
}

#[test]
fn the_answer_offers_every_host_candidate_and_loopback_only_to_this_host() {
    let mut cfg = config();
    cfg.more_candidates = vec!["192.168.7.20:8000".parse().unwrap()];
    cfg.this_host_candidates = vec!["127.0.0.1:8000".parse().unwrap()];
    let mut net = Net::new(cfg);
    let tracks = Tracks::new(CAM, Some(Codec::H264), None);
    let candidates = |answer: &str| -> Vec<String> {
        answer
            .lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                format!("{}:{} {}", f[4], f[5], f[7])
            })
            .collect()
    };
    let (_, offer) = webrtc_common::Client::new(
        net.now,
        "127.0.0.2:9".parse().unwrap(),
        chromium_like(),
        false,
    );
    let (_, answer) = net
        .egress
        .add_viewer(net.now, &offer, tracks, ViewerLocation::Elsewhere)
        .unwrap();
    let announce = format!("{} host", net.egress.config().announce);
    assert_eq!(
        candidates(&answer),
        [announce.clone(), "192.168.7.20:8000 host".into()],
        "{answer}"
    );
    let (_, answer) = net
        .egress
        .add_viewer(net.now, &offer, tracks, ViewerLocation::ThisHost)
        .unwrap();
    assert_eq!(
        candidates(&answer),
        [
            announce,
            "192.168.7.20:8000 host".into(),
            "127.0.0.1:8000 host".into()
        ],
        "{answer}"
    );
}

#[test]
fn answer_names_only_the_codecs_sent() {
    let mut net = Net::new(config());
    let (_, offer) = webrtc_common::Client::new(
        net.now,
        "127.0.0.2:9".parse().unwrap(),
        chromium_like(),
        true,
    );
    let tracks = Tracks::new(CAM, Some(Codec::H264), Some(Codec::G711A));
    let (_, answer) = net
        .egress
        .add_viewer(net.now, &offer, tracks, ViewerLocation::Elsewhere)
        .unwrap();
    let rtpmaps: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=rtpmap:"))
        .collect();
    let names: Vec<&str> = rtpmaps.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(names, ["H264/90000", "rtx/90000", "PCMA/8000"], "{answer}");
    // Main profile, as offered by the client (str0m's default offer has 4d001f with mode 1).
    assert!(answer.contains("profile-level-id=4d001f"), "{answer}");
    assert!(answer.contains("packetization-mode=1"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(!answer.contains("transport-wide-cc"), "{answer}");
    assert!(
        answer.contains("a=candidate:") && answer.contains("127.0.0.1 8189"),
        "{answer}"
    );
}

#[test]
fn pcma_arrives_unchanged_at_8khz() {
    let mut net = Net::new(config());
    let tracks = Tracks::new(CAM, Some(Codec::H264), Some(Codec::G711A));
    let a = net.add_client(chromium_like(), true, tracks).unwrap();
    net.connect_all();
    let frames: Vec<AccessUnit> = (0..20u64)
        .map(|i| AccessUnit {
            stream_id: 0xc0,
            codec: Codec::G711A,
            // 20 ms of audio each, on the 90 kHz PES clock, from an arbitrary start.
            pts: Some(1_000_000 + i * 1800),
            dts: None,
            keyframe: true,
            data: Bytes::from(
                (0..160)
                    .map(|s| (i as u8).wrapping_mul(31) ^ s as u8)
                    .collect::<Vec<u8>>(),
            ),
        })
        .collect();
    for f in &frames {
        assert_eq!(net.egress.write_audio(net.now, CAM, f), 1);
        net.pump();
        net.advance(Duration::from_millis(20));
    }
    net.advance(Duration::from_millis(200));
    let got = net.clients[a].audio_frames();
    assert_eq!(got.len(), frames.len());
    for (g, f) in got.iter().zip(&frames) {
        assert_eq!(&g.data[..], &f.data[..]);
        assert_eq!(g.params.spec().codec, RtcCodec::PCMA);
    }
    let t0 = got[0].time.numer();
    assert_eq!(got[0].time.frequency().get(), 8000);
    assert_eq!(got[1].time.numer() - t0, 160);
    assert_eq!(got[19].time.numer() - t0, 19 * 160);
}

#[test]
fn h265_stream_without_h265_offer_is_a_typed_error() {
    let mut net = Net::new(config());
    let tracks = Tracks::new(CAM, Some(Codec::H265), None);
    let err = net.add_client(chromium_like(), false, tracks).unwrap_err();
    match &err {
        EgressError::NoCommonCodec {
            kind,
            stream,
            offered,
        } => {
            assert_eq!((*kind, *stream), ("video", Codec::H265));
            assert!(offered.iter().any(|c| c == "H264"), "{offered:?}");
            assert!(!offered.iter().any(|c| c.eq_ignore_ascii_case("H265")));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("h265"), "{err}");
    assert_eq!(net.egress.stats().viewers, 0);
}

#[test]
fn h265_clip_arrives_when_offered() {
    let aus = clip("srs_bench_avatar.h265", Codec::H265);
    let mut net = Net::new(config());
    let tracks = Tracks::new(CAM, Some(Codec::H265), None);
    let a = net.add_client(Rtc::builder(), false, tracks).unwrap();
    net.connect_all();
    play(&mut net, &aus[..40]);
    net.advance(Duration::from_millis(300));
    let got = net.clients[a].video_frames();
    // str0m's receiver hands over the aggregation packet with the parameter sets apart from
    // the IRAP picture of the same timestamp; count pictures by timestamp.
    let mut times: Vec<u64> = got.iter().map(|m| m.time.numer()).collect();
    times.dedup();
    assert_eq!(times.len(), 40);
    assert_eq!(got[0].params.spec().codec, RtcCodec::H265);
    assert!(net.clients[a].video_nals() == nals_of(&aus[..40]));
}

#[test]
fn viewer_that_never_connects_is_reaped() {
    let mut net = Net::new(config());
    let (_, offer) = webrtc_common::Client::new(
        net.now,
        "127.0.0.2:9".parse().unwrap(),
        chromium_like(),
        false,
    );
    let start = net.now;
    let tracks = Tracks::new(CAM, Some(Codec::H264), None);
    let (id, _) = net
        .egress
        .add_viewer(start, &offer, tracks, ViewerLocation::Elsewhere)
        .unwrap();
    let mut reaped_at = None;
    let mut t = start;
    while reaped_at.is_none() && t < start + Duration::from_secs(20) {
        t = net
            .egress
            .poll_timeout()
            .expect("a viewer has a timeout")
            .max(t);
        net.egress.handle_timeout(t);
        while let Some(e) = net.egress.poll_event() {
            assert_eq!(e, EgressEvent::Reaped(id));
            reaped_at = Some(t);
        }
    }
    assert_eq!(reaped_at, Some(start + Duration::from_secs(15)));
    assert_eq!(net.egress.stats().viewers, 0);
    assert!(net.egress.viewers_of(CAM).is_empty());
    assert_eq!(net.egress.poll_timeout(), None);
}

#[test]
fn pli_from_browser_is_a_keyframe_request() {
    let mut net = Net::new(config());
    let tracks = Tracks::new(CAM, Some(Codec::H264), None);
    let a = net.add_client(chromium_like(), false, tracks).unwrap();
    net.connect_all();
    let aus = clip("srs_bench_avatar.h264", Codec::H264);
    play(&mut net, &aus[..3]);
    net.events.clear();
    let mid = net.clients[a].video_mid.unwrap();
    let mut w = net.clients[a]
        .rtc
        .writer(mid)
        .expect("a writer for the video mid");
    w.request_keyframe(None, KeyframeRequestKind::Pli).unwrap();
    net.advance(Duration::from_millis(100));
    let viewer = net.clients[a].viewer.unwrap();
    assert!(
        net.events.contains(&EgressEvent::KeyframeRequest(viewer)),
        "{:?}",
        net.events
    );
}

#[test]
fn removed_viewer_gets_nothing_more() {
    let mut net = Net::new(config());
    let tracks = Tracks::new(CAM, Some(Codec::H264), None);
    let a = net.add_client(chromium_like(), false, tracks).unwrap();
    let b = net.add_client(chromium_like(), false, tracks).unwrap();
    net.connect_all();
    let aus = clip("srs_bench_avatar.h264", Codec::H264);
    play(&mut net, &aus[..5]);
    let va = net.clients[a].viewer.unwrap();
    assert!(net.egress.remove_viewer(net.now, va));
    assert!(!net.egress.remove_viewer(net.now, va));
    play(&mut net, &aus[5..10]);
    assert_eq!(net.clients[a].video_frames().len(), 5);
    assert_eq!(net.clients[b].video_frames().len(), 10);
    assert_eq!(net.egress.viewers_of(CAM).len(), 1);
}

/// The cache lives with an opened stream, not with its viewers: frames written before any
/// viewer, or while none watches (the linger after the last one left), start the next viewer;
/// after `end_stream` the stream is unknown and nothing is kept. A stream never opened lives
/// only as long as its viewers.
#[test]
fn the_cache_lives_until_the_stream_ends() {
    let mut net = Net::new(config());
    let tracks = Tracks::new(CAM, Some(Codec::H264), None);
    let aus = clip("srs_bench_avatar.h264", Codec::H264);
    play(&mut net, &aus[..2]);
    net.egress.open_stream(CAM, None);
    play(&mut net, &aus[..3]);
    let a = net.add_client(chromium_like(), false, tracks).unwrap();
    net.connect_all();
    assert_eq!(
        net.clients[a].video_frames().len(),
        3,
        "written before any viewer"
    );
    play(&mut net, &aus[3..6]);
    let va = net.clients[a].viewer.unwrap();
    assert!(net.egress.remove_viewer(net.now, va));
    play(&mut net, &aus[6..8]);
    let b = net.add_client(chromium_like(), false, tracks).unwrap();
    net.connect_all();
    assert_eq!(
        net.clients[b].video_frames().len(),
        8,
        "written with no viewer"
    );
    assert!(net.clients[b].video_nals() == nals_of(&aus[..8]));

    assert!(net.egress.end_stream(net.now, CAM));
    assert!(net.egress.viewers_of(CAM).is_empty());
    // Units still on their way after the end are not kept: the stream is unknown.
    play(&mut net, &aus[..10]);
    assert_eq!(
        net.clients[b].video_frames().len(),
        8,
        "its viewers are gone"
    );
    assert!(
        !net.egress.end_stream(net.now, CAM),
        "nothing was re-created"
    );

    // Not opened: the stream lives with its viewer, and goes with it.
    let c = net.add_client(chromium_like(), false, tracks).unwrap();
    net.connect_all();
    assert!(net.clients[c].video_frames().is_empty());
    let vc = net.clients[c].viewer.unwrap();
    let not_started = EgressEvent::Connected {
        viewer: vc,
        started: false,
    };
    assert!(net.events.contains(&not_started));
    play(&mut net, &aus[..3]);
    assert_eq!(net.clients[c].video_frames().len(), 3);
    assert!(net.egress.remove_viewer(net.now, vc));
    assert!(
        !net.egress.end_stream(net.now, CAM),
        "gone with its last viewer"
    );
    let d = net.add_client(chromium_like(), false, tracks).unwrap();
    net.connect_all();
    assert!(
        net.clients[d].video_frames().is_empty(),
        "no cache outlived it"
    );
}

#[test]
fn silent_viewer_is_disconnected() {
    let mut net = Net::new(config());
    let tracks = Tracks::new(CAM, Some(Codec::H264), None);
    let a = net.add_client(chromium_like(), false, tracks).unwrap();
    net.connect_all();
    let viewer = net.clients[a].viewer.unwrap();
    // The browser tab is closed without a DELETE: nothing comes back any more.
    let gone = net.clients.remove(a);
    drop(gone);
    let start = net.now;
    while !net.events.contains(&EgressEvent::Disconnected(viewer)) {
        assert!(
            net.now - start < Duration::from_secs(60),
            "no Disconnected after 60 s"
        );
        net.advance(Duration::from_millis(500));
    }
    assert_eq!(net.egress.stats().viewers, 0);
    // str0m drops an ICE-lite pair that gets no consent check for about 15 s.
    assert!(net.now - start <= Duration::from_secs(30));
}

#[test]
fn datagrams_of_no_viewer_are_not_routed() {
    let mut net = Net::new(config());
    let tracks = Tracks::new(CAM, Some(Codec::H264), None);
    net.add_client(chromium_like(), false, tracks).unwrap();
    net.connect_all();
    let stranger = "127.0.0.9:5555".parse().unwrap();
    let server = webrtc_common::SERVER.parse().unwrap();
    // An RTCP receiver report from an address no viewer uses.
    let rr = [0x80, 0xc9, 0, 1, 0, 0, 0, 1];
    // A STUN binding request naming an ICE username fragment no viewer has.
    let mut stun = vec![0, 1, 0, 12, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[9; 12]);
    stun.extend_from_slice(&[0, 6, 0, 8]);
    stun.extend_from_slice(b"nobody:x");
    for d in [&rr[..], &stun, &[][..], &[0x16, 0xfe, 0xfd]] {
        assert!(!net.egress.handle_receive(net.now, stranger, server, d));
    }
    assert_eq!(net.egress.stats().unrouted, 4);
    assert_eq!(net.egress.stats().connected, 1);
}
