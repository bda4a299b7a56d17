//! Holding a delivery to the account its pair is connected to. A Xero app's webhook
//! key signs the deliveries of every organisation connected to the app, and a HubSpot
//! app's client secret those of every portal that installed it: a valid signature
//! says who sent a delivery, not whose records it names. Every change in a delivery
//! must name the pair's own organisation or portal.

use super::WebhookChange;

/// The account a pair's connection belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenant {
    /// A Xero organisation's tenant id: a UUID, compared without regard to case.
    XeroOrganisation(String),
    /// A HubSpot account's hub id, which deliveries carry as `portalId`.
    HubspotPortal(u64),
}

/// Changes of a delivery that name another account (or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignChanges {
    /// The first account named that is not the pair's, as the delivery named it;
    /// `None` when a change named no account at all.
    pub first_named: Option<String>,
    pub count: usize,
    pub of: usize,
}

impl Tenant {
    /// Whether `named` is this account.
    pub fn is(&self, named: &str) -> bool {
        match self {
            Self::XeroOrganisation(id) => id.trim().eq_ignore_ascii_case(named.trim()),
            // Parsers render the portal as a plain decimal, as the configured one is.
            Self::HubspotPortal(id) => named == id.to_string(),
        }
    }

    /// `Ok` when every change names this account; otherwise which did not.
    pub fn check(&self, changes: &[WebhookChange]) -> Result<(), ForeignChanges> {
        let mut foreign = changes
            .iter()
            .filter(|change| !change.tenant.as_deref().is_some_and(|named| self.is(named)));
        let Some(first) = foreign.next() else {
            return Ok(());
        };
        Err(ForeignChanges {
            first_named: first.tenant.clone(),
            count: 1 + foreign.count(),
            of: changes.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChangeKind;
    use proptest::prelude::*;

    fn change(tenant: Option<&str>) -> WebhookChange {
        WebhookChange {
            object_type: "CONTACT".into(),
            object_id: "1".into(),
            kind: ChangeKind::Upsert,
            occurred_at: 0,
            delivery_key: "k".into(),
            tenant: tenant.map(str::to_string),
            by_this_app: false,
        }
    }

    #[test]
    fn every_change_must_name_the_pairs_account() {
        let org = Tenant::XeroOrganisation("c2cc9b6e-9458-4c7d-93cc-f02b81b0594f".into());
        assert_eq!(org.check(&[]), Ok(()));
        assert_eq!(
            org.check(&[change(Some("C2CC9B6E-9458-4C7D-93CC-F02B81B0594F"))]),
            Ok(()),
            "a UUID in capitals is the same organisation"
        );
        assert_eq!(
            org.check(&[
                change(Some("c2cc9b6e-9458-4c7d-93cc-f02b81b0594f")),
                change(Some("00000000-0000-0000-0000-000000000000")),
                change(None),
            ]),
            Err(ForeignChanges {
                first_named: Some("00000000-0000-0000-0000-000000000000".into()),
                count: 2,
                of: 3
            })
        );
        let portal = Tenant::HubspotPortal(62515);
        assert_eq!(portal.check(&[change(Some("62515"))]), Ok(()));
        for other in ["62516", "062515", "-62515", "62515 ", "", "6251"] {
            assert!(portal.check(&[change(Some(other))]).is_err(), "{other:?}");
        }
    }

    proptest! {
        #[test]
        fn a_portal_is_only_itself(configured in any::<u64>(), named in any::<i64>()) {
            let verdict = Tenant::HubspotPortal(configured).check(&[change(Some(&named.to_string()))]);
            prop_assert_eq!(verdict.is_ok(), u64::try_from(named) == Ok(configured));
        }

        #[test]
        fn one_foreign_change_refuses_the_delivery(
            own in 0usize..20,
            position in 0usize..20,
            foreign in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        ) {
            let org = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f";
            prop_assume!(!foreign.eq_ignore_ascii_case(org));
            let mut changes: Vec<_> = (0..own).map(|_| change(Some(org))).collect();
            changes.insert(position.min(own), change(Some(&foreign)));
            let verdict = Tenant::XeroOrganisation(org.into()).check(&changes);
            prop_assert_eq!(verdict, Err(ForeignChanges { first_named: Some(foreign), count: 1, of: own + 1 }));
        }
    }
}
