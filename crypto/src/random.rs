//! Injected randomness.
//!
//! Every function that needs randomness takes a [`RandomSource`], so that
//! production uses the operating system's CSPRNG while tests and known-answer
//! vectors use a reproducible stream. A failing source is an error, never a
//! fallback.

use std::sync::Mutex;

use ring::digest;
use ring::rand::SecureRandom;
use zeroize::Zeroize;

use crate::CryptoError;

/// A source of random bytes.
///
/// Implementations must be cryptographically secure in production; the
/// trait is object-safe so callers hold a `&dyn RandomSource`.
pub trait RandomSource: Send + Sync {
    /// Fills `dest` entirely with random bytes, or fails (and the caller must
    /// fail closed).
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError>;
}

/// The operating system's CSPRNG (through `ring::rand::SystemRandom`).
///
/// The only source to use in production.
#[derive(Default, Clone, Copy)]
pub struct SystemRandomSource;

impl RandomSource for SystemRandomSource {
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError> {
        ring::rand::SystemRandom::new()
            .fill(dest)
            .map_err(|_| CryptoError::Random)
    }
}

/// A reproducible stream for tests and known-answer vectors.
///
/// **Never use in production**: anyone who knows the seed knows every key,
/// nonce and pseudonym it produced.
///
/// The stream is block `0` ‖ block `1` ‖ … where block `i` is
/// `SHA-256(seed as u64 BE ‖ i as u64 BE)`. Successive calls to
/// [`RandomSource::fill`] consume the stream in order, so splitting one
/// request into several yields the same bytes.
pub struct DeterministicRandom {
    state: Mutex<DrbgState>,
}

struct DrbgState {
    seed: u64,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl Drop for DrbgState {
    fn drop(&mut self) {
        self.block.zeroize();
    }
}

impl DeterministicRandom {
    /// Starts the stream for `seed` at its first byte.
    pub fn new(seed: u64) -> Self {
        Self {
            state: Mutex::new(DrbgState {
                seed,
                counter: 0,
                block: [0; 32],
                // Forces a fresh block on first use.
                used: 32,
            }),
        }
    }
}

impl RandomSource for DeterministicRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError> {
        let mut state = self.state.lock().map_err(|_| CryptoError::Random)?;
        for out in dest.iter_mut() {
            if state.used >= state.block.len() {
                let mut ctx = digest::Context::new(&digest::SHA256);
                ctx.update(&state.seed.to_be_bytes());
                ctx.update(&state.counter.to_be_bytes());
                let d = ctx.finish();
                state.block.copy_from_slice(d.as_ref());
                state.counter = state.counter.checked_add(1).ok_or(CryptoError::Random)?;
                state.used = 0;
            }
            let used = state.used;
            *out = *state.block.get(used).ok_or(CryptoError::Random)?;
            state.used = used + 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_stream_matches_definition() {
        let rng = DeterministicRandom::new(42);
        let mut got = [0u8; 70];
        rng.fill(&mut got[..5]).unwrap();
        rng.fill(&mut got[5..40]).unwrap();
        rng.fill(&mut got[40..]).unwrap();
        let mut want = Vec::new();
        for i in 0u64..3 {
            let mut input = 42u64.to_be_bytes().to_vec();
            input.extend_from_slice(&i.to_be_bytes());
            want.extend_from_slice(digest::digest(&digest::SHA256, &input).as_ref());
        }
        assert_eq!(&got[..], &want[..70]);
    }

    #[test]
    fn deterministic_stream_kat() {
        // SHA-256 of sixteen zero bytes (seed 0, counter 0).
        let rng = DeterministicRandom::new(0);
        let mut got = [0u8; 32];
        rng.fill(&mut got).unwrap();
        assert_eq!(
            hex::encode(got),
            "374708fff7719dd5979ec875d56cd2286f6d3cf7ec317a3b25632aab28ec37bb"
        );
    }

    #[test]
    fn different_seeds_differ() {
        let (a, b) = (DeterministicRandom::new(1), DeterministicRandom::new(2));
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        a.fill(&mut x).unwrap();
        b.fill(&mut y).unwrap();
        assert_ne!(x, y);
    }

    #[test]
    fn system_random_fills() {
        let mut x = [0u8; 64];
        SystemRandomSource.fill(&mut x).unwrap();
        assert_ne!(x, [0u8; 64]);
    }
}
