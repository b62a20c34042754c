//! ONNX export of an integer model, written without a protobuf dependency (see [`proto`]).
//! The `exact` graph computes what the integer engine computes with standard operators; the
//! `float` graph what the trained float model computes; the `qdq` graph runs the convolutions
//! as ONNX Runtime's int8 kernels do.

pub mod exact;
pub mod proto;
pub mod qdq;

pub use exact::{FloatParts, OPSET, OnnxExport, export_exact, export_float};
pub use qdq::export_qdq;

#[cfg(test)]
mod tests;
