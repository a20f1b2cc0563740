//! Docker commands as values: each is built by a function, shown before it runs, and
//! compared as text in tests without a Docker engine.

use std::fmt;

use anyhow::{bail, Context, Result};
use xshell::Shell;

/// A program and its arguments, shown the way a shell would need them quoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    pub program: String,
    pub args: Vec<String>,
}

impl CommandLine {
    pub fn new(program: &str) -> CommandLine {
        CommandLine { program: program.to_string(), args: Vec::new() }
    }

    pub fn docker() -> CommandLine {
        CommandLine::new("docker")
    }

    pub fn arg(mut self, arg: impl Into<String>) -> CommandLine {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> CommandLine
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn to_cmd<'a>(&self, sh: &'a Shell) -> xshell::Cmd<'a> {
        sh.cmd(&self.program).args(&self.args).quiet()
    }

    /// Runs a command that changes something, echoing it first.
    pub fn run(&self, sh: &Shell) -> Result<()> {
        eprintln!("$ {self}");
        let status = std::process::Command::new(&self.program)
            .args(&self.args)
            .current_dir(sh.current_dir())
            .status()
            .with_context(|| format!("cannot run {}", self.program))?;
        match status.code() {
            Some(0) => Ok(()),
            Some(code) => bail!("`{}` exited with code {code}", self.short()),
            None => bail!("`{}` was ended by a signal", self.short()),
        }
    }

    /// The program and its first arguments, enough to name the command in an error.
    fn short(&self) -> String {
        let mut words = vec![self.program.as_str()];
        words.extend(self.args.iter().map(String::as_str).filter(|a| !a.starts_with('-')).take(2));
        words.join(" ")
    }

    /// Runs a query and returns its standard output, trimmed; queries are not echoed.
    /// On failure the error carries the first line the command wrote to stderr.
    pub fn read(&self, sh: &Shell) -> Result<String> {
        let output = self.to_cmd(sh).ignore_status().output().with_context(|| format!("cannot run {self}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            bail!("`{self}` failed: {}", first.trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Runs a query whose failure is an answer, not an error.
    pub fn succeeds(&self, sh: &Shell) -> bool {
        self.to_cmd(sh).ignore_stdout().ignore_stderr().run().is_ok()
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Fails with a pointer to `doctor` unless the Docker client and daemon both answer.
pub fn ensure_engine(sh: &Shell) -> Result<()> {
    if which::which("docker").is_err() {
        bail!("the docker command is not installed; run `cargo xtask doctor` for the fix");
    }
    if !CommandLine::docker().args(["info", "--format", "{{.ServerVersion}}"]).succeeds(sh) {
        bail!("the Docker daemon is not answering; run `cargo xtask doctor` for the fix");
    }
    Ok(())
}

/// The id and size in bytes of a local image, or `None` when there is no such image.
pub fn image_id_and_size(sh: &Shell, image: &str) -> Option<(String, u64)> {
    let out = CommandLine::docker()
        .args(["image", "inspect", "--format", "{{.Id}} {{.Size}}", image])
        .read(sh)
        .ok()?;
    let (id, size) = out.split_once(' ')?;
    Some((id.to_string(), size.trim().parse().ok()?))
}

/// Bytes as people read them: `7.36 GB`, `512 kB` (powers of 1000, as Docker prints).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        let line = CommandLine::docker().args(["run", "--env", "A=b c", "it's", ""]);
        assert_eq!(line.to_string(), r#"docker run --env 'A=b c' 'it'\''s' ''"#);
    }

    #[test]
    fn human_bytes_uses_decimal_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(7_360_000_000), "7.36 GB");
        assert_eq!(human_bytes(1_500), "1.50 kB");
    }
}
