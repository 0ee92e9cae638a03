//! SIP over TCP across a real 1500-byte link: the simulator and sipp run in a network
//! namespace joined to the gateway by a veth pair (MTU 1500, no segmentation offloads), so
//! every catalog page larger than one segment reaches the gateway in several reads, as it
//! does on a county network. On loopback (64 KiB MTU) none of this happens.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Messages the gateway reassembled from several reads, and TCP framing errors.
fn segmentation(gw: &Gateway) -> (f64, f64) {
    (
        counter(gw, "sip_tcp_split_messages_total", ""),
        counter(gw, "sip_parse_errors_total", "transport=\"tcp\""),
    )
}

#[test]
fn simulated_nvrs_over_tcp_across_a_1500_byte_link() {
    let ns = Netns::create(1);
    let data = TempDir::new("netns-sim");
    let gw = Gateway::start_on(data.path(), &format!("{}:0", ns.host_ip), &[]);
    assert_eq!(gw.sip.ip(), ns.host_ip);
    // 3 NVRs of 150 channels, 50 per page: pages of about 14 KB, ten segments each.
    let sim = ns
        .command(&example_bin("gb28181-sim"))
        .args([
            "--server",
            &gw.sip.to_string(),
            "--local-ip",
            &ns.ns_ip.to_string(),
            "--password",
            PASSWORD,
            "--transport",
            "tcp",
            "--kind",
            "nvr",
            "--devices",
            "3",
            "--channels",
            "150",
            "--page-size",
            "50",
            "--rate",
            "0",
            "--keepalive",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gb28181-sim in the namespace");
    let _sim = Kill(sim);
    let ready = wait_for(Duration::from_secs(60), || {
        let (_, list) = get(&gw.url("/api/v1/devices"));
        let list = list.as_array().cloned().unwrap_or_default();
        let ok = list.len() == 3
            && list.iter().all(|d| {
                d["online"] == true
                    && d["transport"] == "tcp"
                    && d["channel_count"] == 150
                    && d["catalog_complete"] == true
            });
        ok.then_some(list)
    });
    let (split, errors) = segmentation(&gw);
    let list = ready.unwrap_or_else(|| {
        let (_, list) = get(&gw.url("/api/v1/devices"));
        panic!("3 NVRs over TCP with 150 channels each; got {list} (split messages {split}, framing errors {errors})")
    });
    for d in &list {
        assert!(
            d["remote_addr"]
                .as_str()
                .unwrap()
                .starts_with(&ns.ns_ip.to_string()),
            "{d}"
        );
    }
    assert!(
        split >= 9.0,
        "catalog pages arrived in several reads: {split}"
    );
    assert_eq!(errors, 0.0);
    // Keepalives keep flowing over the same connections.
    let id = list[0]["device_id"].as_str().unwrap().to_owned();
    let first = list[0]["last_keepalive_at"].as_str().unwrap().to_owned();
    let moved = wait_for(Duration::from_secs(10), || {
        let (_, d) = get(&gw.url(&format!("/api/v1/devices/{id}")));
        (d["last_keepalive_at"].as_str() != Some(first.as_str())).then_some(())
    });
    assert!(moved.is_some(), "keepalives over TCP");
}

/// The sipp NVR: register over TCP, one keepalive, then report its catalog on its own (as
/// NVRs do after a change): three GB2312 pages of 40 items, about 14 KB each, all on the
/// registration's connection. (sipp reads scenario files of at most 64 KB, and one sipp
/// process cannot both register and answer a query of another Call-ID.)
fn sipp_nvr_scenario(device: &str) -> Vec<u8> {
    let item = |k: usize| {
        format!(
            "<Item>\n<DeviceID>3402000000131{k:07}</DeviceID>\n<Name>城关镇第{k}村村委会门口治安监控（东向西）</Name>\n<Manufacturer>Hikvision</Manufacturer>\n<Model>IP Camera</Model>\n<Owner>Owner</Owner>\n<CivilCode>3402000000</CivilCode>\n<Address>某某县城关镇第{k}村村委会大门东侧电线杆</Address>\n<Parental>0</Parental>\n<ParentID>{device}</ParentID>\n<SafetyWay>0</SafetyWay>\n<RegisterWay>1</RegisterWay>\n<Secrecy>0</Secrecy>\n<Status>ON</Status>\n</Item>\n"
        )
    };
    let page = |from: usize| {
        let items: String = (from..from + 40).map(item).collect();
        format!(
            "<?xml version=\"1.0\" encoding=\"GB2312\"?>\n<Response>\n<CmdType>Catalog</CmdType>\n<SN>77</SN>\n<DeviceID>{device}</DeviceID>\n<SumNum>120</SumNum>\n<DeviceList Num=\"40\">\n{items}</DeviceList>\n</Response>"
        )
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let fill = |t: &str| {
        t.replace("@DEVICE_ID@", device)
            .replace("@PLATFORM_ID@", PLATFORM_ID)
            .replace("@DOMAIN@", DOMAIN)
            .replace("@PASSWORD@", PASSWORD)
            .replace("@EXPECT@", "200")
    };
    let pages: String = (0..3)
        .map(|p| {
            fill(&read("catalog_page.fragment"))
                .replace("@CSEQ@", &(20 + p).to_string())
                .replace("@BODY@", &page(p * 40))
        })
        .collect();
    let keepalive = fill(&read("keepalive.fragment"));
    let xml = fill(&read("register.xml")).replace("@KEEPALIVE@", &format!("{keepalive}\n{pages}"));
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&xml);
    assert!(!unmappable);
    assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
    bytes.into_owned()
}

#[test]
fn sipp_over_tcp_across_a_1500_byte_link() {
    let ns = Netns::create(2);
    let data = TempDir::new("netns-sipp");
    let config = data.path().join("gw.toml");
    std::fs::write(&config, "[sip]\nauto_query = false\n").unwrap();
    let gw = Gateway::start_on(
        data.path(),
        &format!("{}:0", ns.host_ip),
        &["--config", config.to_str().unwrap()],
    );
    let device = "34020000001180000009";
    let scenario = data.path().join("nvr_tcp.xml");
    std::fs::write(&scenario, sipp_nvr_scenario(device)).unwrap();
    let sipp = ns
        .command(&sipp())
        .current_dir(data.path())
        .args([
            &gw.sip.to_string(),
            "-sf",
            scenario.to_str().unwrap(),
            "-m",
            "1",
            "-i",
            &ns.ns_ip.to_string(),
            "-p",
            "25060",
            "-t",
            "t1",
            "-timeout",
            "60",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .stdout(std::fs::File::create(data.path().join("sipp.out")).unwrap())
        .stderr(std::fs::File::create(data.path().join("sipp.err")).unwrap())
        .spawn()
        .expect("start sipp in the namespace");
    let mut sipp = Kill(sipp);
    let sipp_output = || {
        let read = |f: &str| std::fs::read_to_string(data.path().join(f)).unwrap_or_default();
        format!("{}\n{}", read("sipp.out"), read("sipp.err"))
    };
    let status_sipp = sipp.0.wait().unwrap();
    assert!(status_sipp.success(), "sipp: {}", sipp_output());
    let (_, dev) = get(&gw.url(&format!("/api/v1/devices/{device}")));
    assert_eq!(dev["transport"], "tcp", "{dev}");
    assert!(dev["last_keepalive_at"].is_string(), "{dev}");
    let (status, catalog) = get(&gw.url(&format!("/api/v1/devices/{device}/catalog")));
    assert_eq!(status, 200, "{catalog}");
    assert_eq!(catalog["item_count"], 120, "{catalog}");
    assert_eq!(catalog["complete"], true);
    let (_, channels) = get(&gw.url(&format!("/api/v1/devices/{device}/channels")));
    assert_eq!(
        channels[119]["name"],
        "城关镇第119村村委会门口治安监控（东向西）"
    );
    let (split, errors) = segmentation(&gw);
    assert!(split >= 3.0, "every page arrived in several reads: {split}");
    assert_eq!(errors, 0.0);
}
