//! Side-independent views of what each simulated service holds, for the inspection
//! endpoint, the demo's status lines and the tests' assertions.

use serde::{Deserialize, Serialize};

/// A customer as either service holds it, in the canonical field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerView {
    pub id: String,
    /// The origin stamp Tandem wrote (the other side's id), if any.
    pub stamp: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub archived: bool,
    /// Unix milliseconds of the last change.
    pub updated_ms: i64,
}

/// An invoice as either service holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceView {
    pub id: String,
    pub stamp: Option<String>,
    pub number: Option<String>,
    /// The customer's id on the same side.
    pub customer: Option<String>,
    /// `draft`, `submitted`, `authorised`, `paid`, `voided`, or none on the CRM side
    /// before finance reported a status.
    pub status: Option<String>,
    /// Decimal strings, as the service holds them.
    pub total: Option<String>,
    pub amount_paid: Option<String>,
    pub archived: bool,
    pub updated_ms: i64,
}

/// A new customer, as a simulated person types it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSeed {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
}

/// One edit a simulated person makes to a customer; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerEdit {
    pub name: Option<String>,
    pub phone: Option<String>,
}
