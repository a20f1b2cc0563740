//! The targets file: every image this repository builds, with what later commands need
//! to know about it. Nothing else in the repository repeats these facts.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use camino::Utf8Path;
use serde::Deserialize;

/// The build argument that pins the Open WebUI release; image tags carry its value.
pub const VERSION_ARG: &str = "OPEN_WEBUI_VERSION";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub project: Project,
    /// Build arguments that every target gets.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    pub targets: BTreeMap<String, Target>,
    /// Defaults of `cargo xtask prune`.
    #[serde(default)]
    pub prune: Prune,

    // -- Python dependency locks (`cargo xtask lock`) --
    /// The locks, one per value of the TORCH_VARIANT build argument.
    #[serde(default)]
    pub locks: BTreeMap<String, Lock>,
}

/// `[prune]`: what `cargo xtask prune` keeps unless its flags say otherwise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prune {
    /// Build cache records unused for longer than this go, e.g. `168h` (buildx syntax).
    pub build_cache_older_than: String,
    /// Then the least recently used records go until the build cache is this small.
    pub build_cache_keep_storage: String,
    /// How many of the newest images of each target stay.
    pub keep_images: usize,
}

impl Default for Prune {
    fn default() -> Prune {
        Prune {
            build_cache_older_than: "168h".to_string(),
            build_cache_keep_storage: "20GB".to_string(),
            keep_images: 2,
        }
    }
}

/// The build argument that chooses a lock (and so the torch build) for a target.
pub const VARIANT_ARG: &str = "TORCH_VARIANT";

/// One Python dependency lock: `dockerfiles/locks/NAME-ARCH.txt` for each arch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The index torch comes from; empty for the main index.
    #[serde(default)]
    pub torch_index: String,
    /// Docker architectures (TARGETARCH) to lock for, e.g. amd64, arm64.
    pub arches: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Repository part of every tag, e.g. `open-webui-images` or `ghcr.io/owner/name`.
    pub repository: String,
    /// URL recorded in the `org.opencontainers.image.source` label.
    pub source: String,
    /// The Dockerfile, relative to the targets file.
    pub dockerfile: String,
    /// The build context, relative to the targets file.
    pub context: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// One line for people: what the image is for.
    pub description: String,
    /// The Dockerfile stage that produces the image.
    pub stage: String,
    /// Appended to the version tag (`0.12.4-cuda`) and used alone as the rolling tag;
    /// empty for the main image, whose rolling tag is `latest`.
    #[serde(default)]
    pub tag_suffix: String,
    /// The port Open WebUI listens on inside the container.
    pub port: u16,
    /// The user the image runs as, as `docker inspect` reports it (empty: root).
    #[serde(default)]
    pub user: String,
    /// Where Open WebUI keeps its database, uploads and caches.
    pub data_dir: String,
    /// Build arguments of this target, on top of the shared ones.
    #[serde(default)]
    pub args: BTreeMap<String, String>,

    /// Whether a hosted runner must free disk before building this target: the runners
    /// guarantee about 14 GB, and an image with CUDA torch needs more.
    #[serde(default)]
    pub free_runner_disk: bool,
    // Budgets that `cargo xtask size` holds the image to, written like "9 GB" or "12 GiB".
    /// The most the image may weigh, uncompressed (as `docker image inspect` counts).
    #[serde(default, deserialize_with = "size_budget")]
    pub size_budget: Option<u64>,
    /// The most waste it may carry: bytes of lower layers that a later layer deletes or
    /// overwrites, which ship although no container can see them.
    #[serde(default, deserialize_with = "waste_budget")]
    pub waste_budget: Option<u64>,
    /// What `cargo xtask test-image` expects of this target's image.
    #[serde(default)]
    pub test: TestSettings,
}

/// The `[targets.NAME.test]` table: expectations and set-up of `cargo xtask test-image`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSettings {
    /// The entrypoint the image must declare; empty: any non-empty entrypoint.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// The torch build the image must carry; unset: not checked.
    pub torch: Option<TorchBuild>,
    /// A folder of the image that must hold a baked model; unset: the target bakes none.
    pub baked_model: Option<String>,
    /// Where the test mounts its fresh data volume [default: data_dir]; it must be
    /// data_dir or a folder above it, or nothing could persist.
    pub volume: Option<String>,
    /// Mount that volume empty, as a host's disk is, instead of seeded with the image's
    /// folder the way Docker seeds a new named volume.
    #[serde(default)]
    pub empty_volume: bool,
    /// Extra environment of the test containers.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The container gets no GPU: torch must find none and the server run on CPU.
    #[serde(default)]
    pub cpu_fallback: bool,
    /// Seconds until `/health` and Docker's health status must be good.
    pub health_timeout: Option<u64>,
    /// Text the first container's log must contain once it is healthy, e.g. the public
    /// URL a start script computes from the environment above.
    #[serde(default)]
    pub log_contains: Vec<String>,
}

/// Which torch an image carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TorchBuild {
    /// Built against CUDA (its NVIDIA libraries inside the image).
    Cuda,
    /// CPU only; checked only when the image's torch-index label names a CPU index,
    /// since a build may override that index (CI does, where the CPU index is unreachable).
    Cpu,
}

fn size_budget<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    budget("size_budget", d)
}

fn waste_budget<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    budget("waste_budget", d)
}

fn budget<'de, D: serde::Deserializer<'de>>(key: &str, d: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(d)?;
    crate::bytes::parse(&text).map(Some).map_err(|e| serde::de::Error::custom(format!("{key}: {e}")))
}

impl Config {
    pub fn load(path: &Utf8Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        Config::parse(&text, path)
    }

    /// Parses and checks the file; errors name the file and, where known, the line.
    pub fn parse(text: &str, path: &Utf8Path) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|error| {
            let line = error.span().map(|span| text[..span.start].matches('\n').count() + 1);
            let message = error.message().trim().replace('\n', " ");
            match line {
                Some(line) => anyhow::anyhow!("{path}:{line}: {message}"),
                None => anyhow::anyhow!("{path}: {message}"),
            }
        })?;
        config.check().with_context(|| path.to_string())?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if self.targets.is_empty() {
            bail!("no [targets.NAME] table: name at least one target");
        }
        for (name, target) in &self.targets {
            let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
            if name.is_empty() || !name.chars().all(valid) {
                bail!("target name {name:?} must be lowercase letters, digits and '-'");
            }
            if target.port == 0 {
                bail!("target {name}: port must be between 1 and 65535");
            }
            let test = &target.test;
            for path in test.volume.iter().chain(&test.baked_model) {
                if !path.starts_with('/') {
                    bail!("target {name}: test path {path:?} must be absolute");
                }
            }
            if let Some(volume) = &test.volume {
                let data = target.data_dir.trim_end_matches('/');
                let volume = volume.trim_end_matches('/');
                if data != volume && !data.starts_with(&format!("{volume}/")) {
                    bail!("target {name}: test volume {volume:?} must hold data_dir {data:?}");
                }
            }
            if !target.tag_suffix.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                bail!("target {name}: tag_suffix {:?} is not valid in a tag", target.tag_suffix);
            }
        }
        for (name, lock) in &self.locks {
            for arch in &lock.arches {
                if crate::lock::python_platform(arch).is_none() {
                    bail!("lock {name}: arch {arch:?} is not one of amd64, arm64");
                }
            }
        }
        if !self.locks.is_empty() {
            for (name, target) in &self.targets {
                let variant = target.args.get(VARIANT_ARG).or(self.args.get(VARIANT_ARG));
                if let Some(variant) = variant.filter(|v| !self.locks.contains_key(*v)) {
                    let known: Vec<&str> = self.locks.keys().map(String::as_str).collect();
                    bail!("target {name}: {VARIANT_ARG} {variant:?} names no [locks.NAME] (known: {})", known.join(", "));
                }
            }
        }
        if self.version().is_none() {
            bail!("[args] must set {VERSION_ARG}: image tags carry the pinned version");
        }
        let mut suffixes = std::collections::BTreeSet::new();
        for (name, target) in &self.targets {
            if !suffixes.insert(&target.tag_suffix) {
                bail!("target {name}: tag_suffix {:?} is used by another target too; their tags would collide", target.tag_suffix);
            }
        }
        crate::prune::parse_duration(&self.prune.build_cache_older_than)
            .context("[prune] build_cache_older_than")?;
        crate::bytes::parse(&self.prune.build_cache_keep_storage).context("[prune] build_cache_keep_storage")?;
        Ok(())
    }

    /// The target names, or an error naming the known ones.
    pub fn target(&self, name: &str) -> Result<&Target> {
        self.targets.get(name).with_context(|| {
            let known: Vec<&str> = self.targets.keys().map(String::as_str).collect();
            format!("unknown target {name:?} (known: {})", known.join(", "))
        })
    }

    /// The pinned Open WebUI version shared by all targets.
    pub fn version(&self) -> Option<&str> {
        self.args.get(VERSION_ARG).map(String::as_str)
    }
}

impl Target {
    /// `repo:VERSION[-suffix]` and the rolling `repo:suffix` (or `repo:latest`).
    pub fn tags(&self, repository: &str, version: &str) -> Vec<String> {
        if self.tag_suffix.is_empty() {
            vec![format!("{repository}:{version}"), format!("{repository}:latest")]
        } else {
            let suffix = &self.tag_suffix;
            vec![format!("{repository}:{version}-{suffix}"), format!("{repository}:{suffix}")]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[project]
repository = "example"
source = "https://example.invalid/repo"
dockerfile = "dockerfiles/Dockerfile"
context = "dockerfiles"

[args]
OPEN_WEBUI_VERSION = "1.2.3"

[targets.default]
description = "cpu"
stage = "default"
port = 8080
data_dir = "/data"

[targets.gpu]
description = "cuda"
stage = "gpu"
tag_suffix = "cuda"
port = 8080
user = "1000:0"
data_dir = "/data"
args = { TORCH_VARIANT = "cuda" }

[locks.cuda]
arches = ["amd64"]
"#;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Utf8Path::new("targets.toml"))
    }

    #[test]
    fn parses_the_good_file() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.version(), Some("1.2.3"));
        assert_eq!(config.targets.keys().collect::<Vec<_>>(), ["default", "gpu"]);
        assert_eq!(config.targets["gpu"].args["TORCH_VARIANT"], "cuda");
        assert_eq!(config.locks["cuda"].torch_index, "");
        assert_eq!(config.targets["default"].user, "");
    }

    #[test]
    fn tags_carry_version_and_suffix() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.targets["default"].tags("r", "1.2.3"), ["r:1.2.3", "r:latest"]);
        assert_eq!(config.targets["gpu"].tags("r", "1.2.3"), ["r:1.2.3-cuda", "r:cuda"]);
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let text = GOOD.replace("port = 8080\ndata_dir", "prot = 8080\ndata_dir");
        let error = parse(&text).unwrap_err().to_string();
        assert!(error.starts_with("targets.toml:14: unknown field `prot`"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let text = GOOD.replace("port = 8080\nuser", "port = \"eighty\"\nuser");
        let error = parse(&text).unwrap_err().to_string();
        assert!(error.starts_with("targets.toml:21: invalid type"), "{error}");
    }

    #[test]
    fn broken_syntax_names_the_line() {
        let error = parse("[project\nrepository = 1").unwrap_err().to_string();
        assert!(error.starts_with("targets.toml:1: "), "{error}");
    }

    #[test]
    fn missing_version_is_an_error() {
        let text = GOOD.replace("OPEN_WEBUI_VERSION = \"1.2.3\"", "");
        let error = format!("{:#}", parse(&text).unwrap_err());
        assert!(error.contains("must set OPEN_WEBUI_VERSION"), "{error}");
    }

    #[test]
    fn unknown_target_lists_the_known_ones() {
        let config = parse(GOOD).unwrap();
        let error = config.target("vast").unwrap_err().to_string();
        assert_eq!(error, r#"unknown target "vast" (known: default, gpu)"#);
    }

    #[test]
    fn bad_target_name_is_an_error() {
        let text = GOOD.replace("[targets.gpu]", "[targets.GPU]");
        let error = format!("{:#}", parse(&text).unwrap_err());
        assert!(error.contains("\"GPU\" must be lowercase"), "{error}");
    }

    #[test]
    fn test_table_parses_and_is_checked() {
        let table = "[targets.gpu.test]\ntorch = \"cuda\"\nvolume = \"/\"\nempty_volume = true\n";
        let config = parse(&format!("{GOOD}{table}")).unwrap();
        let test = &config.targets["gpu"].test;
        assert_eq!((test.torch, test.empty_volume), (Some(TorchBuild::Cuda), true));
        assert!(config.targets["default"].test.torch.is_none());

        let bad = format!("{GOOD}[targets.gpu.test]\ntorch = \"rocm\"\n");
        let error = parse(&bad).unwrap_err().to_string();
        assert!(error.contains(": unknown variant `rocm`"), "{error}");
        let bad = format!("{GOOD}[targets.gpu.test]\nvolume = \"/elsewhere\"\n");
        let error = format!("{:#}", parse(&bad).unwrap_err());
        assert!(error.contains("test volume \"/elsewhere\" must hold data_dir \"/data\""), "{error}");
    }

    #[test]
    fn budgets_parse_and_nonsense_names_key_and_line() {
        let text = GOOD.replace("tag_suffix = \"cuda\"", "tag_suffix = \"cuda\"\nsize_budget = \"12 GiB\"\nwaste_budget = \"800MB\"");
        let config = parse(&text).unwrap();
        assert_eq!(config.targets["gpu"].size_budget, Some(12 << 30));
        assert_eq!(config.targets["gpu"].waste_budget, Some(800_000_000));
        assert_eq!(config.targets["default"].size_budget, None);
        let error = parse(&text.replace("12 GiB", "12 parsecs")).unwrap_err().to_string();
        assert!(error.starts_with("targets.toml:21: size_budget: \"12 parsecs\" is not a size"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn a_variant_without_a_lock_is_an_error() {
        let text = GOOD.replace("TORCH_VARIANT = \"cuda\"", "TORCH_VARIANT = \"rocm\"");
        let error = format!("{:#}", parse(&text).unwrap_err());
        assert!(error.contains("target gpu: TORCH_VARIANT \"rocm\" names no [locks.NAME] (known: cuda)"), "{error}");
        let text = GOOD.replace("arches = [\"amd64\"]", "arches = [\"x86\"]");
        let error = format!("{:#}", parse(&text).unwrap_err());
        assert!(error.contains("lock cuda: arch \"x86\""), "{error}");
    }

    #[test]
    fn colliding_tags_and_bad_prune_defaults_are_errors() {
        let text = GOOD.replace("tag_suffix = \"cuda\"", "tag_suffix = \"\"");
        let error = format!("{:#}", parse(&text).unwrap_err());
        assert!(error.contains("tag_suffix \"\" is used by another target too"), "{error}");
        let text = format!("{GOOD}[prune]\nbuild_cache_older_than = \"forever\"\n");
        let error = format!("{:#}", parse(&text).unwrap_err());
        assert!(error.contains("[prune] build_cache_older_than"), "{error}");
    }

    #[test]
    fn the_repository_file_parses() {
        let path = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../dockerfiles/targets.toml");
        let config = Config::load(&path).unwrap();
        for name in ["default", "gpu", "vastai"] {
            config.target(name).unwrap();
        }
    }
}
