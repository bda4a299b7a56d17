//! The small torture profile, as the README's test command runs it: a few hundred
//! customers and invoices edited on both sides while the simulators misbehave, the
//! engine killed once with SIGKILL and RabbitMQ restarted once; every check of the
//! convergence checker must pass. The broker it restarts is a node of the test's own
//! ([`support::private_rabbitmq`]), never the machine's.

use crate::support;

use std::process::Command;

use support::private_rabbitmq::PrivateRabbitMq;

/// The small profile restarts no PostgreSQL; should it ever, this fails the run rather
/// than fall back to restarting the machine's cluster.
const NO_POSTGRES_RESTART: &str =
    "echo 'this test has no PostgreSQL of its own to restart' >&2; exit 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_small_torture_profile_converges() {
    let db = support::TestDatabase::create().await;
    let broker = PrivateRabbitMq::start();
    let supervisor_before = broker.broker_supervisor();
    let out = std::env::temp_dir().join(support::unique("torture-report"));
    let run = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["torture", "--profile", "small", "--out"])
        .arg(&out)
        .arg("--restart-rabbitmq")
        .arg(broker.restart_command())
        .args(["--restart-postgres", NO_POSTGRES_RESTART])
        .env("TANDEM_DATABASE_URL", &db.url)
        .env("TANDEM_AMQP_URL", &broker.amqp_url)
        .env("TANDEM_LOG", "warn")
        .output()
        .expect("run tandem torture");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "tandem torture failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    let report = std::fs::read_dir(&out)
        .expect("the report directory")
        .filter_map(Result::ok)
        .find(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("torture-small-")
        })
        .expect("a JSON report");
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.path()).expect("read the report"))
            .expect("the report is JSON");
    assert_eq!(document["report"]["passed"], true, "{stdout}");
    let checks: Vec<&str> = document["report"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        checks,
        [
            "equal",
            "linked",
            "duplicates",
            "lost_edits",
            "write_ratio",
            "settle"
        ]
    );
    assert_eq!(
        document["run"]["chaos"].as_array().map(Vec::len),
        Some(3),
        "a kill, a restart after it, and a RabbitMQ restart"
    );
    assert!(document["run"]["customer_edits"].as_u64() > Some(0));
    assert_ne!(
        broker.broker_supervisor(),
        supervisor_before,
        "the RabbitMQ restart must reach the test's own node"
    );
    let _ = std::fs::remove_dir_all(&out);
}
