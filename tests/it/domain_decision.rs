//! Every rule of the sync decision, one test each. Pure: no database, broker or network.

use serde_json::{json, Value};
use tandem::domain::{
    apply, decide, decide_without_target, idempotency_key, settle, Checksum, ConflictPolicy,
    DecisionInput, DeletePolicy, EntityType, FieldMap, Held, LinkSnapshot, PairId, SkipReason,
    SourceRecord, SyncDecision, SyncPolicy, System, TargetFound, TargetRecord,
};

fn fields(pairs: &[(&str, Value)]) -> FieldMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn ada() -> FieldMap {
    fields(&[
        ("name", json!("Ada Lovelace")),
        ("email", json!("ada@example.com")),
        ("phone", json!("+44 1")),
    ])
}

fn source(system: System, id: &str, f: FieldMap, version: &str) -> SourceRecord {
    SourceRecord {
        system,
        id: id.into(),
        fields: Some(f),
        version: Some(version.into()),
        stamp: None,
        field_versions: Default::default(),
    }
}

fn target(id: &str, f: FieldMap, version: &str) -> TargetRecord {
    TargetRecord {
        id: id.into(),
        fields: f,
        version: Some(version.into()),
        field_versions: Default::default(),
    }
}

fn customers() -> SyncPolicy {
    SyncPolicy::defaults(EntityType::Customer)
}

/// The link as it stands after `crm` and `finance` were synced.
fn synced(
    policy: &SyncPolicy,
    crm: (&str, &FieldMap, &str),
    finance: (&str, &FieldMap, &str),
) -> LinkSnapshot {
    settle(
        policy,
        (crm.0, crm.1, Some(crm.2)),
        (finance.0, finance.1, Some(finance.2)),
        Held::default(),
    )
}

const T0: &str = "2026-11-23T10:00:00Z";
const T1: &str = "2026-11-23T10:00:01Z";
const T2: &str = "2026-11-23T10:00:02Z";

#[test]
fn first_sight_without_a_match_creates_with_the_origin_stamp() {
    let policy = customers();
    let src = source(System::Crm, "c1", ada(), T0);
    let decision = decide(DecisionInput {
        source: &src,
        link: None,
        target: None,
        policy: &policy,
    });
    assert_eq!(
        decision,
        SyncDecision::Create {
            fields: ada(),
            stamp: "c1".into()
        }
    );
}

#[test]
fn the_echo_of_tandems_own_write_is_skipped() {
    let policy = customers();
    let link = synced(&policy, ("c1", &ada(), T0), ("f1", &ada(), T1));
    // Finance announces the record Tandem just wrote: same content, same version.
    let echo = source(System::Finance, "f1", ada(), T1);
    let tgt = target("c1", ada(), T0);
    let decision = decide(DecisionInput {
        source: &echo,
        link: Some(&link),
        target: Some((&tgt, TargetFound::Linked)),
        policy: &policy,
    });
    assert_eq!(decision, SyncDecision::Skip(SkipReason::Echo));
    assert!(!decision.writes());
}

#[test]
fn echoes_stale_versions_and_deletes_are_decided_before_the_other_side_is_read() {
    let policy = customers();
    let link = synced(&policy, ("c1", &ada(), T1), ("f1", &ada(), T1));
    let early = |src: &SourceRecord| decide_without_target(src, Some(&link), &policy);
    assert_eq!(
        early(&source(System::Finance, "f1", ada(), T1)),
        Some(SyncDecision::Skip(SkipReason::Echo))
    );
    let mut edited = ada();
    edited.insert("phone".into(), json!("+44 2"));
    assert_eq!(
        early(&source(System::Crm, "c1", edited.clone(), T0)),
        Some(SyncDecision::Skip(SkipReason::Stale))
    );
    // New content needs the other side: to merge with, or to find a match in.
    assert_eq!(early(&source(System::Crm, "c1", edited.clone(), T2)), None);
    assert_eq!(
        decide_without_target(&source(System::Crm, "c1", ada(), T2), None, &policy),
        None,
        "first sight"
    );
    let deleted = SourceRecord {
        fields: None,
        ..source(System::Crm, "c1", ada(), T2)
    };
    assert_eq!(early(&deleted), Some(SyncDecision::Archive));
    // Whatever the early answer, the full decision agrees with it.
    for src in [source(System::Finance, "f1", ada(), T1), deleted] {
        let full = decide(DecisionInput {
            source: &src,
            link: Some(&link),
            target: None,
            policy: &policy,
        });
        assert_eq!(Some(full), early(&src));
    }
}

#[test]
fn a_stale_version_is_skipped_but_an_equal_version_with_new_content_is_not() {
    let policy = customers();
    let link = synced(&policy, ("c1", &ada(), T1), ("f1", &ada(), T1));
    let mut edited = ada();
    edited.insert("phone".into(), json!("+44 2"));
    let tgt = target("f1", ada(), T1);
    let stale = source(System::Crm, "c1", edited.clone(), T0);
    let decision = decide(DecisionInput {
        source: &stale,
        link: Some(&link),
        target: Some((&tgt, TargetFound::Linked)),
        policy: &policy,
    });
    assert_eq!(decision, SyncDecision::Skip(SkipReason::Stale));
    // An edit in the same tick as the last sync must not be lost to the version check.
    let same_tick = source(System::Crm, "c1", edited, T1);
    let decision = decide(DecisionInput {
        source: &same_tick,
        link: Some(&link),
        target: Some((&tgt, TargetFound::Linked)),
        policy: &policy,
    });
    assert!(
        matches!(decision, SyncDecision::Update { ref changes } if changes.to_target.get("phone") == Some(&json!("+44 2"))),
        "{decision:?}"
    );
}

#[test]
fn first_sight_matches_by_natural_key_or_stamp_instead_of_creating() {
    let policy = customers();
    let src = source(System::Crm, "c1", ada(), T0);
    for found in [TargetFound::ByNaturalKey, TargetFound::ByStamp] {
        let existing = target("f7", ada(), T0);
        let decision = decide(DecisionInput {
            source: &src,
            link: None,
            target: Some((&existing, found)),
            policy: &policy,
        });
        assert!(
            matches!(&decision, SyncDecision::Link { target_id, changes, .. } if target_id == "f7" && changes.is_empty()),
            "{decision:?}"
        );
    }
}

#[test]
fn the_echo_of_a_create_before_its_link_was_saved_links_instead_of_creating() {
    let policy = customers();
    // Tandem created f1 from c1; the link is saved knowing only c1 so far.
    let link = LinkSnapshot {
        crm_id: Some("c1".into()),
        ..Default::default()
    };
    let mut echo = source(System::Finance, "f1", ada(), T1);
    echo.stamp = Some("c1".into());
    let original = target("c1", ada(), T0);
    let decision = decide(DecisionInput {
        source: &echo,
        link: Some(&link),
        target: Some((&original, TargetFound::Linked)),
        policy: &policy,
    });
    assert!(
        matches!(&decision, SyncDecision::Link { target_id, changes, .. } if target_id == "c1" && changes.is_empty()),
        "{decision:?}"
    );
}

#[test]
fn a_crash_between_create_and_link_is_repaired_from_the_stamp() {
    let policy = customers();
    let link = LinkSnapshot {
        crm_id: Some("c1".into()),
        ..Default::default()
    };
    let src = source(System::Crm, "c1", ada(), T0);
    // The retry finds the record created before the crash by its stamp.
    let created = target("f1", ada(), T1);
    let decision = decide(DecisionInput {
        source: &src,
        link: Some(&link),
        target: Some((&created, TargetFound::ByStamp)),
        policy: &policy,
    });
    assert!(
        matches!(&decision, SyncDecision::Link { target_id, .. } if target_id == "f1"),
        "{decision:?}"
    );
    // And when nothing was created before the crash, it creates (with the same key).
    let decision = decide(DecisionInput {
        source: &src,
        link: Some(&link),
        target: None,
        policy: &policy,
    });
    assert!(
        matches!(decision, SyncDecision::Create { .. }),
        "{decision:?}"
    );
}

#[test]
fn edits_to_different_fields_on_both_sides_both_survive() {
    let policy = customers();
    let link = synced(&policy, ("c1", &ada(), T0), ("f1", &ada(), T0));
    let mut crm = ada();
    crm.insert("phone".into(), json!("+44 2"));
    let mut finance = ada();
    finance.insert("name".into(), json!("Ada King"));
    let src = source(System::Crm, "c1", crm, T1);
    let tgt = target("f1", finance, T2);
    let decision = decide(DecisionInput {
        source: &src,
        link: Some(&link),
        target: Some((&tgt, TargetFound::Linked)),
        policy: &policy,
    });
    let SyncDecision::Update { changes } = decision else {
        panic!("expected an update, got {decision:?}")
    };
    assert_eq!(changes.to_target, fields(&[("phone", json!("+44 2"))]));
    assert_eq!(changes.to_source, fields(&[("name", json!("Ada King"))]));
    assert!(changes.conflicts.is_empty());
}

fn both_edit_phone(policy: &SyncPolicy, crm_version: &str, finance_version: &str) -> SyncDecision {
    let link = synced(policy, ("c1", &ada(), T0), ("f1", &ada(), T0));
    let mut crm = ada();
    crm.insert("phone".into(), json!("crm phone"));
    let mut finance = ada();
    finance.insert("phone".into(), json!("finance phone"));
    let src = source(System::Crm, "c1", crm, crm_version);
    let tgt = target("f1", finance, finance_version);
    decide(DecisionInput {
        source: &src,
        link: Some(&link),
        target: Some((&tgt, TargetFound::Linked)),
        policy,
    })
}

#[test]
fn a_true_conflict_is_resolved_by_the_policy_and_recorded_with_both_values() {
    let mut policy = customers();
    let cases = [
        (ConflictPolicy::LastWriteWins, T2, T1, Some(System::Crm)),
        (ConflictPolicy::LastWriteWins, T1, T2, Some(System::Finance)),
        (ConflictPolicy::LastWriteWins, T1, T1, Some(System::Finance)), // tie: source of truth
        (ConflictPolicy::CrmWins, T1, T2, Some(System::Crm)),
        (ConflictPolicy::FinanceWins, T2, T1, Some(System::Finance)),
    ];
    for (conflicts, crm_version, finance_version, winner) in cases {
        policy.conflicts = conflicts;
        let decision = both_edit_phone(&policy, crm_version, finance_version);
        let SyncDecision::Update { changes } = &decision else {
            panic!("{conflicts:?}: {decision:?}")
        };
        assert_eq!(changes.conflicts.len(), 1);
        let conflict = &changes.conflicts[0];
        assert_eq!(
            (conflict.crm_value.clone(), conflict.finance_value.clone()),
            (Some(json!("crm phone")), Some(json!("finance phone")))
        );
        assert_eq!(conflict.base_value, Some(json!("+44 1")));
        assert_eq!(
            conflict.winner(),
            winner,
            "{conflicts:?} {crm_version} {finance_version}"
        );
        match winner {
            Some(System::Crm) => {
                assert_eq!(changes.to_target.get("phone"), Some(&json!("crm phone")))
            }
            _ => assert_eq!(
                changes.to_source.get("phone"),
                Some(&json!("finance phone"))
            ),
        }
    }
}

#[test]
fn a_manual_policy_parks_the_conflict_and_writes_nothing() {
    let mut policy = customers();
    policy.conflicts = ConflictPolicy::Manual;
    let decision = both_edit_phone(&policy, T1, T2);
    assert!(
        matches!(&decision, SyncDecision::Conflict { changes } if changes.conflicts.len() == 1 && changes.conflicts[0].is_held()),
        "{decision:?}"
    );
    assert!(!decision.writes());
}

fn invoice(status: &str, total: &str) -> FieldMap {
    fields(&[
        ("number", json!("INV-1")),
        (
            "line_items",
            json!([{"quantity": "1", "unit_amount": total}]),
        ),
        ("status", json!(status)),
        ("total", json!(total)),
    ])
}

#[test]
fn a_locked_invoice_is_blocked_while_status_and_payments_flow_back() {
    let policy = SyncPolicy::defaults(EntityType::Invoice);
    let link = synced(
        &policy,
        ("d1", &invoice("draft", "100"), T0),
        ("i1", &invoice("authorised", "100"), T0),
    );
    // Someone edits the line items in the CRM after the invoice was authorised.
    let edited = invoice("draft", "150");
    let src = source(System::Crm, "d1", edited, T1);
    let authorised = target("i1", invoice("authorised", "100"), T0);
    let decision = decide(DecisionInput {
        source: &src,
        link: Some(&link),
        target: Some((&authorised, TargetFound::Linked)),
        policy: &policy,
    });
    let SyncDecision::Block { reason, to_source } = &decision else {
        panic!("{decision:?}")
    };
    assert!(reason.contains("authorised"), "{reason}");
    assert_eq!(
        to_source.get("status"),
        Some(&json!("authorised")),
        "status still flows to the CRM"
    );

    // Paid in finance: the CRM side is told.
    let paid = source(System::Finance, "i1", invoice("paid", "100"), T2);
    let crm_side = target("d1", invoice("authorised", "100"), T1);
    let decision = decide(DecisionInput {
        source: &paid,
        link: Some(&link),
        target: Some((&crm_side, TargetFound::Linked)),
        policy: &policy,
    });
    let SyncDecision::Update { changes } = &decision else {
        panic!("{decision:?}")
    };
    assert_eq!(changes.to_target.get("status"), Some(&json!("paid")));
}

#[test]
fn deletes_follow_the_policy_and_never_hard_delete() {
    let mut policy = customers();
    let link = synced(&policy, ("c1", &ada(), T0), ("f1", &ada(), T0));
    let gone = SourceRecord {
        system: System::Crm,
        id: "c1".into(),
        fields: None,
        version: Some(T1.into()),
        stamp: None,
        field_versions: Default::default(),
    };
    for (deletes, expected) in [
        (DeletePolicy::Archive, SyncDecision::Archive),
        (DeletePolicy::Approve, SyncDecision::HoldDelete),
        (
            DeletePolicy::Ignore,
            SyncDecision::Skip(SkipReason::DeletesIgnored),
        ),
    ] {
        policy.deletes = deletes;
        assert_eq!(
            decide(DecisionInput {
                source: &gone,
                link: Some(&link),
                target: None,
                policy: &policy
            }),
            expected
        );
    }
    let archived = LinkSnapshot {
        archived: true,
        ..link
    };
    assert_eq!(
        decide(DecisionInput {
            source: &gone,
            link: Some(&archived),
            target: None,
            policy: &policy
        }),
        SyncDecision::Skip(SkipReason::AlreadyArchived)
    );
    assert_eq!(
        decide(DecisionInput {
            source: &gone,
            link: None,
            target: None,
            policy: &policy
        }),
        SyncDecision::Skip(SkipReason::NotLinked)
    );
}

#[test]
fn a_linked_record_missing_on_the_other_side_is_blocked_not_recreated() {
    let policy = customers();
    let link = synced(&policy, ("c1", &ada(), T0), ("f1", &ada(), T0));
    let mut edited = ada();
    edited.insert("phone".into(), json!("+44 9"));
    let src = source(System::Crm, "c1", edited, T1);
    let decision = decide(DecisionInput {
        source: &src,
        link: Some(&link),
        target: None,
        policy: &policy,
    });
    assert!(
        matches!(&decision, SyncDecision::Block { reason, .. } if reason.contains("f1")),
        "{decision:?}"
    );
}

#[test]
fn applying_an_update_and_deciding_again_writes_nothing() {
    let policy = customers();
    let link = synced(&policy, ("c1", &ada(), T0), ("f1", &ada(), T0));
    let mut crm = ada();
    crm.insert("phone".into(), json!("+44 2"));
    let src = source(System::Crm, "c1", crm.clone(), T1);
    let tgt = target("f1", ada(), T0);
    let SyncDecision::Update { changes } = decide(DecisionInput {
        source: &src,
        link: Some(&link),
        target: Some((&tgt, TargetFound::Linked)),
        policy: &policy,
    }) else {
        panic!()
    };
    let finance_after = apply(&ada(), &changes.to_target);
    let link = synced(&policy, ("c1", &crm, T1), ("f1", &finance_after, T2));
    for (side, id, record, version, other) in [
        (System::Crm, "c1", &crm, T1, ("f1", &finance_after, T2)),
        (System::Finance, "f1", &finance_after, T2, ("c1", &crm, T1)),
    ] {
        let again = source(side, id, record.clone(), version);
        let other = target(other.0, other.1.clone(), other.2);
        let decision = decide(DecisionInput {
            source: &again,
            link: Some(&link),
            target: Some((&other, TargetFound::Linked)),
            policy: &policy,
        });
        assert_eq!(decision, SyncDecision::Skip(SkipReason::Echo), "{side:?}");
    }
}

#[test]
fn idempotency_keys_are_stable_short_and_change_with_the_content() {
    let pair = PairId::new("acme");
    let a = Checksum::of(&ada(), ["name", "email"].into_iter());
    let b = Checksum::of(&fields(&[("name", json!("Other"))]), ["name"].into_iter());
    let key = idempotency_key(&pair, EntityType::Customer, System::Crm, "c1", &a);
    assert_eq!(
        key,
        idempotency_key(&pair, EntityType::Customer, System::Crm, "c1", &a)
    );
    assert!(key.len() <= 128);
    assert_ne!(
        key,
        idempotency_key(&pair, EntityType::Customer, System::Crm, "c1", &b)
    );
    assert_ne!(
        key,
        idempotency_key(&pair, EntityType::Customer, System::Finance, "c1", &a)
    );
}
