//! What `tandem torture` takes on the command line.

use clap::Args;

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
