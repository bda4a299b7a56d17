//! Checksums of canonical content: equal content, equal checksum.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::record::FieldMap;

/// Hex SHA-256 over the canonical JSON of a set of fields (keys sorted, values
/// normalised by the canonical records).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Checksum(pub String);

impl Checksum {
    /// The checksum of `fields` restricted to `names`.
    pub fn of<'a>(fields: &FieldMap, names: impl Iterator<Item = &'a str>) -> Self {
        let selected: FieldMap = names
            .filter_map(|name| {
                fields
                    .get(name)
                    .map(|value| (name.to_string(), value.clone()))
            })
            .collect();
        // BTreeMap serialises with sorted keys, and nested objects come from
        // serde_json's sorted map: the bytes are canonical.
        let bytes = serde_json::to_vec(&selected).unwrap_or_default();
        Self(hex::encode(Sha256::digest(&bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_named_fields_count_and_order_does_not() {
        let a: FieldMap = [
            ("name".to_string(), json!("Ada")),
            ("phone".to_string(), json!("1")),
        ]
        .into();
        let b: FieldMap = [
            ("phone".to_string(), json!("2")),
            ("name".to_string(), json!("Ada")),
        ]
        .into();
        assert_eq!(
            Checksum::of(&a, ["name"].into_iter()),
            Checksum::of(&b, ["name"].into_iter())
        );
        assert_ne!(
            Checksum::of(&a, ["name", "phone"].into_iter()),
            Checksum::of(&b, ["name", "phone"].into_iter())
        );
        assert_eq!(Checksum::of(&a, ["name"].into_iter()).as_str().len(), 64);
    }
}
