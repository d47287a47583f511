//! A reporter's identity: parsed once into value objects at the edge, then only ever held
//! sealed, or briefly in zeroizing buffers while it is sealed, merged or disclosed.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::values::{
    Address, BankAccount, BankName, Email, Employer, IdentityField, PersonName, Phone, ResidentId,
};

/// A reporter identity as the case system submitted it, every field already parsed.
///
/// No `Debug`, `Clone` or `Serialize`: the only way out is [`Identity::into_fields`], which the
/// vault seals at once.
#[derive(Default)]
pub struct Identity {
    /// 姓名.
    pub name: Option<PersonName>,
    /// 居民身份证号码.
    pub id_number: Option<ResidentId>,
    /// Mobile or landline.
    pub phone: Option<Phone>,
    /// E-mail.
    pub email: Option<Email>,
    /// Postal address.
    pub address: Option<Address>,
    /// Bank account (Luhn-checked) for reward payment.
    pub bank_account: Option<BankAccount>,
    /// Bank name.
    pub bank_name: Option<BankName>,
    /// Employer.
    pub employer: Option<Employer>,
}

impl Identity {
    /// The normalised values, keyed by field, in zeroizing buffers.
    pub fn into_fields(self) -> IdentityFields {
        let mut map = BTreeMap::new();
        let mut put = |field: IdentityField, value: Option<&str>| {
            if let Some(v) = value {
                map.insert(field, Zeroizing::new(v.to_owned()));
            }
        };
        put(IdentityField::Name, self.name.as_ref().map(|v| v.expose()));
        put(
            IdentityField::IdNumber,
            self.id_number.as_ref().map(|v| v.expose()),
        );
        put(
            IdentityField::Phone,
            self.phone.as_ref().map(|v| v.expose()),
        );
        put(
            IdentityField::Email,
            self.email.as_ref().map(|v| v.expose()),
        );
        put(
            IdentityField::Address,
            self.address.as_ref().map(|v| v.expose()),
        );
        put(
            IdentityField::BankAccount,
            self.bank_account.as_ref().map(|v| v.expose()),
        );
        put(
            IdentityField::BankName,
            self.bank_name.as_ref().map(|v| v.expose()),
        );
        put(
            IdentityField::Employer,
            self.employer.as_ref().map(|v| v.expose()),
        );
        IdentityFields(map)
    }
}

/// Normalised identity values by field, wiped when dropped (every copy: a seal that must be
/// retried under a newer key version clones them). This is what an envelope holds.
#[derive(Default, Clone)]
pub struct IdentityFields(BTreeMap<IdentityField, Zeroizing<String>>);

impl IdentityFields {
    /// The value of one field, if the reporter gave it.
    pub fn get(&self, field: IdentityField) -> Option<&str> {
        self.0.get(&field).map(|v| v.as_str())
    }

    /// Whether the reporter can be reached through the contact relay.
    pub fn has_contact(&self) -> bool {
        self.0.contains_key(&IdentityField::Phone) || self.0.contains_key(&IdentityField::Email)
    }

    /// Later submissions win field by field; a field the new submission leaves out keeps
    /// its earlier value, so a repeat report without a phone does not lose the contact.
    pub fn merge_newer(mut self, newer: IdentityFields) -> IdentityFields {
        for (k, v) in newer.0 {
            self.0.insert(k, v);
        }
        self
    }

    /// The plaintext sealed into an envelope: a JSON object of field → normalised value.
    pub fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(256));
        out.push(b'{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Field names are fixed ASCII; values go through serde_json's string escaper
            // into the zeroizing buffer directly, with no intermediate copy.
            out.push(b'"');
            out.extend_from_slice(k.as_str().as_bytes());
            out.extend_from_slice(b"\":");
            if serde_json::to_writer(&mut *out, v.as_str()).is_err() {
                // Writing a &str to a Vec cannot fail; keep the buffer well-formed regardless.
                out.extend_from_slice(b"null");
            }
        }
        out.push(b'}');
        out
    }

    /// Parses what [`IdentityFields::to_plaintext`] wrote.
    pub fn from_plaintext(bytes: &[u8]) -> Option<IdentityFields> {
        let raw: BTreeMap<String, Zeroizing<String>> = serde_json::from_slice(bytes).ok()?;
        let mut map = BTreeMap::new();
        for (k, v) in raw {
            map.insert(IdentityField::parse(&k)?, v);
        }
        Some(IdentityFields(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_round_trips_and_merges_newer_over_older() {
        let older = Identity {
            name: Some(PersonName::parse("张三").unwrap()),
            phone: Some(Phone::parse("13800138000").unwrap()),
            ..Identity::default()
        }
        .into_fields();
        let newer = Identity {
            name: Some(PersonName::parse("张 三").unwrap()),
            email: Some(Email::parse("a@example.cn").unwrap()),
            ..Identity::default()
        }
        .into_fields();
        let merged = older.merge_newer(newer);
        let bytes = merged.to_plaintext();
        let back = IdentityFields::from_plaintext(&bytes).unwrap();
        assert_eq!(back.get(IdentityField::Name), Some("张 三"));
        assert_eq!(back.get(IdentityField::Phone), Some("13800138000"));
        assert_eq!(back.get(IdentityField::Email), Some("a@example.cn"));
        assert_eq!(back.get(IdentityField::IdNumber), None);
        assert!(back.has_contact());
    }

    #[test]
    fn garbage_plaintext_is_refused() {
        assert!(IdentityFields::from_plaintext(b"{\"shoe_size\":\"42\"}").is_none());
        assert!(IdentityFields::from_plaintext(b"not json").is_none());
    }
}
