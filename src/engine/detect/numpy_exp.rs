//! `np.exp` on a float32 array, as numpy computes it on x86-64 machines with AVX2+FMA or
//! AVX-512F (every machine ddddocr is likely to run on): a Cody-Waite range reduction and a
//! rational minimax approximation with fused multiply-adds
//! (numpy/_core/src/umath/loops_exponent_log.dispatch.c.src, `simd_exp_FLOAT`). It is not
//! correctly rounded: in a sample of 20 million values in [-12, 8] it differs from the
//! correctly rounded exp in 39 % of them by up to 2 ulp, which is enough to move a box
//! coordinate across an integer, so the detector uses this and not `f32::exp`.

// numpy's constants (npy_math_internal.h: NPY_LOG2Ef, NPY_RINT_CVT_MAGICf,
// NPY_CODY_WAITE_LOGE_2_HIGHf/LOWf, NPY_COEFF_P0..P5_EXPf, NPY_COEFF_Q0..Q2_EXPf and the
// kernel's xmax/xmin), written as the float32 bits their C literals round to.
const LOG2E: f32 = f32::from_bits(0x3FB8_AA3B);
/// Adding and subtracting 1.5 * 2^23 rounds to the nearest integer (ties to even).
const RINT_MAGIC: f32 = f32::from_bits(0x4B40_0000);
/// -ln(2) split for the reduction: the high part has few bits, so `q * LN2_HIGH` is exact.
const LN2_HIGH: f32 = f32::from_bits(0xBF31_7200);
const LN2_LOW: f32 = f32::from_bits(0xB5BF_BE8E);
/// The numerator's coefficients, constant term first (P0 rounds to exactly 1).
const P: [f32; 6] = [
    f32::from_bits(0x3F80_0000),
    f32::from_bits(0x3F39_CBD5),
    f32::from_bits(0x3E7D_4C58),
    f32::from_bits(0x3D51_7D8C),
    f32::from_bits(0x3BDD_7159),
    f32::from_bits(0x3A05_3DD8),
];
const Q: [f32; 3] = [
    f32::from_bits(0x3F80_0000),
    f32::from_bits(0xBE8C_6857),
    f32::from_bits(0x3CB0_E832),
];
/// Beyond these numpy answers inf and 0 without computing.
const X_MAX: f32 = f32::from_bits(0x42B1_7218);
const X_MIN: f32 = f32::from_bits(0xC2CF_F1B5);

pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return f32::NAN;
    }
    if x >= X_MAX {
        return f32::INFINITY;
    }
    if x <= X_MIN {
        return 0.0;
    }
    let quadrant = ((x * LOG2E) + RINT_MAGIC) - RINT_MAGIC;
    // The third Cody-Waite constant is 0 in numpy: fma(q, 0, x) leaves x as it is.
    let reduced = quadrant.mul_add(LN2_LOW, quadrant.mul_add(LN2_HIGH, x));
    let mut numerator = P[5].mul_add(reduced, P[4]);
    for &p in P[..4].iter().rev() {
        numerator = numerator.mul_add(reduced, p);
    }
    let denominator = Q[2].mul_add(reduced, Q[1]).mul_add(reduced, Q[0]);
    scale_by_power_of_two(numerator / denominator, quadrant as i32)
}

/// `poly * 2^quadrant` rounded once, as `_mm512_scalef_ps` (and the AVX2 path's exponent
/// addition, with its division for subnormal results) computes it.
fn scale_by_power_of_two(poly: f32, quadrant: i32) -> f32 {
    // poly has 24 significant bits, so the product is exact in f64 and rounds once to f32.
    (poly as f64 * (quadrant as f64).exp2()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_numpy_bit_for_bit() {
        // (input bits, np.exp(np.float32) bits) from numpy 2.4.6 and 1.26.4 on AVX-512; the
        // first four are inputs where numpy's answer is not the correctly rounded one.
        let cases: [(u32, u32); 8] = [
            (0x40e0_4bf9, 0x448a_5b39),
            (0xc111_de72, 0x38e6_46e9),
            (0xc062_2464, 0x3cef_3be8),
            (0xbf81_0a48, 0x3eba_d471),
            (0x0000_0000, 0x3f80_0000),
            (0x3f80_0000, 0x402d_f855),
            (0x42b1_7218, 0x7f80_0000),
            (0xc2d0_0000, 0x0000_0000),
        ];
        for (x, expected) in cases {
            let got = exp(f32::from_bits(x)).to_bits();
            assert_eq!(got, expected, "exp({}) = {got:#x}", f32::from_bits(x));
        }
    }
}
