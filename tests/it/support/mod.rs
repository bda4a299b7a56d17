//! What the integration tests share: reaching the real PostgreSQL and RabbitMQ, with a
//! fresh database or queue prefix per test so tests run in parallel without meeting.
#![allow(dead_code)]

pub mod browser;
pub mod pg_wire;
pub mod private_rabbitmq;
pub mod xero_spec;

use std::future::Future;
use std::time::{Duration, Instant};

pub fn amqp_url() -> String {
    std::env::var("TANDEM_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn pg_admin_url() -> String {
    std::env::var("TANDEM_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub const START_RABBITMQ: &str =
    "start it with `rabbitmq-server -detached` (or point TANDEM_TEST_AMQP_URL at one)";
pub const START_POSTGRES: &str = "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (or point TANDEM_TEST_PG_URL at one)";

/// A name no other test uses.
/// The value of one series (its name with any labels) in a `/metrics` text; 0 when the
/// series has not appeared yet.
pub fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` until it holds or `within` passes; for conditions nothing can be
/// awaited on (a queue depth on the broker, a row another process writes).
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh PostgreSQL database for one test, dropped when the test ends (also when it
/// fails).
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        use sea_orm::ConnectionTrait;
        let admin_url = pg_admin_url();
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .unwrap_or_else(|err| {
                panic!("PostgreSQL is not reachable at {admin_url}: {err}; {START_POSTGRES}")
            });
        let name = unique("tandem_test");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or(&admin_url);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        on_own_runtime(async move {
            use sea_orm::ConnectionTrait;
            if let Ok(admin) = sea_orm::Database::connect(pg_admin_url()).await {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
            }
        });
    }
}

/// Runs clean-up to its end from a `Drop`: on a thread and runtime of its own, since
/// Drop cannot await and the test's runtime may be the one unwinding.
pub fn on_own_runtime(work: impl Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Runtime::new() {
            runtime.block_on(work);
        }
    })
    .join();
}

/// A fresh SQLite file for one test, removed when the test ends.
pub struct TestSqlite {
    pub url: String,
    path: std::path::PathBuf,
}

impl TestSqlite {
    pub fn create() -> Self {
        let path = std::env::temp_dir().join(format!("{}.db", unique("tandem_test")));
        Self {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            path,
        }
    }
}

impl Drop for TestSqlite {
    fn drop(&mut self) {
        // The key file the engine makes beside a SQLite database goes with it.
        for suffix in ["", "-wal", "-shm", ".secrets-key"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A `tandem` process started by a test, killed when the test ends.
pub struct TandemProcess {
    pub child: std::process::Child,
    pub base_url: String,
}

impl TandemProcess {
    /// Starts `tandem <args>` with the given settings on a port the OS picks, reads the
    /// address from the `listening on` line it prints and waits until it answers
    /// `/health`.
    pub async fn start(args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"));
        for (key, _) in std::env::vars() {
            if key.starts_with("TANDEM_") && !key.starts_with("TANDEM_TEST_") {
                command.env_remove(key);
            }
        }
        command
            .args(args)
            .env("TANDEM_LISTEN", "127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .current_dir(std::env::temp_dir());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start tandem");
        let base_url = line_from_stdout(&mut child, "tandem", |line| {
            tandem::service::listening_url(line).map(str::to_string)
        })
        .await;
        let process = Self { child, base_url };
        let client = reqwest::Client::new();
        let health = format!("{}/health", process.base_url);
        eventually(Duration::from_secs(60), "tandem answers /health", || {
            let client = client.clone();
            let health = health.clone();
            async move {
                client
                    .get(&health)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .await;
        process
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "tandem did not exit within 30s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TandemProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the first line of `child`'s (piped) stdout that `pick` accepts, such as
/// the address a server bound on port 0, and returns what it picked. Every line,
/// before and after, is passed on to the test's own output.
pub async fn line_from_stdout<T: Send + 'static>(
    child: &mut std::process::Child,
    name: &str,
    pick: impl Fn(&str) -> Option<T> + Send + 'static,
) -> T {
    use std::io::BufRead as _;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (found, mut picked) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(value) = pick(&line) {
                let _ = found.send(value);
            }
            println!("{line}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout(Duration::from_millis(100), picked.recv()).await {
            Ok(Some(value)) => return value,
            Ok(None) => panic!(
                "{name} closed its output before saying where it listens (exit: {:?})",
                child.wait()
            ),
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{name} exited ({status}) before saying where it listens");
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} did not say where it listens within 60s"
                );
            }
        }
    }
}

/// A person the simulated CRM creates, named `name`, with an e-mail unique to this
/// run (`ada.lovelace.<pid>@example.com`).
pub fn customer_named(name: &str) -> sim::CustomerSeed {
    sim::CustomerSeed {
        name: name.into(),
        email: format!(
            "{}.{}@example.com",
            name.to_lowercase().replace(' ', "."),
            std::process::id()
        ),
        phone: None,
    }
}

/// Whether the simulated Xero holds a customer with this e-mail.
pub fn in_xero(sims: &sim::Simulators, email: &str) -> bool {
    sims.xero
        .customers()
        .iter()
        .any(|c| c.email.as_deref() == Some(email))
}

/// Runs `tandem::service::serve_with` in this process on a port the OS picks, and
/// returns the task and the server's base URL once it is bound.
pub async fn serve_in_process(
    settings: tandem::config::Settings,
    options: tandem::wiring::WiringOptions,
    stop: tokio_util::sync::CancellationToken,
) -> (tokio::task::JoinHandle<anyhow::Result<()>>, String) {
    serve_in_process_as(settings, options, tandem::cli::ServeArgs::default(), stop).await
}

/// [`serve_in_process`] with the command line's choices (`--no-workers`, ...).
pub async fn serve_in_process_as(
    mut settings: tandem::config::Settings,
    mut options: tandem::wiring::WiringOptions,
    args: tandem::cli::ServeArgs,
    stop: tokio_util::sync::CancellationToken,
) -> (tokio::task::JoinHandle<anyhow::Result<()>>, String) {
    settings.listen = "127.0.0.1:0".into();
    let (listening, mut bound) = tokio::sync::mpsc::unbounded_channel();
    options.listening = Some(listening);
    let mut task = tokio::spawn(tandem::service::serve_with(settings, args, stop, options));
    tokio::select! {
        addr = bound.recv() => match addr {
            Some(addr) => (task, format!("http://{addr}")),
            // The sender went with the options: the server stopped before binding.
            None => panic!("tandem stopped before it listened: {:?}", (&mut task).await),
        },
        ended = &mut task => panic!("tandem stopped before it listened: {ended:?}"),
    }
}

/// A port free a moment ago, for a program that cannot bind port 0 and say which port
/// it got; another program may take it in between, so the caller retries on a clash.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// The RabbitMQ queues and exchange of one test's bus prefix, deleted when the test
/// ends (also on panic): a durable queue left behind costs the broker memory, and a
/// quorum queue its own log, in every later run on the machine.
/// Deletes a test's queues when dropped: the lanes' and, as the bus keeps a queue per
/// pair, those of the pairs named.
pub struct TestQueues {
    prefix: String,
    pairs: Vec<String>,
}

impl TestQueues {
    pub fn new<P: ToString>(prefix: &str, pairs: impl IntoIterator<Item = P>) -> Self {
        Self {
            prefix: prefix.to_string(),
            pairs: pairs.into_iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl Drop for TestQueues {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let pairs = std::mem::take(&mut self.pairs);
        on_own_runtime(async move {
            let config = tandem::bus::BusConfig {
                pairs,
                ..tandem::bus::BusConfig::new(amqp_url(), prefix)
            };
            if let Ok(bus) = tandem::bus::rabbitmq::RabbitBus::connect(config).await {
                let _ = bus.delete_topology().await;
            }
        });
    }
}
