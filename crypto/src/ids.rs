//! Pseudonyms and opaque identifiers.
//!
//! Both are 128 bits of pure randomness: nothing is derived from the person,
//! the report or the time, so two pseudonyms of one reporter cannot be
//! linked, and no one can compute a reporter's pseudonym from their
//! identity. Encoding: lowercase RFC 4648 base32 without padding (26
//! characters), which is case-insensitive-safe, URL-safe and has no
//! ambiguous punctuation.

use data_encoding::BASE32_NOPAD;

use crate::CryptoError;
use crate::random::RandomSource;

/// The prefix of reporter pseudonyms.
pub const PSEUDONYM_PREFIX: &str = "rp";

fn random_b32(rng: &dyn RandomSource) -> Result<String, CryptoError> {
    let mut raw = [0u8; 16];
    rng.fill(&mut raw)?;
    Ok(BASE32_NOPAD.encode(&raw).to_ascii_lowercase())
}

/// A new reporter pseudonym: `rp_` + 26 base32 characters.
pub fn new_pseudonym(rng: &dyn RandomSource) -> Result<String, CryptoError> {
    new_id(rng, PSEUDONYM_PREFIX)
}

/// A new identifier `prefix_` + 26 base32 characters (e.g. `dis_…`,
/// `prn_…`). The prefix names the entity so an id pasted in the wrong place
/// is recognisable.
pub fn new_id(rng: &dyn RandomSource, prefix: &str) -> Result<String, CryptoError> {
    let body = random_b32(rng)?;
    let mut out = String::with_capacity(prefix.len() + 1 + body.len());
    out.push_str(prefix);
    out.push('_');
    out.push_str(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::DeterministicRandom;

    #[test]
    fn pseudonym_kat() {
        // First 16 bytes of DeterministicRandom(0): 374708fff7719dd5979ec875d56cd228,
        // base32-encoded with Python's base64.b32encode.
        let p = new_pseudonym(&DeterministicRandom::new(0)).unwrap();
        assert_eq!(p, "rp_g5dqr77xogo5lf46zb25k3gsfa");
    }

    #[test]
    fn id_shape() {
        let rng = DeterministicRandom::new(3);
        let a = new_id(&rng, "dis").unwrap();
        let b = new_id(&rng, "dis").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("dis_"));
        assert_eq!(a.len(), 4 + 26);
        assert!(
            a[4..]
                .chars()
                .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c))
        );
    }
}
