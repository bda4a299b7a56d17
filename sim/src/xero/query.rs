//! The query of a list call: `IDs`, `where`, `If-Modified-Since`, `order`, `page`,
//! `pageSize`, `includeArchived`, and the small `where` language the connectors use:
//! `Field=="value"` terms joined by `OR` (and `AND`), with `Guid("…")` accepted for ids.

/// One `Field=="value"` (or `!=`) term; the field is as written, compared
/// case-insensitively against the record's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// Terms ANDed within a group, groups ORed.
pub(crate) type Where = Vec<Vec<Term>>;

#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub ids: Option<Vec<String>>,
    pub filter: Option<Where>,
    pub since_ms: Option<i64>,
    /// The field to sort by (`None`: the order records were created in) and whether
    /// descending.
    pub order: Option<(String, bool)>,
    pub page: usize,
    pub page_size: usize,
    pub include_archived: bool,
}

pub(crate) const DEFAULT_PAGE_SIZE: usize = 100;
pub(crate) const MAX_PAGE_SIZE: usize = 1000;

/// The value of a query parameter, whose name Xero matches case-insensitively.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(crate) fn flag(pairs: &[(String, String)], name: &str) -> Option<bool> {
    param(pairs, name).map(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Decodes a raw query string (`+` is a space, `%xx` escapes) into pairs.
pub(crate) fn decode_pairs(raw: &str) -> Vec<(String, String)> {
    match reqwest::Url::parse(&format!("http://query.invalid/?{raw}")) {
        Ok(url) => url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

impl ListQuery {
    /// Reads a list query; `fields` are the fields `where` and `order` may name.
    pub(crate) fn parse(
        pairs: &[(String, String)],
        if_modified_since: Option<&str>,
        fields: &[&str],
    ) -> Result<Self, String> {
        let ids: Option<Vec<String>> = param(pairs, "IDs").map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        });
        // `IDs` is a list of UUIDs in the spec; Xero cannot look up anything else.
        if let Some(bad) = ids
            .iter()
            .flatten()
            .find(|id| uuid::Uuid::try_parse(id).is_err())
        {
            return Err(format!("IDs must be UUIDs: {bad} is not one."));
        }
        let filter = match param(pairs, "where").map(str::trim) {
            Some(text) if !text.is_empty() => Some(parse_where(text, fields)?),
            _ => None,
        };
        let since_ms = match if_modified_since.map(str::trim) {
            Some(text) if !text.is_empty() => Some(
                super::dates::parse_since(text)
                    .ok_or_else(|| format!("If-Modified-Since {text} is not a date-time."))?,
            ),
            _ => None,
        };
        let order = match param(pairs, "order").map(str::trim) {
            Some(text) if !text.is_empty() => Some(parse_order(text, fields)?),
            _ => None,
        };
        let page = param(pairs, "page")
            .and_then(|p| p.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let page_size = param(pairs, "pageSize")
            .and_then(|p| p.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE);
        Ok(Self {
            ids,
            filter,
            since_ms,
            order,
            page,
            page_size,
            include_archived: flag(pairs, "includeArchived").unwrap_or(false),
        })
    }
}

fn canonical(field: &str, fields: &[&str]) -> Result<String, String> {
    fields
        .iter()
        .find(|f| f.eq_ignore_ascii_case(field))
        .map(|f| f.to_string())
        .ok_or_else(|| format!("No property or field '{field}' exists in the filter."))
}

fn parse_order(text: &str, fields: &[&str]) -> Result<(String, bool), String> {
    let mut words = text.split_whitespace();
    let field = words.next().unwrap_or_default();
    let descending = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("ASC") => false,
        Some(w) if w.eq_ignore_ascii_case("DESC") => true,
        Some(w) => return Err(format!("Order direction {w} is not valid.")),
    };
    if field.eq_ignore_ascii_case("UpdatedDateUTC") {
        return Ok(("UpdatedDateUTC".into(), descending));
    }
    Ok((canonical(field, fields)?, descending))
}

struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Cursor<'_> {
    fn skip_spaces(&mut self) {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.chars.next();
        }
    }

    fn word(&mut self) -> String {
        let mut out = String::new();
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() || c == '=' || c == '!' || c == '(' || c == ')' || c == '"' {
                break;
            }
            out.push(c);
            self.chars.next();
        }
        out
    }

    fn quoted(&mut self) -> Result<String, String> {
        if self.chars.next() != Some('"') {
            return Err("Expected a quoted value.".into());
        }
        let mut out = String::new();
        loop {
            match self.chars.next() {
                None => return Err("Unterminated string in the filter.".into()),
                Some('"') => return Ok(out),
                Some('\\') => match self.chars.next() {
                    Some(c) => out.push(c),
                    None => return Err("Unterminated string in the filter.".into()),
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn value(&mut self) -> Result<String, String> {
        self.skip_spaces();
        if self.chars.peek() == Some(&'"') {
            return self.quoted();
        }
        let word = self.word();
        // Guid("…") and friends wrap a quoted value.
        if self.chars.peek() == Some(&'(') {
            self.chars.next();
            self.skip_spaces();
            let inner = if self.chars.peek() == Some(&'"') {
                self.quoted()?
            } else {
                self.word()
            };
            self.skip_spaces();
            if self.chars.next() != Some(')') {
                return Err(format!("Expected ) after {word}(…."));
            }
            return Ok(inner);
        }
        if word.is_empty() {
            return Err("Expected a value in the filter.".into());
        }
        Ok(word)
    }
}

/// Parses `A=="x" OR B=="y" AND C!="z"` (AND binds tighter) into groups.
pub(crate) fn parse_where(text: &str, fields: &[&str]) -> Result<Where, String> {
    let mut cursor = Cursor {
        chars: text.chars().peekable(),
    };
    let mut groups: Where = vec![Vec::new()];
    loop {
        cursor.skip_spaces();
        let field = cursor.word();
        if field.is_empty() {
            return Err(format!("The filter `{text}` is not valid."));
        }
        let field = canonical(&field, fields)?;
        cursor.skip_spaces();
        let op: String = [cursor.chars.next(), cursor.chars.next()]
            .into_iter()
            .flatten()
            .collect();
        let equal = match op.as_str() {
            "==" => true,
            "!=" => false,
            _ => return Err(format!("Operator `{op}` is not supported in the filter.")),
        };
        let value = cursor.value()?;
        if let Some(group) = groups.last_mut() {
            group.push(Term {
                field,
                value,
                equal,
            });
        }
        cursor.skip_spaces();
        if cursor.chars.peek().is_none() {
            return Ok(groups);
        }
        let joiner = match cursor.chars.peek() {
            Some('|') | Some('&') => [cursor.chars.next(), cursor.chars.next()]
                .into_iter()
                .flatten()
                .collect(),
            _ => cursor.word(),
        };
        match joiner.to_ascii_uppercase().as_str() {
            "OR" | "||" => groups.push(Vec::new()),
            "AND" | "&&" => {}
            other => return Err(format!("`{other}` is not supported in the filter.")),
        }
    }
}

/// Whether a record whose fields read as `get` says passes the filter.
pub(crate) fn matches(filter: &Where, get: impl Fn(&str) -> Option<String>) -> bool {
    filter.iter().any(|group| {
        group.iter().all(|term| {
            let actual = get(&term.field).unwrap_or_default();
            actual.eq_ignore_ascii_case(&term.value) == term.equal
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[&str] = &["ContactNumber", "EmailAddress", "Contact.ContactID"];

    #[test]
    fn ids_must_be_uuids() {
        let pairs = |ids: &str| vec![("IDs".to_string(), ids.to_string())];
        let ok = ListQuery::parse(&pairs("430fa14a-f945-44d3-9f97-5df5e28441b8"), None, FIELDS);
        assert!(ok.is_ok());
        let bad = ListQuery::parse(
            &pairs("430fa14a-f945-44d3-9f97-5df5e28441b8,crm-7"),
            None,
            FIELDS,
        );
        assert_eq!(
            bad.err().as_deref(),
            Some("IDs must be UUIDs: crm-7 is not one.")
        );
    }

    #[test]
    fn parses_or_and_guid() {
        let w = parse_where(
            r#"ContactNumber=="S1" OR EmailAddress == "a@b.c" AND Contact.ContactID==Guid("x")"#,
            FIELDS,
        )
        .expect("parses");
        assert_eq!(w.len(), 2);
        assert_eq!(w[0][0].value, "S1");
        assert_eq!(w[1].len(), 2);
        assert_eq!(w[1][1].field, "Contact.ContactID");
        assert_eq!(w[1][1].value, "x");
        assert!(parse_where(r#"Nope=="x""#, FIELDS).is_err());
        assert!(parse_where(r#"ContactNumber>"x""#, FIELDS).is_err());
    }

    #[test]
    fn decodes_plus_as_space() {
        let pairs = decode_pairs("order=UpdatedDateUTC+ASC&where=Name%3D%3D%22A%20B%22");
        assert_eq!(param(&pairs, "ORDER"), Some("UpdatedDateUTC ASC"));
        assert_eq!(param(&pairs, "where"), Some(r#"Name=="A B""#));
    }
}
