//! The simulated Xero over real HTTP: OAuth grants and rotation, batch writes with
//! per-item validation, idempotency keys, change polling with paging, `where` finds,
//! rate limits and their headers, locked invoices, and signed webhooks that the
//! project's verifier accepts.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{json, Value};
use sim::xero::{XeroSettings, XeroSim};
use sim::{CustomerEdit, CustomerSeed, Knobs};

struct Harness {
    sim: Arc<XeroSim>,
    base: String,
    http: reqwest::Client,
    access: String,
}

async fn serve(endpoint: poem::Route) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    format!("http://{addr}")
}

fn basic(settings: &XeroSettings) -> String {
    use base64::Engine as _;
    let pair = format!("{}:{}", settings.client_id, settings.client_secret);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

impl Harness {
    async fn start(settings: XeroSettings) -> Self {
        Self::start_with(settings, Arc::new(Knobs::default())).await
    }

    /// Starts a simulator and takes a first access token.
    async fn start_with(settings: XeroSettings, knobs: Arc<Knobs>) -> Self {
        let sim = XeroSim::new(settings, knobs);
        let base = serve(sim.endpoint()).await;
        let mut h = Self {
            sim,
            base,
            http: reqwest::Client::new(),
            access: String::new(),
        };
        let refresh = h.sim.settings().refresh_token.clone();
        let (status, body) = h.grant(&refresh).await;
        assert_eq!(status, 200, "{body}");
        h.access = body["access_token"].as_str().expect("token").to_string();
        h
    }

    async fn grant(&self, refresh: &str) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}/connect/token", self.base))
            .header("authorization", basic(self.sim.settings()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=refresh_token&refresh_token={refresh}"))
            .send()
            .await
            .expect("send");
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("json"))
    }

    fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api.xro/2.0{path}", self.base))
            .bearer_auth(&self.access)
            .header("xero-tenant-id", &self.sim.settings().tenant_id)
            .header("accept", "application/json")
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let answer = request.send().await.expect("send");
        let status = answer.status().as_u16();
        let headers = answer.headers().clone();
        let text = answer.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    async fn put_contacts(&self, contacts: Value) -> (u16, Value) {
        let (status, _, body) = self
            .call(
                self.api(reqwest::Method::PUT, "/Contacts?summarizeErrors=false")
                    .json(&json!({ "Contacts": contacts })),
            )
            .await;
        (status, body)
    }
}

fn roomy() -> XeroSettings {
    XeroSettings {
        per_minute: 10_000,
        per_day: 100_000,
        concurrency: 50,
        ..XeroSettings::default()
    }
}

#[tokio::test]
async fn tokens_rotate_and_expire() {
    let h = Harness::start(roomy()).await;
    let first = h.sim.settings().refresh_token.clone();
    assert_eq!(h.sim.token_refreshes(), 1);

    let (status, _, _) = h.call(h.api(reqwest::Method::GET, "/Contacts")).await;
    assert_eq!(status, 200);

    // The first grant answered a new refresh token; using it retires the first one.
    let (_, second) = h.grant(&first).await; // still in its grace period
    let second = second["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    assert_ne!(second, first);
    let (status, third) = h.grant(&second).await;
    assert_eq!(status, 200);
    assert_eq!(third["token_type"], "Bearer");
    assert_eq!(third["expires_in"], 1800);
    assert!(third["scope"].as_str().is_some());
    let third = third["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let (status, body) = h.grant(&first).await;
    assert_eq!((status, body), (400, json!({"error": "invalid_grant"})));
    // `second` was replaced but its successor is unused yet: the grace answers it.
    let (status, again) = h.grant(&second).await;
    assert_eq!(status, 200);
    assert_eq!(again["refresh_token"], third.as_str());

    // Strict rotation: a used token is refused at once.
    h.sim.set_refresh_grace(Duration::ZERO);
    let (status, _) = h.grant(&third).await;
    assert_eq!(status, 200);
    let (status, body) = h.grant(&third).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_grant"))
    );
    assert_eq!(h.sim.token_refreshes(), 5);

    // The wrong client is refused whatever the token.
    let answer = h
        .http
        .post(format!("{}/connect/token", h.base))
        .basic_auth("someone-else", Some("nope"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .expect("send");
    assert_eq!(answer.status().as_u16(), 401);
    assert_eq!(
        answer.json::<Value>().await.expect("json")["error"],
        "invalid_client"
    );

    // Wrong tenant, then an expired token.
    let (status, _, _) = h
        .call(
            h.http
                .get(format!("{}/api.xro/2.0/Contacts", h.base))
                .bearer_auth(&h.access)
                .header("xero-tenant-id", "another-tenant"),
        )
        .await;
    assert_eq!(status, 403);
    h.sim.expire_access_tokens();
    let (status, _, body) = h.call(h.api(reqwest::Method::GET, "/Contacts")).await;
    assert_eq!(status, 401);
    assert_eq!(body["Title"], "Unauthorized");
    assert!(body["Detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("TokenExpired: token expired at")));
}

#[tokio::test]
async fn batch_create_refuses_only_the_invalid_item() {
    let h = Harness::start(roomy()).await;
    let (status, body) = h
        .put_contacts(json!([
            {"Name": "Ada", "EmailAddress": "ada@example.com", "ContactNumber": "S1",
             "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "555"}]},
            {"Name": "Bob", "EmailAddress": "not-an-email"},
            {"Name": "Cy", "EmailAddress": "cy@example.com"},
        ]))
        .await;
    assert_eq!(status, 200, "{body}");
    let items = body["Contacts"].as_array().expect("contacts");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["HasValidationErrors"], false);
    assert_eq!(items[0]["ContactStatus"], "ACTIVE");
    assert!(items[0]["UpdatedDateUTC"]
        .as_str()
        .is_some_and(|d| d.starts_with("/Date(") && d.ends_with("+0000)/")));
    assert_eq!(items[1]["HasValidationErrors"], true);
    assert_eq!(
        items[1]["ValidationErrors"][0]["Message"],
        "Email address must be valid."
    );
    assert_eq!(h.sim.customers().len(), 2);
    let ada = h
        .sim
        .customers()
        .into_iter()
        .find(|c| c.stamp.as_deref() == Some("S1"));
    assert_eq!(ada.and_then(|c| c.phone), Some("555".to_string()));

    // Without summarizeErrors=false one bad item refuses the whole batch.
    let (status, _, body) = h
        .call(
            h.api(reqwest::Method::PUT, "/Contacts")
                .json(&json!({"Contacts": [{"Name": "Dee"}, {"Name": "Ada"}]})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["Type"], "ValidationException");
    assert_eq!(body["ErrorNumber"], 10);
    let message = body["Elements"][0]["ValidationErrors"][0]["Message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("must be unique across all active contacts"),
        "{message}"
    );
    assert_eq!(h.sim.customers().len(), 2);

    // More than 50 items is refused.
    let many: Vec<Value> = (0..51).map(|i| json!({"Name": format!("N{i}")})).collect();
    let (status, _) = h.put_contacts(Value::Array(many)).await;
    assert_eq!(status, 400);

    // Archiving through POST.
    let id = items[0]["ContactID"].as_str().expect("id");
    let (status, _, body) = h
        .call(
            h.api(reqwest::Method::POST, "/Contacts?summarizeErrors=false")
                .json(&json!({"Contacts": [{"ContactID": id, "ContactStatus": "ARCHIVED"}]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["Contacts"][0]["ContactStatus"], "ARCHIVED");
    let (_, _, body) = h.call(h.api(reqwest::Method::GET, "/Contacts")).await;
    assert_eq!(body["Contacts"].as_array().map(Vec::len), Some(1));
    let (_, _, body) = h
        .call(h.api(reqwest::Method::GET, "/Contacts?includeArchived=true"))
        .await;
    assert_eq!(body["Contacts"].as_array().map(Vec::len), Some(2));
    let (status, _, body) = h
        .call(h.api(reqwest::Method::GET, &format!("/Contacts/{id}")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["Contacts"][0]["ContactID"], id);
    let (status, _, _) = h
        .call(h.api(
            reqwest::Method::GET,
            &format!("/Contacts/{}", uuid::Uuid::new_v4()),
        ))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_idempotency_key_writes_once() {
    let h = Harness::start(roomy()).await;
    let put = || {
        h.api(reqwest::Method::PUT, "/Contacts?summarizeErrors=false")
            .header("Idempotency-Key", "key-1")
            .json(&json!({"Contacts": [{"Name": "Once", "ContactNumber": "S9"}]}))
    };
    let (s1, _, b1) = h.call(put()).await;
    let (s2, _, b2) = h.call(put()).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, b2);
    assert_eq!(h.sim.customers().len(), 1);
}

#[tokio::test]
async fn polls_changes_in_pages_and_finds_by_where() {
    let h = Harness::start(roomy()).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    for batch in 0..3 {
        let contacts: Vec<Value> = (0..50)
            .map(|i| {
                let n = batch * 50 + i;
                json!({"Name": format!("Person {n}"), "ContactNumber": format!("S{n}"),
                       "EmailAddress": format!("p{n}@example.com")})
            })
            .collect();
        let (status, _) = h.put_contacts(Value::Array(contacts)).await;
        assert_eq!(status, 200);
    }
    let since = before.format("%Y-%m-%dT%H:%M:%S").to_string();
    let page = |n: usize| {
        h.api(
            reqwest::Method::GET,
            &format!(
                "/Contacts?page={n}&pageSize=100&includeArchived=true&order=UpdatedDateUTC%20ASC"
            ),
        )
        .header("If-Modified-Since", &since)
    };
    let (_, headers, one) = h.call(page(1)).await;
    let (_, _, two) = h.call(page(2)).await;
    assert!(headers.contains_key("x-minlimit-remaining"));
    assert_eq!(one["Contacts"].as_array().map(Vec::len), Some(100));
    assert_eq!(two["Contacts"].as_array().map(Vec::len), Some(50));
    assert_eq!(
        one["pagination"],
        json!({"page": 1, "pageSize": 100, "pageCount": 2, "itemCount": 150})
    );
    let stamps: Vec<i64> = one["Contacts"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(two["Contacts"].as_array().into_iter().flatten())
        .map(|c| {
            let d = c["UpdatedDateUTC"].as_str().unwrap_or_default();
            d[6..19].parse::<i64>().expect("ms")
        })
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));

    // A change after the last poll is all the next poll sees.
    let last = *stamps.last().expect("some");
    let target = h.sim.customers()[7].id.clone();
    tokio::time::sleep(Duration::from_millis(5)).await;
    h.sim.person_edits_contact(
        &target,
        &CustomerEdit {
            name: Some("Renamed".into()),
            phone: None,
        },
    );
    let since = chrono::DateTime::from_timestamp_millis(last + 1)
        .expect("time")
        .to_rfc3339();
    let (_, _, changed) = h
        .call(
            h.api(
                reqwest::Method::GET,
                "/Contacts?page=1&order=UpdatedDateUTC ASC",
            )
            .header("If-Modified-Since", since),
        )
        .await;
    assert_eq!(changed["Contacts"].as_array().map(Vec::len), Some(1));
    assert_eq!(changed["Contacts"][0]["Name"], "Renamed");

    // where: origin stamp OR e-mail (any case).
    let filter = r#"ContactNumber=="S3" OR EmailAddress=="P42@EXAMPLE.COM""#;
    let (status, _, found) = h
        .call(h.api(reqwest::Method::GET, "/Contacts").query(&[
            ("where", filter),
            ("includeArchived", "true"),
            ("page", "1"),
        ]))
        .await;
    assert_eq!(status, 200, "{found}");
    let mut numbers: Vec<&str> = found["Contacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["ContactNumber"].as_str())
        .collect();
    numbers.sort();
    assert_eq!(numbers, vec!["S3", "S42"]);

    // IDs.
    let ids = format!("{},{}", h.sim.customers()[0].id, h.sim.customers()[1].id);
    let (_, _, by_id) = h
        .call(
            h.api(reqwest::Method::GET, "/Contacts")
                .query(&[("IDs", ids.as_str())]),
        )
        .await;
    assert_eq!(by_id["Contacts"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn refuses_past_the_minute_limit_with_headers() {
    let h = Harness::start(XeroSettings {
        per_minute: 3,
        ..XeroSettings::default()
    })
    .await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let (status, headers, _) = h.call(h.api(reqwest::Method::GET, "/Contacts")).await;
        assert_eq!(status, 200);
        let read = |name: &str| -> usize {
            headers[name]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("number")
        };
        assert_eq!(read("x-daylimit-remaining") + remaining.len() + 1, 5000);
        assert!(read("x-appminlimit-remaining") < 10_000);
        remaining.push(read("x-minlimit-remaining"));
    }
    assert_eq!(remaining, vec![2, 1, 0]);
    let (status, headers, _) = h.call(h.api(reqwest::Method::GET, "/Contacts")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["x-rate-limit-problem"], "minute");
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&retry));
    assert_eq!(headers["x-minlimit-remaining"], "0");
    assert_eq!(h.sim.refused_429(), 1);
    let calls = h.sim.calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[3].status, 429);
    assert_eq!(calls[0].path, "/api.xro/2.0/Contacts");
    assert!(calls.iter().all(|c| c.finished >= c.at));

    // A forced 429 carries the Retry-After it was given, rounded up.
    let h = Harness::start(roomy()).await;
    h.sim.force_429_next(Duration::from_millis(2500));
    let (status, headers, _) = h.call(h.api(reqwest::Method::GET, "/Contacts")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
    let (status, _, _) = h.call(h.api(reqwest::Method::GET, "/Contacts")).await;
    assert_eq!(status, 200);
    assert_eq!(h.sim.refused_429(), 1);
}

#[tokio::test]
async fn paid_invoices_refuse_content_changes() {
    let h = Harness::start(roomy()).await;
    let contact = h.sim.person_creates_contact(&CustomerSeed {
        name: "Payer".into(),
        email: "payer@example.com".into(),
        phone: None,
    });
    let invoice = json!({
        "Type": "ACCREC", "Status": "DRAFT", "Reference": "S77",
        "Contact": {"ContactID": contact}, "Date": "2026-11-01", "DueDate": "2026-11-30",
        "CurrencyCode": "EUR", "LineAmountTypes": "Exclusive",
        "LineItems": [{"Description": "Work", "Quantity": 2, "UnitAmount": 50.25,
                       "TaxAmount": 10, "AccountCode": "200"}],
    });
    let (status, _, body) = h
        .call(
            h.api(reqwest::Method::PUT, "/Invoices?summarizeErrors=false")
                .json(&json!({"Invoices": [invoice, {"Type": "ACCREC", "Contact": {"ContactID": "nope"}}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let created = &body["Invoices"][0];
    assert_eq!(body["Invoices"][1]["HasValidationErrors"], true);
    assert_eq!(created["InvoiceNumber"], "INV-0001");
    assert_eq!(created["Status"], "DRAFT");
    assert_eq!(created["Date"], "2026-11-01T00:00:00");
    assert_eq!(created["SubTotal"], json!(100.5));
    assert_eq!(created["TotalTax"], json!(10));
    assert_eq!(created["Total"], json!(110.5));
    assert_eq!(created["AmountDue"], json!(110.5));
    assert_eq!(created["Contact"]["Name"], "Payer");
    let id = created["InvoiceID"].as_str().expect("id").to_string();

    let post = |body: Value| {
        h.api(reqwest::Method::POST, "/Invoices?summarizeErrors=false")
            .json(&json!({"Invoices": [body]}))
    };
    let (_, _, body) = h
        .call(post(json!({"InvoiceID": id, "Status": "AUTHORISED"})))
        .await;
    assert_eq!(body["Invoices"][0]["Status"], "AUTHORISED");
    let (status, _, body) = h
        .call(
            h.api(reqwest::Method::PUT, "/Payments")
                .json(&json!({"Payments": [{
            "Invoice": {"InvoiceID": id}, "Account": {"Code": "090"},
            "Date": "2026-11-05", "Amount": 110.5}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = h
        .call(h.api(reqwest::Method::GET, &format!("/Invoices/{id}")))
        .await;
    assert_eq!(body["Invoices"][0]["Status"], "PAID");
    assert_eq!(body["Invoices"][0]["AmountDue"], json!(0));

    let (status, _, body) = h
        .call(post(json!({"InvoiceID": id, "LineItems": [{"Description": "More", "Quantity": 1, "UnitAmount": 1}]})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["Invoices"][0]["HasValidationErrors"], true);
    assert_eq!(
        body["Invoices"][0]["ValidationErrors"][0]["Message"],
        "This document cannot be edited as it has a payment or credit note allocated to it"
    );
    let view = h.sim.invoices();
    assert_eq!(view[0].status.as_deref(), Some("paid"));
    assert_eq!(view[0].total.as_deref(), Some("110.5"));
    assert_eq!(view[0].stamp.as_deref(), Some("S77"));

    // A second invoice: find by Reference, pay part through a simulated person.
    let (_, _, body) = h
        .call(
            h.api(reqwest::Method::PUT, "/Invoices?summarizeErrors=false")
                .json(&json!({"Invoices": [{
            "Type": "ACCREC", "Reference": "S78", "Contact": {"ContactID": contact},
            "LineItems": [{"Quantity": 1, "UnitAmount": 40}]}]})),
        )
        .await;
    let second = body["Invoices"][0]["InvoiceID"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(body["Invoices"][0]["InvoiceNumber"], "INV-0002");
    h.sim
        .person_pays_invoice(&second, Decimal::from_str("15").expect("decimal"))
        .expect("paid");
    assert!(h
        .sim
        .person_pays_invoice(&second, Decimal::from_str("100").expect("decimal"))
        .is_err());
    let (_, _, found) = h
        .call(
            h.api(reqwest::Method::GET, "/Invoices")
                .query(&[("where", r#"Reference=="S78""#)]),
        )
        .await;
    assert_eq!(found["Invoices"][0]["Status"], "AUTHORISED");
    assert_eq!(found["Invoices"][0]["AmountPaid"], json!(15));
    assert_eq!(found["Invoices"][0]["AmountDue"], json!(25));
    // Authorised: deleting is refused, voiding with a payment is refused.
    let (_, _, body) = h
        .call(post(json!({"InvoiceID": second, "Status": "DELETED"})))
        .await;
    assert_eq!(body["Invoices"][0]["HasValidationErrors"], true);
}

#[tokio::test]
async fn webhooks_arrive_signed() {
    use poem::{handler, web::Data, EndpointExt as _, Request};
    use tokio::sync::mpsc;

    type Sender = mpsc::UnboundedSender<(Vec<u8>, Option<String>)>;
    #[handler]
    async fn receive(req: &Request, body: Vec<u8>, tx: Data<&Sender>) -> &'static str {
        let signature = req
            .headers()
            .get("x-xero-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let _ = tx.send((body, signature));
        ""
    }

    let (tx, mut rx) = mpsc::unbounded_channel::<(Vec<u8>, Option<String>)>();
    let receiver = serve(poem::Route::new().at("/hook", poem::post(receive.data(tx)))).await;

    let h = Harness::start(roomy()).await;
    h.sim.outbox().set_target(Some(format!("{receiver}/hook")));
    let id = h.sim.person_creates_contact(&CustomerSeed {
        name: "Hooked".into(),
        email: "hooked@example.com".into(),
        phone: Some("123".into()),
    });
    h.sim.person_archives_contact(&id);
    h.sim.outbox().flush().await;
    let (body, signature) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("in time")
        .expect("a delivery");
    let key = h.sim.settings().webhook_key.clone();
    webhooks::xero::verify(&body, signature.as_deref(), &[key.as_str().into()]).expect("verifies");
    assert!(webhooks::xero::verify(&body, signature.as_deref(), &["wrong".into()]).is_err());
    let payload: Value = serde_json::from_slice(&body).expect("json");
    let events = payload["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["eventType"], "CREATE");
    assert_eq!(events[1]["eventType"], "UPDATE");
    assert_eq!(events[0]["eventCategory"], "CONTACT");
    assert_eq!(events[0]["resourceId"], id.as_str());
    assert_eq!(events[0]["tenantType"], "ORGANISATION");
    assert_eq!(
        events[0]["resourceUrl"],
        format!("https://api.xero.com/api.xro/2.0/Contacts/{id}")
    );
    assert_eq!(payload["firstEventSequence"], 1);
    assert_eq!(payload["lastEventSequence"], 2);
    assert!(matches!(
        webhooks::xero::parse(&body),
        Ok(webhooks::xero::XeroDelivery::Changes(c)) if c.len() == 2
    ));
    let archived = h
        .sim
        .customers()
        .into_iter()
        .find(|c| c.id == id)
        .expect("there");
    assert!(archived.archived);

    // The view route answers the same as the method.
    let views: Value = h
        .http
        .get(format!("{}/sim/xero/customers", h.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(views[0]["id"], id.as_str());
}

#[tokio::test]
async fn knobs_fail_slow_down_and_limit_concurrency() {
    let shared = Arc::new(Knobs::new(sim::KnobValues {
        latency_ms: 150,
        ..sim::KnobValues::default()
    }));
    let h = Harness::start_with(
        XeroSettings {
            concurrency: 1,
            ..roomy()
        },
        shared.clone(),
    )
    .await;
    let (a, b) = tokio::join!(
        h.call(h.api(reqwest::Method::GET, "/Contacts")),
        h.call(h.api(reqwest::Method::GET, "/Invoices")),
    );
    let mut statuses = vec![a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, vec![200, 429]);
    let refused = if a.0 == 429 { a.1 } else { b.1 };
    assert_eq!(refused["x-rate-limit-problem"], "concurrent");
    let calls = h.sim.calls();
    assert!(calls
        .iter()
        .all(|c| c.finished.duration_since(c.at) >= Duration::from_millis(150)));

    shared.set(sim::KnobValues {
        error_rate: 1.0,
        ..sim::KnobValues::default()
    });
    let (status, _, _) = h.call(h.api(reqwest::Method::GET, "/Contacts")).await;
    assert_eq!(status, 503);
    shared.set(sim::KnobValues {
        rate_limit_rate: 1.0,
        ..sim::KnobValues::default()
    });
    let (status, headers, _) = h.call(h.api(reqwest::Method::GET, "/Contacts")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(h.sim.refused_429(), 2);
}

#[tokio::test]
async fn the_organisation_answers_for_the_tenant_and_an_outage_answers_503_to_everything() {
    let knobs = Arc::new(Knobs::default());
    let h = Harness::start_with(roomy(), knobs.clone()).await;
    let (status, _, body) = h.call(h.api(reqwest::Method::GET, "/Organisation")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["Organisations"][0]["OrganisationID"],
        h.sim.settings().tenant_id.as_str()
    );
    // Outside the API's path there is no such resource: a base URL missing it.
    let (status, _, _) = h
        .call(
            h.http
                .get(format!("{}/Organisation", h.base))
                .bearer_auth(&h.access)
                .header("xero-tenant-id", &h.sim.settings().tenant_id),
        )
        .await;
    assert_eq!(status, 404);

    knobs.update(|k| k.xero_down = true);
    for path in ["/Organisation", "/Contacts"] {
        let (status, _, _) = h.call(h.api(reqwest::Method::GET, path)).await;
        assert_eq!(status, 503, "{path}");
    }
    knobs.update(|k| k.xero_down = false);
    let (status, _, _) = h.call(h.api(reqwest::Method::GET, "/Organisation")).await;
    assert_eq!(status, 200);
    let statuses: Vec<u16> = h.sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        vec![200, 503, 503, 200],
        "the simulator counts every call"
    );
}
