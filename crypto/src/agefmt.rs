//! What users decrypt: standard `age` files.
//!
//! Identities leaving the vault (an approved disclosure, payee details for
//! finance) are encrypted to the receiving person's own `age` X25519
//! recipient, so they open them with the stock `age` tool and the vault never
//! holds their private key. Only X25519 recipients (`age1…`) are accepted:
//! no passphrases (a human-chosen secret typed into a web form) and no
//! plugins (code execution on the server).
//!
//! `age` draws its ephemeral key and nonce from the operating system
//! directly; these files are therefore not reproducible and have no
//! known-answer vectors, and are tested by round trip through the real
//! `age` CLI instead.

use std::str::FromStr;

use crate::CryptoError;

fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, CryptoError> {
    // age's parse errors are fixed strings; the recipient is public anyway.
    age::x25519::Recipient::from_str(s.trim())
        .map_err(|e| CryptoError::Age(format!("invalid x25519 recipient: {e}")))
}

/// Checks that `s` is an `age` X25519 recipient (`age1…`), so a bad key is
/// refused when it is registered rather than when an identity must be sent.
pub fn validate_recipient(s: &str) -> Result<(), CryptoError> {
    parse_recipient(s).map(|_| ())
}

/// Encrypts `plaintext` to `recipient` in the binary `age` format
/// (`age -d -i key.txt file.age` opens it).
///
/// The error never contains plaintext.
pub fn encrypt_to_recipient(recipient: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let r = parse_recipient(recipient)?;
    age::encrypt(&r, plaintext).map_err(|e| CryptoError::Age(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn round_trip_in_process() {
        let id = age::x25519::Identity::generate();
        let r = id.to_public().to_string();
        validate_recipient(&r).unwrap();
        let ct = encrypt_to_recipient(&r, b"name: Zhang San").unwrap();
        assert!(ct.starts_with(b"age-encryption.org/v1\n"));
        let pt = age::decrypt(&id, &ct).unwrap();
        assert_eq!(pt, b"name: Zhang San");
    }

    #[test]
    fn fail_invalid_recipients() {
        for bad in [
            "",
            "age1",
            "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG",
            "age1yubikey1qwerty",
        ] {
            assert!(validate_recipient(bad).is_err(), "{bad}");
            assert!(encrypt_to_recipient(bad, b"x").is_err());
        }
        // A secret key pasted by mistake is refused, and not echoed.
        let id = age::x25519::Identity::generate();
        let secret = id.to_string();
        let err = validate_recipient(secret.expose_secret()).unwrap_err();
        assert!(!err.to_string().contains(secret.expose_secret()));
    }
}
