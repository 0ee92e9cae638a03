//! End to end with `gb28181-sim`: 100 NVRs × 8 channels register and list online; the
//! gateway is killed and restarted and still lists them; devices over TCP are reached over
//! their connection.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn devices(gw: &Gateway) -> Vec<Value> {
    let (status, body) = get(&gw.url("/api/v1/devices"));
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

#[test]
fn hundred_nvrs_register_list_online_and_survive_a_restart() {
    let data = TempDir::new("sim100");
    let gw = Gateway::start(data.path(), &[]);
    let _sim = Sim::start(
        &gw,
        &[
            "--devices",
            "100",
            "--kind",
            "nvr",
            "--channels",
            "8",
            "--rate",
            "0",
            "--page-size",
            "3",
        ],
    );
    let listed = wait_for(Duration::from_secs(60), || {
        let d = devices(&gw);
        let ready = d.len() == 100
            && d.iter().all(|x| x["online"] == true && x["channel_count"] == 8);
        ready.then_some(d)
    })
    .unwrap_or_else(|| {
        let d = devices(&gw);
        let online = d.iter().filter(|x| x["online"] == true).count();
        let full = d.iter().filter(|x| x["channel_count"] == 8).count();
        panic!("expected 100 online devices with 8 channels; got {} listed, {online} online, {full} with 8 channels", d.len())
    });
    let first = &listed[0];
    assert_eq!(
        first["model"], "SIM-NVR",
        "DeviceInfo was queried automatically"
    );
    assert_eq!(first["manufacturer"], "gb28181-rs");
    assert_eq!(first["transport"], "udp");
    let id = first["device_id"].as_str().unwrap().to_owned();
    let (_, channels) = get(&gw.url(&format!("/api/v1/devices/{id}/channels")));
    assert_eq!(channels.as_array().unwrap().len(), 8);
    assert_eq!(channels[0]["name"], "大门口摄像机1");

    // An unclean stop, then a restart on the same data: everything is listed at once,
    // offline until the devices show up again. (A read from the store answers after the
    // writes queued before it have committed: nothing the API showed is in flight.)
    let (status, _) = get(&gw.url(&format!("/api/v1/devices/{id}/events")));
    assert_eq!(status, 200);
    drop(_sim);
    gw.kill();
    let gw = Gateway::start(data.path(), &[]);
    let d = devices(&gw);
    assert_eq!(d.len(), 100);
    assert!(d.iter().all(|x| x["online"] == false));
    assert!(d.iter().all(|x| x["channel_count"] == 8));
    let (_, channels) = get(&gw.url(&format!("/api/v1/devices/{id}/channels")));
    assert_eq!(channels[7]["name"], "大门口摄像机8");
    let (_, history) = get(&gw.url(&format!("/api/v1/devices/{id}/events")));
    assert_eq!(history[0]["event"], "offline");
    assert_eq!(history[0]["reason"], "gateway_restart");
    assert_eq!(history[1]["event"], "online");
}

#[test]
fn devices_over_tcp_are_queried_over_their_connection() {
    let data = TempDir::new("simtcp");
    let gw = Gateway::start(data.path(), &[]);
    let _sim = Sim::start(
        &gw,
        &[
            "--devices",
            "5",
            "--kind",
            "nvr",
            "--channels",
            "4",
            "--rate",
            "0",
            "--transport",
            "tcp",
            "--first",
            "500",
        ],
    );
    let d = wait_for(Duration::from_secs(30), || {
        let d = devices(&gw);
        (d.len() == 5
            && d.iter()
                .all(|x| x["online"] == true && x["channel_count"] == 4))
        .then_some(d)
    })
    .expect("5 TCP devices online with their catalogs");
    assert!(d.iter().all(|x| x["transport"] == "tcp"));
    // On-demand queries travel over the same connections.
    let id = d[0]["device_id"].as_str().unwrap();
    let (status, info) = get(&gw.url(&format!("/api/v1/devices/{id}/info")));
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["model"], "SIM-NVR");
    let (status, st) = get(&gw.url(&format!("/api/v1/devices/{id}/status")));
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["online"], "ONLINE");
    // Losing the connection takes the device offline.
    drop(_sim);
    assert!(
        wait_for(Duration::from_secs(10), || {
            devices(&gw)
                .iter()
                .all(|x| x["online"] == false)
                .then_some(())
        })
        .is_some(),
        "devices go offline when their TCP connections close"
    );
}
