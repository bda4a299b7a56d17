//! The convergence checker: given what both simulators hold once the people stopped
//! editing and Tandem settled, what Tandem linked, and every edit the simulators
//! applied, did the two sides converge — equal, fully linked, without duplicates,
//! without a lost edit, without needless writes, and soon after the last edit? A pure
//! function over end states, so a test can plant each failure.
//!
//! The synced fields are the default mapping's: customers' name, email and phone both
//! ways; invoices' customer from the CRM (and the number, when the CRM gives one: a
//! deal without a number leaves Xero to number the invoice), status, total and amount
//! paid from finance.
//!
//! Lost edits are found by value (the oracle, [`lost_edits`]): for every two-way field
//! of every linked customer, the value the documented rule (`docs/conflicts.md`) says
//! must win, from the journal of every write and the decisions people made, must be
//! what the sides hold; two sides that agree on an older value have lost an edit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sim::{Actor, CustomerView, InvoiceView, JournalEntry, Side};

use crate::domain::ids::EntityType;
use crate::domain::ConflictPolicy;

/// At most this many examples per check.
const MAX_EXAMPLES: usize = 10;

/// Customer fields synced both ways, each with how its values compare.
const CUSTOMER_FIELDS: [(&str, Compare); 3] = [
    ("name", Compare::Exact),
    ("email", Compare::IgnoreCase),
    ("phone", Compare::Exact),
];

/// What both sides hold at the end of a trial, and how they got there.
#[derive(Debug, Clone, Default)]
pub struct EndState {
    pub crm_customers: Vec<CustomerView>,
    pub finance_customers: Vec<CustomerView>,
    pub crm_invoices: Vec<InvoiceView>,
    pub finance_invoices: Vec<InvoiceView>,
    /// Every edit both simulators applied.
    pub journal: Vec<JournalEntry>,
    /// Tandem's links with both ids known.
    pub links: Vec<LinkPair>,
    /// Wall-clock unix milliseconds when the people stopped editing.
    pub edits_stopped_at_ms: i64,
    /// The pair's conflict policy: what decides a clash.
    pub policy: ConflictPolicy,
    /// Conflicts still held for a person at the end (under `manual`).
    pub held: Vec<HeldConflict>,
    /// The decisions people made on held conflicts, in the order they made them.
    pub decisions: Vec<PersonDecision>,
    /// Whether the CRM's records say when each field changed (HubSpot's property
    /// history), or only when the record did. Finance (Xero) only says the latter.
    pub crm_field_times: bool,
}

/// A conflict held for a person when the trial ended, with the values it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldConflict {
    pub crm_id: String,
    pub finance_id: String,
    pub field: String,
    pub crm_value: Option<String>,
    pub finance_value: Option<String>,
}

/// A person's decision on a held conflict: the value it keeps, and when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonDecision {
    pub crm_id: String,
    pub finance_id: String,
    pub field: String,
    pub value: Option<String>,
    pub at_ms: i64,
}

/// One of Tandem's links: a CRM record and the finance record it is kept in step with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPair {
    pub entity: EntityType,
    pub crm_id: String,
    pub finance_id: String,
}

/// What a trial must stay within.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    /// Tandem's writes per effective change, at most.
    pub max_write_ratio: f64,
    /// How long after the last edit Tandem may still write.
    pub settle_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_write_ratio: 1.05,
            settle_seconds: 60,
        }
    }
}

/// One concrete failure, or for the write ratio one record's share of the writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The records involved, as `crm:<id>` and `finance:<id>`.
    pub records: Vec<String>,
    pub field: Option<String>,
    /// For `equal` the CRM's value (for an invoice's customer, the finance customer
    /// the CRM's is linked to); for `lost_edits` the value the conflict policy picks.
    pub expected: Option<String>,
    /// For `equal` finance's value; for `lost_edits` the CRM's.
    pub found: Option<String>,
    /// The finding in one sentence.
    pub detail: String,
}

impl Finding {
    fn new(records: Vec<String>, detail: String) -> Self {
        Self {
            records,
            field: None,
            expected: None,
            found: None,
            detail,
        }
    }

    fn field(mut self, field: &str, expected: Option<&str>, found: Option<&str>) -> Self {
        self.field = Some(field.to_string());
        self.expected = expected.map(str::to_string);
        self.found = found.map(str::to_string);
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// `equal`, `linked`, `duplicates`, `lost_edits`, `write_ratio` or `settle`.
    pub name: String,
    pub passed: bool,
    /// How many failures when failed; how many things were checked when passed (for
    /// `write_ratio`, the writes either way).
    pub count: u64,
    /// What was checked, or the first failure.
    pub summary: String,
    /// Up to ten concrete failures (for the write ratio, the most written records).
    pub examples: Vec<Finding>,
}

/// The numbers behind the write ratio and the settle time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figures {
    /// Writes Tandem made (journal entries by the API).
    pub writes: u64,
    /// Edits people made (journal entries by people).
    pub effective_changes: u64,
    /// `writes / effective_changes`; `None` when nobody edited anything.
    pub write_ratio: Option<f64>,
    /// The last write's time after the last edit, if Tandem wrote at all.
    pub last_write_after_edits_ms: Option<i64>,
    /// What the value oracle found.
    pub oracle: OracleFigures,
}

/// The value oracle's counts over the two-way fields of linked customers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OracleFigures {
    /// Fields judged.
    pub fields: u64,
    /// Holding the value the rule says must win, on both sides.
    pub winning_value_on_both: u64,
    /// Holding it on one side only (check `equal` reports those).
    pub winning_value_on_one: u64,
    /// Holding a value the rule allows because the other side says only when its record
    /// changed, and that record was written again before the clash was judged.
    pub allowed_by_record_time: u64,
    /// Held for a person with both sides' current values (under `manual`).
    pub held: u64,
    /// Edits lost: the winning value on neither side.
    pub lost: u64,
    /// Fields both sides' people edited (a clash, or an edit that came after the other
    /// side's was synced).
    pub edited_on_both_sides: u64,
    /// Decisions people made on held conflicts.
    pub decisions: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    pub checks: Vec<CheckResult>,
    pub passed: bool,
    pub figures: Figures,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let verdict = if check.passed { "PASS" } else { "FAIL" };
            writeln!(f, "{verdict} {}: {}", check.name, check.summary)?;
        }
        Ok(())
    }
}

impl CheckReport {
    /// The result of the check called `name`.
    pub fn result(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Runs every check over `state`.
pub fn check(state: &EndState, limits: &Limits) -> CheckReport {
    let views = Views::new(state);
    let (ratio, ratio_figures) = write_ratio(state, limits);
    let (settled, last_write_after_edits_ms) = settle(state, limits);
    let (lost, oracle) = lost_edits(state, &views);
    let checks = vec![
        equal(state, &views),
        linked(state),
        duplicates(state),
        lost,
        ratio,
        settled,
    ];
    CheckReport {
        passed: checks.iter().all(|c| c.passed),
        checks,
        figures: Figures {
            last_write_after_edits_ms,
            oracle,
            ..ratio_figures
        },
    }
}

/// How two values of a field compare. An empty value is no value.
#[derive(Debug, Clone, Copy)]
enum Compare {
    Exact,
    /// E-mail addresses and statuses.
    IgnoreCase,
    /// Decimal amounts: `110` equals `110.00`.
    Money,
}

fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

fn same(how: Compare, a: Option<&str>, b: Option<&str>) -> bool {
    match (present(a), present(b)) {
        (None, None) => true,
        (Some(a), Some(b)) => match how {
            Compare::Exact => a == b,
            Compare::IgnoreCase => a.eq_ignore_ascii_case(b),
            Compare::Money => match (a.trim().parse::<Decimal>(), b.trim().parse::<Decimal>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => a == b,
            },
        },
        _ => false,
    }
}

fn customer_field<'a>(view: &'a CustomerView, field: &str) -> Option<&'a str> {
    match field {
        "name" => view.name.as_deref(),
        "email" => view.email.as_deref(),
        "phone" => view.phone.as_deref(),
        _ => None,
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Crm => "crm",
        Side::Finance => "finance",
    }
}

fn record(side: Side, id: &str) -> String {
    format!("{}:{id}", side_name(side))
}

fn shown(value: Option<&str>) -> String {
    present(value).map_or_else(|| "nothing".to_string(), |v| format!("{v:?}"))
}

/// Failures found so far: all counted, the first few kept.
#[derive(Default)]
struct Tally {
    count: u64,
    examples: Vec<Finding>,
}

impl Tally {
    fn push(&mut self, finding: Finding) {
        self.count += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(finding);
        }
    }

    /// The check's result: `passed` describes what was checked.
    fn result(self, name: &str, checked: u64, passed: String) -> CheckResult {
        let summary = match self.examples.first() {
            None => passed,
            Some(first) if self.count > 1 => format!(
                "{} — {} (and {} more)",
                self.count,
                first.detail,
                self.count - 1
            ),
            Some(first) => format!("{} — {}", self.count, first.detail),
        };
        CheckResult {
            name: name.to_string(),
            passed: self.count == 0,
            count: if self.count == 0 { checked } else { self.count },
            summary,
            examples: self.examples,
        }
    }
}

/// The end state's records by id, and the customer links both ways.
struct Views<'a> {
    crm_customers: HashMap<&'a str, &'a CustomerView>,
    finance_customers: HashMap<&'a str, &'a CustomerView>,
    crm_invoices: HashMap<&'a str, &'a InvoiceView>,
    finance_invoices: HashMap<&'a str, &'a InvoiceView>,
    /// CRM customer id to finance customer id.
    customer_links: HashMap<&'a str, &'a str>,
}

impl<'a> Views<'a> {
    fn new(state: &'a EndState) -> Self {
        Self {
            crm_customers: state
                .crm_customers
                .iter()
                .map(|c| (c.id.as_str(), c))
                .collect(),
            finance_customers: state
                .finance_customers
                .iter()
                .map(|c| (c.id.as_str(), c))
                .collect(),
            crm_invoices: state
                .crm_invoices
                .iter()
                .map(|i| (i.id.as_str(), i))
                .collect(),
            finance_invoices: state
                .finance_invoices
                .iter()
                .map(|i| (i.id.as_str(), i))
                .collect(),
            customer_links: state
                .links
                .iter()
                .filter(|l| l.entity == EntityType::Customer)
                .map(|l| (l.crm_id.as_str(), l.finance_id.as_str()))
                .collect(),
        }
    }
}

/// A synced field whose values differ: its name, the CRM's value, finance's value.
type Difference = (&'static str, Option<String>, Option<String>);

fn owned(value: Option<&str>) -> Option<String> {
    value.map(str::to_string)
}

/// Check 1: each linked pair holds the same value in every synced field; an invoice
/// names the same customer through the customer links. A pair archived on both sides
/// is equal; archived on one side only is not (deletes are synced by archiving).
fn equal(state: &EndState, views: &Views<'_>) -> CheckResult {
    let mut tally = Tally::default();
    for link in &state.links {
        let (crm, finance) = (link.crm_id.as_str(), link.finance_id.as_str());
        let differences = match link.entity {
            EntityType::Customer => {
                match (
                    views.crm_customers.get(crm),
                    views.finance_customers.get(finance),
                ) {
                    (Some(c), Some(f)) => customer_differences(c, f),
                    (c, f) => vec![missing(c.is_some(), f.is_some())],
                }
            }
            EntityType::Invoice => {
                match (
                    views.crm_invoices.get(crm),
                    views.finance_invoices.get(finance),
                ) {
                    (Some(c), Some(f)) => invoice_differences(c, f, views),
                    (c, f) => vec![missing(c.is_some(), f.is_some())],
                }
            }
        };
        for (field, c, f) in differences {
            let detail = format!(
                "{} crm {crm} / finance {finance}: {field} is {} in the crm and {} in finance",
                link.entity,
                shown(c.as_deref()),
                shown(f.as_deref())
            );
            tally.push(
                Finding::new(
                    vec![record(Side::Crm, crm), record(Side::Finance, finance)],
                    detail,
                )
                .field(field, c.as_deref(), f.as_deref()),
            );
        }
    }
    let pairs = state.links.len() as u64;
    tally.result(
        "equal",
        pairs,
        format!("{pairs} linked pairs equal on every synced field"),
    )
}

/// A linked record that is not there.
fn missing(crm: bool, finance: bool) -> Difference {
    let found = |there: bool| Some(if there { "there" } else { "missing" }.to_string());
    ("record", found(crm), found(finance))
}

/// A pair archived on one side only.
fn archived_difference(crm: bool, finance: bool) -> Option<Difference> {
    let label = |archived: bool| Some(if archived { "archived" } else { "live" }.to_string());
    (crm != finance).then(|| ("archived", label(crm), label(finance)))
}

fn customer_differences(crm: &CustomerView, finance: &CustomerView) -> Vec<Difference> {
    if crm.archived || finance.archived {
        return archived_difference(crm.archived, finance.archived)
            .into_iter()
            .collect();
    }
    CUSTOMER_FIELDS
        .iter()
        .map(|(field, how)| {
            (
                *field,
                *how,
                customer_field(crm, field),
                customer_field(finance, field),
            )
        })
        .filter(|(_, how, c, f)| !same(*how, *c, *f))
        .map(|(field, _, c, f)| (field, owned(c), owned(f)))
        .collect()
}

fn invoice_differences(
    crm: &InvoiceView,
    finance: &InvoiceView,
    views: &Views<'_>,
) -> Vec<Difference> {
    if crm.archived || finance.archived {
        return archived_difference(crm.archived, finance.archived)
            .into_iter()
            .collect();
    }
    // A CRM invoice without a number lets finance number it; one with a number must
    // carry it over.
    let number = if present(crm.number.as_deref()).is_some() {
        &finance.number
    } else {
        &crm.number
    };
    let fields = [
        ("number", Compare::Exact, &crm.number, number),
        ("status", Compare::IgnoreCase, &crm.status, &finance.status),
        ("total", Compare::Money, &crm.total, &finance.total),
        (
            "amount_paid",
            Compare::Money,
            &crm.amount_paid,
            &finance.amount_paid,
        ),
    ];
    let mut differences: Vec<Difference> = fields
        .into_iter()
        .filter(|(_, how, c, f)| !same(*how, c.as_deref(), f.as_deref()))
        .map(|(field, _, c, f)| (field, c.clone(), f.clone()))
        .collect();
    // Finance cannot clear an invoice's contact, so a CRM invoice without a customer
    // says nothing about finance's. Expected is the finance customer the CRM's links to.
    if let Some(customer) = present(crm.customer.as_deref()) {
        let expected = views.customer_links.get(customer).copied();
        let found = present(finance.customer.as_deref());
        if expected.is_none() || expected != found {
            let expected =
                expected.map_or_else(|| format!("unlinked crm {customer}"), str::to_string);
            differences.push(("customer", Some(expected), owned(found)));
        }
    }
    differences
}

/// Check 1, continued: every live record on either side is linked.
fn linked(state: &EndState) -> CheckResult {
    let mut tally = Tally::default();
    let linked_ids = |entity: EntityType, side: Side| -> HashSet<&str> {
        state
            .links
            .iter()
            .filter(|l| l.entity == entity)
            .map(|l| match side {
                Side::Crm => l.crm_id.as_str(),
                Side::Finance => l.finance_id.as_str(),
            })
            .collect()
    };
    let mut live = 0u64;
    let customers = [
        (Side::Crm, &state.crm_customers),
        (Side::Finance, &state.finance_customers),
    ];
    for (side, list) in customers {
        let ids = linked_ids(EntityType::Customer, side);
        for c in list.iter().filter(|c| !c.archived) {
            live += 1;
            if !ids.contains(c.id.as_str()) {
                tally.push(Finding::new(
                    vec![record(side, &c.id)],
                    format!(
                        "{} customer {} ({}) is not linked",
                        side_name(side),
                        c.id,
                        shown(c.email.as_deref())
                    ),
                ));
            }
        }
    }
    let invoices = [
        (Side::Crm, &state.crm_invoices),
        (Side::Finance, &state.finance_invoices),
    ];
    for (side, list) in invoices {
        let ids = linked_ids(EntityType::Invoice, side);
        for i in list.iter().filter(|i| !i.archived) {
            live += 1;
            if !ids.contains(i.id.as_str()) {
                tally.push(Finding::new(
                    vec![record(side, &i.id)],
                    format!(
                        "{} invoice {} ({}) is not linked",
                        side_name(side),
                        i.id,
                        shown(i.number.as_deref())
                    ),
                ));
            }
        }
    }
    tally.result(
        "linked",
        live,
        format!("all {live} live records on either side are linked"),
    )
}

/// Check 2: no two live customers on one side share an e-mail (ignoring case), no two
/// live invoices on one side share a number, no two live records on one side carry the
/// same origin stamp, and no record is in two links.
fn duplicates(state: &EndState) -> CheckResult {
    let mut tally = Tally::default();
    let mut report = |side: Side, entity: &str, what: String, ids: Vec<&str>| {
        let listed = match ids.as_slice() {
            [a, b] => format!("{a} and {b}"),
            _ => ids.join(", "),
        };
        tally.push(Finding::new(
            ids.iter().map(|id| record(side, id)).collect(),
            format!("{} {entity}s {listed} {what}", side_name(side)),
        ));
    };
    let customers = [
        (Side::Crm, &state.crm_customers),
        (Side::Finance, &state.finance_customers),
    ];
    let mut live = 0u64;
    for (side, list) in customers {
        let list: Vec<&CustomerView> = list.iter().filter(|c| !c.archived).collect();
        live += list.len() as u64;
        let by_email = groups(list.iter().map(|c| {
            let email = present(c.email.as_deref()).map(str::to_ascii_lowercase);
            (email, c.id.as_str())
        }));
        for (email, ids) in by_email {
            report(side, "customer", format!("share {email}"), ids);
        }
        let by_stamp = groups(list.iter().map(|c| {
            (
                present(c.stamp.as_deref()).map(str::to_string),
                c.id.as_str(),
            )
        }));
        for (stamp, ids) in by_stamp {
            report(side, "customer", format!("are both stamped {stamp}"), ids);
        }
    }
    let invoices = [
        (Side::Crm, &state.crm_invoices),
        (Side::Finance, &state.finance_invoices),
    ];
    for (side, list) in invoices {
        let list: Vec<&InvoiceView> = list.iter().filter(|i| !i.archived).collect();
        live += list.len() as u64;
        let by_number = groups(list.iter().map(|i| {
            let number = present(i.number.as_deref()).map(str::to_ascii_lowercase);
            (number, i.id.as_str())
        }));
        for (number, ids) in by_number {
            report(side, "invoice", format!("share number {number}"), ids);
        }
        let by_stamp = groups(list.iter().map(|i| {
            (
                present(i.stamp.as_deref()).map(str::to_string),
                i.id.as_str(),
            )
        }));
        for (stamp, ids) in by_stamp {
            report(side, "invoice", format!("are both stamped {stamp}"), ids);
        }
    }
    for entity in EntityType::ALL {
        for side in [Side::Crm, Side::Finance] {
            let links = state.links.iter().filter(|l| l.entity == entity);
            let by_id = groups(links.map(|l| match side {
                Side::Crm => (Some(l.crm_id.clone()), l.finance_id.as_str()),
                Side::Finance => (Some(l.finance_id.clone()), l.crm_id.as_str()),
            }));
            let other = match side {
                Side::Crm => Side::Finance,
                Side::Finance => Side::Crm,
            };
            for (id, partners) in by_id {
                tally.push(Finding::new(
                    std::iter::once(record(side, &id))
                        .chain(partners.iter().map(|p| record(other, p)))
                        .collect(),
                    format!(
                        "{} {entity} {id} is linked {} times ({} {})",
                        side_name(side),
                        partners.len(),
                        side_name(other),
                        partners.join(", ")
                    ),
                ));
            }
        }
    }
    let links = state.links.len();
    tally.result(
        "duplicates",
        live,
        format!("no duplicates among {live} live records and {links} links"),
    )
}

/// The keys that more than one id share, with those ids in order; `None` keys are
/// ignored.
fn groups<'a>(
    items: impl Iterator<Item = (Option<String>, &'a str)>,
) -> BTreeMap<String, Vec<&'a str>> {
    let mut by_key: BTreeMap<String, Vec<&'a str>> = BTreeMap::new();
    for (key, id) in items {
        if let Some(key) = key {
            by_key.entry(key).or_default().push(id);
        }
    }
    by_key.retain(|_, ids| ids.len() > 1);
    by_key
}

/// A person's last edit of one field on one side: the value, the record's version just
/// after it, and when it was made.
struct LastEdit<'a> {
    value: Option<&'a str>,
    version_ms: i64,
    at_ms: i64,
}

/// What the rule says a field must hold: the winning value and why; and where the rule
/// allows either of two (a record-level time that a later write moved past the other
/// side's edit), the other value.
struct Verdict<'a> {
    value: Option<&'a str>,
    why: String,
    allowed: Option<Option<&'a str>>,
}

/// One customer link's journal on each side, in `seq` order.
struct Histories<'a> {
    crm: &'a [&'a JournalEntry],
    finance: &'a [&'a JournalEntry],
}

/// Check 3, the value oracle: no lost edit. For each linked customer pair (both live)
/// and each field synced both ways, the value the rule says must win, given what people
/// did (the journal's entries by people; a person's create sets the fields it gives),
/// and under `manual` the decisions people made:
///
/// - `last_write_wins`: the newest edit of the field, by its change time: a tie goes to
///   finance (the source of truth). The CRM's change time is the field's own (HubSpot's
///   property history) or, without it, its record's; finance's is its record's
///   (`UpdatedDateUTC`), which a later write to that record moves on. Where such a write
///   came after the other side's newer edit and before Tandem judged the clash, the
///   rule allows the older value too, and the oracle counts it apart;
/// - `manual`: a clash still held for a person must show both sides' current values;
///   otherwise the newest of the people's edits and decisions of the field wins;
/// - nobody set it: the value it was created with (the first create in the journal of
///   either record); a pair with no create in the journal is not judged.
///
/// An edit is lost when the winning value is on neither side at the end; a pair whose
/// sides differ is check 1's failure.
fn lost_edits(state: &EndState, views: &Views<'_>) -> (CheckResult, OracleFigures) {
    let mut by_record: HashMap<(Side, &str), Vec<&JournalEntry>> = HashMap::new();
    for entry in state.journal.iter().filter(|e| e.entity == "customer") {
        by_record
            .entry((entry.side, entry.id.as_str()))
            .or_default()
            .push(entry);
    }
    for entries in by_record.values_mut() {
        entries.sort_by_key(|e| e.seq);
    }
    let mut decisions: HashMap<(&str, &str, &str), &PersonDecision> = HashMap::new();
    for decision in &state.decisions {
        let key = (
            decision.crm_id.as_str(),
            decision.finance_id.as_str(),
            decision.field.as_str(),
        );
        if decisions
            .get(&key)
            .is_none_or(|d| d.at_ms <= decision.at_ms)
        {
            decisions.insert(key, decision);
        }
    }
    let held: HashMap<(&str, &str, &str), &HeldConflict> = state
        .held
        .iter()
        .map(|h| {
            (
                (h.crm_id.as_str(), h.finance_id.as_str(), h.field.as_str()),
                h,
            )
        })
        .collect();
    let mut tally = Tally::default();
    let mut figures = OracleFigures {
        decisions: state.decisions.len() as u64,
        ..OracleFigures::default()
    };
    for link in state
        .links
        .iter()
        .filter(|l| l.entity == EntityType::Customer)
    {
        let crm = views.crm_customers.get(link.crm_id.as_str());
        let finance = views.finance_customers.get(link.finance_id.as_str());
        let (Some(crm), Some(finance)) = (crm, finance) else {
            continue;
        };
        if crm.archived || finance.archived {
            continue;
        }
        let histories = Histories {
            crm: by_record
                .get(&(Side::Crm, link.crm_id.as_str()))
                .map_or(&[][..], Vec::as_slice),
            finance: by_record
                .get(&(Side::Finance, link.finance_id.as_str()))
                .map_or(&[][..], Vec::as_slice),
        };
        let records = vec![
            record(Side::Crm, &link.crm_id),
            record(Side::Finance, &link.finance_id),
        ];
        for (field, how) in CUSTOMER_FIELDS {
            let (c, f) = (customer_field(crm, field), customer_field(finance, field));
            let key = (link.crm_id.as_str(), link.finance_id.as_str(), field);
            figures.fields += 1;
            if let Some(held) = held.get(&key) {
                figures.held += 1;
                if !same(how, held.crm_value.as_deref(), c)
                    || !same(how, held.finance_value.as_deref(), f)
                {
                    tally.push(
                        Finding::new(
                            records.clone(),
                            format!(
                                "customer crm {} / finance {}: {field} is held for a person as {} / {} but the sides hold {} / {}",
                                link.crm_id,
                                link.finance_id,
                                shown(held.crm_value.as_deref()),
                                shown(held.finance_value.as_deref()),
                                shown(c),
                                shown(f)
                            ),
                        )
                        .field(field, held.crm_value.as_deref(), c),
                    );
                }
                continue;
            }
            let crm_edit = last_edit(histories.crm, field);
            let finance_edit = last_edit(histories.finance, field);
            if crm_edit.is_some() && finance_edit.is_some() {
                figures.edited_on_both_sides += 1;
            }
            let verdict = match state.policy {
                ConflictPolicy::Manual => {
                    newest_act(crm_edit, finance_edit, decisions.get(&key).copied())
                }
                _ => newest_edit(
                    crm_edit,
                    finance_edit,
                    &histories,
                    field,
                    state.crm_field_times,
                ),
            };
            let verdict = match verdict {
                Some(verdict) => verdict,
                None => match created(&histories) {
                    Some(create) => Verdict {
                        value: create.changed.get(field).and_then(|v| v.as_deref()),
                        why: "the value it was created with, as nobody edited it".to_string(),
                        allowed: None,
                    },
                    None => {
                        figures.fields -= 1;
                        continue;
                    }
                },
            };
            let on = |value: Option<&str>| (same(how, value, c), same(how, value, f));
            match on(verdict.value) {
                (true, true) => figures.winning_value_on_both += 1,
                (true, false) | (false, true) => figures.winning_value_on_one += 1,
                (false, false) => {
                    if verdict.allowed.is_some_and(|v| on(v) != (false, false)) {
                        figures.allowed_by_record_time += 1;
                        continue;
                    }
                    figures.lost += 1;
                    tally.push(
                        Finding::new(
                            records.clone(),
                            format!(
                                "customer crm {} / finance {}: {field} ended {} (crm) / {} (finance) but {} set {}",
                                link.crm_id,
                                link.finance_id,
                                shown(c),
                                shown(f),
                                verdict.why,
                                shown(verdict.value)
                            ),
                        )
                        .field(field, verdict.value, c),
                    );
                }
            }
        }
    }
    let summary = format!(
        "{} fields of linked customers hold the value the rule picks ({} on both sides, {} on one, {} allowed by a record-level time, {} held for a person; {} edited on both sides, {} decisions)",
        figures.fields,
        figures.winning_value_on_both,
        figures.winning_value_on_one,
        figures.allowed_by_record_time,
        figures.held,
        figures.edited_on_both_sides,
        figures.decisions
    );
    (tally.result("lost_edits", figures.fields, summary), figures)
}

/// The first create in the journal of either record.
fn created<'a>(histories: &Histories<'a>) -> Option<&'a JournalEntry> {
    histories
        .crm
        .iter()
        .chain(histories.finance)
        .filter(|e| e.action == sim::Action::Create)
        .min_by_key(|e| (e.at_ms, e.seq))
        .copied()
}

/// `last_write_wins`: the newer of the two sides' last edits, a tie to finance. The
/// older value is allowed too where the newer side's edit was judged against a
/// record-level time that a later write had moved past it.
fn newest_edit<'a>(
    crm: Option<LastEdit<'a>>,
    finance: Option<LastEdit<'a>>,
    histories: &Histories<'a>,
    field: &str,
    crm_field_times: bool,
) -> Option<Verdict<'a>> {
    let (c, f) = match (crm, finance) {
        (None, None) => return None,
        (Some(c), None) => {
            return Some(Verdict {
                value: c.value,
                why: "the crm edit".to_string(),
                allowed: None,
            })
        }
        (None, Some(f)) => {
            return Some(Verdict {
                value: f.value,
                why: "the finance edit".to_string(),
                allowed: None,
            })
        }
        (Some(c), Some(f)) => (c, f),
    };
    let finance_newer = f.version_ms >= c.version_ms;
    let (newer, older, newer_history, older_history, older_has_field_times) = if finance_newer {
        (&f, &c, histories.finance, histories.crm, crm_field_times)
    } else {
        (&c, &f, histories.crm, histories.finance, false)
    };
    let allowed = (!older_has_field_times
        && written_again(newer, older, newer_history, older_history, field))
    .then_some(older.value);
    let why = if finance_newer {
        format!(
            "the finance edit (at {} ms, crm's at {} ms; a tie goes to finance)",
            f.version_ms, c.version_ms
        )
    } else {
        format!(
            "the crm edit (at {} ms, after finance's at {} ms)",
            c.version_ms, f.version_ms
        )
    };
    Some(Verdict {
        value: newer.value,
        why,
        allowed,
    })
}

/// Whether the older side's record was written (by anyone) at or after the newer side's
/// edit and before Tandem carried the older value over to the newer side: then its
/// record-level time could pass the newer edit's when the clash was judged.
fn written_again(
    newer: &LastEdit<'_>,
    older: &LastEdit<'_>,
    newer_history: &[&JournalEntry],
    older_history: &[&JournalEntry],
    field: &str,
) -> bool {
    let carried_over = newer_history.iter().find(|e| {
        e.actor == Actor::Api
            && e.at_ms >= newer.at_ms
            && e.changed.get(field).map(Option::as_deref) == Some(older.value)
    });
    let Some(carried_over) = carried_over else {
        return false;
    };
    older_history
        .iter()
        .any(|e| e.version_ms >= newer.version_ms && e.at_ms <= carried_over.at_ms)
}

/// `manual`: the newest of the two sides' last edits and the last decision (a tie
/// between the sides to finance).
fn newest_act<'a>(
    crm: Option<LastEdit<'a>>,
    finance: Option<LastEdit<'a>>,
    decision: Option<&'a PersonDecision>,
) -> Option<Verdict<'a>> {
    let mut acts: Vec<(i64, u8, Option<&str>, String)> = Vec::new();
    if let Some(c) = crm {
        acts.push((c.version_ms, 0, c.value, "the crm edit".to_string()));
    }
    if let Some(f) = finance {
        acts.push((f.version_ms, 1, f.value, "the finance edit".to_string()));
    }
    if let Some(d) = decision {
        acts.push((
            d.at_ms,
            2,
            d.value.as_deref(),
            "a person's decision".to_string(),
        ));
    }
    let (_, _, value, why) = acts.into_iter().max_by_key(|(at, rank, ..)| (*at, *rank))?;
    Some(Verdict {
        value,
        why,
        allowed: None,
    })
}

/// The last edit people made to `field`, from one record's entries in `seq` order.
fn last_edit<'a>(entries: &[&'a JournalEntry], field: &str) -> Option<LastEdit<'a>> {
    entries
        .iter()
        .rev()
        .filter(|e| e.actor == Actor::Person)
        .find_map(|e| {
            e.changed.get(field).map(|value| LastEdit {
                value: value.as_deref(),
                version_ms: e.version_ms,
                at_ms: e.at_ms,
            })
        })
}

/// Check 4: Tandem's writes (every API entry: creates, updates, archives) per change
/// people made (every people entry, a create included, and every decision).
fn write_ratio(state: &EndState, limits: &Limits) -> (CheckResult, Figures) {
    let writes = state
        .journal
        .iter()
        .filter(|e| e.actor == Actor::Api)
        .count() as u64;
    // A person's decision on a held conflict is a change too: it may write both sides.
    let effective_changes = state
        .journal
        .iter()
        .filter(|e| e.actor == Actor::Person)
        .count() as u64
        + state.decisions.len() as u64;
    let write_ratio = (effective_changes > 0).then(|| writes as f64 / effective_changes as f64);
    let passed = match write_ratio {
        Some(ratio) => ratio <= limits.max_write_ratio,
        None => writes == 0,
    };
    // The most written records, to say where the extra writes went.
    let mut per_record: HashMap<(Side, &str, &str), u64> = HashMap::new();
    for e in state.journal.iter().filter(|e| e.actor == Actor::Api) {
        *per_record
            .entry((e.side, e.entity.as_str(), e.id.as_str()))
            .or_default() += 1;
    }
    let mut busiest: Vec<_> = per_record.into_iter().collect();
    busiest.sort_by_key(|((side, entity, id), count)| {
        (std::cmp::Reverse(*count), side_name(*side), *entity, *id)
    });
    let examples = busiest
        .into_iter()
        .take(MAX_EXAMPLES)
        .map(|((side, entity, id), count)| {
            Finding::new(
                vec![record(side, id)],
                format!("{} {entity} {id}: {count} writes", side_name(side)),
            )
        })
        .collect();
    let ratio_text = write_ratio.map_or_else(|| "no".to_string(), |r| format!("{r:.2}"));
    let numbers = format!(
        "{writes} writes for {effective_changes} effective changes (limit {:.2})",
        limits.max_write_ratio
    );
    let summary = if passed {
        format!("ratio {ratio_text}: {numbers}")
    } else {
        format!("{ratio_text} — {numbers}")
    };
    let result = CheckResult {
        name: "write_ratio".to_string(),
        passed,
        count: writes,
        summary,
        examples,
    };
    let figures = Figures {
        writes,
        effective_changes,
        write_ratio,
        last_write_after_edits_ms: None,
        oracle: OracleFigures::default(),
    };
    (result, figures)
}

/// Check 5: Tandem's last write came at most `settle_seconds` after the people stopped.
fn settle(state: &EndState, limits: &Limits) -> (CheckResult, Option<i64>) {
    let limit_ms = i64::try_from(limits.settle_seconds)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000);
    let writes: Vec<&JournalEntry> = state
        .journal
        .iter()
        .filter(|e| e.actor == Actor::Api)
        .collect();
    let lag = writes
        .iter()
        .map(|e| e.at_ms - state.edits_stopped_at_ms)
        .max();
    let mut late: Vec<&&JournalEntry> = writes
        .iter()
        .filter(|e| e.at_ms - state.edits_stopped_at_ms > limit_ms)
        .collect();
    late.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
    let mut tally = Tally::default();
    for e in late {
        tally.push(Finding::new(
            vec![record(e.side, &e.id)],
            format!(
                "{} {} {} written {:.1} s after the last edit (limit {} s)",
                side_name(e.side),
                e.entity,
                e.id,
                seconds(e.at_ms - state.edits_stopped_at_ms),
                limits.settle_seconds
            ),
        ));
    }
    let passed = match lag {
        Some(lag) if lag > 0 => format!(
            "the last write came {:.1} s after the last edit (limit {} s)",
            seconds(lag),
            limits.settle_seconds
        ),
        _ => "no write after the last edit".to_string(),
    };
    let result = tally.result("settle", writes.len() as u64, passed);
    (result, lag)
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}
