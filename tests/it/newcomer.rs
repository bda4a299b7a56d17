//! A new user's first hour: the CLI finds the server and its token, says what went
//! wrong in one line, checks dates before asking; a start fails fast on an unreachable
//! database or a taken port, and the demo listens where it is told.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, TandemProcess, TestSqlite};

/// `tandem <args>` with only the given settings: none from the caller's environment
/// or a `tandem.toml`.
fn tandem(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir());
    command
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    tandem(args, env).output().expect("run tandem")
}

/// The one line a failed command printed on stderr; fails when there were more.
fn one_error_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a failure:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
    lines[0].to_string()
}

/// An address where nothing answers HTTP or PostgreSQL: a port bound a moment ago and
/// released. Another program could take it in between; then the command still fails.
fn closed_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}

#[test]
fn a_missing_admin_token_is_one_line_saying_how_to_give_it() {
    let url = format!("http://{}", closed_address());
    let output = run(&["status"], &[("TANDEM_URL", &url)]);
    let line = one_error_line(&output);
    assert!(line.starts_with("tandem: no admin token"), "{line}");
    for way in [
        "TANDEM_ADMIN_TOKEN=",
        "TANDEM_ADMIN_TOKEN_FILE=",
        "--token-file",
    ] {
        assert!(line.contains(way), "`{way}` not named: {line}");
    }
}

#[test]
fn an_unreachable_server_is_one_line_naming_it() {
    let url = format!("http://{}", closed_address());
    let output = run(
        &["status"],
        &[
            ("TANDEM_URL", &url),
            ("TANDEM_ADMIN_TOKEN", "0123456789abcdef"),
        ],
    );
    let line = one_error_line(&output);
    assert!(
        line.starts_with("tandem: cannot reach Tandem at "),
        "{line}"
    );
    assert!(line.contains(&url), "{line}");
}

#[test]
fn the_help_says_how_the_server_and_its_token_are_found() {
    for command in ["status", "replay", "resync", "conflicts"] {
        let output = run(&[command, "--help"], &[]);
        let help = String::from_utf8_lossy(&output.stdout);
        for mention in [
            "--url",
            "TANDEM_URL",
            "--token-file",
            "TANDEM_ADMIN_TOKEN_FILE",
        ] {
            assert!(
                help.contains(mention),
                "`tandem {command} --help` lacks {mention}:\n{help}"
            );
        }
    }
}

#[test]
fn a_malformed_date_is_refused_before_asking_naming_the_flag() {
    // A server that would see any request: nothing may reach it.
    let server = TcpListener::bind("127.0.0.1:0").expect("bind");
    server.set_nonblocking(true).expect("non-blocking");
    let url = format!("http://{}", server.local_addr().expect("addr"));
    let env = [
        ("TANDEM_URL", url.as_str()),
        ("TANDEM_ADMIN_TOKEN", "0123456789abcdef"),
    ];

    let replay = run(
        &[
            "replay",
            "--from",
            "2026-13-01",
            "--to",
            "2026-12-02T00:00:00Z",
        ],
        &env,
    );
    assert_eq!(
        one_error_line(&replay),
        "tandem: --from: `2026-13-01` is not an RFC 3339 time such as 2026-12-01T00:00:00Z"
    );
    let resync = run(
        &[
            "resync",
            "--pair",
            "acme",
            "--system",
            "crm",
            "--entity",
            "customer",
            "--modified-from",
            "2026-12-01T00:00:00Z",
            "--modified-to",
            "tomorrow",
        ],
        &env,
    );
    assert_eq!(
        one_error_line(&resync),
        "tandem: --modified-to: `tomorrow` is not an RFC 3339 time such as 2026-12-01T00:00:00Z"
    );
    let backwards = run(
        &[
            "replay",
            "--from",
            "2026-12-02T00:00:00Z",
            "--to",
            "2026-12-01T00:00:00Z",
        ],
        &env,
    );
    assert!(one_error_line(&backwards).starts_with("tandem: --to: "));
    assert!(
        server.accept().is_err(),
        "the command called the server with a malformed date"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_names_the_field_of_a_malformed_time_and_the_cli_shows_its_reason() {
    let db = TestSqlite::create();
    let token = "newcomer-admin-token-0123456789";
    let server = TandemProcess::start(
        &["serve"],
        &[
            ("TANDEM_DATABASE_URL", db.url.clone()),
            ("TANDEM_ADMIN_TOKEN", token.to_string()),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    for (path, body, field) in [
        (
            "/api/replay",
            serde_json::json!({"from": "2026-13-01", "to": "2026-12-02T00:00:00Z"}),
            "`from`",
        ),
        (
            "/api/resync",
            serde_json::json!({"pair": "acme", "system": "crm", "entity": "customer",
                "modified_from": "2026-12-01T00:00:00Z", "modified_to": "soon"}),
            "`modified_to`",
        ),
    ] {
        let answer = http
            .post(format!("{}{path}", server.base_url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("call the admin API");
        assert_eq!(answer.status(), 400);
        let body: serde_json::Value = answer.json().await.expect("a JSON error body");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(field)
                && error.contains("RFC 3339 time such as 2026-12-01T00:00:00Z"),
            "{body}"
        );
    }
    // A request the API cannot read at all is answered in the same JSON shape.
    let unreadable = http
        .post(format!("{}/api/replay", server.base_url))
        .bearer_auth(token)
        .json(&serde_json::json!({"from": 5, "to": "2026-12-02T00:00:00Z"}))
        .send()
        .await
        .expect("call the admin API");
    assert_eq!(unreadable.status(), 400);
    let body: serde_json::Value = unreadable.json().await.expect("a JSON error body");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );

    // A refusal the CLI cannot foresee: the server's reason is shown, once.
    let output = run(
        &[
            "resync",
            "--pair",
            "acme",
            "--system",
            "ledger",
            "--entity",
            "customer",
            "--everything",
        ],
        &[
            ("TANDEM_URL", &server.base_url),
            ("TANDEM_ADMIN_TOKEN", token),
        ],
    );
    let line = one_error_line(&output);
    assert!(
        line.starts_with("tandem: the server answered 400 Bad Request: "),
        "{line}"
    );
    assert!(line.contains("ledger"), "{line}");
}

#[test]
fn a_refusal_that_is_not_json_is_shown_as_its_text() {
    let server = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", server.local_addr().expect("addr"));
    let answering = std::thread::spawn(move || {
        let (mut stream, _) = server.accept().expect("accept");
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let body = "\n  the proxy refused this request  \n";
        let _ = write!(
            stream,
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let output = run(
        &["status"],
        &[
            ("TANDEM_URL", &url),
            ("TANDEM_ADMIN_TOKEN", "0123456789abcdef"),
        ],
    );
    let _ = answering.join();
    assert_eq!(
        one_error_line(&output),
        "tandem: the server answered 400 Bad Request: the proxy refused this request"
    );
}

/// Runs `tandem <args>` against PostgreSQL at `address` and returns how long it took
/// to fail and its one error line.
fn fails_on_database_at(args: &[&str], address: &str) -> (Duration, String) {
    let url = format!("postgres://tandem:db-password-123@{address}/tandem");
    let started = Instant::now();
    let output = run(
        args,
        &[
            ("TANDEM_DATABASE_URL", &url),
            ("TANDEM_LISTEN", "127.0.0.1:0"),
        ],
    );
    let took = started.elapsed();
    let line = one_error_line(&output);
    assert!(
        !line.contains("db-password-123"),
        "the password leaked: {line}"
    );
    assert!(
        line.contains(&format!("postgres://tandem:***@{address}/tandem")),
        "the URL is not named: {line}"
    );
    (took, line)
}

#[test]
fn a_database_that_never_answers_stops_the_start_within_five_seconds() {
    // Connections complete in the listen backlog and then hear nothing, as behind a
    // firewall that drops packets.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = silent.local_addr().expect("addr").to_string();
    for command in ["serve", "migrate"] {
        let (took, line) = fails_on_database_at(&[command], &address);
        assert!(
            took < Duration::from_secs(5),
            "`tandem {command}` took {took:?}: {line}"
        );
        assert!(line.contains("no answer within"), "{line}");
    }
    drop(silent);
}

#[test]
fn a_refused_database_connection_says_so_at_once() {
    let (took, line) = fails_on_database_at(&["migrate"], &closed_address());
    assert!(took < Duration::from_secs(5), "took {took:?}: {line}");
    assert!(line.contains("Connection refused"), "{line}");
}

#[test]
fn a_taken_port_is_named_with_the_way_out() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let expected = format!(
        "tandem: cannot listen on {address}: the address is in use; set TANDEM_LISTEN or \
         --listen to another address"
    );
    let db = TestSqlite::create();
    let serve = run(
        &["serve"],
        &[
            ("TANDEM_LISTEN", &address),
            ("TANDEM_DATABASE_URL", &db.url),
        ],
    );
    assert_eq!(one_error_line(&serve), expected);
    let started = Instant::now();
    let demo = run(&["demo", "--listen", &address], &[]);
    assert_eq!(one_error_line(&demo), expected);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the demo took {:?}",
        started.elapsed()
    );

    // A server logging JSON reports it once too, as a log record.
    let json = run(
        &["serve", "--listen", &address],
        &[
            ("TANDEM_LOG_FORMAT", "json"),
            ("TANDEM_DATABASE_URL", &db.url),
        ],
    );
    let line = one_error_line(&json);
    let record: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(record["level"], "ERROR", "{line}");
    assert!(line.contains("the address is in use"), "{line}");
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_listens_where_asked_and_the_cli_reaches_it_with_a_token_file() {
    let mut demo = tandem(
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--customers",
            "3",
            "--shared",
            "1",
            "--edits-per-second",
            "0",
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("start the demo");
    let (base, token) = support::line_from_stdout(&mut demo, "tandem demo", |line| {
        // "  dashboard: http://127.0.0.1:PORT/   admin token: TOKEN"
        let rest = line.trim().strip_prefix("dashboard: ")?;
        let (url, token) = rest.split_once("admin token: ")?;
        Some((
            url.trim().trim_end_matches('/').to_string(),
            token.trim().to_string(),
        ))
    })
    .await;
    let database = std::env::temp_dir().join(format!("tandem-demo-{}.db", demo.id()));
    let stop = StopOnDrop(demo);
    assert!(
        !base.ends_with(":0"),
        "the banner names the port asked for, not the one got: {base}"
    );
    let dashboard = reqwest::get(format!("{base}/"))
        .await
        .expect("the dashboard answers");
    assert_eq!(dashboard.status(), 200);

    let token_file = std::env::temp_dir().join(support::unique("admin_token"));
    std::fs::write(&token_file, format!("{token}\n")).expect("write the token file");
    let token_path = token_file.display().to_string();
    let by_flag = run(
        &["status", "--url", &base, "--token-file", &token_path],
        &[],
    );
    let by_env = run(
        &["conflicts"],
        &[
            ("TANDEM_URL", &base),
            ("TANDEM_ADMIN_TOKEN_FILE", &token_path),
        ],
    );
    let _ = std::fs::remove_file(&token_file);
    for (how, output) in [
        ("--token-file", by_flag),
        ("TANDEM_ADMIN_TOKEN_FILE", by_env),
    ] {
        assert!(
            output.status.success(),
            "with {how}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Stopped, the demo leaves none of its throw-away database behind.
    drop(stop);
    for suffix in ["", "-wal", "-shm"] {
        let mut path = database.clone().into_os_string();
        path.push(suffix);
        assert!(
            !std::path::Path::new(&path).exists(),
            "left behind: {}",
            path.to_string_lossy()
        );
    }
}

/// Stops a child process when the test ends, also when it fails: SIGTERM first, so the
/// demo removes its database file, then SIGKILL if it has not gone within 10 s.
struct StopOnDrop(std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
