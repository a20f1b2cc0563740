//! `cargo xtask image-job TARGET`: the local twin of one image job of the workflow. It
//! runs the same steps in the same order, each as this xtask's own subcommand: `build`,
//! then `test-image` on the built image, then `size`, whose markdown report goes into the
//! job summary and whose exit status is the budget gate. With `--publish` it is the twin
//! of the publish job instead: the same build, pushed, with a tag for the commit.

use std::io::Write;

use anyhow::{bail, Context, Result};
use camino::Utf8PathBuf;

use crate::config::Config;
use crate::docker::CommandLine;
use crate::repo::Repo;

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// The target from dockerfiles/targets.toml
    pub target: String,
    /// Cache source for the build; {target} is replaced by the target name (repeatable)
    #[arg(long, value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Cache destination for the build; {target} as for --cache-from (repeatable)
    #[arg(long, value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Override a build argument the Dockerfile declares (repeatable)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Repository for the tags instead of the targets file's, e.g. ghcr.io/owner/name
    #[arg(long)]
    pub repository: Option<String>,
    /// Progress output of the build: auto, plain, tty, quiet or rawjson
    #[arg(long, value_name = "MODE")]
    pub progress: Option<String>,
    /// File the size report is appended to (the workflow's job summary)
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "PATH")]
    pub summary: Option<Utf8PathBuf>,
    /// Build and push with a commit tag instead of testing and measuring (the publish job)
    #[arg(long, requires = "repository")]
    pub publish: bool,
    /// The commit the published images are tagged with, as sha-<first 12 digits>
    #[arg(long, env = "GITHUB_SHA", value_name = "SHA")]
    pub commit: Option<String>,
    /// Print the commands and run nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// The steps of one job, each an invocation of this xtask.
#[derive(Debug)]
pub struct Job {
    pub steps: Vec<Step>,
}

#[derive(Debug)]
pub struct Step {
    pub title: String,
    pub command: CommandLine,
    /// Whether the step's standard output is the size report for the job summary.
    pub report: bool,
}

/// Works out the job's steps; `xtask` is the program that runs them (this binary).
pub fn job(config: &Config, repo: &Repo, args: &Args, xtask: &str) -> Result<Job> {
    let target = config.target(&args.target)?;
    let repository = args.repository.as_deref().unwrap_or(&config.project.repository);
    let version = args
        .build_args
        .iter()
        .find_map(|pair| pair.strip_prefix(&format!("{}=", crate::config::VERSION_ARG)))
        .or(config.version())
        .unwrap_or_default();
    let image = target.tags(repository, version).remove(0);

    let xtask = || {
        CommandLine::new(xtask).args([
            "--targets-file",
            repo.targets_file.as_str(),
            "--out-dir",
            repo.out_dir.as_str(),
        ])
    };
    let mut build = xtask().args(["build", args.target.as_str()]);
    for pair in &args.build_args {
        build = build.args(["--build-arg", pair]);
    }
    if let Some(repository) = &args.repository {
        build = build.args(["--repository", repository]);
    }
    for spec in &args.cache_from {
        build = build.args(["--cache-from", spec]);
    }
    for spec in &args.cache_to {
        build = build.args(["--cache-to", spec]);
    }
    if let Some(mode) = &args.progress {
        build = build.args(["--progress", mode]);
    }

    if args.publish {
        let Some(commit) = args.commit.as_deref() else {
            bail!("--publish needs --commit SHA (the workflow sets GITHUB_SHA)");
        };
        if commit.len() < 12 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("--commit {commit:?}: give the full commit id (git rev-parse HEAD)");
        }
        let tag = commit_tag(repository, &commit[..12], &target.tag_suffix);
        let push = build.args(["--push", "--tag", &tag]);
        return Ok(Job {
            steps: vec![step(&format!("building and pushing {}", args.target), push, false)],
        });
    }
    let test = xtask().args(["test-image", args.target.as_str(), "--image", &image]);
    let size =
        xtask().args(["size", args.target.as_str(), "--image", &image, "--format", "markdown"]);
    Ok(Job {
        steps: vec![
            step(&format!("building {}", args.target), build, false),
            step(&format!("testing {image}"), test, false),
            step(&format!("measuring {image} against its budget"), size, true),
        ],
    })
}

fn step(title: &str, command: CommandLine, report: bool) -> Step {
    Step { title: title.to_string(), command, report }
}

/// `repo:sha-0123456789ab` for the main image, `repo:sha-0123456789ab-cuda` for the others.
pub fn commit_tag(repository: &str, short: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        format!("{repository}:sha-{short}")
    } else {
        format!("{repository}:sha-{short}-{suffix}")
    }
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    let exe = std::env::current_exe().context("cannot find the xtask binary itself")?;
    let exe = exe.to_str().context("the xtask binary's path is not UTF-8")?;
    let job = job(&config, repo, &args, exe)?;
    if args.dry_run {
        for step in &job.steps {
            println!("{}", step.command);
        }
        return Ok(());
    }
    for step in &job.steps {
        eprintln!("-- {}", step.title);
        if !step.report {
            step.command
                .run(&repo.sh)
                .with_context(|| format!("image job {}: {} failed", args.target, step.title))?;
            continue;
        }
        // The report is kept even when the budget gate fails: that is when it matters most.
        eprintln!("$ {}", step.command);
        let output = step
            .command
            .to_cmd(&repo.sh)
            .ignore_status()
            .output()
            .with_context(|| format!("cannot run {}", step.command))?;
        std::io::stderr().write_all(&output.stderr)?;
        let report = String::from_utf8_lossy(&output.stdout);
        print!("{report}");
        if let Some(path) = &args.summary {
            append(path, &report)?;
            eprintln!("-- size report appended to {path}");
        }
        if !output.status.success() {
            bail!(
                "image job {}: {} failed (over budget, or see the report above)",
                args.target,
                step.title
            );
        }
    }
    eprintln!("-- image job {}: every step passed", args.target);
    Ok(())
}

fn append(path: &Utf8PathBuf, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the job summary {path}"))?;
    writeln!(file, "{text}").with_context(|| format!("cannot write the job summary {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8Path;

    fn config() -> Config {
        let path = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../dockerfiles/targets.toml");
        Config::load(&path).unwrap()
    }

    fn repo() -> Repo {
        let mut repo = Repo::locate(None, None).unwrap();
        repo.targets_file = "/r/dockerfiles/targets.toml".into();
        repo.out_dir = "/r/target/xtask".into();
        repo
    }

    fn lines(args: &Args) -> Vec<String> {
        job(&config(), &repo(), args, "xtask")
            .unwrap()
            .steps
            .iter()
            .map(|s| s.command.to_string())
            .collect()
    }

    const GLOBAL: &str =
        "xtask --targets-file /r/dockerfiles/targets.toml --out-dir /r/target/xtask";

    #[test]
    fn build_then_test_image_then_size() {
        let version = config().version().unwrap().to_string();
        let args = Args {
            target: "vastai".into(),
            cache_from: vec!["type=gha,scope={target}".into()],
            cache_to: vec!["type=gha,mode=max,scope={target}".into()],
            progress: Some("plain".into()),
            ..Args::default()
        };
        let image = format!("open-webui-images:{version}-vastai");
        assert_eq!(
            lines(&args),
            [
                format!(
                    "{GLOBAL} build vastai --cache-from 'type=gha,scope={{target}}' \
                     --cache-to 'type=gha,mode=max,scope={{target}}' --progress plain"
                ),
                format!("{GLOBAL} test-image vastai --image {image}"),
                format!("{GLOBAL} size vastai --image {image} --format markdown"),
            ]
        );
        let job = job(&config(), &repo(), &args, "xtask").unwrap();
        assert_eq!(job.steps.iter().map(|s| s.report).collect::<Vec<_>>(), [false, false, true]);
    }

    #[test]
    fn repository_and_version_override_reach_the_tested_image() {
        let args = Args {
            target: "default".into(),
            repository: Some("ghcr.io/o/r".into()),
            build_args: vec!["OPEN_WEBUI_VERSION=9.9.9".into()],
            ..Args::default()
        };
        let lines = lines(&args);
        assert_eq!(lines[0], format!("{GLOBAL} build default --build-arg OPEN_WEBUI_VERSION=9.9.9 --repository ghcr.io/o/r"));
        assert_eq!(lines[1], format!("{GLOBAL} test-image default --image ghcr.io/o/r:9.9.9"));
    }

    #[test]
    fn publish_pushes_with_a_commit_tag_per_suffix() {
        let args = Args {
            target: "gpu".into(),
            repository: Some("ghcr.io/o/r".into()),
            cache_from: vec!["type=gha,scope={target}".into()],
            publish: true,
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            ..Args::default()
        };
        assert_eq!(
            lines(&args),
            [format!(
                "{GLOBAL} build gpu --repository ghcr.io/o/r --cache-from 'type=gha,scope={{target}}' \
                 --push --tag ghcr.io/o/r:sha-0123456789ab-cuda"
            )]
        );
        assert_eq!(commit_tag("r", "0123456789ab", ""), "r:sha-0123456789ab");
    }

    #[test]
    fn bad_input_is_an_error_naming_it() {
        let args = Args { target: "nope".into(), ..Args::default() };
        let error = job(&config(), &repo(), &args, "xtask").unwrap_err().to_string();
        assert!(error.starts_with("unknown target \"nope\""), "{error}");
        let args = Args {
            target: "gpu".into(),
            repository: Some("r".into()),
            publish: true,
            commit: Some("main".into()),
            ..Args::default()
        };
        let error = job(&config(), &repo(), &args, "xtask").unwrap_err().to_string();
        assert!(error.starts_with("--commit \"main\": give the full commit id"), "{error}");
    }
}
