//! The widget and the inbox in a real browser: `tests/browser/handoff.mjs` (playwright-core
//! driving Debian's chromium) against a real daemon. `scripts/test.sh` installs chromium and
//! the npm packages; this test runs `npm ci` itself when they are missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// The browser scenario's own waits are 10 s each; the whole run takes well under this.
const RUN_LIMIT: Duration = Duration::from_secs(240);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Installs the locked npm packages (no browser download: playwright-core has none).
fn ensure_node_modules() {
    let dir = browser_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .expect("npm must be installed to run the browser tests (scripts/test.sh)");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The screenshot folder: the README shows them; HANDOFFD_SCREENSHOTS sends them elsewhere.
fn screenshot_dir() -> PathBuf {
    let shots = std::env::var_os("HANDOFFD_SCREENSHOTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    shots
}

/// Runs one browser scenario with node and fails unless it says it passed.
fn run_node(script: &str, vars: &[(&str, String)], shots: &Path) {
    let started = Instant::now();
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir().join(script))
        .env("SCREENSHOT_DIR", shots)
        .env("CHROMIUM", chromium())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("node must be installed to run the browser tests");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser test {script} ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        status.success(),
        "browser test {script} failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("browser test passed"), "{stdout}");
}

fn browser_ready() {
    assert!(
        Path::new(&chromium()).exists(),
        "{} is missing: run scripts/test.sh, which installs Debian's chromium",
        chromium()
    );
    ensure_node_modules();
}

#[test]
fn widget_and_inbox_in_a_real_browser() {
    browser_ready();
    let host_port = free_port();
    let o = Options {
        allowed_origins: vec![format!("http://127.0.0.1:{host_port}")],
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 2), ("bob", "billing", 2)]);
    let d = Daemon::start(dir);
    let shots = screenshot_dir();

    run_node(
        "handoff.mjs",
        &[
            ("HANDOFFD_URL", d.url("")),
            ("HOST_PORT", host_port.to_string()),
            ("AGENT_TOKEN", tokens[0].clone()),
            ("BOB_TOKEN", tokens[1].clone()),
        ],
        &shots,
    );
    for shot in [
        "widget-desktop.png",
        "widget-queued-desktop.png",
        "widget-phone.png",
        "inbox-desktop.png",
        "inbox-phone.png",
    ] {
        let len = std::fs::metadata(shots.join(shot)).map_or(0, |m| m.len());
        assert!(len > 1000, "screenshot {shot} missing or empty");
    }
}

#[tokio::test]
async fn a_supervisor_watches_assigns_and_transfers_in_the_inbox() {
    browser_ready();
    let o = Options {
        extra: r#"
[debug]
clock_control = true

[[router.sla]]
name = "standard"
teams = ["support"]
assignment_secs = 60
on_assignment_breach = ["notify_supervisors"]
"#
        .into(),
        ..Options::default()
    };
    let (dir, _) = Daemon::prepare(&o, &[("alice", "support", 2)]);
    let d = Daemon::start(dir);
    let (status, body) = d
        .api_post(
            "/api/v1/agents",
            serde_json::json!({"id": "sam", "teams": ["support"], "capacity": 1, "supervisor": true}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("I want to talk to a human please").await;
    d.queue_of(1).await;
    let shots = screenshot_dir();
    let url = d.url("");
    tokio::task::spawn_blocking(move || {
        run_node(
            "supervisor.mjs",
            &[
                ("HANDOFFD_URL", url),
                ("API_KEY", API_KEY.to_string()),
                ("SUPERVISOR_TOKEN", token),
                ("CONVERSATION_ID", cid),
            ],
            &shots,
        );
        let len =
            std::fs::metadata(shots.join("inbox-supervisor-desktop.png")).map_or(0, |m| m.len());
        assert!(len > 1000, "the supervisor screenshot is missing or empty");
    })
    .await
    .expect("the browser run");
}
