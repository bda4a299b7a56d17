//! What a person recognises a record by: a customer's name and e-mail, an invoice's
//! number, amount and customer. Lists, failures and look-ups show it beside the ids.

use serde_json::Value;

use super::ids::EntityType;
use super::record::FieldMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordLabel {
    pub name: Option<String>,
    /// Lower case: e-mail addresses are looked up without regard to case.
    pub email: Option<String>,
    pub number: Option<String>,
    /// The total with its currency, as `1250.00 GBP`.
    pub amount: Option<String>,
    /// An invoice's customer, by its CRM id (the canonical reference).
    pub customer: Option<String>,
}

impl RecordLabel {
    /// The label of a record from its canonical fields.
    pub fn of(entity: EntityType, fields: &FieldMap) -> Self {
        let text = |field: &str| match fields.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        match entity {
            EntityType::Customer => Self {
                name: text("name"),
                email: text("email").map(|e| e.to_lowercase()),
                ..Self::default()
            },
            EntityType::Invoice => Self {
                number: text("number"),
                amount: text("total").map(|total| match text("currency") {
                    Some(currency) => format!("{total} {currency}"),
                    None => total,
                }),
                customer: text("customer"),
                ..Self::default()
            },
        }
    }

    /// Each part from `self`, else from `other`.
    pub fn or(self, other: Self) -> Self {
        Self {
            name: self.name.or(other.name),
            email: self.email.or(other.email),
            number: self.number.or(other.number),
            amount: self.amount.or(other.amount),
            customer: self.customer.or(other.customer),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_customer_is_its_name_and_email_and_an_invoice_its_number_amount_and_customer() {
        let customer: FieldMap = [
            ("name".to_string(), json!(" Ada Lovelace ")),
            ("email".to_string(), json!("Ada@Example.com")),
        ]
        .into();
        assert_eq!(
            RecordLabel::of(EntityType::Customer, &customer),
            RecordLabel {
                name: Some("Ada Lovelace".into()),
                email: Some("ada@example.com".into()),
                ..RecordLabel::default()
            }
        );
        let invoice: FieldMap = [
            ("number".to_string(), json!("INV-7")),
            ("total".to_string(), json!("1250.00")),
            ("currency".to_string(), json!("GBP")),
            ("customer".to_string(), json!("101")),
        ]
        .into();
        let label = RecordLabel::of(EntityType::Invoice, &invoice);
        assert_eq!(label.number.as_deref(), Some("INV-7"));
        assert_eq!(label.amount.as_deref(), Some("1250.00 GBP"));
        assert_eq!(label.customer.as_deref(), Some("101"));
        assert_eq!(
            RecordLabel::default().or(label.clone()),
            label,
            "parts fill from the other"
        );
    }
}
