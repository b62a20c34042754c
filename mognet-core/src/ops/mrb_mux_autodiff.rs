//! [`MrbMuxBackend`] under autodiff: the forward on the inner backend, and a backward pass that
//! calls the inner backend's fused gradient.

use burn::backend::Backend;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

use super::mrb_mux::MrbMuxBackend;

#[derive(Debug)]
struct MrbMuxBackward;

impl<B: Backend + MrbMuxBackend> Backward<B, 3> for MrbMuxBackward {
    // x, f and the gate, and whether the residual is the average.
    type State = ([B::FloatTensorPrimitive; 3], bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let ([x, f, gate], average) = ops.state;
        let (gx, gf, gs) = B::mrb_mux_backward(x, f, gate, grad, average);
        for (node, g) in ops.parents.into_iter().zip([gx, gf, gs]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: Backend + MrbMuxBackend, C: CheckpointStrategy> MrbMuxBackend for Autodiff<B, C> {
    fn mrb_mux(
        x: FloatTensor<Self>,
        f: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        average: bool,
    ) -> FloatTensor<Self> {
        let prep = MrbMuxBackward
            .prepare::<C>([x.node(), f.node(), gate.node()])
            .compute_bound()
            .stateful();
        let [x, f, gate] = [x, f, gate].map(|t| t.into_primitive());
        match prep {
            OpsKind::Tracked(prep) => {
                let y = B::mrb_mux(x.clone(), f.clone(), gate.clone(), average);
                prep.finish(([x, f, gate], average), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::mrb_mux(x, f, gate, average)),
        }
    }
}
