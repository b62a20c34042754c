//! Scalar reference kernels of the integer engine: plain loops over i32 accumulators, written for
//! clarity. Faster kernels must match these bit for bit.
//!
//! Layouts are channel-major (`[c][y][x]`) for one image.

pub mod ca;
pub mod conv;
pub mod head;
pub mod mrb;
pub mod pool;
pub mod requant;
