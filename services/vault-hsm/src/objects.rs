//! The key objects on the token: labels, templates, and reading them back.
//!
//! | object | class / key type | label (= `CKA_ID`) | usage |
//! |---|---|---|---|
//! | KEK version `N` | `CKO_SECRET_KEY` / `CKK_AES`, 32 bytes | `reporter-vault/kek/vN` | `CKA_ENCRYPT`, `CKA_DECRYPT` |
//! | root | `CKO_SECRET_KEY` / `CKK_GENERIC_SECRET`, 32 bytes | `reporter-vault/root` | `CKA_SIGN` (HMAC) |
//!
//! Both are token objects (`CKA_TOKEN`), private, `CKA_SENSITIVE=true`,
//! `CKA_EXTRACTABLE=false`, `CKA_MODIFIABLE=false`, and allow no other use (no wrap,
//! unwrap, derive, verify).
//!
//! A KEK's creation time is kept in a companion data object (`CKO_DATA`, private token
//! object, not modifiable) with the KEK's label, `CKA_APPLICATION`
//! `reporter-vault/kek-created-at` and `CKA_VALUE` the Unix seconds in ASCII decimal.
//! Not `CKA_START_DATE`: it holds only a date, and SoftHSM 2.6.1 cannot read it back from
//! a private object (`C_GetAttributeValue` fails with `CKR_GENERAL_ERROR`).

use std::collections::BTreeMap;

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use vault_domain::ports::KeyVersion;

use crate::error::HsmError;

/// Label (and `CKA_ID`) of the root key the index, MAC and signing keys are derived from.
pub const ROOT_LABEL: &str = "reporter-vault/root";
/// Label prefix of KEK objects; the version follows in decimal.
pub const KEK_LABEL_PREFIX: &str = "reporter-vault/kek/v";

/// `CKA_APPLICATION` of the data objects holding KEK creation times.
pub const CREATED_AT_APPLICATION: &str = "reporter-vault/kek-created-at";

/// Key length of every object this crate creates.
const KEY_LEN: u64 = 32;

/// The label (and `CKA_ID`) of KEK `version`.
pub fn kek_label(version: u32) -> String {
    format!("{KEK_LABEL_PREFIX}{version}")
}

/// The version a KEK label names: the prefix, then a decimal without sign or leading zero,
/// at least 1. Anything else is not one of ours.
pub(crate) fn parse_kek_label(label: &[u8]) -> Option<u32> {
    let digits = label.strip_prefix(KEK_LABEL_PREFIX.as_bytes())?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.first() == Some(&b'0')
    {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse::<u32>().ok()
}

fn common_key_attributes(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Verify(false),
        Attribute::ValueLen(KEY_LEN.into()),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(label.as_bytes().to_vec()),
    ]
}

/// Generates KEK `version` (AES-256) inside the token.
pub(crate) fn generate_kek(s: &Session, version: u32) -> Result<ObjectHandle, CkError> {
    let mut template = common_key_attributes(&kek_label(version));
    template.extend([
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Sign(false),
    ]);
    s.generate_key(&Mechanism::AesKeyGen, &template)
}

/// Generates the root key (32-byte generic secret for HMAC-SHA256) inside the token.
pub(crate) fn generate_root(s: &Session) -> Result<ObjectHandle, CkError> {
    let mut template = common_key_attributes(ROOT_LABEL);
    template.extend([
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Sign(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
    ]);
    s.generate_key(&Mechanism::GenericSecretKeyGen, &template)
}

fn metadata_search() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Application(CREATED_AT_APPLICATION.as_bytes().to_vec()),
    ]
}

/// Records when KEK `version` was created. Any older record for the same version (left by
/// a KEK destroyed outside this crate) is removed first.
pub(crate) fn write_created_at(
    s: &Session,
    version: u32,
    created_at_unix: i64,
) -> Result<ObjectHandle, CkError> {
    let label = kek_label(version);
    for stale in created_at_handles(s, version)? {
        s.destroy_object(stale)?;
    }
    let mut template = metadata_search();
    template.extend([
        Attribute::Private(true),
        Attribute::Modifiable(false),
        Attribute::Label(label.into_bytes()),
        Attribute::Value(created_at_unix.to_string().into_bytes()),
    ]);
    s.create_object(&template)
}

/// The creation-time records of KEK `version`.
pub(crate) fn created_at_handles(s: &Session, version: u32) -> Result<Vec<ObjectHandle>, CkError> {
    let mut template = metadata_search();
    template.push(Attribute::Label(kek_label(version).into_bytes()));
    s.find_objects(&template)
}

/// One creation-time record: (label, value).
type CreatedAtRecord = (Vec<u8>, Vec<u8>);

/// Every creation-time record.
fn read_created_at(s: &Session) -> Result<Vec<CreatedAtRecord>, CkError> {
    let mut out = Vec::new();
    for handle in s.find_objects(&metadata_search())? {
        let mut label = Vec::new();
        let mut value = Vec::new();
        for a in s.get_attributes(handle, &[AttributeType::Label, AttributeType::Value])? {
            match a {
                Attribute::Label(l) => label = l,
                Attribute::Value(v) => value = v,
                _ => {}
            }
        }
        out.push((label, value));
    }
    Ok(out)
}

/// The search template for the root key.
pub(crate) fn root_search() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(true),
        Attribute::Label(ROOT_LABEL.as_bytes().to_vec()),
    ]
}

/// A secret key object as read from the token, before any policy is applied.
pub(crate) struct RawKey {
    handle: ObjectHandle,
    label: Vec<u8>,
    sensitive: Option<bool>,
    extractable: Option<bool>,
}

fn read_key(s: &Session, handle: ObjectHandle) -> Result<RawKey, CkError> {
    let attrs = s.get_attributes(
        handle,
        &[
            AttributeType::Label,
            AttributeType::Sensitive,
            AttributeType::Extractable,
        ],
    )?;
    let mut key = RawKey {
        handle,
        label: Vec::new(),
        sensitive: None,
        extractable: None,
    };
    for a in attrs {
        match a {
            Attribute::Label(l) => key.label = l,
            Attribute::Sensitive(b) => key.sensitive = Some(b),
            Attribute::Extractable(b) => key.extractable = Some(b),
            _ => {}
        }
    }
    Ok(key)
}

/// Every AES token key (ours are told apart by label afterwards) and every creation-time
/// record.
pub(crate) fn read_keks(s: &Session) -> Result<RawKeks, CkError> {
    let handles = s.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
    ])?;
    Ok(RawKeks {
        keys: handles
            .into_iter()
            .map(|h| read_key(s, h))
            .collect::<Result<_, _>>()?,
        created_at: read_created_at(s)?,
    })
}

/// KEK objects and creation-time records as read, before any policy is applied.
pub(crate) struct RawKeks {
    keys: Vec<RawKey>,
    created_at: Vec<CreatedAtRecord>,
}

/// Every root key (normally one).
pub(crate) fn read_roots(s: &Session) -> Result<Vec<RawKey>, CkError> {
    let handles = s.find_objects(&root_search())?;
    handles.into_iter().map(|h| read_key(s, h)).collect()
}

fn check_protected(token: &str, what: &str, key: &RawKey) -> Result<(), HsmError> {
    if key.sensitive == Some(true) && key.extractable == Some(false) {
        Ok(())
    } else {
        Err(HsmError::Inconsistent {
            label: token.to_owned(),
            reason: format!(
                "{what} is extractable or not sensitive; refusing to use it (recreate it with \
                 CKA_SENSITIVE=true, CKA_EXTRACTABLE=false)"
            ),
        })
    }
}

/// The one root key, if any; two or an unprotected one is refused.
pub(crate) fn root_handle(token: &str, roots: &[RawKey]) -> Result<Option<ObjectHandle>, HsmError> {
    match roots {
        [] => Ok(None),
        [root] => {
            check_protected(token, ROOT_LABEL, root)?;
            Ok(Some(root.handle))
        }
        _ => Err(HsmError::Inconsistent {
            label: token.to_owned(),
            reason: format!("more than one key is labelled {ROOT_LABEL}"),
        }),
    }
}

/// One KEK version on the token.
pub(crate) struct KekEntry {
    /// Normally one object. Two replicas rotating at the same moment can both create the
    /// same version; every object is kept and [`crate::Pkcs11Wrapper`] tries each when
    /// unwrapping, so no envelope is lost.
    pub(crate) handles: Vec<ObjectHandle>,
    pub(crate) created_at_unix: i64,
}

/// The KEK versions on the token, as last read.
#[derive(Default)]
pub(crate) struct KekSet {
    pub(crate) versions: BTreeMap<u32, KekEntry>,
}

impl KekSet {
    /// Reads our KEKs out of every AES key on the token: labelled `reporter-vault/kek/vN`,
    /// and sensitive and non-extractable (anything else labelled like ours is refused).
    ///
    /// A KEK without a creation-time record reports 0.
    pub(crate) fn from_raw(token: &str, raw: RawKeks) -> Result<KekSet, HsmError> {
        let mut created: BTreeMap<u32, i64> = BTreeMap::new();
        for (label, value) in &raw.created_at {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<i64>().ok());
            if let (Some(version), Some(at)) = (parse_kek_label(label), parsed) {
                let slot = created.entry(version).or_insert(at);
                *slot = (*slot).min(at);
            }
        }
        let mut set = KekSet::default();
        for key in raw.keys {
            let Some(version) = parse_kek_label(&key.label) else {
                continue;
            };
            check_protected(token, &kek_label(version), &key)?;
            set.versions
                .entry(version)
                .or_insert_with(|| KekEntry {
                    handles: Vec::new(),
                    created_at_unix: created.get(&version).copied().unwrap_or(0),
                })
                .handles
                .push(key.handle);
        }
        Ok(set)
    }

    /// The newest version (0 when there is none).
    pub(crate) fn active(&self) -> u32 {
        self.versions.keys().next_back().copied().unwrap_or(0)
    }

    /// The objects holding `version`.
    pub(crate) fn handles(&self, version: u32) -> Option<&[ObjectHandle]> {
        self.versions
            .get(&version)
            .map(|e| e.handles.as_slice())
            .filter(|h| !h.is_empty())
    }

    /// Versions and creation times, oldest first.
    pub(crate) fn summary(&self) -> Vec<KeyVersion> {
        self.versions
            .iter()
            .map(|(v, e)| KeyVersion {
                version: *v,
                created_at_unix: e.created_at_unix,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kek_labels_parse_strictly() {
        assert_eq!(parse_kek_label(kek_label(1).as_bytes()), Some(1));
        assert_eq!(
            parse_kek_label(kek_label(4_294_967_295).as_bytes()),
            Some(u32::MAX)
        );
        for bad in [
            "reporter-vault/kek/v",
            "reporter-vault/kek/v0",
            "reporter-vault/kek/v01",
            "reporter-vault/kek/v+1",
            "reporter-vault/kek/v1 ",
            "reporter-vault/kek/v4294967296",
            "reporter-vault/root",
            "other/kek/v1",
        ] {
            assert_eq!(parse_kek_label(bad.as_bytes()), None, "{bad}");
        }
    }
}
