//! [`BnQReluBackend`] under autodiff: the forward on the inner backend, and a backward pass that
//! calls the inner backend's fused gradient.

use burn::backend::Backend;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

use super::bn_qrelu::BnQReluBackend;

#[derive(Debug)]
struct BnQReluBackward;

/// What the backward pass needs: `acc`, `scale`, `gamma`, `beta`, `mean`, `var`, and
/// `(epsilon, levels)`.
type Saved<B> = (
    [<B as burn::backend::BackendTypes>::FloatTensorPrimitive; 6],
    (f64, u32),
);

impl<B: Backend + BnQReluBackend> Backward<B, 3> for BnQReluBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_acc, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let ([acc, scale, gamma, beta, mean, var], (epsilon, levels)) = ops.state;
        let (acc_grad, gamma_grad, beta_grad) =
            B::bn_qrelu_train_backward(acc, scale, gamma, beta, mean, var, grad, epsilon, levels);
        for (node, g) in [
            (node_acc, acc_grad),
            (node_gamma, gamma_grad),
            (node_beta, beta_grad),
        ] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: Backend + BnQReluBackend, C: CheckpointStrategy> BnQReluBackend for Autodiff<B, C> {
    fn bn_qrelu_train(
        acc: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        levels: u32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prep = BnQReluBackward
            .prepare::<C>([acc.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let [acc, scale, gamma, beta] = [acc, scale, gamma, beta].map(|t| t.into_primitive());
        let (codes, mean, var) = B::bn_qrelu_train(
            acc.clone(),
            scale.clone(),
            gamma.clone(),
            beta.clone(),
            epsilon,
            levels,
        );
        let codes = match prep {
            OpsKind::Tracked(prep) => prep.finish(
                (
                    [acc, scale, gamma, beta, mean.clone(), var.clone()],
                    (epsilon, levels),
                ),
                codes,
            ),
            OpsKind::UnTracked(prep) => prep.finish(codes),
        };
        (
            codes,
            FloatTensor::<Self>::new(mean),
            FloatTensor::<Self>::new(var),
        )
    }
}
