//! End to end with real sipp processes as devices: digest registration, a wrong password,
//! keepalives, and a paged GB2312 Catalog answer that shows up in the API in UTF-8.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

const DEVICE_ID: &str = "34020000001180000001";

fn template(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn fill(text: &str, vars: &[(&str, &str)]) -> String {
    let mut s = text.to_owned();
    for (k, v) in vars {
        s = s.replace(&format!("@{k}@"), v);
    }
    s
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_sipp(dir: &Path, scenario: &str, bytes: &[u8], gw_sip: SocketAddr, port: u16) -> Output {
    let path = dir.join(scenario);
    std::fs::write(&path, bytes).unwrap();
    Command::new(sipp())
        .current_dir(dir)
        .args([
            &gw_sip.to_string(),
            "-sf",
            path.to_str().unwrap(),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "u1",
            "-timeout",
            "30",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
            "-trace_msg",
        ])
        .output()
        .expect("run sipp")
}

fn explain(out: &Output, dir: &Path) -> String {
    let mut s = format!(
        "sipp exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("_errors.log") || name.ends_with("_messages.log") {
                s += &format!(
                    "\n--- {name}\n{}",
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default())
                );
            }
        }
    }
    s
}

fn register_scenario(password: &str, expect: &str, keepalive: bool) -> String {
    let vars = [
        ("DEVICE_ID", DEVICE_ID),
        ("PLATFORM_ID", PLATFORM_ID),
        ("DOMAIN", DOMAIN),
        ("PASSWORD", password),
        ("EXPECT", expect),
    ];
    let ka = if keepalive {
        fill(&template("keepalive.fragment"), &vars)
    } else {
        String::new()
    };
    fill(&template("register.xml"), &vars).replace("@KEEPALIVE@", &ka)
}

/// Three catalog items over two pages, names in Chinese, encoded as GB2312.
fn catalog_scenario() -> Vec<u8> {
    let vars = [
        ("DEVICE_ID", DEVICE_ID),
        ("PLATFORM_ID", PLATFORM_ID),
        ("DOMAIN", DOMAIN),
    ];
    let item = |id: &str, name: &str| {
        format!(
            "<Item>\n<DeviceID>{id}</DeviceID>\n<Name>{name}</Name>\n<Manufacturer>Hikvision</Manufacturer>\n<Model>IP Camera</Model>\n<Owner>Owner</Owner>\n<CivilCode>3402000000</CivilCode>\n<Address>一号楼</Address>\n<Parental>0</Parental>\n<ParentID>{DEVICE_ID}</ParentID>\n<SafetyWay>0</SafetyWay>\n<RegisterWay>1</RegisterWay>\n<Secrecy>0</Secrecy>\n<Status>ON</Status>\n</Item>\n"
        )
    };
    let page = |items: &str, num: usize| {
        format!(
            "<?xml version=\"1.0\" encoding=\"GB2312\"?>\n<Response>\n<CmdType>Catalog</CmdType>\n<SN>[$sn]</SN>\n<DeviceID>{DEVICE_ID}</DeviceID>\n<SumNum>3</SumNum>\n<DeviceList Num=\"{num}\">\n{items}</DeviceList>\n</Response>"
        )
    };
    let p1 = page(
        &(item("34020000001320000001", "大门口摄像机") + &item("34020000001320000002", "停车场东")),
        2,
    );
    let p2 = page(&item("34020000001320000003", "仓库（北）"), 1);
    let frag = template("catalog_page.fragment");
    let pages = [
        fill(&frag, &vars)
            .replace("@CSEQ@", "20")
            .replace("@BODY@", &p1),
        fill(&frag, &vars)
            .replace("@CSEQ@", "21")
            .replace("@BODY@", &p2),
    ]
    .join("\n");
    let xml = fill(&template("catalog_uas.xml"), &vars).replace("@PAGES@", &pages);
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&xml);
    assert!(!unmappable);
    bytes.into_owned()
}

#[test]
fn sipp_device_registers_keeps_alive_and_answers_a_paged_gb2312_catalog() {
    let data = TempDir::new("sipp");
    let config = data.path().join("gw.toml");
    // The catalog is queried through the API here, so the automatic query is off.
    std::fs::write(&config, "[sip]\nauto_query = false\n").unwrap();
    let gw = Gateway::start(data.path(), &["--config", config.to_str().unwrap()]);
    let port = free_udp_port();

    let out = run_sipp(
        data.path(),
        "register.xml",
        register_scenario(PASSWORD, "200", true).as_bytes(),
        gw.sip,
        port,
    );
    assert!(out.status.success(), "{}", explain(&out, data.path()));

    let (status, dev) = get(&gw.url(&format!("/api/v1/devices/{DEVICE_ID}")));
    assert_eq!(status, 200, "{dev}");
    assert_eq!(dev["online"], true, "{dev}");
    assert_eq!(dev["transport"], "udp");
    assert_eq!(dev["gb_version"], "2.0");
    assert_eq!(dev["remote_addr"], format!("127.0.0.1:{port}"));
    assert!(dev["last_keepalive_at"].is_string());
    assert!(dev["expires_at"].is_string());

    // sipp as the NVR answers the catalog query with two GB2312 pages.
    let scenario = catalog_scenario();
    let dir = data.path().to_owned();
    let gw_sip = gw.sip;
    let uas = std::thread::spawn(move || {
        let out = run_sipp(&dir, "catalog_uas.xml", &scenario, gw_sip, port);
        (out, dir)
    });
    std::thread::sleep(Duration::from_millis(500));
    let (status, catalog) = post(&gw.url(&format!("/api/v1/devices/{DEVICE_ID}/catalog")));
    let (out, dir) = uas.join().unwrap();
    assert!(out.status.success(), "{}", explain(&out, &dir));
    assert_eq!(status, 200, "{catalog}");
    assert_eq!(catalog["sum_num"], 3);
    assert_eq!(catalog["complete"], true);
    assert_eq!(catalog["pages"], 2);

    let (status, channels) = get(&gw.url(&format!("/api/v1/devices/{DEVICE_ID}/channels")));
    assert_eq!(status, 200);
    let names: Vec<&str> = channels
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["大门口摄像机", "停车场东", "仓库（北）"]);
    assert_eq!(channels[0]["address"], "一号楼");
    assert_eq!(channels[0]["status"], "ON");
    assert_eq!(channels[0]["parent_id"], DEVICE_ID);
    let (_, dev) = get(&gw.url(&format!("/api/v1/devices/{DEVICE_ID}")));
    assert_eq!(dev["channel_count"], 3);
}

#[test]
fn sipp_wrong_password_gets_403() {
    let data = TempDir::new("sipp403");
    let gw = Gateway::start(data.path(), &[]);
    let out = run_sipp(
        data.path(),
        "register.xml",
        register_scenario("not-the-password", "403", false).as_bytes(),
        gw.sip,
        free_udp_port(),
    );
    assert!(out.status.success(), "{}", explain(&out, data.path()));
    let (status, _) = get(&gw.url(&format!("/api/v1/devices/{DEVICE_ID}")));
    assert_eq!(status, 404, "a refused device is not registered");
}
