//! `cargo xtask test-image` against the real Docker engine, on small fixture images: one
//! that passes every check, and one for each way an image can fail. Every test also
//! checks that the run left no container or volume behind.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn targets_file() -> String {
    fixture("test-image").join("targets.toml").to_str().unwrap().to_string()
}

/// Builds one fixture target under a fresh repository and returns the guard of its tags.
fn build(repository: &str, target: &str) -> Images {
    let tags = match target {
        "good" => vec![format!("{repository}:0.0.1"), format!("{repository}:latest")],
        _ => vec![format!("{repository}:0.0.1-{target}"), format!("{repository}:{target}")],
    };
    let guard = Images(tags);
    let out = std::env::temp_dir().join(unique("xtask-test-image-build"));
    let result = xtask(&[
        "--targets-file",
        &targets_file(),
        "--out-dir",
        out.to_str().unwrap(),
        "build",
        "--repository",
        repository,
        target,
    ]);
    assert!(result.status.success(), "fixture build failed: {}", text(&result.stderr));
    guard
}

fn test_image_args<'a>(repository: &'a str, prefix: &'a str, target: &'a str) -> Vec<String> {
    let file = targets_file();
    [
        "--targets-file",
        &file,
        "test-image",
        "--repository",
        repository,
        "--name-prefix",
        prefix,
        "--stop-timeout",
        "10",
        "--format",
        "json",
        target,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The names of the containers and volumes whose names start with `prefix`.
fn leftovers(prefix: &str) -> Vec<String> {
    let filter = format!("name={prefix}");
    let containers = docker(&["ps", "--all", "--quiet", "--filter", &filter]);
    let volumes = docker(&["volume", "ls", "--quiet", "--filter", &filter]);
    text(&containers.stdout)
        .lines()
        .chain(text(&volumes.stdout).lines())
        .map(str::to_string)
        .collect()
}

struct Run {
    code: Option<i32>,
    checks: Vec<Value>,
    stderr: String,
}

impl Run {
    fn result(&self, check: &str) -> &str {
        let found = self.checks.iter().find(|c| c["check"] == check);
        found.unwrap_or_else(|| panic!("no check {check}: {}", self.stderr))["result"]
            .as_str()
            .unwrap()
    }

    fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c["result"] == "fail")
            .map(|c| c["check"].as_str().unwrap())
            .collect()
    }
}

/// Builds `target`, tests it, and asserts that nothing is left behind.
fn test_fixture(name: &str, target: &str) -> Run {
    let repository = unique(&format!("ti-fixture-{name}"));
    let _images = build(&repository, target);
    let prefix = unique(&format!("ti-{name}"));
    let args = test_image_args(&repository, &prefix, target);
    let output = xtask(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = text(&output.stdout);
    let checks: Vec<Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}\n{}", text(&output.stderr)));
    assert_eq!(leftovers(&prefix), Vec::<String>::new(), "the run left these behind");
    Run { code: output.status.code(), checks, stderr: text(&output.stderr) }
}

#[test]
fn a_good_image_passes_every_check() {
    if !docker_or_skip("a_good_image_passes_every_check") {
        return;
    }
    let run = test_fixture("good", "good");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for check in [
        "exposed port",
        "healthcheck",
        "entrypoint",
        "user",
        "labels",
        "no secrets",
        "open-webui",
        "python caches",
        "apt caches",
        "start",
        "/health",
        "docker health",
        "/api/version",
        "ui",
        "start-up log",
        "sign-up",
        "clean stop",
        "data survives",
    ] {
        assert_eq!(run.result(check), "pass", "{check}: {}", run.stderr);
    }
    // What the fixture does not promise is reported as skipped, not passed.
    assert_eq!(run.result("torch"), "skip");
    assert_eq!(run.result("cpu fallback"), "skip");
}

#[test]
fn a_missing_healthcheck_fails_both_health_checks() {
    if !docker_or_skip("a_missing_healthcheck_fails_both_health_checks") {
        return;
    }
    let run = test_fixture("nohc", "no-healthcheck");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.failed(), ["healthcheck", "docker health"], "{}", run.stderr);
    assert!(
        run.stderr.contains("seen:     no health status: the image has no HEALTHCHECK"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_server_that_never_answers_fails_health_and_shows_its_log() {
    if !docker_or_skip("a_server_that_never_answers_fails_health_and_shows_its_log") {
        return;
    }
    let run = test_fixture("silent", "silent");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.failed(), ["/health"], "{}", run.stderr);
    assert_eq!(run.result("data survives"), "skip");
    assert!(run.stderr.contains("expected: {\"status\":true} within 5s"), "{}", run.stderr);
    assert!(
        run.stderr.contains("| fake Open WebUI on port 8080"),
        "the log tail is shown: {}",
        run.stderr
    );
    let last = run.stderr.trim().lines().last().unwrap();
    assert!(last.starts_with("error: 1 of ") && last.contains("silent /health"), "{last}");
}

#[test]
fn a_pip_cache_in_a_layer_fails_the_cache_check() {
    if !docker_or_skip("a_pip_cache_in_a_layer_fails_the_cache_check") {
        return;
    }
    let run = test_fixture("pip", "pip-cache");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.failed(), ["python caches"], "{}", run.stderr);
    assert!(run.stderr.contains("seen:     /root/.cache/pip (1 files"), "{}", run.stderr);
}

#[test]
fn a_secret_in_an_env_fails_the_secret_check_without_showing_it() {
    if !docker_or_skip("a_secret_in_an_env_fails_the_secret_check_without_showing_it") {
        return;
    }
    let run = test_fixture("secret", "secret-env");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.failed(), ["no secrets"], "{}", run.stderr);
    assert!(
        run.stderr.contains("ENV SERVICE_PASSWORD: SERVICE_PASSWORD has a value"),
        "{}",
        run.stderr
    );
    let everything = format!("{}{:?}", run.stderr, run.checks);
    assert!(!everything.contains("hunter2"), "the value itself must not be shown");
}

#[test]
fn ctrl_c_while_waiting_for_health_leaves_nothing_behind() {
    if !docker_or_skip("ctrl_c_while_waiting_for_health_leaves_nothing_behind") {
        return;
    }
    let repository = unique("ti-fixture-int");
    let _images = build(&repository, "silent");
    let prefix = unique("ti-int");
    let mut args = test_image_args(&repository, &prefix, "silent");
    args.splice(3..3, ["--health-timeout".to_string(), "120".to_string()]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait until the server container exists: the xtask is then polling /health.
    let started = Instant::now();
    let container = format!("{prefix}-{}-silent-1", child.id());
    while !text(&docker(&["ps", "--quiet", "--filter", &format!("name={container}")]).stdout)
        .contains(char::is_alphanumeric)
    {
        assert!(started.elapsed() < Duration::from_secs(60), "the container never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        leftovers(&prefix).len(),
        2,
        "a container and its volume exist before the interrupt"
    );
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "the interrupted xtask does not report success");

    // The watchdog sweeps right after the xtask ends; give it a few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !leftovers(&prefix).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(leftovers(&prefix), Vec::<String>::new(), "the interrupted run left these behind");
}

#[test]
fn bad_input_is_one_line_and_non_zero() {
    for args in [
        vec!["test-image", "nope"],
        vec!["test-image", "--image", "x:1", "default", "gpu"],
        vec!["test-image", "--name-prefix", "bad name", "default"],
    ] {
        let result = xtask(&args);
        assert_eq!(result.status.code(), Some(1), "{args:?}");
        let stderr = text(&result.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    if docker_or_skip("bad_input_is_one_line_and_non_zero (missing image)") {
        let result = xtask(&["test-image", "--image", "ti-no-such-image:0", "vastai"]);
        let stderr = text(&result.stderr);
        assert_eq!(stderr.trim(), "error: no local image ti-no-such-image:0: build it with `cargo xtask build vastai`, or give --image REF");
    }
}
