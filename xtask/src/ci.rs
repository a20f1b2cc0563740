//! `cargo xtask ci`: the repository's test command, the one `.ci/run` calls. It runs the
//! Rust tests (Docker-backed ones included) and `cargo xtask lint`, then builds the real
//! image of each given target and runs `test-image` on it.

use anyhow::{Context, Result};
use clap::{FromArgMatches, Parser};

use crate::build;
use crate::config::Config;
use crate::docker::CommandLine;
use crate::lint;
use crate::repo::Repo;
use crate::test_image;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Targets whose real image is built and tested [default: vastai]
    pub targets: Vec<String>,
    /// Skip the Rust tests
    #[arg(long)]
    pub no_unit_tests: bool,
    /// Seconds a container may take to become healthy
    #[arg(long, default_value_t = 300)]
    pub health_timeout: u64,
    /// Extra `cargo xtask build` flags, e.g. --build-arg TORCH_INDEX= (repeatable)
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
    eprintln!("-- cargo xtask lint");
    lint::run(repo, lint::Args::default())?;

    let mut argv = vec!["build".to_string()];
    argv.extend(targets.iter().cloned());
    argv.extend(args.build_flags.iter().cloned());
    let build_args = parse_subcommand::<build::Args>(&argv)?;
    let repository = build_args.repository.clone();
    build::run(repo, build_args)?;

    // The images just built, checked the way their users run them.
    test_image::run(
        repo,
        test_image::Args {
            targets,
            image: None,
            repository,
            format: test_image::Format::Human,
            health_timeout: Some(args.health_timeout),
            stop_timeout: 30,
            name_prefix: "xtask-ci".to_string(),
        },
    )
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
