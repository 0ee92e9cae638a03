//! Input queue of the demuxer: received chunks as [`Bytes`], read without copying, with the
//! positions where the caller reported lost data; and the accumulator that gathers a frame's
//! payload as slices of those chunks.

use crate::arena::Arena;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;

/// Chunks not yet consumed, the read position in the first, and the gaps.
#[derive(Debug, Default)]
pub(crate) struct Input {
    chunks: VecDeque<Bytes>,
    /// Offset of the read position inside `chunks[0]`.
    pos: usize,
    /// Absolute stream offset of the read position.
    offset: u64,
    /// Absolute offset of the end of the last chunk pushed.
    end: u64,
    /// Absolute offsets where data was lost (`PsDemuxer::discontinuity`).
    gaps: VecDeque<u64>,
    /// Absolute offsets where the caller said a PS frame ends (`PsDemuxer::end_of_frame`).
    frame_ends: VecDeque<u64>,
}

impl Input {
    pub fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        self.end += b.len() as u64;
        self.chunks.push_back(b);
    }

    pub fn mark_gap(&mut self) {
        if self.gaps.back() != Some(&self.end) {
            self.gaps.push_back(self.end);
        }
    }

    pub fn mark_frame_end(&mut self) {
        if self.frame_ends.back() != Some(&self.end) {
            self.frame_ends.push_back(self.end);
        }
    }

    /// True when a frame end was marked exactly at the read position; marks left behind
    /// (inside an element) are dropped.
    pub fn take_frame_end(&mut self) -> bool {
        let mut at = false;
        while let Some(&m) = self.frame_ends.front() {
            if m > self.offset {
                break;
            }
            at |= m == self.offset;
            self.frame_ends.pop_front();
        }
        at
    }

    /// Bytes readable before the next gap (or the end).
    pub fn avail(&self) -> usize {
        let limit = self.gaps.front().copied().unwrap_or(self.end);
        (limit - self.offset) as usize
    }

    /// True when the read position is at a gap; the gap is consumed.
    pub fn take_gap(&mut self) -> bool {
        if self.gaps.front() == Some(&self.offset) {
            self.gaps.pop_front();
            true
        } else {
            false
        }
    }

    /// True when a gap lies ahead (so bytes missing before it will never come).
    pub fn gap_ahead(&self) -> bool {
        !self.gaps.is_empty()
    }

    /// The contiguous readable bytes of the first chunk (limited by the next gap).
    pub fn front(&self) -> &[u8] {
        match self.chunks.front() {
            Some(c) => {
                let n = (c.len() - self.pos).min(self.avail());
                &c[self.pos..self.pos + n]
            }
            None => &[],
        }
    }

    /// `n` readable bytes, borrowed from the first chunk when they lie in it, else copied into
    /// `scratch`. `None` when fewer than `n` are readable.
    pub fn peek<'a>(&'a self, n: usize, scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
        if n > self.avail() {
            return None;
        }
        let front = self.front();
        if front.len() >= n {
            return Some(&front[..n]);
        }
        scratch.clear();
        let mut pos = self.pos;
        for c in &self.chunks {
            let take = (c.len() - pos).min(n - scratch.len());
            scratch.extend_from_slice(&c[pos..pos + take]);
            pos = 0;
            if scratch.len() == n {
                break;
            }
        }
        Some(&scratch[..])
    }

    /// Consumes `n` bytes (at most what is readable).
    pub fn advance(&mut self, mut n: usize) {
        n = n.min(self.avail());
        self.offset += n as u64;
        while n > 0 {
            let Some(c) = self.chunks.front() else {
                break;
            };
            let left = c.len() - self.pos;
            if n < left {
                self.pos += n;
                n = 0;
            } else {
                n -= left;
                self.chunks.pop_front();
                self.pos = 0;
            }
        }
        if let Some(c) = self.chunks.front()
            && self.pos == c.len()
        {
            self.chunks.pop_front();
            self.pos = 0;
        }
    }

    /// Takes up to `max` bytes from the first chunk as a slice that shares its buffer.
    pub fn take(&mut self, max: usize) -> Option<Seg> {
        let avail = self.front().len().min(max);
        if avail == 0 {
            return None;
        }
        let c = self.chunks.front()?;
        let seg = Seg {
            chunk: c.clone(),
            start: self.pos,
            end: self.pos + avail,
            chunk_start: self.offset - self.pos as u64,
        };
        self.advance(avail);
        Some(seg)
    }

    /// Drops everything readable (at `finish`).
    pub fn clear_readable(&mut self) -> usize {
        let n = self.avail();
        self.advance(n);
        n
    }
}

/// A slice of one input chunk.
#[derive(Debug, Clone)]
pub(crate) struct Seg {
    chunk: Bytes,
    start: usize,
    end: usize,
    /// Absolute offset of the chunk's first byte: identifies the chunk.
    chunk_start: u64,
}

impl Seg {
    pub fn bytes(&self) -> &[u8] {
        &self.chunk[self.start..self.end]
    }
}

/// Gathers the payload of one frame. Slices of the same chunk that touch are merged, so a frame
/// that lies in one chunk stays one slice and is handed on without a copy.
#[derive(Debug, Default)]
pub(crate) struct Accum {
    segs: Vec<Seg>,
    /// Used instead of `segs` once a frame has many pieces (bounds the slice count).
    owned: BytesMut,
    len: usize,
}

/// Beyond this many pieces the accumulator copies as it goes (a frame of about 1.4 MB in
/// 1,400-byte RTP payloads; a file read in small blocks can get there sooner).
const MAX_SEGS: usize = 1024;

impl Accum {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, seg: Seg) {
        self.len += seg.end - seg.start;
        if !self.owned.is_empty() {
            self.owned.put_slice(seg.bytes());
            return;
        }
        if let Some(last) = self.segs.last_mut()
            && last.chunk_start == seg.chunk_start
            && last.end == seg.start
        {
            last.end = seg.end;
            return;
        }
        if self.segs.len() < MAX_SEGS {
            self.segs.push(seg);
            return;
        }
        self.owned.reserve(self.len);
        for s in self.segs.drain(..) {
            self.owned.put_slice(s.bytes());
        }
        self.owned.put_slice(seg.bytes());
    }

    pub fn clear(&mut self) {
        self.segs.clear();
        self.owned.clear();
        self.len = 0;
    }

    /// The frame: a slice of the input when it was contiguous, else one copy into `arena`
    /// (whose blocks are reused once the frames cut from them are dropped).
    pub fn finish(&mut self, arena: &mut Arena) -> Bytes {
        let out = if !self.owned.is_empty() {
            arena.copy(&[&self.owned])
        } else if self.segs.len() == 1 {
            let s = &self.segs[0];
            s.chunk.slice(s.start..s.end)
        } else {
            arena.copy_iter(self.segs.iter().map(Seg::bytes))
        };
        self.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_across_chunks_and_gaps() {
        let mut i = Input::default();
        i.push(Bytes::from_static(&[1, 2]));
        i.push(Bytes::from_static(&[3, 4, 5]));
        let mut s = Vec::new();
        assert_eq!(i.peek(4, &mut s), Some(&[1, 2, 3, 4][..]));
        i.mark_gap();
        i.push(Bytes::from_static(&[6]));
        assert_eq!(i.avail(), 5);
        i.advance(5);
        assert!(i.take_gap());
        assert_eq!(i.avail(), 1);
        assert_eq!(i.front(), &[6]);
    }

    #[test]
    fn contiguous_slices_merge_without_copy() {
        let chunk = Bytes::from(vec![7u8; 100]);
        let mut i = Input::default();
        i.push(chunk.clone());
        let mut a = Accum::default();
        a.push(i.take(10).unwrap());
        a.push(i.take(20).unwrap());
        let out = a.finish(&mut Arena::new(1024, 1));
        assert_eq!(out.len(), 30);
        assert_eq!(out.as_ptr(), chunk.as_ptr());
    }
}
