//! The simulated HubSpot over real HTTP: OAuth, batch calls and their 207s, search with
//! paging and its 10,000 cap, associations, rate limits, and signed webhooks that the
//! project's own verifier accepts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Endpoint, EndpointExt, Request, Response};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sim::hubspot::{HubSpotSettings, HubSpotSim};
use sim::{CustomerEdit, CustomerSeed, KnobValues, Knobs};

/// Serves `endpoint` on an ephemeral port; returns its base URL.
async fn serve(endpoint: impl Endpoint + 'static) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let addr = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .expect("socket address");
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    format!("http://{addr}")
}

struct Harness {
    sim: Arc<HubSpotSim>,
    base: String,
    http: reqwest::Client,
    token: String,
}

/// Generous limits unless a test is about them.
fn roomy() -> HubSpotSettings {
    HubSpotSettings {
        per_ten_seconds: 100_000,
        search_per_second: 100_000,
        ..HubSpotSettings::default()
    }
}

async fn start(settings: HubSpotSettings) -> Harness {
    let token = settings.private_app_token.clone();
    let sim = HubSpotSim::new(settings, Arc::new(Knobs::new(KnobValues::default())));
    let base = serve(sim.endpoint()).await;
    Harness {
        sim,
        base,
        http: reqwest::Client::new(),
        token,
    }
}

impl Harness {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call_as(&self.token.clone(), method, path, body).await
    }

    async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("send");
        let status = answer.status();
        let headers = answer.headers().clone();
        let text = answer.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, body)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, body) = self.call(reqwest::Method::POST, path, Some(body)).await;
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.call(reqwest::Method::GET, path, None).await;
        (status, body)
    }

    async fn token(&self, form: &str) -> (StatusCode, Value) {
        let answer = self
            .http
            .post(format!("{}/oauth/v1/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await
            .expect("send");
        let status = answer.status();
        (status, answer.json().await.expect("json"))
    }
}

fn seed(name: &str, email: &str) -> CustomerSeed {
    CustomerSeed {
        name: name.to_string(),
        email: email.to_string(),
        phone: None,
    }
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn oauth_grant_expiry_and_refresh() {
    let h = start(roomy()).await;
    let id = h
        .sim
        .person_creates_customer(&seed("Ada Lovelace", "ada@example.com"));
    let path = format!("/crm/v3/objects/contacts/{id}");

    let (status, body) = h
        .token("grant_type=refresh_token&client_id=sim-hubspot-client&client_secret=sim-hubspot-client-secret&refresh_token=wrong")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "BAD_REFRESH_TOKEN");
    let (status, body) = h
        .token("grant_type=refresh_token&client_id=other&client_secret=sim-hubspot-client-secret&refresh_token=sim-hubspot-refresh-token")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "BAD_CLIENT_ID");
    assert_eq!(h.sim.token_refreshes(), 0);

    let form = "grant_type=refresh_token&client_id=sim-hubspot-client&client_secret=sim-hubspot-client-secret&refresh_token=sim-hubspot-refresh-token";
    let (status, grant) = h.token(form).await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["token_type"], "bearer");
    assert_eq!(grant["expires_in"], 1800);
    assert_eq!(grant["refresh_token"], "sim-hubspot-refresh-token");
    let first = grant["access_token"].as_str().expect("token").to_string();

    let (status, _, body) = h.call_as(&first, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["email"], "ada@example.com");

    h.sim.expire_access_tokens();
    let (status, _, body) = h.call_as(&first, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
    // The private-app token never expires.
    assert_eq!(h.get(&path).await.0, 200);

    let (_, grant) = h.token(form).await;
    let second = grant["access_token"].as_str().expect("token").to_string();
    assert_ne!(first, second);
    let (status, _, _) = h.call_as(&second, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(h.sim.token_refreshes(), 2);

    let (status, _, body) = h
        .call_as("made-up", reqwest::Method::GET, &path, None)
        .await;
    assert_eq!(
        (status, body["category"].clone()),
        (StatusCode::UNAUTHORIZED, json!("EXPIRED_AUTHENTICATION"))
    );
}

#[tokio::test]
async fn access_tokens_expire_after_their_ttl() {
    let h = start(HubSpotSettings {
        access_token_ttl: Duration::from_millis(300),
        ..roomy()
    })
    .await;
    let (_, grant) = h
        .token("grant_type=refresh_token&client_id=sim-hubspot-client&client_secret=sim-hubspot-client-secret&refresh_token=sim-hubspot-refresh-token")
        .await;
    let token = grant["access_token"].as_str().expect("token").to_string();
    let path = "/crm/v3/objects/contacts/1";
    assert_eq!(
        h.call_as(&token, reqwest::Method::GET, path, None).await.0,
        404
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        h.call_as(&token, reqwest::Method::GET, path, None).await.0,
        401
    );
}

#[tokio::test]
async fn batch_create_reports_each_failed_input() {
    let h = start(roomy()).await;
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "a@example.com", "firstname": "A"}, "objectWriteTraceId": "t-a"},
                {"properties": {"email": "not-an-email", "firstname": "B"}, "objectWriteTraceId": "t-b"},
                {"properties": {"email": "c@example.com", "firstname": "C"}, "objectWriteTraceId": "t-c"},
            ]}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["numErrors"], 1);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    // Not in input order: the client must map back by trace id.
    let traces: Vec<&str> = results
        .iter()
        .map(|r| r["objectWriteTraceId"].as_str().expect("trace"))
        .collect();
    assert_eq!(traces, vec!["t-c", "t-a"]);
    assert_eq!(results[1]["properties"]["email"], "a@example.com");
    assert!(results[1]["properties"]["hs_lastmodifieddate"].is_string());
    let error = &body["errors"][0];
    assert_eq!(error["category"], "VALIDATION_ERROR");
    assert_eq!(error["context"]["objectWriteTraceId"], json!(["t-b"]));
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("INVALID_EMAIL")
            && message.contains("Email address not-an-email is invalid"),
        "{message}"
    );
    let a_id = results[1]["id"].as_str().expect("id").to_string();

    // The same email again (in another case) conflicts with the live contact.
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "A@example.com"}, "objectWriteTraceId": "dup"},
                {"properties": {"email": "d@example.com", "no_such_thing": "x"}, "objectWriteTraceId": "unknown"},
            ]}),
        )
        .await;
    assert_eq!(status, 207);
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["category"], "CONFLICT");
    assert_eq!(
        errors[0]["message"],
        format!("Contact already exists. Existing ID: {a_id}")
    );
    assert_eq!(errors[0]["context"]["objectWriteTraceId"], json!(["dup"]));
    assert!(errors[1]["message"]
        .as_str()
        .expect("message")
        .contains("PROPERTY_DOESNT_EXIST"));

    // All good: 201.
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [{"properties": {"email": "e@example.com"}, "objectWriteTraceId": "e"}]}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(body.get("errors").is_none());
    assert!(body["startedAt"].is_string() && body["completedAt"].is_string());

    // More than 100 inputs: the whole call is refused.
    let inputs: Vec<Value> = (0..101)
        .map(|i| json!({"properties": {"firstname": format!("n{i}")}}))
        .collect();
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn batch_read_and_update() {
    let h = start(roomy()).await;
    let ids: Vec<String> = (0..3)
        .map(|i| {
            h.sim.person_creates_customer(&seed(
                &format!("P{i} Person"),
                &format!("p{i}@example.com"),
            ))
        })
        .collect();
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"properties": ["email"], "inputs": [{"id": ids[0]}, {"id": "999999"}, {"id": ids[2]}], "archived": false}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    let got: Vec<&str> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[0].as_str()]);
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["999999"]));
    // Only the asked-for properties plus the default three.
    let props = body["results"][0]["properties"]
        .as_object()
        .expect("properties");
    let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["createdate", "email", "hs_lastmodifieddate", "hs_object_id"]
    );

    let before = h.sim.customers()[1].updated_ms;
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": ids[1], "properties": {"phone": "+64 1", "tandem_origin_id": "X-1"}, "objectWriteTraceId": "u1"},
                {"id": "424242", "properties": {"phone": "1"}, "objectWriteTraceId": "u2"},
                {"id": ids[2], "properties": {"email": "bad"}, "objectWriteTraceId": "u3"},
            ]}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["results"].as_array().expect("results").len(), 1);
    assert_eq!(body["results"][0]["properties"]["tandem_origin_id"], "X-1");
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["424242"]));
    assert_eq!(
        body["errors"][1]["context"]["objectWriteTraceId"],
        json!(["u3"])
    );
    let after = &h.sim.customers()[1];
    assert!(after.updated_ms > before);
    assert_eq!(after.stamp.as_deref(), Some("X-1"));

    // Clearing with "" removes the property.
    let (status, _) = h
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": ids[1], "properties": {"phone": ""}}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(h.sim.customers()[1].phone, None);
}

#[tokio::test]
async fn search_pages_changes_since() {
    let h = start(roomy()).await;
    let since = chrono::Utc::now().timestamp_millis();
    for i in 0..250 {
        h.sim
            .person_creates_customer(&seed(&format!("C{i} Many"), &format!("c{i}@example.com")));
    }
    let mut after: Option<String> = None;
    let mut pages = 0;
    let mut seen = Vec::new();
    loop {
        let mut body = json!({
            "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since.to_string()}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["email"],
            "limit": 100,
        });
        if let Some(after) = &after {
            body["after"] = json!(after);
        }
        let (status, answer) = h.post("/crm/v3/objects/contacts/search", body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["total"], 250);
        pages += 1;
        for result in answer["results"].as_array().expect("results") {
            seen.push(
                result["properties"]["hs_lastmodifieddate"]
                    .as_str()
                    .expect("date")
                    .to_string(),
            );
        }
        match answer["paging"]["next"]["after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "sorted by hs_lastmodifieddate"
    );

    // One edit later, only that contact is newer; RFC 3339 works as the value too.
    let edited = h.sim.customers()[17].clone();
    std::thread::sleep(Duration::from_millis(2));
    h.sim.person_edits_customer(
        &edited.id,
        &CustomerEdit {
            name: Some("Renamed Person".into()),
            phone: None,
        },
    );
    let newer = h.sim.customers()[17].updated_ms;
    assert!(newer > edited.updated_ms);
    let stamp = chrono::DateTime::from_timestamp_millis(newer)
        .expect("time")
        .to_rfc3339();
    let (status, answer) = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": stamp}]}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["total"], 1);
    assert_eq!(answer["results"][0]["id"], json!(edited.id));
    assert_eq!(answer["results"][0]["properties"]["firstname"], "Renamed");
    assert!(answer.get("paging").is_none());

    // Archived objects never appear.
    h.sim.person_archives_customer(&edited.id);
    let (_, answer) = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since}]}], "limit": 1}),
        )
        .await;
    assert_eq!(answer["total"], 249);
}

#[tokio::test]
async fn search_stops_at_ten_thousand() {
    let h = start(roomy()).await;
    for i in 0..10_050 {
        h.sim
            .person_creates_customer(&seed(&format!("N{i}"), &format!("n{i}@example.com")));
    }
    let mut after = 0usize;
    let mut pages = 0;
    let refusal = loop {
        let (status, answer) = h
            .post(
                "/crm/v3/objects/contacts/search",
                json!({"limit": 200, "after": after.to_string(), "properties": ["email"]}),
            )
            .await;
        if status != 200 {
            break (status, answer);
        }
        pages += 1;
        assert_eq!(answer["total"], 10_050);
        after = answer["paging"]["next"]["after"]
            .as_str()
            .expect("more pages")
            .parse()
            .expect("offset");
    };
    assert_eq!(pages, 50);
    assert_eq!(after, 10_000);
    assert_eq!(refusal.0, 400);
    assert_eq!(refusal.1["status"], "error");
    assert_eq!(refusal.1["category"], "VALIDATION_ERROR");
    assert!(refusal.1["message"]
        .as_str()
        .expect("message")
        .contains("10000"));
    // A smaller last page within the cap still works.
    let (status, _) = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"limit": 100, "after": "9900"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = h
        .post("/crm/v3/objects/contacts/search", json!({"limit": 201}))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn search_ors_filter_groups() {
    let h = start(roomy()).await;
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "x@example.com", "tandem_origin_id": "S1"}, "objectWriteTraceId": "1"},
                {"properties": {"email": "y@example.com", "tandem_origin_id": "S2"}, "objectWriteTraceId": "2"},
                {"properties": {"email": "z@example.com", "tandem_origin_id": "S3"}, "objectWriteTraceId": "3"},
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, answer) = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({
                "filterGroups": [
                    {"filters": [{"propertyName": "tandem_origin_id", "operator": "EQ", "value": "S1"}]},
                    {"filters": [{"propertyName": "email", "operator": "EQ", "value": "Y@Example.com"}]},
                ],
                "properties": ["email", "tandem_origin_id"],
            }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["total"], 2);
    let mut emails: Vec<&str> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["properties"]["email"].as_str().expect("email"))
        .collect();
    emails.sort();
    assert_eq!(emails, vec!["x@example.com", "y@example.com"]);
    // Filters inside a group are ANDed.
    let (_, answer) = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [
                {"propertyName": "tandem_origin_id", "operator": "EQ", "value": "S1"},
                {"propertyName": "email", "operator": "EQ", "value": "y@example.com"},
            ]}]}),
        )
        .await;
    assert_eq!(answer["total"], 0);
    let (_, answer) = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "tandem_origin_id", "operator": "HAS_PROPERTY"}, {"propertyName": "tandem_origin_id", "operator": "NEQ", "value": "S2"}]}]}),
        )
        .await;
    assert_eq!(answer["total"], 2);
}

/// As HubSpot writes a timestamp: RFC 3339, milliseconds, `Z`.
fn at(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test]
async fn property_history_on_reads() {
    let h = start(roomy()).await;
    let app_id = h.sim.settings().app_id.to_string();
    let id = h.sim.person_creates_customer(&CustomerSeed {
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        phone: Some("+44 1".into()),
    });
    let created = h.sim.customers()[0].updated_ms;
    tokio::time::sleep(Duration::from_millis(5)).await;
    h.sim.person_edits_customer(
        &id,
        &CustomerEdit {
            name: None,
            phone: Some("+44 2".into()),
        },
    );
    let phoned = h.sim.customers()[0].updated_ms;
    tokio::time::sleep(Duration::from_millis(5)).await;
    // An app writes the last name, and the phone to the value it already has.
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": id, "properties": {"lastname": "King", "phone": "+44 2"}}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["results"][0].get("propertiesWithHistory").is_none(),
        "writes answer no history: {body}"
    );
    let renamed = h.sim.customers()[0].updated_ms;
    assert!(created < phoned && phoned < renamed);

    let (status, object) = h
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?properties=phone&propertiesWithHistory=phone,lastname,firstname,no_such_property"
        ))
        .await;
    assert_eq!(status, 200, "{object}");
    let history = &object["propertiesWithHistory"];
    // Newest first; each value at the `hs_lastmodifieddate` its write gave the object;
    // a write of the same value is no change and leaves no entry.
    assert_eq!(
        history["phone"],
        json!([
            {"value": "+44 2", "timestamp": at(phoned), "sourceType": "CRM_UI",
             "sourceId": "userId:9100001", "updatedByUserId": 9_100_001},
            {"value": "+44 1", "timestamp": at(created), "sourceType": "CRM_UI",
             "sourceId": "userId:9100001", "updatedByUserId": 9_100_001},
        ])
    );
    // An app's write names the app, and no user.
    assert_eq!(
        history["lastname"][0],
        json!({"value": "King", "timestamp": at(renamed), "sourceType": "INTEGRATION", "sourceId": app_id})
    );
    assert_eq!(history["lastname"][1]["value"], "Lovelace");
    assert_eq!(history["firstname"].as_array().map(Vec::len), Some(1));
    assert!(history.get("no_such_property").is_none(), "{history}");
    assert_eq!(object["properties"]["hs_lastmodifieddate"], at(renamed));

    // Batch read answers the same; a read that asks for none answers none.
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"properties": ["phone"], "propertiesWithHistory": ["phone"], "inputs": [{"id": id}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["propertiesWithHistory"]["phone"],
        history["phone"]
    );
    let (_, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"properties": ["phone"], "inputs": [{"id": id}]}),
        )
        .await;
    assert!(body["results"][0].get("propertiesWithHistory").is_none());
    let (_, plain) = h
        .get(&format!("/crm/v3/objects/contacts/{id}?properties=phone"))
        .await;
    assert!(plain.get("propertiesWithHistory").is_none());

    // A cleared property's history ends in an empty value.
    let (status, _) = h
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": id, "properties": {"phone": ""}}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, object) = h
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?propertiesWithHistory=phone"
        ))
        .await;
    assert_eq!(object["propertiesWithHistory"]["phone"][0]["value"], "");
    assert_eq!(
        object["propertiesWithHistory"]["phone"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );

    // Search does not answer history (HubSpot's search has no such option).
    let (status, found) = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "ada@example.com"}]}],
                   "properties": ["phone"], "propertiesWithHistory": ["phone"]}),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["total"], 1);
    assert!(found["results"][0].get("propertiesWithHistory").is_none());
}

#[tokio::test]
async fn property_history_keeps_the_last_twenty_values() {
    let h = start(roomy()).await;
    let id = h
        .sim
        .person_creates_customer(&seed("Ada Lovelace", "ada@example.com"));
    for n in 0..25 {
        h.sim.person_edits_customer(
            &id,
            &CustomerEdit {
                name: None,
                phone: Some(format!("+44 {n}")),
            },
        );
    }
    let (_, object) = h
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?propertiesWithHistory=phone"
        ))
        .await;
    let phone = object["propertiesWithHistory"]["phone"]
        .as_array()
        .expect("history");
    assert_eq!(phone.len(), 20);
    assert_eq!(phone[0]["value"], "+44 24");
    assert_eq!(phone[19]["value"], "+44 5");
    assert_eq!(
        phone[0]["timestamp"],
        object["properties"]["hs_lastmodifieddate"]
    );
}

#[tokio::test]
async fn a_batch_read_with_history_takes_fifty_inputs() {
    let h = start(roomy()).await;
    let inputs: Vec<Value> = (0..51)
        .map(|n| {
            json!({"id": h.sim.person_creates_customer(&seed(&format!("P{n} Person"), &format!("p{n}@example.com")))})
        })
        .collect();
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"properties": ["email"], "propertiesWithHistory": ["email"], "inputs": inputs}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(
        body["message"],
        "The maximum number of inputs supported in a batch request for property histories is 50. Please reduce the number of items and try again"
    );
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"properties": ["email"], "propertiesWithHistory": ["email"], "inputs": inputs[..50]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(50));
    // Without history, a hundred is the limit.
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"properties": ["email"], "inputs": inputs}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(51));
}

#[tokio::test]
async fn deals_with_associations() {
    let h = start(roomy()).await;
    let customer = h
        .sim
        .person_creates_customer(&seed("Grace Hopper", "grace@example.com"));
    let deal = h.sim.person_wins_deal(
        &customer,
        "Compilers",
        &[
            (
                "Consulting".to_string(),
                Decimal::new(2, 0),
                Decimal::new(15050, 2),
            ),
            (
                "Licence".to_string(),
                Decimal::new(1, 0),
                Decimal::new(100, 0),
            ),
        ],
    );
    let (status, body) = h
        .get(&format!("/crm/v3/objects/deals/{deal}?properties=dealname,amount,dealstage&associations=contacts,line_items"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["amount"], "401");
    assert_eq!(body["properties"]["dealstage"], "closedwon");
    assert_eq!(
        body["associations"]["contacts"]["results"],
        json!([{"id": customer, "type": "deal_to_contact"}])
    );
    let lines = body["associations"]["line_items"]["results"]
        .as_array()
        .expect("line items");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "deal_to_line_item");
    let (_, line) = h
        .get(&format!(
            "/crm/v3/objects/line_items/{}?properties=name,quantity,price",
            lines[0]["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(line["properties"]["price"], "150.5");
    // The v4 association batch read: each deal's associated ids; a missing deal is
    // reported in a 207 error.
    let (status, body) = h
        .post(
            "/crm/v4/associations/deals/line_items/batch/read",
            json!({"inputs": [{"id": deal}, {"id": "987654321"}]}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["results"][0]["from"]["id"], json!(deal));
    let to: Vec<&str> = body["results"][0]["to"]
        .as_array()
        .expect("to")
        .iter()
        .filter_map(|t| t["toObjectId"].as_str())
        .collect();
    let listed: Vec<&str> = lines.iter().filter_map(|l| l["id"].as_str()).collect();
    assert_eq!(to, listed);
    assert_eq!(
        body["results"][0]["to"][0]["associationTypes"][0]["typeId"],
        19
    );
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["987654321"]));
    let (status, body) = h
        .post(
            "/crm/v4/associations/deals/contacts/batch/read",
            json!({"inputs": [{"id": deal}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["to"][0]["toObjectId"], json!(customer));
    assert_eq!(
        body["results"][0]["to"][0]["associationTypes"][0]["typeId"],
        3
    );

    // `properties` may also repeat instead of being a comma list.
    let (_, body) = h
        .get(&format!(
            "/crm/v3/objects/deals/{deal}?properties=dealname&properties=amount"
        ))
        .await;
    assert_eq!(body["properties"]["dealname"], "Compilers");
    assert_eq!(body["properties"]["amount"], "401");
    assert!(body["properties"].get("pipeline").is_none());

    // The API's way: line items first, then the deal associated with them and the contact.
    let (status, body) = h
        .post("/crm/v3/objects/line_items/batch/create", json!({"inputs": [{"properties": {"name": "Widget", "quantity": "3", "price": "10"}, "objectWriteTraceId": "l1"}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let line_id = body["results"][0]["id"].as_str().expect("id").to_string();
    let (status, body) = h
        .post(
            "/crm/v3/objects/deals/batch/create",
            json!({"inputs": [{
                "properties": {"dealname": "INV-1", "dealstage": "closedwon", "amount": "30", "tandem_origin_id": "X-INV-1", "tandem_invoice_status": "authorised"},
                "objectWriteTraceId": "d1",
                "associations": [
                    {"to": {"id": customer}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]},
                    {"to": {"id": line_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 19}]},
                ],
            }, {
                "properties": {"dealname": "bad"},
                "objectWriteTraceId": "d2",
                "associations": [{"to": {"id": "987654321"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}],
            }]}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(
        body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["d2"])
    );
    let api_deal = body["results"][0]["id"].as_str().expect("id").to_string();
    let (_, body) = h
        .get(&format!(
            "/crm/v3/objects/deals/{api_deal}?associations=contacts,line_items,companies"
        ))
        .await;
    assert_eq!(
        body["associations"]["contacts"]["results"][0]["id"],
        json!(customer)
    );
    assert_eq!(
        body["associations"]["line_items"]["results"][0]["id"],
        json!(line_id)
    );
    assert!(body["associations"].get("companies").is_none());
    let (_, body) = h
        .get(&format!(
            "/crm/v3/objects/line_items/{line_id}?associations=deals"
        ))
        .await;
    assert_eq!(
        body["associations"]["deals"]["results"][0]["type"],
        "line_item_to_deal"
    );

    let invoices = h.sim.invoices();
    assert_eq!(invoices.len(), 2);
    assert_eq!(invoices[1].stamp.as_deref(), Some("X-INV-1"));
    assert_eq!(invoices[1].customer.as_deref(), Some(customer.as_str()));
    assert_eq!(invoices[1].status.as_deref(), Some("authorised"));
    assert_eq!(invoices[0].total.as_deref(), Some("401"));

    // Archive: 204, then 404, and readable with archived=true.
    let (status, _, _) = h
        .call(
            reqwest::Method::DELETE,
            &format!("/crm/v3/objects/deals/{api_deal}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = h.get(&format!("/crm/v3/objects/deals/{api_deal}")).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"status": "error", "message": "Object not found. objectId are usually numeric.", "category": "OBJECT_NOT_FOUND"})
    );
    let (status, body) = h
        .get(&format!("/crm/v3/objects/deals/{api_deal}?archived=true"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["archived"], true);
    let (status, _, _) = h
        .call(
            reqwest::Method::DELETE,
            &format!("/crm/v3/objects/deals/{api_deal}"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // The control routes answer the views.
    let views: Value = h
        .http
        .get(format!("{}/sim/hubspot/invoices", h.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(views.as_array().expect("views").len(), 2);
    let views: Value = h
        .http
        .get(format!("{}/sim/hubspot/customers", h.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(views[0]["name"], "Grace Hopper");
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers() {
    let h = start(HubSpotSettings {
        per_ten_seconds: 5,
        search_per_second: 2,
        ..HubSpotSettings::default()
    })
    .await;
    let id = h
        .sim
        .person_creates_customer(&seed("Rate Limited", "r@example.com"));
    let path = format!("/crm/v3/objects/contacts/{id}");
    for expected in (0..5).rev() {
        let (status, headers, _) = h.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-hubspot-ratelimit-max"), "5");
        assert_eq!(
            header(&headers, "x-hubspot-ratelimit-remaining"),
            expected.to_string()
        );
        assert_eq!(
            header(&headers, "x-hubspot-ratelimit-interval-milliseconds"),
            "10000"
        );
        assert_eq!(header(&headers, "x-hubspot-ratelimit-daily"), "250000");
        assert!(!header(&headers, "x-hubspot-ratelimit-daily-remaining").is_empty());
    }
    let (status, headers, body) = h.call(reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 429);
    let retry: u64 = header(&headers, "retry-after")
        .parse()
        .expect("Retry-After");
    assert!((1..=10).contains(&retry));
    assert_eq!(body["category"], "RATE_LIMITS");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(
        body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(h.sim.refused_429(), 1);

    // Search has its own per-second limit.
    for _ in 0..2 {
        assert_eq!(
            h.post("/crm/v3/objects/contacts/search", json!({})).await.0,
            200
        );
    }
    let (status, headers, body) = h
        .call(
            reqwest::Method::POST,
            "/crm/v3/objects/contacts/search",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "SECONDLY");
    assert_eq!(header(&headers, "retry-after"), "1");

    // The token endpoint is not limited.
    let (status, _) = h
        .token("grant_type=refresh_token&client_id=sim-hubspot-client&client_secret=sim-hubspot-client-secret&refresh_token=sim-hubspot-refresh-token")
        .await;
    assert_eq!(status, 200);

    let statuses: Vec<u16> = h.sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        vec![200, 200, 200, 200, 200, 429, 200, 200, 429, 200]
    );
    assert!(h.sim.calls().iter().all(|c| c.finished >= c.at));
}

#[tokio::test]
async fn forced_429_and_knobs() {
    let knobs = Arc::new(Knobs::new(KnobValues::default()));
    let sim = HubSpotSim::new(roomy(), knobs.clone());
    let base = serve(sim.endpoint()).await;
    let http = reqwest::Client::new();
    let get = || {
        http.get(format!("{base}/crm/v3/objects/contacts/1"))
            .bearer_auth("sim-hubspot-private-app-token")
            .send()
    };

    sim.force_429_next(Duration::from_millis(2500));
    let answer = get().await.expect("send");
    assert_eq!(answer.status(), 429);
    assert_eq!(answer.headers()["retry-after"], "3");
    assert_eq!(get().await.expect("send").status(), 404);

    knobs.set(KnobValues {
        error_rate: 1.0,
        ..KnobValues::default()
    });
    let status = get().await.expect("send").status().as_u16();
    assert!(status == 502 || status == 503);
    knobs.set(KnobValues {
        rate_limit_rate: 1.0,
        ..KnobValues::default()
    });
    assert_eq!(get().await.expect("send").status(), 429);
    assert_eq!(sim.refused_429(), 2);
    let calls = sim.calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[0].path, "/crm/v3/objects/contacts/1");
}

/// One request the test's webhook receiver got: its headers and body.
type Delivered = (Vec<(String, String)>, Vec<u8>);

/// What the test's webhook receiver got.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Delivered>>>);

#[tokio::test]
async fn webhooks_verify_with_the_project_verifier() {
    let received = Received::default();
    let sink = received.clone();
    let receiver = poem::endpoint::make(move |req: Request| {
        let sink = sink.clone();
        async move {
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        v.to_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            let body = req.into_body().into_vec().await.unwrap_or_default();
            sink.0.lock().expect("lock").push((headers, body));
            Response::builder()
                .status(poem::http::StatusCode::NO_CONTENT)
                .finish()
        }
    });
    let hook_base = serve(receiver.map_to_response()).await;
    let url = format!("{hook_base}/webhooks/hubspot/main?via=sim");

    let settings = roomy();
    let secret = settings.client_secret.clone();
    let h = start(settings).await;
    h.sim.outbox().set_target(Some(url.clone()));

    let contact = h
        .sim
        .person_creates_customer(&seed("Hedy Lamarr", "hedy@example.com"));
    let (status, _) = h
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": contact, "properties": {"phone": "555", "email": "hedy@example.com"}}]}),
        )
        .await;
    assert_eq!(status, 200);
    h.sim.person_wins_deal(
        &contact,
        "Radio",
        &[("Patent".into(), Decimal::ONE, Decimal::TEN)],
    );
    h.sim.person_archives_customer(&contact);
    h.sim.outbox().flush().await;

    let deliveries = received.0.lock().expect("lock").clone();
    assert_eq!(deliveries.len(), 1);
    let (headers, body) = &deliveries[0];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(find("x-hubspot-signature-version"), Some("v3"));
    let secrets = [webhooks::WebhookSecret::from(secret.as_str())];
    let signed = webhooks::hubspot::SignedRequest {
        method: "POST",
        uri: &url,
        body,
    };
    let signature_headers = webhooks::hubspot::SignatureHeaders {
        v3_signature: find(webhooks::hubspot::SIGNATURE_V3_HEADER),
        v3_timestamp: find(webhooks::hubspot::TIMESTAMP_HEADER),
        signature: find(webhooks::hubspot::SIGNATURE_HEADER),
        version: find(webhooks::hubspot::VERSION_HEADER),
    };
    let now = chrono::Utc::now().timestamp_millis();
    webhooks::hubspot::verify(signed, signature_headers, &secrets, now)
        .expect("the delivery verifies");
    let wrong = [webhooks::WebhookSecret::from("another-secret")];
    assert!(webhooks::hubspot::verify(signed, signature_headers, &wrong, now).is_err());
    let changes = webhooks::hubspot::parse(body).expect("parses");

    let events: Vec<Value> = serde_json::from_slice(body).expect("json");
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["subscriptionType"].as_str().expect("type"),
                e["changeSource"].as_str().expect("source"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("contact.creation", "CRM_UI"),
            ("contact.propertyChange", "INTEGRATION"),
            ("deal.creation", "CRM_UI"),
            ("contact.deletion", "CRM_UI"),
        ]
    );
    assert_eq!(changes.len(), 4);
    let change = &events[1];
    assert_eq!(change["propertyName"], "phone");
    assert_eq!(change["propertyValue"], "555");
    assert_eq!(
        change["objectId"],
        json!(contact.parse::<u64>().expect("numeric id"))
    );
    assert_eq!(change["portalId"], 62515);
    assert_eq!(change["attemptNumber"], 0);
    assert!(events
        .windows(2)
        .all(|w| w[0]["eventId"].as_u64() < w[1]["eventId"].as_u64()));
}

#[tokio::test]
async fn objects_are_listed_a_page_at_a_time_and_an_outage_answers_503() {
    let knobs = Arc::new(Knobs::new(KnobValues::default()));
    let sim = HubSpotSim::new(roomy(), knobs.clone());
    let h = Harness {
        base: serve(sim.endpoint()).await,
        sim,
        http: reqwest::Client::new(),
        token: HubSpotSettings::default().private_app_token,
    };
    for n in 0..3 {
        h.sim
            .person_creates_customer(&seed(&format!("P {n}"), &format!("p{n}@example.com")));
    }
    let (status, first) = h.get("/crm/v3/objects/contacts?limit=2").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["results"].as_array().map(Vec::len), Some(2));
    let after = first["paging"]["next"]["after"]
        .as_str()
        .expect("a next page");
    let (_, second) = h
        .get(&format!("/crm/v3/objects/contacts?limit=2&after={after}"))
        .await;
    assert_eq!(second["results"].as_array().map(Vec::len), Some(1));
    assert!(second.get("paging").is_none(), "{second}");
    let (status, _) = h.get("/crm/v3/objects/contacts?limit=0").await;
    assert_eq!(status, 400);

    knobs.update(|k| k.hubspot_down = true);
    let (status, _) = h.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(status, 503);
    knobs.update(|k| k.hubspot_down = false);
    let (status, _) = h.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(status, 200);
}
