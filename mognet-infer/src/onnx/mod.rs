//! ONNX export of an integer model, written without a protobuf dependency (see [`proto`]).
//! The `exact` graph computes what the integer engine computes with standard operators.

pub mod exact;
pub mod proto;

pub use exact::{ExactExport, OPSET, export_exact};

#[cfg(test)]
mod tests;
