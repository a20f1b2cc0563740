//! `cargo xtask build`: turns targets of the targets file into one `docker buildx bake`
//! run, so stages that several targets share are built once.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Config, VARIANT_ARG, VERSION_ARG};
use crate::docker::{self, human_bytes, CommandLine};
use crate::dockerfile::Dockerfile;
use crate::repo::Repo;

/// Label that marks an image as this project's and names its target.
pub const LABEL_TARGET: &str = "dev.open-webui-images.target";
/// Label that records the torch index an image was built from (empty: the main index).
pub const LABEL_TORCH_INDEX: &str = "dev.open-webui-images.torch-index";
/// Label that records the Ollama bundled into the image (its version or source; empty:
/// none), on targets whose build arguments choose one.
pub const LABEL_OLLAMA: &str = "dev.open-webui-images.ollama";
/// The build argument that names torch's index for a build without a lock.
const TORCH_INDEX_ARG: &str = "TORCH_INDEX";
/// The id of the build secret that carries an extra CA bundle; the Dockerfile mounts it.
pub const CA_SECRET_ID: &str = "ca_bundle";

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Targets from dockerfiles/targets.toml [default: default]
    pub targets: Vec<String>,
    /// Print the bake file and the docker command, and run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Override a build argument the Dockerfile declares (repeatable)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Extra tag; with several targets it must contain {target} (repeatable)
    #[arg(long = "tag", value_name = "REF")]
    pub tags: Vec<String>,
    /// Repository for the tags instead of the targets file's, e.g. ghcr.io/owner/name
    #[arg(long)]
    pub repository: Option<String>,
    /// Push the images to their registry instead of loading them into the local engine
    #[arg(long, conflicts_with = "load")]
    pub push: bool,
    /// Load the images into the local engine (the default)
    #[arg(long)]
    pub load: bool,
    /// Target platforms, e.g. linux/amd64 (repeatable or comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Cache source passed to buildx; {target} is replaced by the target name (repeatable)
    #[arg(long, value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Cache destination passed to buildx; {target} as for --cache-from (repeatable)
    #[arg(long, value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Progress output: auto, plain, tty, quiet or rawjson
    #[arg(long, value_name = "MODE")]
    pub progress: Option<String>,
    /// Build every step again, ignoring the build cache
    #[arg(long)]
    pub no_cache: bool,
    /// Pull the base image even when a local copy exists
    #[arg(long)]
    pub pull: bool,
    /// Extra CA bundle trusted by the download steps only, given as a build secret;
    /// defaults to the host's SSL_CERT_FILE when that is set
    #[arg(long, env = "SSL_CERT_FILE", value_name = "PATH")]
    pub ca_bundle: Option<Utf8PathBuf>,
    /// Network for RUN steps: default, host or none
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
}

/// Facts about the checkout that become OCI labels.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub revision: String,
    pub created: Option<String>,
}

impl Source {
    fn read(repo: &Repo) -> Source {
        let git = |args: &[&str]| CommandLine::new("git").args(args.iter().copied()).read(&repo.sh);
        Source {
            revision: git(&["rev-parse", "HEAD"]).unwrap_or_else(|_| "unknown".to_string()),
            created: git(&["log", "-1", "--format=%cI"]).ok(),
        }
    }
}

/// What one build target resolves to.
#[derive(Debug, Serialize)]
pub struct Resolved {
    pub name: String,
    pub stage: String,
    pub args: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// Everything `build` would do, computed without touching Docker.
#[derive(Debug)]
pub struct Plan {
    pub targets: Vec<Resolved>,
    pub bake_file: Value,
    pub command: CommandLine,
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    let dockerfile_path = beside(repo.targets_dir(), &config.project.dockerfile);
    let dockerfile_text = std::fs::read_to_string(&dockerfile_path)
        .with_context(|| format!("cannot read {dockerfile_path}"))?;
    let dockerfile = Dockerfile::parse(&dockerfile_text);
    let out_dir = &repo.out_dir;
    let plan = plan(&config, &dockerfile, &args, &Source::read(repo), repo.targets_dir(), out_dir)?;
    let bake_text = serde_json::to_string_pretty(&plan.bake_file)?;

    // The bake file is written in a dry run too, so that the printed command runs as is.
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {out_dir}"))?;
    let bake_path = out_dir.join("bake.json");
    std::fs::write(&bake_path, &bake_text).with_context(|| format!("cannot write {bake_path}"))?;
    if args.dry_run {
        println!("# {bake_path}");
        println!("{bake_text}");
        println!("{}", plan.command);
        return Ok(());
    }
    docker::ensure_engine(&repo.sh)?;

    let names: Vec<&str> = plan.targets.iter().map(|t| t.name.as_str()).collect();
    eprintln!("-- building {} (Open WebUI {})", names.join(", "), plan.targets[0].args[VERSION_ARG]);
    let started = Instant::now();
    plan.command.run(&repo.sh).with_context(|| {
        format!(
            "the build of {} failed; the step that failed is shown above \
             (rerun with --progress plain for every step's output)",
            names.join(", ")
        )
    })?;
    let seconds = started.elapsed().as_secs_f64();
    summarize(repo, &plan, seconds, args.push)
}

/// Resolves the targets into the bake file and the command that builds them. The
/// targets file's paths are relative to `base`, the folder it is in.
pub fn plan(
    config: &Config,
    dockerfile: &Dockerfile,
    args: &Args,
    source: &Source,
    base: &Utf8Path,
    out_dir: &Utf8Path,
) -> Result<Plan> {
    let names: Vec<String> = if args.targets.is_empty() {
        vec!["default".to_string()]
    } else {
        let mut names = args.targets.clone();
        names.dedup();
        names
    };
    let overrides = parse_overrides(&args.build_args, dockerfile)?;
    for tag in &args.tags {
        if names.len() > 1 && !tag.contains("{target}") {
            bail!("--tag {tag}: with several targets each extra tag must contain {{target}}");
        }
    }
    if let Some(mode) = &args.progress {
        if !["auto", "plain", "tty", "quiet", "rawjson"].contains(&mode.as_str()) {
            bail!("--progress {mode}: use auto, plain, tty, quiet or rawjson");
        }
    }
    if let Some(mode) = &args.network {
        if !["default", "host", "none"].contains(&mode.as_str()) {
            bail!("--network {mode}: use default, host or none");
        }
    }
    let ca_bundle = match &args.ca_bundle {
        Some(path) if path.as_str().is_empty() => None,
        Some(path) if !path.is_file() => {
            bail!("--ca-bundle {path}: not a file (give a PEM bundle; without --ca-bundle the default is the host's SSL_CERT_FILE)")
        }
        Some(path) => Some(path.canonicalize_utf8().unwrap_or_else(|_| path.clone())),
        None => None,
    };

    let repository = args.repository.as_deref().unwrap_or(&config.project.repository);
    check_repository(repository)?;
    if args.push && !repository.split('/').next().is_some_and(|host| host.contains(['.', ':'])) {
        bail!(
            "--push to {repository:?}: name the registry, e.g. --repository ghcr.io/OWNER/NAME \
             (a name without a registry host would go to Docker Hub's library)"
        );
    }
    if !args.push && args.platform.len() > 1 {
        bail!(
            "--platform {}: the local engine loads one platform at a time; give one, or --push",
            args.platform.join(",")
        );
    }
    let mut targets = Vec::new();
    let mut bake_targets = serde_json::Map::new();
    for name in &names {
        let target = config.target(name)?;
        for key in config.args.keys().chain(target.args.keys()) {
            if !dockerfile.accepts_arg(key) {
                bail!("targets file: build argument {key} is not declared by {}", config.project.dockerfile);
            }
        }
        let mut build_args = config.args.clone();
        build_args.extend(target.args.clone());
        build_args.extend(overrides.clone());
        // A build whose variant has no lock yet takes torch from the lock's index.
        if dockerfile.args.contains(TORCH_INDEX_ARG) && !overrides.contains_key(TORCH_INDEX_ARG) {
            build_args.insert(TORCH_INDEX_ARG.to_string(), torch_index(config, &build_args));
        }
        let version = build_args[VERSION_ARG].clone();
        if !config.locks.is_empty() {
            if let Some(variant) = build_args.get(VARIANT_ARG) {
                let Some(lock) = config.locks.get(variant) else {
                    let known: Vec<&str> = config.locks.keys().map(String::as_str).collect();
                    bail!(
                        "{VARIANT_ARG}={variant:?} (target {name}): no [locks.{variant}] in the targets \
                         file (known: {})",
                        known.join(", ")
                    );
                };
                let locks_dir = beside(base, &config.project.context).join("locks");
                for arch in &lock.arches {
                    let file = locks_dir.join(format!("{variant}-{arch}.txt"));
                    if !file.is_file() && platform_wanted(&args.platform, arch) {
                        eprintln!(
                            "warning: target {name}: no lock {file}: its packages are resolved at \
                             build time (run `cargo xtask lock {variant}` to pin them)"
                        );
                    }
                }
            }
        }

        let mut tags = target.tags(repository, &version);
        tags.extend(args.tags.iter().map(|tag| tag.replace("{target}", name)));
        for tag in &tags {
            check_tag(tag)?;
        }
        let labels = labels(config, name, &version, &build_args, source);

        let mut spec = json!({
            "context": beside(base, &config.project.context).as_str(),
            "dockerfile": beside(base, &config.project.dockerfile).as_str(),
            "target": target.stage,
            "args": build_args,
            "tags": tags,
            "labels": labels,
            "output": [if args.push { "type=registry" } else { "type=docker" }],
        });
        let fields = spec.as_object_mut().expect("a JSON object");
        if let Some(path) = &ca_bundle {
            fields.insert("secret".into(), json!([format!("id={CA_SECRET_ID},src={path}")]));
        }
        if let Some(mode) = &args.network {
            fields.insert("network".into(), json!(mode));
        }
        if !args.platform.is_empty() {
            fields.insert("platforms".into(), json!(args.platform));
        }
        let per_target = |specs: &[String]| -> Vec<String> {
            specs.iter().map(|spec| spec.replace("{target}", name)).collect()
        };
        if !args.cache_from.is_empty() {
            fields.insert("cache-from".into(), json!(per_target(&args.cache_from)));
        }
        if !args.cache_to.is_empty() {
            fields.insert("cache-to".into(), json!(per_target(&args.cache_to)));
        }
        if args.no_cache {
            fields.insert("no-cache".into(), json!(true));
        }
        if args.pull {
            fields.insert("pull".into(), json!(true));
        }
        bake_targets.insert(name.clone(), spec);
        targets.push(Resolved {
            name: name.clone(),
            stage: target.stage.clone(),
            args: build_args,
            tags,
            labels,
        });
    }

    let mut command = CommandLine::docker()
        .args(["buildx", "bake", "--file"])
        .arg(out_dir.join("bake.json").as_str())
        .arg("--metadata-file")
        .arg(out_dir.join("bake-metadata.json").as_str());
    if let Some(mode) = &args.progress {
        command = command.arg("--progress").arg(mode.as_str());
    }
    command = command.args(names.iter().map(String::as_str));
    Ok(Plan { targets, bake_file: json!({ "target": bake_targets }), command })
}

/// Whether the build makes an image for `arch` (amd64, arm64): the platforms asked for,
/// or the host's when none is.
fn platform_wanted(platforms: &[String], arch: &str) -> bool {
    if platforms.is_empty() {
        let host = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
        return arch == host;
    }
    platforms.iter().any(|p| p.split('/').nth(1) == Some(arch))
}

/// A repository as Docker takes it: lowercase path parts, an optional registry host first.
fn check_repository(repository: &str) -> Result<()> {
    let (host, path) = match repository.split_once('/') {
        Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => (Some(host), path),
        _ => (None, repository),
    };
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
    };
    let host_ok = host.is_none_or(|h| h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c)));
    if !host_ok || !path.split('/').all(part_ok) {
        bail!(
            "repository {repository:?} is not a valid image name: use lowercase letters, digits, \
             '.', '_', '-' and '/', e.g. ghcr.io/owner/open-webui-images"
        );
    }
    Ok(())
}

/// A full image reference `REPOSITORY:TAG`, each part valid for Docker.
fn check_tag(reference: &str) -> Result<()> {
    let (repository, tag) = match reference.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, tag),
        _ => bail!("tag {reference:?}: write it as REPOSITORY:TAG"),
    };
    check_repository(repository).with_context(|| format!("tag {reference:?}"))?;
    let tag_ok = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if tag.is_empty() || tag.len() > 128 || !tag.chars().all(tag_ok) || tag.starts_with(['.', '-']) {
        bail!(
            "tag {reference:?}: the part after ':' must be 1 to 128 letters, digits, '_', '.' or \
             '-' (check --tag and the OPEN_WEBUI_VERSION build argument)"
        );
    }
    Ok(())
}

/// `base/relative`, without a trailing `/.` for the folder itself.
fn beside(base: &Utf8Path, relative: &str) -> Utf8PathBuf {
    match relative.trim_start_matches("./") {
        "" | "." => base.to_path_buf(),
        rest => base.join(rest),
    }
}

fn parse_overrides(pairs: &[String], dockerfile: &Dockerfile) -> Result<BTreeMap<String, String>> {
    let mut overrides = BTreeMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=').filter(|(key, _)| !key.is_empty()) else {
            bail!("--build-arg {pair}: write it as KEY=VALUE");
        };
        if !dockerfile.accepts_arg(key) {
            let known: Vec<&str> = dockerfile.args.iter().map(String::as_str).collect();
            bail!("--build-arg {key}: the Dockerfile declares no such ARG (known: {})", known.join(", "));
        }
        overrides.insert(key.to_string(), value.to_string());
    }
    Ok(overrides)
}

fn labels(
    config: &Config,
    name: &str,
    version: &str,
    build_args: &BTreeMap<String, String>,
    source: &Source,
) -> BTreeMap<String, String> {
    let target = &config.targets[name];
    let mut labels = BTreeMap::from([
        ("org.opencontainers.image.title".to_string(), format!("Open WebUI ({name})")),
        ("org.opencontainers.image.description".to_string(), target.description.clone()),
        ("org.opencontainers.image.version".to_string(), version.to_string()),
        ("org.opencontainers.image.revision".to_string(), source.revision.clone()),
        ("org.opencontainers.image.source".to_string(), config.project.source.clone()),
        (LABEL_TARGET.to_string(), name.to_string()),
        (LABEL_TORCH_INDEX.to_string(), build_args.get(TORCH_INDEX_ARG).cloned().unwrap_or_default()),
    ]);
    if build_args.contains_key("OLLAMA_VERSION") || build_args.contains_key("OLLAMA_SOURCE") {
        let arg = |key: &str| build_args.get(key).filter(|v| !v.is_empty()).cloned();
        let bundled = arg("OLLAMA_VERSION").or_else(|| arg("OLLAMA_SOURCE")).unwrap_or_default();
        labels.insert(LABEL_OLLAMA.to_string(), bundled);
    }
    if let Some(created) = &source.created {
        labels.insert("org.opencontainers.image.created".to_string(), created.clone());
    }
    labels
}

/// The index the target's lock took torch from (empty: the main index).
fn torch_index(config: &Config, build_args: &BTreeMap<String, String>) -> String {
    let lock = build_args.get(VARIANT_ARG).and_then(|variant| config.locks.get(variant));
    lock.map(|lock| lock.torch_index.clone()).unwrap_or_default()
}

#[derive(Serialize)]
struct Built {
    target: String,
    tags: Vec<String>,
    image_id: Option<String>,
    size_bytes: Option<u64>,
    seconds: f64,
    pushed: bool,
}

fn summarize(repo: &Repo, plan: &Plan, seconds: f64, pushed: bool) -> Result<()> {
    let built: Vec<Built> = plan
        .targets
        .iter()
        .map(|target| {
            let local = if pushed { None } else { docker::image_id_and_size(&repo.sh, &target.tags[0]) };
            Built {
                target: target.name.clone(),
                tags: target.tags.clone(),
                image_id: local.as_ref().map(|(id, _)| id.clone()),
                size_bytes: local.map(|(_, size)| size),
                seconds,
                pushed,
            }
        })
        .collect();

    let together = if built.len() > 1 { " (built together)" } else { "" };
    println!("\n{:<10} {:<14} {:>10} {:>8}  tags", "target", "image id", "size", "time");
    for b in &built {
        let id = b.image_id.as_deref().map_or("-", short_id);
        let size = b.size_bytes.map_or("-".to_string(), human_bytes);
        println!("{:<10} {:<14} {:>10} {:>7.0}s  {}{together}", b.target, id, size, b.seconds, b.tags.join(" "));
    }
    let path = repo.out_dir.join("build-summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&built)?)?;
    eprintln!("-- summary written to {path}");
    Ok(())
}

/// `sha256:b6e17f5cd113…` as Docker shows it: twelve hex digits.
fn short_id(id: &str) -> &str {
    let hex = id.trim_start_matches("sha256:");
    hex.get(..12).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let path = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../dockerfiles/targets.toml");
        Config::load(&path).unwrap()
    }

    fn dockerfile() -> Dockerfile {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dockerfiles/Dockerfile");
        Dockerfile::parse(&std::fs::read_to_string(path).unwrap())
    }

    fn plan_for(args: Args) -> Result<Plan> {
        let source = Source { revision: "abc123".into(), created: Some("2026-12-01T10:00:00Z".into()) };
        let base = Utf8Path::new("/repo/dockerfiles");
        plan(&config(), &dockerfile(), &args, &source, base, Utf8Path::new("/repo/target/xtask"))
    }

    fn targets(names: &[&str]) -> Args {
        Args { targets: names.iter().map(|s| s.to_string()).collect(), ..Args::default() }
    }

    #[test]
    fn no_target_means_default() {
        let plan = plan_for(Args::default()).unwrap();
        assert_eq!(
            plan.command.to_string(),
            "docker buildx bake --file /repo/target/xtask/bake.json \
             --metadata-file /repo/target/xtask/bake-metadata.json default"
        );
        let spec = &plan.bake_file["target"]["default"];
        assert_eq!(spec["target"], "default");
        assert_eq!(spec["context"], "/repo/dockerfiles");
        assert_eq!(spec["dockerfile"], "/repo/dockerfiles/Dockerfile");
        assert_eq!(spec["output"], json!(["type=docker"]));
        assert!(spec.get("secret").is_none());
    }

    #[test]
    fn several_targets_are_one_bake_run() {
        let plan = plan_for(targets(&["default", "vastai", "gpu"])).unwrap();
        assert!(plan.command.to_string().ends_with("bake-metadata.json default vastai gpu"));
        let version = config().version().unwrap().to_string();
        let spec = &plan.bake_file["target"]["vastai"];
        assert_eq!(spec["target"], "vastai");
        assert_eq!(
            spec["tags"],
            json!([format!("open-webui-images:{version}-vastai"), "open-webui-images:vastai"])
        );
        assert_eq!(spec["args"]["OPEN_WEBUI_VERSION"], version.as_str());
        assert_eq!(spec["labels"]["org.opencontainers.image.revision"], "abc123");
        assert_eq!(spec["labels"]["org.opencontainers.image.version"], version.as_str());
        assert_eq!(spec["labels"]["org.opencontainers.image.created"], "2026-12-01T10:00:00Z");
        assert_eq!(spec["labels"][LABEL_TARGET], "vastai");
        // vastai's arguments choose no Ollama; default's do not speak of one at all.
        assert_eq!(spec["labels"][LABEL_OLLAMA], "");
        assert!(plan.bake_file["target"]["default"]["labels"].get(LABEL_OLLAMA).is_none());
        assert_eq!(plan.bake_file["target"]["default"]["tags"][1], "open-webui-images:latest");
    }

    #[test]
    fn build_arg_overrides_win_and_unknown_ones_fail() {
        let mut args = targets(&["default"]);
        assert!(plan_for(targets(&["default"])).unwrap().bake_file["target"]["default"]["labels"]
            [LABEL_TORCH_INDEX].as_str().unwrap().starts_with("https://"));
        args.build_args = vec!["TORCH_VARIANT=cuda".into(), "OPEN_WEBUI_VERSION=0.1.0".into()];
        let plan = plan_for(args).unwrap();
        let spec = &plan.bake_file["target"]["default"];
        assert_eq!(spec["args"]["TORCH_VARIANT"], "cuda");
        assert_eq!(spec["tags"][0], "open-webui-images:0.1.0");
        assert_eq!(spec["labels"][LABEL_TORCH_INDEX], "");

        let mut args = targets(&["default"]);
        args.build_args = vec!["TORCH_VARIAN=x".into()];
        let error = plan_for(args).unwrap_err().to_string();
        assert!(error.starts_with("--build-arg TORCH_VARIAN: the Dockerfile declares no such ARG"), "{error}");

        let mut args = targets(&["default"]);
        args.build_args = vec!["TORCH_VARIANT".into()];
        assert_eq!(plan_for(args).unwrap_err().to_string(), "--build-arg TORCH_VARIANT: write it as KEY=VALUE");
    }

    #[test]
    fn references_and_outputs_that_cannot_work_are_refused() {
        let error = |args: Args| plan_for(args).unwrap_err().to_string();
        let mut args = targets(&["gpu"]);
        args.build_args = vec!["TORCH_VARIANT=cu128".into()];
        assert!(error(args).starts_with("TORCH_VARIANT=\"cu128\" (target gpu): no [locks.cu128]"));

        let mut args = targets(&["gpu"]);
        args.build_args = vec!["OPEN_WEBUI_VERSION=".into()];
        assert!(error(args).starts_with("tag \"open-webui-images:-cuda\""));

        let mut args = targets(&["gpu"]);
        args.tags = vec!["My Bad Tag".into()];
        assert!(error(args).starts_with("tag \"My Bad Tag\""));

        let mut args = targets(&["gpu"]);
        args.repository = Some("BAD REPO".into());
        assert!(error(args).starts_with("repository \"BAD REPO\" is not a valid image name"));

        let mut args = targets(&["gpu"]);
        args.push = true;
        assert!(error(args).starts_with("--push to \"open-webui-images\": name the registry"));

        let mut args = targets(&["gpu"]);
        args.platform = vec!["linux/amd64".into(), "linux/arm64".into()];
        assert!(error(args).starts_with("--platform linux/amd64,linux/arm64: the local engine"));

        let mut args = targets(&["gpu"]);
        args.repository = Some("localhost:5000/team/owui".into());
        args.tags = vec!["localhost:5000/team/owui:extra".into()];
        assert!(plan_for(args).is_ok());
    }

    #[test]
    fn unknown_target_fails_with_the_known_ones() {
        let error = plan_for(targets(&["nope"])).unwrap_err().to_string();
        assert_eq!(error, r#"unknown target "nope" (known: default, gpu, vastai)"#);
    }

    #[test]
    fn flags_reach_the_bake_file() {
        let ca = std::env::temp_dir().join("xtask-build-test-ca.pem");
        std::fs::write(&ca, "not a real certificate").unwrap();
        let args = Args {
            targets: vec!["gpu".into(), "vastai".into()],
            tags: vec!["registry.example/owui:{target}-test".into()],
            repository: Some("ghcr.io/me/owui".into()),
            push: true,
            platform: vec!["linux/amd64".into()],
            cache_from: vec!["type=gha,scope={target}".into()],
            cache_to: vec!["type=gha,mode=max,scope={target}".into()],
            progress: Some("plain".into()),
            no_cache: true,
            pull: true,
            ca_bundle: Some(Utf8PathBuf::from_path_buf(ca.clone()).unwrap()),
            network: Some("host".into()),
            ..Args::default()
        };
        let plan = plan_for(args).unwrap();
        assert!(plan.command.to_string().ends_with("--progress plain gpu vastai"));
        let spec = &plan.bake_file["target"]["vastai"];
        assert_eq!(spec["output"], json!(["type=registry"]));
        assert_eq!(spec["tags"][2], "registry.example/owui:vastai-test");
        assert!(spec["tags"][0].as_str().unwrap().starts_with("ghcr.io/me/owui:"));
        assert_eq!(spec["platforms"], json!(["linux/amd64"]));
        assert_eq!(spec["cache-from"], json!(["type=gha,scope=vastai"]));
        assert_eq!(spec["cache-to"], json!(["type=gha,mode=max,scope=vastai"]));
        assert_eq!(spec["no-cache"], json!(true));
        assert_eq!(spec["pull"], json!(true));
        assert_eq!(spec["network"], "host");
        let secret = spec["secret"][0].as_str().unwrap();
        assert!(secret.starts_with("id=ca_bundle,src=/"), "{secret}");
        // Only the path travels; the bundle's content never reaches the bake file.
        assert!(!plan.bake_file.to_string().contains("not a real certificate"));
    }

    #[test]
    fn bad_flag_values_name_the_flag() {
        let mut args = targets(&["default", "gpu"]);
        args.tags = vec!["mine:1".into()];
        assert!(plan_for(args).unwrap_err().to_string().starts_with("--tag mine:1: with several targets"));

        let mut args = targets(&["default"]);
        args.progress = Some("fancy".into());
        assert!(plan_for(args).unwrap_err().to_string().starts_with("--progress fancy:"));

        let mut args = targets(&["default"]);
        args.ca_bundle = Some("/nonexistent/ca.pem".into());
        assert!(plan_for(args).unwrap_err().to_string().starts_with("--ca-bundle /nonexistent/ca.pem: not a file"));
    }
}
