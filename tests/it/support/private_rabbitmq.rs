//! A RabbitMQ node of a test's own, for the tests that stop and start the broker: the
//! machine's node serves everyone else on the machine, who would lose it for a while.
//! The node runs from the installed server scripts with everything it writes (settings,
//! data, logs, Erlang cookie) in a temporary directory, on ports of its own, and is
//! stopped and removed when the test ends, also when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, unique};

/// Where Debian's `rabbitmq-server` package keeps the real scripts (those in
/// /usr/sbin switch to the `rabbitmq` user, who cannot read a test's files).
const DEBIAN_SCRIPTS: &str = "/usr/lib/rabbitmq/bin";
/// A port can be taken by another program between picking and binding it.
const ATTEMPTS: usize = 5;
const BOOT_LIMIT: Duration = Duration::from_secs(120);

pub struct PrivateRabbitMq {
    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub amqp_url: String,
    node: String,
    scripts: PathBuf,
    dir: PathBuf,
    server: Child,
}

/// Why a start failed: a port taken in between (try other ports) or anything else.
enum StartError {
    PortTaken(String),
    Failed(String),
}

impl PrivateRabbitMq {
    /// Starts a fresh node and waits until it takes connections.
    pub fn start() -> Self {
        let scripts = scripts_dir();
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            match Self::try_start(&scripts) {
                Ok(node) => return node,
                Err(StartError::PortTaken(log)) => last = log,
                Err(StartError::Failed(why)) => panic!("{why}"),
            }
        }
        panic!("a private RabbitMQ node found its ports taken {ATTEMPTS} times; last log:\n{last}")
    }

    fn try_start(scripts: &Path) -> Result<Self, StartError> {
        let dir = std::env::temp_dir().join(unique("tandem_rabbitmq"));
        std::fs::create_dir_all(&dir).expect("a directory for the private RabbitMQ node");
        let amqp_port = free_port();
        let dist_port = std::iter::repeat_with(free_port)
            .find(|port| *port != amqp_port)
            .expect("a second free port");
        write_files(&dir);
        let node = format!("{}@localhost", unique("tandem"));
        let log = std::fs::File::create(dir.join("server.log")).expect("the server's log");
        let mut command = Command::new(scripts.join("rabbitmq-server"));
        isolate(&mut command, &dir, &node);
        command
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the server's log"))
            .stderr(log);
        let server = command.spawn().map_err(|err| {
            StartError::Failed(format!(
                "cannot start {} ({err}); {INSTALL}",
                scripts.join("rabbitmq-server").display()
            ))
        })?;
        let mut broker = Self {
            amqp_url: format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f"),
            node,
            scripts: scripts.to_path_buf(),
            dir,
            server,
        };
        broker.wait_for_boot()?;
        Ok(broker)
    }

    /// Waits until the node has booted, or says why it never will; a failed node is
    /// cleaned up by `Drop` as `broker` goes out of scope.
    fn wait_for_boot(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + BOOT_LIMIT;
        loop {
            if let Ok(Some(status)) = self.server.try_wait() {
                let log = self.log();
                let taken = ["eaddrinuse", "dist_port_already_used", "could not bind"]
                    .iter()
                    .any(|sign| log.contains(sign));
                return Err(if taken {
                    StartError::PortTaken(log)
                } else {
                    StartError::Failed(format!(
                        "the private RabbitMQ node stopped ({status}) while booting:\n{log}"
                    ))
                });
            }
            if self.ctl_quietly(&["await_startup", "--timeout", "5"]) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartError::Failed(format!(
                    "the private RabbitMQ node did not boot within {BOOT_LIMIT:?}:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops the broker application (connections drop, the node stays up).
    pub fn stop_app(&self) {
        self.ctl(&["stop_app"]);
    }

    /// Starts the broker application again and waits until it takes connections.
    pub fn start_app(&self) {
        self.ctl(&["start_app"]);
        self.ctl(&["await_startup"]);
    }

    /// A shell command that restarts this node's broker application, for
    /// `tandem torture --restart-rabbitmq`.
    pub fn restart_command(&self) -> String {
        let ctl = format!(
            "env HOME='{dir}' RABBITMQ_CONF_ENV_FILE='{dir}/rabbitmq-env.conf' '{ctl}' -q -n '{node}'",
            dir = self.dir.display(),
            ctl = self.scripts.join("rabbitmqctl").display(),
            node = self.node,
        );
        format!("{ctl} stop_app && {ctl} start_app")
    }

    /// The process that supervises the broker application: a new one after every
    /// `stop_app`/`start_app`, so a test can tell that its restart reached this node.
    pub fn broker_supervisor(&self) -> String {
        self.ctl(&["eval", "whereis(rabbit_sup)."])
            .trim()
            .to_string()
    }

    fn ctl(&self, args: &[&str]) -> String {
        let output = self
            .ctl_command(args)
            .output()
            .unwrap_or_else(|err| panic!("cannot run rabbitmqctl {args:?}: {err}"));
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} on the private node failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn ctl_quietly(&self, args: &[&str]) -> bool {
        self.ctl_command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    fn ctl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.scripts.join("rabbitmqctl"));
        isolate(&mut command, &self.dir, &self.node);
        command.args(["-q", "-n", &self.node]).args(args);
        command
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for PrivateRabbitMq {
    fn drop(&mut self) {
        // `rabbitmq-server` is a script whose child is the Erlang VM: stop the VM, and
        // kill it by its pid file if it will not stop.
        if !self.ctl_quietly(&["stop", "--timeout", "30"]) {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.server.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const INSTALL: &str = "the private RabbitMQ node runs from Debian's rabbitmq-server package \
     (apt-get install rabbitmq-server); elsewhere set TANDEM_TEST_RABBITMQ_SCRIPTS to the \
     directory holding rabbitmq-server and rabbitmqctl";

fn scripts_dir() -> PathBuf {
    let dir = std::env::var_os("TANDEM_TEST_RABBITMQ_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_SCRIPTS));
    assert!(
        dir.join("rabbitmq-server").exists() && dir.join("rabbitmqctl").exists(),
        "no rabbitmq-server and rabbitmqctl in {}; {INSTALL}",
        dir.display()
    );
    dir
}

/// The node's own settings, so nothing is read from /etc/rabbitmq (whose listener is
/// the machine's port): no plugins (the management plugin would want port 15672), an
/// empty environment file and a cookie only this node and its rabbitmqctl know.
fn write_files(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .unwrap_or_else(|err| panic!("cannot write {name} for the private node: {err}"));
    };
    write("enabled_plugins", "[].\n");
    write("rabbitmq-env.conf", "");
    write("rabbitmq.conf", "loopback_users.guest = true\n");
    let cookie = dir.join(".erlang.cookie");
    write(".erlang.cookie", &uuid::Uuid::new_v4().simple().to_string());
    std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400))
        .expect("the cookie's permissions");
}

/// What the server and rabbitmqctl share: the node's name, its home (where Erlang finds
/// the cookie) and no settings from this machine's node or the caller's environment.
fn isolate(command: &mut Command, dir: &Path, node: &str) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RABBITMQ_") {
            command.env_remove(key);
        }
    }
    command
        .env("HOME", dir)
        .env("RABBITMQ_NODENAME", node)
        .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
        .env("ERL_EPMD_ADDRESS", "127.0.0.1");
}
