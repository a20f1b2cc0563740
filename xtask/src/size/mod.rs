//! `cargo xtask size`: what each image weighs, where its bytes are, which of them are
//! waste, and whether it keeps within the budgets the targets file sets for it.
//!
//! The image is read from `docker save` as it streams (image.rs), reduced to a report
//! (analysis.rs), compared with another image or the saved baseline, and printed
//! (render.rs). `--write` records the reports in the baseline file and regenerates the
//! sizes page and its charts from it.

mod analysis;
mod image;
mod render;
mod tar;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Target};
use crate::docker::{self, human_bytes, CommandLine};
use crate::repo::{self, Repo};
pub use analysis::Report;

#[derive(clap::Args)]
pub struct Args {
    /// Targets from the targets file whose images to measure (as `build` tags them)
    #[arg(value_name = "TARGET", required_unless_present = "image")]
    targets: Vec<String>,
    /// Measure this local image: with one TARGET, held to that target's budget; alone
    /// (repeatable), with no budget
    #[arg(long, value_name = "REF")]
    image: Vec<String>,
    /// How to print the reports
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Compare with this local image instead of the saved baseline
    #[arg(long, value_name = "REF")]
    against: Option<String>,
    /// Record the targets' reports in the baseline and regenerate the sizes page
    #[arg(long)]
    write: bool,
    /// Repository part of the target images' tags, as given to `build --repository`
    #[arg(long, value_name = "NAME")]
    repository: Option<String>,
    /// Where the baseline, the page and its charts live, instead of docs/
    #[arg(long, value_name = "DIR")]
    docs_dir: Option<Utf8PathBuf>,
    /// Model weight files from this size on are flagged
    #[arg(long, value_name = "SIZE", default_value = "50 MB", value_parser = size_arg)]
    weights_threshold: u64,
}

fn size_arg(text: &str) -> Result<u64, String> {
    crate::bytes::parse(text).map_err(|e| e.to_string())
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Human,
    Json,
    Markdown,
}

/// One measured image with its budget verdict and its comparison.
#[derive(Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub report: Report,
    /// Bytes `docker image inspect` reports, to check the total against.
    pub inspect_bytes: u64,
    pub seconds: f64,
    pub size_budget: Option<u64>,
    pub waste_budget: Option<u64>,
    /// One sentence per budget the image breaks.
    pub over_budget: Vec<String>,
    pub diff: Option<Diff>,
}

#[derive(Serialize)]
pub struct Diff {
    /// The image compared with, or the baseline file.
    pub against: String,
    pub total_before: u64,
    pub total_after: u64,
    pub compressed_before: u64,
    pub compressed_after: u64,
    pub layers: Vec<LayerChange>,
    /// Groups of paths (see `analysis::group_of`) that grew, shrank, came or went.
    pub paths: Vec<PathChange>,
}

#[derive(Serialize)]
pub struct LayerChange {
    pub layer: usize,
    pub instruction: String,
    pub before: Option<u64>,
    pub after: Option<u64>,
    /// Same digest on both sides: the very same layer.
    pub same: bool,
}

#[derive(Serialize)]
pub struct PathChange {
    pub path: String,
    pub before: u64,
    pub after: u64,
}

/// Path changes smaller than this are not worth a line.
const PATH_CHANGE_MIN: u64 = 1_000_000;

/// The baseline file: the last recorded report of each target.
#[derive(Serialize, Deserialize, Default)]
pub struct Baseline {
    pub targets: BTreeMap<String, Report>,
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    if args.write && args.targets.is_empty() {
        bail!("--write records targets only: name the targets to record (cargo xtask size --write vastai)");
    }
    let docs = args.docs_dir.clone().unwrap_or_else(|| repo.root.join(repo::DOCS_DIR));
    let baseline_path = docs.join(repo::SIZE_BASELINE);
    let mut baseline = load_baseline(&baseline_path)?;
    docker::ensure_engine(&repo.sh)?;

    // What to measure: targets (with their budgets), then plain images.
    let repository = args.repository.as_deref().unwrap_or(&config.project.repository);
    let version = config.version().unwrap_or_default();
    let mut jobs: Vec<(Option<String>, String, Option<&Target>)> = Vec::new();
    match (args.targets.as_slice(), args.image.as_slice()) {
        // One target and one image: that image, held to the target's budget.
        ([name], [image]) => jobs.push((Some(name.clone()), image.clone(), Some(config.target(name)?))),
        (names, []) => {
            for name in names {
                let target = config.target(name)?;
                jobs.push((Some(name.clone()), target.tags(repository, version)[0].clone(), Some(target)));
            }
        }
        ([], images) => jobs.extend(images.iter().map(|image| (None, image.clone(), None))),
        _ => bail!(
            "--image with targets: give one target and one --image (the image is held to that \
             target's budget), or only --image for images without a budget"
        ),
    }

    let against = match &args.against {
        Some(image) => Some((image.clone(), measure(repo, image, args.weights_threshold)?.0)),
        None => None,
    };

    let mut outcomes = Vec::new();
    for (target_name, image, target) in jobs {
        let (mut report, inspect_bytes, seconds) = measure(repo, &image, args.weights_threshold)
            .with_context(|| match &target_name {
                Some(name) => format!("target {name}: build it first with `cargo xtask build {name}`"),
                None => "check the image reference".to_string(),
            })?;
        report.target = target_name.clone();
        let diff = match (&against, &target_name) {
            (Some((name, other)), _) => Some(diff(name, other, &report)),
            (None, Some(name)) => baseline.targets.get(name).map(|old| diff(baseline_path.as_str(), old, &report)),
            (None, None) => None,
        };
        let size_budget = target.and_then(|t| t.size_budget);
        let waste_budget = target.and_then(|t| t.waste_budget);
        let over_budget = over_budget(&report, size_budget, waste_budget);
        outcomes.push(Outcome { report, inspect_bytes, seconds, size_budget, waste_budget, over_budget, diff });
    }

    match args.format {
        Format::Human => print!("{}", render::human(&outcomes)),
        Format::Markdown => print!("{}", render::summary_markdown(&outcomes)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&outcomes)?),
    }

    if args.write {
        for outcome in &outcomes {
            if let Some(name) = &outcome.report.target {
                baseline.targets.insert(name.clone(), outcome.report.clone());
            }
        }
        write_docs(&docs, &baseline)?;
    }

    let over: Vec<&String> = outcomes.iter().flat_map(|o| &o.over_budget).collect();
    if !over.is_empty() {
        bail!("{}", over.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; "));
    }
    Ok(())
}

/// Reads one local image and reports on it; also returns Docker's own size and the time.
fn measure(repo: &Repo, image: &str, weights_threshold: u64) -> Result<(Report, u64, f64)> {
    let (id, inspect_bytes) = docker::image_id_and_size(&repo.sh, image)
        .with_context(|| format!("there is no local image {image}"))?;
    let label = CommandLine::docker()
        .args(["image", "inspect", "--format", "{{index .Config.Labels \"dev.open-webui-images.torch-index\"}}", image])
        .read(&repo.sh)
        .unwrap_or_default();
    // A CPU image is one whose torch came from a CPU wheel index, as its label records.
    let cpu_only = label.trim_end_matches('/').ends_with("/cpu");
    eprintln!("reading {image} ({}) from docker save ...", human_bytes(inspect_bytes));
    let started = Instant::now();
    let saved = image::read(image)?;
    let options = analysis::Options { weights_threshold, cpu_only };
    let report = analysis::analyse(image, &id, &saved, &options);
    Ok((report, inspect_bytes, started.elapsed().as_secs_f64()))
}

fn over_budget(report: &Report, size_budget: Option<u64>, waste_budget: Option<u64>) -> Vec<String> {
    let name = report.target.as_deref().unwrap_or(&report.image);
    let mut over = Vec::new();
    if let Some(budget) = size_budget.filter(|b| report.total_bytes > *b) {
        over.push(format!(
            "{name} weighs {}, {} over its size_budget of {}",
            human_bytes(report.total_bytes),
            human_bytes(report.total_bytes - budget),
            human_bytes(budget)
        ));
    }
    if let Some(budget) = waste_budget.filter(|b| report.waste_bytes > *b) {
        over.push(format!(
            "{name} carries {} of waste, {} over its waste_budget of {}",
            human_bytes(report.waste_bytes),
            human_bytes(report.waste_bytes - budget),
            human_bytes(budget)
        ));
    }
    over
}

/// Layers are compared position by position; paths by their group.
/// The total bytes of a local image and the bytes of it that are waste, as `size`
/// counts them; for other commands (the benchmark) that only need those two figures.
pub fn waste_of(image: &str) -> Result<(u64, u64)> {
    let saved = image::read(image)?;
    let options = analysis::Options { weights_threshold: u64::MAX, cpu_only: false };
    let report = analysis::analyse(image, "", &saved, &options);
    Ok((report.total_bytes, report.waste_bytes))
}

pub fn diff(against: &str, before: &Report, after: &Report) -> Diff {
    let count = before.layers.len().max(after.layers.len());
    let layers = (0..count)
        .map(|i| {
            let (old, new) = (before.layers.get(i), after.layers.get(i));
            LayerChange {
                layer: i + 1,
                instruction: new.or(old).map(|l| l.instruction.clone()).unwrap_or_default(),
                before: old.map(|l| l.bytes),
                after: new.map(|l| l.bytes),
                same: matches!((old, new), (Some(a), Some(b)) if a.digest == b.digest),
            }
        })
        .collect();
    let mut paths: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for group in &before.groups {
        paths.entry(&group.path).or_default().0 = group.bytes;
    }
    for group in &after.groups {
        paths.entry(&group.path).or_default().1 = group.bytes;
    }
    let mut paths: Vec<PathChange> = paths
        .into_iter()
        .filter(|(_, (b, a))| b.abs_diff(*a) >= PATH_CHANGE_MIN)
        .map(|(path, (before, after))| PathChange { path: path.to_string(), before, after })
        .collect();
    paths.sort_by(|x, y| y.before.abs_diff(y.after).cmp(&x.before.abs_diff(x.after)).then_with(|| x.path.cmp(&y.path)));
    Diff {
        against: against.to_string(),
        total_before: before.total_bytes,
        total_after: after.total_bytes,
        compressed_before: before.compressed_bytes,
        compressed_after: after.compressed_bytes,
        layers,
        paths,
    }
}

fn load_baseline(path: &Utf8Path) -> Result<Baseline> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{path} does not parse; restore it from git or delete it and run size --write")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Baseline::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {path}")),
    }
}

/// Writes the baseline, the page and one chart per target; each file is written whole
/// to a temporary name first, so an interrupted run leaves the old one in place.
fn write_docs(docs: &Utf8Path, baseline: &Baseline) -> Result<()> {
    std::fs::create_dir_all(docs).with_context(|| format!("cannot create {docs}"))?;
    let mut files = vec![
        (docs.join(repo::SIZE_BASELINE), serde_json::to_string_pretty(baseline)? + "\n"),
        (docs.join(repo::SIZE_PAGE), render::page(baseline)),
    ];
    for (name, report) in &baseline.targets {
        files.push((docs.join(render::chart_file(name)), render::chart(name, report)));
    }
    for (path, text) in files {
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, text).with_context(|| format!("cannot write {temporary}"))?;
        std::fs::rename(&temporary, &path).with_context(|| format!("cannot write {path}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
