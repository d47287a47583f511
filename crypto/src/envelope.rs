//! Per-record envelope encryption.
//!
//! Each sealed record (a reporter's identity) gets its own fresh 256-bit data
//! key (DEK). The record is encrypted with AES-256-GCM under the DEK, and the
//! DEK is wrapped by a key-encryption key (KEK) that lives outside the
//! database, behind the [`KeyWrapper`] port: the local keyring now, a
//! PKCS#11 HSM later. Stealing the database yields nothing without the KEK;
//! rotating the KEK rewrites a few dozen bytes per record
//! ([`rewrap`]) without ever decrypting an identity.
//!
//! # Binding
//!
//! Both layers are bound to the record id and jurisdiction through their
//! associated data, so a ciphertext copied onto another row, or into another
//! jurisdiction's tenant, fails to open. The KEK version is bound through the
//! wrap AAD only: the DEK can be recovered solely through a wrap made for
//! that record, jurisdiction and KEK version, and so the data ciphertext need
//! not change when the DEK is rewrapped.
//!
//! # Byte format, version 1
//!
//! All integers are big-endian.
//!
//! | bytes | field |
//! |---|---|
//! | 3 | magic `"RVE"` |
//! | 1 | format version, `0x01` |
//! | 4 | KEK version (`u32`) |
//! | 2 | wrapped-key length `w` (`u16`) |
//! | `w` | wrapped DEK (opaque to this module; produced by the [`KeyWrapper`]) |
//! | 12 | data nonce |
//! | `n` | AES-256-GCM ciphertext of the plaintext (`n` = plaintext length) |
//! | 16 | AES-256-GCM tag |
//!
//! Associated data (`lp16(x)` = `x`'s byte length as `u16` ‖ `x`):
//!
//! * wrap AAD = `"reporter-vault/envelope/wrap"` ‖ `0x01` ‖ KEK version
//!   (`u32`) ‖ `lp16(record_id)` ‖ `lp16(jurisdiction)`
//! * data AAD = `"reporter-vault/envelope/data"` ‖ `0x01` ‖
//!   `lp16(record_id)` ‖ `lp16(jurisdiction)`
//!
//! The local keyring's wrap (see [`crate::keyring`]) is 60 bytes:
//! 12-byte random nonce ‖ AES-256-GCM(KEK, DEK, wrap AAD) (32 + 16 bytes).
//!
//! [`seal`] draws from the random source in this order: the DEK (32 bytes),
//! then whatever the wrapper draws (the keyring: a 12-byte wrap nonce), then
//! the data nonce (12 bytes). Known-answer vectors depend on this order.
//!
//! Random 96-bit nonces are safe here: each DEK encrypts exactly one
//! message, and a KEK should be rotated well before it has wrapped 2^32
//! keys.
//!
//! # Errors
//!
//! Structurally malformed input is [`CryptoError::Format`]; a KEK version the
//! wrapper does not hold is [`CryptoError::UnknownKeyVersion`]; every
//! authentication failure (tampering, swapped record, wrong key) is the
//! opaque [`CryptoError::Integrity`]. Intermediate DEK bytes are wiped;
//! `ring` does not wipe its AES key schedules, which live only for one call.
//!
//! The same format is described for non-Rust readers in
//! `docs/envelope-format.md`.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;
use crate::random::RandomSource;
use crate::secret::Key32;

/// The format version written by [`seal`] and the only one [`open`] accepts.
pub const FORMAT_VERSION: u8 = 1;

const MAGIC: &[u8; 3] = b"RVE";
const WRAP_LABEL: &[u8] = b"reporter-vault/envelope/wrap";
const DATA_LABEL: &[u8] = b"reporter-vault/envelope/data";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The port through which data keys are wrapped; the local keyring
/// implements it now, a PKCS#11 HSM later.
///
/// Implementations must authenticate `aad` (so a wrap cannot be moved to
/// another record, jurisdiction or version) and must return
/// [`CryptoError::UnknownKeyVersion`] for a version they do not hold and
/// [`CryptoError::Integrity`] when authentication fails.
pub trait KeyWrapper: Send + Sync {
    /// The KEK version new envelopes are wrapped under.
    fn active_version(&self) -> u32;

    /// Wraps `dek` under KEK `version`, authenticating `aad`.
    fn wrap(
        &self,
        version: u32,
        dek: &Key32,
        aad: &[u8],
        rng: &dyn RandomSource,
    ) -> Result<Vec<u8>, CryptoError>;

    /// Recovers a DEK wrapped by [`KeyWrapper::wrap`] with the same `version`
    /// and `aad`.
    fn unwrap(&self, version: u32, wrapped: &[u8], aad: &[u8]) -> Result<Key32, CryptoError>;
}

/// What an envelope is bound to: opening it under any other context fails.
#[derive(Clone, Copy)]
pub struct EnvelopeContext<'a> {
    /// The id of the record (row) that owns the envelope.
    pub record_id: &'a str,
    /// The jurisdiction (tenant) the record belongs to.
    pub jurisdiction: &'a str,
}

fn push_lp16(out: &mut Vec<u8>, field: &str) -> Result<(), CryptoError> {
    let len = u16::try_from(field.len()).map_err(|_| CryptoError::Format)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field.as_bytes());
    Ok(())
}

fn wrap_aad(kek_version: u32, ctx: &EnvelopeContext<'_>) -> Result<Vec<u8>, CryptoError> {
    let mut aad = Vec::with_capacity(
        WRAP_LABEL.len() + 1 + 4 + 4 + ctx.record_id.len() + ctx.jurisdiction.len(),
    );
    aad.extend_from_slice(WRAP_LABEL);
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(&kek_version.to_be_bytes());
    push_lp16(&mut aad, ctx.record_id)?;
    push_lp16(&mut aad, ctx.jurisdiction)?;
    Ok(aad)
}

fn data_aad(ctx: &EnvelopeContext<'_>) -> Result<Vec<u8>, CryptoError> {
    let mut aad =
        Vec::with_capacity(DATA_LABEL.len() + 1 + 4 + ctx.record_id.len() + ctx.jurisdiction.len());
    aad.extend_from_slice(DATA_LABEL);
    aad.push(FORMAT_VERSION);
    push_lp16(&mut aad, ctx.record_id)?;
    push_lp16(&mut aad, ctx.jurisdiction)?;
    Ok(aad)
}

/// An AES-256-GCM key for one call; `ring` copies the key into its own
/// schedule, so the DEK bytes are borrowed only for construction.
pub(crate) fn aead_key(key: &Key32) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, key.expose_secret())
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Format)
}

/// A structurally valid envelope, borrowed.
struct Parsed<'a> {
    kek_version: u32,
    wrapped: &'a [u8],
    nonce: [u8; NONCE_LEN],
    /// Ciphertext ‖ tag.
    sealed: &'a [u8],
    /// Nonce ‖ ciphertext ‖ tag, copied verbatim by [`rewrap`].
    data_part: &'a [u8],
}

fn parse(envelope: &[u8]) -> Result<Parsed<'_>, CryptoError> {
    let (head, rest) = envelope
        .split_first_chunk::<4>()
        .ok_or(CryptoError::Format)?;
    let [m0, m1, m2, version] = *head;
    if [m0, m1, m2] != *MAGIC || version != FORMAT_VERSION {
        return Err(CryptoError::Format);
    }
    let (kek_version, rest) = rest.split_first_chunk::<4>().ok_or(CryptoError::Format)?;
    let (wrapped_len, rest) = rest.split_first_chunk::<2>().ok_or(CryptoError::Format)?;
    let wrapped_len = usize::from(u16::from_be_bytes(*wrapped_len));
    if wrapped_len == 0 {
        return Err(CryptoError::Format);
    }
    let (wrapped, data_part) = rest
        .split_at_checked(wrapped_len)
        .ok_or(CryptoError::Format)?;
    let (nonce, sealed) = data_part
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(CryptoError::Format)?;
    if sealed.len() < TAG_LEN {
        return Err(CryptoError::Format);
    }
    Ok(Parsed {
        kek_version: u32::from_be_bytes(*kek_version),
        wrapped,
        nonce: *nonce,
        sealed,
        data_part,
    })
}

fn assemble(
    kek_version: u32,
    wrapped: &[u8],
    capacity_tail: usize,
) -> Result<Vec<u8>, CryptoError> {
    let wrapped_len = u16::try_from(wrapped.len()).map_err(|_| CryptoError::Format)?;
    if wrapped_len == 0 {
        return Err(CryptoError::Format);
    }
    let mut out = Vec::with_capacity(4 + 4 + 2 + wrapped.len() + capacity_tail);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&kek_version.to_be_bytes());
    out.extend_from_slice(&wrapped_len.to_be_bytes());
    out.extend_from_slice(wrapped);
    Ok(out)
}

/// Encrypts `plaintext` under a fresh random DEK wrapped by the wrapper's
/// active KEK version, bound to `ctx`.
pub fn seal(
    wrapper: &dyn KeyWrapper,
    ctx: &EnvelopeContext<'_>,
    plaintext: &[u8],
    rng: &dyn RandomSource,
) -> Result<Vec<u8>, CryptoError> {
    let data_aad = data_aad(ctx)?;
    let version = wrapper.active_version();
    let wrap_aad = wrap_aad(version, ctx)?;
    let dek = Key32::generate(rng)?;
    let wrapped = wrapper.wrap(version, &dek, &wrap_aad, rng)?;
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)?;

    // One allocation sized for the whole envelope: the plaintext is copied in
    // once and encrypted in place, so no reallocation strands a plaintext copy.
    let mut out = assemble(version, &wrapped, NONCE_LEN + plaintext.len() + TAG_LEN)?;
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let key = aead_key(&dek)?;
    let sealed = match out.get_mut(start..) {
        Some(buf) => key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&data_aad),
                buf,
            )
            .map_err(|_| CryptoError::Format),
        None => Err(CryptoError::Format),
    };
    match sealed {
        Ok(tag) => {
            out.extend_from_slice(tag.as_ref());
            Ok(out)
        }
        Err(e) => {
            // The buffer may still hold plaintext.
            out.zeroize();
            Err(e)
        }
    }
}

/// Decrypts an envelope made by [`seal`] (or [`rewrap`]) for the same
/// `ctx`. The plaintext is wiped when the returned buffer is dropped.
pub fn open(
    wrapper: &dyn KeyWrapper,
    ctx: &EnvelopeContext<'_>,
    envelope: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let parsed = parse(envelope)?;
    let wrap_aad = wrap_aad(parsed.kek_version, ctx)?;
    let data_aad = data_aad(ctx)?;
    let dek = wrapper.unwrap(parsed.kek_version, parsed.wrapped, &wrap_aad)?;
    let key = aead_key(&dek)?;
    drop(dek);
    let mut buf = Zeroizing::new(parsed.sealed.to_vec());
    let plain_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(parsed.nonce),
            Aad::from(&data_aad),
            buf.as_mut_slice(),
        )
        .map_err(|_| CryptoError::Integrity)?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

/// The KEK version an envelope's DEK is wrapped under, so rotation jobs can
/// find envelopes still on an old version without any key.
pub fn kek_version(envelope: &[u8]) -> Result<u32, CryptoError> {
    parse(envelope).map(|p| p.kek_version)
}

/// Re-wraps an envelope's DEK under KEK `to_version`.
///
/// Only the DEK is unwrapped; the data nonce, ciphertext and tag are copied
/// byte for byte, so no identity is decrypted to rotate keys. The data part
/// is not authenticated here (that needs decryption): a damaged data part
/// stays damaged and fails at [`open`], as it would have before.
pub fn rewrap(
    wrapper: &dyn KeyWrapper,
    ctx: &EnvelopeContext<'_>,
    envelope: &[u8],
    to_version: u32,
    rng: &dyn RandomSource,
) -> Result<Vec<u8>, CryptoError> {
    let parsed = parse(envelope)?;
    let old_aad = wrap_aad(parsed.kek_version, ctx)?;
    let new_aad = wrap_aad(to_version, ctx)?;
    let dek = wrapper.unwrap(parsed.kek_version, parsed.wrapped, &old_aad)?;
    let wrapped = wrapper.wrap(to_version, &dek, &new_aad, rng)?;
    drop(dek);
    let mut out = assemble(to_version, &wrapped, parsed.data_part.len())?;
    out.extend_from_slice(parsed.data_part);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::{Kek, Keyring};
    use crate::mac::{BlindIndexKey, DisclosureMacKey};
    use crate::random::DeterministicRandom;
    use proptest::prelude::*;

    const VECTORS: &str = include_str!("../tests/vectors/envelope.json");
    const CTX: EnvelopeContext<'static> = EnvelopeContext {
        record_id: "rec_01",
        jurisdiction: "CN-14",
    };
    const PLAINTEXT: &[u8] = "{\"name\":\"张三\",\"phone\":\"+8613800138000\"}".as_bytes();
    /// Magic + version + KEK version + wrapped length.
    const HEADER: usize = 10;

    fn keyring_with(keks: &[(u32, [u8; 32])]) -> Keyring {
        let active = keks.iter().map(|k| k.0).max().unwrap();
        Keyring::from_parts(
            keks.iter()
                .map(|(v, k)| Kek::for_tests(*v, Key32::from_bytes(*k), 0))
                .collect(),
            active,
            BlindIndexKey::from_key(Key32::from_bytes([0xb1; 32])),
            DisclosureMacKey::from_key(Key32::from_bytes([0xd1; 32])),
            Key32::from_bytes([0x5e; 32]),
        )
        .unwrap()
    }

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn sample() -> (Keyring, Vec<u8>) {
        let kr = keyring_with(&[(1, [7; 32])]);
        let env = seal(&kr, &CTX, PLAINTEXT, &DeterministicRandom::new(1)).unwrap();
        (kr, env)
    }

    #[test]
    fn kat_seal_vectors() {
        let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let cases = v["seal"].as_array().unwrap();
        assert!(cases.len() >= 3);
        for c in cases {
            let version = u32::try_from(c["kek_version"].as_u64().unwrap()).unwrap();
            let kr = keyring_with(&[(version, hex32(c["kek_hex"].as_str().unwrap()))]);
            let ctx = EnvelopeContext {
                record_id: c["record_id"].as_str().unwrap(),
                jurisdiction: c["jurisdiction"].as_str().unwrap(),
            };
            let pt = hex::decode(c["plaintext_hex"].as_str().unwrap()).unwrap();
            let rng = DeterministicRandom::new(c["seed"].as_u64().unwrap());
            let env = seal(&kr, &ctx, &pt, &rng).unwrap();
            assert_eq!(
                hex::encode(&env),
                c["envelope_hex"].as_str().unwrap(),
                "{}",
                c["name"]
            );
            assert_eq!(kek_version(&env).unwrap(), version);
            assert_eq!(open(&kr, &ctx, &env).unwrap().as_slice(), pt.as_slice());
            // The DEK the vector says was drawn really unwraps from the envelope.
            let wrapped = &env[HEADER..HEADER + 60];
            let dek = kr
                .unwrap(version, wrapped, &wrap_aad(version, &ctx).unwrap())
                .unwrap();
            assert_eq!(
                hex::encode(dek.expose_secret()),
                c["dek_hex"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn kat_rewrap_vectors() {
        let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        for c in v["rewrap"].as_array().unwrap() {
            let from = u32::try_from(c["from_kek_version"].as_u64().unwrap()).unwrap();
            let to = u32::try_from(c["to_kek_version"].as_u64().unwrap()).unwrap();
            let kr = keyring_with(&[
                (from, hex32(c["from_kek_hex"].as_str().unwrap())),
                (to, hex32(c["to_kek_hex"].as_str().unwrap())),
            ]);
            let ctx = EnvelopeContext {
                record_id: c["record_id"].as_str().unwrap(),
                jurisdiction: c["jurisdiction"].as_str().unwrap(),
            };
            let env = hex::decode(c["envelope_hex"].as_str().unwrap()).unwrap();
            let rng = DeterministicRandom::new(c["seed"].as_u64().unwrap());
            let out = rewrap(&kr, &ctx, &env, to, &rng).unwrap();
            assert_eq!(hex::encode(&out), c["rewrapped_hex"].as_str().unwrap());
            assert_eq!(
                open(&kr, &ctx, &out).unwrap().as_slice(),
                open(&kr, &ctx, &env).unwrap().as_slice()
            );
        }
    }

    #[test]
    fn layout_matches_documentation() {
        let (_, env) = sample();
        assert_eq!(&env[..4], b"RVE\x01");
        assert_eq!(&env[4..8], &1u32.to_be_bytes());
        assert_eq!(&env[8..10], &60u16.to_be_bytes());
        assert_eq!(env.len(), HEADER + 60 + 12 + PLAINTEXT.len() + 16);
    }

    #[test]
    fn round_trip() {
        let (kr, env) = sample();
        assert_eq!(open(&kr, &CTX, &env).unwrap().as_slice(), PLAINTEXT);
        // Fresh randomness gives a different envelope for the same input.
        let env2 = seal(&kr, &CTX, PLAINTEXT, &DeterministicRandom::new(2)).unwrap();
        assert_ne!(env, env2);
        assert_eq!(open(&kr, &CTX, &env2).unwrap().as_slice(), PLAINTEXT);
    }

    #[test]
    fn fail_flipped_bit_anywhere() {
        let (kr, env) = sample();
        let kek_version_range = 4..8;
        for i in 0..env.len() {
            for bit in 0..8 {
                let mut bad = env.clone();
                bad[i] ^= 1 << bit;
                let err = open(&kr, &CTX, &bad).unwrap_err();
                match i {
                    0..4 | 8..10 => assert!(matches!(err, CryptoError::Format), "byte {i}: {err}"),
                    _ if kek_version_range.contains(&i) => {
                        assert!(
                            matches!(err, CryptoError::UnknownKeyVersion(_)),
                            "byte {i}: {err}"
                        )
                    }
                    _ => assert!(matches!(err, CryptoError::Integrity), "byte {i}: {err}"),
                }
            }
        }
    }

    #[test]
    fn fail_swapped_record_id() {
        let (kr, env) = sample();
        let other = EnvelopeContext {
            record_id: "rec_02",
            ..CTX
        };
        assert!(matches!(
            open(&kr, &other, &env),
            Err(CryptoError::Integrity)
        ));
    }

    #[test]
    fn fail_swapped_jurisdiction() {
        let (kr, env) = sample();
        let other = EnvelopeContext {
            jurisdiction: "CN-11",
            ..CTX
        };
        assert!(matches!(
            open(&kr, &other, &env),
            Err(CryptoError::Integrity)
        ));
    }

    #[test]
    fn fail_field_boundary_shift() {
        // Moving bytes between record id and jurisdiction must not verify.
        let kr = keyring_with(&[(1, [7; 32])]);
        let a = EnvelopeContext {
            record_id: "ab",
            jurisdiction: "c",
        };
        let b = EnvelopeContext {
            record_id: "a",
            jurisdiction: "bc",
        };
        let env = seal(&kr, &a, b"x", &DeterministicRandom::new(3)).unwrap();
        assert!(matches!(open(&kr, &b, &env), Err(CryptoError::Integrity)));
    }

    #[test]
    fn fail_relabelled_kek_version() {
        let kr = keyring_with(&[(1, [7; 32]), (2, [8; 32])]);
        let mut env = seal(&kr, &CTX, PLAINTEXT, &DeterministicRandom::new(1)).unwrap();
        assert_eq!(kek_version(&env).unwrap(), 2);
        env[4..8].copy_from_slice(&1u32.to_be_bytes());
        assert!(matches!(open(&kr, &CTX, &env), Err(CryptoError::Integrity)));
        env[4..8].copy_from_slice(&3u32.to_be_bytes());
        assert!(matches!(
            open(&kr, &CTX, &env),
            Err(CryptoError::UnknownKeyVersion(3))
        ));
    }

    #[test]
    fn fail_relabelled_version_with_same_kek_bytes() {
        // Even if two versions held the same key bytes, the version is bound
        // through the wrap AAD.
        let kr = keyring_with(&[(1, [7; 32]), (2, [7; 32])]);
        let mut env = seal(&kr, &CTX, PLAINTEXT, &DeterministicRandom::new(1)).unwrap();
        env[4..8].copy_from_slice(&1u32.to_be_bytes());
        assert!(matches!(open(&kr, &CTX, &env), Err(CryptoError::Integrity)));
    }

    #[test]
    fn fail_wrong_kek() {
        let (_, env) = sample();
        let other = keyring_with(&[(1, [9; 32])]);
        assert!(matches!(
            open(&other, &CTX, &env),
            Err(CryptoError::Integrity)
        ));
    }

    #[test]
    fn fail_truncated_at_every_length() {
        let (kr, env) = sample();
        for len in 0..env.len() {
            let err = open(&kr, &CTX, &env[..len]).unwrap_err();
            assert!(
                matches!(err, CryptoError::Format | CryptoError::Integrity),
                "len {len}: {err}"
            );
            if len < HEADER + 60 + 12 + 16 {
                assert!(matches!(err, CryptoError::Format), "len {len}: {err}");
            }
        }
    }

    #[test]
    fn fail_trailing_garbage() {
        let (kr, env) = sample();
        for extra in [&[0u8][..], &[0u8; 16][..], b"trailing"] {
            let mut bad = env.clone();
            bad.extend_from_slice(extra);
            assert!(matches!(open(&kr, &CTX, &bad), Err(CryptoError::Integrity)));
        }
    }

    #[test]
    fn fail_wrong_magic_or_format_version() {
        let (kr, env) = sample();
        for (i, b) in [(0, b'X'), (1, b'v'), (2, b'e'), (3, 0), (3, 2), (3, 0xff)] {
            let mut bad = env.clone();
            bad[i] = b;
            assert!(matches!(open(&kr, &CTX, &bad), Err(CryptoError::Format)));
            assert!(matches!(kek_version(&bad), Err(CryptoError::Format)));
        }
    }

    #[test]
    fn fail_spliced_envelopes() {
        // The wrap of one envelope with the data part of another (same record,
        // same key) fails: each data part is bound to its own DEK.
        let (kr, a) = sample();
        let b = seal(&kr, &CTX, PLAINTEXT, &DeterministicRandom::new(99)).unwrap();
        let mut spliced = a[..HEADER + 60].to_vec();
        spliced.extend_from_slice(&b[HEADER + 60..]);
        assert!(matches!(
            open(&kr, &CTX, &spliced),
            Err(CryptoError::Integrity)
        ));
        // And a wrap moved from another record's envelope fails too.
        let other = EnvelopeContext {
            record_id: "rec_02",
            ..CTX
        };
        let c = seal(&kr, &other, PLAINTEXT, &DeterministicRandom::new(5)).unwrap();
        let mut moved = c[..HEADER + 60].to_vec();
        moved.extend_from_slice(&a[HEADER + 60..]);
        assert!(matches!(
            open(&kr, &CTX, &moved),
            Err(CryptoError::Integrity)
        ));
    }

    #[test]
    fn fail_oversized_context_refused() {
        let kr = keyring_with(&[(1, [7; 32])]);
        let long = "x".repeat(usize::from(u16::MAX) + 1);
        let ctx = EnvelopeContext {
            record_id: &long,
            jurisdiction: "CN",
        };
        assert!(matches!(
            seal(&kr, &ctx, b"x", &DeterministicRandom::new(1)),
            Err(CryptoError::Format)
        ));
        let max = "x".repeat(usize::from(u16::MAX));
        let ctx = EnvelopeContext {
            record_id: &max,
            jurisdiction: "CN",
        };
        let env = seal(&kr, &ctx, b"x", &DeterministicRandom::new(1)).unwrap();
        assert_eq!(open(&kr, &ctx, &env).unwrap().as_slice(), b"x");
    }

    #[test]
    fn rewrap_round_trip() {
        let mut kr = keyring_with(&[(1, [7; 32])]);
        let rng = DeterministicRandom::new(11);
        let old = seal(&kr, &CTX, PLAINTEXT, &rng).unwrap();
        let v2 = kr.rotate(&rng, 100).unwrap();
        assert_eq!(v2, 2);
        let new = rewrap(&kr, &CTX, &old, v2, &rng).unwrap();
        assert_eq!(kek_version(&new).unwrap(), 2);
        // The data part (nonce, ciphertext, tag) is byte-for-byte unchanged.
        assert_eq!(&new[HEADER + 60..], &old[HEADER + 60..]);
        assert_ne!(&new[..HEADER + 60], &old[..HEADER + 60]);
        assert_eq!(open(&kr, &CTX, &new).unwrap().as_slice(), PLAINTEXT);
        // The old envelope still opens while the old KEK exists...
        assert_eq!(open(&kr, &CTX, &old).unwrap().as_slice(), PLAINTEXT);
        // ...and not after it is retired; the rewrapped one still does.
        kr.retire(1).unwrap();
        assert!(matches!(
            open(&kr, &CTX, &old),
            Err(CryptoError::UnknownKeyVersion(1))
        ));
        assert_eq!(open(&kr, &CTX, &new).unwrap().as_slice(), PLAINTEXT);
    }

    #[test]
    fn fail_rewrap_wrong_context_or_version() {
        let mut kr = keyring_with(&[(1, [7; 32])]);
        let rng = DeterministicRandom::new(12);
        let env = seal(&kr, &CTX, PLAINTEXT, &rng).unwrap();
        kr.rotate(&rng, 0).unwrap();
        let other = EnvelopeContext {
            record_id: "rec_02",
            ..CTX
        };
        assert!(matches!(
            rewrap(&kr, &other, &env, 2, &rng),
            Err(CryptoError::Integrity)
        ));
        assert!(matches!(
            rewrap(&kr, &CTX, &env, 3, &rng),
            Err(CryptoError::UnknownKeyVersion(3))
        ));
        assert!(matches!(
            rewrap(&kr, &CTX, &env[..20], 2, &rng),
            Err(CryptoError::Format)
        ));
    }

    #[test]
    fn kek_version_reads_header_only() {
        let (_, env) = sample();
        assert_eq!(kek_version(&env).unwrap(), 1);
        assert!(matches!(kek_version(&[]), Err(CryptoError::Format)));
        assert!(matches!(kek_version(b"RVE\x01"), Err(CryptoError::Format)));
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
            record_id in "\\PC{0,40}",
            jurisdiction in "[A-Z]{2}(-[0-9]{2}){0,3}",
            seed in any::<u64>(),
        ) {
            let kr = keyring_with(&[(3, [0x42; 32])]);
            let ctx = EnvelopeContext { record_id: &record_id, jurisdiction: &jurisdiction };
            let env = seal(&kr, &ctx, &plaintext, &DeterministicRandom::new(seed)).unwrap();
            prop_assert_eq!(env.len(), HEADER + 60 + 12 + plaintext.len() + 16);
            let opened = open(&kr, &ctx, &env).unwrap();
            prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
            let moved = format!("{record_id}x");
            let other = EnvelopeContext { record_id: &moved, jurisdiction: &jurisdiction };
            prop_assert!(matches!(open(&kr, &other, &env), Err(CryptoError::Integrity)));
        }
    }
}
