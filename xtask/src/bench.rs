//! `cargo xtask bench`: measures the project's build against the naive one-RUN
//! `pip install open-webui` image (a fixture built with the same CA secret), in one run,
//! and prints every figure beside its reference as a ratio. A benchmark, not a test:
//! nothing here fails on a slow figure.
//!
//! Cold builds use `--no-cache`, which on this BuildKit also gives every cache mount a
//! fresh, empty copy, so nothing from the shared build cache is reused and nothing of it
//! is deleted. The build-cache records a scenario creates are pruned by id afterwards,
//! and each image is removed as soon as it is measured.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};

use crate::build::{self, Source};
use crate::config::{Config, VARIANT_ARG, VERSION_ARG};
use crate::container::{Container, RunOptions};
use crate::docker::{self, human_bytes, CommandLine};
use crate::dockerfile::Dockerfile;
use crate::lock;
use crate::repo::{self, Repo};

/// Below this much free disk the bench stops before the next build.
const MIN_FREE_BYTES: u64 = 15_000_000_000;
/// Words in the build steps of this project's Dockerfile and of the naive fixture; a new
/// cache record is pruned only when its description names one of them.
const OWN_STEPS: &[&str] = &["/opt/venv", "/opt/uv", "apt-get update -qq", "useradd --uid 1000", "/root/.cache/"];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Measure only the xtask itself (compile time, --help); no image is built
    #[arg(long)]
    pub short: bool,
    /// Store the results as docs/benchmarks.md
    #[arg(long)]
    pub write: bool,
    /// Repository of the images the bench builds (they are removed again)
    #[arg(long, default_value = "open-webui-images-bench")]
    pub repository: String,
    /// The target measured alone
    #[arg(long, default_value = "gpu")]
    pub target: String,
    /// A second Open WebUI release for the warm-cache scenario [default: the patch before]
    #[arg(long, value_name = "VERSION")]
    pub other_version: Option<String>,
}

/// One figure, its reference and what the issue asks of their ratio.
struct Row {
    what: String,
    value: String,
    reference: String,
    ratio: Option<f64>,
    goal: String,
}

struct Bench<'a> {
    repo: &'a Repo,
    config: Config,
    dockerfile: Dockerfile,
    out: Utf8PathBuf,
    args: Args,
    rows: Vec<Row>,
    notes: Vec<String>,
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    config.target(&args.target)?;
    let path = repo.targets_dir().join(&config.project.dockerfile);
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let out = repo.out_dir.join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {out}"))?;
    let mut bench = Bench { repo, config, dockerfile: Dockerfile::parse(&text), out, args, rows: vec![], notes: vec![] };
    let machine = machine(repo);
    if !bench.args.short {
        docker::ensure_engine(&repo.sh)?;
        bench.images()?;
    }
    bench.xtask()?;

    let page = bench.markdown(&machine);
    println!("\n{page}");
    if bench.args.write {
        let path = repo.root.join("docs/benchmarks.md");
        std::fs::create_dir_all(repo.root.join("docs"))?;
        std::fs::write(&path, &page).with_context(|| format!("cannot write {path}"))?;
        eprintln!("-- wrote {path}");
    }
    Ok(())
}

impl Bench<'_> {
    fn images(&mut self) -> Result<()> {
        let sh = &self.repo.sh;
        let version = self.config.version().unwrap_or_default().to_string();
        let target = self.args.target.clone();

        // -- the naive image
        let naive = format!("{}-naive:{version}", self.args.repository);
        let before = records(sh)?;
        check_disk()?;
        eprintln!("-- naive: one pip install of open-webui {version}, no cache");
        let naive_secs = self.timed("naive", &naive_command(self.repo, &naive, &version))?;
        let (_, naive_size) = docker::image_id_and_size(sh, &naive).context("the naive image is missing")?;
        let naive_health = self.health(&naive, 8080, &[]);
        remove_images(sh, &[naive.clone()]);
        prune_new(sh, &before)?;

        // -- one target, cold
        let before = records(sh)?;
        check_disk()?;
        eprintln!("-- cold build of {target}, no cache");
        let (cold_secs, _) = self.build(&[&target], &[], true, None, None, "cold")?;
        let tags = self.tags(&target, &version);
        let (_, size) = docker::image_id_and_size(sh, &tags[0]).context("the built image is missing")?;
        let spec = self.config.target(&target)?;
        let (port, data_dir) = (spec.port, spec.data_dir.clone());
        let variant = spec.args.get(VARIANT_ARG).cloned().unwrap_or_else(|| "cuda".to_string());
        let target_health = self.health(&tags[0], port, &[data_dir]);
        let cuda_only = cuda_only_bytes(sh, &tags[0]).unwrap_or(0);

        self.row("cold build, one target", secs(cold_secs), secs(naive_secs), cold_secs / naive_secs, "≤ 0.6");
        self.row(&format!("image size ({target})"), human_bytes(size), human_bytes(naive_size), size as f64 / naive_size as f64, "≤ 0.9");
        self.health_row(&target, target_health, naive_health);
        if cuda_only > 0 {
            let cpu = size.saturating_sub(cuda_only);
            self.row("image size (default, CPU torch): COMPUTED", human_bytes(cpu), human_bytes(naive_size), cpu as f64 / naive_size as f64, "< 3 GB");
            self.notes.push(format!(
                "The CPU size is computed, not measured: the {target} image less the files only CUDA torch \
                 needs ({} of nvidia-*, triton and torch's CUDA libraries, measured inside the image). \
                 PyTorch's CPU index is unreachable here, so the CPU wheel itself could not be weighed.",
                human_bytes(cuda_only)
            ));
        }

        // -- no-op rebuild
        let (noop_secs, steps) = self.build(&[&target], &[], false, None, None, "noop")?;
        self.row("no-op rebuild", secs(noop_secs), secs(cold_secs), noop_secs / cold_secs, "a few seconds");
        self.notes.push(format!("No-op rebuild: {} of {} steps cached.", steps.cached.len(), steps.all.len()));

        // -- an edit to one of the image's scripts
        let context = self.out.join("context-edit");
        copy_context(self.repo, &self.config, &context)?;
        let script = context.join("rootfs/usr/local/bin/start-open-webui");
        let mut text = std::fs::read_to_string(&script).with_context(|| format!("cannot read {script}"))?;
        text.push_str("# edited by cargo xtask bench\n");
        std::fs::write(&script, text)?;
        let (edit_secs, steps) = self.build(&[&target], &[], false, Some(&context), None, "edit")?;
        self.row("rebuild after a script edit", secs(edit_secs), secs(cold_secs), edit_secs / cold_secs, "≤ 0.05");
        self.notes.push(format!(
            "After editing start-open-webui, {} of {} steps were cached; rebuilt: {}.",
            steps.cached.len(),
            steps.all.len(),
            steps.rebuilt().join("; ")
        ));

        // -- another Open WebUI release, warm download cache
        let other = match &self.args.other_version {
            Some(v) => v.clone(),
            None => previous_patch(&version)?,
        };
        let locks = self.out.join("locks-other");
        std::fs::create_dir_all(&locks)?;
        let uv = lock::ensure_uv(self.repo, &self.config)?;
        let lock_spec = self.config.locks.get(&variant).context("the target's lock is not in the targets file")?;
        let file = format!("{variant}-amd64.txt");
        lock::resolve(self.repo, &uv, &other, lock_spec, "amd64", &locks.join(&file))?;
        let now = lock::pins(&std::fs::read_to_string(lock::locks_dir(self.repo, &self.config).join(&file))?);
        let then = lock::pins(&std::fs::read_to_string(locks.join(&file))?);
        let new = then.iter().filter(|(name, v)| now.get(*name) != Some(v)).count();
        eprintln!("-- open-webui {other} with the download cache warm");
        let version_arg = format!("{VERSION_ARG}={other}");
        let (other_secs, _) = self.build(&[&target], &[&version_arg], false, None, Some(&locks), "other-version")?;
        let log = std::fs::read_to_string(self.out.join("other-version.log")).unwrap_or_default();
        let prepared = prepared(&log);
        self.row(&format!("open-webui {other}, warm download cache"), secs(other_secs), secs(cold_secs), other_secs / cold_secs, "nothing downloaded twice");
        self.notes.push(format!(
            "open-webui {other} pins {} packages, {new} of them not in the {version} lock; \
             uv downloaded {} (its \"Prepared\" count).",
            then.len(),
            prepared.map_or("an unknown number".to_string(), |n| n.to_string())
        ));
        let mut built = tags.clone();
        built.extend(self.tags(&target, &other));
        remove_images(sh, &built);
        prune_new(sh, &before)?;

        // -- every target in one command, cold
        let before = records(sh)?;
        check_disk()?;
        let names: Vec<String> = self.config.targets.keys().cloned().collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let cuda = format!("{VARIANT_ARG}=cuda");
        eprintln!("-- cold build of {}, no cache", names.join(", "));
        let (all_secs, _) = self.build(&names, &[&cuda], true, None, None, "all")?;
        self.row(&format!("all {} targets in one command", names.len()), secs(all_secs), secs(cold_secs), all_secs / cold_secs, "≤ 1.3");
        self.notes.push(format!(
            "All targets were built with {VARIANT_ARG}=cuda: the cpu lock is missing (see the targets \
             file), so default shared the CUDA python-env here. With its own lock it adds one more \
             python-env build."
        ));
        let mut built = Vec::new();
        for name in &names {
            let tags = self.tags(name, &version);
            let spec = self.config.target(name)?;
            let (port, data_dir) = (spec.port, spec.data_dir.clone());
            if *name != target {
                let seconds = self.health(&tags[0], port, &[data_dir]);
                self.health_row(name, seconds, naive_health);
            }
            eprintln!("-- measuring the waste in {}", tags[0]);
            let (total, waste) = crate::size::waste_of(&tags[0])?;
            let share = waste as f64 / total.max(1) as f64;
            self.row(&format!("waste ({name})"), human_bytes(waste), human_bytes(total), share, "< 0.01");
            built.extend(tags);
        }
        remove_images(sh, &built);
        prune_new(sh, &before)?;
        self.notes.push("Waste is what `cargo xtask size` counts: bytes of lower layers that a later layer deletes or overwrites; its reference is the whole image.".into());
        Ok(())
    }

    /// The clean compile time of the xtask and the time of `cargo xtask --help`.
    fn xtask(&mut self) -> Result<()> {
        let sh = &self.repo.sh;
        let target_dir = self.out.join("clean-target");
        let _ = std::fs::remove_dir_all(&target_dir);
        eprintln!("-- compiling the xtask from scratch");
        let compile = CommandLine::new("cargo")
            .args(["build", "--quiet", "--locked", "--package", "xtask", "--target-dir", target_dir.as_str()]);
        let started = Instant::now();
        compile.run(sh)?;
        let compile_secs = started.elapsed().as_secs_f64();
        let _ = std::fs::remove_dir_all(&target_dir);
        let help = CommandLine::new("cargo").args(["xtask", "--help"]);
        let started = Instant::now();
        help.read(sh)?;
        let help_secs = started.elapsed().as_secs_f64();
        self.row("xtask clean compile", secs(compile_secs), "-".into(), f64::NAN, "reported");
        self.row("`cargo xtask --help`", format!("{:.2} s", help_secs), "-".into(), f64::NAN, "reported");
        Ok(())
    }

    /// Time to healthy, or `None` (with a note saying why) when it could not be measured.
    fn health(&mut self, image: &str, port: u16, volumes: &[String]) -> Option<f64> {
        match health(&self.repo.sh, image, port, volumes) {
            Ok(seconds) => Some(seconds),
            Err(error) => {
                let message = format!("{error:#}").replace('\n', " ");
                let short: String = message.chars().take(200).collect();
                self.notes.push(format!("Time to healthy of {image} not measured: {short}"));
                None
            }
        }
    }

    fn health_row(&mut self, name: &str, seconds: Option<f64>, naive: Option<f64>) {
        let show = |s: Option<f64>| s.map_or("not measured".to_string(), secs);
        let ratio = match (seconds, naive) {
            (Some(a), Some(b)) => a / b,
            _ => f64::NAN,
        };
        self.row(&format!("docker run to healthy ({name})"), show(seconds), show(naive), ratio, "reported");
    }

    fn tags(&self, name: &str, version: &str) -> Vec<String> {
        self.config.targets[name].tags(&self.args.repository, version)
    }

    fn row(&mut self, what: &str, value: String, reference: String, ratio: f64, goal: &str) {
        let ratio = ratio.is_finite().then_some(ratio);
        eprintln!("   {what}: {value} (reference {reference})");
        self.rows.push(Row { what: what.into(), value, reference, ratio, goal: goal.into() });
    }

    /// Runs `command`, its output kept in `NAME.log`, and returns its wall time.
    fn timed(&self, name: &str, command: &CommandLine) -> Result<f64> {
        let log = self.out.join(format!("{name}.log"));
        eprintln!("$ {command} >{log} 2>&1");
        let started = Instant::now();
        let output = command.to_cmd(&self.repo.sh).ignore_status().output()?;
        let seconds = started.elapsed().as_secs_f64();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        std::fs::write(&log, &text)?;
        if !output.status.success() {
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("the {name} build failed (full output in {log}): {}", tail.join(" | "));
        }
        Ok(seconds)
    }

    /// Builds `names` as `cargo xtask build` would, with the context or the locks
    /// swapped when given; returns the wall time and the build's steps.
    fn build(
        &self,
        names: &[&str],
        build_args: &[&str],
        no_cache: bool,
        context: Option<&Utf8Path>,
        locks: Option<&Utf8Path>,
        name: &str,
    ) -> Result<(f64, Steps)> {
        let args = build::Args {
            targets: names.iter().map(|s| s.to_string()).collect(),
            build_args: build_args.iter().map(|s| s.to_string()).collect(),
            repository: Some(self.args.repository.clone()),
            progress: Some("plain".into()),
            no_cache,
            ca_bundle: std::env::var("SSL_CERT_FILE").ok().filter(|p| !p.is_empty()).map(Into::into),
            ..build::Args::default()
        };
        let source = Source { revision: "bench".into(), created: None };
        let mut plan = build::plan(&self.config, &self.dockerfile, &args, &source, self.repo.targets_dir(), &self.out)?;
        for spec in plan.bake_file["target"].as_object_mut().into_iter().flat_map(|t| t.values_mut()) {
            if let Some(dir) = context {
                spec["context"] = dir.as_str().into();
            }
            if let Some(dir) = locks {
                spec["contexts"] = serde_json::json!({ "locks": dir.as_str() });
            }
        }
        std::fs::write(self.out.join("bake.json"), serde_json::to_string_pretty(&plan.bake_file)?)?;
        let seconds = self.timed(name, &plan.command)?;
        let log = std::fs::read_to_string(self.out.join(format!("{name}.log")))?;
        Ok((seconds, Steps::parse(&log)))
    }

    fn markdown(&self, machine: &str) -> String {
        let mut page = String::new();
        let _ = writeln!(page, "# Benchmarks\n");
        let _ = writeln!(page, "Made by `cargo xtask bench{}`. {machine}\n", if self.args.short { " --short" } else { "" });
        let _ = writeln!(page, "Times vary between machines and runs; ratios taken in one run do not. The reference");
        let _ = writeln!(page, "is the naive image (one `pip install open-webui`, `xtask/tests/fixtures/bench`), or the");
        let _ = writeln!(page, "cold build of one target for the rebuild figures.\n");
        let _ = writeln!(page, "| figure | this project | reference | ratio | goal |");
        let _ = writeln!(page, "|---|---:|---:|---:|---|");
        for row in &self.rows {
            let ratio = row.ratio.map_or("-".to_string(), |r| format!("{r:.3}"));
            let _ = writeln!(page, "| {} | {} | {} | {ratio} | {} |", row.what, row.value, row.reference, row.goal);
        }
        if !self.notes.is_empty() {
            let _ = writeln!(page);
            for note in &self.notes {
                let _ = writeln!(page, "- {note}");
            }
        }
        page
    }
}

/// The build steps of a plain-progress log, and which of them came from the cache.
struct Steps {
    all: Vec<(String, String)>,
    cached: BTreeSet<String>,
}

impl Steps {
    fn parse(log: &str) -> Steps {
        let mut all: Vec<(String, String)> = Vec::new();
        let mut cached = BTreeSet::new();
        for line in log.lines() {
            let Some((id, rest)) = line.split_once(' ') else { continue };
            if !id.starts_with('#') {
                continue;
            }
            if rest.starts_with('[') && !all.iter().any(|(known, _)| known == id) {
                let step: String = rest.chars().take(70).collect();
                if !step.contains(" internal]") {
                    all.push((id.to_string(), step));
                }
            } else if rest == "CACHED" {
                cached.insert(id.to_string());
            }
        }
        all.retain(|(_, step)| step.contains("] RUN ") || step.contains("] COPY ") || step.contains("] WORKDIR "));
        let cached = cached.into_iter().filter(|id| all.iter().any(|(known, _)| known == id)).collect();
        Steps { all, cached }
    }

    fn rebuilt(&self) -> Vec<String> {
        self.all.iter().filter(|(id, _)| !self.cached.contains(id)).map(|(_, step)| step.clone()).collect()
    }
}

/// uv's "Prepared N packages" count: how many it had to download (or build).
fn prepared(log: &str) -> Option<usize> {
    log.lines()
        .filter_map(|line| line.split_once("Prepared ").map(|(_, rest)| rest))
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
}

fn naive_command(repo: &Repo, tag: &str, version: &str) -> CommandLine {
    let dir = repo.root.join(repo::BENCH_NAIVE);
    let mut command = CommandLine::docker().args(["buildx", "build", "--no-cache", "--progress", "plain", "--load", "--network", "host"]);
    if let Some(path) = std::env::var("SSL_CERT_FILE").ok().filter(|p| !p.is_empty()) {
        command = command.arg("--secret").arg(format!("id={},src={path}", build::CA_SECRET_ID));
    }
    command.arg("--build-arg").arg(format!("{VERSION_ARG}={version}")).arg("--tag").arg(tag).arg(dir.as_str())
}

/// Seconds from `docker run` to `/health` answering.
fn health(sh: &xshell::Shell, image: &str, port: u16, volumes: &[String]) -> Result<f64> {
    let name = format!("xtask-bench-{}", std::process::id());
    let options = RunOptions { port: Some(port), env: vec!["OFFLINE_MODE=true".into()], volumes: volumes.to_vec(), ..RunOptions::default() };
    let started = Instant::now();
    let container = Container::start(sh, &name, image, &options)?;
    let addr = container.published(port)?;
    container
        .wait_for_health(addr, Duration::from_secs(300))
        .with_context(|| format!("{image} did not become healthy; its log ends:\n{}", container.log_tail(20)))?;
    Ok(started.elapsed().as_secs_f64())
}

/// Bytes that only CUDA torch needs, measured in an image: the nvidia-* and triton
/// packages and torch's own CUDA libraries.
fn cuda_only_bytes(sh: &xshell::Shell, image: &str) -> Result<u64> {
    let script = "cd /opt/venv/lib/python3*/site-packages && du -scb nvidia triton torch/lib/*cuda* \
                  torch/lib/*nvrtc* torch/lib/*cudnn* torch/lib/*nccl* 2>/dev/null | tail -n 1";
    let out = CommandLine::docker()
        .args(["run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c", script])
        .read(sh)?;
    out.split_whitespace().next().and_then(|n| n.parse().ok()).context("cannot read du's total")
}

/// cores, memory, Docker and buildx versions, in one line.
fn machine(repo: &Repo) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next()?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or("unknown".to_string(), |kb| human_bytes(kb * 1024));
    let read = |args: &[&str]| CommandLine::docker().args(args.iter().copied()).read(&repo.sh).unwrap_or_else(|_| "unknown".into());
    let engine = read(&["version", "--format", "{{.Server.Version}}"]);
    let buildx = read(&["buildx", "version"]);
    let buildx = buildx.split_whitespace().nth(1).unwrap_or("unknown").to_string();
    format!("Machine: {cores} cores, {memory} memory, Docker engine {engine}, buildx {buildx}.")
}

/// `0.12.4` → `0.12.3`.
fn previous_patch(version: &str) -> Result<String> {
    let (head, patch) = version.rsplit_once('.').context("version has no patch number")?;
    match patch.parse::<u32>() {
        Ok(n) if n > 0 => Ok(format!("{head}.{}", n - 1)),
        _ => bail!("cannot guess the release before {version}: give one with --other-version"),
    }
}

fn secs(seconds: f64) -> String {
    if seconds >= 60.0 {
        format!("{}m {:02.0}s", (seconds / 60.0) as u64, seconds % 60.0)
    } else {
        format!("{seconds:.1} s")
    }
}

fn check_disk() -> Result<()> {
    let sh = xshell::Shell::new()?;
    let out = CommandLine::new("df").args(["--output=avail", "-B1", "/"]).read(&sh)?;
    let free: u64 = out.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(u64::MAX);
    if free < MIN_FREE_BYTES {
        bail!("only {} free on /: free some space (at least {}) and run the bench again", human_bytes(free), human_bytes(MIN_FREE_BYTES));
    }
    Ok(())
}

/// A copy of the build context (what the .dockerignore lets through: rootfs, locks).
fn copy_context(repo: &Repo, config: &Config, to: &Utf8Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to)?;
    let context = repo.targets_dir().join(&config.project.context);
    for part in ["rootfs", "locks"] {
        CommandLine::new("cp").args(["-a", context.join(part).as_str(), to.as_str()]).read(&repo.sh)?;
    }
    Ok(())
}

fn remove_images(sh: &xshell::Shell, tags: &[String]) {
    let command = CommandLine::docker().args(["image", "rm", "--force"]).args(tags.iter().cloned());
    if let Err(error) = command.run(sh) {
        eprintln!("warning: {error:#}");
    }
}

/// The ids and descriptions of the build-cache records.
fn records(sh: &xshell::Shell) -> Result<Vec<(String, String)>> {
    let out = CommandLine::docker().args(["buildx", "du", "--verbose"]).read(sh)?;
    let mut records = Vec::new();
    let mut id = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("ID:") {
            id = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("Description:") {
            if let Some(id) = id.take() {
                records.push((id, rest.trim().to_string()));
            }
        }
    }
    Ok(records)
}

/// Prunes the cache records that appeared since `before` and belong to these builds.
fn prune_new(sh: &xshell::Shell, before: &[(String, String)]) -> Result<()> {
    let known: BTreeSet<&str> = before.iter().map(|(id, _)| id.as_str()).collect();
    let new: Vec<(String, String)> = records(sh)?
        .into_iter()
        .filter(|(id, description)| !known.contains(id.as_str()) && OWN_STEPS.iter().any(|w| description.contains(w)))
        .collect();
    eprintln!("-- pruning the {} build-cache records this scenario created", new.len());
    for (id, _) in new {
        let prune = CommandLine::docker().args(["buildx", "prune", "--force", "--filter"]).arg(format!("id={id}"));
        prune.read(sh)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
#1 [internal] load build definition from Dockerfile
#5 [base 2/2] RUN --mount=type=cache,id=apt-lists apt-get update
#5 CACHED
#7 [python-env 1/1] RUN --mount=type=bind,from=uv uv pip install
#7 0.5 Prepared 12 packages in 3.10s
#7 0.9 Installed 262 packages in 1s
#7 CACHED
#9 [app 2/3] COPY --link rootfs/ /
#9 DONE 0.1s
";

    #[test]
    fn steps_know_what_was_cached() {
        let steps = Steps::parse(LOG);
        assert_eq!(steps.all.len(), 3);
        assert_eq!(steps.cached.len(), 2);
        assert_eq!(steps.rebuilt(), ["[app 2/3] COPY --link rootfs/ /"]);
    }

    #[test]
    fn prepared_reads_uv_download_count() {
        assert_eq!(prepared(LOG), Some(12));
        assert_eq!(prepared("nothing"), None);
    }

    #[test]
    fn previous_patch_counts_down() {
        assert_eq!(previous_patch("0.12.4").unwrap(), "0.12.3");
        assert!(previous_patch("1.0.0").unwrap_err().to_string().contains("--other-version"));
    }

    #[test]
    fn naive_command_uses_the_fixture_and_the_version() {
        let repo = Repo::locate(None, None).unwrap();
        let command = naive_command(&repo, "n:1", "0.12.4").to_string();
        assert!(command.starts_with("docker buildx build --no-cache --progress plain --load --network host"), "{command}");
        assert!(command.contains(" --build-arg OPEN_WEBUI_VERSION=0.12.4 --tag n:1 "), "{command}");
        assert!(command.ends_with("xtask/tests/fixtures/bench"), "{command}");
    }
}
