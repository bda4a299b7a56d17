//! The `tandem` command line.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

pub use crate::admin_client::args::{
    ConflictAction, ConflictsArgs, ReplayArgs, ResyncArgs, ServerArgs, StatusArgs,
    REACHING_THE_SERVER,
};
pub use crate::admin_client::connect_args::{ConnectAction, ConnectArgs, PairAction, PairArgs};
pub use crate::bench::args::BenchArgs;
pub use crate::demo::args::{DemoArgs, SimArgs};
pub use crate::service::args::ServeArgs;
pub use crate::torture::args::{TortureArgs, RESTART_POSTGRES, RESTART_RABBITMQ};

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "Keeps a CRM (HubSpot) and an accounting system (Xero) in step, both ways.",
    long_about = "Keeps a CRM (HubSpot) and an accounting system (Xero) in step, both ways.\n\n\
        Settings come from tandem.toml (path in TANDEM_CONFIG) and TANDEM_* environment \
        variables; see README.md. `resync`, `replay`, `status` and `conflicts` ask a \
        running server: `tandem status --help` says how they find it and its admin token."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole product on the embedded default, with simulated HubSpot and Xero.
    Demo(DemoArgs),
    /// Run the engine: webhook intake, orchestrator workers, poller, admin API, dashboard.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Seal every stored credential under `secrets_key` (from plain text or from a key in
    /// `secrets_old_keys`), print what was done and exit.
    RotateSecrets,
    /// Validate the settings and print them, secrets hidden; `--check` also probes
    /// each connection.
    Config(ConfigArgs),
    /// Force a resync of chosen records, a date range, or everything (asks the running
    /// server's admin API).
    #[command(after_help = REACHING_THE_SERVER)]
    Resync(ResyncArgs),
    /// Re-publish the changes of a time window (asks the running server's admin API).
    #[command(after_help = REACHING_THE_SERVER)]
    Replay(ReplayArgs),
    /// Show queue state and the last 24 hours' sync outcomes (asks the running server).
    #[command(after_help = REACHING_THE_SERVER)]
    Status(StatusArgs),
    /// List conflicts, or decide one held for a person (asks the running server).
    #[command(after_help = REACHING_THE_SERVER)]
    Conflicts(ConflictsArgs),
    /// Connect a HubSpot or Xero account in the browser, list or disconnect accounts
    /// (asks the running server).
    #[command(after_help = REACHING_THE_SERVER)]
    Connect(ConnectArgs),
    /// List, create, pause, resume or remove pairs made of connected accounts (asks
    /// the running server).
    #[command(after_help = REACHING_THE_SERVER)]
    Pair(PairArgs),
    /// Run the simulated HubSpot and Xero servers alone.
    Sim(SimArgs),
    /// Run the benchmark suite, print a table and write JSON to bench/results/.
    Bench(BenchArgs),
    /// Convergence under chaos: edits on both sides while the engine is killed and the
    /// brokers restarted; checks the end state and exits non-zero when a check fails.
    Torture(TortureArgs),
}

impl Command {
    /// The `--listen` address given to `serve` or `demo`, which replaces the settings'.
    pub fn listen(&self) -> Option<SocketAddr> {
        match self {
            Command::Serve(args) => args.listen,
            Command::Demo(args) => args.listen,
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ConfigArgs {
    /// Also open the database and make one authenticated call to each connection,
    /// naming the setting at fault when one fails (exit 78 for a wrong setting, 1 when
    /// a system or the database does not answer).
    #[arg(long)]
    pub check: bool,
}
