//! Keyed indexes and MACs (HMAC-SHA256).
//!
//! Two separate keys with two separate labels, because they answer different
//! questions and must never be confused:
//!
//! * [`BlindIndexKey`] lets the vault look a record up by an equality match
//!   (same phone number, same ID number) without storing the value. Without
//!   the key, an index cannot be brute-forced from the small space of phone
//!   numbers.
//! * [`DisclosureMacKey`] tags what left the vault in each disclosure, so an
//!   auditor holding a leaked value can find the accesses that released it.
//!   A separate key means a blind index in the database never matches a
//!   disclosure record in the trail.
//!
//! Message layout (both): `label ‖ u64 BE byte length of kind/field ‖
//! kind/field ‖ normalized value`. The label has a fixed length and the
//! kind/field is length-prefixed, so no two (kind, value) pairs produce the
//! same message. Normalisation (e.g. stripping spaces from a phone number)
//! is the caller's job and must be identical at write and lookup time.
//!
//! `ring` does not wipe its HMAC key state; a key state lives only for the
//! duration of one call here.

use ring::hmac;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::secret::Key32;

const BLIND_INDEX_LABEL: &[u8] = b"reporter-vault/blind-index/v1";
const DISCLOSURE_MAC_LABEL: &[u8] = b"reporter-vault/disclosure-mac/v1";

fn labelled_mac(key: &Key32, label: &[u8], kind: &str, normalized: &str) -> [u8; 32] {
    // Key exposed only to build the HMAC key for this one computation.
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.expose_secret());
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(label);
    // usize always fits in u64 on supported targets; saturate rather than panic.
    let len = u64::try_from(kind.len()).unwrap_or(u64::MAX);
    ctx.update(&len.to_be_bytes());
    ctx.update(kind.as_bytes());
    ctx.update(normalized.as_bytes());
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The key for blind (keyed, deterministic) lookup indexes.
///
/// Wiped on drop; no `Debug` or `Clone`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BlindIndexKey(Key32);

impl BlindIndexKey {
    /// Wraps existing key material (from the keyring, or a test vector).
    pub fn from_key(key: Key32) -> Self {
        Self(key)
    }

    /// The blind index of `normalized` within the index family `kind`
    /// (e.g. `"phone"`, `"resident_id"`). Different kinds never collide, so an
    /// index for one field cannot be used to probe another.
    pub fn index(&self, kind: &str, normalized: &str) -> [u8; 32] {
        labelled_mac(&self.0, BLIND_INDEX_LABEL, kind, normalized)
    }

    pub(crate) fn key(&self) -> &Key32 {
        &self.0
    }
}

/// The key for MACs over disclosed field values, recorded in the audit trail.
///
/// Wiped on drop; no `Debug` or `Clone`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DisclosureMacKey(Key32);

impl DisclosureMacKey {
    /// Wraps existing key material (from the keyring, or a test vector).
    pub fn from_key(key: Key32) -> Self {
        Self(key)
    }

    /// The MAC of the value `normalized` of the disclosed field `field`
    /// (e.g. `"phone"`). Auditors recompute it over a leaked value and match
    /// it against the trail; the value itself is never in the trail.
    pub fn field_mac(&self, field: &str, normalized: &str) -> [u8; 32] {
        labelled_mac(&self.0, DISCLOSURE_MAC_LABEL, field, normalized)
    }

    pub(crate) fn key(&self) -> &Key32 {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key32 {
        Key32::from_bytes([b; 32])
    }

    /// Reference: HMAC-SHA256 over the documented message layout,
    /// computed in one shot. The hex KATs were computed independently with
    /// Python's `hmac` module.
    fn reference(key_byte: u8, label: &[u8], kind: &str, value: &str) -> [u8; 32] {
        let mut msg = label.to_vec();
        msg.extend_from_slice(&(kind.len() as u64).to_be_bytes());
        msg.extend_from_slice(kind.as_bytes());
        msg.extend_from_slice(value.as_bytes());
        let k = hmac::Key::new(hmac::HMAC_SHA256, &[key_byte; 32]);
        hmac::sign(&k, &msg).as_ref().try_into().unwrap()
    }

    #[test]
    fn blind_index_kat() {
        let k = BlindIndexKey::from_key(key(0x11));
        let got = k.index("phone", "+8613800138000");
        assert_eq!(
            got,
            reference(0x11, BLIND_INDEX_LABEL, "phone", "+8613800138000")
        );
        assert_eq!(
            hex::encode(got),
            "9824dc0562b39121f14bfc41945c3b6000c8d3af1ad844824839eb9e90bd73ca"
        );
    }

    #[test]
    fn disclosure_mac_kat() {
        let k = DisclosureMacKey::from_key(key(0x22));
        let got = k.field_mac("resident_id", "11010519491231002X");
        assert_eq!(
            got,
            reference(
                0x22,
                DISCLOSURE_MAC_LABEL,
                "resident_id",
                "11010519491231002X"
            )
        );
        assert_eq!(
            hex::encode(got),
            "0b94a85a21b16318e5a510f77758d49ef0ded39bfcf067aa8d52b9c9c7e575a2"
        );
    }

    #[test]
    fn fail_kind_boundary_shift_changes_index() {
        let k = BlindIndexKey::from_key(key(1));
        assert_ne!(k.index("ab", "c"), k.index("a", "bc"));
        assert_ne!(k.index("phone", "1"), k.index("id", "1"));
    }

    #[test]
    fn fail_same_key_different_label() {
        let b = BlindIndexKey::from_key(key(9));
        let d = DisclosureMacKey::from_key(key(9));
        assert_ne!(b.index("phone", "1"), d.field_mac("phone", "1"));
    }

    #[test]
    fn fail_different_key_different_index() {
        let a = BlindIndexKey::from_key(key(1));
        let b = BlindIndexKey::from_key(key(2));
        assert_ne!(a.index("phone", "1"), b.index("phone", "1"));
    }
}
