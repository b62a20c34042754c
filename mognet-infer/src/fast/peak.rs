//! Micro-benchmarks of the machine's peak: i32 vector adds (what the fast kernels issue, one per
//! ternary MAC) and, where the CPU has AVX-512 VNNI, int8 multiply-accumulates (`vpdpbusd`, what
//! an int8 engine issues). Measured, not assumed: the roofline of `mognet-infer bench`.

use std::time::Instant;

use super::Variant;

/// Peak operations per second on one thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// i32 lane additions per second with the variant's vectors.
    pub i32_adds: f64,
    /// int8 multiply-accumulates per second with VNNI, if the CPU has it.
    pub int8_macs: Option<f64>,
}

const ITERS: u64 = 20_000_000;

fn time(f: impl Fn() -> u64) -> f64 {
    // Best of three: the peak is what the core can do, not what a noisy neighbour leaves.
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let ops = std::hint::black_box(f());
            ops as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// Eight vectors of 16 i32, each updated with its neighbour every iteration: a recurrence the
/// compiler cannot fold into a closed form, with enough independent work to fill the pipes.
#[inline(always)]
fn portable_adds(iters: u64) -> u64 {
    let mut acc: [[i32; 16]; 8] = std::hint::black_box(std::array::from_fn(|k| [k as i32 + 1; 16]));
    for _ in 0..iters {
        for k in 0..8 {
            let next = acc[(k + 1) % 8];
            for i in 0..16 {
                acc[k][i] = acc[k][i].wrapping_add(next[i]);
            }
        }
    }
    std::hint::black_box(acc);
    iters * 8 * 16
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn avx512_adds(iters: u64) -> u64 {
    portable_adds(iters)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,bmi1,bmi2")]
unsafe fn avx2_adds(iters: u64) -> u64 {
    portable_adds(iters)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_macs(iters: u64) -> u64 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_epi8(3);
    let b = _mm512_set1_epi8(-1);
    let mut acc = [_mm512_setzero_si512(); 8];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_dpbusd_epi32(*v, a, b);
        }
    }
    std::hint::black_box(acc);
    // 16 lanes, each 4 u8 x s8 products accumulated.
    iters * 8 * 64
}

/// Measures the peak of `variant` on the calling thread (about a second).
pub fn measure(variant: Variant) -> Peak {
    let i32_adds = match variant {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: callers pass a variant from `Variant::available()`, whose features the CPU has.
        Variant::Avx512 | Variant::Avx512Vnni => time(|| unsafe { avx512_adds(ITERS) }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2.
        Variant::Avx2 => time(|| unsafe { avx2_adds(ITERS) }),
        _ => time(|| portable_adds(ITERS / 4)),
    };
    #[cfg(target_arch = "x86_64")]
    let int8_macs = (std::arch::is_x86_feature_detected!("avx512vnni")
        && std::arch::is_x86_feature_detected!("avx512bw"))
    // SAFETY: AVX-512 F/BW/VNNI are present (checked on the line above).
    .then(|| time(|| unsafe { vnni_macs(ITERS) }));
    #[cfg(not(target_arch = "x86_64"))]
    let int8_macs = None;
    Peak {
        i32_adds,
        int8_macs,
    }
}
