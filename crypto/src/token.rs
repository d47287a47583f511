//! Bearer tokens for the vault's API clients.
//!
//! A token is `rvt_` followed by the unpadded base64url encoding of 32
//! random bytes (43 characters). Only [`hash_token`] of it is stored, so a
//! copy of the token table does not let anyone call the API. Because the
//! token carries 256 bits of entropy, a fast unsalted hash is enough: there
//! is nothing to brute-force (unlike a password or a claim code).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::CryptoError;
use crate::random::RandomSource;

/// The prefix that marks a reporter-vault token, so secret scanners and
/// humans can recognise one that leaked into a log or a repository.
pub const TOKEN_PREFIX: &str = "rvt_";

/// A freshly generated bearer token, to be shown once to its holder.
///
/// No `Debug` or `Clone`; wiped on drop.
pub struct Token(SecretString);

impl Token {
    /// The token text, to hand to its holder exactly once. Never log it.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Generates a token with 256 bits of entropy from `rng`.
pub fn generate_token(rng: &dyn RandomSource) -> Result<Token, CryptoError> {
    let mut raw = Zeroizing::new([0u8; 32]);
    rng.fill(raw.as_mut())?;
    // Sized up front so the String never reallocates and leaves a copy behind.
    let mut text = String::with_capacity(TOKEN_PREFIX.len() + 43);
    text.push_str(TOKEN_PREFIX);
    URL_SAFE_NO_PAD.encode_string(raw.as_slice(), &mut text);
    Ok(Token(SecretString::from(text)))
}

/// SHA-256 of the token text (prefix included): the value stored and looked
/// up. Compare stored hashes with [`hashes_equal`].
pub fn hash_token(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Constant-time equality of two token hashes, so response timing does not
/// reveal how many leading bytes of a guess matched.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::DeterministicRandom;

    #[test]
    fn token_shape() {
        let t = generate_token(&DeterministicRandom::new(1)).unwrap();
        let s = t.expose_secret();
        assert!(s.starts_with("rvt_"));
        assert_eq!(s.len(), 4 + 43);
        let raw = URL_SAFE_NO_PAD.decode(&s[4..]).unwrap();
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn token_kat() {
        // First 32 bytes of DeterministicRandom(0) = SHA-256(16 zero bytes).
        let t = generate_token(&DeterministicRandom::new(0)).unwrap();
        let raw = hex::decode("374708fff7719dd5979ec875d56cd2286f6d3cf7ec317a3b25632aab28ec37bb")
            .unwrap();
        assert_eq!(
            t.expose_secret(),
            format!("rvt_{}", URL_SAFE_NO_PAD.encode(raw))
        );
    }

    #[test]
    fn hash_kat() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hex::encode(hash_token("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn equality() {
        let a = hash_token("rvt_a");
        let b = hash_token("rvt_b");
        assert!(hashes_equal(&a, &a));
        assert!(!hashes_equal(&a, &b));
    }
}
