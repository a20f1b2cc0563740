//! `cargo xtask ci`: the repository's test command, the one `.ci/run` calls. It runs the
//! Rust tests (Docker-backed ones included) and `cargo xtask lint`, then the workflow's
//! image job (`cargo xtask image-job`) for each given target: the real image built, tested
//! the way its users run it, and measured against its budget.

use anyhow::Result;

use crate::config::Config;
use crate::docker::CommandLine;
use crate::image_job;
use crate::lint;
use crate::repo::Repo;

/// The target CI builds when none is named: the one this project's CI host can build
/// from its real package indexes.
const DEFAULT_TARGET: &str = "vastai";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Targets whose image job runs [default: vastai]
    pub targets: Vec<String>,
    /// Skip the Rust tests
    #[arg(long)]
    pub no_unit_tests: bool,
    /// Override a build argument of every image job, e.g. TORCH_VARIANT=cuda (repeatable)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Repository for the images' tags instead of the targets file's
    #[arg(long)]
    pub repository: Option<String>,
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    let targets = if args.targets.is_empty() { vec![DEFAULT_TARGET.to_string()] } else { args.targets };
    for name in &targets {
        config.target(name)?;
    }
    if !args.no_unit_tests {
        eprintln!("-- Rust tests");
        CommandLine::new("cargo").args(["test", "--workspace", "--locked"]).run(&repo.sh)?;
    }
    eprintln!("-- cargo xtask lint");
    lint::run(repo, lint::Args::default())?;

    for target in targets {
        eprintln!("-- image job {target}");
        let job = image_job::Args {
            target,
            build_args: args.build_args.clone(),
            repository: args.repository.clone(),
            ..image_job::Args::default()
        };
        image_job::run(repo, job)?;
    }
    Ok(())
}
