//! The `tandem` command line.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "Keeps a CRM (HubSpot) and an accounting system (Xero) in step, both ways.",
    long_about = "Keeps a CRM (HubSpot) and an accounting system (Xero) in step, both ways.\n\n\
        Settings come from tandem.toml (path in TANDEM_CONFIG) and TANDEM_* environment \
        variables; see README.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole product on the embedded default, with simulated HubSpot and Xero.
    Demo,
    /// Run the engine: webhook intake, orchestrator workers, poller, admin API, dashboard.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the settings and print them, secrets hidden.
    Config,
    /// Force a resync of chosen records, a date range, or everything.
    Resync,
    /// Re-publish the change events of a time window.
    Replay,
    /// Show queue state and recent sync outcomes.
    Status,
    /// Run the simulated HubSpot and Xero servers alone.
    Sim,
    /// Run the benchmark suite, print a table and write JSON to bench/results/.
    Bench,
}

/// Which parts of the engine this process runs; all by default. Scale out by running
/// several processes, each with the parts it should carry.
#[derive(Debug, Clone, Copy, Args)]
pub struct ServeArgs {
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
