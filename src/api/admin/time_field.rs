//! A time in a request body, read as the caller wrote it and parsed by the handler, so
//! that a malformed one is answered with a 400 naming its field and the format.
//! (poem-openapi's own `DateTime` parsing answers in plain text naming only the body
//! type.) Its OpenAPI schema is the same `string`, `date-time` as a `DateTime`'s.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// An RFC 3339 time as written in a request, not yet parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeField(pub String);

impl TimeField {
    /// The time, within the range every admin time is in, or a reason naming
    /// `field` and the range.
    pub fn parse(&self, field: &str) -> Result<DateTime<Utc>, String> {
        params::instant(&self.0).map_err(|refusal| format!("`{field}` {refusal}"))
    }
}

/// Parses an RFC 3339 time as the admin API does (`2026-12-01T00:00:00Z`, any offset);
/// the reason names `label` (a body field, or a command-line flag) and the format.
pub fn parse_time(label: &str, text: &str) -> Result<DateTime<Utc>, String> {
    text.trim().parse::<DateTime<Utc>>().map_err(|_| {
        format!("{label}: `{text}` is not an RFC 3339 time such as 2026-12-01T00:00:00Z")
    })
}

impl Type for TimeField {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_date-time".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for TimeField {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for TimeField {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_time_names_its_field_and_the_format() {
        let err = TimeField("2026-13-01".into()).parse("from").unwrap_err();
        assert_eq!(
            err,
            "`from` must be an RFC 3339 time such as 2026-12-01T00:00:00Z, from 2000-01-01T00:00:00Z to 2100-01-01T00:00:00Z; got `2026-13-01`"
        );
    }

    #[test]
    fn any_offset_is_read_as_utc() {
        let time = TimeField("2026-12-01T01:00:00+01:00".into())
            .parse("from")
            .unwrap();
        assert_eq!(time.to_rfc3339(), "2026-12-01T00:00:00+00:00");
    }
}
