//! The `tandem` binary: parses the command line, loads settings and hands over to the
//! library.

use std::process::ExitCode;

use clap::Parser;
use tandem::cli::{Cli, Command};
use tandem::config::{self, LogFormat, Settings};
use tandem::connection_check::Verdict;
use tandem::{service, telemetry};

/// Exit code for invalid settings (sysexits' EX_CONFIG), so a supervisor can tell a
/// configuration mistake from a crash.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match settings_for(&cli.command) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("tandem: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        // The demo's terminal is for its status lines: warnings only, unless asked.
        Command::Demo(_) => telemetry::init_with_default(settings.log_format, "warn"),
        _ => telemetry::init(settings.log_format),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tandem: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let in_log = logs_its_failure(&cli.command, settings.log_format);
    match runtime.block_on(run(cli.command, settings)) {
        Ok(code) => code,
        Err(err) => {
            // Once: as a log record where a collector reads JSON lines, else as one
            // plain line for the person at the terminal.
            if in_log {
                tracing::error!(error = format!("{err:#}"), "tandem stopped on an error");
            } else {
                eprintln!("tandem: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The settings, with `--listen` in place of the configured address and the whole
/// validated again (a non-loopback address needs an admin token).
fn settings_for(command: &Command) -> Result<Settings, config::SettingsError> {
    let (mut settings, _source) = config::load()?;
    if let Some(listen) = command.listen() {
        settings.listen = listen.to_string();
        settings.validate()?;
    }
    Ok(settings)
}

/// Whether a failure goes to the log rather than plainly to stderr: only for the
/// long-running server logging JSON, whose stderr is read by a log collector (and only
/// when errors are logged at all).
fn logs_its_failure(command: &Command, format: LogFormat) -> bool {
    matches!(command, Command::Serve(_))
        && format == LogFormat::Json
        && tracing::enabled!(tracing::Level::ERROR)
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            service::serve(settings, args, service::shutdown_on_signals()).await?;
        }
        Command::Migrate => service::migrate(&settings).await?,
        Command::RotateSecrets => {
            if !tandem::credential_store::rotate_secrets(&settings).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Config(args) => {
            print!("{}", service::describe(&settings));
            if args.check {
                return Ok(match tandem::connection_check::run(&settings).await {
                    Verdict::Passed => ExitCode::SUCCESS,
                    Verdict::Unavailable => ExitCode::FAILURE,
                    Verdict::SettingsAtFault => ExitCode::from(EXIT_CONFIG),
                });
            }
        }
        Command::Resync(args) => tandem::admin_client::resync(&settings, args).await?,
        Command::Replay(args) => tandem::admin_client::replay(&settings, args).await?,
        Command::Bench(args) => tandem::bench::run(&settings, &args).await?,
        Command::Torture(args) => {
            if !tandem::torture::torture(&settings, &args).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Status(args) => tandem::admin_client::status(&settings, args).await?,
        Command::Conflicts(args) => tandem::admin_client::conflicts(&settings, args).await?,
        Command::Connect(args) => tandem::admin_client::connect::connect(&settings, args).await?,
        Command::Pair(args) => tandem::admin_client::connect::pair(&settings, args).await?,
        Command::Demo(args) => tandem::demo::run(settings, args).await?,
        Command::Sim(args) => tandem::demo::simulators(args).await?,
    }
    Ok(ExitCode::SUCCESS)
}
