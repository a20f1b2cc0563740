//! `cargo xtask prune`: frees the disk that building and running these images fills.
//!
//! On the Docker engine: BuildKit's build cache (by age, then down to a size to keep),
//! the download caches behind `RUN --mount=type=cache` (only when asked: they make
//! rebuilds fast), this project's older images (found by their target label), dangling
//! images and stopped containers of this project. On a data directory or volume: the
//! runtime cache policy, which is the image's own `open-webui-cache` script, run as is.
//!
//! It shows the plan first, asks on a terminal (or acts with `--yes`, or stops with
//! `--dry-run`), and ends with the bytes freed as `docker system df` measures them.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::Shell;

use crate::build::LABEL_TARGET;
use crate::config::Config;
use crate::container::LABEL_OWNER;
use crate::docker::{self, human_bytes, CommandLine};
use crate::dockerfile;
use crate::repo::Repo;

/// The cache policy, relative to the repository root; the images carry the same file.
pub const POLICY_SCRIPT: &str = "dockerfiles/rootfs/usr/local/bin/open-webui-cache";
/// The build cache record types that `--build-cache` prunes, one prune call each (the
/// engine takes one value per filter key). Cache mounts are `exec.cachemount`.
const BUILD_CACHE_TYPES: [&str; 2] = ["regular", "source.local"];
const CACHE_MOUNT_TYPE: &str = "exec.cachemount";

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Prune BuildKit's build cache (without the cache mounts)
    #[arg(long)]
    pub build_cache: bool,
    /// Prune the download caches of RUN --mount=type=cache too (slower rebuilds after)
    #[arg(long)]
    pub cache_mounts: bool,
    /// Remove this project's images older than the newest --keep-images of each target
    #[arg(long)]
    pub images: bool,
    /// Remove this project's dangling (untagged) images
    #[arg(long)]
    pub dangling: bool,
    /// Remove this project's stopped containers
    #[arg(long)]
    pub containers: bool,
    /// Everything above, cache mounts included
    #[arg(long)]
    pub all: bool,
    /// Build cache unused for longer than this goes [default: targets file, 168h]
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
    /// Then the oldest build cache goes until this much is left [default: targets file]
    #[arg(long, value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// Newest images kept per target [default: targets file, 2]
    #[arg(long, value_name = "N")]
    pub keep_images: Option<usize>,
    /// Only images tagged in this repository [default: the targets file's]
    #[arg(long)]
    pub repository: Option<String>,
    /// Only images and containers that also carry this label (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Apply the cache policy to this host directory (an Open WebUI data directory)
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<Utf8PathBuf>,
    /// Apply the cache policy to this Docker volume (a data directory or a workspace)
    #[arg(long, value_name = "VOLUME")]
    pub cache_volume: Option<String>,
    /// Image the policy runs in for --cache-volume [default: the Dockerfile's BASE_IMAGE]
    #[arg(long, value_name = "REF")]
    pub policy_image: Option<String>,
    /// Policy: also remove models the configuration does not use
    #[arg(long)]
    pub remove_unused: bool,
    /// Policy: a model to keep besides the configured ones (repeatable)
    #[arg(long = "keep-model", value_name = "REPO")]
    pub keep_models: Vec<String>,
    /// Policy: remove cache entries unused for this many days
    #[arg(long, value_name = "DAYS")]
    pub max_age_days: Option<f64>,
    /// Policy: remove the least recently used entries above this size, e.g. 20GB
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// Show the plan and remove nothing
    #[arg(long, conflicts_with = "yes")]
    pub dry_run: bool,
    /// Remove without asking
    #[arg(long)]
    pub yes: bool,
}

/// One thing the plan removes, with the command that removes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub kind: &'static str,
    pub what: String,
    pub bytes: u64,
}

/// What `prune` would do: the items for people, the commands that do it.
#[derive(Debug, Default)]
pub struct Plan {
    pub items: Vec<Item>,
    pub commands: Vec<CommandLine>,
    pub notes: Vec<String>,
}

/// One record of `docker buildx du --verbose`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub kind: String,
    pub bytes: u64,
    pub shared: bool,
    pub reclaimable: bool,
    pub idle_seconds: u64,
    pub description: String,
}

pub fn run(repo: &Repo, mut args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    let policy_only = args.cache_dir.is_some() || args.cache_volume.is_some();
    let none_chosen = !(args.build_cache || args.cache_mounts || args.images || args.dangling || args.containers);
    if args.all || (none_chosen && !policy_only) {
        args.build_cache = true;
        args.images = true;
        args.dangling = true;
        args.containers = true;
        args.cache_mounts |= args.all;
    }
    for label in &args.labels {
        if !label.contains('=') || label.starts_with('=') {
            bail!("--label {label}: write it as KEY=VALUE");
        }
    }
    let older_than = args.older_than.clone().unwrap_or_else(|| config.prune.build_cache_older_than.clone());
    check_duration(&older_than)?;
    let keep_storage = args.keep_storage.clone().unwrap_or_else(|| config.prune.build_cache_keep_storage.clone());
    let keep_bytes = parse_size(&keep_storage).with_context(|| format!("--keep-storage {keep_storage}"))?;
    let keep_images = args.keep_images.unwrap_or(config.prune.keep_images);
    let repository = args.repository.clone().unwrap_or_else(|| config.project.repository.clone());

    let sh = &repo.sh;
    let engine_needed = !(policy_only && none_chosen) || args.cache_volume.is_some();
    if engine_needed {
        docker::ensure_engine(sh)?;
    }
    let mut plan = Plan::default();
    if args.build_cache || args.cache_mounts {
        let records = parse_records(&CommandLine::docker().args(["buildx", "du", "--verbose"]).read(sh)?);
        let mut kinds: Vec<&str> = Vec::new();
        if args.build_cache {
            kinds.extend(BUILD_CACHE_TYPES);
        }
        if args.cache_mounts {
            kinds.push(CACHE_MOUNT_TYPE);
        }
        let older = parse_duration(&older_than)?;
        build_cache_plan(&mut plan, &records, &kinds, &older_than, older, &keep_storage, keep_bytes);
    }
    if args.images || args.dangling {
        let images = list_images(sh, &args.labels)?;
        if args.images {
            images_plan(&mut plan, &images, &repository, keep_images);
        }
        if args.dangling {
            dangling_plan(&mut plan, &images);
        }
    }
    if args.containers {
        containers_plan(&mut plan, &list_containers(sh, &args.labels)?);
    }
    let policy = policy_commands(repo, &args)?;

    // The plan, then the policy's own dry run (it reports what it would remove).
    print_plan(&plan);
    for (dry, _) in &policy {
        eprintln!("-- cache policy, dry run");
        dry.run(sh)?;
    }
    if plan.commands.is_empty() && policy.is_empty() {
        println!("nothing to prune");
        return Ok(());
    }
    if args.dry_run {
        println!("dry run: nothing removed (rerun with --yes to remove it)");
        return Ok(());
    }
    if !args.yes && !confirm()? {
        println!("nothing removed");
        return Ok(());
    }

    let before = if plan.commands.is_empty() { None } else { Some(disk_usage(sh)?) };
    for command in &plan.commands {
        // A command that fails (an image in use since the plan, say) stops nothing else:
        // each removes whole objects, so nothing is left half done.
        if let Err(error) = command.run(sh) {
            eprintln!("warning: {error:#}");
        }
    }
    for (_, real) in &policy {
        eprintln!("-- cache policy");
        real.run(sh)?;
    }
    if let Some(before) = before {
        let after = disk_usage(sh)?;
        print_freed(&before, &after);
    }
    Ok(())
}

/// Accepts what buildx accepts for `until`: a Go duration such as `168h` or `90m`.
fn check_duration(text: &str) -> Result<()> {
    parse_duration(text).map(|_| ())
}

/// `168h`, `90m`, `1h30m`, `45s` -> seconds.
pub fn parse_duration(text: &str) -> Result<u64> {
    let mut total = 0f64;
    let mut number = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => bail!("duration {text:?}: use hours, minutes or seconds, e.g. 168h, 90m or 1h30m"),
        };
        let value: f64 = number.parse().with_context(|| format!("duration {text:?}: a number must precede {c}"))?;
        total += value * unit;
        number.clear();
        any = true;
    }
    if !any || !number.is_empty() {
        bail!("duration {text:?}: give a unit, e.g. 168h, 90m or 1h30m");
    }
    Ok(total as u64)
}

/// Sizes as Docker prints and takes them (`7.313GB`, `109.9kB`, `0B`, `512MiB`), read
/// by the same parser as the targets file's sizes.
pub fn parse_size(text: &str) -> Result<u64> {
    crate::bytes::parse(text)
}

/// "Less than a second", "About a minute", "5 minutes", "3 hours", "2 weeks" (as Docker
/// prints how long ago) -> seconds. Unknown text counts as just now: it keeps the record.
pub fn parse_ago(text: &str) -> u64 {
    let text = text.trim().trim_end_matches(" ago").to_ascii_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    let (count, unit) = match words.as_slice() {
        ["less", ..] => return 0,
        ["about", "a" | "an", unit] => (1.0, *unit),
        [count, unit] => (count.parse::<f64>().unwrap_or(0.0), *unit),
        _ => return 0,
    };
    let seconds = match unit.trim_end_matches('s') {
        "second" => 1.0,
        "minute" => 60.0,
        "hour" => 3600.0,
        "day" => 86400.0,
        "week" => 7.0 * 86400.0,
        "month" => 30.0 * 86400.0,
        "year" => 365.0 * 86400.0,
        _ => 0.0,
    };
    (count * seconds) as u64
}

/// The records of `docker buildx du --verbose`: blocks of `Key: value` lines.
pub fn parse_records(text: &str) -> Vec<Record> {
    let mut records = Vec::new();
    for block in text.split("\n\n") {
        let fields: BTreeMap<&str, &str> = block
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.trim(), value.trim()))
            .collect();
        let Some(id) = fields.get("ID") else { continue };
        records.push(Record {
            id: id.to_string(),
            kind: fields.get("Type").unwrap_or(&"regular").to_string(),
            bytes: fields.get("Size").and_then(|s| parse_size(s).ok()).unwrap_or(0),
            shared: fields.get("Shared") == Some(&"true"),
            reclaimable: fields.get("Reclaimable") != Some(&"false"),
            idle_seconds: parse_ago(fields.get("Last used").or(fields.get("Created at")).unwrap_or(&"")),
            description: fields.get("Description").unwrap_or(&"").to_string(),
        });
    }
    records
}

/// The build cache part: first what is older than `older`, then the least recently
/// used until the whole build cache is at most `keep_bytes`. BuildKit decides the
/// records itself, so the listed ones are its expected choice; the freed bytes at the
/// end are measured.
pub fn build_cache_plan(
    plan: &mut Plan,
    records: &[Record],
    kinds: &[&str],
    older_than: &str,
    older: u64,
    keep_storage: &str,
    keep_bytes: u64,
) {
    let eligible = |r: &&Record| r.reclaimable && kinds.contains(&r.kind.as_str());
    let mut gone: Vec<&Record> = records.iter().filter(eligible).filter(|r| r.idle_seconds > older).collect();
    let unshared = |r: &Record| if r.shared { 0 } else { r.bytes };
    let mut total: u64 = records.iter().map(unshared).sum::<u64>() - gone.iter().map(|r| unshared(r)).sum::<u64>();
    let mut rest: Vec<&Record> = records.iter().filter(eligible).filter(|r| r.idle_seconds <= older).collect();
    rest.sort_by_key(|r| std::cmp::Reverse(r.idle_seconds));
    for record in rest {
        if total <= keep_bytes {
            break;
        }
        total -= unshared(record);
        gone.push(record);
    }
    let all: u64 = records.iter().map(unshared).sum();
    plan.notes.push(format!(
        "build cache: {} records, {} in all; of types {} ({} records) what is unused for over \
         {older_than} goes, then the oldest until at most {keep_storage} is left",
        records.len(),
        human_bytes(all),
        kinds.join(", "),
        records.iter().filter(eligible).count(),
    ));
    for record in gone {
        let mut description: String = record.description.chars().take(70).collect();
        if record.shared {
            description.push_str(" (shared with an image: frees nothing yet)");
        }
        let kind = if record.kind == CACHE_MOUNT_TYPE { "cache mount" } else { "build cache" };
        plan.items.push(Item { kind, what: format!("{} {description}", record.id), bytes: unshared(record) });
    }
    for kind in kinds {
        plan.commands.push(prune_command(kind, Some(older_than), None));
        plan.commands.push(prune_command(kind, None, Some(keep_storage)));
    }
}

/// `docker buildx prune` for one record type, by age or down to a size.
pub fn prune_command(kind: &str, until: Option<&str>, keep_storage: Option<&str>) -> CommandLine {
    let mut command = CommandLine::docker().args(["buildx", "prune", "--force", "--filter"]).arg(format!("type={kind}"));
    if let Some(until) = until {
        command = command.arg("--filter").arg(format!("until={until}"));
    }
    if let Some(keep) = keep_storage {
        command = command.arg("--keep-storage").arg(keep);
    }
    command
}

/// A local image of this project.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    pub target: String,
    pub created: String,
    pub bytes: u64,
    pub tags: Vec<String>,
    pub containers: usize,
}

const IMAGE_FORMAT: &str = "{{.Id}}|{{index .Config.Labels \"dev.open-webui-images.target\"}}|{{.Created}}|{{.Size}}|{{range .RepoTags}}{{.}},{{end}}";

/// `docker image ls` limited to this project's images (and the extra labels).
pub fn list_images_command(labels: &[String]) -> CommandLine {
    let mut command = CommandLine::docker().args(["image", "ls", "--quiet", "--no-trunc", "--filter"]).arg(format!("label={LABEL_TARGET}"));
    for label in labels {
        command = command.arg("--filter").arg(format!("label={label}"));
    }
    command
}

fn list_images(sh: &Shell, labels: &[String]) -> Result<Vec<Image>> {
    let mut ids: Vec<String> = list_images_command(labels).read(sh)?.lines().map(str::to_string).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let out = CommandLine::docker().args(["image", "inspect", "--format", IMAGE_FORMAT]).args(ids).read(sh)?;
    let used = CommandLine::docker().args(["container", "ls", "--all", "--format", "{{.Image}}|{{.ImageID}}"]).read(sh);
    let used = used.unwrap_or_default();
    let mut images = parse_images(&out);
    for image in &mut images {
        // `docker ps` names the image by tag or id; either counts as in use.
        image.containers = used
            .lines()
            .filter(|line| line.split('|').any(|word| word == image.id || image.tags.iter().any(|t| t == word)))
            .count();
    }
    Ok(images)
}

pub fn parse_images(text: &str) -> Vec<Image> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(5, '|');
            Some(Image {
                id: parts.next()?.to_string(),
                target: parts.next()?.to_string(),
                created: parts.next()?.to_string(),
                bytes: parts.next()?.parse().ok()?,
                tags: parts.next().unwrap_or("").split(',').filter(|t| !t.is_empty()).map(str::to_string).collect(),
                containers: 0,
            })
        })
        .collect()
}

/// Sorts RFC 3339 times with fractions of any length: seconds first, then the fraction.
fn time_key(created: &str) -> (String, String) {
    let (seconds, fraction) = created.trim_end_matches('Z').split_once('.').unwrap_or((created, ""));
    (seconds.to_string(), format!("{fraction:0<9}"))
}

/// Keeps the newest `keep` tagged images of each target in `repository`; images that a
/// container uses stay. Images of other repositories are never touched.
pub fn images_plan(plan: &mut Plan, images: &[Image], repository: &str, keep: usize) {
    let prefix = format!("{repository}:");
    let mut by_target: BTreeMap<&str, Vec<&Image>> = BTreeMap::new();
    for image in images {
        if image.tags.iter().any(|t| t.starts_with(&prefix)) {
            by_target.entry(image.target.as_str()).or_default().push(image);
        }
    }
    for (target, mut list) in by_target {
        list.sort_by_key(|image| std::cmp::Reverse(time_key(&image.created)));
        for image in list.into_iter().skip(keep) {
            if image.containers > 0 {
                plan.notes.push(format!("kept {} ({target}): a container uses it", image.tags.join(" ")));
                continue;
            }
            let what = format!("{} ({target}, {})", image.tags.join(" "), image.created.get(..19).unwrap_or(""));
            plan.items.push(Item { kind: "image", what, bytes: image.bytes });
            plan.commands.push(CommandLine::docker().args(["image", "rm"]).args(image.tags.iter().cloned()));
        }
    }
}

pub fn dangling_plan(plan: &mut Plan, images: &[Image]) {
    for image in images.iter().filter(|i| i.tags.is_empty()) {
        if image.containers > 0 {
            plan.notes.push(format!("kept dangling {}: a container uses it", short(&image.id)));
            continue;
        }
        let what = format!("{} ({}, untagged)", short(&image.id), image.target);
        plan.items.push(Item { kind: "dangling", what, bytes: image.bytes });
        plan.commands.push(CommandLine::docker().args(["image", "rm", &image.id]));
    }
}

fn short(id: &str) -> &str {
    let hex = id.trim_start_matches("sha256:");
    hex.get(..12).unwrap_or(hex)
}

/// Stopped containers that the xtask started (its guard labels them).
pub fn list_containers_command(labels: &[String]) -> CommandLine {
    let mut command = CommandLine::docker().args(["container", "ls", "--all", "--quiet", "--no-trunc"]);
    command = command.arg("--filter").arg(format!("label={LABEL_OWNER}"));
    for label in labels {
        command = command.arg("--filter").arg(format!("label={label}"));
    }
    for status in ["created", "exited", "dead"] {
        command = command.arg("--filter").arg(format!("status={status}"));
    }
    command
}

fn list_containers(sh: &Shell, labels: &[String]) -> Result<Vec<(String, String, u64)>> {
    let ids: Vec<String> = list_containers_command(labels).read(sh)?.lines().map(str::to_string).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let format = "{{.Id}}|{{.Name}}|{{.SizeRw}}";
    let out = CommandLine::docker().args(["container", "inspect", "--size", "--format", format]).args(ids).read(sh)?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '|');
            let id = parts.next()?.to_string();
            let name = parts.next()?.trim_start_matches('/').to_string();
            Some((id, name, parts.next()?.parse().unwrap_or(0)))
        })
        .collect())
}

pub fn containers_plan(plan: &mut Plan, containers: &[(String, String, u64)]) {
    if containers.is_empty() {
        return;
    }
    for (_, name, bytes) in containers {
        plan.items.push(Item { kind: "container", what: name.clone(), bytes: *bytes });
    }
    let ids = containers.iter().map(|(id, _, _)| id.clone());
    plan.commands.push(CommandLine::docker().args(["container", "rm", "--volumes"]).args(ids));
}

/// The policy's flags, shared by the host directory and the volume forms.
fn policy_flags(args: &Args) -> Vec<String> {
    let mut flags = Vec::new();
    if args.remove_unused {
        flags.push("--remove-unused".to_string());
    }
    for model in &args.keep_models {
        flags.extend(["--keep-model".to_string(), model.clone()]);
    }
    if let Some(days) = args.max_age_days {
        flags.extend(["--max-age-days".to_string(), days.to_string()]);
    }
    if let Some(size) = &args.max_size {
        flags.extend(["--max-size".to_string(), size.clone()]);
    }
    flags
}

/// The policy on a host directory: python3 runs the script from this checkout.
pub fn policy_on_dir(script: &Utf8Path, dir: &Utf8Path, flags: &[String], dry_run: bool) -> CommandLine {
    let command = CommandLine::new("python3").arg(script.as_str()).arg(dir.as_str()).args(flags.iter().cloned());
    if dry_run { command.arg("--dry-run") } else { command }
}

/// The policy on a volume: a throwaway container of `image` with the volume on /data
/// and the script mounted read-only. It runs as root, so it can clean what any UID wrote.
pub fn policy_on_volume(script: &Utf8Path, volume: &str, image: &str, flags: &[String], dry_run: bool) -> CommandLine {
    let target = "/usr/local/bin/open-webui-cache";
    let command = CommandLine::docker()
        .args(["run", "--rm", "--network", "none", "--user", "0:0", "--label"])
        .arg(format!("{LABEL_OWNER}=xtask"))
        .arg("--volume")
        .arg(format!("{volume}:/data"))
        .arg("--volume")
        .arg(format!("{script}:{target}:ro"))
        .args(["--entrypoint", "python3", image, target, "/data"])
        .args(flags.iter().cloned());
    if dry_run { command.arg("--dry-run") } else { command }
}

fn policy_commands(repo: &Repo, args: &Args) -> Result<Vec<(CommandLine, CommandLine)>> {
    let script = repo.root.join(POLICY_SCRIPT);
    let flags = policy_flags(args);
    let mut commands = Vec::new();
    if let Some(dir) = &args.cache_dir {
        if !dir.is_dir() {
            bail!("--cache-dir {dir}: no such directory (give an Open WebUI data directory)");
        }
        let dir = dir.canonicalize_utf8().with_context(|| format!("--cache-dir {dir}"))?;
        commands.push((policy_on_dir(&script, &dir, &flags, true), policy_on_dir(&script, &dir, &flags, false)));
    }
    if let Some(volume) = &args.cache_volume {
        let exists = CommandLine::docker().args(["volume", "inspect", volume]).succeeds(&repo.sh);
        if !exists {
            bail!("--cache-volume {volume}: no such Docker volume (see `docker volume ls`)");
        }
        let image = match &args.policy_image {
            Some(image) => image.clone(),
            None => base_image(repo)?,
        };
        commands.push((
            policy_on_volume(&script, volume, &image, &flags, true),
            policy_on_volume(&script, volume, &image, &flags, false),
        ));
    }
    Ok(commands)
}

/// The default of the Dockerfile's BASE_IMAGE: an image with Python that is already here.
fn base_image(repo: &Repo) -> Result<String> {
    let path = repo.root.join("dockerfiles/Dockerfile");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    dockerfile::instructions(&text)
        .into_iter()
        .filter(|i| i.keyword == "ARG")
        .find_map(|i| i.rest.trim().strip_prefix("BASE_IMAGE=").map(|v| v.trim_matches('"').to_string()))
        .context("the Dockerfile declares no BASE_IMAGE default; pass --policy-image")
}

fn print_plan(plan: &Plan) {
    if plan.items.is_empty() && plan.notes.is_empty() {
        return;
    }
    let mut totals: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for item in &plan.items {
        println!("{:<12} {:>10}  {}", item.kind, human_bytes(item.bytes), item.what);
        let total = totals.entry(item.kind).or_default();
        total.0 += 1;
        total.1 += item.bytes;
    }
    for note in &plan.notes {
        println!("note: {note}");
    }
    for (kind, (count, bytes)) in &totals {
        println!("-- {kind}: {count} to remove, about {}", human_bytes(*bytes));
    }
    let bytes: u64 = totals.values().map(|t| t.1).sum();
    println!("-- in all about {} (BuildKit picks the build cache records itself)", human_bytes(bytes));
}

fn confirm() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("not asking on a non-terminal: rerun with --yes to remove the above, or --dry-run");
    }
    print!("remove all of the above? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// `docker system df`: bytes per kind (Images, Containers, Local Volumes, Build Cache).
pub fn disk_usage(sh: &Shell) -> Result<BTreeMap<String, u64>> {
    let out = CommandLine::docker().args(["system", "df", "--format", "{{.Type}}|{{.Size}}"]).read(sh)?;
    parse_disk_usage(&out)
}

pub fn parse_disk_usage(text: &str) -> Result<BTreeMap<String, u64>> {
    text.lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(kind, size)| Ok((kind.to_string(), parse_size(size)?)))
        .collect()
}

/// Before minus after, per kind; a kind that grew (layers of a removed image that the
/// build cache still holds move there) shows as negative.
pub fn freed(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<(String, i128)> {
    before
        .iter()
        .map(|(kind, b)| (kind.clone(), *b as i128 - after.get(kind).copied().unwrap_or(0) as i128))
        .collect()
}

/// What the disk got back in all: the sum before minus the sum after, never below zero.
pub fn freed_in_all(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> u64 {
    let sum = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    sum(before).saturating_sub(sum(after))
}

fn print_freed(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) {
    for (kind, change) in freed(before, after) {
        let b = before[&kind];
        let a = after.get(&kind).copied().unwrap_or(0);
        let shown = if change < 0 {
            format!("-{}", human_bytes(change.unsigned_abs() as u64))
        } else {
            human_bytes(change as u64)
        };
        println!("freed {kind:<14} {shown:>10}  ({} -> {})", human_bytes(b), human_bytes(a));
    }
    let total = freed_in_all(before, after);
    println!("freed in all {} bytes ({}), measured with docker system df", total, human_bytes(total));
    if freed(before, after).iter().any(|(_, change)| *change < 0) {
        println!("note: layers of removed images that the build cache still uses stay on disk until that cache goes (--build-cache)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_docker_prints_them() {
        assert_eq!(parse_size("7.313GB").unwrap(), 7_313_000_000);
        assert_eq!(parse_size("109.9kB").unwrap(), 109_900);
        assert_eq!(parse_size("0B").unwrap(), 0);
        assert_eq!(parse_size("512MiB").unwrap(), 512 * 1024 * 1024);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations_and_ages() {
        assert_eq!(parse_duration("168h").unwrap(), 168 * 3600);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert!(parse_duration("7d").is_err());
        assert!(parse_duration("10").is_err());
        assert_eq!(parse_ago("40 seconds ago"), 40);
        assert_eq!(parse_ago("About an hour ago"), 3600);
        assert_eq!(parse_ago("Less than a second ago"), 0);
        assert_eq!(parse_ago("2 weeks ago"), 14 * 86400);
    }

    const DU: &str = "ID:\t\tp0pg\nCreated at:\t2026-12-03 22:32:33 +0000 UTC\nMutable:\ttrue\n\
Reclaimable:\ttrue\nShared:\t\tfalse\nSize:\t\t7.169GB\nDescription:\tcached mount /root/.cache/uv\n\
Usage count:\t2\nLast used:\t3 weeks ago\nType:\t\texec.cachemount\n\n\
ID:\t\tc2vu\nParent:\t\tz2ti\nReclaimable:\ttrue\nShared:\t\tfalse\nSize:\t\t100MB\n\
Description:\tmount / from exec one\nLast used:\t10 days ago\nType:\t\tregular\n\n\
ID:\t\td3xx\nReclaimable:\ttrue\nShared:\t\tfalse\nSize:\t\t50MB\n\
Description:\tmount / from exec two\nLast used:\t2 hours ago\nType:\t\tregular\n\n\
ID:\t\te4yy\nReclaimable:\ttrue\nShared:\t\tfalse\nSize:\t\t30MB\n\
Description:\tmount / from exec three\nLast used:\t5 minutes ago\nType:\t\tregular\n\n\
Shared:\t\t0B\nPrivate:\t7.349GB\nReclaimable:\t7.349GB\nTotal:\t\t7.349GB\n";

    #[test]
    fn records_parse_from_buildx_du() {
        let records = parse_records(DU);
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].kind, "exec.cachemount");
        assert_eq!(records[0].bytes, 7_169_000_000);
        assert_eq!(records[1].idle_seconds, 10 * 86400);
    }

    #[test]
    fn build_cache_by_age_then_size_keeps_the_cache_mounts() {
        let mut plan = Plan::default();
        let records = parse_records(DU);
        // 168h takes the 10-day record; then the cache holds 7.169GB + 80MB, above 7.2GB,
        // so the least recently used of the rest (2 hours) goes too, and 5 minutes stays.
        build_cache_plan(&mut plan, &records, &BUILD_CACHE_TYPES, "168h", 168 * 3600, "7.2GB", 7_200_000_000);
        let ids: Vec<&str> = plan.items.iter().map(|i| &i.what[..4]).collect();
        assert_eq!(ids, ["c2vu", "d3xx"]);
        assert_eq!(
            plan.commands.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            [
                "docker buildx prune --force --filter type=regular --filter until=168h",
                "docker buildx prune --force --filter type=regular --keep-storage 7.2GB",
                "docker buildx prune --force --filter type=source.local --filter until=168h",
                "docker buildx prune --force --filter type=source.local --keep-storage 7.2GB",
            ]
        );
    }

    #[test]
    fn cache_mounts_only_when_asked() {
        let mut plan = Plan::default();
        build_cache_plan(&mut plan, &parse_records(DU), &[CACHE_MOUNT_TYPE], "168h", 168 * 3600, "20GB", 20_000_000_000);
        assert_eq!(plan.items.len(), 1);
        assert_eq!(plan.items[0].kind, "cache mount");
        assert_eq!(plan.items[0].bytes, 7_169_000_000);
    }

    fn image(id: &str, target: &str, created: &str, tags: &[&str]) -> Image {
        let tags = tags.iter().map(|t| t.to_string()).collect();
        Image { id: id.into(), target: target.into(), created: created.into(), bytes: 10, tags, containers: 0 }
    }

    #[test]
    fn keeps_the_newest_images_per_target_of_this_repository_only() {
        let images = vec![
            image("sha256:a1", "default", "2026-12-01T10:00:00.5Z", &["owui:1"]),
            image("sha256:a2", "default", "2026-12-02T10:00:00.123456Z", &["owui:2", "owui:latest"]),
            image("sha256:a3", "default", "2026-12-02T10:00:00.9Z", &["owui:3"]),
            image("sha256:b1", "vastai", "2026-11-01T10:00:00Z", &["owui:vastai"]),
            image("sha256:c1", "default", "2020-01-01T00:00:00Z", &["other:old"]),
            image("sha256:d1", "default", "2020-01-01T00:00:00Z", &[]),
        ];
        let mut plan = Plan::default();
        images_plan(&mut plan, &images, "owui", 1);
        dangling_plan(&mut plan, &images);
        let commands: Vec<String> = plan.commands.iter().map(|c| c.to_string()).collect();
        assert_eq!(commands, ["docker image rm owui:2 owui:latest", "docker image rm owui:1", "docker image rm sha256:d1"]);
    }

    #[test]
    fn images_in_use_stay() {
        let mut used = image("sha256:a1", "default", "2026-12-01T10:00:00Z", &["owui:1"]);
        used.containers = 1;
        let images = vec![image("sha256:a2", "default", "2026-12-02T10:00:00Z", &["owui:2"]), used];
        let mut plan = Plan::default();
        images_plan(&mut plan, &images, "owui", 1);
        assert!(plan.commands.is_empty());
        assert_eq!(plan.notes, ["kept owui:1 (default): a container uses it"]);
    }

    #[test]
    fn listing_commands_filter_by_the_project_labels() {
        let labels = vec!["run=42".to_string()];
        assert_eq!(
            list_images_command(&labels).to_string(),
            "docker image ls --quiet --no-trunc --filter label=dev.open-webui-images.target --filter label=run=42"
        );
        assert_eq!(
            list_containers_command(&[]).to_string(),
            "docker container ls --all --quiet --no-trunc --filter label=dev.open-webui-images.owner \
             --filter status=created --filter status=exited --filter status=dead"
        );
    }

    #[test]
    fn the_policy_runs_the_same_script_on_dirs_and_volumes() {
        let script = Utf8Path::new("/repo/dockerfiles/rootfs/usr/local/bin/open-webui-cache");
        let flags = vec!["--remove-unused".to_string()];
        assert_eq!(
            policy_on_dir(script, Utf8Path::new("/srv/data"), &flags, true).to_string(),
            "python3 /repo/dockerfiles/rootfs/usr/local/bin/open-webui-cache /srv/data --remove-unused --dry-run"
        );
        assert_eq!(
            policy_on_volume(script, "owui-data", "python:3.11-slim-bookworm", &flags, false).to_string(),
            "docker run --rm --network none --user 0:0 --label dev.open-webui-images.owner=xtask \
             --volume owui-data:/data --volume /repo/dockerfiles/rootfs/usr/local/bin/open-webui-cache:\
             /usr/local/bin/open-webui-cache:ro --entrypoint python3 python:3.11-slim-bookworm \
             /usr/local/bin/open-webui-cache /data --remove-unused"
        );
    }

    #[test]
    fn freed_is_measured_per_kind() {
        let before = parse_disk_usage("Images|7.365GB\nBuild Cache|7.313GB\nContainers|0B").unwrap();
        let after = parse_disk_usage("Images|7.365GB\nBuild Cache|1.2GB\nContainers|0B").unwrap();
        let freed: BTreeMap<String, i128> = freed(&before, &after).into_iter().collect();
        assert_eq!(freed["Build Cache"], 6_113_000_000);
        assert_eq!(freed["Images"], 0);
        assert_eq!(freed_in_all(&before, &after), 6_113_000_000);
    }

    #[test]
    fn layers_that_move_to_the_build_cache_are_not_freed() {
        // Removing an image whose layers the build cache still holds frees nothing.
        let before = parse_disk_usage("Images|21.68GB\nBuild Cache|15.73GB").unwrap();
        let after = parse_disk_usage("Images|14.48GB\nBuild Cache|22.93GB").unwrap();
        let freed: BTreeMap<String, i128> = freed(&before, &after).into_iter().collect();
        assert_eq!(freed["Images"], 7_200_000_000);
        assert_eq!(freed["Build Cache"], -7_200_000_000);
        assert_eq!(freed_in_all(&before, &after), 0);
    }
}
