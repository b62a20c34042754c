//! [`TernaryConvBackend`] under autodiff: the forward on the inner backend, and a backward pass
//! that calls the inner backend's input- and weight-gradient kernels.

use burn::backend::Backend;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

use super::{ConvParams, TernaryConvBackend};

#[derive(Debug)]
struct TernaryConvBackward;

impl<B: Backend + TernaryConvBackend> Backward<B, 2> for TernaryConvBackward {
    // The input and the weight, as the forward saw them.
    type State = (B::FloatTensorPrimitive, B::FloatTensorPrimitive, ConvParams);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, p) = ops.state;
        if let Some(node) = node_x {
            let gx = B::ternary_conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), p);
            grads.register::<B>(node.id, gx);
        }
        if let Some(node) = node_weight {
            let gw = B::ternary_conv2d_weight_backward(x, weight, grad, p);
            grads.register::<B>(node.id, gw);
        }
    }
}

impl<B: Backend + TernaryConvBackend, C: CheckpointStrategy> TernaryConvBackend for Autodiff<B, C> {
    fn ternary_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        let prep = TernaryConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful();
        let (x, weight) = (x.into_primitive(), weight.into_primitive());
        match prep {
            OpsKind::Tracked(prep) => {
                let y = B::ternary_conv2d(x.clone(), weight.clone(), params);
                prep.finish((x, weight, params), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ternary_conv2d(x, weight, params)),
        }
    }
}
