//! The live core on simulated time: every path a viewer or a device can take.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use gb28181::platform::{CallEndReason, SessionId};
use gb28181::sdp::MediaTransport;
use media::Codec;
use media::webrtc::{EgressError, StreamId, ViewerId, ViewerLocation};
use proptest::prelude::*;

use super::*;

const DEVICE: &str = "34020000001180000001";
const LINGER: Duration = Duration::from_secs(10);

fn cfg() -> LiveConfig {
    LiveConfig {
        platform_id: "34020000002000000001".into(),
        announce_ip: "10.0.0.5".parse().unwrap(),
        invite_timeout: Duration::from_secs(10),
        no_media_timeout: Duration::from_secs(10),
        stall_timeout: Duration::from_secs(8),
        linger: LINGER,
        keyframe_interval: Duration::from_secs(2),
        trust_sdp_address: false,
        keyframe_after_loss: true,
        max_ended: 64,
    }
}

fn core() -> LiveCore {
    LiveCore::new(
        cfg(),
        PortPool::new(30000, 30099),
        SsrcPool::new("3402000000"),
    )
}

fn channel(k: usize) -> String {
    format!("3402000000131{k:07}")
}

fn device_ip() -> Option<IpAddr> {
    Some("10.0.0.9".parse().unwrap())
}

fn answer_sdp(port: u16) -> Vec<u8> {
    format!(
        "v=0\r\no=34020000001310000001 0 0 IN IP4 10.0.0.9\r\ns=Play\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=video {port} RTP/AVP 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\ny=0200000001\r\n"
    )
    .into_bytes()
}

fn drain(c: &mut LiveCore) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

/// A join on channel `k`.
fn join(c: &mut LiveCore, now: Instant, k: usize) -> JoinId {
    c.join(
        now,
        SystemTime::UNIX_EPOCH,
        JoinRequest {
            device_id: DEVICE.into(),
            channel_id: channel(k),
            transport: MediaTransport::Udp,
            device_ip: device_ip(),
            offer: "offer".into(),
            location: ViewerLocation::Elsewhere,
        },
    )
}

/// Drive a fresh stream on channel 0 to playing with one viewer; returns the stream, the
/// session and the viewer.
fn playing(c: &mut LiveCore, now: Instant) -> (StreamId, SessionId, ViewerId) {
    let j = join(c, now, 0);
    let actions = drain(c);
    let Some(Action::Start { stream, port, .. }) = actions.first().cloned() else {
        panic!("{actions:?}");
    };
    let session = SessionId(stream.0 + 100);
    c.started(now, stream, Ok(session));
    c.call_answered(now, session, &answer_sdp(port));
    let actions = drain(c);
    assert!(
        matches!(&actions[..], [Action::StartIngest { stream: s, allowed, .. }] if *s == stream && *allowed == vec![device_ip().unwrap()]),
        "{actions:?}"
    );
    c.first_video(now, stream, Codec::H264, Some(Codec::G711A));
    let actions = drain(c);
    assert!(
        matches!(&actions[..], [Action::AddViewer { join, .. }] if *join == j),
        "{actions:?}"
    );
    let viewer = ViewerId(stream.0 * 1000);
    c.viewer_added(now, j, Ok((viewer, "answer".into())));
    let actions = drain(c);
    assert!(
        matches!(&actions[..], [Action::JoinResult { join, result: Ok(w) }] if *join == j && w.viewer == viewer),
        "{actions:?}"
    );
    (stream, session, viewer)
}

/// The stream's end: BYE (when a session), ingest stopped, egress told.
fn assert_ended(actions: &[Action], stream: StreamId, session: Option<SessionId>) {
    if let Some(session) = session {
        assert!(actions.contains(&Action::Hangup { session }), "{actions:?}");
    }
    assert!(
        actions.contains(&Action::StopIngest { stream }),
        "{actions:?}"
    );
    assert!(
        actions.contains(&Action::EndEgress { stream }),
        "{actions:?}"
    );
}

#[test]
fn viewers_share_one_stream_and_one_invite() {
    let t0 = Instant::now();
    let mut c = core();
    let (stream, _, _) = playing(&mut c, t0);
    let j2 = join(&mut c, t0, 0);
    let actions = drain(&mut c);
    assert!(
        matches!(&actions[..], [Action::AddViewer { join, tracks, .. }] if *join == j2 && tracks.stream == stream),
        "a second viewer is offered at once, no new INVITE: {actions:?}"
    );
    c.viewer_added(t0, j2, Ok((ViewerId(2), "a2".into())));
    drain(&mut c);
    assert_eq!(c.viewer_count(), 2);
    assert_eq!(c.streams().len(), 1);
    assert_eq!(c.stats().streams_started, 1);
}

#[test]
fn a_join_cancelled_before_media_leaves_nothing_behind() {
    let t0 = Instant::now();
    let mut c = core();
    let j = join(&mut c, t0, 0);
    let Some(Action::Start { stream, .. }) = drain(&mut c).first().cloned() else {
        panic!();
    };
    let session = SessionId(1);
    c.started(t0, stream, Ok(session));
    // The browser goes away during the WHEP POST.
    c.cancel_join(t0 + Duration::from_secs(1), j);
    assert!(drain(&mut c).is_empty(), "no result for a cancelled join");
    // The stream lingers (a quick retry would reuse it), then ends with a CANCEL/BYE: at
    // the latest when the linger is over (here the INVITE timeout comes first).
    let mut now = t0;
    while let Some(t) = c.poll_timeout() {
        now = t;
        c.handle_timeout(now);
    }
    assert!(now <= t0 + Duration::from_secs(1) + LINGER);
    let actions = drain(&mut c);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::JoinResult { .. })),
        "{actions:?}"
    );
    assert_ended(&actions, stream, Some(session));
    assert!(c.streams().is_empty());
    assert_eq!(c.ports_in_use(), 0);
    assert_eq!(c.stats().joins_cancelled, 1);
}

#[test]
fn a_join_cancelled_while_the_egress_answers_takes_its_viewer_out() {
    let t0 = Instant::now();
    let mut c = core();
    let (stream, session, viewer) = playing(&mut c, t0);
    let j2 = join(&mut c, t0, 0);
    drain(&mut c);
    c.cancel_join(t0, j2);
    c.viewer_added(t0, j2, Ok((ViewerId(77), "a".into())));
    let actions = drain(&mut c);
    assert_eq!(
        actions,
        [Action::RemoveViewer {
            viewer: ViewerId(77)
        }]
    );
    assert_eq!(c.viewer_count(), 1);
    // The first viewer leaves: linger, then the end.
    c.leave(t0, viewer, "left");
    assert_eq!(drain(&mut c), [Action::RemoveViewer { viewer }]);
    c.handle_timeout(t0 + LINGER);
    assert_ended(&drain(&mut c), stream, Some(session));
}

#[test]
fn a_stream_lingers_after_its_last_viewer_and_a_new_viewer_keeps_it() {
    let t0 = Instant::now();
    let mut c = core();
    let (stream, session, viewer) = playing(&mut c, t0);
    c.leave(t0, viewer, "left");
    drain(&mut c);
    // Media still flows (the stall deadline is 8 s).
    c.ingest_status(
        t0 + Duration::from_secs(5),
        stream,
        10,
        Diagnosis::default(),
    );
    c.handle_timeout(t0 + LINGER - Duration::from_millis(1));
    let actions = drain(&mut c);
    assert!(actions.is_empty(), "{actions:?}");
    let j = join(&mut c, t0 + Duration::from_secs(5), 0);
    drain(&mut c);
    c.viewer_added(
        t0 + Duration::from_secs(5),
        j,
        Ok((ViewerId(9), "a".into())),
    );
    drain(&mut c);
    // Media keeps the stall deadline away.
    for s in 1..30u64 {
        c.ingest_status(
            t0 + Duration::from_secs(s),
            stream,
            s * 50,
            Diagnosis::default(),
        );
        c.handle_timeout(t0 + Duration::from_secs(s));
    }
    let actions = drain(&mut c);
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(c.streams().len(), 1);
    let _ = session;
}

#[test]
fn an_unanswered_invite_fails_the_joins_and_is_cancelled() {
    let t0 = Instant::now();
    let mut c = core();
    let j = join(&mut c, t0, 0);
    let Some(Action::Start { stream, .. }) = drain(&mut c).first().cloned() else {
        panic!();
    };
    c.started(t0, stream, Ok(SessionId(5)));
    let j2 = join(&mut c, t0 + Duration::from_secs(3), 0);
    c.handle_timeout(t0 + Duration::from_secs(10));
    let actions = drain(&mut c);
    for jj in [j, j2] {
        assert!(actions.iter().any(|a| matches!(a, Action::JoinResult { join, result: Err(LiveError::InviteTimeout(_)) } if *join == jj)), "{actions:?}");
    }
    assert_ended(&actions, stream, Some(SessionId(5)));
}

#[test]
fn no_media_after_the_answer_fails_with_the_diagnosis() {
    let t0 = Instant::now();
    let mut c = core();
    let j = join(&mut c, t0, 0);
    let Some(Action::Start { stream, port, .. }) = drain(&mut c).first().cloned() else {
        panic!();
    };
    c.started(t0, stream, Ok(SessionId(5)));
    c.call_answered(t0 + Duration::from_secs(1), SessionId(5), &answer_sdp(port));
    drain(&mut c);
    let diag = Diagnosis {
        packets: 40,
        wrong_ssrc: 40,
        last_wrong_ssrc: Some(12345),
        last_source: Some("10.0.0.9:5000".parse().unwrap()),
        ..Diagnosis::default()
    };
    c.ingest_status(t0 + Duration::from_secs(5), stream, 0, diag);
    c.handle_timeout(t0 + Duration::from_secs(11));
    let actions = drain(&mut c);
    let err = actions
        .iter()
        .find_map(|a| match a {
            Action::JoinResult {
                join,
                result: Err(e),
            } if *join == j => Some(e.to_string()),
            _ => None,
        })
        .expect("the join is told");
    assert!(err.contains("SSRC mismatch: expected 0200000001"), "{err}");
    assert_ended(&actions, stream, Some(SessionId(5)));
}

#[test]
fn media_that_stops_while_playing_ends_the_stream_for_every_viewer() {
    let t0 = Instant::now();
    let mut c = core();
    let (stream, session, viewer) = playing(&mut c, t0);
    c.ingest_status(
        t0 + Duration::from_secs(1),
        stream,
        100,
        Diagnosis::default(),
    );
    c.ingest_status(
        t0 + Duration::from_secs(2),
        stream,
        100,
        Diagnosis::default(),
    );
    c.handle_timeout(t0 + Duration::from_secs(8));
    assert!(
        drain(&mut c).is_empty(),
        "8 s after the last packet is not yet due"
    );
    c.handle_timeout(t0 + Duration::from_secs(9));
    assert_ended(&drain(&mut c), stream, Some(session));
    let v = c.viewer(viewer).unwrap();
    assert_eq!(v.state, "ended");
    assert!(
        v.ended_reason
            .unwrap()
            .contains("the device stopped sending"),
        "the viewer is told why"
    );
    assert_eq!(c.stats().streams_stalled, 1);
}

#[test]
fn a_device_going_offline_ends_its_streams_with_the_reason() {
    let t0 = Instant::now();
    let mut c = core();
    let (stream, session, viewer) = playing(&mut c, t0);
    c.call_ended(t0, session, CallEndReason::DeviceGone);
    let actions = drain(&mut c);
    assert_ended(&actions, stream, None);
    assert!(
        !actions.contains(&Action::Hangup { session }),
        "no BYE to a device that is gone"
    );
    assert!(
        c.viewer(viewer)
            .unwrap()
            .ended_reason
            .unwrap()
            .contains("the device went offline")
    );
}

#[test]
fn a_refused_offer_and_a_busy_port_are_handled() {
    let t0 = Instant::now();
    let mut c = core();
    let (stream, _, _) = playing(&mut c, t0);
    let j = join(&mut c, t0, 0);
    drain(&mut c);
    c.viewer_added(
        t0,
        j,
        Err(LiveError::Egress(
            EgressError::NoCommonCodec {
                kind: "video",
                stream: Codec::H265,
                offered: vec!["VP8".into()],
            }
            .into(),
        )),
    );
    assert!(matches!(
        &drain(&mut c)[..],
        [Action::JoinResult {
            result: Err(LiveError::Egress(_)),
            ..
        }]
    ));
    assert_eq!(c.streams()[0].stream_id, stream.0);
    // Another channel: its port is held by another process, the next one is tried.
    let j2 = join(&mut c, t0, 1);
    let Some(Action::Start {
        stream: s2, port, ..
    }) = drain(&mut c).first().cloned()
    else {
        panic!();
    };
    c.port_unavailable(t0, s2, "address in use");
    let Some(Action::Start {
        port: again,
        invite,
        ..
    }) = drain(&mut c).first().cloned()
    else {
        panic!();
    };
    assert_ne!(again, port);
    assert!(
        invite.sdp.contains(&format!("m=video {again} ")),
        "{}",
        invite.sdp
    );
    for _ in 0..20 {
        c.port_unavailable(t0, s2, "address in use");
    }
    let actions = drain(&mut c);
    assert!(actions.iter().any(|a| matches!(a, Action::JoinResult { join, result: Err(LiveError::Socket(_)) } if *join == j2)));
}

#[test]
fn key_frame_requests_are_rate_limited() {
    let t0 = Instant::now();
    let mut c = core();
    let (stream, _, viewer) = playing(&mut c, t0);
    c.keyframe_wanted(t0, viewer);
    c.keyframe_for(t0 + Duration::from_secs(1), stream);
    c.keyframe_wanted(t0 + Duration::from_secs(2), viewer);
    let n = drain(&mut c)
        .iter()
        .filter(|a| matches!(a, Action::RequestKeyframe { .. }))
        .count();
    assert_eq!(n, 2);
}

#[test]
fn a_loss_asks_for_a_key_frame_unless_configured_not_to() {
    let t0 = Instant::now();
    for on in [true, false] {
        let mut c = LiveCore::new(
            LiveConfig {
                keyframe_after_loss: on,
                ..cfg()
            },
            PortPool::new(30_000, 30_099),
            SsrcPool::new("3402000000"),
        );
        let (stream, _, _) = playing(&mut c, t0);
        drain(&mut c);
        // Asks 300 ms apart: the second falls inside the limit; 600 ms later passes it.
        let t = t0 + Duration::from_secs(5);
        c.keyframe_after_loss(t, stream);
        c.keyframe_after_loss(t + Duration::from_millis(300), stream);
        c.keyframe_after_loss(t + Duration::from_millis(900), stream);
        let asked: Vec<_> = drain(&mut c)
            .into_iter()
            .filter(|a| matches!(a, Action::RequestKeyframe { .. }))
            .collect();
        assert_eq!(asked.len(), 2 * usize::from(on), "on: {on}");
    }
}

#[test]
fn ended_viewers_are_remembered_within_a_bound() {
    let t0 = Instant::now();
    let mut c = core();
    let (stream, _, _) = playing(&mut c, t0);
    for k in 0..200u64 {
        let j = join(&mut c, t0, 0);
        drain(&mut c);
        c.viewer_added(t0, j, Ok((ViewerId(10_000 + k), "a".into())));
        c.leave(t0, ViewerId(10_000 + k), "left");
        drain(&mut c);
    }
    assert_eq!(c.ended_count(), 64);
    assert!(c.viewer(ViewerId(10_199)).is_some());
    assert!(c.viewer(ViewerId(10_000)).is_none());
    let _ = stream;
}

#[test]
fn shutdown_hangs_up_every_call() {
    let t0 = Instant::now();
    let mut c = core();
    let (stream, session, _) = playing(&mut c, t0);
    let j = join(&mut c, t0, 3);
    let Some(Action::Start { stream: s2, .. }) = drain(&mut c).first().cloned() else {
        panic!();
    };
    c.started(t0, s2, Ok(SessionId(99)));
    c.shutdown(t0);
    let actions = drain(&mut c);
    assert_ended(&actions, stream, Some(session));
    assert_ended(&actions, s2, Some(SessionId(99)));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::JoinResult { join, result: Err(_) } if *join == j))
    );
    assert!(c.streams().is_empty());
}

#[test]
fn a_call_started_for_a_stream_that_already_ended_is_hung_up() {
    let t0 = Instant::now();
    let mut c = core();
    let j = join(&mut c, t0, 0);
    let Some(Action::Start { stream, .. }) = drain(&mut c).first().cloned() else {
        panic!();
    };
    c.cancel_join(t0, j);
    c.handle_timeout(t0 + LINGER);
    drain(&mut c);
    c.started(t0 + LINGER, stream, Ok(SessionId(42)));
    assert_eq!(
        drain(&mut c),
        [Action::Hangup {
            session: SessionId(42)
        }]
    );
}

/// What a viewer or the world does, for the property test.
#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Cancel(usize),
    Leave(usize),
    Answer(usize),
    Video(usize),
    EgressAnswers(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(Op::Join),
        (0..8usize).prop_map(Op::Cancel),
        (0..8usize).prop_map(Op::Leave),
        (0..3usize).prop_map(Op::Answer),
        (0..3usize).prop_map(Op::Video),
        (0..8usize).prop_map(Op::EgressAnswers),
        (0..15_000u64).prop_map(Op::Advance),
    ]
}

proptest! {
    /// However viewers join, cancel and leave and however the device and the egress answer,
    /// no stream outlives the moment it was left without viewers and joins by more than the
    /// linger, and every join gets at most one result.
    #[test]
    fn no_stream_outlives_its_last_viewer_by_more_than_the_linger(ops in prop::collection::vec(op(), 1..80)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut c = core();
        let mut open_joins: Vec<JoinId> = Vec::new();
        let mut offered: Vec<JoinId> = Vec::new();
        let mut viewers: Vec<ViewerId> = Vec::new();
        let mut sessions: Vec<(StreamId, SessionId, u16)> = Vec::new();
        let mut results: std::collections::HashMap<JoinId, u32> = Default::default();
        let mut next_viewer = 1u64;
        // When each stream was last seen without viewers or joins.
        let mut empty_since: std::collections::HashMap<u64, Instant> = Default::default();
        for op in ops {
            match op {
                Op::Join(k) => open_joins.push(join(&mut c, now, k)),
                Op::Cancel(i) => {
                    if !open_joins.is_empty() {
                        // An offered join stays offered: the egress always answers.
                        let j = open_joins.remove(i % open_joins.len());
                        c.cancel_join(now, j);
                    }
                }
                Op::Leave(i) => {
                    if !viewers.is_empty() {
                        let v = viewers.remove(i % viewers.len());
                        c.leave(now, v, "left");
                    }
                }
                Op::Answer(i) => {
                    if !sessions.is_empty() {
                        let (_, session, port) = sessions[i % sessions.len()];
                        c.call_answered(now, session, &answer_sdp(port));
                    }
                }
                Op::Video(i) => {
                    if !sessions.is_empty() {
                        let (stream, _, _) = sessions[i % sessions.len()];
                        c.first_video(now, stream, Codec::H264, None);
                        c.ingest_status(now, stream, now.duration_since(t0).as_millis() as u64 + 1, Diagnosis::default());
                    }
                }
                Op::EgressAnswers(i) => {
                    if !offered.is_empty() {
                        let j = offered.remove(i % offered.len());
                        let v = ViewerId(next_viewer);
                        next_viewer += 1;
                        c.viewer_added(now, j, Ok((v, "a".into())));
                    }
                }
                Op::Advance(ms) => {
                    let until = now + Duration::from_millis(ms);
                    while let Some(t) = c.poll_timeout().filter(|t| *t <= until) {
                        now = now.max(t);
                        c.handle_timeout(now);
                        prop_assert!(c.poll_timeout().is_none_or(|n| n > now), "timers move on");
                    }
                    now = until;
                }
            }
            while let Some(a) = c.poll_action() {
                match a {
                    Action::Start { stream, port, .. } => {
                        let session = SessionId(stream.0 + 1000);
                        sessions.push((stream, session, port));
                        c.started(now, stream, Ok(session));
                    }
                    Action::AddViewer { join, .. } => offered.push(join),
                    Action::JoinResult { join, result } => {
                        *results.entry(join).or_default() += 1;
                        open_joins.retain(|j| *j != join);
                        if let Ok(w) = result {
                            viewers.push(w.viewer);
                        }
                    }
                    Action::StopIngest { stream } => {
                        sessions.retain(|(s, _, _)| *s != stream);
                    }
                    Action::RemoveViewer { viewer } => viewers.retain(|v| *v != viewer),
                    _ => {}
                }
            }
            // The property, checked after every step.
            for s in c.streams() {
                if s.viewers == 0 && s.joining == 0 {
                    let since = *empty_since.entry(s.stream_id).or_insert(now);
                    prop_assert!(now <= since + LINGER, "stream {} empty since {:?} still there at {:?}", s.stream_id, since - t0, now - t0);
                } else {
                    empty_since.remove(&s.stream_id);
                }
            }
        }
        for (j, n) in results {
            prop_assert!(n <= 1, "join {j:?} got {n} results");
        }
    }
}
