//! `cargo xtask test-image`: checks that each target's image works the way its users run
//! it. Static checks read the image (its config, history and files); live checks start it
//! on a fresh volume, talk to it over 127.0.0.1, restart it and stop it. A table of every
//! check ends the run; any failed check makes the exit status non-zero.
//!
//! Everything the run creates carries a label with the run's id. The guards remove it when
//! the run ends or fails; a watchdog process removes it when the xtask is interrupted.

mod live;
mod secrets;
mod statics;
mod watchdog;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::config::{Config, Target};
use crate::docker::{self, CommandLine};
use crate::repo::Repo;

/// Label on every container and volume of one test run; its value is the run's id.
pub const LABEL_RUN: &str = "dev.open-webui-images.test-run";
/// Seconds a server may take to become healthy when neither flag nor targets file says.
const DEFAULT_HEALTH_TIMEOUT: u64 = 300;
/// Lines of the container's log shown under a failed check.
const LOG_LINES: usize = 25;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Targets from dockerfiles/targets.toml whose built images are tested [default: default]
    pub targets: Vec<String>,
    /// Test this image instead of the target's tag (give exactly one target)
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Repository of the tags to test instead of the targets file's, as given to build
    #[arg(long, conflicts_with = "image")]
    pub repository: Option<String>,
    /// Output at the end: human (a table) or json
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Seconds until /health and Docker's health status must be good
    /// [default: the target's test.health_timeout, else 300]
    #[arg(long, value_name = "SECONDS")]
    pub health_timeout: Option<u64>,
    /// Seconds `docker stop` waits before it kills the server; needing them all fails
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub stop_timeout: u64,
    /// Start of the names of the containers and volumes this run creates
    #[arg(long, value_name = "PREFIX", default_value = "xtask-test")]
    pub name_prefix: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// What one check found.
#[derive(Debug, Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Outcome {
    Pass { detail: String },
    Fail { expected: String, seen: String, log: Option<String> },
    Skip { reason: String },
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub target: String,
    pub check: &'static str,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub seconds: f64,
}

/// Why a check failed: what it wanted, and what it got.
#[derive(Debug)]
pub struct Failure {
    pub expected: String,
    pub seen: String,
}

pub fn fail(expected: impl Into<String>, seen: impl Into<String>) -> Failure {
    Failure { expected: expected.into(), seen: seen.into() }
}

/// A command that could not run is a failure of the check that needed it.
impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        fail("the check's commands to succeed", format!("{error:#}"))
    }
}

pub type CheckResult = std::result::Result<String, Failure>;

/// What the checks of one target need to know.
pub struct Subject<'a> {
    pub name: &'a str,
    pub target: &'a Target,
    pub image: String,
    pub version: &'a str,
    pub source: &'a str,
    pub health_timeout: Duration,
    pub stop_timeout: Duration,
    /// The run's id: every name starts with it and the run label carries it.
    pub run_id: &'a str,
}

impl Subject<'_> {
    pub fn labels(&self) -> Vec<String> {
        vec![format!("{LABEL_RUN}={}", self.run_id)]
    }
}

/// Collects the checks of a run, and reports each one as it ends.
pub struct Recorder {
    pub checks: Vec<Check>,
}

impl Recorder {
    /// Runs one check; `log` gives the container's log when the check fails.
    pub fn check(
        &mut self,
        target: &str,
        check: &'static str,
        log: impl FnOnce() -> Option<String>,
        run: impl FnOnce() -> CheckResult,
    ) -> bool {
        let started = Instant::now();
        let result = run();
        self.record(target, check, started, result, log)
    }

    /// Records a check that ran from `started` until now.
    pub fn record(
        &mut self,
        target: &str,
        check: &'static str,
        started: Instant,
        result: CheckResult,
        log: impl FnOnce() -> Option<String>,
    ) -> bool {
        let seconds = started.elapsed().as_secs_f64();
        let passed = result.is_ok();
        let outcome = match result {
            Ok(detail) => {
                eprintln!("-- {target}: {check}: pass ({seconds:.1}s) {detail}");
                Outcome::Pass { detail }
            }
            Err(Failure { expected, seen }) => {
                let log = log();
                eprintln!("-- {target}: {check}: FAIL ({seconds:.1}s)");
                eprintln!("   expected: {expected}");
                eprintln!("   seen:     {seen}");
                if let Some(log) = &log {
                    eprintln!("   last lines of the container's log:");
                    for line in log.lines() {
                        eprintln!("   | {line}");
                    }
                }
                Outcome::Fail { expected, seen, log }
            }
        };
        self.checks.push(Check { target: target.to_string(), check, outcome, seconds });
        passed
    }

    pub fn skip(&mut self, target: &str, check: &'static str, reason: impl Into<String>) {
        let reason = reason.into();
        eprintln!("-- {target}: {check}: skipped, {reason}");
        self.checks.push(Check {
            target: target.to_string(),
            check,
            outcome: Outcome::Skip { reason },
            seconds: 0.0,
        });
    }
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    let names =
        if args.targets.is_empty() { vec!["default".to_string()] } else { args.targets.clone() };
    for name in &names {
        config.target(name)?;
    }
    if args.image.is_some() && names.len() != 1 {
        bail!("--image tests one image: give exactly one target whose expectations apply");
    }
    if args.name_prefix.is_empty()
        || !args.name_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        bail!("--name-prefix {:?}: use letters, digits and '-'", args.name_prefix);
    }
    docker::ensure_engine(&repo.sh)?;
    let version = config.version().unwrap_or_default();
    let repository = args.repository.as_deref().unwrap_or(&config.project.repository);
    let mut subjects = Vec::new();
    let run_id = format!("{}-{}", args.name_prefix, std::process::id());
    for name in &names {
        let target = config.target(name)?;
        let image =
            args.image.clone().unwrap_or_else(|| target.tags(repository, version)[0].clone());
        if !CommandLine::docker().args(["image", "inspect", &image]).succeeds(&repo.sh) {
            bail!("no local image {image}: build it with `cargo xtask build {name}`, or give --image REF");
        }
        let timeout =
            args.health_timeout.or(target.test.health_timeout).unwrap_or(DEFAULT_HEALTH_TIMEOUT);
        subjects.push(Subject {
            name,
            target,
            image,
            version,
            source: &config.project.source,
            health_timeout: Duration::from_secs(timeout),
            stop_timeout: Duration::from_secs(args.stop_timeout),
            run_id: &run_id,
        });
    }

    // From here on, an interrupted xtask leaves the clean-up to the watchdog.
    let watchdog = watchdog::Watchdog::start(&format!("{LABEL_RUN}={run_id}"))?;
    let mut recorder = Recorder { checks: Vec::new() };
    for subject in &subjects {
        eprintln!("-- testing {} as target {}", subject.image, subject.name);
        statics::run(&repo.sh, subject, &mut recorder);
        live::run(&repo.sh, subject, &mut recorder);
    }
    watchdog.finish();

    let checks = &recorder.checks;
    match args.format {
        Format::Human => print_table(checks),
        Format::Json => println!("{}", serde_json::to_string_pretty(checks)?),
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Fail { .. }))
        .map(|c| format!("{} {}", c.target, c.check))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} checks failed: {} (each failure is explained above)",
            failed.len(),
            checks.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

fn print_table(checks: &[Check]) {
    println!("\n{:<10} {:<16} {:<6} {:>7}  detail", "target", "check", "result", "time");
    for c in checks {
        let (result, detail) = match &c.outcome {
            Outcome::Pass { detail } => ("pass", detail.clone()),
            Outcome::Fail { seen, .. } => {
                ("FAIL", seen.lines().next().unwrap_or_default().to_string())
            }
            Outcome::Skip { reason } => ("skip", reason.clone()),
        };
        println!("{:<10} {:<16} {:<6} {:>6.1}s  {detail}", c.target, c.check, result, c.seconds);
    }
}
