//! The `tandem` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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

#[derive(Debug, Clone, Args)]
pub struct TortureArgs {
    /// `small` (a few hundred records, one kill, one RabbitMQ restart) or `full`.
    #[arg(long, default_value = "small")]
    pub profile: String,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench/results")]
    pub out: std::path::PathBuf,
    /// Skip the RabbitMQ and PostgreSQL restarts (for brokers this machine cannot
    /// restart).
    #[arg(long)]
    pub no_restarts: bool,
    /// The shell command (`sh -c`) that restarts the RabbitMQ at TANDEM_AMQP_URL. The
    /// default restarts this machine's own node, which everyone else on the machine
    /// shares: give a node of your own (`rabbitmqctl -n <node> ...`) to leave it alone.
    #[arg(long, value_name = "COMMAND", default_value = RESTART_RABBITMQ)]
    pub restart_rabbitmq: String,
    /// The shell command (`sh -c`) that restarts the PostgreSQL at TANDEM_DATABASE_URL.
    /// The default restarts this machine's Debian cluster; give a cluster of your own
    /// (`pg_ctl -D <data dir> restart`) to leave it alone.
    #[arg(long, value_name = "COMMAND", default_value = RESTART_POSTGRES)]
    pub restart_postgres: String,
}

/// `tandem torture`'s default RabbitMQ restart: the app of this machine's node.
pub const RESTART_RABBITMQ: &str = "rabbitmqctl -q stop_app && rabbitmqctl -q start_app";
/// `tandem torture`'s default PostgreSQL restart: this machine's (Debian) `main` cluster.
pub const RESTART_POSTGRES: &str =
    "pg_ctlcluster --skip-systemctl-redirect \"$(ls /etc/postgresql | head -n 1)\" main restart";

/// How `resync`, `replay`, `status` and `conflicts` reach the running server; shown
/// under their `--help`.
pub const REACHING_THE_SERVER: &str = "\
These commands ask a running `tandem serve` (or `tandem demo`) over HTTP.
  Where:  --url, else TANDEM_URL, else http://<listen> from the settings
          (TANDEM_LISTEN or `listen` in tandem.toml; 127.0.0.1:8080 by default).
  Token:  the server's admin token, from --token-file PATH, else TANDEM_ADMIN_TOKEN,
          else TANDEM_ADMIN_TOKEN_FILE=PATH, else `admin_token` in tandem.toml.
          A server started without one prints the token it made at start.";

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

#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ConfigArgs {
    /// Also open the database and make one authenticated call to each connection,
    /// naming the setting at fault when one fails (exit 78 for a wrong setting, 1 when
    /// a system or the database does not answer).
    #[arg(long)]
    pub check: bool,
}

/// Where the running server is, and the admin token it takes (see
/// [`REACHING_THE_SERVER`]).
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// The server's base URL; defaults to `http://<listen>` from the settings.
    #[arg(long, env = "TANDEM_URL", global = true)]
    pub url: Option<String>,
    /// A file holding the server's admin token (instead of TANDEM_ADMIN_TOKEN).
    #[arg(long, value_name = "PATH", global = true)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ResyncArgs {
    #[arg(long)]
    pub pair: String,
    /// `crm` or `finance`: the side whose records are read again.
    #[arg(long)]
    pub system: String,
    /// `customer` or `invoice`.
    #[arg(long)]
    pub entity: String,
    /// Record ids, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["modified_from", "everything"])]
    pub ids: Vec<String>,
    /// Records modified from this time (RFC 3339, such as 2026-12-01T00:00:00Z), with
    /// --modified-to.
    #[arg(long, value_name = "TIME", requires = "modified_to")]
    pub modified_from: Option<String>,
    /// Records modified up to this time (RFC 3339).
    #[arg(long, value_name = "TIME", requires = "modified_from")]
    pub modified_to: Option<String>,
    /// Every record of the entity type on that side.
    #[arg(long)]
    pub everything: bool,
    /// Wait until the job is done, printing its progress.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Start of the window (RFC 3339, such as 2026-12-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// End of the window (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// Only the records of this pair.
    #[arg(long)]
    pub pair: Option<String>,
    /// Wait until the job is done, printing its progress.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Which scenarios run, comma-separated: `ingest`, `backfill`, `e2e`, `economy`,
    /// `memory`, and `neighbour` (not run unless named: two pairs, one busy).
    #[arg(long, value_delimiter = ',', default_values_t = [
        String::from("ingest"),
        String::from("backfill"),
        String::from("e2e"),
        String::from("economy"),
        String::from("memory"),
    ])]
    pub scenarios: Vec<String>,
    /// Customers the backfill brings from the CRM into an empty Xero (also the busy
    /// pair's backfill in `neighbour`); also the customers seeded on both sides for
    /// `e2e` and `memory` (`economy` seeds at most 200).
    #[arg(long, default_value_t = 3000)]
    pub customers: usize,
    /// Seconds each step runs.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent senders per step, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32, 64])]
    pub concurrency: Vec<usize>,
    /// Changes a second simulated people offer at the fixed load (`e2e`, `memory`).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Offered changes a second of the rising steps (`e2e`), comma-separated; the
    /// steps stop at the first that does not keep up.
    #[arg(long, value_delimiter = ',', default_values_t = [250.0, 500.0, 1000.0, 1500.0, 2000.0])]
    pub rates: Vec<f64>,
    /// Orchestrator workers of the engine child (`e2e`, `economy`, `memory`); the
    /// settings' `orchestrator.workers` when not given.
    #[arg(long)]
    pub workers: Option<usize>,
    /// The rate limits the engine's connectors keep to in `e2e`, `economy` and
    /// `memory`: `lifted` (the engine's own speed; the simulators' limits are off too)
    /// or `published` (Xero's 60 calls a minute; plain `tandem serve`).
    #[arg(long, value_enum, default_value_t = crate::bench::engine::ConnectorLimits::Lifted)]
    pub engine_limits: crate::bench::engine::ConnectorLimits,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench/results")]
    pub out: std::path::PathBuf,
    /// A command to run the engine child under, for profiling, e.g. `valgrind
    /// --tool=massif` (its pid must be the engine's, as valgrind's is).
    #[arg(long)]
    pub engine_wrapper: Option<String>,
    /// Internal: run as the engine child of a scenario (`serve` with lifted limits).
    #[arg(long, hide = true)]
    pub engine_child: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ConflictsArgs {
    #[command(subcommand)]
    pub action: Option<ConflictAction>,
    /// Which to list: open (held for a person), decided, resolved, withdrawn or all.
    #[arg(long, default_value = "open")]
    pub status: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    #[command(subcommand)]
    pub action: ConnectAction,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ConnectAction {
    /// Start connecting a HubSpot portal: prints the URL to open in a browser.
    Hubspot,
    /// Start connecting a Xero organisation: prints the URL to open in a browser.
    Xero,
    /// Pick the organisation of a Xero grant that reaches several.
    Choose { choice: String, tenant_id: String },
    /// List the connected accounts.
    List,
    /// Forget an account's tokens (refused while a pair uses it).
    Disconnect { id: String },
}

#[derive(Debug, Clone, Args)]
pub struct PairArgs {
    #[command(subcommand)]
    pub action: PairAction,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PairAction {
    /// List every pair.
    List,
    /// Make a pair of a HubSpot account and a Xero account; it syncs at once.
    Create {
        name: String,
        /// The HubSpot account's id (`tandem connect list`).
        #[arg(long)]
        crm: String,
        /// The Xero account's id.
        #[arg(long)]
        finance: String,
        /// last_write_wins, crm_wins, finance_wins or manual.
        #[arg(long)]
        conflict_policy: Option<String>,
        /// archive, approve or ignore.
        #[arg(long)]
        deletes: Option<String>,
        /// crm or finance: who wins a tie.
        #[arg(long)]
        source_of_truth: Option<String>,
        #[arg(long)]
        poll_interval_secs: Option<u64>,
    },
    /// Its changes wait until it is resumed.
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    /// Stops it for good (its history is kept); needs --yes.
    Remove {
        name: String,
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ConflictAction {
    /// Decide a held conflict: keep one side's value, or give a value for both sides.
    Resolve {
        /// The conflict's id, as `tandem conflicts` lists it.
        id: String,
        /// `crm` or `finance`: whose value to keep.
        #[arg(long, conflicts_with = "value", required_unless_present = "value")]
        keep: Option<String>,
        /// A value of your own, written to both sides.
        #[arg(long)]
        value: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

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
