//! Clean-up that survives an interrupted xtask. Rust's standard library cannot catch
//! Ctrl-C, and a killed process runs no destructors, so the guards alone would leave the
//! run's containers and volumes behind. Instead a small shell process is started that
//! holds the read end of a pipe: when the xtask goes away for any reason, the pipe
//! closes, and the watchdog removes everything carrying the run's label.
//!
//! The watchdog lives in its own process group and ignores INT, TERM and HUP, so the
//! Ctrl-C that ends the xtask does not end it too.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

use crate::docker::CommandLine;

/// Waits for its standard input to close, then removes the containers (with their
/// anonymous volumes) and the volumes labelled `$1`. It sweeps twice, because a
/// `docker run` that the interrupt cut short may still create its container.
const SCRIPT: &str = r#"trap '' INT TERM HUP
cat >/dev/null
sweep() {
    containers=$(docker ps --all --quiet --filter "label=$1")
    if [ -n "$containers" ]; then docker rm --force --volumes $containers >/dev/null; fi
    volumes=$(docker volume ls --quiet --filter "label=$1")
    if [ -n "$volumes" ]; then docker volume rm --force $volumes >/dev/null; fi
}
sweep "$1"
sleep 2
sweep "$1"
"#;

pub struct Watchdog {
    child: Child,
}

/// The watchdog's command; `label` is `KEY=VALUE`.
pub fn command(label: &str) -> CommandLine {
    CommandLine::new("sh").args(["-c", SCRIPT, "xtask-watchdog", label])
}

impl Watchdog {
    pub fn start(label: &str) -> Result<Watchdog> {
        let line = command(label);
        let child = Command::new(&line.program)
            .args(&line.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot start the clean-up watchdog (sh)")?;
        Ok(Watchdog { child })
    }

    /// The run ended normally: the guards removed everything, and the watchdog's sweep
    /// confirms it. Waiting for it means nothing is still being removed after we exit.
    pub fn finish(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_is_an_argument_not_part_of_the_script() {
        let line = command("dev.open-webui-images.test-run=x-1");
        assert_eq!(line.args[0], "-c");
        assert_eq!(line.args[2..], ["xtask-watchdog", "dev.open-webui-images.test-run=x-1"]);
        assert!(line.args[1].starts_with("trap '' INT TERM HUP\n"));
    }
}
