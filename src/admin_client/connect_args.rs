//! What `tandem connect` and `tandem pair` take on the command line.

use clap::{Args, Subcommand};

use super::args::ServerArgs;

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
