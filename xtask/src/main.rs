//! `cargo xtask`: builds, tests, measures and prunes this repository's Open WebUI images.
//!
//! This file only parses the command line, moves to the repository root and hands over
//! to the module named after the subcommand.

mod bench;
mod build;
mod bytes;
mod ci;
mod config;
mod container;
mod docker;
mod dockerfile;
mod doctor;
mod http;
mod image_job;
mod lint;
mod matrix;
mod prune;
mod lock;
mod repo;
mod test_image;
mod size;
mod vast_template;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about, version, arg_required_else_help = true)]
struct Cli {
    /// The targets file to read instead of dockerfiles/targets.toml
    #[arg(long, global = true, value_name = "PATH")]
    targets_file: Option<camino::Utf8PathBuf>,
    /// Where generated files go instead of target/xtask
    #[arg(long, global = true, value_name = "DIR")]
    out_dir: Option<camino::Utf8PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure build times, sizes and start-up against the naive image (--write: docs/benchmarks.md)
    Bench(bench::Args),
    /// Build one or more targets of dockerfiles/Dockerfile with docker buildx bake
    Build(build::Args),
    /// Check that this host can build the images, and say how to fix what it lacks
    Doctor(doctor::Args),
    /// The test command: Rust tests, lint, then the image job of each target (vastai)
    Ci(ci::Args),
    /// Check the Dockerfile, the workflow and the targets file, alone and against each other
    Lint(lint::Args),
    /// Print the workflow's image-job matrix (JSON) from the targets file
    Matrix(matrix::Args),
    /// Run one workflow image job locally: build, test-image, then size with its budget
    ImageJob(image_job::Args),
    /// Free build cache, old images and containers, and clean a data directory's caches
    Prune(prune::Args),
    /// Check that built images work: their config and files, then a container of each
    TestImage(test_image::Args),
    /// Measure images: layers, where the bytes are, waste, offenders, budgets, history
    Size(size::Args),
    /// Print everything to paste into a Vast.ai template, read from the built image
    VastTemplate(vast_template::Args),
    /// Resolve the Python dependency locks again (for a new Open WebUI) and show the changes
    Lock(lock::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version text, asked for or shown for a bare `cargo xtask`.
        Err(error)
            if !error.use_stderr()
                || error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            error.exit()
        }
        // A usage mistake: clap's first line names it; the usage block would only bury it.
        Err(error) => {
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or("error: invalid arguments");
            eprintln!("{first} (see --help)");
            return ExitCode::from(2);
        }
    };
    let result = repo::Repo::locate(cli.targets_file, cli.out_dir).and_then(|repo| match cli.command {
        Command::Bench(args) => bench::run(&repo, args),
        Command::Build(args) => build::run(&repo, args),
        Command::Doctor(args) => doctor::run(&repo, args),
        Command::Ci(args) => ci::run(&repo, args),
        Command::Lint(args) => lint::run(&repo, args),
        Command::Matrix(args) => matrix::run(&repo, args),
        Command::ImageJob(args) => image_job::run(&repo, args),
        Command::Prune(args) => prune::run(&repo, args),
        Command::TestImage(args) => test_image::run(&repo, args),
        Command::Size(args) => size::run(&repo, args),
        Command::VastTemplate(args) => vast_template::run(&repo, args),
        Command::Lock(args) => lock::run(&repo, args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, whatever the error carries: the chain is joined with ": ".
            let message = format!("{error:#}").replace('\n', " ");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
