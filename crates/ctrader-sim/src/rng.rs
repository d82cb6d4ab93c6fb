//! A small seeded random number generator, so a price path is the same on every machine and
//! every version of every dependency (xoshiro256** seeded through SplitMix64).

/// Deterministic generator: the same seed gives the same numbers forever.
#[derive(Debug, Clone)]
pub(crate) struct SimRng {
    state: [u64; 4],
    /// The second normal of the last Box-Muller pair, kept so no draw is wasted.
    spare_normal: Option<f64>,
}

impl SimRng {
    /// A generator for `seed`; different `stream`s of one seed are independent sequences.
    pub(crate) fn new(seed: u64, stream: u64) -> SimRng {
        let mut mix = seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F);
        let mut state = [0_u64; 4];
        for slot in &mut state {
            *slot = splitmix64(&mut mix);
        }
        SimRng {
            state,
            spare_normal: None,
        }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.state;
        let result = s1.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }

    /// Uniform in [0, 1), with 53 bits of precision.
    pub(crate) fn uniform(&mut self) -> f64 {
        // The top 53 bits fit exactly in an f64 mantissa, so this cast is exact.
        (self.next_u64() >> 11) as f64 / 9_007_199_254_740_992.0
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// A standard normal draw (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(spare) = self.spare_normal.take() {
            return spare;
        }
        // 1 - uniform() is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        self.spare_normal = Some(radius * angle.sin());
        radius * angle.cos()
    }
}

/// SplitMix64, the recommended way to expand one seed into xoshiro's state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let mut a = SimRng::new(42, 1);
        let mut b = SimRng::new(42, 1);
        let mut c = SimRng::new(42, 2);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn uniform_and_normal_have_the_right_moments() {
        let mut rng = SimRng::new(7, 0);
        let n = 200_000;
        let mut sum = 0.0;
        let mut sum_sq = 0.0;
        let mut min_u: f64 = 1.0;
        let mut max_u: f64 = 0.0;
        for _ in 0..n {
            let u = rng.uniform();
            min_u = min_u.min(u);
            max_u = max_u.max(u);
            let z = rng.normal();
            sum += z;
            sum_sq += z * z;
        }
        assert!(min_u >= 0.0 && max_u < 1.0);
        let mean = sum / f64::from(n);
        let var = sum_sq / f64::from(n) - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
