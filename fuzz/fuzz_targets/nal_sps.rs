//! NAL splitting, H.264/H.265 SPS parsing, access-unit scanning and ADTS parsing on arbitrary
//! bytes. Must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use media::Codec;
use media::codec::{aac, bits, h264, h265, nal, scan_access_unit, sniff_video_codec};

fuzz_target!(|data: &[u8]| {
    for unit in nal::NalUnits::new(data) {
        let _ = h264::Sps::parse(unit);
        let _ = h265::Sps::parse(unit);
    }
    let _ = h264::Sps::parse(data);
    let _ = h265::Sps::parse(data);
    let mut r = bits::BitReader::new(data);
    while r.read_ue().is_ok() {}
    let _ = scan_access_unit(Codec::H264, data);
    let _ = scan_access_unit(Codec::H265, data);
    let _ = sniff_video_codec(data);
    for (h, frame) in aac::AdtsFrames::new(data) {
        assert_eq!(h.frame_length, frame.len());
    }
});
