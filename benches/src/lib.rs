//! Benches live under benches/.
