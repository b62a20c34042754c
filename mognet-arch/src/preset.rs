//! The `mognet-s`, `mognet-m` and `mognet-l` presets of SPEC.

use std::fmt;
use std::str::FromStr;

use crate::arch::StageSpec;
use serde::{Deserialize, Serialize};

/// A named network size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Preset {
    /// <= 0.25 Mb, ~22 M MACs.
    #[serde(rename = "mognet-s")]
    S,
    /// <= 1.0 Mb, ~95 M MACs.
    #[serde(rename = "mognet-m")]
    M,
    /// <= 2.0 Mb, ~210 M MACs.
    #[serde(rename = "mognet-l")]
    L,
}

/// A preset name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset '{0}': expected mognet-s, mognet-m or mognet-l")]
pub struct UnknownPreset(pub String);

const fn stage(n: usize, m: usize, groups: usize, blocks: usize) -> StageSpec {
    StageSpec {
        n,
        m,
        groups,
        blocks,
    }
}

impl Preset {
    /// All presets, smallest first.
    pub const ALL: [Preset; 3] = [Preset::S, Preset::M, Preset::L];

    /// The preset's name, e.g. `mognet-s`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::S => "mognet-s",
            Preset::M => "mognet-m",
            Preset::L => "mognet-l",
        }
    }

    /// Stem width.
    pub fn stem_width(self) -> usize {
        match self {
            Preset::S => 32,
            Preset::M | Preset::L => 64,
        }
    }

    /// Stages `(n, m, g, blocks)`. mognet-s and mognet-m are SPEC's table; mognet-l's last stage
    /// uses 24 groups instead of 16 (16 channels per group, as in mognet-m's last stage), without
    /// which a 100-class mognet-l is 2.03 Mb, over its 2 Mb budget.
    pub fn stages(self) -> Vec<StageSpec> {
        match self {
            Preset::S => vec![
                stage(32, 32, 4, 2),
                stage(64, 64, 8, 2),
                stage(128, 128, 8, 2),
            ],
            Preset::M => vec![
                stage(64, 64, 8, 2),
                stage(128, 128, 8, 3),
                stage(256, 256, 16, 3),
            ],
            Preset::L => vec![
                stage(96, 96, 8, 2),
                stage(192, 192, 8, 3),
                stage(384, 384, 24, 3),
            ],
        }
    }

    /// The file-size budget in bits.
    pub fn budget_bits(self) -> u64 {
        match self {
            Preset::S => 250_000,
            Preset::M => 1_000_000,
            Preset::L => 2_000_000,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mognet-s" | "s" => Ok(Preset::S),
            "mognet-m" | "m" => Ok(Preset::M),
            "mognet-l" | "l" => Ok(Preset::L),
            other => Err(UnknownPreset(other.to_string())),
        }
    }
}
