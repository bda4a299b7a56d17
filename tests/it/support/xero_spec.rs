//! Checks the requests the Xero connector sends against Xero's published OpenAPI
//! document (`specs/xero_accounting.yaml`), so a field or parameter Xero would
//! silently ignore (or refuse) is caught in tests rather than in production.
//!
//! ```ignore
//! let spec = XeroSpec::load();
//! let problems = spec.problems(&sent_request);
//! assert!(problems.is_empty(), "{problems:#?}");
//! ```
//!
//! What is checked, per request:
//! - the method and path match an operation (`/Contacts/{ContactID}` matches
//!   `/Contacts/<anything>`, the path parameter's value checked against its schema);
//! - every query parameter is declared by the operation (inline, `$ref`, or on the
//!   path) and its value parses as the declared type (integer, boolean, string with
//!   `date-time`/`date`/`uuid` formats, enums, comma-separated arrays);
//! - every header is declared as `in: header`, or is `xero-tenant-id` (required on
//!   every call), `authorization`, `accept` or `content-type`; `Idempotency-Key` is at
//!   most 128 characters and `If-Modified-Since` an RFC 3339 date-time;
//! - required parameters are present;
//! - the JSON body validates against the operation's `application/json` request
//!   schema: types, enums, array items, undeclared properties, `required`,
//!   `readOnly`, `maxLength`, `uuid`/`date-time`/`date` formats and Xero's
//!   `x-is-msdate` dates (`YYYY-MM-DD`, `YYYY-MM-DDThh:mm:ss`, `/Date(ms)/`);
//! - a body sent with a GET, or to an operation without a request body, is a problem.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};
use tandem::connectors::http::SentRequest;

/// Where the spec lives: vendored in the repository, so the tests need nothing outside it.
pub const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/specs/xero_accounting.yaml");

/// Headers any call may carry without the operation declaring them.
const TRANSPORT_HEADERS: [&str; 3] = ["authorization", "accept", "content-type"];
/// The tenant header: declared on every path as a component parameter, required always.
const TENANT_HEADER: &str = "xero-tenant-id";
const IDEMPOTENCY_KEY_MAX: usize = 128;
/// How deep a body may nest (values and `$ref` hops together) before checking stops:
/// Contact -> ContactGroups -> Contacts -> ... recurses in the spec.
const MAX_DEPTH: usize = 48;
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// Xero's Accounting API document, parsed once per test process.
#[derive(Clone)]
pub struct XeroSpec {
    doc: Arc<Value>,
}

static SPEC: OnceLock<Arc<Value>> = OnceLock::new();

/// One operation picked for a request: its template and the parameters that apply.
struct Operation<'a> {
    template: &'a str,
    op: &'a Value,
    /// Path-level parameters overridden by the operation's own (same `name` + `in`).
    parameters: Vec<&'a Value>,
}

impl XeroSpec {
    /// Reads and parses the spec (once per process; later calls share it).
    pub fn load() -> XeroSpec {
        let doc = SPEC
            .get_or_init(|| {
                let text = std::fs::read_to_string(SPEC_PATH).unwrap_or_else(|e| {
                    panic!(
                        "the Xero OpenAPI spec is missing at {SPEC_PATH} ({e}); it is committed \
                         in specs/ (see specs/SOURCES.md)"
                    )
                });
                let doc: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| {
                    panic!("the Xero OpenAPI spec at {SPEC_PATH} is not valid YAML: {e}")
                });
                assert!(
                    doc.get("paths").and_then(Value::as_object).is_some(),
                    "the Xero OpenAPI spec at {SPEC_PATH} has no `paths`"
                );
                Arc::new(doc)
            })
            .clone();
        XeroSpec { doc }
    }

    /// Every problem with one request, empty when it conforms.
    pub fn problems(&self, request: &SentRequest) -> Vec<String> {
        let method = request.method.to_ascii_uppercase();
        let label = format!("{} {}", method, request.path);
        let path = request.path.split('?').next().unwrap_or_default();
        let templates = self.matching_templates(path);
        if templates.is_empty() {
            return vec![format!(
                "{label}: no path in the Xero spec matches `{path}`"
            )];
        }
        let lower = method.to_ascii_lowercase();
        let candidates: Vec<Operation<'_>> = templates
            .iter()
            .filter_map(|t| self.operation(t, &lower))
            .collect();
        if candidates.is_empty() {
            let mut allowed: Vec<String> =
                templates.iter().flat_map(|t| self.methods_of(t)).collect();
            allowed.sort();
            allowed.dedup();
            return vec![format!(
                "{label}: the spec has no {method} operation for {} (it has: {})",
                templates.join(" or "),
                allowed.join(", ")
            )];
        }
        // Several templates may match (`/Contacts/{ContactID}` and
        // `/Contacts/{ContactNumber}`): the request conforms if any of them takes it.
        candidates
            .iter()
            .map(|op| self.check_operation(&label, op, path, request))
            .min_by_key(Vec::len)
            .unwrap_or_default()
    }

    /// `components/schemas/<name>` (`Null` when the spec has none), for tests that hold
    /// a table to the spec.
    pub fn schema(&self, name: &str) -> &Value {
        &self.doc["components"]["schemas"][name]
    }

    /// Panics naming every problem of every request, when there are any.
    pub fn assert_conforms(&self, requests: &[SentRequest]) {
        let problems: Vec<String> = requests.iter().flat_map(|r| self.problems(r)).collect();
        assert!(
            problems.is_empty(),
            "requests that do not conform to Xero's OpenAPI spec:\n  {}",
            problems.join("\n  ")
        );
    }

    fn paths(&self) -> &Map<String, Value> {
        self.doc
            .get("paths")
            .and_then(Value::as_object)
            .expect("checked at load: the spec has `paths`")
    }

    /// Templates matching `path`, those with the most literal segments first.
    fn matching_templates(&self, path: &str) -> Vec<&str> {
        let sent: Vec<&str> = path.split('/').collect();
        let mut found: Vec<(usize, &str)> = self
            .paths()
            .keys()
            .filter_map(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != sent.len() {
                    return None;
                }
                let mut literal = 0;
                for (t, s) in parts.iter().zip(&sent) {
                    if is_template(t) {
                        if s.is_empty() {
                            return None;
                        }
                    } else if t == s {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, template.as_str()))
            })
            .collect();
        let best = found.iter().map(|(l, _)| *l).max().unwrap_or(0);
        found.retain(|(l, _)| *l == best);
        found.into_iter().map(|(_, t)| t).collect()
    }

    fn methods_of(&self, template: &str) -> Vec<String> {
        self.paths()
            .get(template)
            .and_then(Value::as_object)
            .map(|item| {
                item.keys()
                    .filter(|k| METHODS.contains(&k.as_str()))
                    .map(|k| k.to_ascii_uppercase())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn operation<'a>(&'a self, template: &'a str, method: &str) -> Option<Operation<'a>> {
        let item = self.paths().get(template)?;
        let op = item.get(method)?;
        let mut parameters: Vec<&Value> = Vec::new();
        let lists = [item.get("parameters"), op.get("parameters")];
        for list in lists.into_iter().flatten() {
            for p in list.as_array().into_iter().flatten() {
                let p = self.deref(p);
                let key = (p.get("name"), p.get("in"));
                parameters.retain(|q| (q.get("name"), q.get("in")) != key);
                parameters.push(p);
            }
        }
        Some(Operation {
            template,
            op,
            parameters,
        })
    }

    /// Follows `$ref`s (a few hops at most) to the node they name.
    fn deref<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        for _ in 0..8 {
            match node.get("$ref").and_then(Value::as_str) {
                Some(r) => match self.resolve(r) {
                    Some(target) => node = target,
                    None => return node,
                },
                None => return node,
            }
        }
        node
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        self.doc.pointer(pointer)
    }

    fn check_operation(
        &self,
        label: &str,
        op: &Operation<'_>,
        path: &str,
        request: &SentRequest,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let declared = |place: &str, name: &str| -> Option<&Value> {
            op.parameters.iter().copied().find(|p| {
                p.get("in").and_then(Value::as_str) == Some(place)
                    && p.get("name").and_then(Value::as_str).is_some_and(|n| {
                        if place == "header" {
                            n.eq_ignore_ascii_case(name)
                        } else {
                            n == name
                        }
                    })
            })
        };

        // Path parameters.
        for (t, s) in op.template.split('/').zip(path.split('/')) {
            if !is_template(t) {
                continue;
            }
            let name = &t[1..t.len() - 1];
            let where_ = format!("{label}: path parameter `{name}`");
            match declared("path", name) {
                Some(p) => self.check_text(&where_, p.get("schema"), s, &mut out),
                None => out.push(format!(
                    "{where_} (of {}) is not declared by the operation",
                    op.template
                )),
            }
        }

        // Query parameters.
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &request.query {
            let where_ = format!("{label}: query parameter `{name}`");
            if seen.contains(&name.as_str()) {
                out.push(format!("{where_} is sent more than once"));
                continue;
            }
            seen.push(name);
            match declared("query", name) {
                Some(p) => self.check_text(&where_, p.get("schema"), value, &mut out),
                None => out.push(format!(
                    "{where_} is not declared by {} {} (declared: {})",
                    label.split(' ').next().unwrap_or_default(),
                    op.template,
                    names_in(&op.parameters, "query").join(", ")
                )),
            }
        }

        // Headers.
        for (name, value) in &request.headers {
            let where_ = format!("{label}: header `{name}`");
            let lower = name.to_ascii_lowercase();
            if TRANSPORT_HEADERS.contains(&lower.as_str()) {
                continue;
            }
            if lower == TENANT_HEADER {
                if value.trim().is_empty() {
                    out.push(format!("{where_} is empty"));
                }
                continue;
            }
            match declared("header", name) {
                Some(p) => {
                    self.check_text(&where_, p.get("schema"), value, &mut out);
                    if lower == "idempotency-key" {
                        let n = value.chars().count();
                        if n > IDEMPOTENCY_KEY_MAX {
                            out.push(format!(
                                "{where_} is {n} characters; Xero takes at most \
                                 {IDEMPOTENCY_KEY_MAX}"
                            ));
                        }
                        if value.is_empty() {
                            out.push(format!("{where_} is empty"));
                        }
                    }
                }
                None => out.push(format!(
                    "{where_} is not declared by {} {} (declared headers: {})",
                    label.split(' ').next().unwrap_or_default(),
                    op.template,
                    names_in(&op.parameters, "header").join(", ")
                )),
            }
        }
        let has_header = |name: &str| {
            request
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if !has_header(TENANT_HEADER) {
            out.push(format!(
                "{label}: header `{TENANT_HEADER}` is missing (Xero requires it on every call)"
            ));
        }

        // Required parameters.
        for p in &op.parameters {
            if p.get("required").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                continue;
            };
            let present = match p.get("in").and_then(Value::as_str) {
                Some("query") => request.query.iter().any(|(n, _)| n == name),
                // The tenant header's absence is reported above.
                Some("header") => name.eq_ignore_ascii_case(TENANT_HEADER) || has_header(name),
                _ => true,
            };
            if !present {
                out.push(format!(
                    "{label}: required {} parameter `{name}` is missing",
                    p.get("in").and_then(Value::as_str).unwrap_or("?")
                ));
            }
        }

        // Body.
        let request_body = op.op.get("requestBody").map(|b| self.deref(b));
        match (&request.body, request_body) {
            (Some(_), _) if label.starts_with("GET ") || label.starts_with("HEAD ") => {
                out.push(format!("{label}: a GET or HEAD request carries a body"));
            }
            (Some(_), None) => out.push(format!(
                "{label}: carries a body but the operation ({}) takes none",
                op.template
            )),
            (Some(body), Some(spec)) => match spec.pointer("/content/application~1json/schema") {
                Some(schema) => {
                    let mut ctx = Ctx {
                        label,
                        out: &mut out,
                    };
                    self.check_value(schema, body, "body", "request body", 0, &mut ctx);
                }
                None => out.push(format!(
                    "{label}: sends a JSON body but the operation takes only {}",
                    spec.get("content")
                        .and_then(Value::as_object)
                        .map(|c| c.keys().cloned().collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                )),
            },
            (None, Some(spec)) if spec.get("required").and_then(Value::as_bool) == Some(true) => {
                out.push(format!(
                    "{label}: the operation requires a request body and none was sent"
                ));
            }
            (None, _) => {}
        }
        out
    }

    /// A parameter's text value against its schema.
    fn check_text(&self, where_: &str, schema: Option<&Value>, value: &str, out: &mut Vec<String>) {
        let Some(schema) = schema.map(|s| self.deref(s)) else {
            return;
        };
        let kind = schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string");
        match kind {
            "array" => {
                let items = schema.get("items");
                for (i, part) in value.split(',').enumerate() {
                    self.check_text(&format!("{where_} item {i}"), items, part.trim(), out);
                }
                return;
            }
            "integer" => {
                if value.parse::<i64>().is_err() {
                    out.push(format!("{where_} = `{value}` is not an integer"));
                    return;
                }
            }
            "number" => {
                if value.parse::<f64>().is_err() {
                    out.push(format!("{where_} = `{value}` is not a number"));
                    return;
                }
            }
            "boolean" => {
                if value != "true" && value != "false" {
                    out.push(format!(
                        "{where_} = `{value}` is not a boolean (`true` or `false`)"
                    ));
                    return;
                }
            }
            _ => {
                if let Some(problem) = string_problem(schema, value) {
                    out.push(format!("{where_} = `{value}` {problem}"));
                    return;
                }
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.iter().any(|a| enum_text(a) == value) {
                out.push(format!(
                    "{where_} = `{value}` is not one of {}",
                    enum_list(allowed)
                ));
            }
        }
    }

    /// A JSON value against a schema; `schema_name` is the nearest `$ref`'s name.
    fn check_value(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        schema_name: &str,
        depth: usize,
        ctx: &mut Ctx<'_>,
    ) {
        if depth > MAX_DEPTH {
            ctx.push(format!(
                "{at} nests deeper than {MAX_DEPTH} levels; not checked further"
            ));
            return;
        }
        if schema.get("readOnly").and_then(Value::as_bool) == Some(true) {
            ctx.push(format!(
                "{at} is read-only in the spec ({schema_name}); Xero sets it and ignores it when sent"
            ));
            return;
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            match self.resolve(reference) {
                Some(target) => {
                    let name = reference.rsplit('/').next().unwrap_or(reference);
                    self.check_value(target, value, at, name, depth + 1, ctx);
                }
                None => ctx.push(format!(
                    "{at}: the spec's `$ref` {reference} does not resolve"
                )),
            }
            return;
        }
        if value.is_null() {
            if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
                ctx.push(format!("{at} is null; {schema_name} does not allow null"));
            }
            return;
        }
        let kind = schema.get("type").and_then(Value::as_str).or_else(|| {
            if schema.get("properties").is_some() {
                Some("object")
            } else if schema.get("items").is_some() {
                Some("array")
            } else {
                None
            }
        });
        match kind {
            Some("object") => self.check_object(schema, value, at, schema_name, depth, ctx),
            Some("array") => {
                let Some(items) = value.as_array() else {
                    ctx.push(format!("{at} should be an array, found {}", type_of(value)));
                    return;
                };
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check_value(
                            item_schema,
                            item,
                            &format!("{at}[{i}]"),
                            schema_name,
                            depth + 1,
                            ctx,
                        );
                    }
                }
            }
            Some("string") => {
                let Some(text) = value.as_str() else {
                    ctx.push(format!("{at} should be a string, found {}", type_of(value)));
                    return;
                };
                if let Some(problem) = string_problem(schema, text) {
                    ctx.push(format!("{at} = {value} {problem}"));
                }
            }
            Some(scalar @ ("number" | "integer" | "boolean")) => {
                let fits = match scalar {
                    "number" => value.is_number(),
                    "integer" => {
                        value.is_i64()
                            || value.is_u64()
                            || value.as_f64().is_some_and(|f| f.fract() == 0.0)
                    }
                    _ => value.is_boolean(),
                };
                if !fits {
                    let found = if value.is_number() {
                        value.to_string()
                    } else {
                        type_of(value).to_string()
                    };
                    let wanted = if scalar == "integer" { "an" } else { "a" };
                    ctx.push(format!("{at} should be {wanted} {scalar}, found {found}"));
                }
            }
            Some(other) => ctx.push(format!(
                "{at}: the spec's type `{other}` ({schema_name}) is not one this checker knows"
            )),
            None => {}
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            let ok = allowed
                .iter()
                .any(|a| a == value || value.as_str().is_some_and(|s| enum_text(a) == s));
            if !ok {
                ctx.push(format!(
                    "{at} = {value} is not one of {} ({schema_name})",
                    enum_list(allowed)
                ));
            }
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        schema_name: &str,
        depth: usize,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(object) = value.as_object() else {
            ctx.push(format!(
                "{at} should be an object ({schema_name}), found {}",
                type_of(value)
            ));
            return;
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (key, item) in object {
            let here = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(property) => {
                    self.check_value(property, item, &here, schema_name, depth + 1, ctx)
                }
                None => match additional {
                    Some(Value::Bool(true)) => {}
                    Some(extra @ Value::Object(_)) => {
                        self.check_value(extra, item, &here, schema_name, depth + 1, ctx)
                    }
                    _ => ctx.push(format!(
                        "{here}: `{key}` is not a property of {schema_name} (Xero ignores \
                         unknown fields silently)"
                    )),
                },
            }
        }
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                ctx.push(format!(
                    "{at}: required property `{name}` of {schema_name} is missing"
                ));
            }
        }
    }
}

/// Where the problems of one request go, each prefixed with the request.
struct Ctx<'a> {
    label: &'a str,
    out: &'a mut Vec<String>,
}

impl Ctx<'_> {
    fn push(&mut self, problem: String) {
        self.out.push(format!("{}: {problem}", self.label));
    }
}

fn is_template(segment: &str) -> bool {
    segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}')
}

fn names_in(parameters: &[&Value], place: &str) -> Vec<String> {
    parameters
        .iter()
        .filter(|p| p.get("in").and_then(Value::as_str) == Some(place))
        .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn enum_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn enum_list(allowed: &[Value]) -> String {
    let shown: Vec<String> = allowed.iter().take(12).map(enum_text).collect();
    let more = if allowed.len() > shown.len() {
        format!(", … ({} in all)", allowed.len())
    } else {
        String::new()
    };
    format!("[{}{more}]", shown.join(", "))
}

/// What is wrong with a string for its schema's format and length, if anything.
fn string_problem(schema: &Value, text: &str) -> Option<String> {
    let flag = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
    if flag("x-is-msdate") || flag("x-is-msdate-time") {
        if !is_xero_date(text) {
            return Some(
                "is not a date Xero reads (`YYYY-MM-DD`, `YYYY-MM-DDThh:mm:ss` or `/Date(ms)/`)"
                    .into(),
            );
        }
    } else {
        match schema.get("format").and_then(Value::as_str) {
            Some("date-time") if chrono::DateTime::parse_from_rfc3339(text).is_err() => {
                return Some("is not an RFC 3339 date-time".into());
            }
            Some("date") if !is_plain_date(text) => {
                return Some("is not a date (`YYYY-MM-DD`)".into());
            }
            Some("uuid") if uuid::Uuid::parse_str(text).is_err() => {
                return Some("is not a UUID".into());
            }
            _ => {}
        }
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        let n = text.chars().count() as u64;
        if n > max {
            return Some(format!("is {n} characters; at most {max} are allowed"));
        }
    }
    None
}

fn is_plain_date(text: &str) -> bool {
    text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

/// `YYYY-MM-DD`, `YYYY-MM-DDThh:mm:ss[.fff]` or `/Date(ms[+zzzz])/`.
fn is_xero_date(text: &str) -> bool {
    if is_plain_date(text) {
        return true;
    }
    if chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok() {
        return true;
    }
    let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|t| t.strip_suffix(")/"))
    else {
        return false;
    };
    // A leading sign belongs to the milliseconds; a later one starts the zone.
    let zone_at = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map(|(i, _)| i);
    let (ms, zone) = match zone_at {
        Some(i) => inner.split_at(i),
        None => (inner, ""),
    };
    ms.parse::<i64>().is_ok()
        && (zone.is_empty() || (zone.len() == 5 && zone[1..].chars().all(|c| c.is_ascii_digit())))
}
