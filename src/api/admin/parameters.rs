//! The admin API's parameters as checked types: each is read by its rule in the
//! `params` crate, so a handler only ever sees a value within its range, and a value
//! outside it is refused with a 400 naming the parameter and the range
//! (`` `limit` must be a whole number from 1 to 500; got `501` ``, worded in
//! `api::guard::errors`). Their OpenAPI schemas carry the same ranges. Path parameters
//! are read in the handler ([`PathText`]), where their names are known.

use std::borrow::Cow;
use std::marker::PhantomData;

use chrono::{DateTime, Duration, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, Type};
use serde_json::Value;

use uuid::Uuid;

use crate::domain::{EntityType, PairId, System};
use crate::store::{ConflictStatus, Outcome};

/// The `Type` boilerplate of a parameter that is read from text into `Self`.
macro_rules! parameter_type {
    ($ty:ty, $name:expr, $schema:expr) => {
        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new($schema))
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
    };
}

fn refused<T: Type>(refusal: params::Refusal) -> ParseError<T> {
    ParseError::custom(refusal)
}

/// How many rows one page holds: 1 to `MAX`, `DEFAULT` when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize<const MAX: u64, const DEFAULT: u64>(pub u64);

impl<const MAX: u64, const DEFAULT: u64> PageSize<MAX, DEFAULT> {
    /// The size asked for, or the default.
    pub fn or_default(size: Option<Self>) -> u64 {
        size.map_or(DEFAULT, |size| size.0)
    }
}

impl<const MAX: u64, const DEFAULT: u64> Type for PageSize<MAX, DEFAULT> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        format!("page_size_1_{MAX}").into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new_with_format("integer", "uint64");
        schema.minimum = Some(1.0);
        schema.maximum = Some(MAX as f64);
        schema.default = Some(Value::from(DEFAULT));
        MetaSchemaRef::Inline(Box::new(schema))
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

impl<const MAX: u64, const DEFAULT: u64> ParseFromParameter for PageSize<MAX, DEFAULT> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        params::count(value, 1, MAX).map(Self).map_err(refused)
    }
}

/// Rows skipped before a page: 0 to [`params::limits::OFFSET`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offset(pub u64);

parameter_type!(Offset, "offset", {
    let mut schema = MetaSchema::new_with_format("integer", "uint64");
    schema.minimum = Some(0.0);
    schema.maximum = Some(params::limits::OFFSET as f64);
    schema
});

impl ParseFromParameter for Offset {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        params::count(value, 0, params::limits::OFFSET)
            .map(Self)
            .map_err(refused)
    }
}

/// A length of time back from now: `90m`, `24h`, `7d`, at most 90 days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub length: Duration,
    /// As the caller wrote it, for the answer.
    pub text: String,
}

parameter_type!(Window, "window", {
    let mut schema = MetaSchema::new("string");
    schema.pattern = Some("^[0-9]{1,6}[mhd]$".into());
    schema.max_length = Some(7);
    schema
});

impl ParseFromParameter for Window {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        params::window(value)
            .map(|length| Self {
                length,
                text: value.to_string(),
            })
            .map_err(refused)
    }
}

/// An RFC 3339 time from 2000 to 2100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub DateTime<Utc>);

parameter_type!(
    Time,
    "time",
    MetaSchema::new_with_format("string", "date-time")
);

impl ParseFromParameter for Time {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        params::instant(value).map(Self).map_err(refused)
    }
}

/// A path parameter as the caller sent it, with the schema of what it must be. It is
/// read by its rule in the handler, where its name is known: poem-openapi's own path
/// errors name a path parameter by its position (`param3`), not by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathText<K>(pub String, PhantomData<K>);

/// What a path parameter must be.
pub trait PathKind: Send + Sync + 'static {
    type Value;
    const NAME: &'static str;
    fn schema() -> MetaSchema;
    fn read(text: &str) -> Result<Self::Value, params::Refusal>;
}

impl<K: PathKind> PathText<K> {
    /// The value, or a reason naming the parameter and the range.
    pub fn read(&self, name: &str) -> Result<K::Value, String> {
        K::read(&self.0).map_err(|refusal| format!("`{name}` {refusal}"))
    }
}

impl<K: PathKind> Type for PathText<K> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        K::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(K::schema()))
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

impl<K: PathKind> ParseFromParameter for PathText<K> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Self(value.to_string(), PhantomData))
    }
}

/// A record's id in one of the systems: no control characters, at most 255.
pub struct RecordIdKind;

impl PathKind for RecordIdKind {
    type Value = String;
    const NAME: &'static str = "record_id";

    fn schema() -> MetaSchema {
        let mut schema = MetaSchema::new("string");
        schema.min_length = Some(1);
        schema.max_length = Some(params::limits::RECORD_ID_CHARS);
        schema
    }

    fn read(text: &str) -> Result<String, params::Refusal> {
        params::record_id(text).map(str::to_string)
    }
}

/// A pair's name: a-z, 0-9, `-` and `_`.
pub struct PairNameKind;

impl PathKind for PairNameKind {
    type Value = PairId;
    const NAME: &'static str = "pair_name";

    fn schema() -> MetaSchema {
        pair_schema()
    }

    fn read(text: &str) -> Result<PairId, params::Refusal> {
        params::pair_name(text).map(PairId::new)
    }
}

/// A UUID: the id of a job, a conflict, a held delete.
pub struct UuidKind;

impl PathKind for UuidKind {
    type Value = Uuid;
    const NAME: &'static str = "uuid";

    fn schema() -> MetaSchema {
        MetaSchema::new_with_format("string", "uuid")
    }

    fn read(text: &str) -> Result<Uuid, params::Refusal> {
        // Only the hyphenated form, which is what Tandem gives out.
        match Uuid::try_parse(text) {
            Ok(id) if text.len() == 36 => Ok(id),
            _ => Err(params::Refusal::new(
                "a UUID such as 0190b5a4-7c1e-7d3a-9f00-3c5e8f1a2b4c",
                text,
            )),
        }
    }
}

/// One word of `V`'s list, in a path.
pub struct WordKind<V>(PhantomData<V>);

impl<V: Vocabulary> PathKind for WordKind<V> {
    type Value = V;
    const NAME: &'static str = V::NAME;

    fn schema() -> MetaSchema {
        word_schema(V::WORDS)
    }

    fn read(text: &str) -> Result<V, params::Refusal> {
        params::word(text, V::WORDS)
            .ok()
            .and_then(V::from_word)
            .ok_or_else(|| params::Refusal::new(format!("one of {}", V::WORDS.join(", ")), text))
    }
}

fn pair_schema() -> MetaSchema {
    let mut schema = MetaSchema::new("string");
    schema.pattern = Some("^[a-z0-9_-]{1,64}$".into());
    schema
}

fn word_schema(words: &[&str]) -> MetaSchema {
    let mut schema = MetaSchema::new("string");
    schema.enum_items = words.iter().map(|w| Value::from(*w)).collect();
    schema
}

/// A pair's name in a query: a-z, 0-9, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairName(pub PairId);

parameter_type!(PairName, "pair_name", pair_schema());

impl ParseFromParameter for PairName {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        PairNameKind::read(value).map(Self).map_err(refused)
    }
}

/// What a person types to find a record, trimmed: 2 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(pub String);

parameter_type!(SearchText, "search_text", {
    let mut schema = MetaSchema::new("string");
    schema.min_length = Some(params::limits::SEARCH_CHARS.0);
    schema.max_length = Some(params::limits::SEARCH_CHARS.1);
    schema
});

impl ParseFromParameter for SearchText {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        params::search_text(value)
            .map(|text| Self(text.to_string()))
            .map_err(refused)
    }
}

/// A value named by one word from a fixed list.
pub trait Vocabulary: Sized + Send + Sync + 'static {
    const NAME: &'static str;
    const WORDS: &'static [&'static str];
    fn from_word(word: &str) -> Option<Self>;
}

/// One word of `V`'s list, read into `V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word<V>(pub V);

impl<V: Vocabulary> Type for Word<V> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        V::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(word_schema(V::WORDS)))
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

impl<V: Vocabulary> ParseFromParameter for Word<V> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        params::word(value, V::WORDS)
            .ok()
            .and_then(V::from_word)
            .map(Word)
            .ok_or_else(|| {
                let refusal =
                    params::Refusal::new(format!("one of {}", V::WORDS.join(", ")), value);
                refused(refusal)
            })
    }
}

/// Reads one of the words of a type that lists them, through its `FromStr`.
macro_rules! vocabulary {
    ($ty:ty, $name:literal, $words:expr) => {
        impl Vocabulary for $ty {
            const NAME: &'static str = $name;
            const WORDS: &'static [&'static str] = $words;
            fn from_word(word: &str) -> Option<Self> {
                word.parse().ok()
            }
        }
    };
}

vocabulary!(EntityType, "entity_type", &["customer", "invoice"]);
vocabulary!(System, "system", &["crm", "finance"]);
vocabulary!(Outcome, "outcome", Outcome::WORDS);

/// The conflicts to list: those of one status, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictFilter(pub Option<ConflictStatus>);

impl Vocabulary for ConflictFilter {
    const NAME: &'static str = "conflict_filter";
    const WORDS: &'static [&'static str] = &["open", "decided", "resolved", "withdrawn", "all"];
    fn from_word(word: &str) -> Option<Self> {
        match word {
            "all" => Some(Self(None)),
            other => other.parse().ok().map(|status| Self(Some(status))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_listed_is_read() {
        fn all_read<V: Vocabulary>() {
            for word in V::WORDS {
                assert!(Word::<V>::parse_from_parameter(word).is_ok(), "{word}");
            }
        }
        all_read::<EntityType>();
        all_read::<System>();
        all_read::<Outcome>();
        all_read::<ConflictFilter>();
    }

    #[test]
    fn a_refusal_names_the_range() {
        let err = PageSize::<500, 50>::parse_from_parameter("501").unwrap_err();
        assert!(err
            .into_message()
            .ends_with("must be a whole number from 1 to 500; got `501`"));
        let err = Word::<EntityType>::parse_from_parameter("Customer\0").unwrap_err();
        assert!(err
            .into_message()
            .ends_with("must be one of customer, invoice; got `Customer\\0`"));
    }
}
