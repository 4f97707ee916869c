//! The command line: config checking, agent tokens, the published schema, the systemd unit.

use std::path::Path;
use std::process::Command;

fn handoffd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_handoffd"))
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_default_config_passes_check_config() {
    let out = handoffd()
        .arg("--config")
        .arg(repo("config.toml"))
        .arg("check-config")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_config_reports_every_problem_with_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        r#"[server]
listen = "not an address"

[widget]
token_secret = "short"

[[router.teams]]
name = "support"

[[escalation.keyword_rules]]
name = "legal"
patterns = ["(unclosed"]
team = "lawyers"
"#,
    )
    .expect("write");
    let out = handoffd()
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("line 2: server.listen"), "{text}");
    assert!(text.contains("line 5: widget.token_secret"), "{text}");
    assert!(
        text.contains("line 12: escalation.keyword_rules[0].patterns[0]"),
        "{text}"
    );
    assert!(
        text.contains("line 13: escalation.keyword_rules[0].team"),
        "{text}"
    );
    assert!(text.contains("4 problems"), "{text}");

    // A syntax error is reported with its line too.
    std::fs::write(&path, "[server]\nlisten = \n").expect("write");
    let out = handoffd()
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn agent_add_prints_a_token_once_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = crate::support::write_config(dir.path(), &Default::default());
    let out = handoffd()
        .arg("--config")
        .arg(&config)
        .args(["agent", "add", "dana", "--team", "support"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("hfa_") && token.len() > 40, "{token}");
    let journal = std::fs::read(dir.path().join("data/handoffd.redb")).expect("journal");
    let needle = token.as_bytes();
    assert!(
        !journal.windows(needle.len()).any(|w| w == needle),
        "the token itself must not be stored"
    );
    // The same id again, or an unknown team, is refused.
    let again = handoffd()
        .arg("--config")
        .arg(&config)
        .args(["agent", "add", "dana", "--team", "support"])
        .output()
        .expect("run");
    assert!(!again.status.success());
    let bad_team = handoffd()
        .arg("--config")
        .arg(&config)
        .args(["agent", "add", "erin", "--team", "nowhere"])
        .output()
        .expect("run");
    assert!(!bad_team.status.success());
    assert!(String::from_utf8_lossy(&bad_team.stderr).contains("nowhere"));
}

#[test]
fn the_published_handoff_package_schema_is_current() {
    let out = handoffd()
        .args(["schema", "handoff-package"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let published: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("docs/handoff-package.schema.json")).expect("schema file"),
    )
    .expect("JSON");
    assert_eq!(
        generated, published,
        "docs/handoff-package.schema.json is stale: regenerate with `handoffd schema handoff-package`"
    );
    for field in [
        "transcript",
        "triggers",
        "summary",
        "entities",
        "sentiment",
        "priority",
        "team",
    ] {
        assert!(
            generated["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|f| f == field)),
            "{field} missing from the schema"
        );
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(out) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(repo("systemd/handoffd.service"))
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
    else {
        panic!("systemd-analyze is needed (package systemd); the test command installs it");
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify complains that the binary path does not exist on a build machine; anything
    // else is a real problem with the unit.
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.contains("/usr/local/bin/handoffd"))
        .filter(|l| !l.contains("Failed to prepare filename"))
        .collect();
    assert!(problems.is_empty(), "systemd-analyze verify: {problems:?}");
    let unit = std::fs::read_to_string(repo("systemd/handoffd.service")).expect("unit");
    for hardening in [
        "User=handoffd",
        "DynamicUser=",
        "StateDirectory=handoffd",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ] {
        assert!(unit.contains(hardening), "{hardening} missing");
    }
}

#[test]
fn eval_replays_recorded_conversations_and_scores_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = crate::support::write_config(dir.path(), &Default::default());
    let set = repo("tests/data/conversations.jsonl");
    let out = handoffd()
        .arg("--config")
        .arg(&config)
        .arg("eval")
        .arg(&set)
        .arg("--json")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let convs = doc["conversations"].as_array().expect("conversations");
    assert_eq!(convs.len(), 16);
    let by_id = |id: &str| {
        convs
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by_id("ask-human")["at"], 2);
    assert_eq!(by_id("ask-human")["triggers"][0], "explicit_request");
    assert_eq!(by_id("legal")["triggers"][0], "keyword_rule");
    assert_eq!(by_id("bot-asks")["triggers"][0], "bot_handoff");
    assert_eq!(by_id("hours-thanks")["escalated"], false);
    assert_eq!(by_id("not-a-person")["escalated"], false);
    assert!(by_id("bot-unsure")["reasons"][0]["evidence"].is_string());
    let s = &doc["summary"];
    assert_eq!(s["labelled"], 15);
    assert!(
        s["overall"]["precision"].as_f64().unwrap_or(0.0) >= 0.9,
        "{s}"
    );
    assert!(s["overall"]["recall"].as_f64().unwrap_or(0.0) >= 0.9, "{s}");
    assert!(s["per_trigger"]["explicit_request"]["true_positives"].as_u64() >= Some(2));

    // The table form, and a malformed line: named on stderr, the rest still replayed.
    let bad = dir.path().join("bad.jsonl");
    let good_line = std::fs::read_to_string(&set)
        .expect("set")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    std::fs::write(
        &bad,
        format!("{good_line}\n{{\"id\": \"broken\", \"messages\": [\n{good_line}\n"),
    )
    .expect("write");
    let out = handoffd()
        .arg("--config")
        .arg(&config)
        .arg("eval")
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(":2:"), "{stderr}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("hours-thanks"), "{table}");
    assert!(table.contains("2 conversations"), "{table}");
}

#[test]
fn analyze_prints_one_json_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = crate::support::write_config(dir.path(), &Default::default());
    let mut child = handoffd()
        .arg("--config")
        .arg(&config)
        .arg("analyze")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"I want to speak to an agent, order 55512345\nmerci beaucoup, c'est parfait\n\xff\xfe broken\nwhat is your refund policy?\n")
            .expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "the invalid line is skipped, the rest analysed"
    );
    assert_eq!(lines[0]["explicit_request"], true);
    assert_eq!(lines[0]["language"], "en");
    assert!(
        lines[0]["entities"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    );
    assert_eq!(lines[1]["language"], "fr");
    assert!(lines[1]["sentiment"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(lines[2]["explicit_request"], false);
    assert_eq!(lines[2]["intents"][0]["name"], "refund");
    assert_eq!(lines[2]["intents"][0]["act"], false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3"));
}

#[test]
fn the_published_bot_webhook_schemas_are_current() {
    for name in ["bot-message", "bot-event", "bot-reply"] {
        let out = handoffd().args(["schema", name]).output().expect("run");
        assert!(out.status.success(), "{name}");
        let generated: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let file = format!("docs/{name}.schema.json");
        let published: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(repo(&file)).expect("schema file"))
                .expect("JSON");
        assert_eq!(
            generated, published,
            "{file} is stale: regenerate with `handoffd schema {name}`"
        );
    }
    let unknown = handoffd().args(["schema", "nope"]).output().expect("run");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("bot-reply"));
}

#[test]
fn a_taken_port_stops_serve_with_a_clear_error_and_no_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = crate::support::write_config(
        dir.path(),
        &crate::support::Options {
            listen: format!("127.0.0.1:{port}"),
            ..Default::default()
        },
    );
    let out = handoffd()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve must fail: {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "names the address: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    // Found before the journal was opened: nothing was created.
    assert!(!dir.path().join("data").exists(), "journal untouched");
    drop(taken);
}
