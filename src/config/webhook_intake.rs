//! Checks of the settings that decide which webhooks a side takes and whose they must
//! be. A side with webhook secrets takes deliveries; each rule here refuses to start a
//! pair whose deliveries could not be held to their sender and their account.

use webhooks::standard::StandardSecret;

use super::{ConnectionSettings, ConnectorKind, SettingsError, WebhookSigning};

/// `pair` is the pair's name, `side` `crm` or `finance`.
pub(super) fn validate(
    pair: &str,
    side: &str,
    connection: &ConnectionSettings,
    public_base_url: Option<&str>,
) -> Result<(), SettingsError> {
    let key = format!("pairs.{pair}.{side}");
    let hubspot = connection.kind == ConnectorKind::Hubspot;
    if !hubspot && connection.portal_id.is_some() {
        return Err(SettingsError::new(
            format!("{key}.portal_id"),
            "only a HubSpot connection has a portal id; a Xero one is bound by `tenant_id`",
        ));
    }
    if connection.portal_id == Some(0) {
        return Err(SettingsError::new(
            format!("{key}.portal_id"),
            "a HubSpot hub id is a positive number (HubSpot's account menu shows it)",
        ));
    }
    if let Some(versions) = &connection.signature_versions {
        let problem = if !hubspot {
            Some("only HubSpot has signature versions; remove it here")
        } else if connection.webhook_signing == WebhookSigning::StandardWebhooks {
            Some("the relay signs this side's webhooks (`webhook_signing = \"standard_webhooks\"`), not HubSpot; remove it")
        } else if versions.is_empty() {
            Some("name at least one of \"v3\", \"v2\", \"v1\" (or remove the key for v3 alone)")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(SettingsError::new(
                format!("{key}.signature_versions"),
                problem,
            ));
        }
    }
    if connection.webhook_secrets.is_empty() {
        // This side takes no webhooks; it is polled.
        return Ok(());
    }
    if connection.webhook_signing == WebhookSigning::StandardWebhooks {
        for (n, secret) in connection.webhook_secrets.iter().enumerate() {
            StandardSecret::parse(secret.expose()).map_err(|why| {
                SettingsError::new(
                    format!("{key}.webhook_secrets"),
                    format!(
                        "entry {} is not a Standard Webhooks secret ({why}): expected `whsec_` \
                         followed by base64, as the relay shows it",
                        n + 1
                    ),
                )
            })?;
        }
    }
    if !hubspot {
        return Ok(());
    }
    if connection.portal_id.is_none() {
        return Err(SettingsError::new(
            format!("{key}.portal_id"),
            "required when the connection takes webhooks: HubSpot signs the deliveries of \
             every portal that installed an app with the same secret, so each delivery is \
             held to this portal. It is the account's hub id (HubSpot's account menu; \
             `portalId` in every webhook)",
        ));
    }
    let versions = connection.hubspot_versions();
    if connection.webhook_signing == WebhookSigning::Native
        && versions.signs_url()
        && public_base_url.is_none()
    {
        return Err(SettingsError::new(
            "webhooks.public_base_url",
            format!(
                "pair `{pair}` takes HubSpot v3 signatures, which cover the full URL HubSpot \
                 called: set the public URL HubSpot calls (`https://sync.example.com`). \
                 Tandem does not take it from the request's Host header, which the sender \
                 chooses"
            ),
        ));
    }
    Ok(())
}
