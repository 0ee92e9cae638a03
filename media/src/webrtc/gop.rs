//! The key-frame cache: a stream's frames since its last key frame (its current GOP), kept in
//! the form they were sent in, so that a viewer that connects mid-GOP starts at once on the
//! key frame and catches up to the live edge.
//!
//! Under shared packetization the cache keeps the packetized payloads themselves. The same
//! reference-counted payloads are in each viewer's NACK history (str0m's RTX cache), so the
//! current GOP exists once in memory, not once for the cache and again for retransmission; and
//! the access units the demuxer produced are released as soon as they are packetized.

use super::packetizer::RtpPayload;
use crate::AccessUnit;

/// Bounds of a stream's key-frame cache ([`EgressConfig::gop_cache`](super::EgressConfig::gop_cache)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GopLimits {
    /// Frames kept at most; 0 turns the cache off.
    pub frames: usize,
    /// Payload bytes kept at most.
    pub bytes: usize,
}

/// One frame as it went out.
#[derive(Debug, Clone)]
pub(crate) enum CachedBody {
    /// Shared packetization: the payloads every viewer got.
    Packets(Box<[RtpPayload]>),
    /// Per-viewer packetization: the access unit, packetized again for the joining viewer.
    Unit(AccessUnit),
}

/// A cached frame and its RTP time (90 kHz) as first sent.
#[derive(Debug, Clone)]
pub(crate) struct CachedFrame {
    pub ts: u32,
    pub keyframe: bool,
    pub body: CachedBody,
}

impl CachedFrame {
    fn bytes(&self) -> usize {
        match &self.body {
            CachedBody::Packets(p) => p.iter().map(|p| p.data.len()).sum(),
            CachedBody::Unit(au) => au.data.len(),
        }
    }
}

/// A stream's current GOP, bounded. A GOP longer than the bounds is not kept at all (a
/// viewer then waits for the next key frame), since replaying its tail without its head
/// would not decode.
#[derive(Debug)]
pub(crate) struct GopCache {
    limits: GopLimits,
    frames: Vec<CachedFrame>,
    bytes: usize,
}

impl GopCache {
    pub fn new(limits: GopLimits) -> Self {
        GopCache {
            limits,
            frames: Vec::new(),
            bytes: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.limits.frames > 0
    }

    /// Keeps `frame`: a key frame starts a new GOP; a frame beyond the bounds, or with no key
    /// frame before it, empties the cache.
    pub fn push(&mut self, frame: CachedFrame) {
        if !self.enabled() {
            return;
        }
        let len = frame.bytes();
        if frame.keyframe {
            self.clear();
        } else if self.frames.is_empty()
            || self.frames.len() >= self.limits.frames
            || self.bytes + len > self.limits.bytes
        {
            self.clear();
            return;
        }
        if len > self.limits.bytes {
            return;
        }
        self.bytes += len;
        self.frames.push(frame);
    }

    /// The cached frames, the key frame first; empty when there is none to start from.
    pub fn frames(&self) -> &[CachedFrame] {
        &self.frames
    }

    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(keyframe: bool, len: usize) -> CachedFrame {
        CachedFrame {
            ts: 0,
            keyframe,
            body: CachedBody::Packets(
                vec![RtpPayload {
                    data: Arc::from(vec![0u8; len]),
                    marker: true,
                }]
                .into(),
            ),
        }
    }

    fn limits(frames: usize, bytes: usize) -> GopLimits {
        GopLimits { frames, bytes }
    }

    #[test]
    fn keeps_from_the_last_key_frame() {
        let mut c = GopCache::new(limits(10, 1000));
        c.push(frame(false, 10));
        assert!(
            c.frames().is_empty(),
            "nothing to start from without a key frame"
        );
        c.push(frame(true, 100));
        c.push(frame(false, 10));
        c.push(frame(false, 10));
        assert_eq!(c.frames().len(), 3);
        c.push(frame(true, 100));
        assert_eq!(c.frames().len(), 1);
        assert!(c.frames()[0].keyframe);
    }

    #[test]
    fn a_gop_beyond_the_bounds_is_dropped_whole() {
        let mut c = GopCache::new(limits(3, 1000));
        c.push(frame(true, 10));
        c.push(frame(false, 10));
        c.push(frame(false, 10));
        c.push(frame(false, 10));
        assert!(c.frames().is_empty(), "frames bound");
        c.push(frame(false, 10));
        assert!(c.frames().is_empty(), "stays empty until a key frame");

        let mut c = GopCache::new(limits(10, 100));
        c.push(frame(true, 60));
        c.push(frame(false, 30));
        c.push(frame(false, 30));
        assert!(c.frames().is_empty(), "bytes bound");
        c.push(frame(true, 200));
        assert!(c.frames().is_empty(), "a key frame larger than the bound");
    }

    #[test]
    fn off_keeps_nothing() {
        let mut c = GopCache::new(limits(0, 1000));
        c.push(frame(true, 10));
        assert!(c.frames().is_empty());
    }
}
