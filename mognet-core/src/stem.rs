//! The stem: kxk ternary conv on u8 pixels -> BN -> QReLU_k.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::bn_qrelu::BnQRelu;
use crate::qrelu::round_half_up;
use crate::ternary_conv::TernaryConv2d;

/// Input pixels are `x = p / 255` (SPEC): the stem recovers `p` exactly and accumulates on it.
pub const PIXEL_SCALE: f64 = 255.0;

/// The stem layer.
#[derive(Module, Debug)]
pub struct Stem {
    /// kxk ternary convolution, padding k/2.
    pub conv: TernaryConv2d,
    /// BN + QReLU.
    pub out: BnQRelu,
}

impl Stem {
    /// Codes from input images.
    ///
    /// `x` is rounded back to `p = floor(255 x + 0.5)`, so the accumulator `sum t * p` is the
    /// integer engine's, and one unit of it is worth `alpha / 255`.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, h, w]`, values `p / 255`
    /// - output: `[batch, stem_width, h, w]` codes
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let pixels = round_half_up(x.mul_scalar(PIXEL_SCALE)).detach();
        let (acc, alpha) = self.conv.accumulate(pixels);
        self.out.forward(acc, Self::scale(alpha))
    }

    /// The real value of one accumulator unit: `alpha / 255`.
    pub fn scale(alpha: Tensor<1>) -> Tensor<1> {
        alpha.div_scalar(PIXEL_SCALE)
    }

    /// The folded eval affine `(A, B)` of the stem's requantization, for the exporter.
    pub fn requant_affine(&self) -> (Tensor<1>, Tensor<1>) {
        self.out.folded(Self::scale(self.conv.ternarized().alpha))
    }
}
