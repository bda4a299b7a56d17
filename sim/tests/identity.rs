//! The simulators as identity servers, over real HTTP: the consent form approved or
//! denied by a plain form POST, the authorization-code grant with PKCE, refresh-token
//! rotation with a grace for the previous token, revocation, Xero's `/connections`
//! and HubSpot's token metadata.

use std::sync::Arc;

use serde_json::Value;
use sim::consent::s256;
use sim::hubspot::{HubSpotSettings, HubSpotSim};
use sim::xero::{XeroSettings, XeroSim};
use sim::Knobs;

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";
const VERIFIER: &str = "a-verifier-of-enough-length-0123456789-abcdefghijklmnop";

async fn serve(endpoint: poem::Route) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The consent answer's redirect, as query pairs.
async fn consent(
    http: &reqwest::Client,
    authorize: &str,
    client_id: &str,
    decision: &str,
) -> Vec<(String, String)> {
    let params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid offline_access accounting.contacts"),
        ("state", "the-state"),
        ("code_challenge", &s256(VERIFIER)),
        ("code_challenge_method", "S256"),
    ];
    let page = http
        .get(authorize)
        .query(&params)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"<form method="post">"#), "{html}");
    assert!(html.contains(r#"value="the-state""#), "{html}");
    let mut form: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| *k != "response_type")
        .copied()
        .collect();
    form.push(("decision", decision));
    let answer = http
        .post(authorize)
        .form(&form)
        .send()
        .await
        .expect("decide");
    assert_eq!(answer.status(), 303);
    let location = answer.headers()["location"].to_str().expect("location");
    assert!(location.starts_with(REDIRECT), "{location}");
    reqwest::Url::parse(location)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn xero_token(
    http: &reqwest::Client,
    base: &str,
    settings: &XeroSettings,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let answer = http
        .post(format!("{base}/connect/token"))
        .basic_auth(&settings.client_id, Some(&settings.client_secret))
        .form(form)
        .send()
        .await
        .expect("token");
    let status = answer.status().as_u16();
    (status, answer.json().await.expect("json"))
}

#[tokio::test]
async fn xero_code_flow_with_pkce_rotation_connections_and_revocation() {
    let settings = XeroSettings::default();
    let sim = XeroSim::new(settings.clone(), Arc::new(Knobs::default()));
    let base = serve(sim.endpoint()).await;
    let http = client();
    let authorize = format!("{base}/identity/connect/authorize");

    let denied = consent(&http, &authorize, &settings.client_id, "deny").await;
    assert_eq!(get(&denied, "error"), Some("access_denied"));
    assert_eq!(get(&denied, "state"), Some("the-state"));
    assert_eq!(get(&denied, "code"), None);

    // A wrong verifier spends the code: the right one cannot use it after.
    let approved = consent(&http, &authorize, &settings.client_id, "allow").await;
    assert_eq!(get(&approved, "state"), Some("the-state"));
    let code = get(&approved, "code").expect("code").to_string();
    let exchange = |verifier: &'static str, code: String| {
        let http = http.clone();
        let base = base.clone();
        let settings = settings.clone();
        async move {
            xero_token(
                &http,
                &base,
                &settings,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", verifier),
                ],
            )
            .await
        }
    };
    let (status, body) = exchange("not-the-verifier", code.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = exchange(VERIFIER, code).await;
    assert_eq!(status, 400, "a code is single-use");

    let code = get(
        &consent(&http, &authorize, &settings.client_id, "allow").await,
        "code",
    )
    .expect("code")
    .to_string();
    let (status, tokens) = exchange(VERIFIER, code.clone()).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, _) = exchange(VERIFIER, code).await;
    assert_eq!(status, 400, "a code is single-use");
    let access = tokens["access_token"].as_str().expect("access").to_string();
    let first_refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();

    let connections: Vec<Value> = http
        .get(format!("{base}/connections"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("connections")
        .json()
        .await
        .expect("json");
    assert_eq!(connections.len(), 2, "{connections:?}");
    assert_eq!(connections[1]["tenantId"], settings.tenant_id.as_str());
    assert_eq!(connections[1]["tenantType"], "ORGANISATION");
    assert_eq!(connections[0]["tenantName"], "Sim Holdings Ltd");
    assert!(connections[0]["id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let unauthorised = http
        .get(format!("{base}/connections"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("connections");
    assert_eq!(unauthorised.status(), 401);

    // Rotation: the new refresh token differs; the previous one still answers it
    // within the grace period.
    let refresh = |token: String| {
        let http = http.clone();
        let base = base.clone();
        let settings = settings.clone();
        async move {
            xero_token(
                &http,
                &base,
                &settings,
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };
    let (status, rotated) = refresh(first_refresh.clone()).await;
    assert_eq!(status, 200);
    let second = rotated["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    assert_ne!(second, first_refresh);
    let (status, again) = refresh(first_refresh.clone()).await;
    assert_eq!(status, 200, "the previous token works within the grace");
    assert_eq!(again["refresh_token"], second.as_str());

    // Revocation ends the grant: its refresh tokens and access tokens.
    let revoked = http
        .post(format!("{base}/connect/revocation"))
        .basic_auth(&settings.client_id, Some(&settings.client_secret))
        .form(&[("token", second.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    let (status, body) = refresh(second).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let after = http
        .get(format!("{base}/connections"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("connections");
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn xero_authorize_refuses_an_unknown_client_without_redirecting() {
    let sim = XeroSim::new(XeroSettings::default(), Arc::new(Knobs::default()));
    let base = serve(sim.endpoint()).await;
    let page = client()
        .get(format!("{base}/identity/connect/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "someone-else"),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 400);
}

#[tokio::test]
async fn hubspot_code_flow_with_verifier_and_token_metadata() {
    let settings = HubSpotSettings::default();
    let sim = HubSpotSim::new(settings.clone(), Arc::new(Knobs::default()));
    let base = serve(sim.endpoint()).await;
    let http = client();
    let code = get(
        &consent(
            &http,
            &format!("{base}/oauth/authorize"),
            &settings.client_id,
            "allow",
        )
        .await,
        "code",
    )
    .expect("code")
    .to_string();
    let token = |verifier: &'static str| {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", settings.client_id.as_str()),
            ("client_secret", settings.client_secret.as_str()),
            ("redirect_uri", REDIRECT),
            ("code", code.as_str()),
            ("code_verifier", verifier),
        ];
        http.post(format!("{base}/oauth/v3/token"))
            .form(&form)
            .send()
    };
    let refused = token("wrong").await.expect("token");
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");

    let code = get(
        &consent(
            &http,
            &format!("{base}/oauth/authorize"),
            &settings.client_id,
            "allow",
        )
        .await,
        "code",
    )
    .expect("code")
    .to_string();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", settings.client_id.as_str()),
        ("client_secret", settings.client_secret.as_str()),
        ("redirect_uri", REDIRECT),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
    ];
    let answer = http
        .post(format!("{base}/oauth/v3/token"))
        .form(&form)
        .send()
        .await
        .expect("token");
    assert_eq!(answer.status(), 200);
    let tokens: Value = answer.json().await.expect("json");
    let access = tokens["access_token"].as_str().expect("access");
    let refresh = tokens["refresh_token"].as_str().expect("refresh");

    let metadata: Value = http
        .post(format!("{base}/oauth/v3/token/introspect"))
        .form(&[
            ("client_id", settings.client_id.as_str()),
            ("client_secret", settings.client_secret.as_str()),
            ("token", access),
        ])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(metadata["active"], true);
    assert_eq!(metadata["hub_id"], settings.portal_id);
    assert!(metadata["scopes"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s == "offline_access")));

    let refreshed = http
        .post(format!("{base}/oauth/v3/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", settings.client_id.as_str()),
            ("client_secret", settings.client_secret.as_str()),
            ("refresh_token", refresh),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(refreshed.status(), 200);
    let unknown: Value = http
        .post(format!("{base}/oauth/v3/token/introspect"))
        .form(&[
            ("client_id", settings.client_id.as_str()),
            ("client_secret", settings.client_secret.as_str()),
            ("token", "never-issued"),
        ])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(unknown["active"], false);
}
