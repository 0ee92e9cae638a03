//! Copies of frames and packets cut from a few large blocks that are reused once everything
//! cut from them has been dropped: in steady state a stream allocates nothing per frame or
//! packet, even while a consumer holds a GOP of frames for late joiners.
//!
//! A block is reused through [`BytesMut::try_reclaim`], which succeeds only when no `Bytes`
//! cut from it is alive; blocks still referenced are skipped, and a new one is allocated only
//! when none is free. At most `max_blocks` are kept: beyond that the oldest handle is let go
//! (its memory is freed with its last piece), so the arena never holds more than what its
//! consumers hold plus one block.
//!
//! Free blocks beyond recent need are let go as well: the arena keeps the most blocks its
//! consumers held at once over the last [`WINDOW`] to [`2 * WINDOW`](WINDOW) block turns,
//! plus [`SPARE`]. A burst (a consumer that fell behind and held many frames for a moment)
//! grows the arena for a while, not for the life of the stream; a steady consumer, even one
//! that holds a whole GOP, keeps every block it needs and allocates nothing.
//!
//! ```
//! use media::arena::Arena;
//! let mut arena = Arena::new(4096, 4);
//! let a = arena.copy(&[b"key ", b"frame"]);
//! assert_eq!(&a[..], b"key frame");
//! drop(a);
//! let _b = arena.copy(&[b"next"]);
//! assert_eq!(arena.stats().blocks_allocated, 1);
//! ```

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

/// Counters of an [`Arena`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Copies made.
    pub copies: u64,
    /// Blocks allocated (the first ones included).
    pub blocks_allocated: u64,
    /// Times a block was reused after everything cut from it was dropped.
    pub blocks_reused: u64,
    /// Free blocks let go because recent use did not need them.
    pub blocks_released: u64,
}

/// Block turns (a block filled and another one taken) over which the arena remembers how
/// many blocks were held at most.
pub const WINDOW: u32 = 64;
/// Free blocks kept on top of the most held recently.
pub const SPARE: usize = 2;

/// A pool of blocks to copy frames and packets into. See the module documentation.
#[derive(Debug)]
pub struct Arena {
    /// The block being filled first.
    blocks: VecDeque<BytesMut>,
    block_size: usize,
    max_blocks: usize,
    stats: ArenaStats,
    /// Most blocks held at once in this window and in the previous one.
    held_peak: usize,
    held_peak_before: usize,
    turns: u32,
}

impl Arena {
    /// Blocks of `block_size` bytes (a larger piece gets a block of its own size), at most
    /// `max_blocks` kept.
    pub fn new(block_size: usize, max_blocks: usize) -> Arena {
        Arena {
            blocks: VecDeque::new(),
            block_size: block_size.max(1),
            max_blocks: max_blocks.max(1),
            stats: ArenaStats::default(),
            held_peak: 0,
            held_peak_before: 0,
            turns: 0,
        }
    }

    /// The counters.
    pub fn stats(&self) -> ArenaStats {
        self.stats
    }

    /// The concatenation of `parts`, in one piece of a block.
    pub fn copy(&mut self, parts: &[&[u8]]) -> Bytes {
        self.copy_iter(parts.iter().copied())
    }

    /// The concatenation of `parts` (iterated twice: lengths, then bytes), in one piece.
    pub fn copy_iter<'a>(&mut self, parts: impl Iterator<Item = &'a [u8]> + Clone) -> Bytes {
        let len = parts.clone().map(<[u8]>::len).sum();
        self.stats.copies += 1;
        let block = self.room(len);
        for p in parts {
            block.put_slice(p);
        }
        block.split().freeze()
    }

    /// A block with `len` bytes free, at the front.
    fn room(&mut self, len: usize) -> &mut BytesMut {
        let fits = |b: &BytesMut| b.capacity() - b.len() >= len;
        if !self.blocks.front().is_some_and(fits) {
            self.turn(len.max(self.block_size));
        }
        // A block with room is at the front now.
        self.blocks
            .front_mut()
            .expect("a block was just put at the front")
    }

    /// The front block is full: take a free block (the most recently used first) or a new one
    /// of `want` bytes, and let go of free blocks beyond recent need.
    fn turn(&mut self, want: usize) {
        // Everything cut from a block dropped: it can be taken again. Reclaiming a free block
        // only resets it, so every block is asked: that also counts those still held.
        let mut first_free = None;
        let mut free = 0;
        for (i, b) in self.blocks.iter_mut().enumerate() {
            if b.try_reclaim(want) {
                free += 1;
                first_free.get_or_insert(i);
            }
        }
        let held = self.blocks.len() - free;
        self.turns += 1;
        if self.turns >= WINDOW {
            self.turns = 0;
            self.held_peak_before = self.held_peak;
            self.held_peak = 0;
        }
        // The block about to be filled counts as held.
        self.held_peak = self.held_peak.max(held + 1);
        let keep = self.held_peak.max(self.held_peak_before) + SPARE;
        match first_free {
            Some(i) => {
                self.stats.blocks_reused += 1;
                if let Some(b) = self.blocks.remove(i) {
                    self.blocks.push_front(b);
                }
            }
            None => {
                if self.blocks.len() >= self.max_blocks {
                    // Still referenced: its memory goes with its last piece.
                    self.blocks.pop_back();
                }
                self.stats.blocks_allocated += 1;
                self.blocks.push_front(BytesMut::with_capacity(want));
            }
        }
        // Free blocks beyond need go, the least recently used (at the back) first; the one
        // just taken is at the front.
        let mut excess = self.blocks.len().saturating_sub(keep);
        let mut i = self.blocks.len();
        while excess > 0 && i > 1 {
            i -= 1;
            if self.blocks[i].try_reclaim(want) {
                self.blocks.remove(i);
                self.stats.blocks_released += 1;
                excess -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_reused_once_their_pieces_are_dropped() {
        let mut a = Arena::new(1000, 4);
        // A consumer holding a "GOP" of up to 5 pieces of 300 bytes, then letting it go.
        let mut held = Vec::new();
        for round in 0..50 {
            if round % 5 == 0 {
                held.clear();
            }
            held.push(a.copy(&[&[round as u8; 300]]));
            assert!(held.last().unwrap().iter().all(|&b| b == round as u8));
        }
        let s = a.stats();
        assert_eq!(s.copies, 50);
        assert!(s.blocks_allocated <= 3, "{s:?}");
        assert!(s.blocks_reused >= 10, "{s:?}");
    }

    #[test]
    fn blocks_a_burst_needed_are_let_go_once_it_is_over() {
        let mut a = Arena::new(1000, 64);
        // A consumer that fell behind holds 30 blocks' worth at once.
        let burst: Vec<Bytes> = (0..30).map(|_| a.copy(&[&[1; 900]])).collect();
        drop(burst);
        assert_eq!(a.stats().blocks_allocated, 30);
        // Then it keeps up again, holding two pieces at most.
        let mut held = std::collections::VecDeque::new();
        for _ in 0..(3 * WINDOW) {
            held.push_back(a.copy(&[&[2; 900]]));
            if held.len() > 2 {
                held.pop_front();
            }
        }
        assert_eq!(
            a.stats().blocks_allocated,
            30,
            "only free blocks were taken"
        );
        assert!(
            a.blocks.len() <= 3 + SPARE,
            "{} blocks kept",
            a.blocks.len()
        );
        assert!(a.stats().blocks_released >= 25, "{:?}", a.stats());
    }

    #[test]
    fn held_blocks_are_let_go_beyond_the_limit_and_large_pieces_fit() {
        let mut a = Arena::new(100, 2);
        let held: Vec<Bytes> = (0..10).map(|i| a.copy(&[&[i; 80]])).collect();
        assert_eq!(
            a.stats().blocks_allocated,
            10,
            "every block still referenced"
        );
        assert!(a.blocks.len() <= 2);
        let big = a.copy(&[&[7; 500], &[8; 500]]);
        assert_eq!(big.len(), 1000);
        assert_eq!(&big[499..501], &[7, 8]);
        assert!(
            held.iter()
                .enumerate()
                .all(|(i, h)| h.iter().all(|&b| b == i as u8))
        );
    }
}
