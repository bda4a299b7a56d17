//! The inspection: do the two simulated services agree? Records are paired the way
//! Tandem pairs them (by origin stamp either way, else customers by e-mail), then
//! compared on the fields that sync both ways by default.

use std::collections::HashMap;

use serde::Serialize;

use crate::view::{CustomerView, InvoiceView};

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Difference {
    pub crm_id: String,
    pub finance_id: String,
    pub field: String,
    pub crm: Option<String>,
    pub finance: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SideBySide {
    pub crm: usize,
    pub finance: usize,
    /// Records found on both sides.
    pub paired: usize,
    /// Pairs equal on every compared field.
    pub agree: usize,
    /// CRM records with no counterpart yet, and the other way round.
    pub only_crm: usize,
    pub only_finance: usize,
    /// The first differences found (at most 20).
    pub differences: Vec<Difference>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Inspection {
    pub customers: SideBySide,
    pub invoices: SideBySide,
    /// Every paired record agrees and nothing is waiting on one side only.
    pub in_step: bool,
}

const SHOWN: usize = 20;

/// A compared field: its name and how to read it from a view.
type Field<T> = (&'static str, fn(&T) -> Option<String>);

/// Pairs `crm` with `finance` records: by stamp either way, else by `natural`.
fn pair<'a, T>(
    crm: &'a [T],
    finance: &'a [T],
    id: impl Fn(&T) -> &str,
    stamp: impl Fn(&T) -> Option<&str>,
    natural: impl Fn(&T) -> Option<String>,
) -> (Vec<(&'a T, &'a T)>, usize, usize) {
    let by_id: HashMap<&str, &T> = finance.iter().map(|f| (id(f), f)).collect();
    let by_stamp: HashMap<&str, &T> = finance
        .iter()
        .filter_map(|f| Some((stamp(f)?, f)))
        .collect();
    let by_natural: HashMap<String, &T> = finance
        .iter()
        .filter_map(|f| Some((natural(f)?, f)))
        .collect();
    let mut pairs = Vec::new();
    let mut used = std::collections::HashSet::new();
    for c in crm {
        let found = by_stamp
            .get(id(c))
            .or_else(|| stamp(c).and_then(|s| by_id.get(s)))
            .or_else(|| natural(c).and_then(|n| by_natural.get(&n)))
            .copied();
        if let Some(f) = found {
            if used.insert(id(f).to_string()) {
                pairs.push((c, f));
            }
        }
    }
    let only_crm = crm.len() - pairs.len();
    let only_finance = finance.len() - pairs.len();
    (pairs, only_crm, only_finance)
}

fn compare<T>(
    pairs: &[(&T, &T)],
    id: impl Fn(&T) -> &str,
    fields: &[Field<T>],
) -> (usize, Vec<Difference>) {
    let mut agree = 0;
    let mut differences = Vec::new();
    for (c, f) in pairs {
        let mut equal = true;
        for (name, get) in fields {
            let (a, b) = (get(c), get(f));
            if a != b {
                equal = false;
                if differences.len() < SHOWN {
                    differences.push(Difference {
                        crm_id: id(c).to_string(),
                        finance_id: id(f).to_string(),
                        field: name.to_string(),
                        crm: a,
                        finance: b,
                    });
                }
            }
        }
        if equal {
            agree += 1;
        }
    }
    (agree, differences)
}

pub fn customers(crm: &[CustomerView], finance: &[CustomerView]) -> SideBySide {
    let live = |all: &[CustomerView]| -> Vec<CustomerView> {
        all.iter().filter(|c| !c.archived).cloned().collect()
    };
    let (crm, finance) = (live(crm), live(finance));
    let (pairs, only_crm, only_finance) = pair(
        &crm,
        &finance,
        |c| c.id.as_str(),
        |c| c.stamp.as_deref(),
        |c| c.email.as_ref().map(|e| e.trim().to_lowercase()),
    );
    let (agree, differences) = compare(
        &pairs,
        |c| c.id.as_str(),
        &[
            ("name", |c| c.name.clone()),
            ("email", |c| {
                c.email.as_ref().map(|e| e.trim().to_lowercase())
            }),
            ("phone", |c| c.phone.clone()),
        ],
    );
    SideBySide {
        crm: crm.len(),
        finance: finance.len(),
        paired: pairs.len(),
        agree,
        only_crm,
        only_finance,
        differences,
    }
}

pub fn invoices(crm: &[InvoiceView], finance: &[InvoiceView]) -> SideBySide {
    let live = |all: &[InvoiceView]| -> Vec<InvoiceView> {
        all.iter().filter(|i| !i.archived).cloned().collect()
    };
    let (crm, finance) = (live(crm), live(finance));
    let (pairs, only_crm, only_finance) = pair(
        &crm,
        &finance,
        |i| i.id.as_str(),
        |i| i.stamp.as_deref(),
        |_| None,
    );
    let (agree, differences) = compare(
        &pairs,
        |i| i.id.as_str(),
        &[
            ("status", |i| i.status.clone()),
            ("total", |i| i.total.clone()),
            ("amount_paid", |i| {
                i.amount_paid
                    .clone()
                    .filter(|p| !p.trim_start_matches(['0', '.']).is_empty())
            }),
        ],
    );
    SideBySide {
        crm: crm.len(),
        finance: finance.len(),
        paired: pairs.len(),
        agree,
        only_crm,
        only_finance,
        differences,
    }
}

pub fn inspect(
    crm_customers: &[CustomerView],
    finance_customers: &[CustomerView],
    crm_invoices: &[InvoiceView],
    finance_invoices: &[InvoiceView],
) -> Inspection {
    let customers = customers(crm_customers, finance_customers);
    let invoices = invoices(crm_invoices, finance_invoices);
    let in_step = [&customers, &invoices]
        .iter()
        .all(|s| s.agree == s.paired && s.only_crm == 0 && s.only_finance == 0);
    Inspection {
        customers,
        invoices,
        in_step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(id: &str, stamp: Option<&str>, email: &str, name: &str) -> CustomerView {
        CustomerView {
            id: id.into(),
            stamp: stamp.map(str::to_string),
            name: Some(name.into()),
            email: Some(email.into()),
            ..Default::default()
        }
    }

    #[test]
    fn pairs_by_stamp_and_email_and_reports_a_difference() {
        let crm = vec![
            customer("1", None, "a@x.io", "Ada"),
            customer("2", None, "b@x.io", "Bob"),
            customer("3", Some("f9"), "c@x.io", "Cy"),
        ];
        let finance = vec![
            customer("f1", Some("1"), "a@x.io", "Ada"),
            customer("f2", None, "B@X.io", "Robert"),
            customer("f9", None, "c@x.io", "Cy"),
        ];
        let report = customers(&crm, &finance);
        assert_eq!(report.paired, 3);
        assert_eq!(report.agree, 2);
        assert_eq!(report.differences.len(), 1);
        assert_eq!(report.differences[0].field, "name");
    }
}
