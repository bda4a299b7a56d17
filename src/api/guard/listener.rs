//! The HTTP/1.1 server loop, in place of `poem::Server`, for what poem's server cannot
//! be told: a deadline on a request's headers (hyper has one, `header_read_timeout`,
//! but poem builds its hyper connection without a timer and does not expose it), and a
//! cap on connections open at once (poem accepts without bound). A connection over the
//! cap is answered 503 in JSON and closed, so a client learns why.
//!
//! Only HTTP/1.1 is served: webhook senders and admin clients speak it, a TLS proxy in
//! front speaks it to Tandem, and one protocol keeps the slow-client rules in one place.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::listener::Acceptor;
use poem::{Endpoint, Request};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::HttpLimits;

/// Serves `endpoint` on `acceptor` until `shutdown`, then lets open requests finish
/// for up to `grace` and closes what is left.
pub async fn serve<A, E>(
    mut acceptor: A,
    endpoint: E,
    limits: &HttpLimits,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()>
where
    A: Acceptor,
    E: Endpoint + 'static,
{
    let endpoint = Arc::new(endpoint);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS));
    let connections = TaskTracker::new();
    // `closing`: finish the request under way, take no other; `closed`: stop now.
    let (closing, closed) = (CancellationToken::new(), CancellationToken::new());
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = acceptor.accept() => accepted,
        };
        let (io, local, remote, scheme) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, usually: wait a moment for some to close
                // rather than spin on the error.
                tracing::warn!(error = %err, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(remote = %remote, max = limits.max_connections, "too many connections; refused one");
            crate::metrics::http_refused(crate::metrics::HttpRefusal::TooManyConnections);
            // Telling why costs a task and a socket for a moment; under a flood, the
            // refusals are bounded too, and past them a connection is just closed.
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                connections.spawn(async move {
                    refuse_busy(io, REFUSAL_TIME).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let endpoint = endpoint.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let endpoint = endpoint.clone();
            let request = Request::from((request, local.clone(), remote.clone(), scheme.clone()));
            async move {
                let response = endpoint.get_response(request).await;
                Ok::<_, Infallible>(hyper::Response::from(response))
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(io), service);
        let (closing, closed) = (closing.clone(), closed.clone());
        connections.spawn(async move {
            let _slot = slot;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = closing.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            tokio::select! {
                _ = connection => {}
                _ = closed.cancelled() => {}
            }
        });
    }
    drop(acceptor);
    closing.cancel();
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        closed.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// Connections over the cap being told so at once; more are closed without a word.
const REFUSALS: usize = 64;
/// The longest a refusal may take (a client that does not read its answer).
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// The answer to a connection over the cap, written without reading the request.
const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: 64\r\n\r\n{\"error\":\"too many connections are open; try again in a moment\"}";

/// Answers 503 and closes, within `within`. What the client already sent is read and dropped first
/// (up to a little, for a moment): closing a socket with unread data resets it, and
/// the client could lose the answer.
async fn refuse_busy<Io>(mut io: Io, within: Duration)
where
    Io: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(within, async {
        io.write_all(BUSY.as_bytes()).await?;
        io.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match io.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::BUSY;

    #[test]
    fn the_busy_answer_declares_its_length() {
        let (head, body) = BUSY.split_once("\r\n\r\n").unwrap();
        let declared: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(declared, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"]
            .as_str()
            .unwrap()
            .contains("too many connections"));
    }
}
