//! Secret key material.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CryptoError;
use crate::random::RandomSource;

/// A 256-bit secret key (a KEK, a data key, a MAC key or a signing seed).
///
/// Wiped on drop; no `Debug`, `Clone` or `Serialize`, so it cannot leak
/// through a log line or multiply in memory unnoticed. The only way to read
/// it is [`Key32::expose_secret`], whose call sites say why.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    /// Takes ownership of existing key bytes (a test vector, a decoded
    /// keyring entry).
    ///
    /// The caller's copy of `bytes` is moved in, but a `[u8; 32]` is `Copy`:
    /// a caller holding its own copy must wipe it.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Draws a fresh key from `rng`, written straight into the wiping
    /// container so no unwiped copy exists.
    pub fn generate(rng: &dyn RandomSource) -> Result<Self, CryptoError> {
        let mut key = Self([0u8; 32]);
        rng.fill(&mut key.0)?;
        Ok(key)
    }

    /// An all-zero key to be filled in place (decryption output, decoding),
    /// so key bytes are never staged in an unwiped temporary.
    pub(crate) fn zeroed() -> Self {
        Self([0u8; 32])
    }

    /// Mutable access for in-place filling; crate-private.
    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }

    /// The raw key bytes. Every call is a place a key can escape: keep the
    /// borrow short and never copy it into an unwiped buffer.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::DeterministicRandom;

    #[test]
    fn generate_uses_rng_stream() {
        let a = Key32::generate(&DeterministicRandom::new(5)).unwrap();
        let b = Key32::generate(&DeterministicRandom::new(5)).unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.expose_secret(), &[0u8; 32]);
    }

    #[test]
    fn zeroize_wipes() {
        let mut k = Key32::from_bytes([7u8; 32]);
        k.zeroize();
        assert_eq!(k.expose_secret(), &[0u8; 32]);
    }
}
