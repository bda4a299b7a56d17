//! The small torture profile, as the README's test command runs it: a few hundred
//! customers and invoices edited on both sides while the simulators misbehave, the
//! engine killed once with SIGKILL and RabbitMQ restarted once; every check of the
//! convergence checker must pass. It restarts RabbitMQ, so it runs alone (scripts/test.sh).

use crate::support;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_small_torture_profile_converges() {
    let db = support::TestDatabase::create().await;
    let out = std::env::temp_dir().join(support::unique("torture-report"));
    let run = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["torture", "--profile", "small", "--out"])
        .arg(&out)
        .env("TANDEM_DATABASE_URL", &db.url)
        .env("TANDEM_AMQP_URL", support::amqp_url())
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
}
