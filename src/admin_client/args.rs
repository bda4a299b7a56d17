//! What `tandem resync`, `replay`, `status` and `conflicts` take on the command line.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// How `resync`, `replay`, `status` and `conflicts` reach the running server; shown
/// under their `--help`.
pub const REACHING_THE_SERVER: &str = "\
These commands ask a running `tandem serve` (or `tandem demo`) over HTTP.
  Where:  --url, else TANDEM_URL, else http://<listen> from the settings
          (TANDEM_LISTEN or `listen` in tandem.toml; 127.0.0.1:8080 by default).
  Token:  the server's admin token, from --token-file PATH, else TANDEM_ADMIN_TOKEN,
          else TANDEM_ADMIN_TOKEN_FILE=PATH, else `admin_token` in tandem.toml.
          A server started without one prints the token it made at start.";

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
pub struct ConflictsArgs {
    #[command(subcommand)]
    pub action: Option<ConflictAction>,
    /// Which to list: open (held for a person), decided, resolved, withdrawn or all.
    #[arg(long, default_value = "open")]
    pub status: String,
    #[command(flatten)]
    pub server: ServerArgs,
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
