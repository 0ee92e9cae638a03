//! PS demuxer on arbitrary bytes: the first byte picks a chunk size, the rest is the stream.
//! Must never panic; every access unit must be a real slice of bounded size.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::ps::{DemuxConfig, DemuxEvent, PsDemuxer};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split).max(1);
    let input = Bytes::copy_from_slice(rest);
    let mut demux = PsDemuxer::with_config(DemuxConfig {
        max_frame_size: 1 << 16,
        ..DemuxConfig::default()
    });
    let mut at = 0;
    while at < input.len() {
        let end = (at + chunk).min(input.len());
        demux.push(input.slice(at..end));
        if split & 0x80 != 0 && at % 3 == 0 {
            demux.discontinuity();
        }
        at = end;
        while let Some(ev) = demux.poll() {
            if let DemuxEvent::AccessUnit(au) = ev {
                assert!(au.data.len() <= (1 << 16) + 256);
            }
        }
    }
    demux.finish();
    while demux.poll().is_some() {}
});
