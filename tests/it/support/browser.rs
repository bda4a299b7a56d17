//! A minimal W3C WebDriver client: chromedriver's HTTP API driving one headless
//! Chromium session, enough for the dashboard's browser tests (open, find, type,
//! click, wait, screenshot).
//!
//! Needs Debian's `chromium` and `chromium-driver` packages (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`); without them a test fails and says how to install them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::unique;
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";
const INSTALL: &str = "install them with `apt-get install chromium chromium-driver`";
/// How long the page may take to show something: the dashboard polls every 2 s, and a
/// sync through both simulators takes well under a second.
pub const SETTLE: Duration = Duration::from_secs(60);
/// The W3C name of the key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one Chromium session; both end when this is dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    http: reqwest::Client,
    profile: PathBuf,
}

/// A WebDriver error answer: its `error` code and message.
#[derive(Debug)]
pub struct WdError {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl Browser {
    pub async fn start() -> Self {
        assert!(
            Path::new(CHROMIUM).exists(),
            "Chromium is not installed at {CHROMIUM}; {INSTALL}"
        );
        // Port 0: chromedriver takes a port the OS picks and prints which.
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {CHROMEDRIVER} ({err}); {INSTALL}"));
        let port = super::line_from_stdout(&mut driver, CHROMEDRIVER, |line| {
            line.strip_prefix("ChromeDriver was started successfully on port ")?
                .trim_end_matches('.')
                .parse::<u16>()
                .ok()
        })
        .await;
        let profile = std::env::temp_dir().join(unique("tandem_chromium_profile"));
        std::fs::create_dir_all(&profile).expect("a Chromium profile directory");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        let mut browser = Self {
            driver,
            port,
            session: String::new(),
            http,
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.root()))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(answer) = ready {
                let status: Value = answer.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            if let Ok(Some(exit)) = browser.driver.try_wait() {
                panic!("{CHROMEDRIVER} exited at once ({exit}); {INSTALL}");
            }
            assert!(
                Instant::now() < deadline,
                "{CHROMEDRIVER} did not answer on port {port} within 30s; {INSTALL}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", browser.profile.display()),
                ],
            },
        }}});
        let created = browser
            .raw("POST", "/session", Some(capabilities))
            .await
            .unwrap_or_else(|err| panic!("Chromium did not start: {err}; {INSTALL}"));
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser
    }

    pub fn root(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One WebDriver command; the answer's `value`, or its error.
    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let url = format!("{}{path}", self.root());
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let answer = request.send().await.map_err(|err| WdError {
            code: "transport".into(),
            message: err.to_string(),
        })?;
        let ok = answer.status().is_success();
        let body: Value = answer.json().await.map_err(|err| WdError {
            code: "transport".into(),
            message: err.to_string(),
        })?;
        let value = body.get("value").cloned().unwrap_or(Value::Null);
        if ok {
            Ok(value)
        } else {
            Err(WdError {
                code: value["error"].as_str().unwrap_or("unknown").to_string(),
                message: value["message"].as_str().unwrap_or_default().to_string(),
            })
        }
    }

    /// A command in this session.
    pub async fn cmd(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .unwrap_or_else(|err| panic!("open {url}: {err}"));
    }

    /// Opens the dashboard at `base` and pastes the admin token, as a person would.
    pub async fn open_dashboard(&self, base: &str, token: &str) {
        self.goto(base).await;
        self.type_into("#token", token).await;
    }

    /// The elements matching a CSS selector or XPath expression, now.
    pub async fn find_all(&self, using: &str, value: &str) -> Vec<String> {
        let found = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({ "using": using, "value": value })),
            )
            .await
            .unwrap_or_else(|err| panic!("find {value}: {err}"));
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_string))
            .collect()
    }

    pub async fn css(&self, selector: &str) -> String {
        self.find_all("css selector", selector)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element `{selector}` on the page"))
    }

    /// An element's rendered text; empty when it went stale in between (the page
    /// rebuilds its tables on every refresh).
    pub async fn text_of(&self, element: &str) -> Result<String, WdError> {
        self.cmd("GET", &format!("/element/{element}/text"), None)
            .await
            .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// The text of the first element matching a CSS selector; empty when there is none.
    pub async fn text(&self, selector: &str) -> String {
        for element in self.find_all("css selector", selector).await {
            if let Ok(text) = self.text_of(&element).await {
                return text;
            }
        }
        String::new()
    }

    pub async fn type_into(&self, selector: &str, keys: &str) {
        let element = self.css(selector).await;
        self.cmd(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": keys })),
        )
        .await
        .unwrap_or_else(|err| panic!("type into {selector}: {err}"));
    }

    /// Empties an input.
    pub async fn clear(&self, selector: &str) {
        let element = self.css(selector).await;
        self.cmd(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await
        .unwrap_or_else(|err| panic!("clear {selector}: {err}"));
    }

    /// Clicks the first element a CSS selector or XPath expression finds, finding it
    /// again when the page replaced it between finding and clicking.
    pub async fn click(&self, using: &str, value: &str) {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(element) = self.find_all(using, value).await.into_iter().next() {
                match self
                    .cmd(
                        "POST",
                        &format!("/element/{element}/click"),
                        Some(json!({})),
                    )
                    .await
                {
                    Ok(_) => return,
                    Err(err) if err.code == "stale element reference" => {}
                    Err(err) => panic!("click {value}: {err}"),
                }
            }
            assert!(
                Instant::now() < deadline,
                "nothing to click at `{value}` within {SETTLE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the page until `check` holds, failing with `what` and the last value seen.
    pub async fn wait_for<T, F, Fut>(
        &self,
        what: &str,
        mut read: F,
        check: impl Fn(&T) -> bool,
    ) -> T
    where
        T: std::fmt::Debug,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let deadline = Instant::now() + SETTLE;
        loop {
            let seen = read().await;
            if check(&seen) {
                return seen;
            }
            if Instant::now() >= deadline {
                let message = self.text("#message").await;
                panic!(
                    "timed out after {SETTLE:?} waiting for: {what}; last seen {seen:?}; page message {message:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves a PNG of the window as `<name>` in [`screenshot_dir`].
    pub async fn screenshot(&self, name: &str) {
        let data = self
            .cmd("GET", "/screenshot", None)
            .await
            .unwrap_or_else(|err| panic!("screenshot: {err}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 PNG"))
            .expect("valid base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        std::fs::write(dir.join(name), png).expect("write the screenshot");
    }
}

/// Under `target/` by default, so running the tests leaves the work tree as it was; the
/// committed screenshots change only when a person asks for it.
pub fn screenshot_dir() -> PathBuf {
    if std::env::var_os("TANDEM_UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (Chromium quits) with a plain blocking request: Drop cannot
        // await, and the test's runtime may be the one unwinding.
        if !self.session.is_empty() {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    stream,
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                    self.session, self.port
                );
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
