//! Outgoing datagrams collected in one buffer, grouped for UDP generic segmentation offload.
//!
//! Consecutive datagrams from the same source to the same destination are kept together as a
//! run when every datagram but the last has the same length — what Linux `UDP_SEGMENT`
//! (`sendmsg` with a segment size, as `quinn-udp` sends it) turns into one system call. A
//! shell without GSO iterates [`TransmitBatch::datagrams`] and sends each one, or hands them
//! all to `sendmmsg`.

use std::net::SocketAddr;
use std::ops::Range;

/// Largest run, bytes: one UDP datagram's worth, the GSO limit (64 KiB minus headers).
const MAX_RUN_BYTES: usize = 65_000;

/// Datagrams waiting to be sent; cleared and reused by the shell, so that the steady state
/// allocates nothing.
#[derive(Debug, Clone)]
pub struct TransmitBatch {
    buf: Vec<u8>,
    runs: Vec<Run>,
    datagrams: usize,
    max_segments: usize,
}

#[derive(Debug, Clone)]
struct Run {
    source: SocketAddr,
    destination: SocketAddr,
    range: Range<usize>,
    segment_size: usize,
    segments: usize,
}

/// One send: a single datagram, or a GSO run of `contents.len().div_ceil(segment_size)`
/// datagrams of `segment_size` bytes (the last may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The local address (the egress's announce address).
    pub source: SocketAddr,
    /// The viewer's address.
    pub destination: SocketAddr,
    /// The datagram bytes, or the datagrams of a run back to back.
    pub contents: &'a [u8],
    /// Set when `contents` holds more than one datagram: the length of each.
    pub segment_size: Option<usize>,
}

/// One datagram of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The local address.
    pub source: SocketAddr,
    /// The viewer's address.
    pub destination: SocketAddr,
    /// The datagram.
    pub contents: &'a [u8],
}

impl TransmitBatch {
    /// An empty batch that groups at most `max_segments` datagrams per run (1: no grouping).
    pub fn new(max_segments: usize) -> Self {
        TransmitBatch {
            buf: Vec::new(),
            runs: Vec::new(),
            datagrams: 0,
            max_segments: max_segments.max(1),
        }
    }

    /// Most datagrams per run.
    pub fn max_segments(&self) -> usize {
        self.max_segments
    }

    /// Changes the grouping limit for datagrams pushed from now on.
    pub fn set_max_segments(&mut self, max_segments: usize) {
        self.max_segments = max_segments.max(1);
    }

    /// Appends a datagram, extending the last run when it can.
    pub fn push(&mut self, source: SocketAddr, destination: SocketAddr, datagram: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(datagram);
        self.datagrams += 1;
        let len = datagram.len();
        if let Some(run) = self.runs.last_mut()
            && run.destination == destination
            && run.source == source
            && run.segments < self.max_segments
            && len <= run.segment_size
            // Only the last datagram of a run may be shorter.
            && run.range.len() == run.segments * run.segment_size
            && run.range.len() + len <= MAX_RUN_BYTES
        {
            run.range.end = start + len;
            run.segments += 1;
            return;
        }
        self.runs.push(Run {
            source,
            destination,
            range: start..start + len,
            segment_size: len,
            segments: 1,
        });
    }

    /// The sends, in order.
    pub fn iter(&self) -> impl Iterator<Item = Transmit<'_>> {
        self.runs.iter().map(|r| Transmit {
            source: r.source,
            destination: r.destination,
            contents: &self.buf[r.range.clone()],
            segment_size: (r.segments > 1).then_some(r.segment_size),
        })
    }

    /// Every datagram, in order.
    pub fn datagrams(&self) -> impl Iterator<Item = Datagram<'_>> {
        self.iter().flat_map(|t| {
            let size = t.segment_size.unwrap_or(t.contents.len()).max(1);
            t.contents.chunks(size).map(move |contents| Datagram {
                source: t.source,
                destination: t.destination,
                contents,
            })
        })
    }

    /// Number of sends ([`Self::iter`] items).
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Number of datagrams.
    pub fn datagram_count(&self) -> usize {
        self.datagrams
    }

    /// Bytes of all datagrams.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.runs.clear();
        self.datagrams = 0;
    }

    /// Moves everything into `other` (whose previous contents are appended to, not lost).
    pub(crate) fn move_into(&mut self, other: &mut TransmitBatch) {
        if other.is_empty() {
            std::mem::swap(&mut self.buf, &mut other.buf);
            std::mem::swap(&mut self.runs, &mut other.runs);
            other.datagrams = self.datagrams;
        } else {
            let base = other.buf.len();
            other.buf.extend_from_slice(&self.buf);
            other.runs.extend(self.runs.drain(..).map(|mut r| {
                r.range = r.range.start + base..r.range.end + base;
                r
            }));
            other.datagrams += self.datagrams;
        }
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_equal_datagrams_per_destination() {
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let s: SocketAddr = "10.0.0.9:8189".parse().unwrap();
        let mut batch = TransmitBatch::new(3);
        for (dst, len) in [
            (a, 100),
            (a, 100),
            (a, 60),
            (a, 100),
            (b, 100),
            (b, 100),
            (b, 100),
            (b, 100),
        ] {
            batch.push(s, dst, &vec![len as u8; len]);
        }
        let runs: Vec<(SocketAddr, usize, Option<usize>)> = batch
            .iter()
            .map(|t| (t.destination, t.contents.len(), t.segment_size))
            .collect();
        assert_eq!(
            runs,
            [
                (a, 260, Some(100)),
                (a, 100, None),
                (b, 300, Some(100)),
                (b, 100, None)
            ]
        );
        assert_eq!(batch.datagrams().count(), 8);
        assert_eq!(batch.datagram_count(), 8);
        let lens: Vec<usize> = batch.datagrams().map(|d| d.contents.len()).collect();
        assert_eq!(lens, [100, 100, 60, 100, 100, 100, 100, 100]);

        let mut other = TransmitBatch::new(1);
        other.push(s, a, &[1]);
        batch.move_into(&mut other);
        assert!(batch.is_empty());
        assert_eq!(other.datagrams().count(), 9);
        assert_eq!(other.datagrams().last().unwrap().contents.len(), 100);
    }
}
