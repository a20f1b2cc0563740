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
    command.arg(image)
}

impl<'a> Container<'a> {
    pub fn start(sh: &'a Shell, name: &str, image: &str, options: &RunOptions) -> Result<Container<'a>> {
        // The guard exists before the container does, so a failed start is cleaned too.
        let container = Container { sh, name: name.to_string() };
        run_command(name, image, options).run(sh)?;
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
        };
        assert_eq!(
            run_command("c1", "img:tag", &options).to_string(),
            "docker run --detach --name c1 --label dev.open-webui-images.owner=xtask \
             --publish 127.0.0.1::7500 --env A=1 --volume vol:/workspace img:tag"
        );
    }
}
