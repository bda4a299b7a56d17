//! The canonical customer: a HubSpot company or contact, a Xero contact.

use serde::{Deserialize, Serialize};

use super::record::{clean, to_fields, FieldMap};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub name: Option<String>,
    /// Lower case: e-mail addresses are matched and compared without case.
    pub email: Option<String>,
    pub phone: Option<String>,
    pub tax_number: Option<String>,
    pub address: Option<Address>,
    /// ISO 4217, upper case.
    pub currency: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

impl Customer {
    /// The same content always normalises to the same record.
    pub fn normalise(self) -> Self {
        let address = self
            .address
            .map(Address::normalise)
            .filter(|a| *a != Address::default());
        Self {
            name: clean(self.name).map(|n| n.split_whitespace().collect::<Vec<_>>().join(" ")),
            email: clean(self.email).map(|e| e.to_lowercase()),
            phone: clean(self.phone),
            tax_number: clean(self.tax_number).map(|t| t.replace(' ', "").to_uppercase()),
            address,
            currency: clean(self.currency).map(|c| c.to_uppercase()),
            archived: self.archived,
        }
    }

    pub fn fields(&self) -> FieldMap {
        let mut fields = to_fields(&self.clone().normalise());
        // `archived` is carried by deletes, not merged as content.
        fields.remove("archived");
        fields
    }

    pub fn from_fields(fields: &FieldMap) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::Value::Object(
            fields.clone().into_iter().collect(),
        ))
    }
}

impl Address {
    fn normalise(self) -> Self {
        Self {
            line1: clean(self.line1),
            line2: clean(self.line2),
            city: clean(self.city),
            region: clean(self.region),
            postal_code: clean(self.postal_code).map(|p| p.to_uppercase()),
            country: clean(self.country).map(|c| c.to_uppercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_content_gives_equal_fields() {
        let a = Customer {
            name: Some("  Ada   Lovelace ".into()),
            email: Some("Ada@Example.COM ".into()),
            currency: Some("gbp".into()),
            phone: Some("".into()),
            address: Some(Address {
                country: Some("gb".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let b = Customer {
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
            currency: Some("GBP".into()),
            address: Some(Address {
                country: Some("GB".into()),
                line1: Some(" ".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(a.fields(), b.fields());
        assert!(!a.fields().contains_key("phone"), "empty means absent");
    }

    #[test]
    fn fields_round_trip() {
        let customer = Customer {
            name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
            tax_number: Some("GB123".into()),
            ..Default::default()
        };
        let back = Customer::from_fields(&customer.fields()).expect("round trip");
        assert_eq!(back, customer);
    }
}
