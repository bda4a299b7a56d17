//! What `tandem serve` takes on the command line.

use std::net::SocketAddr;

use clap::Args;

/// Which parts of the engine this process runs; all by default. Scale out by running
/// several processes, each with the parts it should carry.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ServeArgs {
    /// The HTTP address, instead of the settings' `listen` (TANDEM_LISTEN); port 0
    /// lets the OS choose and prints `listening on http://<address>`.
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<SocketAddr>,
    /// Do not serve HTTP (webhooks, admin API, dashboard, health).
    #[arg(long)]
    pub no_http: bool,
    /// Do not run orchestrator workers.
    #[arg(long)]
    pub no_workers: bool,
    /// Do not run the poller.
    #[arg(long)]
    pub no_poller: bool,
}
