//! `tandem connect …` and `tandem pair …`: the accounts and pairs resources of the
//! running server's admin API, from a terminal.

use anyhow::bail;
use serde_json::{json, Value};

use super::connect_args::{ConnectAction, ConnectArgs, PairAction, PairArgs};
use super::AdminClient;
use crate::config::Settings;

fn account_line(account: &Value) -> String {
    format!(
        "{} {} {} ({}): {}",
        account["id"].as_str().unwrap_or("?"),
        account["kind"].as_str().unwrap_or("?"),
        account["account_id"].as_str().unwrap_or("?"),
        account["name"].as_str().unwrap_or("?"),
        account["state"].as_str().unwrap_or("?"),
    )
}

fn pair_line(pair: &Value) -> String {
    let mut line = format!(
        "{} ({}): {}",
        pair["name"].as_str().unwrap_or("?"),
        pair["defined_by"].as_str().unwrap_or("?"),
        pair["status"].as_str().unwrap_or("?"),
    );
    for hook in pair["webhooks"].as_array().into_iter().flatten() {
        if let Some(url) = hook["url"].as_str() {
            line.push_str(&format!(
                "\n  webhook {}: {url} (signed with {})",
                hook["side"].as_str().unwrap_or("?"),
                hook["secret"].as_str().unwrap_or("?")
            ));
        }
    }
    line
}

pub async fn connect(settings: &Settings, args: ConnectArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(settings, &args.server)?;
    let post = reqwest::Method::POST;
    match args.action {
        ConnectAction::Hubspot | ConnectAction::Xero => {
            let kind = if matches!(args.action, ConnectAction::Hubspot) {
                "hubspot"
            } else {
                "xero"
            };
            let started = client
                .call(
                    post,
                    &format!("/api/accounts/connect/{kind}"),
                    Some(json!({})),
                )
                .await?;
            println!(
                "open this in a browser within ten minutes and allow access:\n{}",
                started["authorize_url"].as_str().unwrap_or("?")
            );
            if kind == "xero" {
                println!(
                    "if the page that follows lists several organisations, pick one with \
                     `tandem connect choose <choice> <tenant_id>`"
                );
            }
        }
        ConnectAction::Choose { choice, tenant_id } => {
            let account = client
                .call(
                    post,
                    &format!("/api/accounts/choices/{choice}"),
                    Some(json!({ "tenant_id": tenant_id })),
                )
                .await?;
            println!("{}", account_line(&account));
        }
        ConnectAction::List => {
            let accounts = client
                .call(reqwest::Method::GET, "/api/accounts", None)
                .await?;
            let accounts = accounts.as_array().cloned().unwrap_or_default();
            if accounts.is_empty() {
                println!("no account is connected: `tandem connect hubspot` starts");
            }
            for account in accounts {
                println!("{}", account_line(&account));
            }
        }
        ConnectAction::Disconnect { id } => {
            let account = client
                .call(
                    post,
                    &format!("/api/accounts/{id}/disconnect"),
                    Some(json!({})),
                )
                .await?;
            println!("{}", account_line(&account));
        }
    }
    Ok(())
}

pub async fn pair(settings: &Settings, args: PairArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(settings, &args.server)?;
    let post = reqwest::Method::POST;
    let answer = match args.action {
        PairAction::List => {
            let pairs = client
                .call(reqwest::Method::GET, "/api/pairs", None)
                .await?;
            let pairs = pairs.as_array().cloned().unwrap_or_default();
            if pairs.is_empty() {
                println!("no pair yet: `tandem pair create <name> --crm <id> --finance <id>`");
            }
            for pair in pairs {
                println!("{}", pair_line(&pair));
            }
            return Ok(());
        }
        PairAction::Create {
            name,
            crm,
            finance,
            conflict_policy,
            deletes,
            source_of_truth,
            poll_interval_secs,
        } => {
            let body = json!({
                "name": name,
                "crm_account": crm,
                "finance_account": finance,
                "conflict_policy": conflict_policy,
                "deletes": deletes,
                "source_of_truth": source_of_truth,
                "poll_interval_secs": poll_interval_secs,
            });
            client.call(post, "/api/pairs", Some(body)).await?
        }
        PairAction::Pause { name } => {
            client
                .call(post, &format!("/api/pairs/{name}/pause"), Some(json!({})))
                .await?
        }
        PairAction::Resume { name } => {
            client
                .call(post, &format!("/api/pairs/{name}/resume"), Some(json!({})))
                .await?
        }
        PairAction::Remove { name, yes } => {
            if !yes {
                bail!(
                    "removing pair `{name}` stops it for good (its history is kept and its \
                     name stays taken): run again with --yes"
                );
            }
            client
                .call(post, &format!("/api/pairs/{name}/remove"), Some(json!({})))
                .await?
        }
    };
    println!("{}", pair_line(&answer));
    Ok(())
}
