//! What `tandem demo` and `tandem sim` take on the command line.

use std::net::SocketAddr;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The dashboard's address, instead of the settings' `listen` (TANDEM_LISTEN,
    /// 127.0.0.1:8080 by default); port 0 lets the OS choose. The simulators always
    /// take ports the OS chooses.
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<SocketAddr>,
    /// Customers seeded on each side.
    #[arg(long, default_value_t = 200)]
    pub customers: usize,
    /// How many of them are the same people (same e-mail) on both sides.
    #[arg(long, default_value_t = 50)]
    pub shared: usize,
    /// Edits the simulated people make each second, across both sides.
    #[arg(long, default_value_t = 1.0)]
    pub edits_per_second: f64,
    /// Seconds between the terminal's status lines.
    #[arg(long, default_value_t = 5)]
    pub status_every: u64,
}

#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Address of the simulated HubSpot.
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub hubspot_listen: String,
    /// Address of the simulated Xero.
    #[arg(long, default_value = "127.0.0.1:8092")]
    pub xero_listen: String,
    /// Where the simulated HubSpot sends webhooks (Tandem's `/webhooks/{pair}/crm`).
    #[arg(long)]
    pub crm_webhook_url: Option<String>,
    /// Where the simulated Xero sends webhooks (Tandem's `/webhooks/{pair}/finance`).
    #[arg(long)]
    pub finance_webhook_url: Option<String>,
    /// Customers seeded on each side.
    #[arg(long, default_value_t = 0)]
    pub customers: usize,
    /// How many of them are the same people on both sides.
    #[arg(long, default_value_t = 0)]
    pub shared: usize,
    /// Edits the simulated people make each second (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub edits_per_second: f64,
}
