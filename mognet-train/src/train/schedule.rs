//! Learning-rate schedules: a pure function of the step, so resuming needs no scheduler state.

use serde::{Deserialize, Serialize};

/// The learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Linear warmup, then cosine decay to 0.
    Cosine,
    /// One-cycle: warmup from lr/25 to lr (30% of the run unless warmup is set), then cosine
    /// annealing to lr/1e4.
    Onecycle,
    /// Linear warmup, then constant.
    Constant,
}

impl Schedule {
    /// The learning rate at `step` (0-based) of `total` steps, with `warmup` warmup steps and peak
    /// learning rate `peak`.
    pub fn lr(self, peak: f64, step: usize, total: usize, warmup: usize) -> f64 {
        let total = total.max(1);
        let cosine = |from: f64, to: f64, t: f64| {
            to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        };
        match self {
            Schedule::Onecycle => {
                let warmup = if warmup == 0 {
                    (total * 3).div_ceil(10)
                } else {
                    warmup
                }
                .min(total);
                if step < warmup {
                    let t = step as f64 / warmup as f64;
                    peak / 25.0 + (peak - peak / 25.0) * t
                } else {
                    let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                    cosine(peak, peak / 1e4, t.min(1.0))
                }
            }
            Schedule::Cosine | Schedule::Constant => {
                if step < warmup {
                    return peak * (step + 1) as f64 / warmup as f64;
                }
                match self {
                    Schedule::Constant => peak,
                    _ => {
                        let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                        cosine(peak, 0.0, t.min(1.0))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_the_schedules() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // Cosine: warmup reaches the peak, halfway down is half the peak, ends at ~0.
        assert!(close(Schedule::Cosine.lr(0.1, 9, 110, 10), 0.1));
        assert!(close(Schedule::Cosine.lr(0.1, 10, 110, 10), 0.1));
        assert!(close(Schedule::Cosine.lr(0.1, 60, 110, 10), 0.05));
        assert!(Schedule::Cosine.lr(0.1, 109, 110, 10) < 1e-4);
        // Constant after warmup.
        assert!(close(Schedule::Constant.lr(0.1, 0, 100, 4), 0.025));
        assert!(close(Schedule::Constant.lr(0.1, 99, 100, 4), 0.1));
        // One-cycle: starts at peak/25, peaks at 30%, ends near peak/1e4.
        assert!(close(Schedule::Onecycle.lr(0.1, 0, 100, 0), 0.004));
        assert!(close(Schedule::Onecycle.lr(0.1, 30, 100, 0), 0.1));
        assert!(Schedule::Onecycle.lr(0.1, 99, 100, 0) < 1e-3);
    }
}
