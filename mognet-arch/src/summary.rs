//! The model summary in bits: what each layer costs in on-chip memory, and in MACs.
//!
//! Stored ternary weights are counted at 2-bit packing and at base-3 packing (5 trits per byte,
//! 1.6 bits per weight); CA-generated weights cost nothing but their seed, rule and warmup; each
//! requantized channel costs `Q` integer thresholds, stored as the first threshold and the
//! `Q - 1` gaps between consecutive ones, plus a 2-bit direction and a wide flag; each gated
//! channel one integer
//! gate threshold; each class of the head a fixed-point multiplier and offset.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::arch::{LayerInfo, LayerKind, NetSpec};

/// Threshold widths of a layer. The defaults are what a trained model typically needs; the
/// exporter picks, per layer, the widths that minimise the layer's bits for the actual values
/// (outlier channels stored wide, 32 bits per field), and the file's own summary shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdWidths {
    /// Bits of a channel's first threshold.
    pub base: u32,
    /// Bits of each of the `Q - 1` gaps between consecutive thresholds.
    pub gap: u32,
    /// Channels stored wide: 32-bit first threshold and gaps.
    pub wide_channels: u32,
}

/// Bits per stored item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageWidths {
    /// Threshold widths, by default.
    pub thresholds: ThresholdWidths,
    /// Per-layer overrides of `thresholds`, by layer name.
    pub threshold_overrides: HashMap<String, ThresholdWidths>,
    /// Bits of a channel's threshold direction (up, down, constant) and wide flag.
    pub direction_bits: u32,
    /// Bits per MRB gate threshold.
    pub gate_bits: u32,
    /// Per-layer overrides of `gate_bits`, by layer name.
    pub gate_overrides: HashMap<String, u32>,
    /// Bits per head class (i32 multiplier and i32 offset).
    pub affine_bits: u32,
    /// Bits of the head's common shift.
    pub shift_bits: u32,
    /// Bits of a CA layer's generator: 64-bit seed, 8-bit rule, 32-bit warmup, and the 32-bit
    /// CRC of the generated rows that proves the regeneration at load.
    pub ca_bits: u32,
}

/// Bits of a PRNG PW2 layer in the file: its 64-bit seed and the 32-bit CRC of its rows.
pub const PRNG_BITS: u64 = 96;

impl Default for StorageWidths {
    fn default() -> Self {
        Self {
            thresholds: ThresholdWidths {
                base: 16,
                gap: 12,
                wide_channels: 0,
            },
            threshold_overrides: HashMap::new(),
            direction_bits: 3,
            gate_bits: 16,
            gate_overrides: HashMap::new(),
            affine_bits: 64,
            shift_bits: 8,
            ca_bits: 136,
        }
    }
}

impl StorageWidths {
    /// Bits of the thresholds of `channels` channels of `levels` codes in layer `name`,
    /// directions and wide flags included.
    pub fn layer_threshold_bits(&self, name: &str, channels: u64, levels: u32) -> u64 {
        let w = self
            .threshold_overrides
            .get(name)
            .unwrap_or(&self.thresholds);
        let wide = (w.wide_channels as u64).min(channels);
        (channels - wide) * (w.base + (levels - 1) * w.gap) as u64
            + wide * 32 * levels as u64
            + channels * self.direction_bits as u64
    }
}

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// The layer.
    pub layer: LayerInfo,
    /// Stored ternary weights at 2 bits each.
    pub weight_bits_2bit: u64,
    /// Stored ternary weights at base-3 packing (`ceil(n/5)` bytes).
    pub weight_bits_base3: u64,
    /// Bits of the CA generator (seed, rule, warmup), for CA layers.
    pub ca_bits: u64,
    /// Per-channel parameters: thresholds, gate thresholds, head multipliers and offsets.
    pub channel_params: u64,
    /// Their bits.
    pub channel_param_bits: u64,
}

impl SummaryRow {
    /// Stored bits of the row at 2-bit packing.
    pub fn bits_2bit(&self) -> u64 {
        self.weight_bits_2bit + self.ca_bits + self.channel_param_bits
    }
    /// Stored bits of the row at base-3 packing.
    pub fn bits_base3(&self) -> u64 {
        self.weight_bits_base3 + self.ca_bits + self.channel_param_bits
    }
}

/// The whole summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rows in execution order.
    pub rows: Vec<SummaryRow>,
    /// Total stored bits at 2-bit packing.
    pub total_bits_2bit: u64,
    /// Total stored bits at base-3 packing.
    pub total_bits_base3: u64,
    /// Total stored ternary weights.
    pub stored_weights: u64,
    /// Total CA-generated weights.
    pub generated_weights: u64,
    /// Total MACs per image.
    pub macs: u64,
    /// Bits of the same network in f32: every weight (CA ones too), four BN parameters per
    /// normalized channel, one gate threshold per gated channel, 32 bits each.
    pub f32_bits: u64,
}

impl Summary {
    /// The summary of `spec` with the given storage widths.
    pub fn new(spec: &NetSpec, widths: &StorageWidths) -> Self {
        let q = spec.levels() as u64;
        let rows: Vec<SummaryRow> = spec
            .layers()
            .into_iter()
            .map(|layer| {
                let w = layer.stored_weights as u64;
                let th = layer.threshold_channels as u64;
                let gates = layer.gate_channels as u64;
                let classes = layer.affine_classes as u64;
                let mut param_bits = widths.layer_threshold_bits(&layer.name, th, q as u32)
                    + gates
                        * *widths
                            .gate_overrides
                            .get(&layer.name)
                            .unwrap_or(&widths.gate_bits) as u64
                    + classes * widths.affine_bits as u64;
                if classes > 0 {
                    param_bits += widths.shift_bits as u64;
                }
                SummaryRow {
                    weight_bits_2bit: 2 * w,
                    weight_bits_base3: w.div_ceil(5) * 8,
                    ca_bits: match layer.kind {
                        LayerKind::CaPw => widths.ca_bits as u64,
                        LayerKind::PrngPw => PRNG_BITS,
                        _ => 0,
                    },
                    channel_params: th * q + gates + 2 * classes,
                    channel_param_bits: param_bits,
                    layer,
                }
            })
            .collect();
        let sum = |f: &dyn Fn(&SummaryRow) -> u64| rows.iter().map(f).sum::<u64>();
        let f32_bits = 32
            * sum(&|r| {
                let l = &r.layer;
                (l.stored_weights
                    + l.generated_weights
                    + 4 * (l.threshold_channels + l.affine_classes)
                    + l.gate_channels) as u64
            });
        Summary {
            total_bits_2bit: sum(&|r| r.bits_2bit()),
            total_bits_base3: sum(&|r| r.bits_base3()),
            stored_weights: sum(&|r| r.layer.stored_weights as u64),
            generated_weights: sum(&|r| r.layer.generated_weights as u64),
            macs: sum(&|r| r.layer.macs),
            f32_bits,
            rows,
        }
    }

    /// Compression against the same network in f32, at 2-bit packing.
    pub fn compression(&self) -> f64 {
        self.f32_bits as f64 / self.total_bits_2bit.max(1) as f64
    }

    /// The printed table. Its last line is `total: <bits> bits (<x.xxx> Mb)` at 2-bit packing.
    pub fn render(&self) -> String {
        let header = [
            "layer", "kind", "input", "output", "ternary", "bits@2b", "bits@b3", "ca-gen",
            "ca-bit", "ch-param", "ch-bits", "MACs",
        ];
        let mut out = table_line(header.map(String::from));
        for r in &self.rows {
            let l = &r.layer;
            let shape = |s: [usize; 3]| format!("{}x{}x{}", s[0], s[1], s[2]);
            out.push_str(&table_line([
                l.name.clone(),
                l.kind.label().to_string(),
                shape(l.input),
                shape(l.output),
                l.stored_weights.to_string(),
                r.weight_bits_2bit.to_string(),
                r.weight_bits_base3.to_string(),
                l.generated_weights.to_string(),
                r.ca_bits.to_string(),
                r.channel_params.to_string(),
                r.channel_param_bits.to_string(),
                l.macs.to_string(),
            ]));
        }
        out.push_str(&self.render_totals());
        out
    }

    /// The lines under the table, ending with the `total:` line (no newline after it).
    fn render_totals(&self) -> String {
        let sum = |f: fn(&SummaryRow) -> u64| self.rows.iter().map(f).sum::<u64>();
        let mb = |bits: u64| bits as f64 / 1e6;
        [
            format!(
                "stored ternary weights: {} ({} bits at 2-bit, {} bits at base-3)",
                self.stored_weights,
                2 * self.stored_weights,
                sum(|r| r.weight_bits_base3)
            ),
            format!(
                "CA-generated weights: {} (0 bits stored; {} bits of seeds, rules and warmups)",
                self.generated_weights,
                sum(|r| r.ca_bits)
            ),
            format!(
                "per-channel parameters: {} bits",
                sum(|r| r.channel_param_bits)
            ),
            format!(
                "MACs per image: {} ({:.2} M)",
                self.macs,
                self.macs as f64 / 1e6
            ),
            format!(
                "total at base-3 packing: {} bits ({:.3} Mb)",
                self.total_bits_base3,
                mb(self.total_bits_base3)
            ),
            format!(
                "compression vs f32: {:.1}x ({} bits in f32)",
                self.compression(),
                self.f32_bits
            ),
            format!(
                "total: {} bits ({:.3} Mb)",
                self.total_bits_2bit,
                mb(self.total_bits_2bit)
            ),
        ]
        .join("\n")
    }
}

/// One line of the layer table, columns aligned.
fn table_line(c: [String; 12]) -> String {
    format!(
        "{:<13} {:<8} {:>11} {:>11} {:>8} {:>9} {:>9} {:>9} {:>6} {:>8} {:>9} {:>12}\n",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::tests::tiny;

    /// The PRNG ablation of PW2 stores a 64-bit seed and a 32-bit CRC per layer instead of the
    /// CA's 136 bits, and generates the same weights; nothing else changes.
    #[test]
    fn prng_pw2_summary_matches_hand_count() {
        let ca = Summary::new(&tiny(), &StorageWidths::default());
        let spec = NetSpec {
            pw2: crate::Pw2Kind::Prng,
            ..tiny()
        };
        let prng = Summary::new(&spec, &StorageWidths::default());
        assert_eq!(prng.total_bits_2bit, ca.total_bits_2bit - 3 * (136 - 96));
        assert_eq!(prng.total_bits_base3, ca.total_bits_base3 - 3 * (136 - 96));
        assert_eq!(prng.generated_weights, 64 + 64 + 256);
        assert_eq!(
            (prng.stored_weights, prng.macs),
            (ca.stored_weights, ca.macs)
        );
        let kinds: Vec<&str> = prng.rows.iter().map(|r| r.layer.kind.label()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "prng-pw").count(), 3);
        assert!(!kinds.contains(&"ca-pw"));
    }

    /// Every number of the tiny network's summary, counted by hand.
    #[test]
    fn tiny_summary_matches_hand_count() {
        let s = Summary::new(&tiny(), &StorageWidths::default());
        // Stored ternary weights: stem 72; s1.b0 pw1 64 + gconv 288; s1.b1 the same;
        // s2.b0 pw1 8*16 = 128 + gconv 16*4*9 = 576; head 16*10 = 160.
        let weights = 72 + 2 * (64 + 288) + 128 + 576 + 160;
        assert_eq!(s.stored_weights, weights as u64);
        // Generated: 8*8 twice, 16*16 once.
        assert_eq!(s.generated_weights, 64 + 64 + 256);
        // Thresholds: stem 8 + pw2 8 + 8 + 16 = 40 channels, a 16-bit first threshold, six
        // 12-bit gaps, a 2-bit direction and a wide flag each.
        let thresholds = 40 * (16 + 6 * 12 + 3);
        let gates = 8 * 16;
        let head = 10 * 64 + 8;
        let ca = 3 * 136;
        assert_eq!(
            s.total_bits_2bit,
            (2 * weights + thresholds + gates + head + ca) as u64
        );
        // Base-3: per layer ceil(n/5) bytes.
        let b3: u64 = [72u64, 64, 288, 64, 288, 128, 576, 160]
            .iter()
            .map(|w| w.div_ceil(5) * 8)
            .sum();
        assert_eq!(
            s.total_bits_base3,
            b3 + (thresholds + gates + head + ca) as u64
        );
        // MACs: stem 72*64; s1 blocks (64 + 288 + 64)*64 each; s2 (128 + 576 + 256)*16; head 160*16.
        let macs = 72 * 64 + 2 * (64 + 288 + 64) * 64 + (128 + 576 + 256) * 16 + 160 * 16;
        assert_eq!(s.macs, macs as u64);
        // f32: all weights + 4 per BN channel (40 + 10 head) + 8 gates.
        let f32_bits = 32 * (weights + 384 + 4 * 50 + 8);
        assert_eq!(s.f32_bits, f32_bits as u64);
        let text = s.render();
        let last = text.lines().last().unwrap();
        assert_eq!(
            last,
            format!(
                "total: {} bits ({:.3} Mb)",
                s.total_bits_2bit,
                s.total_bits_2bit as f64 / 1e6
            )
        );
        assert!(text.contains("s1.b1.gate"));
    }

    #[test]
    fn threshold_overrides_change_only_their_layer() {
        let mut widths = StorageWidths::default();
        let base = Summary::new(&tiny(), &widths).total_bits_2bit;
        widths.threshold_overrides.insert(
            "stem".into(),
            ThresholdWidths {
                base: 32,
                gap: 14,
                wide_channels: 1,
            },
        );
        let wider = Summary::new(&tiny(), &widths).total_bits_2bit;
        // 7 narrow channels 16 + 12 bits wider each, one wide channel 7 * 32 - (16 + 72) wider.
        assert_eq!(wider - base, 7 * (16 + 6 * 2) + (7 * 32 - (16 + 72)));
    }
}
