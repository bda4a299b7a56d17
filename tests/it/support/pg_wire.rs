//! A PostgreSQL wire counter: a TCP proxy in front of the test server that forwards
//! bytes both ways untouched and reads the client's side of the v3 protocol, so a test
//! can say exactly how many round trips one operation cost and which statements went.
//!
//! What counts as a round trip: a message after which the client waits for the
//! server's answer before it can go on.
//! - A simple `Query` ('Q'): the client waits for `ReadyForQuery`.
//! - A `Sync` ('S'): it ends an extended-protocol batch (Parse, Bind, Describe,
//!   Execute, Close) and the client waits for `ReadyForQuery`. What the batch held
//!   says which kind it was: `Execute` (it bound or executed statements), `Prepare`
//!   (it only parsed: the first use of a statement on that connection; sqlx caches it
//!   per connection after that), `Close` (it only closed statements: a full statement
//!   cache evicting one), or a ping (nothing at all: sqlx's `Connection::ping`).
//! - A `Flush` ('H'), when the client then waits: its next bytes come only after the
//!   server answered. A Flush the client sends more messages behind at once is not a
//!   round trip. (sqlx 0.8 never sends one; other drivers wait on Parse/Describe/Flush.)
//! - The startup packet, and each password message ('p') during authentication: the
//!   client waits for the server's challenge or `ReadyForQuery`.
//!
//! Pings are of two kinds, told apart by what came before on their connection: the
//! pool's check when it takes a connection back (sqlx 0.8 sends one at every give-back,
//! unconditionally, from a task of its own, so no caller waits for it) follows the
//! connection's last use; a check before use (`test_before_acquire`) follows another
//! ping, the give-back of the connection's previous use.
//!
//! Not counted: an `SSLRequest` or `GSSENCRequest`, which the proxy itself refuses
//! ('N') so that the rest is plain text it can read (the client goes on without TLS, as
//! `sslmode=prefer` allows); messages inside a COPY; `Terminate`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One round trip the client made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundTrip {
    /// Which proxied connection, numbered from 1 in the order they opened.
    pub connection: u32,
    pub kind: TripKind,
    /// The statements it carried, in order: the text of each Query, Parse, and the
    /// statement each Bind named.
    pub statements: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TripKind {
    /// A new connection's startup packet.
    Connect,
    /// A password or SASL message during authentication.
    Authenticate,
    /// A simple Query message.
    Query,
    /// A Sync after statements were bound or executed.
    Execute,
    /// A Sync after statements were only parsed.
    Prepare,
    /// A Sync after statements were only closed.
    Close,
    /// A bare Sync after another bare Sync: a check before a connection is used.
    CheckPing,
    /// A bare Sync after the connection's last use: the pool taking it back.
    GiveBackPing,
    /// A Flush the client waited on.
    Flush,
}

impl TripKind {
    /// Round trips a steady-state operation waits for: not the opening of a connection,
    /// not the one-time preparation of a statement on a connection, and not the ping
    /// the pool sends from its own task when it takes a connection back.
    pub fn is_waited_in_steady_state(self) -> bool {
        !matches!(
            self,
            TripKind::Connect | TripKind::Authenticate | TripKind::Prepare | TripKind::GiveBackPing
        )
    }

    fn label(self) -> &'static str {
        match self {
            TripKind::Connect => "connect",
            TripKind::Authenticate => "auth",
            TripKind::Query => "query",
            TripKind::Execute => "execute",
            TripKind::Prepare => "prepare",
            TripKind::Close => "close",
            TripKind::CheckPing => "check ping",
            TripKind::GiveBackPing => "give-back ping",
            TripKind::Flush => "flush",
        }
    }
}

/// What went over the wire between two points of a test.
#[derive(Clone, Debug, Default)]
pub struct WireReport {
    pub trips: Vec<RoundTrip>,
    /// Protocol messages by type byte ('Q', 'S', 'P', 'B', ...), startup excluded.
    pub messages: HashMap<char, u64>,
}

impl WireReport {
    /// Every round trip, whatever its kind.
    pub fn round_trips(&self) -> usize {
        self.trips.len()
    }

    pub fn count(&self, kind: TripKind) -> usize {
        self.trips.iter().filter(|t| t.kind == kind).count()
    }

    /// The round trips a steady-state operation waits for (see
    /// [`TripKind::is_waited_in_steady_state`]).
    pub fn waited(&self) -> usize {
        self.trips
            .iter()
            .filter(|t| t.kind.is_waited_in_steady_state())
            .count()
    }

    /// Simple Query messages sent.
    pub fn queries(&self) -> u64 {
        self.messages.get(&'Q').copied().unwrap_or(0)
    }

    /// Sync messages sent.
    pub fn syncs(&self) -> u64 {
        self.messages.get(&'S').copied().unwrap_or(0)
    }

    /// The kinds of the round trips, in order: for asserting a known sequence.
    pub fn kinds(&self) -> Vec<TripKind> {
        self.trips.iter().map(|t| t.kind).collect()
    }

    /// Every statement text sent, in order.
    pub fn statements(&self) -> Vec<&str> {
        self.trips
            .iter()
            .flat_map(|t| t.statements.iter().map(String::as_str))
            .collect()
    }
}

impl fmt::Display for WireReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<(TripKind, usize)> = Vec::new();
        for trip in &self.trips {
            match kinds.iter_mut().find(|(k, _)| *k == trip.kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((trip.kind, 1)),
            }
        }
        kinds.sort();
        let summary: Vec<String> = kinds
            .iter()
            .map(|(k, n)| format!("{n} {}", k.label()))
            .collect();
        writeln!(
            f,
            "{} round trips, {} waited ({}); {} Query and {} Sync messages",
            self.round_trips(),
            self.waited(),
            summary.join(", "),
            self.queries(),
            self.syncs()
        )?;
        for (n, trip) in self.trips.iter().enumerate() {
            let statements: Vec<String> = trip.statements.iter().map(|s| shorten(s)).collect();
            writeln!(
                f,
                "  {:>2}. c{} {:<14} {}",
                n + 1,
                trip.connection,
                trip.kind.label(),
                statements.join(" | ")
            )?;
        }
        Ok(())
    }
}

/// A statement on one line, its column and value lists elided and the rest cut.
fn shorten(sql: &str) -> String {
    let mut flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.starts_with("SELECT ") {
        if let Some(from) = flat.find(" FROM ") {
            flat = format!("SELECT …{}", &flat[from..]);
        }
    } else if flat.starts_with("INSERT INTO ") {
        flat = elide_group(&flat, 0);
        if let Some(values) = flat.find("VALUES (") {
            flat = elide_group(&flat, values);
            // Rows after the first: `VALUES (…), (…), (…)` reads as `VALUES (…) ×3`.
            let mut rows = 1;
            let mut next = flat[values..]
                .find("(…)")
                .map(|at| values + at + "(…)".len());
            while let Some(after) = next.filter(|at| flat[*at..].starts_with(", (")) {
                flat = elide_group(&flat, after);
                flat.replace_range(after..after + ", (…)".len(), "");
                rows += 1;
                next = Some(after);
            }
            if rows > 1 {
                let at = next.unwrap_or(flat.len());
                flat.insert_str(at, &format!(" ×{rows}"));
            }
        }
    }
    const KEEP: usize = 160;
    if flat.chars().count() <= KEEP {
        flat
    } else {
        let cut: String = flat.chars().take(KEEP).collect();
        format!("{cut}…")
    }
}

/// `text` with the first parenthesised group at or after byte `from` shown as `(…)`.
fn elide_group(text: &str, from: usize) -> String {
    let Some(open) = text[from..].find('(').map(|at| from + at) else {
        return text.to_string();
    };
    let mut depth = 0;
    for (at, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return format!("{}(…){}", &text[..open], &text[open + at + 1..]);
                }
            }
            _ => {}
        }
    }
    text.to_string()
}

#[derive(Default)]
struct Recorded {
    trips: Vec<RoundTrip>,
    messages: HashMap<char, u64>,
    last_activity: Option<Instant>,
}

#[derive(Default)]
struct Shared {
    recorded: Mutex<Recorded>,
    connections: AtomicU32,
}

impl Shared {
    fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn trip(&self, connection: u32, kind: TripKind, statements: Vec<String>) {
        let mut recorded = self.recorded();
        recorded.trips.push(RoundTrip {
            connection,
            kind,
            statements,
        });
        recorded.last_activity = Some(Instant::now());
    }

    fn message(&self, kind: u8) {
        let mut recorded = self.recorded();
        *recorded.messages.entry(kind as char).or_default() += 1;
        recorded.last_activity = Some(Instant::now());
    }
}

/// The proxy; it stops when dropped.
pub struct PgWire {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl PgWire {
    /// A proxy on 127.0.0.1, a port the OS picks, in front of the server the tests use.
    pub async fn start() -> Self {
        let upstream = upstream_addr(&super::pg_admin_url());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the wire counter");
        let addr = listener.local_addr().expect("wire counter address");
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = accepting.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = proxy(client, server, shared).await;
                    }
                });
            }
        });
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// `database_url` (a `postgres://` URL of the test server) pointed at the proxy.
    pub fn url(&self, database_url: &str) -> String {
        let (scheme, rest) = database_url.split_once("://").expect("a postgres:// URL");
        let (user, rest) = match rest.split_once('@') {
            Some((user, rest)) => (format!("{user}@"), rest),
            None => (String::new(), rest),
        };
        let path = rest.find('/').map(|at| &rest[at..]).unwrap_or("");
        format!("{scheme}://{user}{}{path}", self.addr)
    }

    /// Everything counted since the start or the last [`reset`](Self::reset).
    pub fn snapshot(&self) -> WireReport {
        let recorded = self.shared.recorded();
        WireReport {
            trips: recorded.trips.clone(),
            messages: recorded.messages.clone(),
        }
    }

    /// Forgets everything counted so far.
    pub fn reset(&self) {
        let mut recorded = self.shared.recorded();
        recorded.trips.clear();
        recorded.messages.clear();
    }

    /// Waits until no client has sent anything for 100 ms (at most 5 s): the pool's
    /// give-back pings run after the caller has its answer.
    pub async fn quiet(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let last = self.shared.recorded().last_activity;
            let quiet_for = last.map_or(Duration::MAX, |at| at.elapsed());
            if quiet_for >= Duration::from_millis(100) || Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for [`quiet`](Self::quiet), returns what was counted and resets.
    pub async fn take(&self) -> WireReport {
        self.quiet().await;
        let report = self.snapshot();
        self.reset();
        report
    }
}

impl Drop for PgWire {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn upstream_addr(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:5432")
    }
}

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// One client connection: the startup phase, then messages until either side closes.
async fn proxy(
    mut client: TcpStream,
    server: TcpStream,
    shared: Arc<Shared>,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    // The startup phase: length-prefixed packets with no type byte.
    let startup = loop {
        let len = client.read_u32().await? as usize;
        let mut body = vec![0; len.saturating_sub(4)];
        client.read_exact(&mut body).await?;
        let code = body
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            client.write_all(b"N").await?;
            continue;
        }
        let mut packet = (len as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        break (code, packet);
    };
    let (code, packet) = startup;
    let counted = code != CANCEL_REQUEST;
    let connection = if counted {
        shared.connections.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        0
    };
    let (mut server_read, mut server_write) = server.into_split();
    let (mut client_read, mut client_write) = client.into_split();
    server_write.write_all(&packet).await?;
    if counted {
        shared.trip(connection, TripKind::Connect, vec![]);
    }
    let answered = Arc::new(AtomicU64::new(0));
    let answers = answered.clone();
    let back = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            answers.fetch_add(n as u64, Ordering::SeqCst);
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    });
    let mut reader = ClientStream::new(connection, shared, answered);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        server_write.write_all(&buf[..n]).await?;
        if counted {
            reader.feed(&buf[..n]);
        }
    }
    let _ = server_write.shutdown().await;
    back.abort();
    Ok(())
}

/// What the client said since its last round trip, on one connection.
#[derive(Default)]
struct Batch {
    statements: Vec<String>,
    parsed: bool,
    executed: bool,
    closed: bool,
}

/// Reads the client→server messages of one connection as they are forwarded.
struct ClientStream {
    connection: u32,
    shared: Arc<Shared>,
    /// Bytes the server has sent so far, to tell whether a Flush was waited on.
    answered: Arc<AtomicU64>,
    pending: Vec<u8>,
    /// Prepared statements by name, so a Bind can say which statement it runs.
    prepared: HashMap<String, String>,
    batch: Batch,
    /// The answer count when the client flushed and sent nothing behind it.
    flushed_at: Option<u64>,
    /// Whether the previous round trip on this connection was a bare Sync.
    after_ping: bool,
}

impl ClientStream {
    fn new(connection: u32, shared: Arc<Shared>, answered: Arc<AtomicU64>) -> Self {
        Self {
            connection,
            shared,
            answered,
            pending: Vec::new(),
            prepared: HashMap::new(),
            batch: Batch::default(),
            flushed_at: None,
            // The connection has been used (its startup) before its first ping.
            after_ping: false,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if let Some(at) = self.flushed_at.take() {
            if self.answered.load(Ordering::SeqCst) > at {
                let statements = self.batch.statements.clone();
                self.trip(TripKind::Flush, statements);
            }
        }
        self.pending.extend_from_slice(bytes);
        let mut last = None;
        while self.pending.len() >= 5 {
            let len = u32::from_be_bytes([
                self.pending[1],
                self.pending[2],
                self.pending[3],
                self.pending[4],
            ]) as usize;
            if self.pending.len() < 1 + len {
                break;
            }
            let kind = self.pending[0];
            let body: Vec<u8> = self.pending[5..1 + len].to_vec();
            self.pending.drain(..1 + len);
            self.message(kind, &body);
            last = Some(kind);
        }
        if last == Some(b'H') && self.pending.is_empty() {
            self.flushed_at = Some(self.answered.load(Ordering::SeqCst));
        }
    }

    fn trip(&mut self, kind: TripKind, statements: Vec<String>) {
        self.after_ping = matches!(kind, TripKind::CheckPing | TripKind::GiveBackPing);
        self.shared.trip(self.connection, kind, statements);
    }

    fn message(&mut self, kind: u8, body: &[u8]) {
        self.shared.message(kind);
        match kind {
            b'Q' => {
                let sql = cstr(body).0;
                self.trip(TripKind::Query, vec![sql]);
            }
            b'P' => {
                let (name, rest) = cstr(body);
                let (sql, _) = cstr(rest);
                self.prepared.insert(name, sql.clone());
                self.batch.statements.push(sql);
                self.batch.parsed = true;
            }
            b'B' => {
                let (_portal, rest) = cstr(body);
                let (name, _) = cstr(rest);
                let sql = self
                    .prepared
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| format!("<statement {name:?}>"));
                // A statement parsed in this batch is listed once.
                if !(self.batch.parsed && self.batch.statements.last() == Some(&sql)) {
                    self.batch.statements.push(sql);
                }
                self.batch.executed = true;
            }
            b'E' => self.batch.executed = true,
            b'C' if body.first() == Some(&b'S') => {
                let (name, _) = cstr(&body[1..]);
                self.prepared.remove(&name);
                self.batch.closed = true;
            }
            b'S' => {
                let batch = std::mem::take(&mut self.batch);
                let kind = if batch.executed {
                    TripKind::Execute
                } else if batch.parsed {
                    TripKind::Prepare
                } else if batch.closed {
                    TripKind::Close
                } else if self.after_ping {
                    TripKind::CheckPing
                } else {
                    TripKind::GiveBackPing
                };
                self.trip(kind, batch.statements);
            }
            b'p' => self.trip(TripKind::Authenticate, vec![]),
            _ => {}
        }
    }
}

/// A NUL-terminated string and what follows it.
fn cstr(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    (text, bytes.get(end + 1..).unwrap_or(&[]))
}
