//! Anonymous reporters' claim codes.
//!
//! An anonymous reporter receives a claim code once, at intake, and later
//! presents it to claim a reward. It is the reporter's only credential, so:
//!
//! * it carries 100 bits of entropy: 20 Crockford base32 characters, shown as
//!   four groups of five (`7K3QD-M0ZXH-...`) to be copied by hand;
//! * input is forgiving ([`normalize_claim_code`]): case, dashes, spaces and
//!   the look-alikes I/L/O are accepted;
//! * only an Argon2id hash of the normalized code is stored
//!   ([`hash_claim_code`]), so a stolen table cannot be used to claim, and
//!   each guess against it costs a memory-hard hash.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::CryptoError;
use crate::random::RandomSource;

/// Crockford's base32 alphabet: digits and letters without I, L, O, U.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a claim code (100 bits).
const CODE_CHARS: usize = 20;
/// Argon2id memory cost in KiB (OWASP's minimum recommended setting).
const M_COST_KIB: u32 = 19_456;
/// Argon2id passes.
const T_COST: u32 = 2;
/// Argon2id lanes.
const P_COST: u32 = 1;
/// Upper bounds accepted when verifying, so a tampered stored hash cannot
/// make one verification consume gigabytes or minutes.
const MAX_VERIFY_M_COST_KIB: u32 = 262_144;
const MAX_VERIFY_T_COST: u32 = 16;
const MAX_VERIFY_P_COST: u32 = 8;

/// Generates a claim code: 20 Crockford characters as `XXXXX-XXXXX-XXXXX-XXXXX`.
///
/// Each character takes the low five bits of one random byte; since 256 is
/// a multiple of 32 this is exactly uniform.
pub fn generate_claim_code(rng: &dyn RandomSource) -> Result<SecretString, CryptoError> {
    let mut raw = Zeroizing::new([0u8; CODE_CHARS]);
    rng.fill(raw.as_mut())?;
    // Sized up front so no reallocation leaves a copy behind.
    let mut out = String::with_capacity(CODE_CHARS + 3);
    for (i, b) in raw.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        let c = CROCKFORD
            .get(usize::from(b & 0x1f))
            .ok_or(CryptoError::Random)?;
        out.push(char::from(*c));
    }
    Ok(SecretString::from(out))
}

/// Canonical form of a typed claim code, or `None` if it cannot be one.
///
/// Uppercases, drops dashes and whitespace, reads I and L as 1 and O as 0
/// (Crockford's decoding rules), then requires exactly 20 alphabet
/// characters. The result is the claim code itself: treat it as secret.
pub fn normalize_claim_code(input: &str) -> Option<String> {
    let mut out = String::with_capacity(CODE_CHARS);
    for c in input.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let c = match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        };
        if !c.is_ascii() || !CROCKFORD.contains(&(c as u8)) {
            return None;
        }
        if out.len() == CODE_CHARS {
            return None;
        }
        out.push(c);
    }
    (out.len() == CODE_CHARS).then_some(out)
}

fn argon2id() -> Result<Argon2<'static>, CryptoError> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, Some(32)).map_err(|_| CryptoError::Format)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of
/// the normalized `code`, with a 16-byte salt from `rng`. Fails with
/// [`CryptoError::Format`] if `code` is not a claim code.
pub fn hash_claim_code(code: &str, rng: &dyn RandomSource) -> Result<String, CryptoError> {
    let normalized = Zeroizing::new(normalize_claim_code(code).ok_or(CryptoError::Format)?);
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| CryptoError::Format)?;
    let hash = argon2id()?
        .hash_password(normalized.as_bytes(), &salt)
        .map_err(|_| CryptoError::Format)?;
    Ok(hash.to_string())
}

/// Whether `code` matches the stored PHC string. Any malformed input, a
/// non-Argon2id hash or excessive parameters yield `false` (fail closed).
pub fn verify_claim_code(code: &str, phc: &str) -> bool {
    let Some(normalized) = normalize_claim_code(code) else {
        return false;
    };
    let normalized = Zeroizing::new(normalized);
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_M_COST_KIB
        || params.t_cost() > MAX_VERIFY_T_COST
        || params.p_cost() > MAX_VERIFY_P_COST
    {
        return false;
    }
    Argon2::default()
        .verify_password(normalized.as_bytes(), &hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::DeterministicRandom;
    use secrecy::ExposeSecret;

    #[test]
    fn code_shape() {
        let c = generate_claim_code(&DeterministicRandom::new(1)).unwrap();
        let s = c.expose_secret();
        assert_eq!(s.len(), 23);
        let groups: Vec<&str> = s.split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(groups.iter().all(|g| g.len() == 5));
        assert_eq!(normalize_claim_code(s).unwrap(), s.replace('-', ""));
    }

    #[test]
    fn code_kat() {
        // Stream bytes 37 47 08 ff f7 71 9d d5 97 9e c8 75 d5 6c d2 28 6f 6d 3c f7,
        // low five bits of each through Crockford's alphabet (computed with Python).
        let c = generate_claim_code(&DeterministicRandom::new(0)).unwrap();
        assert_eq!(c.expose_secret(), "Q78ZQ-HXNQY-8NNCJ-8FDWQ");
    }

    #[test]
    fn normalization() {
        let canonical = "0123456789ABCDEFGHJK";
        assert_eq!(
            normalize_claim_code("01234-56789-abcde-fghjk").as_deref(),
            Some(canonical)
        );
        assert_eq!(
            normalize_claim_code(" o1234 56789 ABCDE fghjk ").as_deref(),
            Some(canonical)
        );
        assert_eq!(
            normalize_claim_code("OI234-56789-ABCDE-FGHJK").as_deref(),
            Some("0123456789ABCDEFGHJK")
        );
        assert_eq!(
            normalize_claim_code("L1234-56789-ABCDE-FGHJK").as_deref(),
            Some("1123456789ABCDEFGHJK")
        );
    }

    #[test]
    fn fail_normalization_rejects() {
        assert_eq!(normalize_claim_code(""), None);
        assert_eq!(normalize_claim_code("0123456789ABCDEFGHJ"), None); // 19
        assert_eq!(normalize_claim_code("0123456789ABCDEFGHJKM"), None); // 21
        assert_eq!(normalize_claim_code("U123456789ABCDEFGHJK"), None); // U not Crockford
        assert_eq!(normalize_claim_code("0123456789ABCDEFGHJ*"), None);
        assert_eq!(normalize_claim_code("０123456789ABCDEFGHJK"), None); // full-width digit
    }

    #[test]
    fn hash_and_verify() {
        let rng = DeterministicRandom::new(9);
        let code = generate_claim_code(&rng).unwrap();
        let phc = hash_claim_code(code.expose_secret(), &rng).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_claim_code(code.expose_secret(), &phc));
        // Forgiving input verifies too.
        let sloppy = code.expose_secret().to_lowercase().replace('-', " ");
        assert!(verify_claim_code(&sloppy, &phc));
    }

    #[test]
    fn hash_kat() {
        // Argon2id over a fixed code and the fixed salt (first 16 bytes of
        // DeterministicRandom(0)); pins parameters, salt handling and normalization.
        let phc = hash_claim_code("ABCDE-FGHJK-MNPQR-STVWX", &DeterministicRandom::new(0)).unwrap();
        assert_eq!(phc, HASH_KAT);
    }

    /// From the reference implementation (Debian's `argon2` CLI):
    /// `echo -n ABCDEFGHJKMNPQRSTVWX | argon2 $'\x37\x47\x08\xff\xf7\x71\x9d\xd5\x97\x9e\xc8\x75\xd5\x6c\xd2\x28' -id -k 19456 -t 2 -p 1 -l 32 -e`
    const HASH_KAT: &str = "$argon2id$v=19$m=19456,t=2,p=1$N0cI//dxndWXnsh11WzSKA$7t5xGXPdqjsQsDxzee2urGPNLkqiUUQ8NHpqyeQFDKI";

    #[test]
    fn fail_wrong_code() {
        let rng = DeterministicRandom::new(10);
        let phc = hash_claim_code("ABCDE-FGHJK-MNPQR-STVWX", &rng).unwrap();
        assert!(!verify_claim_code("ABCDE-FGHJK-MNPQR-STVWY", &phc));
        assert!(!verify_claim_code("not a code", &phc));
        assert!(!verify_claim_code("ABCDE-FGHJK-MNPQR-STVWX", "garbage"));
    }

    #[test]
    fn fail_hash_rejects_non_code() {
        assert!(matches!(
            hash_claim_code("short", &DeterministicRandom::new(0)),
            Err(CryptoError::Format)
        ));
    }

    #[test]
    fn fail_weak_or_foreign_hash_refused() {
        let rng = DeterministicRandom::new(11);
        let code = "ABCDE-FGHJK-MNPQR-STVWX";
        // A valid Argon2i hash of the right code must still be refused.
        let salt = SaltString::encode_b64(&[1u8; 16]).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default());
        let phc = argon2i
            .hash_password(b"ABCDEFGHJKMNPQRSTVWX", &salt)
            .unwrap()
            .to_string();
        assert!(!verify_claim_code(code, &phc));
        // Excessive memory cost in a tampered hash is refused without hashing.
        let good = hash_claim_code(code, &rng).unwrap();
        let tampered = good.replace("m=19456", "m=4194304");
        assert!(!verify_claim_code(code, &tampered));
    }
}
