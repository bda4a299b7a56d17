//! `tandem resync`, `replay`, `status` and `conflicts`: the command line asks the running
//! server's admin API, so a job started from a terminal is the same job the dashboard
//! shows. How they find the server and its token: [`args::REACHING_THE_SERVER`].

use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::api::admin::time_field::parse_time;
pub mod args;
pub mod connect;
pub mod connect_args;

use crate::config::Settings;
use args::{ConflictAction, ConflictsArgs, ReplayArgs, ResyncArgs, ServerArgs};

pub(crate) struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// The server's base URL and admin token, from the command line first, then the
    /// settings (see [`args::REACHING_THE_SERVER`]).
    pub(crate) fn new(settings: &Settings, server: &ServerArgs) -> anyhow::Result<Self> {
        let base = match &server.url {
            Some(url) => url.clone(),
            None if settings.listen.ends_with(":0") => bail!(
                "the settings' listen address `{}` names no port to ask; give the server's \
                 URL with --url or TANDEM_URL",
                settings.listen
            ),
            None => format!("http://{}", settings.listen),
        };
        let base = base.trim_end_matches('/').to_string();
        let token = match &server.token_file {
            Some(path) => read_token_file(path)?,
            None => match &settings.admin_token {
                Some(token) => token.expose().to_string(),
                None => bail!(
                    "no admin token for the server at {base}: give it with \
                     TANDEM_ADMIN_TOKEN=<token>, TANDEM_ADMIN_TOKEN_FILE=<path> or \
                     --token-file <path> (a server started without one printed the token it \
                     made at start)"
                ),
            },
        };
        Ok(Self {
            base,
            token,
            http: reqwest::Client::new(),
        })
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|err| {
            anyhow::anyhow!(
                "cannot reach Tandem at {}: is `tandem serve` running there? ({})",
                self.base,
                crate::cause::innermost_cause(&err)
            )
        })?;
        let status = response.status();
        let text = response.text().await.with_context(|| {
            format!(
                "the server at {} answered {status}, then broke off",
                self.base
            )
        })?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "the server at {} answered {status}: it does not take this admin token; \
                 give the one it was started with (TANDEM_ADMIN_TOKEN or --token-file)",
                self.base
            );
        }
        if !status.is_success() {
            bail!("the server answered {status}: {}", why_refused(&text));
        }
        serde_json::from_str(&text).with_context(|| {
            format!(
                "the server at {} answered {status} with something other than JSON: is it Tandem?",
                self.base
            )
        })
    }

    /// Prints the job's progress until it is done (or failed).
    async fn follow(&self, job: &str) -> anyhow::Result<()> {
        loop {
            let progress = self
                .call(reqwest::Method::GET, &format!("/api/jobs/{job}"), None)
                .await?;
            println!(
                "{}: queued {}, published {}, synced {}, skipped {}, failed {}",
                progress["status"].as_str().unwrap_or("?"),
                progress["queued"],
                progress["published"],
                progress["synced"],
                progress["skipped"],
                progress["failed"]
            );
            match progress["status"].as_str() {
                Some("done") => return Ok(()),
                Some("failed") => bail!(
                    "the job failed: {}",
                    progress["error"]
                        .as_str()
                        .unwrap_or("no reason was recorded")
                ),
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }
}

/// `tandem status`: the queue, each connection's state and the last 24 hours, from the
/// running server.
pub async fn status(settings: &Settings, args: args::StatusArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(settings, &args.server)?;
    let queue = client
        .call(reqwest::Method::GET, "/api/queue", None)
        .await?;
    let stats = client
        .call(reqwest::Method::GET, "/api/stats?window=24h", None)
        .await?;
    let connections = client
        .call(reqwest::Method::GET, "/api/connections", None)
        .await?;
    println!(
        "queue: live {}, bulk {}{}",
        queue["live_depth"],
        queue["bulk_depth"],
        if queue["paused"] == true {
            " (paused)"
        } else {
            ""
        }
    );
    for connection in connections.as_array().into_iter().flatten() {
        println!("{}", connection_line(connection, Utc::now()));
    }
    let percent = |rate: &Value| {
        rate.as_f64()
            .map_or("n/a".to_string(), |r| format!("{:.1}%", r * 100.0))
    };
    println!(
        "last 24h: {} finished, success rate {}; {} attempts (retries included), {} succeeded",
        stats["finished"],
        percent(&stats["success_rate"]),
        stats["attempts"],
        percent(&stats["attempt_success_rate"]),
    );
    if let Some(outcomes) = stats["outcomes"].as_object() {
        for (outcome, count) in outcomes {
            println!("  {outcome}: {count}");
        }
    }
    Ok(())
}

/// One connection on a line, e.g. `xero (acme finance): down since 12:03:01 UTC, last
/// error: HTTP 503 from GET /Contacts`, and what to do when it is out of service.
fn connection_line(connection: &Value, now: DateTime<Utc>) -> String {
    let text = |key: &str| connection[key].as_str().unwrap_or("?").to_string();
    let since = connection["since"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .map_or("?".to_string(), |t| {
            if t.date_naive() == now.date_naive() {
                t.format("%H:%M:%S UTC").to_string()
            } else {
                t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            }
        });
    let mut line = format!(
        "{} ({} {}): {} since {since}",
        text("kind"),
        text("pair"),
        text("side"),
        text("state")
    );
    let healthy = connection["state"] == "healthy";
    if let Some(error) = connection["last_error"]["message"]
        .as_str()
        .filter(|_| !healthy)
    {
        line.push_str(&format!(", last error: {error}"));
    }
    let waiting = &connection["waiting"];
    let (held, retrying) = (
        waiting["held_calls"].as_u64().unwrap_or(0),
        waiting["changes_retrying"].as_u64().unwrap_or(0),
    );
    if held + retrying > 0 {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        line.push_str(&format!(
            " ({} held, {} waiting to retry)",
            plural(held, "call", "calls"),
            plural(retrying, "change", "changes")
        ));
    }
    if let Some(problem) = connection["problem"].as_object() {
        let setting = problem
            .get("setting")
            .and_then(Value::as_str)
            .map_or(String::new(), |s| format!("{s}: "));
        line.push_str(&format!(
            "\n  {setting}{}: {}",
            problem
                .get("problem")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            problem.get("hint").and_then(Value::as_str).unwrap_or("?")
        ));
    }
    line
}

/// `tandem conflicts`: lists conflicts, or decides one held for a person.
pub async fn conflicts(settings: &Settings, args: ConflictsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(settings, &args.server)?;
    match args.action {
        None => {
            let listed = client
                .call(
                    reqwest::Method::GET,
                    &format!("/api/conflicts?status={}", args.status),
                    None,
                )
                .await?;
            let listed = listed.as_array().cloned().unwrap_or_default();
            if listed.is_empty() {
                println!("no {} conflicts", args.status);
            }
            for conflict in listed {
                println!("{}", conflict_line(&conflict));
            }
        }
        Some(ConflictAction::Resolve { id, keep, value }) => {
            let body = match (keep, value) {
                (Some(keep), _) => json!({"keep": keep}),
                (None, Some(value)) => json!({"value": value}),
                (None, None) => bail!("say --keep crm, --keep finance or --value <value>"),
            };
            let decided = client
                .call(
                    reqwest::Method::POST,
                    &format!("/api/conflicts/{id}/resolve"),
                    Some(body),
                )
                .await?;
            println!("{}", conflict_line(&decided));
            println!("the record syncs again now; the decision applies if both sides still hold these values");
        }
    }
    Ok(())
}

/// One conflict on a line: where, which field, both values, and how it stands.
fn conflict_line(conflict: &Value) -> String {
    let shown = |v: &Value| match v {
        Value::Null => "(empty)".to_string(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    let outcome = match (conflict["status"].as_str(), conflict["decided_by"].as_str()) {
        (Some("open"), _) => "held for a person".to_string(),
        (Some(status), Some(by)) => format!(
            "{status}: kept {} ({by})",
            conflict["winner"].as_str().unwrap_or("?")
        ),
        (Some(status), None) => status.to_string(),
        (None, _) => "?".to_string(),
    };
    format!(
        "{} {}/{} crm {} / finance {}: {} crm {} finance {} — {outcome}",
        conflict["id"].as_str().unwrap_or("?"),
        conflict["pair"].as_str().unwrap_or("?"),
        conflict["entity"].as_str().unwrap_or("?"),
        conflict["crm_id"].as_str().unwrap_or("–"),
        conflict["finance_id"].as_str().unwrap_or("–"),
        conflict["field"].as_str().unwrap_or("?"),
        shown(&conflict["crm_value"]),
        shown(&conflict["finance_value"]),
    )
}

pub async fn resync(settings: &Settings, args: ResyncArgs) -> anyhow::Result<()> {
    let mut body = json!({"pair": args.pair, "system": args.system, "entity": args.entity});
    if !args.ids.is_empty() {
        body["ids"] = json!(args.ids);
    }
    if let (Some(from), Some(to)) = (&args.modified_from, &args.modified_to) {
        window(("--modified-from", from), ("--modified-to", to))?;
        body["modified_from"] = json!(from);
        body["modified_to"] = json!(to);
    }
    if args.everything {
        body["everything"] = json!(true);
    }
    let client = AdminClient::new(settings, &args.server)?;
    start(&client, "/api/resync", body, args.wait).await
}

pub async fn replay(settings: &Settings, args: ReplayArgs) -> anyhow::Result<()> {
    window(("--from", &args.from), ("--to", &args.to))?;
    let client = AdminClient::new(settings, &args.server)?;
    let body = json!({"from": args.from, "to": args.to, "pair": args.pair});
    start(&client, "/api/replay", body, args.wait).await
}

/// Checks a time window given on the command line before anything is asked of the
/// server, naming the flag that is wrong. The server parses the same way.
fn window(from: (&str, &str), to: (&str, &str)) -> anyhow::Result<()> {
    let start = parse_time(from.0, from.1).map_err(anyhow::Error::msg)?;
    let end = parse_time(to.0, to.1).map_err(anyhow::Error::msg)?;
    if start >= end {
        bail!(
            "{}: `{}` is not after {} `{}`; the window must run forward",
            to.0,
            to.1,
            from.0,
            from.1
        );
    }
    Ok(())
}

fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    let contents = std::fs::read_to_string(path)
        .with_context(|| format!("--token-file: cannot read `{}`", path.display()))?;
    let token = contents.trim();
    if token.is_empty() {
        bail!("--token-file: `{}` is empty", path.display());
    }
    Ok(token.to_string())
}

/// What a refusal says: the `error` of a JSON body, or the body's own text, so that no
/// answer is ever shown without its reason.
fn why_refused(body: &str) -> String {
    let body = body.trim();
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(body) {
        if let Some(Value::String(error)) = fields.get("error") {
            return error.clone();
        }
    }
    match body {
        "" => "(an empty answer)".to_string(),
        text => text.chars().take(500).collect(),
    }
}

async fn start(client: &AdminClient, path: &str, body: Value, wait: bool) -> anyhow::Result<()> {
    let accepted = client.call(reqwest::Method::POST, path, Some(body)).await?;
    let job = accepted["job_id"]
        .as_str()
        .context("the server answered without a job id")?
        .to_string();
    println!("job {job} started");
    if wait {
        client.follow(&job).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_out_of_service_reads_as_a_sentence_with_what_to_do() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T12:10:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let down = serde_json::json!({
            "pair": "acme", "side": "finance", "kind": "xero", "state": "down",
            "since": "2026-12-04T12:03:01.250Z",
            "last_error": {"at": "2026-12-04T12:09:00Z", "message": "HTTP 503 from GET /Contacts"},
            "problem": {"setting": null, "problem": "Xero answered 503", "hint": "wait"},
            "waiting": {"held_calls": 3, "changes_retrying": 12},
        });
        assert_eq!(
            connection_line(&down, now),
            "xero (acme finance): down since 12:03:01 UTC, last error: HTTP 503 from GET \
             /Contacts (3 calls held, 12 changes waiting to retry)\n  Xero answered 503: wait"
        );
        let healthy = serde_json::json!({
            "pair": "acme", "side": "crm", "kind": "hubspot", "state": "healthy",
            "since": "2026-12-03T08:00:00Z",
            "last_error": {"at": "2026-12-03T07:59:00Z", "message": "old"},
            "waiting": {"held_calls": 0, "changes_retrying": 0},
        });
        assert_eq!(
            connection_line(&healthy, now),
            "hubspot (acme crm): healthy since 2026-12-03 08:00:00 UTC"
        );
    }
}
