//! The binary's subcommands: each module holds one command's arguments and the function that
//! runs it, beside the argument groups several commands share (`weights`, `test_set`).

pub mod bench;
pub mod check_onnx;
pub mod classify;
pub mod eval;
pub mod export;
pub mod export_onnx;
pub mod parity;
pub mod summary;
pub mod test_set;
pub mod weights;
