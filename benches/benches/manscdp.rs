//! MANSCDP parsing and writing: a 1,000-item GB2312 catalog response with Chinese names (what
//! a large NVR or a lower platform sends), and a real Hikvision NVR keepalive.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gb28181::manscdp::{CatalogItem, Charset, Manscdp, decode_body};
use std::hint::black_box;

const NVR_KEEPALIVE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../gb28181/tests/data/manscdp/hikvision_nvr_keepalive_gb2312.xml"
));

const PLACES: [&str; 8] = [
    "大门口",
    "停车场入口",
    "一号楼大厅",
    "东区走廊",
    "仓库",
    "南门",
    "电梯厅",
    "财务室",
];

fn catalog(n: usize) -> Manscdp {
    let nvr = "34020000001180000001";
    let items: Vec<CatalogItem> = (0..n)
        .map(|i| {
            let place = PLACES[i % PLACES.len()];
            let mut item = CatalogItem::channel(
                format!("340200000013200{:05}", i + 1),
                format!("{place}摄像机{}号", i + 1),
                nvr,
            );
            item.manufacturer = Some("海康威视".into());
            item.model = Some("DS-2CD3T47".into());
            item.owner = Some("Owner".into());
            item.address = Some(format!("芜湖市{place}"));
            item.safety_way = Some("0".into());
            item
        })
        .collect();
    Manscdp::catalog_response(419315752, nvr, n as u32, items)
}

fn bench(c: &mut Criterion) {
    let msg = catalog(1000);
    let wire = msg.to_bytes(Charset::Gb2312);
    assert_eq!(Manscdp::parse(&wire).unwrap(), msg);

    let mut g = c.benchmark_group("manscdp");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("catalog_1000_gb2312/parse", |b| {
        b.iter(|| Manscdp::parse(black_box(&wire)).unwrap())
    });
    g.bench_function("catalog_1000_gb2312/decode_only", |b| {
        b.iter(|| decode_body(black_box(&wire)))
    });
    g.bench_function("catalog_1000_gb2312/to_bytes", |b| {
        b.iter(|| black_box(&msg).to_bytes(Charset::Gb2312))
    });
    g.throughput(Throughput::Bytes(NVR_KEEPALIVE.len() as u64));
    g.bench_function("keepalive_hikvision_nvr/parse", |b| {
        b.iter(|| Manscdp::parse(black_box(NVR_KEEPALIVE)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
