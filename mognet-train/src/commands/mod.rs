//! The binary's subcommands: each module holds one command's arguments and the function that
//! runs it.

pub mod average;
pub mod bench;
pub mod demo;
pub mod eval;
pub mod model_args;
pub mod plot;
pub mod report;
pub mod summary;
pub mod sweep;
pub mod train;
