//! The integration tests, in one binary: each module is one area of the product, and
//! they share the harness in [`support`].

mod support;

mod broker_restart;
mod bus_contract;
mod clash_e2e;
mod cli_settings;
mod connect_accounts;
mod connect_browser;
mod connection_health;
mod dashboard_browser;
mod day_budget;
mod domain_decision;
mod domain_properties;
mod failures_e2e;
mod hostile_admin;
mod hubspot_connector;
mod metrics_scrape;
mod newcomer;
mod openapi_document;
mod orchestrator;
mod outbound_e2e;
mod poller;
mod resync;
mod round_trips;
mod secrets;
mod secrets_key;
mod serve;
mod store_contract;
mod store_reconnect;
mod sync_e2e;
mod torture_checker;
mod torture_small;
mod webhooks_http;
mod wire_counter;
mod workers;
mod xero_spec_validator;
