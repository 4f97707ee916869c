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
