//! The listener against slow, oversized and too many connections, and a handler that
//! panics, over raw TCP where a client library would not misbehave on purpose.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use poem::listener::{Acceptor as _, Listener as _};
use poem::{get, handler, Route};
use tandem::api::guard::{guarded, listener::serve, HttpLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{assert_nothing_internal, error_message, test_limits, Hostile, TOKEN};

/// Sends `request` and reads until the server closes the connection; the time it
/// took. Fails if the server keeps it open for `within`.
async fn exchange(addr: SocketAddr, request: &[u8], within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut answer)).await {
        Ok(Ok(_)) => {}
        // A reset after the answer is a close too.
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(err)) => panic!("reading the answer failed: {err}"),
        Err(_) => panic!("the server kept the connection open for {within:?}"),
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// The status and body of a raw HTTP/1.1 answer.
fn status_and_body(answer: &str) -> (u16, &str) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, body)
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_closed_after_the_deadline() {
    let server = Hostile::start(test_limits()).await;
    let (answer, took) = exchange(
        server.addr,
        b"GET /health HTTP/1.1\r\nHost: tandem\r\nX-Slow: 1",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        took >= Duration::from_millis(900),
        "closed after {took:?}, before the deadline"
    );
    assert!(
        !answer.contains("200 OK"),
        "a request without its headers was served: {answer}"
    );
    server.assert_answers("after a slow client").await;
}

#[tokio::test]
async fn a_body_dribbled_slower_than_the_deadline_is_a_408() {
    let server = Hostile::start(test_limits()).await;
    let slow_before = server.refusals("body_too_slow").await;
    let request = format!(
        "POST /api/replay HTTP/1.1\r\nHost: tandem\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    let (answer, took) = exchange(server.addr, request.as_bytes(), Duration::from_secs(10)).await;
    let (status, body) = status_and_body(&answer);
    assert_eq!(status, 408, "{answer}");
    assert_eq!(server.refusals("body_too_slow").await, slow_before + 1);
    assert!(error_message("dribbled body", body).contains("within 1 seconds"));
    assert!(took >= Duration::from_millis(900), "refused after {took:?}");
    assert_eq!(server.queued_and_stored().await, (0, 0));
    server.assert_answers("after a dribbled body").await;
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_a_413_before_the_body_is_sent() {
    let server = Hostile::start(test_limits()).await;
    let large_before = server.refusals("body_too_large").await;
    for (path, limit) in [("/api/resync", 262_144), ("/webhooks/acme/finance", 65_536)] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: tandem\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 5000000000\r\n\r\n"
        );
        // No body follows: the answer can only come from the declared length.
        let (answer, _) = exchange(server.addr, request.as_bytes(), Duration::from_secs(5)).await;
        let (status, body) = status_and_body(&answer);
        assert_eq!(status, 413, "{path}: {answer}");
        let message = error_message(path, body);
        assert!(
            message.contains(&format!("larger than {limit} bytes")),
            "{path}: {message}"
        );
        assert_nothing_internal(path, body);
    }
    assert_eq!(server.refusals("body_too_large").await, large_before + 2);
    let conflicting = format!(
        "POST /api/resync HTTP/1.1\r\nHost: tandem\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{{}}"
    );
    let (answer, _) = exchange(server.addr, conflicting.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_and_body(&answer).0, 400, "two lengths: {answer}");
    assert_eq!(server.queued_and_stored().await, (0, 0));
    server.assert_answers("after oversized declarations").await;
}

#[tokio::test]
async fn a_connection_over_the_cap_is_a_503_and_the_slot_comes_back() {
    let server = Hostile::start(HttpLimits {
        max_connections: 3,
        // Long enough that the held connections are not closed during the test.
        header_read_timeout: Duration::from_secs(30),
        ..test_limits()
    })
    .await;
    let refused_before = server.refusals("too_many_connections").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    let (answer, _) = exchange(
        server.addr,
        b"GET /health HTTP/1.1\r\nHost: tandem\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let (status, body) = status_and_body(&answer);
    assert_eq!(status, 503, "{answer}");
    assert!(error_message("over the cap", body).contains("too many connections"));
    drop(held);
    crate::support::eventually(Duration::from_secs(10), "a slot comes back", || async {
        reqwest::Client::new()
            .get(format!("{}/health", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    })
    .await;
    // Read once a slot is free again (the scrape is a connection too); waiting for the
    // slot may itself have been refused, so at least the one above is counted.
    assert!(
        server.refusals("too_many_connections").await > refused_before,
        "the refusal is counted"
    );
}

#[handler]
fn panics() -> &'static str {
    panic!("an invariant broke: SELECT * FROM entity_link")
}

#[handler]
fn answers() -> &'static str {
    "still here"
}

/// The log lines written while it is held, on this thread (a `#[tokio::test]` runs the
/// server's tasks on the test's own thread).
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || CapturedWriter(writer.clone()))
            .finish();
        (Self(lines), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("the log")).into_owned()
    }
}

struct CapturedWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("the log").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// No handler of Tandem's is known to panic, so the guard is proven on a small app
/// served exactly as Tandem's routes are: the same guard, the same server loop, real
/// TCP.
#[tokio::test]
async fn a_handler_that_panics_is_a_500_in_json_and_the_server_goes_on() {
    let (log, _capturing) = CapturedLog::start();
    let limits = test_limits();
    let app = guarded(
        Route::new()
            .at("/panics", get(panics))
            .at("/answers", get(answers)),
        &limits,
    );
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let addr = acceptor.local_addr()[0]
        .as_socket_addr()
        .copied()
        .expect("an address");
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let server =
        tokio::spawn(async move { serve(acceptor, app, &limits, stopped, Duration::ZERO).await });
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/panics"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 500);
    let text = response.text().await.expect("a body");
    assert!(error_message("panic", &text).contains("internal error"));
    assert_nothing_internal("panic", &text);
    assert!(
        !text.contains("invariant"),
        "the panic's words leaked: {text}"
    );
    let logged = log.text();
    assert!(
        logged.contains("ERROR") && logged.contains("an invariant broke"),
        "the panic is not in the log: {logged}"
    );
    let response = client
        .get(format!("http://{addr}/answers"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.text().await.expect("a body"), "still here");
    stop.cancel();
    server.await.expect("the server task").expect("the server");
}
