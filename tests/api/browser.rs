//! A real browser for the page tests: headless Chromium (Debian's
//! `chromium`) driven over the Chrome DevTools Protocol, JSON commands
//! `{id, method, params, sessionId}` on a WebSocket (CDP docs: the
//! `Target`, `Runtime` and `Page` domains; the browser's endpoint is the
//! `DevToolsActivePort` file Chromium writes into its profile when started
//! with `--remote-debugging-port=0`).
//!
//! Tests wait, in real time and with a deadline, for what the page shows
//! (`wait_for`), then look at it (`screenshot`, `html`). Chromium's own
//! `--virtual-time-budget` with `--screenshot`/`--dump-dom` raced with the
//! connect page's server-sent event stream: now and then the stream ended
//! and Chromium never took its picture, waiting out the test's timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a harness: a panic here is a failed test

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Collects the page's CSP violations into `window.__cspViolations`.
const CSP_WATCH: &str = "window.__cspViolations = []; document.addEventListener('securitypolicyviolation', function (e) { window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI); });";

/// Longest wait for one protocol answer.
const ANSWER: Duration = Duration::from_secs(30);

/// One headless Chromium showing one page; killed on drop.
pub struct Browser {
    child: std::process::Child,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    stderr: PathBuf,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts Chromium (its own profile, nothing fetched but the page) and
    /// opens `url`. One browser runs at a time: each is several processes,
    /// and this machine has two cores.
    pub async fn open(url: &str) -> Browser {
        static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let turn = ONE_AT_A_TIME.lock().await;
        let profile = tempfile::tempdir().unwrap();
        let stderr = profile.path().join("stderr");
        let child = std::process::Command::new("/usr/bin/chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-breakpad",
                "--disable-crash-reporter",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=700,900",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        // Chromium writes its port and the browser's path once it listens.
        let active = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + ANSWER;
        let endpoint = loop {
            if let Ok(text) = std::fs::read_to_string(&active)
                && let [port, path] = text.lines().collect::<Vec<_>>()[..]
            {
                break format!("ws://127.0.0.1:{port}{path}");
            }
            assert!(Instant::now() < deadline, "Chromium did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .unwrap();
        let mut browser = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            stderr,
            _profile: profile,
            _turn: turn,
        };
        let target = browser
            .command("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let target = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser
            .command(
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser.command("Page.enable", json!({})).await;
        // Every Content Security Policy violation, as the page's own
        // `securitypolicyviolation` events report them.
        browser
            .command(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": CSP_WATCH }),
            )
            .await;
        browser
            .command("Page.navigate", json!({ "url": url }))
            .await;
        browser
    }

    /// The Content Security Policy violations the page reported so far
    /// (`"directive blocked-uri"` each).
    pub async fn csp_violations(&mut self) -> Vec<String> {
        let v = self.eval("window.__cspViolations || []").await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Sends `method` (to the page once attached) and answers its `result`;
    /// panics on a protocol error.
    async fn command(&mut self, method: &str, params: Value) -> Value {
        match self.try_command(method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    /// Sends `method` and answers its `result`, or the protocol's `error`.
    async fn try_command(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        let deadline = Instant::now() + ANSWER;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("the protocol's socket closed")
                .unwrap();
            let Message::Text(text) = next else { continue };
            let answer: Value = serde_json::from_str(&text).unwrap();
            // Events carry no id; other answers are not ours.
            if answer["id"] != id {
                continue;
            }
            if !answer["error"].is_null() {
                return Err(answer["error"].clone());
            }
            return Ok(answer["result"].clone());
        }
    }

    /// The value of JavaScript expression `expr` in the page; `null` while
    /// the page has no context to run it in (a navigation replacing it).
    pub async fn eval(&mut self, expr: &str) -> Value {
        self.try_command(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true }),
        )
        .await
        .map_or(Value::Null, |r| r["result"]["value"].clone())
    }

    /// Waits until `expr` is `true` in the page, checking every 100 ms for
    /// at most `within`; panics naming `what`, with the page's HTML and
    /// Chromium's log, if it never is.
    pub async fn wait_for(&mut self, what: &str, expr: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.eval(expr).await != Value::Bool(true) {
            if Instant::now() > deadline {
                let html = self.html().await;
                panic!("{what}: not within {within:?}\n{html}\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page as a PNG.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let r = self
            .command("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap()
    }

    /// The document's HTML as it is now.
    pub async fn html(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// What Chromium logged so far (console messages, CSP violations …).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
