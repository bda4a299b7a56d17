//! Values a system holds that do not read as their canonical type: a quantity `abc`, a
//! price `NaN`, a date `31/02/2026`. A guess in their place (1, 0, no date) once synced
//! as though a person had typed it. Instead the text is carried as it is, in the field
//! it belongs to, and the connector that would write it refuses the change before any
//! call, naming the field and the rule. The failure is then recorded with the record
//! and listed in `/api/failures` like any refusal; a read that failed instead would be
//! logged before the record has a link, where no list of failures shows it.

use std::str::FromStr as _;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::domain::FieldMap;

/// Where an unread value belongs in a canonical field map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Field(&'static str),
    /// A field of the line item at this index (from 0).
    Line(usize, &'static str),
}

/// The values of one record that did not read, with their places.
#[derive(Debug, Default)]
pub struct Unread {
    values: Vec<(Place, String)>,
}

impl Unread {
    /// `raw` read by `parse`; when it does not read, `None`, and the text is kept for
    /// `place`.
    pub fn read<T>(
        &mut self,
        place: Place,
        raw: Option<String>,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = raw?;
        let parsed = parse(&raw);
        if parsed.is_none() {
            self.values.push((place, raw));
        }
        parsed
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Puts each kept text in its place, over what the canonical record holds there.
    pub fn carry(self, fields: &mut FieldMap) {
        for (place, raw) in self.values {
            match place {
                Place::Field(field) => {
                    fields.insert(field.into(), Value::String(raw));
                }
                Place::Line(index, field) => {
                    let line = fields
                        .get_mut("line_items")
                        .and_then(|lines| lines.get_mut(index))
                        .and_then(Value::as_object_mut);
                    if let Some(line) = line {
                        line.insert(field.into(), Value::String(raw));
                    }
                }
            }
        }
    }
}

/// A decimal as a person or a system writes one (`12`, `-0.5`, `1e3`); `NaN` and
/// `Infinity` are not numbers here.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

/// A value as a failure shows it: in backticks, cut short when long.
pub fn shown(raw: &str) -> String {
    const SHOWN: usize = 40;
    let count = raw.chars().count();
    if count <= SHOWN {
        format!("`{raw}`")
    } else {
        let head: String = raw.chars().take(SHOWN).collect();
        format!("`{head}…` ({count} characters)")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_that_does_not_read_takes_its_place_in_the_fields() {
        let mut unread = Unread::default();
        let number = |s: &str| s.parse::<i64>().ok();
        assert_eq!(
            unread.read(Place::Field("total"), Some("7".into()), number),
            Some(7)
        );
        assert_eq!(unread.read(Place::Field("total"), None, number), None);
        assert!(unread.is_empty(), "absent is not unread");
        assert_eq!(
            unread.read(Place::Line(1, "quantity"), Some("abc".into()), number),
            None
        );
        assert_eq!(
            unread.read(Place::Field("due_date"), Some("31/02".into()), number),
            None
        );
        let mut fields = FieldMap::new();
        fields.insert(
            "line_items".into(),
            json!([{"quantity": "1"}, {"quantity": "1"}]),
        );
        unread.carry(&mut fields);
        assert_eq!(fields["line_items"][1]["quantity"], json!("abc"));
        assert_eq!(fields["line_items"][0]["quantity"], json!("1"));
        assert_eq!(fields["due_date"], json!("31/02"));
    }
}
