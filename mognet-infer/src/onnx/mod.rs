//! ONNX export of an integer model, written without a protobuf dependency (see [`proto`]).
//! The `exact` graph computes what the integer engine computes with standard operators; the
//! `float` graph what the trained float model computes.

pub mod exact;
pub mod proto;

pub use exact::{FloatParts, OPSET, OnnxExport, export_exact, export_float};

#[cfg(test)]
mod tests;
