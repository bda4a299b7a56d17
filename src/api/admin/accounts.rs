//! Accounts connected in the browser: `POST /api/accounts/connect/{kind}` starts the
//! OAuth flow and answers the URL to open; the service sends the browser back to
//! `GET /connect/callback` (outside `/api`: the browser has no admin token, the
//! `state` is what it proves); a Xero grant reaching several organisations waits for
//! `POST /api/accounts/choices/{choice}`. `GET /api/accounts`, `GET
//! /api/accounts/{id}`, `POST /api/accounts/{id}/disconnect`. Tokens never appear.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::http::{header, HeaderMap};
use poem::web::{Data, Query};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::failure::Failure;
use super::{AdminState, ApiError};
use crate::connect::{Completed, Connect, ConnectError, Organisation, Service};
use crate::store::Account;

pub struct AccountsApi {
    pub state: AdminState,
}

#[derive(Debug, Object)]
pub struct AccountView {
    pub id: Uuid,
    /// `hubspot` or `xero`.
    pub kind: String,
    /// HubSpot's hub id, or Xero's tenantId.
    pub account_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// `connected`, `needs_reconnecting` (its credentials were refused: connect it
    /// again; its pairs wait meanwhile) or `disconnected`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct ConnectStarted {
    /// Open this in the browser.
    pub authorize_url: String,
    pub state: String,
}

#[derive(Debug, Object)]
pub struct OrganisationView {
    pub tenant_id: String,
    pub name: Option<String>,
    /// Xero's id of the connection (it changes on each reconnect; the tenant id stays).
    pub connection_id: String,
}

#[derive(Debug, Object)]
pub struct ChoiceBody {
    pub tenant_id: String,
}

#[derive(ApiResponse)]
pub enum StartAnswer {
    #[oai(status = 201)]
    Started(Json<ConnectStarted>),
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    /// The app or the callback URL is not set, or the store does not answer.
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

#[derive(ApiResponse)]
pub enum OfferedAnswer {
    #[oai(status = 200)]
    Found(Json<Vec<OrganisationView>>),
    /// Not a choice Tandem issues (its form).
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    /// The choice is unknown, taken already or older than ten minutes.
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

#[derive(ApiResponse)]
pub enum AccountsAnswer {
    #[oai(status = 200)]
    Found(Json<Vec<AccountView>>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

#[derive(ApiResponse)]
pub enum AccountAnswer {
    #[oai(status = 200)]
    Found(Json<AccountView>),
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    #[oai(status = 409)]
    Conflict(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 502)]
    Refused(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

pub(crate) fn view(connect: &Connect, account: Account) -> AccountView {
    let state = if account.state == "connected" && connect.needs_reconnecting(&account) {
        "needs_reconnecting".to_string()
    } else {
        account.state.clone()
    };
    AccountView {
        id: account.id,
        kind: account.kind,
        account_id: account.external_id,
        name: account.name,
        scopes: account
            .scopes
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        state,
        created_at: account.created_at,
        updated_at: account.updated_at,
    }
}

/// Status and message of a failed step: one mapping for every account and pair
/// endpoint. A store failure takes the admin API's one mapping (503 when the store
/// does not answer, 500 when what it holds is wrong).
pub(crate) fn failure(err: ConnectError) -> (u16, String) {
    match err {
        ConnectError::NotConfigured(m) => (503, m),
        ConnectError::BadInput(m) => (400, m),
        ConnectError::Refused(m) => (502, m),
        ConnectError::NotFound(m) => (404, m),
        ConnectError::Conflict(m) => (409, m),
        ConnectError::Store(e) => match Failure::from(e) {
            Failure::Unavailable(body) => (503, body.0.error),
            Failure::Internal(body) => (500, body.0.error),
        },
    }
}

fn account_answer(connect: &Connect, result: Result<Account, ConnectError>) -> AccountAnswer {
    match result {
        Ok(account) => AccountAnswer::Found(Json(view(connect, account))),
        Err(err) => {
            let (status, message) = failure(err);
            let body = ApiError::new(message);
            match status {
                400 => AccountAnswer::BadRequest(body),
                404 => AccountAnswer::NotFound(body),
                409 => AccountAnswer::Conflict(body),
                502 => AccountAnswer::Refused(body),
                503 => AccountAnswer::Unavailable(body),
                _ => AccountAnswer::Internal(body),
            }
        }
    }
}

pub(crate) const NO_CONNECT: &str =
    "this process does not connect accounts (it runs without the HTTP server's engine)";

fn organisation_views(organisations: Vec<Organisation>) -> Vec<OrganisationView> {
    organisations
        .into_iter()
        .map(|o| OrganisationView {
            tenant_id: o.tenant_id,
            name: o.tenant_name,
            connection_id: o.id,
        })
        .collect()
}

#[OpenApi]
impl AccountsApi {
    /// Starts connecting a HubSpot portal (`hubspot`) or a Xero organisation (`xero`):
    /// open `authorize_url` in a browser within ten minutes. Connecting an account
    /// that is already connected reconnects it (same id).
    #[oai(path = "/accounts/connect/:kind", method = "post")]
    async fn start(&self, kind: Path<String>) -> StartAnswer {
        let Some(connect) = &self.state.connect else {
            return StartAnswer::Unavailable(ApiError::new(NO_CONNECT));
        };
        let Some(service) = Service::parse(&kind.0) else {
            return StartAnswer::BadRequest(ApiError::new("the kind must be `hubspot` or `xero`"));
        };
        match connect.start(service) {
            Ok((state, authorize_url)) => StartAnswer::Started(Json(ConnectStarted {
                authorize_url,
                state,
            })),
            Err(err) => {
                let (status, message) = failure(err);
                if status == 503 {
                    StartAnswer::Unavailable(ApiError::new(message))
                } else {
                    StartAnswer::BadRequest(ApiError::new(message))
                }
            }
        }
    }

    /// Picks the organisation for a Xero grant that reaches several.
    #[oai(path = "/accounts/choices/:choice", method = "post")]
    async fn choose(&self, choice: Path<String>, body: Json<ChoiceBody>) -> AccountAnswer {
        let Some(connect) = &self.state.connect else {
            return AccountAnswer::Unavailable(ApiError::new(NO_CONNECT));
        };
        account_answer(connect, connect.choose(&choice.0, &body.0.tenant_id).await)
    }

    /// The organisations a Xero grant reaches, while it waits for one to be picked.
    #[oai(path = "/accounts/choices/:choice", method = "get")]
    async fn offered(&self, choice: Path<String>) -> OfferedAnswer {
        let Some(connect) = &self.state.connect else {
            return OfferedAnswer::Unavailable(ApiError::new(NO_CONNECT));
        };
        // A choice is 43 characters of URL-safe base64; anything else was not issued.
        let issued = choice.0.len() <= 64
            && !choice.0.is_empty()
            && choice
                .0
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !issued {
            return OfferedAnswer::BadRequest(ApiError::new(
                "`choice` is not one Tandem issued: use the one the callback gave",
            ));
        }
        match connect.organisations_of(&choice.0) {
            Ok(organisations) => OfferedAnswer::Found(Json(organisation_views(organisations))),
            Err(err) => OfferedAnswer::NotFound(ApiError::new(failure(err).1)),
        }
    }

    /// Every connected (or disconnected) account.
    #[oai(path = "/accounts", method = "get")]
    async fn list(&self) -> AccountsAnswer {
        let Some(connect) = &self.state.connect else {
            return AccountsAnswer::Unavailable(ApiError::new(NO_CONNECT));
        };
        match connect.accounts().await {
            Ok(accounts) => AccountsAnswer::Found(Json(
                accounts.into_iter().map(|a| view(connect, a)).collect(),
            )),
            Err(err) => match failure(err) {
                (503, message) => AccountsAnswer::Unavailable(ApiError::new(message)),
                (_, message) => AccountsAnswer::Internal(ApiError::new(message)),
            },
        }
    }

    #[oai(path = "/accounts/:id", method = "get")]
    async fn show(&self, id: Path<Uuid>) -> AccountAnswer {
        let Some(connect) = &self.state.connect else {
            return AccountAnswer::Unavailable(ApiError::new(NO_CONNECT));
        };
        account_answer(connect, connect.account(id.0).await)
    }

    /// Forgets the account's tokens; refused while a pair that is not removed uses it.
    /// A Xero grant is revoked at Xero too; uninstall a HubSpot app in HubSpot.
    #[oai(path = "/accounts/:id/disconnect", method = "post")]
    async fn disconnect(&self, id: Path<Uuid>) -> AccountAnswer {
        let Some(connect) = &self.state.connect else {
            return AccountAnswer::Unavailable(ApiError::new(NO_CONNECT));
        };
        account_answer(connect, connect.disconnect(id.0).await)
    }
}

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

fn json(status: u16, body: serde_json::Value) -> poem::Response {
    poem::Response::builder()
        .status(poem::http::StatusCode::from_u16(status).unwrap_or_default())
        .content_type("application/json")
        .header("Cache-Control", "no-store")
        .body(body.to_string())
}

/// Whether the request is a browser's navigation (it asks for a page), rather than a
/// program's call (which gets the JSON answer).
fn from_a_browser(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Back to the dashboard with what the callback led to in its query: `connected`
/// (the account's id), `choose` (a Xero grant waiting for its organisation) or
/// `connect_error` (what went wrong, in words).
fn to_dashboard(outcome: (&str, &str)) -> poem::Response {
    let query = reqwest::Url::parse_with_params("http://dashboard.invalid/", [outcome])
        .ok()
        .and_then(|url| url.query().map(str::to_string))
        .unwrap_or_default();
    poem::Response::builder()
        .status(poem::http::StatusCode::SEE_OTHER)
        .header(header::LOCATION, format!("/?{query}"))
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

/// `GET /connect/callback`: where HubSpot and Xero send the browser back. A browser
/// is sent on to the dashboard; a program gets JSON.
#[poem::handler]
pub async fn callback(
    query: Query<CallbackQuery>,
    headers: &HeaderMap,
    connect: Data<&Option<Arc<Connect>>>,
) -> poem::Response {
    let answer = answer_callback(query.0, connect.0).await;
    if !from_a_browser(headers) {
        return answer.into_json();
    }
    match answer {
        Callback::Connected(view) => to_dashboard(("connected", &view.id.to_string())),
        Callback::Choose { choice, .. } => to_dashboard(("choose", &choice)),
        Callback::Failed { message, .. } => to_dashboard(("connect_error", &message)),
    }
}

/// What a callback led to, before it is put in the caller's terms.
enum Callback {
    Connected(AccountView),
    Choose {
        choice: String,
        organisations: Vec<OrganisationView>,
    },
    Failed {
        status: u16,
        message: String,
    },
}

impl Callback {
    fn failed(status: u16, message: impl Into<String>) -> Self {
        Callback::Failed {
            status,
            message: message.into(),
        }
    }

    fn into_json(self) -> poem::Response {
        match self {
            Callback::Connected(view) => json(
                200,
                serde_json::json!({ "account": {
                    "id": view.id, "kind": view.kind, "account_id": view.account_id,
                    "name": view.name, "state": view.state, "scopes": view.scopes,
                }}),
            ),
            Callback::Choose {
                choice,
                organisations,
            } => {
                let organisations: Vec<serde_json::Value> = organisations
                    .into_iter()
                    .map(|o| {
                        serde_json::json!({
                            "tenant_id": o.tenant_id, "name": o.name, "connection_id": o.connection_id,
                        })
                    })
                    .collect();
                json(
                    200,
                    serde_json::json!({ "choose_organisation": {
                        "choice": choice,
                        "organisations": organisations,
                        "next": format!("POST /api/accounts/choices/{choice} with {{\"tenant_id\": ...}}"),
                    }}),
                )
            }
            Callback::Failed { status, message } => {
                json(status, serde_json::json!({ "error": message }))
            }
        }
    }
}

async fn answer_callback(query: CallbackQuery, connect: &Option<Arc<Connect>>) -> Callback {
    let Some(connect) = connect else {
        return Callback::failed(503, NO_CONNECT);
    };
    let Some(state) = query.state.as_deref().filter(|s| !s.is_empty()) else {
        return Callback::failed(
            400,
            "the callback carries no `state`: start the connection from Tandem",
        );
    };
    let result = connect
        .complete(state, query.code.as_deref(), query.error.as_deref())
        .await;
    match result {
        Ok(Completed::Account(account)) => Callback::Connected(view(connect, account)),
        Ok(Completed::ChooseOrganisation {
            choice,
            organisations,
        }) => Callback::Choose {
            choice,
            organisations: organisation_views(organisations),
        },
        Err(err) => {
            let (status, message) = failure(err);
            Callback::failed(status, message)
        }
    }
}
