//! The trained float model's folded parts, for the `float` ONNX graph
//! (`mognet_infer::onnx::export_float`): the very affines Burn's eval path uses.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use mognet_arch::Node;
use mognet_infer::onnx::FloatParts;

use crate::Mognet;
use crate::fold::host;

/// Every requantization's `(A, B)` by layer name and the head's `(a, b)`.
pub fn float_parts(model: &Mognet) -> FloatParts {
    let model = model.valid();
    let device: Device = model
        .devices()
        .into_iter()
        .next()
        .expect("a model lives on a device");
    let mut parts = FloatParts::default();
    let pair = |(a, b): (Tensor<1>, Tensor<1>)| (host(a), host(b));
    for node in model.spec.topology() {
        match node {
            Node::Stem { .. } => {
                let affine = pair(model.stem.requant_affine());
                parts.affines.insert("stem".into(), affine);
            }
            Node::Pool { .. } => {}
            Node::Block(b) => {
                let (inner, out) = model.block(b.id).0.requant_affines(&device);
                if let Some(inner) = inner {
                    parts.affines.insert(b.id.layer("gconv"), pair(inner));
                }
                parts.affines.insert(b.id.layer("pw2"), pair(out));
            }
            Node::Head { input, .. } => {
                let alpha = model.head.conv.ternarized().alpha;
                parts.head = pair(model.head.folded(alpha, input[1] * input[2]));
            }
        }
    }
    parts
}
