//! The convergence checker of `tandem torture` over end states built by hand: a small
//! trial that converged passes every check, and each planted failure (a duplicate, a
//! lost edit, an extra write, an unequal field, a late write, an unsynced record) fails
//! exactly the check meant to catch it.

use std::collections::BTreeMap;

use sim::{Action, Actor, CustomerView, InvoiceView, JournalEntry, Side};
use tandem::domain::ids::EntityType;
use tandem::domain::ConflictPolicy;
use tandem::torture::check::{
    check, CheckReport, EndState, HeldConflict, Limits, LinkPair, PersonDecision,
};

/// When the people stopped editing.
const STOPPED_MS: i64 = 10_000;

const CHECKS: [&str; 6] = [
    "equal",
    "linked",
    "duplicates",
    "lost_edits",
    "write_ratio",
    "settle",
];

/// A journal written in the order things happened; each record's version is the time
/// of its last edit, as in the simulators.
#[derive(Default)]
struct Story {
    journal: Vec<JournalEntry>,
    next_seq: [u64; 2],
}

impl Story {
    fn add(
        &mut self,
        at_ms: i64,
        side: Side,
        actor: Actor,
        action: Action,
        (entity, id): (&str, &str),
        changed: &[(&str, Option<&str>)],
    ) -> &mut Self {
        let slot = &mut self.next_seq[usize::from(side == Side::Finance)];
        self.journal.push(JournalEntry {
            seq: *slot,
            side,
            entity: entity.to_string(),
            id: id.to_string(),
            actor,
            action,
            changed: changed
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect::<BTreeMap<_, _>>(),
            version_ms: at_ms,
            at_ms,
            at: None,
        });
        *slot += 1;
        self
    }
}

fn customer(id: &str, name: &str, email: &str, phone: Option<&str>) -> CustomerView {
    CustomerView {
        id: id.to_string(),
        name: Some(name.to_string()),
        email: Some(email.to_string()),
        phone: phone.map(str::to_string),
        ..CustomerView::default()
    }
}

fn link(entity: EntityType, crm_id: &str, finance_id: &str) -> LinkPair {
    LinkPair {
        entity,
        crm_id: crm_id.to_string(),
        finance_id: finance_id.to_string(),
    }
}

/// Three customers (one made in the CRM and edited on both sides, with a tie on the
/// name that finance wins; one made in finance; one made on both sides by people and
/// linked by e-mail) and one invoice won in the CRM and paid in finance; every edit
/// carried across once.
fn converged() -> EndState {
    use Action::{Create, Update};
    use Actor::{Api, Person};
    use Side::{Crm, Finance};
    let mut story = Story::default();
    let ada = [
        ("name", Some("Ada Lovelace")),
        ("email", Some("ada@example.com")),
        ("phone", Some("+1")),
    ];
    let alan = [
        ("name", Some("Alan Turing")),
        ("email", Some("alan@example.com")),
        ("phone", Some("+44")),
    ];
    story
        .add(500, Crm, Person, Create, ("customer", "103"), &alan)
        .add(500, Finance, Person, Create, ("customer", "f-3"), &alan)
        .add(1_000, Crm, Person, Create, ("customer", "101"), &ada)
        .add(1_100, Finance, Api, Create, ("customer", "f-1"), &ada)
        .add(
            1_500,
            Finance,
            Person,
            Create,
            ("customer", "f-2"),
            &[
                ("name", Some("Grace Hopper")),
                ("email", Some("grace@example.com")),
            ],
        )
        .add(
            1_600,
            Crm,
            Api,
            Create,
            ("customer", "102"),
            &[
                ("name", Some("Grace Hopper")),
                ("email", Some("grace@example.com")),
                ("stamp", Some("f-2")),
            ],
        )
        .add(
            2_000,
            Crm,
            Person,
            Update,
            ("customer", "101"),
            &[("phone", Some("+2"))],
        )
        .add(
            2_100,
            Finance,
            Api,
            Update,
            ("customer", "f-1"),
            &[("phone", Some("+2"))],
        )
        .add(
            3_000,
            Finance,
            Person,
            Update,
            ("customer", "f-1"),
            &[("phone", Some("+3"))],
        )
        .add(
            3_100,
            Crm,
            Api,
            Update,
            ("customer", "101"),
            &[("phone", Some("+3"))],
        )
        // Both sides rename at once; the tie goes to finance.
        .add(
            4_000,
            Crm,
            Person,
            Update,
            ("customer", "101"),
            &[("name", Some("Ada King"))],
        )
        .add(
            4_000,
            Finance,
            Person,
            Update,
            ("customer", "f-1"),
            &[("name", Some("Ada Byron"))],
        )
        .add(
            4_100,
            Crm,
            Api,
            Update,
            ("customer", "101"),
            &[("name", Some("Ada Byron"))],
        )
        .add(
            5_000,
            Crm,
            Person,
            Create,
            ("invoice", "201"),
            &[("customer", Some("101")), ("total", Some("300"))],
        )
        .add(
            5_100,
            Finance,
            Api,
            Create,
            ("invoice", "i-1"),
            &[
                ("number", Some("INV-0001")),
                ("customer", Some("f-1")),
                ("status", Some("draft")),
                ("total", Some("300")),
                ("amount_paid", Some("0")),
                ("stamp", Some("201")),
            ],
        )
        .add(
            5_200,
            Crm,
            Api,
            Update,
            ("invoice", "201"),
            &[("number", Some("INV-0001")), ("status", Some("draft"))],
        )
        .add(
            6_000,
            Finance,
            Person,
            Update,
            ("invoice", "i-1"),
            &[("status", Some("paid")), ("amount_paid", Some("300"))],
        )
        .add(
            6_100,
            Crm,
            Api,
            Update,
            ("invoice", "201"),
            &[("status", Some("paid")), ("amount_paid", Some("300"))],
        );
    let invoice = |id: &str, customer: &str, total: &str| InvoiceView {
        id: id.to_string(),
        number: Some("INV-0001".to_string()),
        customer: Some(customer.to_string()),
        status: Some("paid".to_string()),
        total: Some(total.to_string()),
        amount_paid: Some("300".to_string()),
        ..InvoiceView::default()
    };
    EndState {
        crm_customers: vec![
            customer("101", "Ada Byron", "ada@example.com", Some("+3")),
            customer("102", "Grace Hopper", "grace@example.com", None),
            customer("103", "Alan Turing", "alan@example.com", Some("+44")),
        ],
        finance_customers: vec![
            customer("f-1", "Ada Byron", "ada@example.com", Some("+3")),
            customer("f-2", "Grace Hopper", "Grace@Example.com", None),
            customer("f-3", "Alan Turing", "alan@example.com", Some("+44")),
        ],
        // HubSpot keeps amounts as written; equal as amounts.
        crm_invoices: vec![invoice("201", "101", "300.00")],
        finance_invoices: vec![invoice("i-1", "f-1", "300")],
        journal: story.journal,
        links: vec![
            link(EntityType::Customer, "101", "f-1"),
            link(EntityType::Customer, "102", "f-2"),
            link(EntityType::Customer, "103", "f-3"),
            link(EntityType::Invoice, "201", "i-1"),
        ],
        edits_stopped_at_ms: STOPPED_MS,
        policy: ConflictPolicy::LastWriteWins,
        held: vec![],
        decisions: vec![],
        crm_field_times: true,
    }
}

fn run(state: &EndState) -> CheckReport {
    check(state, &Limits::default())
}

/// Every check but `failing` passed, and `failing` failed.
fn fails_only(report: &CheckReport, failing: &str) {
    for name in CHECKS {
        let result = report.result(name).expect("every check reports");
        assert_eq!(result.passed, name != failing, "{name}:\n{report}");
    }
    assert!(!report.passed);
}

fn crm_customer<'a>(state: &'a mut EndState, id: &str) -> &'a mut CustomerView {
    state
        .crm_customers
        .iter_mut()
        .find(|c| c.id == id)
        .expect("crm customer")
}

fn finance_customer<'a>(state: &'a mut EndState, id: &str) -> &'a mut CustomerView {
    state
        .finance_customers
        .iter_mut()
        .find(|c| c.id == id)
        .expect("finance customer")
}

#[test]
fn a_converged_trial_passes_every_check() {
    let report = run(&converged());
    assert!(report.passed, "{report}");
    assert_eq!(
        report
            .checks
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        CHECKS
    );
    let text = report.to_string();
    assert_eq!(text.lines().count(), CHECKS.len());
    assert!(
        text.contains("PASS equal: 4 linked pairs equal on every synced field"),
        "{text}"
    );
    // Three fields of each of three customers judged.
    assert_eq!(report.result("lost_edits").map(|c| c.count), Some(9));
    assert_eq!(report.figures.writes, 8);
    assert_eq!(report.figures.effective_changes, 10);
    assert_eq!(report.figures.write_ratio, Some(0.8));
    assert_eq!(
        report.figures.last_write_after_edits_ms,
        Some(6_100 - STOPPED_MS)
    );
    let json = serde_json::to_value(&report).expect("serializes");
    assert_eq!(json["passed"], true);
    assert_eq!(json["checks"][0]["name"], "equal");
}

#[test]
fn a_planted_duplicate_fails_duplicates_only() {
    let mut state = converged();
    // A second CRM customer for Alan, linked to the same finance record.
    state.crm_customers.push(customer(
        "104",
        "Alan Turing",
        "ALAN@example.com",
        Some("+44"),
    ));
    state.links.push(link(EntityType::Customer, "104", "f-3"));
    let report = run(&state);
    fails_only(&report, "duplicates");
    let duplicates = report.result("duplicates").expect("duplicates");
    assert_eq!(duplicates.count, 2);
    let details: Vec<&str> = duplicates
        .examples
        .iter()
        .map(|f| f.detail.as_str())
        .collect();
    assert!(
        details.contains(&"crm customers 103 and 104 share alan@example.com"),
        "{details:?}"
    );
    assert!(
        details.contains(&"finance customer f-3 is linked 2 times (crm 103, 104)"),
        "{details:?}"
    );
    assert!(report
        .to_string()
        .contains("FAIL duplicates: 2 — crm customers 103 and 104 share alan@example.com"));
}

#[test]
fn a_planted_lost_edit_fails_lost_edits_only() {
    let mut state = converged();
    // Finance's later phone edit (+3) was overwritten on both sides by the CRM's older one.
    crm_customer(&mut state, "101").phone = Some("+2".into());
    finance_customer(&mut state, "f-1").phone = Some("+2".into());
    let report = run(&state);
    fails_only(&report, "lost_edits");
    let lost = report.result("lost_edits").expect("lost_edits");
    assert_eq!(lost.count, 1);
    let finding = &lost.examples[0];
    assert_eq!(finding.field.as_deref(), Some("phone"));
    assert_eq!(finding.expected.as_deref(), Some("+3"));
    assert_eq!(finding.found.as_deref(), Some("+2"));
    assert_eq!(finding.records, vec!["crm:101", "finance:f-1"]);
}

#[test]
fn the_conflict_tie_goes_to_finance() {
    let mut state = converged();
    // Both renamed at version 4000: finance's "Ada Byron" must win, not the CRM's.
    crm_customer(&mut state, "101").name = Some("Ada King".into());
    finance_customer(&mut state, "f-1").name = Some("Ada King".into());
    let report = run(&state);
    fails_only(&report, "lost_edits");
    let finding = &report.result("lost_edits").expect("lost_edits").examples[0];
    assert_eq!(finding.expected.as_deref(), Some("Ada Byron"));
}

#[test]
fn a_value_nobody_edited_must_stay_as_created() {
    let mut state = converged();
    // Grace was created without a phone and nobody gave her one.
    crm_customer(&mut state, "102").phone = Some("+9".into());
    finance_customer(&mut state, "f-2").phone = Some("+9".into());
    let report = run(&state);
    fails_only(&report, "lost_edits");
    let finding = &report.result("lost_edits").expect("lost_edits").examples[0];
    assert_eq!(finding.expected, None);
    assert_eq!(finding.found.as_deref(), Some("+9"));
}

#[test]
fn a_planted_extra_write_fails_the_write_ratio_only() {
    let mut state = converged();
    let mut story = Story {
        journal: std::mem::take(&mut state.journal),
        next_seq: [100, 100],
    };
    for at in [7_000, 7_100, 7_200] {
        story.add(
            at,
            Side::Finance,
            Actor::Api,
            Action::Update,
            ("customer", "f-2"),
            &[("phone", None)],
        );
    }
    state.journal = story.journal;
    let report = run(&state);
    fails_only(&report, "write_ratio");
    assert_eq!(report.figures.writes, 11);
    assert_eq!(report.figures.effective_changes, 10);
    assert_eq!(report.figures.write_ratio, Some(1.1));
    let ratio = report.result("write_ratio").expect("write_ratio");
    assert_eq!(ratio.examples[0].detail, "finance customer f-2: 3 writes");
    assert!(report
        .to_string()
        .contains("FAIL write_ratio: 1.10 — 11 writes for 10 effective changes (limit 1.05)"));
}

#[test]
fn a_planted_unequal_field_fails_equal_only() {
    let mut state = converged();
    // The CRM still shows Grace as first created: finance holds the value people set.
    crm_customer(&mut state, "102").name = Some("Grace M. Hopper".into());
    let report = run(&state);
    fails_only(&report, "equal");
    let equal = report.result("equal").expect("equal");
    assert_eq!(equal.count, 1);
    let finding = &equal.examples[0];
    assert_eq!(finding.field.as_deref(), Some("name"));
    assert_eq!(finding.expected.as_deref(), Some("Grace M. Hopper"));
    assert_eq!(finding.found.as_deref(), Some("Grace Hopper"));
}

#[test]
fn an_invoice_for_another_customer_fails_equal_only() {
    let mut state = converged();
    state.finance_invoices[0].customer = Some("f-2".into());
    let report = run(&state);
    fails_only(&report, "equal");
    let finding = &report.result("equal").expect("equal").examples[0];
    assert_eq!(finding.field.as_deref(), Some("customer"));
    assert_eq!(finding.expected.as_deref(), Some("f-1"));
    assert_eq!(finding.found.as_deref(), Some("f-2"));
}

#[test]
fn a_late_write_fails_settle_only() {
    let mut state = converged();
    let late_at = STOPPED_MS + 61_000;
    let mut story = Story {
        journal: std::mem::take(&mut state.journal),
        next_seq: [100, 100],
    };
    story.add(
        late_at,
        Side::Crm,
        Actor::Api,
        Action::Update,
        ("invoice", "201"),
        &[("amount_paid", Some("300"))],
    );
    state.journal = story.journal;
    let report = run(&state);
    fails_only(&report, "settle");
    assert_eq!(report.figures.last_write_after_edits_ms, Some(61_000));
    let settle = report.result("settle").expect("settle");
    assert_eq!(settle.count, 1);
    assert_eq!(settle.examples[0].records, vec!["crm:201"]);
    // One more second of grace and it passes.
    let lenient = check(
        &state,
        &Limits {
            settle_seconds: 61,
            ..Limits::default()
        },
    );
    assert!(lenient.passed, "{lenient}");
}

#[test]
fn a_record_left_unsynced_fails_linked_only() {
    let mut state = converged();
    state.finance_customers.push(customer(
        "f-4",
        "Edsger Dijkstra",
        "edsger@example.com",
        None,
    ));
    // An archived one needs no link.
    let mut gone = customer("105", "Gone", "gone@example.com", None);
    gone.archived = true;
    state.crm_customers.push(gone);
    let report = run(&state);
    fails_only(&report, "linked");
    let linked = report.result("linked").expect("linked");
    assert_eq!(linked.count, 1);
    assert_eq!(linked.examples[0].records, vec!["finance:f-4"]);
}

/// Ada's phone clashes twice: finance newer the first time, the CRM newer the second.
/// `resolved` is the phone Tandem left on both sides after the second clash.
fn double_clash(resolved: &'static str, finance_written_between: bool) -> EndState {
    use Action::Update;
    use Actor::{Api, Person};
    use Side::{Crm, Finance};
    let mut state = converged();
    let mut story = Story {
        journal: std::mem::take(&mut state.journal),
        next_seq: [100, 100],
    };
    let phone = |v: &'static str| [("phone", Some(v))];
    story
        .add(
            7_000,
            Crm,
            Person,
            Update,
            ("customer", "101"),
            &phone("333"),
        )
        .add(
            7_001,
            Finance,
            Person,
            Update,
            ("customer", "f-1"),
            &phone("444"),
        )
        .add(7_100, Crm, Api, Update, ("customer", "101"), &phone("444"))
        // Second clash: finance first, the CRM a moment later.
        .add(
            8_000,
            Finance,
            Person,
            Update,
            ("customer", "f-1"),
            &phone("555"),
        )
        .add(
            8_001,
            Crm,
            Person,
            Update,
            ("customer", "101"),
            &phone("666"),
        );
    if finance_written_between {
        // Someone renames the finance contact after the CRM's edit, before Tandem
        // judges the clash: finance's record-level time passes the CRM's edit.
        story.add(
            8_002,
            Finance,
            Person,
            Update,
            ("customer", "f-1"),
            &[("name", Some("Ada Byron"))],
        );
    }
    let carried = if resolved == "666" { Finance } else { Crm };
    let carried_id = if resolved == "666" { "f-1" } else { "101" };
    story.add(
        8_100,
        carried,
        Api,
        Update,
        ("customer", carried_id),
        &phone(resolved),
    );
    state.journal = story.journal;
    crm_customer(&mut state, "101").phone = Some(resolved.into());
    finance_customer(&mut state, "f-1").phone = Some(resolved.into());
    state
}

#[test]
fn the_oracle_sees_a_double_clash_that_kept_the_older_edit() {
    // Both sides agree on "555", but the CRM's "666" was newer: an edit lost by value.
    let report = run(&double_clash("555", false));
    fails_only(&report, "lost_edits");
    let lost = report.result("lost_edits").expect("lost_edits");
    assert_eq!(lost.count, 1);
    let finding = &lost.examples[0];
    assert_eq!(finding.field.as_deref(), Some("phone"));
    assert_eq!(finding.expected.as_deref(), Some("666"));
    assert_eq!(finding.found.as_deref(), Some("555"));
    assert_eq!(finding.records, vec!["crm:101", "finance:f-1"]);
    assert_eq!(report.figures.oracle.lost, 1);
    // Kept the newer: passes.
    let report = run(&double_clash("666", false));
    assert!(report.passed, "{report}");
    assert_eq!(report.figures.oracle.lost, 0);
}

#[test]
fn a_record_level_time_moved_past_the_newer_edit_allows_the_older_value() {
    // Finance only says when its record changed: the rename after the CRM's edit makes
    // finance's phone look newer when Tandem judges the clash. The rule allows it.
    let report = run(&double_clash("555", true));
    assert!(report.passed, "{report}");
    assert_eq!(report.figures.oracle.allowed_by_record_time, 1);
    // The CRM says when each field changed: the same story on the other side is lost.
    let mut state = double_clash("555", true);
    state.crm_field_times = false;
    assert!(
        run(&state).passed,
        "without field times on either side, allowed too"
    );
}

#[test]
fn under_manual_a_held_conflict_shows_both_values_and_a_decision_wins_when_newest() {
    let mut state = converged();
    state.policy = ConflictPolicy::Manual;
    // Held with the values the sides hold: fine.
    crm_customer(&mut state, "103").phone = Some("+45".into());
    finance_customer(&mut state, "f-3").phone = Some("+46".into());
    state.held = vec![HeldConflict {
        crm_id: "103".into(),
        finance_id: "f-3".into(),
        field: "phone".into(),
        crm_value: Some("+45".into()),
        finance_value: Some("+46".into()),
    }];
    // The person decided Ada's name last: their value must be on both sides.
    state.decisions = vec![PersonDecision {
        crm_id: "101".into(),
        finance_id: "f-1".into(),
        field: "name".into(),
        value: Some("Ada King".into()),
        at_ms: 9_000,
    }];
    crm_customer(&mut state, "101").name = Some("Ada King".into());
    finance_customer(&mut state, "f-1").name = Some("Ada King".into());
    let report = check(
        &state,
        &Limits {
            max_write_ratio: 2.0,
            ..Limits::default()
        },
    );
    let lost = report.result("lost_edits").expect("lost_edits");
    assert!(lost.passed, "{report}");
    assert_eq!(report.figures.oracle.held, 1);
    // A held conflict whose values are not what the sides hold is a failure.
    state.held[0].crm_value = Some("+44".into());
    let report = check(
        &state,
        &Limits {
            max_write_ratio: 2.0,
            ..Limits::default()
        },
    );
    assert!(!report.result("lost_edits").expect("lost_edits").passed);
    // And the decision's value lost to an older edit is a failure too.
    state.held.clear();
    crm_customer(&mut state, "101").name = Some("Ada Byron".into());
    finance_customer(&mut state, "f-1").name = Some("Ada Byron".into());
    let report = check(
        &state,
        &Limits {
            max_write_ratio: 2.0,
            ..Limits::default()
        },
    );
    let lost = report.result("lost_edits").expect("lost_edits");
    assert!(!lost.passed);
    assert!(lost
        .examples
        .iter()
        .any(|f| f.field.as_deref() == Some("name") && f.expected.as_deref() == Some("Ada King")));
}
