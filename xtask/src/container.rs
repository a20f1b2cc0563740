//! Containers that the xtask starts to check an image, removed again however the check
//! ends: each one is owned by a guard that removes it (and its anonymous volumes) on drop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::docker::CommandLine;
use crate::http;

/// Label on every container the xtask starts, so leftovers can be found and removed.
pub const LABEL_OWNER: &str = "dev.open-webui-images.owner";

pub struct Container<'a> {
    sh: &'a Shell,
    pub name: String,
}

/// How to start a container of an image.
#[derive(Default)]
pub struct RunOptions {
    /// The container port to publish on a free port of 127.0.0.1.
    pub port: Option<u16>,
    /// `KEY=VALUE` environment entries.
    pub env: Vec<String>,
    /// `SOURCE:TARGET` volume or bind mounts.
    pub volumes: Vec<String>,
    /// `--mount` specifications, e.g. `type=volume,src=NAME,dst=/data,volume-nocopy`.
    pub mounts: Vec<String>,
    /// `KEY=VALUE` labels besides the owner label, e.g. the id of a test run.
    pub labels: Vec<String>,
}

/// The `docker run` command that starts `image` detached under `name`.
pub fn run_command(name: &str, image: &str, options: &RunOptions) -> CommandLine {
    let mut command = CommandLine::docker()
        .args(["run", "--detach", "--name", name, "--label"])
        .arg(format!("{LABEL_OWNER}=xtask"));
    if let Some(port) = options.port {
        command = command.arg("--publish").arg(format!("127.0.0.1::{port}"));
    }
    for entry in &options.env {
        command = command.arg("--env").arg(entry.as_str());
    }
    for volume in &options.volumes {
        command = command.arg("--volume").arg(volume.as_str());
    }
    for mount in &options.mounts {
        command = command.arg("--mount").arg(mount.as_str());
    }
    for label in &options.labels {
        command = command.arg("--label").arg(label.as_str());
    }
    command.arg(image)
}

/// A named volume that the xtask created, removed when the guard drops. Declare it
/// before the containers that use it: they drop first, so the volume is free by then.
pub struct Volume<'a> {
    sh: &'a Shell,
    pub name: String,
}

/// The `docker volume create` command for a labelled volume.
pub fn volume_create_command(name: &str, labels: &[String]) -> CommandLine {
    let mut command = CommandLine::docker().args(["volume", "create", "--label"]).arg(format!("{LABEL_OWNER}=xtask"));
    for label in labels {
        command = command.arg("--label").arg(label.as_str());
    }
    command.arg(name)
}

impl<'a> Volume<'a> {
    pub fn create(sh: &'a Shell, name: &str, labels: &[String]) -> Result<Volume<'a>> {
        let volume = Volume { sh, name: name.to_string() };
        // `docker volume create` prints the name: run it quietly, but echo it first.
        let command = volume_create_command(name, labels);
        eprintln!("$ {command}");
        command.read(sh)?;
        Ok(volume)
    }
}

impl Drop for Volume<'_> {
    fn drop(&mut self) {
        let remove = CommandLine::docker().args(["volume", "rm", "--force", &self.name]);
        if !remove.succeeds(self.sh) {
            eprintln!("warning: could not remove volume {}; remove it with: {remove}", self.name);
        }
    }
}

impl<'a> Container<'a> {
    pub fn start(sh: &'a Shell, name: &str, image: &str, options: &RunOptions) -> Result<Container<'a>> {
        // The guard exists before the container does, so a failed start is cleaned too.
        let container = Container { sh, name: name.to_string() };
        // Echoed like any change, but its output (the container id) is kept off stdout,
        // which may carry a report for programs.
        let command = run_command(name, image, options);
        eprintln!("$ {command}");
        command.read(sh)?;
        Ok(container)
    }

    /// The 127.0.0.1 address that Docker published `port` on.
    pub fn published(&self, port: u16) -> Result<SocketAddr> {
        let out = CommandLine::docker().args(["port", &self.name, &format!("{port}/tcp")]).read(self.sh)?;
        let line = out.lines().find(|l| l.starts_with("127.0.0.1:")).context("port not published on 127.0.0.1")?;
        line.parse().with_context(|| format!("cannot read the published address {line:?}"))
    }

    /// Polls `/health` until it answers `{"status":true}`; fails early when the
    /// container stops, and after `timeout` otherwise. Returns the time it took.
    pub fn wait_for_health(&self, addr: SocketAddr, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            if let Ok(response) = http::get(addr, "/health", Duration::from_secs(2)) {
                let compact: String = response.body.split_whitespace().collect();
                if response.status == 200 && compact.contains("\"status\":true") {
                    return Ok(started.elapsed());
                }
            }
            if !self.is_running() {
                bail!("container {} stopped before /health answered", self.name);
            }
            if started.elapsed() > timeout {
                bail!("/health did not answer {{\"status\":true}} within {}s", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Docker's health status (`starting`, `healthy`, `unhealthy`), or empty when the
    /// image has no healthcheck.
    pub fn health_status(&self) -> Result<String> {
        CommandLine::docker()
            .args(["inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", &self.name])
            .read(self.sh)
    }

    /// Every address Docker published `port` on, one `HOST:PORT` a line.
    pub fn port_bindings(&self, port: u16) -> Result<Vec<String>> {
        let out = CommandLine::docker().args(["port", &self.name, &format!("{port}/tcp")]).read(self.sh)?;
        Ok(out.lines().map(str::to_string).collect())
    }

    pub fn is_running(&self) -> bool {
        CommandLine::docker()
            .args(["inspect", "--format", "{{.State.Running}}", &self.name])
            .read(self.sh)
            .is_ok_and(|out| out == "true")
    }

    /// The last `lines` lines the container logged, for error reports.
    pub fn log_tail(&self, lines: usize) -> String {
        let output = CommandLine::docker()
            .args(["logs", "--tail", &lines.to_string(), &self.name])
            .to_cmd(self.sh)
            .ignore_status()
            .output();
        match output {
            Ok(o) => format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
            Err(_) => String::new(),
        }
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let remove = CommandLine::docker().args(["rm", "--force", "--volumes", &self.name]);
        if !remove.succeeds(self.sh) {
            eprintln!("warning: could not remove container {}; remove it with: {remove}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_command_publishes_on_loopback_only() {
        let options = RunOptions {
            port: Some(7500),
            env: vec!["A=1".into()],
            volumes: vec!["vol:/workspace".into()],
            mounts: vec!["type=volume,src=v2,dst=/data,volume-nocopy".into()],
            labels: vec!["run=r1".into()],
        };
        assert_eq!(
            run_command("c1", "img:tag", &options).to_string(),
            "docker run --detach --name c1 --label dev.open-webui-images.owner=xtask \
             --publish 127.0.0.1::7500 --env A=1 --volume vol:/workspace \
             --mount type=volume,src=v2,dst=/data,volume-nocopy --label run=r1 img:tag"
        );
    }

    #[test]
    fn volumes_carry_the_owner_and_the_run() {
        assert_eq!(
            volume_create_command("v1", &["run=r1".into()]).to_string(),
            "docker volume create --label dev.open-webui-images.owner=xtask --label run=r1 v1"
        );
    }
}
