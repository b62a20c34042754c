//! Threshold requantization: BN + QReLU folded into `Q` sorted integer thresholds per channel.

/// How a channel's accumulator maps to codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelRequant {
    /// Code = `#{j : acc >= t[j]}`, thresholds non-decreasing (positive folded scale).
    Up(Vec<i32>),
    /// Code = `#{j : acc <= t[j]}`, thresholds non-increasing (negative folded scale).
    Down(Vec<i32>),
    /// The same code whatever the accumulator (zero folded scale).
    Constant(u8),
}

impl ChannelRequant {
    /// The code of one accumulator.
    #[inline]
    pub fn code(&self, acc: i32) -> u8 {
        match self {
            ChannelRequant::Up(t) => t.iter().filter(|&&tj| acc >= tj).count() as u8,
            ChannelRequant::Down(t) => t.iter().filter(|&&tj| acc <= tj).count() as u8,
            ChannelRequant::Constant(c) => *c,
        }
    }
}

/// Requantizes `channels.len()` channels of `hw` accumulators to codes.
pub fn requantize(acc: &[i32], hw: usize, channels: &[ChannelRequant]) -> Vec<u8> {
    let mut out = vec![0u8; acc.len()];
    for (c, rq) in channels.iter().enumerate() {
        for (o, &a) in out[c * hw..(c + 1) * hw]
            .iter_mut()
            .zip(&acc[c * hw..(c + 1) * hw])
        {
            *o = rq.code(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_count_thresholds_in_each_direction() {
        let up = ChannelRequant::Up(vec![-5, 0, 0, 3, 8, 8, 20]);
        let codes: Vec<u8> = [-6, -5, -1, 0, 3, 7, 8, 19, 20, 1000]
            .iter()
            .map(|&a| up.code(a))
            .collect();
        assert_eq!(codes, vec![0, 1, 1, 3, 4, 4, 6, 6, 7, 7]);
        let down = ChannelRequant::Down(vec![10, 4, 4, 0, -2, -9, -9]);
        let codes: Vec<u8> = [11, 10, 4, 1, 0, -2, -9, -10]
            .iter()
            .map(|&a| down.code(a))
            .collect();
        assert_eq!(codes, vec![0, 1, 3, 3, 4, 5, 7, 7]);
        assert_eq!(ChannelRequant::Constant(5).code(i32::MIN), 5);
        assert_eq!(
            requantize(&[1, 9, -3, 4], 2, &[up, ChannelRequant::Constant(2)]),
            vec![3, 6, 2, 2]
        );
    }
}
