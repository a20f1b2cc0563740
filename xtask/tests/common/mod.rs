//! Helpers shared by the integration tests: running the xtask binary, and deciding
//! whether the Docker-backed tests can run.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Runs `cargo xtask ARGS` (the built binary) and returns what it did.
pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().expect("the xtask binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether a Docker engine answers. Under CI=true a missing engine fails the test;
/// elsewhere the test is skipped, and says so loudly.
pub fn docker_or_skip(test: &str) -> bool {
    let up = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    if up.is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: no Docker engine answers, and Docker-backed tests never skip under CI=true");
    }
    eprintln!("\n!!! SKIPPED {test}: no Docker engine answers (run bash .ci/setup-host) !!!\n");
    false
}

/// A name no other test run uses, for images, containers and volumes.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("the docker client runs")
}

/// Removes the images it names when dropped, however the test ends.
pub struct Images(pub Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = docker(&["image", "rm", "--force", image]);
        }
    }
}
