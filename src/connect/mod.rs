//! Connecting accounts in the browser and making pairs of them while Tandem runs.
//!
//! A connect starts with a `state` and a PKCE verifier kept in this process for ten
//! minutes, and the authorize URL the person opens; the service sends the browser back
//! to the callback URL with a code, which is exchanged (with the verifier) for tokens.
//! HubSpot's token metadata names the portal; Xero's `/connections` lists the
//! organisations the grant reaches, and with more than one the person picks (never
//! silently). Only then is anything stored: the account, keyed on the hub id or the
//! tenantId, and its tokens, sealed, in the credential store, which from then on is the
//! one place that holds them (rotated refresh tokens are written there before use).
//! Any refusal on the way answers a clear error and stores nothing.

pub mod host;
pub mod oauth;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use crate::config::{
    ConnectSettings, ConnectionSettings, ConnectorKind, CustomerObjectSetting, PairSettings,
    WebhookSigning,
};
use crate::domain::{ConflictPolicy, DeletePolicy, System};
use crate::intake::WebhookIntake;
use crate::store::{Account, AccountStore, Credential, PairRecord, Store, StoreError};

pub use host::PairHost;
pub use oauth::{Organisation, Service};

use oauth::{App, Grant};

/// How long a started connect, or a grant waiting for its organisation, is kept.
const PENDING_FOR: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Settings are missing for this: says which.
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    BadInput(String),
    /// The service refused a step, or could not be asked.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

struct Pending {
    service: Service,
    verifier: String,
    at: Instant,
}

struct Choice {
    grant: Grant,
    organisations: Vec<Organisation>,
    at: Instant,
}

/// What a completed callback led to.
pub enum Completed {
    Account(Account),
    /// The grant reaches several Xero organisations: one must be picked.
    ChooseOrganisation {
        choice: String,
        organisations: Vec<Organisation>,
    },
}

/// A new pair's choices.
pub struct NewPair {
    pub name: String,
    pub crm_account: Uuid,
    pub finance_account: Uuid,
    pub conflict_policy: Option<String>,
    pub source_of_truth: Option<String>,
    pub deletes: Option<String>,
    pub poll_interval_secs: Option<u64>,
}

pub struct Connect {
    apps: HashMap<&'static str, App>,
    callback_url: Option<String>,
    store: Arc<dyn Store>,
    accounts: Arc<dyn AccountStore>,
    http: reqwest::Client,
    pending: Mutex<HashMap<String, Pending>>,
    choices: Mutex<HashMap<String, Choice>>,
    host: Option<Arc<PairHost>>,
    /// Where webhooks come in, when this process serves HTTP: a pair made here takes
    /// them whether or not this process runs workers.
    intake: Option<Arc<WebhookIntake>>,
    /// Each pair's state as this process last put it into effect (pairs made, paused
    /// or removed through another process are followed from the store).
    applied: Mutex<HashMap<String, String>>,
    /// Names of the pairs in the settings file: taken.
    file_pairs: Vec<String>,
}

fn parse<T: serde::de::DeserializeOwned>(
    value: Option<&str>,
    field: &str,
    choices: &str,
) -> Result<Option<T>, ConnectError> {
    value
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.to_string())).map_err(|_| {
                ConnectError::BadInput(format!("`{field}` must be one of {choices}, not `{v}`"))
            })
        })
        .transpose()
}

impl Connect {
    pub fn new(
        settings: &ConnectSettings,
        file_pairs: Vec<String>,
        store: Arc<dyn Store>,
        accounts: Arc<dyn AccountStore>,
        host: Option<Arc<PairHost>>,
    ) -> Self {
        let mut apps = HashMap::new();
        for (service, app) in [
            (Service::Hubspot, &settings.hubspot),
            (Service::Xero, &settings.xero),
        ] {
            if let Some(app) = app {
                apps.insert(service.as_str(), App::from_settings(service, app));
            }
        }
        Self {
            apps,
            callback_url: settings.callback_url.clone(),
            store,
            accounts,
            http: crate::wiring::http_client(),
            pending: Mutex::new(HashMap::new()),
            choices: Mutex::new(HashMap::new()),
            host,
            intake: None,
            applied: Mutex::new(HashMap::new()),
            file_pairs,
        }
    }

    /// Opens the webhook endpoints of the pairs made here on `intake`.
    pub fn with_intake(mut self, intake: Option<Arc<WebhookIntake>>) -> Self {
        self.intake = intake;
        self
    }

    fn app(&self, service: Service) -> Result<&App, ConnectError> {
        self.apps.get(service.as_str()).ok_or_else(|| {
            let upper = service.as_str().to_uppercase();
            ConnectError::NotConfigured(format!(
                "no {} app is set: set TANDEM_CONNECT__{upper}__CLIENT_ID and \
                 TANDEM_CONNECT__{upper}__CLIENT_SECRET (or _FILE), see docs/connect.md",
                service.name()
            ))
        })
    }

    fn callback(&self) -> Result<&str, ConnectError> {
        self.callback_url.as_deref().ok_or_else(|| {
            ConnectError::NotConfigured(
                "no callback URL is set: set TANDEM_CONNECT__CALLBACK_URL to \
                 https://<your host>/connect/callback and register it with the app"
                    .into(),
            )
        })
    }

    /// Starts connecting an account: answers the `state` and the URL to open.
    pub fn start(&self, service: Service) -> Result<(String, String), ConnectError> {
        let app = self.app(service)?;
        let callback = self.callback()?;
        let state = oauth::random_key();
        let verifier = oauth::random_key();
        let url = app.authorize_url(callback, &state, &oauth::challenge(&verifier));
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.at.elapsed() < PENDING_FOR);
        pending.insert(
            state.clone(),
            Pending {
                service,
                verifier,
                at: Instant::now(),
            },
        );
        Ok((state, url))
    }

    /// The service sent the browser back: `code`, or `error` (consent denied).
    pub async fn complete(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<Completed, ConnectError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(state)
            .filter(|p| p.at.elapsed() < PENDING_FOR)
            .ok_or_else(|| {
                ConnectError::BadInput(
                    "unknown or expired `state`: this connect was not started here, was \
                     finished already, or is older than ten minutes; start it again"
                        .into(),
                )
            })?;
        let service = pending.service;
        if let Some(error) = error {
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(60)
                .collect();
            return Err(ConnectError::Refused(format!(
                "{} did not grant access ({code}): nothing was stored; start again to retry",
                service.name()
            )));
        }
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ConnectError::BadInput("the callback carries no `code`".into()))?;
        let app = self.app(service)?;
        let grant = oauth::exchange(&self.http, app, self.callback()?, code, &pending.verifier)
            .await
            .map_err(|e| ConnectError::Refused(e.0))?;
        match service {
            Service::Hubspot => {
                let portal = oauth::portal(&self.http, app, &grant.access)
                    .await
                    .map_err(|e| ConnectError::Refused(e.0))?;
                let scopes = if portal.scopes.is_empty() {
                    grant.scope.clone().unwrap_or_default()
                } else {
                    portal.scopes.join(" ")
                };
                let id = portal.hub_id.to_string();
                let name = format!("HubSpot portal {id}");
                Ok(Completed::Account(
                    self.keep(service, &id, &name, &scopes, &grant).await?,
                ))
            }
            Service::Xero => {
                let organisations = oauth::organisations(&self.http, app, &grant.access)
                    .await
                    .map_err(|e| ConnectError::Refused(e.0))?;
                match organisations.len() {
                    0 => Err(ConnectError::Refused(
                        "the grant reaches no Xero organisation: pick one on Xero's consent \
                         page; nothing was stored"
                            .into(),
                    )),
                    1 => {
                        let org = &organisations[0];
                        let account = self.keep_organisation(&grant, org).await?;
                        Ok(Completed::Account(account))
                    }
                    _ => {
                        let choice = oauth::random_key();
                        let mut choices = self.choices.lock().unwrap_or_else(|p| p.into_inner());
                        choices.retain(|_, c| c.at.elapsed() < PENDING_FOR);
                        choices.insert(
                            choice.clone(),
                            Choice {
                                grant,
                                organisations: organisations.clone(),
                                at: Instant::now(),
                            },
                        );
                        Ok(Completed::ChooseOrganisation {
                            choice,
                            organisations,
                        })
                    }
                }
            }
        }
    }

    /// The organisation picked for a grant that reaches several.
    pub async fn choose(&self, choice: &str, tenant_id: &str) -> Result<Account, ConnectError> {
        let (grant, org) = {
            let mut choices = self.choices.lock().unwrap_or_else(|p| p.into_inner());
            let Some(waiting) = choices.get(choice).filter(|c| c.at.elapsed() < PENDING_FOR) else {
                return Err(ConnectError::NotFound(
                    "unknown or expired choice: connect Xero again".into(),
                ));
            };
            let Some(org) = waiting
                .organisations
                .iter()
                .find(|o| o.tenant_id == tenant_id)
                .cloned()
            else {
                let offered: Vec<&str> = waiting
                    .organisations
                    .iter()
                    .map(|o| o.tenant_id.as_str())
                    .collect();
                return Err(ConnectError::BadInput(format!(
                    "`tenant_id` must be one of the organisations offered: {}",
                    offered.join(", ")
                )));
            };
            let waiting = choices.remove(choice).ok_or_else(|| {
                ConnectError::NotFound("unknown or expired choice: connect Xero again".into())
            })?;
            (waiting.grant, org)
        };
        self.keep_organisation(&grant, &org).await
    }

    /// The organisations offered to a grant that waits for its pick.
    pub fn organisations_of(&self, choice: &str) -> Result<Vec<Organisation>, ConnectError> {
        let choices = self.choices.lock().unwrap_or_else(|p| p.into_inner());
        choices
            .get(choice)
            .filter(|c| c.at.elapsed() < PENDING_FOR)
            .map(|c| c.organisations.clone())
            .ok_or_else(|| {
                ConnectError::NotFound("unknown or expired choice: connect Xero again".into())
            })
    }

    async fn keep_organisation(
        &self,
        grant: &Grant,
        org: &Organisation,
    ) -> Result<Account, ConnectError> {
        let name = org
            .tenant_name
            .clone()
            .unwrap_or_else(|| org.tenant_id.clone());
        let scopes = grant.scope.clone().unwrap_or_default();
        self.keep(Service::Xero, &org.tenant_id, &name, &scopes, grant)
            .await
    }

    /// Stores the account and its tokens (sealed); a pair of it held by refused
    /// credentials is probed again at once.
    async fn keep(
        &self,
        service: Service,
        external_id: &str,
        name: &str,
        scopes: &str,
        grant: &Grant,
    ) -> Result<Account, ConnectError> {
        let account = self
            .accounts
            .save_account(service.as_str(), external_id, name, scopes)
            .await?;
        let credential = Credential {
            access_token: Some(grant.access.clone()),
            refresh_token: Some(grant.refresh.clone()),
            expires_at: Some(Utc::now() + chrono::Duration::seconds(grant.expires_in)),
            rotated_at: None,
        };
        self.store
            .save_credential(
                &Account::credential_owner(account.id),
                side_of(service),
                &credential,
            )
            .await?;
        if let Some(host) = &self.host {
            host.reconnected(account.id);
        }
        tracing::info!(kind = service.as_str(), account = %account.id, "account connected");
        Ok(account)
    }

    pub async fn accounts(&self) -> Result<Vec<Account>, ConnectError> {
        Ok(self.accounts.accounts().await?)
    }

    pub async fn account(&self, id: Uuid) -> Result<Account, ConnectError> {
        self.accounts
            .account(id)
            .await?
            .ok_or_else(|| ConnectError::NotFound(format!("no account {id}")))
    }

    /// Whether the account's credentials were refused while in use: it needs
    /// connecting again.
    pub fn needs_reconnecting(&self, account: &Account) -> bool {
        self.host.as_ref().is_some_and(|h| h.refused(account.id))
    }

    /// Forgets the account's tokens. Refused while an active or paused pair uses it.
    pub async fn disconnect(&self, id: Uuid) -> Result<Account, ConnectError> {
        let account = self.account(id).await?;
        let users: Vec<String> = self
            .accounts
            .pair_records()
            .await?
            .into_iter()
            .filter(|p| p.state != "removed" && (p.crm_account == id || p.finance_account == id))
            .map(|p| p.name)
            .collect();
        if !users.is_empty() {
            return Err(ConnectError::Conflict(format!(
                "pairs {} use this account: remove them first",
                users.join(", ")
            )));
        }
        let service = Service::parse(&account.kind)
            .ok_or_else(|| ConnectError::BadInput(format!("unknown kind {}", account.kind)))?;
        // Xero's grant is revoked at Xero; HubSpot's app is uninstalled in HubSpot.
        if let (Ok(app), Some(credential)) = (
            self.app(service),
            self.store
                .credential(&Account::credential_owner(id), side_of(service))
                .await?,
        ) {
            if let Some(refresh) = &credential.refresh_token {
                if let Err(err) = oauth::revoke(&self.http, app, refresh).await {
                    tracing::warn!(account = %id, error = %err, "the grant was not revoked");
                }
            }
        }
        self.store
            .save_credential(
                &Account::credential_owner(id),
                side_of(service),
                &Credential {
                    access_token: None,
                    refresh_token: None,
                    expires_at: None,
                    rotated_at: None,
                },
            )
            .await?;
        self.accounts.set_account_state(id, "disconnected").await?;
        self.account(id).await
    }

    /// Makes a pair of two connected accounts and starts syncing it.
    pub async fn create_pair(&self, new: NewPair) -> Result<PairRecord, ConnectError> {
        let valid_name = !new.name.is_empty()
            && new.name.len() <= 64
            && new
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(ConnectError::BadInput(
                "`name` must be 1 to 64 of a-z, 0-9, `-` and `_`".into(),
            ));
        }
        if self.file_pairs.contains(&new.name) {
            return Err(ConnectError::Conflict(format!(
                "the settings file defines a pair named `{}`",
                new.name
            )));
        }
        let crm = self.account(new.crm_account).await?;
        let finance = self.account(new.finance_account).await?;
        if crm.kind != "hubspot" || finance.kind != "xero" {
            return Err(ConnectError::BadInput(
                "`crm_account` must be a HubSpot account and `finance_account` a Xero one".into(),
            ));
        }
        for account in [&crm, &finance] {
            if account.state != "connected" {
                return Err(ConnectError::BadInput(format!(
                    "account {} is {}: connect it again first",
                    account.id, account.state
                )));
            }
        }
        let conflicts: ConflictPolicy = parse(
            new.conflict_policy.as_deref(),
            "conflict_policy",
            "last_write_wins, crm_wins, finance_wins, manual",
        )?
        .unwrap_or_default();
        let deletes: DeletePolicy = parse(
            new.deletes.as_deref(),
            "deletes",
            "archive, approve, ignore",
        )?
        .unwrap_or_default();
        let truth: System = parse(
            new.source_of_truth.as_deref(),
            "source_of_truth",
            "crm, finance",
        )?
        .unwrap_or(System::Finance);
        let text = |v: serde_json::Result<serde_json::Value>| {
            v.ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let now = Utc::now();
        let record = PairRecord {
            name: new.name.clone(),
            crm_account: crm.id,
            finance_account: finance.id,
            conflict_policy: text(serde_json::to_value(conflicts)),
            source_of_truth: text(serde_json::to_value(truth)),
            deletes: text(serde_json::to_value(deletes)),
            poll_interval_secs: new.poll_interval_secs.unwrap_or(60),
            state: "active".into(),
            created_at: now,
            updated_at: now,
        };
        self.accounts.add_pair(&record).await.map_err(|e| match e {
            StoreError::AlreadyLinked(m) => ConnectError::Conflict(m),
            other => other.into(),
        })?;
        self.run(&record, &crm, &finance).await;
        Ok(record)
    }

    /// Runs the pair here: its webhooks are taken (where this process serves HTTP)
    /// and, where it runs workers, its changes synced.
    async fn run(&self, record: &PairRecord, crm: &Account, finance: &Account) {
        let Some(settings) = self.pair_settings(record, crm, finance) else {
            tracing::warn!(
                pair = %record.name,
                "the pair cannot run: both apps must be set ([connect.hubspot] and [connect.xero])"
            );
            return;
        };
        if let Some(intake) = &self.intake {
            intake.open_pair(&record.name, &settings);
        }
        if let Some(host) = &self.host {
            host.start(&record.name, &settings, (crm.id, finance.id))
                .await;
        }
        self.applied(&record.name, "active");
    }

    /// A paused pair keeps taking webhooks: their changes wait with the rest.
    async fn hold(&self, record: &PairRecord) -> Result<(), ConnectError> {
        if let Some(intake) = &self.intake {
            let crm = self.account(record.crm_account).await?;
            let finance = self.account(record.finance_account).await?;
            if let Some(settings) = self.pair_settings(record, &crm, &finance) {
                intake.open_pair(&record.name, &settings);
            }
        }
        if let Some(host) = &self.host {
            host.pause(&record.name);
        }
        self.applied(&record.name, "paused");
        Ok(())
    }

    /// A removed pair stops for good; its webhooks are answered 404.
    fn stop(&self, name: &str) {
        if let Some(intake) = &self.intake {
            intake.close_pair(&crate::domain::PairId::new(name));
        }
        if let Some(host) = &self.host {
            host.remove(name);
        }
        self.applied(name, "removed");
    }

    /// Starts every active pair of the store (at start).
    pub async fn run_stored_pairs(&self) -> Result<usize, ConnectError> {
        let mut started = 0;
        for record in self.accounts.pair_records().await? {
            if record.state == "removed" {
                continue;
            }
            let crm = self.account(record.crm_account).await?;
            let finance = self.account(record.finance_account).await?;
            if record.state == "paused" {
                self.hold(&record).await?;
                continue;
            }
            self.run(&record, &crm, &finance).await;
            started += 1;
        }
        Ok(started)
    }

    /// Brings this process in line with the pairs of the store, which another process
    /// may have made, paused or removed since.
    pub async fn follow_store(&self) -> Result<(), ConnectError> {
        for record in self.accounts.pair_records().await? {
            if self.applied_state(&record.name).as_deref() == Some(record.state.as_str()) {
                continue;
            }
            match record.state.as_str() {
                "active" => {
                    let crm = self.account(record.crm_account).await?;
                    let finance = self.account(record.finance_account).await?;
                    self.run(&record, &crm, &finance).await;
                }
                "paused" => self.hold(&record).await?,
                _ => self.stop(&record.name),
            }
        }
        Ok(())
    }

    /// The state of the pair as this process last put it into effect.
    fn applied_state(&self, name: &str) -> Option<String> {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn applied(&self, name: &str, state: &str) {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), state.to_string());
    }

    pub async fn pairs(&self) -> Result<Vec<PairRecord>, ConnectError> {
        Ok(self.accounts.pair_records().await?)
    }

    pub async fn pair(&self, name: &str) -> Result<PairRecord, ConnectError> {
        self.accounts
            .pair_record(name)
            .await?
            .ok_or_else(|| ConnectError::NotFound(format!("no pair named `{name}` made here")))
    }

    /// The state of each running side: (side, state).
    pub fn sides(&self, name: &str) -> Vec<(System, String)> {
        self.host
            .as_ref()
            .map(|h| {
                h.sides(name)
                    .into_iter()
                    .map(|(s, state)| (s, state.as_str().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `pause`, `resume` or `remove` (its history kept; its name stays taken).
    pub async fn set_pair(&self, name: &str, action: &str) -> Result<PairRecord, ConnectError> {
        let record = self.pair(name).await?;
        if record.state == "removed" {
            return Err(ConnectError::Conflict(format!("pair `{name}` was removed")));
        }
        let state = match action {
            "pause" => "paused",
            "resume" => "active",
            "remove" => "removed",
            _ => {
                return Err(ConnectError::BadInput(
                    "the action must be pause, resume or remove".into(),
                ))
            }
        };
        self.accounts.set_pair_state(name, state).await?;
        match state {
            "active" => {
                let crm = self.account(record.crm_account).await?;
                let finance = self.account(record.finance_account).await?;
                self.run(&record, &crm, &finance).await;
            }
            "paused" => self.hold(&record).await?,
            _ => self.stop(name),
        }
        self.pair(name).await
    }

    /// The webhook URL and secret the person registers for a side of a pair.
    pub fn webhook(
        &self,
        base: Option<&str>,
        pair: &str,
        system: System,
    ) -> (Option<String>, bool) {
        let url = base.map(|b| crate::intake::webhook_url(b, pair, system));
        let service = match system {
            System::Crm => Service::Hubspot,
            System::Finance => Service::Xero,
        };
        let signed = self
            .apps
            .get(service.as_str())
            .is_some_and(|a| service == Service::Hubspot || a.webhook_key.is_some());
        (url, signed)
    }

    /// The settings a pair of accounts runs with, as if the file declared it.
    fn pair_settings(
        &self,
        record: &PairRecord,
        crm: &Account,
        finance: &Account,
    ) -> Option<PairSettings> {
        let hubspot = self.apps.get("hubspot")?;
        let xero = self.apps.get("xero")?;
        let side = |app: &App, kind: ConnectorKind, account: &Account| ConnectionSettings {
            kind,
            base_url: app.api_base_url.clone(),
            token_url: Some(app.token_url.clone()),
            access_token: None,
            client_id: Some(app.client_id.clone()),
            client_secret: Some(app.client_secret.clone()),
            refresh_token: None,
            tenant_id: (kind == ConnectorKind::Xero).then(|| account.external_id.clone()),
            // HubSpot signs an app's deliveries with its client secret; Xero with the
            // app's webhook key (without one, Xero's deliveries are refused).
            webhook_secrets: match kind {
                ConnectorKind::Hubspot => vec![app.client_secret.clone()],
                _ => app.webhook_key.iter().cloned().collect(),
            },
            webhook_signing: WebhookSigning::Native,
            signature_versions: None,
            portal_id: (kind == ConnectorKind::Hubspot)
                .then(|| account.external_id.parse().ok())
                .flatten(),
            customer_object: CustomerObjectSetting::Contacts,
            batch_window_ms: 20,
            rate_limit_share: 1.0,
        };
        let read = |text: &str| serde_json::Value::String(text.to_string());
        Some(PairSettings {
            enabled: true,
            crm: Some(side(hubspot, ConnectorKind::Hubspot, crm)),
            finance: Some(side(xero, ConnectorKind::Xero, finance)),
            poll_interval_secs: record.poll_interval_secs,
            poll_overlap_secs: 30,
            conflict_policy: serde_json::from_value(read(&record.conflict_policy))
                .unwrap_or_default(),
            source_of_truth: serde_json::from_value(read(&record.source_of_truth))
                .unwrap_or(System::Finance),
            deletes: serde_json::from_value(read(&record.deletes)).unwrap_or_default(),
            fields: BTreeMap::new(),
        })
    }
}

fn side_of(service: Service) -> System {
    match service {
        Service::Hubspot => System::Crm,
        Service::Xero => System::Finance,
    }
}
