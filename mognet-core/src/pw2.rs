//! PW2, the second pointwise convolution of a CFLOG: fixed +-1 rows (the CA, or the PRNG
//! ablation), or, as another ablation, a trained ternary 1x1 convolution.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::ca_pointwise::CaPointwise;
use crate::ternary_conv::TernaryConv2d;

/// PW2 of one block.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Pw2 {
    /// Regenerated +-1 rows: no parameters.
    Fixed(CaPointwise),
    /// Trained ternary weights `alpha * t`.
    Ternary(TernaryConv2d),
}

impl Pw2 {
    /// The integer accumulators and, for the ternary layer, the real value `alpha` of one
    /// unit of them (the fixed rows are +-1: one unit is worth one input unit).
    ///
    /// # Shapes
    /// - `x`: `[batch, m, h, w]`; accumulators `[batch, n, h, w]`; `alpha`: `[1]`
    pub fn accumulate(&self, x: Tensor<4>) -> (Tensor<4>, Option<Tensor<1>>) {
        match self {
            Pw2::Fixed(ca) => (ca.forward(x), None),
            Pw2::Ternary(conv) => {
                let (acc, alpha) = conv.accumulate(x);
                (acc, Some(alpha))
            }
        }
    }

    /// `scale` times the value of one accumulator unit: `scale` for the fixed rows, `scale *
    /// alpha` for the ternary layer.
    pub fn scaled(&self, scale: Tensor<1>) -> Tensor<1> {
        match self {
            Pw2::Fixed(_) => scale,
            Pw2::Ternary(conv) => scale * conv.ternarized().alpha,
        }
    }

    /// The fixed layer, if PW2 is one.
    pub fn fixed(&self) -> Option<&CaPointwise> {
        match self {
            Pw2::Fixed(ca) => Some(ca),
            Pw2::Ternary(_) => None,
        }
    }

    /// The ternary layer, if PW2 is one.
    pub fn ternary(&self) -> Option<&TernaryConv2d> {
        match self {
            Pw2::Fixed(_) => None,
            Pw2::Ternary(conv) => Some(conv),
        }
    }

    /// The BTQ regularizer of the ternary layer, `[1]`; none for the fixed rows.
    pub fn regularizer(&self) -> Option<Tensor<1>> {
        self.ternary().map(|conv| conv.regularizer())
    }
}
