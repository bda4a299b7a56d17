//! The simulated HubSpot CRM: the CRM v3 objects, batch and search calls, OAuth token
//! refresh, rate limits with HubSpot's headers, and v3-signed webhooks, exactly as
//! `docs/api-subsets.md` ("HubSpot") describes them; plus what simulated people do in
//! HubSpot's UI and the hooks tests use to misbehave on purpose.

mod associations;
mod batch;
mod oauth;
mod ops;
mod routes;
mod search;
mod source;
mod state;
mod views;
mod webhooks;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;

use crate::journal::{Actor, Journal, JournalEntry, Side};
use crate::knobs::Knobs;
use crate::limits::{Limiter, Window};
use crate::outbox::Outbox;
use crate::view::{CustomerEdit, CustomerSeed, CustomerView, InvoiceView};

use ops::Events;
use state::{rfc3339, Kind, PropertyWrite, State};
use webhooks::{EventMaker, Source};

/// The simulated account and app.
#[derive(Clone)]
pub struct HubSpotSettings {
    pub portal_id: u64,
    pub app_id: u64,
    pub client_id: String,
    /// The app's client secret: signs webhooks (v3) and authenticates token refreshes.
    pub client_secret: String,
    pub refresh_token: String,
    /// A private-app token that never expires (an alternative to OAuth).
    pub private_app_token: String,
    pub access_token_ttl: Duration,
    pub per_ten_seconds: usize,
    pub search_per_second: usize,
}

/// Secrets and tokens print as `***`.
impl std::fmt::Debug for HubSpotSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpotSettings")
            .field("portal_id", &self.portal_id)
            .field("app_id", &self.app_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("refresh_token", &"***")
            .field("private_app_token", &"***")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("per_ten_seconds", &self.per_ten_seconds)
            .field("search_per_second", &self.search_per_second)
            .finish()
    }
}

impl Default for HubSpotSettings {
    fn default() -> Self {
        Self {
            portal_id: 62515,
            app_id: 54321,
            client_id: "sim-hubspot-client".to_string(),
            client_secret: "sim-hubspot-client-secret".to_string(),
            refresh_token: "sim-hubspot-refresh-token".to_string(),
            private_app_token: "sim-hubspot-private-app-token".to_string(),
            access_token_ttl: Duration::from_secs(1800),
            per_ten_seconds: 100,
            search_per_second: 5,
        }
    }
}

/// One API call the simulator answered.
#[derive(Debug, Clone)]
pub struct SimCall {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub at: Instant,
    pub finished: Instant,
}

/// HubSpot's daily call allowance, reported in `X-HubSpot-RateLimit-Daily`.
const DAILY_LIMIT: usize = 250_000;

pub struct HubSpotSim {
    settings: HubSpotSettings,
    knobs: Arc<Knobs>,
    state: Mutex<State>,
    outbox: Arc<Outbox>,
    events: EventMaker,
    tokens: oauth::Tokens,
    /// Every API call but search: `per_ten_seconds` per 10 s.
    limiter: Limiter,
    /// Search calls: `search_per_second` per second (search is exempt from the other).
    search_limiter: Limiter,
    forced_429: Mutex<Option<Duration>>,
    calls: Mutex<Vec<SimCall>>,
    refused_429: AtomicUsize,
    daily_used: AtomicUsize,
    customers_as_companies: AtomicBool,
    journal: Journal,
}

impl HubSpotSim {
    pub fn new(settings: HubSpotSettings, knobs: Arc<Knobs>) -> Arc<Self> {
        let outbox = Outbox::new(
            knobs.clone(),
            100,
            Box::new(webhooks::renderer(settings.client_secret.clone())),
        );
        let limiter = Limiter::new(
            vec![Window {
                max: settings.per_ten_seconds.max(1),
                per: Duration::from_secs(10),
            }],
            100,
        );
        let search_limiter = Limiter::new(
            vec![Window {
                max: settings.search_per_second.max(1),
                per: Duration::from_secs(1),
            }],
            100,
        );
        Arc::new(Self {
            events: EventMaker::new(settings.portal_id, settings.app_id),
            settings,
            knobs,
            state: Mutex::new(State::default()),
            outbox,
            tokens: oauth::Tokens::default(),
            limiter,
            search_limiter,
            forced_429: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            refused_429: AtomicUsize::new(0),
            daily_used: AtomicUsize::new(0),
            customers_as_companies: AtomicBool::new(false),
            journal: Journal::new(Side::Crm),
        })
    }

    /// All routes: `/crm/v3/objects/...`, `POST /oauth/v1/token`, and the control routes
    /// `GET /sim/hubspot/customers` and `GET /sim/hubspot/invoices`.
    pub fn endpoint(self: &Arc<Self>) -> poem::Route {
        routes::route(self.clone())
    }

    pub fn settings(&self) -> &HubSpotSettings {
        &self.settings
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Whether customers are companies (else contacts), for the people and the views.
    pub fn customers_as_companies(&self, yes: bool) {
        self.customers_as_companies.store(yes, Ordering::Relaxed);
    }

    fn customer_kind(&self) -> Kind {
        if self.customers_as_companies.load(Ordering::Relaxed) {
            Kind::Company
        } else {
            Kind::Contact
        }
    }

    /// Runs `change` under the state lock and queues the events it raised and
    /// journals the edits it made, still under the lock, so the outbox and the journal
    /// see them in the order the changes happened.
    fn change<R>(
        &self,
        source: Source,
        change: impl FnOnce(&mut State, &mut Events<'_>) -> R,
    ) -> R {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut events = Events::new(&self.events, source, self.customer_kind());
        let result = change(&mut state, &mut events);
        for event in events.raised {
            self.outbox.push(event);
        }
        let actor = match source {
            Source::Person => Actor::Person,
            Source::Integration => Actor::Api,
        };
        for edit in events.edits {
            self.journal.record(actor, edit);
        }
        result
    }

    fn read<R>(&self, read: impl FnOnce(&State) -> R) -> R {
        read(&self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A person adds a customer in HubSpot's UI; returns its id. People are not held
    /// to the unique-email rule the API enforces, so a seed is never refused.
    pub fn person_creates_customer(&self, seed: &CustomerSeed) -> String {
        let kind = self.customer_kind();
        let mut writes = name_writes(kind, &seed.name);
        let email_property = if kind == Kind::Company {
            "tandem_email"
        } else {
            "email"
        };
        writes.push((email_property.to_string(), non_empty(&seed.email)));
        writes.push((
            "phone".to_string(),
            seed.phone.as_deref().and_then(non_empty),
        ));
        self.change(Source::Person, |state, events| {
            let id = state.insert(kind, state::initial_props(&writes), Source::Person);
            events.raise_creation(kind, id);
            events.note_edit(state, id, None);
            id.to_string()
        })
    }

    /// A person edits a customer (contact or company, whichever holds `id`). Nothing
    /// happens when the edit changes nothing or the customer is gone.
    pub fn person_edits_customer(&self, id: &str, edit: &CustomerEdit) {
        self.change(Source::Person, |state, events| {
            let Some(kind) = state.find(id).map(|r| r.kind) else {
                tracing::debug!(id, "no customer to edit");
                return;
            };
            let mut writes = Vec::new();
            if let Some(name) = &edit.name {
                writes.extend(name_writes(kind, name));
            }
            if let Some(phone) = &edit.phone {
                writes.push(("phone".to_string(), non_empty(phone)));
            }
            // The UI bypasses the API's checks, so apply directly.
            let Some(object_id) = state.get(kind, id).filter(|r| !r.archived()).map(|r| r.id)
            else {
                return;
            };
            let before = events.snapshot(state, object_id);
            if let Some(record) = state.get_mut(kind, id) {
                let changed = state::apply(record, &writes);
                if !changed.is_empty() {
                    record.touch();
                    record.remember(&changed, Source::Person);
                    for (name, value) in &changed {
                        events.raise_change(kind, object_id, name, value);
                    }
                }
            }
            events.note_edit(state, object_id, before);
        });
    }

    /// A person deletes a customer (it goes to the recycle bin).
    pub fn person_archives_customer(&self, id: &str) {
        self.change(Source::Person, |state, events| {
            if let Some(kind) = state.find(id).map(|r| r.kind) {
                if let Err(err) = ops::archive(state, events, kind, id) {
                    tracing::debug!(id, message = %err.message, "no customer to archive");
                }
            }
        });
    }

    /// A person wins a deal: a `closedwon` deal associated with the customer and with
    /// one line item per (description, quantity, unit price); returns the deal id.
    pub fn person_wins_deal(
        &self,
        customer_id: &str,
        name: &str,
        lines: &[(String, Decimal, Decimal)],
    ) -> String {
        let typed: Vec<(String, String, String)> = lines
            .iter()
            .map(|(d, q, p)| {
                (
                    d.clone(),
                    q.normalize().to_string(),
                    p.normalize().to_string(),
                )
            })
            .collect();
        self.person_wins_deal_as_typed(customer_id, name, &typed)
    }

    /// A person wins a deal whose line items hold the text typed into them, a number
    /// or not (an import or a form can leave `abc` in a number property); the deal's
    /// amount adds up the lines that are numbers. Returns the deal id.
    pub fn person_wins_deal_as_typed(
        &self,
        customer_id: &str,
        name: &str,
        lines: &[(String, String, String)],
    ) -> String {
        let number = |text: &str| text.trim().parse::<Decimal>().ok();
        let amount: Decimal = lines
            .iter()
            .filter_map(|(_, q, p)| Some(number(q)? * number(p)?))
            .sum();
        self.change(Source::Person, |state, events| {
            let mut line_ids = Vec::new();
            for (description, quantity, price) in lines {
                let writes: Vec<PropertyWrite> = vec![
                    ("name".to_string(), non_empty(description)),
                    ("quantity".to_string(), Some(quantity.clone())),
                    ("price".to_string(), Some(price.clone())),
                ];
                // Line items raise no events, so none are collected here.
                line_ids.push(state.insert(
                    Kind::LineItem,
                    state::initial_props(&writes),
                    Source::Person,
                ));
            }
            let writes: Vec<PropertyWrite> = vec![
                ("dealname".to_string(), non_empty(name)),
                ("dealstage".to_string(), Some("closedwon".to_string())),
                ("pipeline".to_string(), Some("default".to_string())),
                ("amount".to_string(), Some(amount.normalize().to_string())),
                ("closedate".to_string(), Some(rfc3339(state::now_ms()))),
            ];
            let deal = state.insert(Kind::Deal, state::initial_props(&writes), Source::Person);
            if let Some(customer) = state.find(customer_id).map(|r| r.id) {
                state.link(deal, customer);
            }
            for line in line_ids {
                state.link(deal, line);
            }
            events.raise_creation(Kind::Deal, deal);
            events.note_edit(state, deal, None);
            deal.to_string()
        })
    }

    /// Every customer (contacts, or companies after `customers_as_companies(true)`),
    /// archived ones included, in id order.
    pub fn customers(&self) -> Vec<CustomerView> {
        let kind = self.customer_kind();
        self.read(|state| {
            state
                .records(kind)
                .values()
                .map(State::customer_view)
                .collect()
        })
    }

    /// Every deal in stage `closedwon` (an invoice), archived ones included, in id order.
    pub fn invoices(&self) -> Vec<InvoiceView> {
        let customer_kind = self.customer_kind();
        self.read(|state| {
            state
                .records(Kind::Deal)
                .values()
                .filter_map(|r| state.invoice_view(r, customer_kind))
                .collect()
        })
    }

    /// Every edit applied to a customer or an invoice so far, by people and through
    /// the API, in the order applied.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.journal.entries()
    }

    /// Every OAuth access token issued so far stops working now (the private-app
    /// token keeps working).
    pub fn expire_access_tokens(&self) {
        self.tokens.expire_all();
    }

    /// Every access token issued so far, for tests that check none leaks.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.tokens.issued()
    }

    /// Successful token grants so far.
    pub fn token_refreshes(&self) -> usize {
        self.tokens.grants()
    }

    /// The next API call answers 429 with this `Retry-After` (rounded up to seconds).
    pub fn force_429_next(&self, retry_after: Duration) {
        *self.forced_429.lock().unwrap_or_else(|p| p.into_inner()) = Some(retry_after);
    }

    /// Every call received (API and token calls, not control routes), in order.
    pub fn calls(&self) -> Vec<SimCall> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Calls answered 429, whatever the reason (limits, knobs, forced).
    pub fn refused_429(&self) -> usize {
        self.refused_429.load(Ordering::Relaxed)
    }
}

/// The name properties of a customer: a company's `name`, or a contact's first word
/// as `firstname` and the rest as `lastname`.
fn name_writes(kind: Kind, name: &str) -> Vec<PropertyWrite> {
    let name = name.trim();
    if kind == Kind::Company {
        return vec![("name".to_string(), non_empty(name))];
    }
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    vec![
        ("firstname".to_string(), non_empty(first.trim())),
        ("lastname".to_string(), non_empty(last.trim())),
    ]
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}
