//! `tandem resync` and `tandem replay`: the command line asks the running server's
//! admin API, so a job started from a terminal is the same job the dashboard shows.

use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::cli::{ConflictAction, ConflictsArgs, ReplayArgs, ResyncArgs, ServerArgs};
use crate::config::Settings;

struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    fn new(settings: &Settings, server: &ServerArgs) -> anyhow::Result<Self> {
        let token = settings
            .admin_token
            .as_ref()
            .context("no admin token: set TANDEM_ADMIN_TOKEN to the running server's token")?
            .expose()
            .to_string();
        let base = server
            .url
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.listen));
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    async fn call(
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
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach Tandem at {}: is `tandem serve` running?",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let why = body["error"].as_str().unwrap_or("no detail");
            bail!("the server answered {status}: {why}");
        }
        Ok(body)
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
                    progress["error"].as_str().unwrap_or("no detail")
                ),
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }
}

/// `tandem status`: the queue and the last 24 hours, from the running server.
pub async fn status(settings: &Settings, args: crate::cli::StatusArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(
        settings,
        &ServerArgs {
            url: args.url,
            wait: false,
        },
    )?;
    let queue = client
        .call(reqwest::Method::GET, "/api/queue", None)
        .await?;
    let stats = client
        .call(reqwest::Method::GET, "/api/stats?window=24h", None)
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
    let rate = stats["success_rate"]
        .as_f64()
        .map_or("n/a".to_string(), |r| format!("{:.1}%", r * 100.0));
    println!(
        "last 24h: {} finished, success rate {rate}",
        stats["finished"]
    );
    if let Some(outcomes) = stats["outcomes"].as_object() {
        for (outcome, count) in outcomes {
            println!("  {outcome}: {count}");
        }
    }
    Ok(())
}

/// `tandem conflicts`: lists conflicts, or decides one held for a person.
pub async fn conflicts(settings: &Settings, args: ConflictsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(
        settings,
        &ServerArgs {
            url: args.url,
            wait: false,
        },
    )?;
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
    let client = AdminClient::new(settings, &args.server)?;
    let mut body = json!({"pair": args.pair, "system": args.system, "entity": args.entity});
    if !args.ids.is_empty() {
        body["ids"] = json!(args.ids);
    }
    if let (Some(from), Some(to)) = (&args.modified_from, &args.modified_to) {
        body["modified_from"] = json!(from);
        body["modified_to"] = json!(to);
    }
    if args.everything {
        body["everything"] = json!(true);
    }
    start(&client, "/api/resync", body, args.server.wait).await
}

pub async fn replay(settings: &Settings, args: ReplayArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(settings, &args.server)?;
    let body = json!({"from": args.from, "to": args.to, "pair": args.pair});
    start(&client, "/api/replay", body, args.server.wait).await
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
