//! Log set-up: `TANDEM_LOG` (or `RUST_LOG`) picks what is logged, `log_format` how.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

const DEFAULT_FILTER: &str = "info,sqlx=warn,lapin=warn,sea_orm_migration=warn";

pub fn init(format: LogFormat) {
    init_with_default(format, DEFAULT_FILTER)
}

/// As `init`, with another filter when neither `TANDEM_LOG` nor `RUST_LOG` is set.
pub fn init_with_default(format: LogFormat, default: &str) {
    let filter = std::env::var("TANDEM_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests that start several servers) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
