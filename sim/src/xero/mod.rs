//! The simulated Xero Accounting API (`docs/api-subsets.md`, section "Xero"): contacts,
//! sales invoices and payments in memory, the OAuth refresh-token grant, per-tenant
//! rate limits with Xero's headers, idempotency keys, signed webhooks, and what
//! simulated people do in Xero's own UI.
//!
//! Routes (see [`XeroSim::endpoint`]):
//! - `GET|PUT|POST /api.xro/2.0/Contacts`, `GET|POST /api.xro/2.0/Contacts/{id}`
//! - `GET|PUT|POST /api.xro/2.0/Invoices`, `GET|POST /api.xro/2.0/Invoices/{id}`
//! - `PUT|POST /api.xro/2.0/Payments`
//! - `GET /api.xro/2.0/Organisation`
//! - `GET|POST /identity/connect/authorize` (the consent form), `POST /connect/token`,
//!   `POST /connect/revocation`, `GET /connections`
//! - `GET /sim/xero/customers`, `GET /sim/xero/invoices`

mod contact_writes;
mod contacts;
mod dates;
mod fields;
mod invoice_writes;
mod invoices;
mod oauth;
mod query;
mod routes;
pub mod schema;
mod state;
mod webhooks;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use poem::endpoint::make;
use poem::{get, post, Route};
use rust_decimal::Decimal;

use crate::journal::{Actor, Edit, Journal, JournalEntry, RecordView, Side};
use crate::knobs::Knobs;
use crate::limits::{Limiter, Window};
use crate::outbox::Outbox;
use crate::view::{CustomerEdit, CustomerSeed, CustomerView, InvoiceView};

use self::contacts::Contact;
use self::invoices::Status;
use self::routes::Answer;
use self::state::{Category, Change, Store};

/// How long an `Idempotency-Key`'s first answer is kept.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone)]
pub struct XeroSettings {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// The first refresh token a connection is configured with.
    pub refresh_token: String,
    /// The webhook signing key (x-xero-signature).
    pub webhook_key: String,
    pub access_token_ttl: Duration,
    pub per_minute: usize,
    pub concurrency: usize,
    pub per_day: usize,
    /// The name `GET /connections` gives the organisation whose API this simulates.
    pub tenant_name: String,
    /// Organisations a grant also reaches, listed before this one by
    /// `GET /connections` (their API is not simulated: calls naming them get 403).
    pub other_organisations: Vec<Organisation>,
}

/// An organisation a grant reaches.
#[derive(Debug, Clone)]
pub struct Organisation {
    pub tenant_id: String,
    pub name: String,
}

impl Default for XeroSettings {
    fn default() -> Self {
        Self {
            tenant_id: "sim-tenant".into(),
            client_id: "sim-xero-client".into(),
            client_secret: "sim-xero-secret".into(),
            refresh_token: "sim-xero-refresh".into(),
            webhook_key: "sim-xero-webhook-key".into(),
            access_token_ttl: Duration::from_secs(1800),
            per_minute: 60,
            concurrency: 5,
            per_day: 5000,
            tenant_name: "Sim Demo Company (NZ)".into(),
            other_organisations: vec![Organisation {
                tenant_id: "sim-other-tenant".into(),
                name: "Sim Holdings Ltd".into(),
            }],
        }
    }
}

/// One API call the simulator answered.
#[derive(Debug, Clone)]
pub struct SimCall {
    pub method: String,
    /// The full path, e.g. `/api.xro/2.0/Contacts`.
    pub path: String,
    /// The raw (still percent-encoded) query string.
    pub query: String,
    pub status: u16,
    /// Records the call named: a batch write's items, a read's ids or ORed terms; 0
    /// for a listing.
    pub items: usize,
    pub at: Instant,
    pub finished: Instant,
}

/// The records and the idempotency store, under one lock so a replayed key and the
/// write it guards can never interleave.
pub(crate) struct State {
    store: Store,
    idempotency: HashMap<(String, String, String), (Instant, Answer)>,
}

/// What the remaining-calls headers report between admissions.
struct LimitView {
    minute: usize,
    day: usize,
    app_calls: VecDeque<Instant>,
}

pub struct XeroSim {
    settings: XeroSettings,
    knobs: Arc<Knobs>,
    state: Mutex<State>,
    tokens: Mutex<oauth::Tokens>,
    limiter: Limiter,
    limit_view: Mutex<LimitView>,
    forced_429: Mutex<Option<Duration>>,
    calls: Mutex<Vec<SimCall>>,
    refused_429: AtomicUsize,
    outbox: Arc<Outbox>,
    journal: Journal,
}

impl XeroSim {
    pub fn new(settings: XeroSettings, knobs: Arc<Knobs>) -> Arc<Self> {
        let limiter = Limiter::new(
            vec![
                Window {
                    max: settings.per_minute,
                    per: Duration::from_secs(60),
                },
                Window {
                    max: settings.per_day,
                    per: Duration::from_secs(24 * 60 * 60),
                },
            ],
            settings.concurrency,
        );
        let outbox = Outbox::new(
            knobs.clone(),
            100,
            webhooks::render(settings.webhook_key.clone()),
        );
        let tokens = oauth::Tokens::new(
            &settings.client_id,
            &settings.client_secret,
            &settings.refresh_token,
            settings.access_token_ttl,
        );
        Arc::new(Self {
            limit_view: Mutex::new(LimitView {
                minute: settings.per_minute,
                day: settings.per_day,
                app_calls: VecDeque::new(),
            }),
            settings,
            knobs,
            state: Mutex::new(State {
                store: Store::default(),
                idempotency: HashMap::new(),
            }),
            tokens: Mutex::new(tokens),
            limiter,
            forced_429: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            refused_429: AtomicUsize::new(0),
            outbox,
            journal: Journal::new(Side::Finance),
        })
    }

    pub fn settings(&self) -> &XeroSettings {
        &self.settings
    }

    /// All routes, as a `poem::Route` to serve as is or nest: the API under
    /// `/api.xro/2.0/...`, the token endpoint at `/connect/token`, and the views at
    /// `/sim/xero/customers` and `/sim/xero/invoices`.
    pub fn endpoint(self: &Arc<Self>) -> Route {
        let api = self.clone();
        let token = self.clone();
        let revocation = self.clone();
        let authorize = self.clone();
        let connections = self.clone();
        let customers = self.clone();
        let invoices = self.clone();
        Route::new()
            .at(
                "/identity/connect/authorize",
                make(move |req| {
                    let sim = authorize.clone();
                    async move { sim.serve_authorize(req).await }
                }),
            )
            .at(
                "/connect/revocation",
                post(make(move |req| {
                    let sim = revocation.clone();
                    async move { sim.serve_revocation(req).await }
                })),
            )
            .at(
                "/connections",
                get(make(move |req| {
                    let sim = connections.clone();
                    async move { sim.serve_connections(req) }
                })),
            )
            .nest(
                "/api.xro/2.0",
                make(move |req| {
                    let sim = api.clone();
                    async move { sim.serve_api(req).await }
                }),
            )
            .at(
                "/connect/token",
                post(make(move |req| {
                    let sim = token.clone();
                    async move { sim.serve_token(req).await }
                })),
            )
            .at(
                "/sim/xero/customers",
                get(make(move |_req| {
                    let sim = customers.clone();
                    async move { sim.serve_view(true) }
                })),
            )
            .at(
                "/sim/xero/invoices",
                get(make(move |_req| {
                    let sim = invoices.clone();
                    async move { sim.serve_view(false) }
                })),
            )
    }

    /// The webhook sender; the caller sets its target URL and runs it.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one webhook event per change.
    fn raise(&self, changes: &[Change]) {
        for change in changes {
            self.outbox
                .push(webhooks::event(change, &self.settings.tenant_id));
        }
    }

    /// Journals what an edit did to one record, given its view before and after.
    /// Called under the state lock, so the journal keeps the order edits happened in.
    fn note_edit(&self, actor: Actor, before: Option<RecordView>, after: Option<RecordView>) {
        if let Some(edit) = Edit::between(before.as_ref(), after.as_ref()) {
            self.journal.record(actor, edit);
        }
    }

    /// A person adds a contact in Xero's UI. Answers its ContactID.
    pub fn person_creates_contact(&self, seed: &CustomerSeed) -> String {
        let mut state = self.state();
        let mut contact = Contact::new(seed.name.clone());
        contact.email = Some(seed.email.clone()).filter(|e| !e.trim().is_empty());
        if seed.phone.is_some() {
            contact.set_phone(seed.phone.clone());
        }
        contact.updated_ms = dates::next_stamp(None);
        let change = Change::new(Category::Contact, &contact.id, true, contact.updated_ms);
        let id = contact.id.clone();
        let after = RecordView::Customer(contact.view());
        state.store.contacts.push(contact);
        self.raise(&[change]);
        self.note_edit(Actor::Person, None, Some(after));
        id
    }

    /// A person edits a contact's name or phone. Unknown ids are ignored.
    pub fn person_edits_contact(&self, id: &str, edit: &CustomerEdit) {
        let mut state = self.state();
        let Some(index) = state.store.contact_index(id) else {
            return;
        };
        let contact = &mut state.store.contacts[index];
        let before = contact.clone();
        if let Some(name) = &edit.name {
            contact.name = name.clone();
        }
        if let Some(phone) = &edit.phone {
            contact.set_phone(Some(phone.clone()).filter(|p| !p.trim().is_empty()));
        }
        if *contact == before {
            return;
        }
        contact.updated_ms = dates::next_stamp(Some(contact.updated_ms));
        let change = Change::new(Category::Contact, &contact.id, false, contact.updated_ms);
        self.raise(&[change]);
        self.note_edit(
            Actor::Person,
            Some(RecordView::Customer(before.view())),
            Some(RecordView::Customer(contact.view())),
        );
    }

    /// A person archives a contact. Unknown or already archived ones are left alone.
    pub fn person_archives_contact(&self, id: &str) {
        let mut state = self.state();
        let Some(index) = state.store.contact_index(id) else {
            return;
        };
        let contact = &mut state.store.contacts[index];
        if contact.archived {
            return;
        }
        let before = RecordView::Customer(contact.view());
        contact.archived = true;
        contact.updated_ms = dates::next_stamp(Some(contact.updated_ms));
        let change = Change::new(Category::Contact, &contact.id, false, contact.updated_ms);
        self.raise(&[change]);
        self.note_edit(
            Actor::Person,
            Some(before),
            Some(RecordView::Customer(contact.view())),
        );
    }

    /// Approves (AUTHORISED) the invoice if it is DRAFT or SUBMITTED, then records a
    /// payment; PAID when AmountDue reaches 0. One change, one webhook event.
    pub fn person_pays_invoice(&self, id: &str, amount: Decimal) -> Result<(), String> {
        let mut state = self.state();
        let index = state
            .store
            .invoice_index(id)
            .ok_or_else(|| format!("no invoice {id}"))?;
        let invoice = &mut state.store.invoices[index];
        if !matches!(
            invoice.status,
            Status::Draft | Status::Submitted | Status::Authorised
        ) {
            return Err(format!(
                "invoice {id} is {} and cannot be paid",
                invoice.status.as_str()
            ));
        }
        if amount <= Decimal::ZERO || amount > invoice.amount_due() {
            return Err(format!(
                "payment {amount} is not between 0 and the amount due {}",
                invoice.amount_due()
            ));
        }
        let before = RecordView::Invoice(invoice.view());
        invoice.status = Status::Authorised;
        let change = invoice_writes::pay(&mut state.store, index, amount)?;
        self.raise(&[change]);
        let after = RecordView::Invoice(state.store.invoices[index].view());
        self.note_edit(Actor::Person, Some(before), Some(after));
        Ok(())
    }

    /// Every contact, archived ones included; the stamp is the ContactNumber.
    pub fn customers(&self) -> Vec<CustomerView> {
        self.state()
            .store
            .contacts
            .iter()
            .map(Contact::view)
            .collect()
    }

    /// Every invoice, deleted ones included (as archived); the stamp is the Reference.
    pub fn invoices(&self) -> Vec<InvoiceView> {
        self.state()
            .store
            .invoices
            .iter()
            .map(invoices::Invoice::view)
            .collect()
    }

    /// Every edit applied to a customer or an invoice so far, by people and through
    /// the API, in the order applied.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.journal.entries()
    }

    /// Every access token issued so far stops working now.
    pub fn expire_access_tokens(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expire_all();
    }

    /// Every access and refresh token issued so far, for tests that check none leaks.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .issued()
    }

    /// Successful refresh-token grants so far.
    pub fn token_refreshes(&self) -> usize {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refreshes()
    }

    /// The user removes Tandem's access in Xero: every refresh and access token
    /// issued so far stops working.
    pub fn revoke_all_grants(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .revoke_all();
    }

    /// How long a replaced refresh token keeps working (until its successor is used):
    /// 30 minutes by default, as Xero does; `Duration::ZERO` makes rotation strict.
    pub fn set_refresh_grace(&self, grace: Duration) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_grace(grace);
    }

    /// The next API call answers 429 with this `Retry-After`.
    pub fn force_429_next(&self, retry_after: Duration) {
        *self.forced_429.lock().unwrap_or_else(|p| p.into_inner()) = Some(retry_after);
    }

    /// Every API call received, in the order they arrived.
    pub fn calls(&self) -> Vec<SimCall> {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // Logged when answered; sorted (stably) back into arrival order.
        calls.sort_by_key(|c| c.at);
        calls
    }

    /// API calls answered 429 (limits, knob, or forced).
    pub fn refused_429(&self) -> usize {
        self.refused_429.load(Ordering::Relaxed)
    }
}
