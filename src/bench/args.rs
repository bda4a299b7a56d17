//! What `tandem bench` takes on the command line.

use clap::Args;

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
