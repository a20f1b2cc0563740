//! `cargo xtask ci`: the repository's test command, the one `.ci/run` calls. It runs the
//! Rust tests (Docker-backed ones included), then builds the real image of each given
//! target and checks that a container of it starts and answers `/health`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{FromArgMatches, Parser};

use crate::build;
use crate::config::Config;
use crate::container::{Container, RunOptions};
use crate::docker::CommandLine;
use crate::repo::Repo;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Targets whose real image is built and started [default: vastai]
    pub targets: Vec<String>,
    /// Skip the Rust tests
    #[arg(long)]
    pub no_unit_tests: bool,
    /// Seconds a container may take to answer /health
    #[arg(long, default_value_t = 180)]
    pub health_timeout: u64,
    /// Extra `cargo xtask build` flags, e.g. --build-arg TORCH_VARIANT=cuda (repeatable)
    #[arg(long = "build-flag", value_name = "FLAG", allow_hyphen_values = true)]
    pub build_flags: Vec<String>,
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    let targets = if args.targets.is_empty() { vec!["vastai".to_string()] } else { args.targets };
    for name in &targets {
        config.target(name)?;
    }
    if !args.no_unit_tests {
        eprintln!("-- Rust tests");
        CommandLine::new("cargo").args(["test", "--workspace", "--locked"]).run(&repo.sh)?;
    }

    let mut argv = vec!["build".to_string()];
    argv.extend(targets.iter().cloned());
    argv.extend(args.build_flags.iter().cloned());
    build::run(repo, parse_subcommand::<build::Args>(&argv)?)?;

    for name in &targets {
        let target = config.target(name)?;
        let image = &target.tags(&config.project.repository, config.version().unwrap_or_default())[0];
        eprintln!("-- starting {image} and waiting for /health");
        let container_name = format!("xtask-ci-{name}-{}", std::process::id());
        // A fresh anonymous volume on the data directory, removed with the container.
        let options = RunOptions {
            port: Some(target.port),
            volumes: vec![target.data_dir.clone()],
            ..RunOptions::default()
        };
        let container = Container::start(&repo.sh, &container_name, image, &options)?;
        let user = CommandLine::docker().args(["image", "inspect", "--format", "{{.Config.User}}", image]).read(&repo.sh)?;
        if user != target.user {
            bail!("{image} runs as user {user:?}, but the targets file says {:?}", target.user);
        }
        let addr = container.published(target.port)?;
        let waited = container
            .wait_for_health(addr, Duration::from_secs(args.health_timeout))
            .with_context(|| format!("{image} did not become healthy; its log ends:\n{}", container.log_tail(30)))?;
        eprintln!("-- {name}: /health answered {{\"status\":true}} after {:.1}s", waited.as_secs_f64());
    }
    Ok(())
}

/// Parses the flags of another subcommand, as if given on the command line.
fn parse_subcommand<T: clap::Args + FromArgMatches>(argv: &[String]) -> Result<T> {
    #[derive(Parser)]
    struct Wrapper<T: clap::Args> {
        #[command(flatten)]
        inner: T,
    }
    Ok(Wrapper::<T>::try_parse_from(argv).context("bad --build-flag")?.inner)
}
