//! `cargo xtask lock`: resolves Open WebUI's full Python dependency set, with hashes, into
//! one lock per torch variant and architecture (`dockerfiles/locks/VARIANT-ARCH.txt`).
//! The Dockerfile installs a lock as it is, so builds resolve nothing and repeat exactly.
//! Resolution runs on the host with uv, kept in a venv under target/.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};

use crate::config::{Config, Lock};
use crate::docker::CommandLine;
use crate::repo::Repo;

/// The Python the images run (the base image's), which the locks are resolved for.
const PYTHON_VERSION: &str = "3.11";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Locks from the targets file's [locks] table [default: all of them]
    pub locks: Vec<String>,
    /// Open WebUI release to lock instead of the targets file's OPEN_WEBUI_VERSION
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Change nothing; fail when a committed lock differs from a fresh resolution
    #[arg(long)]
    pub check: bool,
}

/// The uv platform for a Docker architecture (the manylinux glibc of Debian bookworm).
pub fn python_platform(arch: &str) -> Option<&'static str> {
    match arch {
        "amd64" => Some("x86_64-manylinux_2_28"),
        "arm64" => Some("aarch64-manylinux_2_28"),
        _ => None,
    }
}

/// Where the locks live: `locks/` in the build context, which the Dockerfile copies.
pub fn locks_dir(repo: &Repo, config: &Config) -> Utf8PathBuf {
    match config.project.context.trim_start_matches("./") {
        "" | "." => repo.targets_dir().join("locks"),
        context => repo.targets_dir().join(context).join("locks"),
    }
}

/// `uv pip compile` of `requirements` into `output`, for one lock and architecture.
pub fn compile_command(uv: &Utf8Path, requirements: &Utf8Path, output: &Utf8Path, lock: &Lock, arch: &str) -> CommandLine {
    let mut command = CommandLine::new(uv.as_str())
        .args(["pip", "compile", requirements.as_str(), "--generate-hashes", "--no-header", "--quiet"])
        .args(["--python-version", PYTHON_VERSION, "--python-platform"])
        .arg(python_platform(arch).unwrap_or(arch))
        .arg("--output-file")
        .arg(output.as_str());
    if !lock.torch_index.is_empty() {
        // First-index strategy: what this index has (torch) comes from it, the rest
        // from the main index.
        command = command.arg("--index").arg(lock.torch_index.as_str());
    }
    command
}

/// The host's uv, installed into target/uv-venv at the Dockerfile's UV_VERSION when absent.
pub fn ensure_uv(repo: &Repo, config: &Config) -> Result<Utf8PathBuf> {
    let venv = repo.root.join("target/uv-venv");
    let uv = venv.join("bin/uv");
    if uv.is_file() {
        return Ok(uv);
    }
    let dockerfile = repo.targets_dir().join(&config.project.dockerfile);
    let text = std::fs::read_to_string(&dockerfile).with_context(|| format!("cannot read {dockerfile}"))?;
    let version = text
        .lines()
        .find_map(|line| line.strip_prefix("ARG UV_VERSION="))
        .with_context(|| format!("{dockerfile} declares no `ARG UV_VERSION=…` default"))?;
    eprintln!("-- installing uv {version} into {venv}");
    CommandLine::new("python3").args(["-m", "venv", venv.as_str()]).run(&repo.sh)?;
    CommandLine::new(venv.join("bin/pip").as_str())
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("uv=={version}"))
        .run(&repo.sh)
        .context("cannot install uv on the host; python3 with venv and a reachable package index are needed")?;
    Ok(uv)
}

/// Resolves `open-webui==version` for one lock and architecture into `output`.
pub fn resolve(repo: &Repo, uv: &Utf8Path, version: &str, lock: &Lock, arch: &str, output: &Utf8Path) -> Result<()> {
    let work = repo.out_dir.join("lock");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {work}"))?;
    let requirements = work.join("requirements.in");
    std::fs::write(&requirements, format!("open-webui=={version}\n"))?;
    compile_command(uv, &requirements, output, lock, arch).run(&repo.sh)
}

/// `name → version` of every package a lock pins.
pub fn pins(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with([' ', '#']))
        .filter_map(|line| {
            let (name, rest) = line.split_once("==")?;
            Some((name.trim().to_string(), rest.split_whitespace().next()?.to_string()))
        })
        .collect()
}

/// One line per package that was added, removed or changed, then a count of the rest.
pub fn changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, version) in new {
        match old.get(name) {
            None => lines.push(format!("  + {name} {version}")),
            Some(before) if before != version => lines.push(format!("  ~ {name} {before} -> {version}")),
            Some(_) => {}
        }
    }
    for (name, version) in old.iter().filter(|(name, _)| !new.contains_key(*name)) {
        lines.push(format!("  - {name} {version}"));
    }
    let same = new.iter().filter(|(name, version)| old.get(*name) == Some(version)).count();
    lines.push(format!("  {same} packages unchanged"));
    lines
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    if config.locks.is_empty() {
        bail!("{}: no [locks.NAME] table: add one per torch variant", repo.targets_file);
    }
    let names: Vec<String> = if args.locks.is_empty() { config.locks.keys().cloned().collect() } else { args.locks.clone() };
    for name in &names {
        if !config.locks.contains_key(name) {
            let known: Vec<&str> = config.locks.keys().map(String::as_str).collect();
            bail!("unknown lock {name:?} (known: {})", known.join(", "));
        }
    }
    let version = args.version.as_deref().or(config.version()).unwrap_or_default().to_string();
    let uv = ensure_uv(repo, &config)?;
    let dir = locks_dir(repo, &config);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {dir}"))?;

    let mut failed = Vec::new();
    let mut differ = Vec::new();
    for name in &names {
        let lock = &config.locks[name];
        for arch in &lock.arches {
            let file = format!("{name}-{arch}.txt");
            let path = dir.join(&file);
            let fresh = repo.out_dir.join("lock").join(&file);
            let from = if lock.torch_index.is_empty() { "the main index" } else { &lock.torch_index };
            eprintln!("-- resolving open-webui {version} for {file} (torch from {from})");
            // A lock is replaced only by a complete resolution, so a failure keeps the old one.
            if let Err(error) = resolve(repo, &uv, &version, lock, arch, &fresh) {
                eprintln!("   failed: {error:#}; {path} is left as it was");
                failed.push(file);
                continue;
            }
            let new_text = std::fs::read_to_string(&fresh)?;
            let old_text = std::fs::read_to_string(&path).unwrap_or_default();
            println!("{file}:");
            for line in changes(&pins(&old_text), &pins(&new_text)) {
                println!("{line}");
            }
            if args.check {
                if new_text != old_text {
                    differ.push(file);
                }
            } else if new_text != old_text {
                std::fs::rename(&fresh, &path).with_context(|| format!("cannot write {path}"))?;
                eprintln!("-- wrote {path}");
            }
        }
    }
    if !differ.is_empty() {
        bail!("{} differ from a fresh resolution: run cargo xtask lock and commit them", differ.join(", "));
    }
    if !failed.is_empty() {
        bail!("could not resolve {}: run cargo xtask lock where their index answers", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = "\
aiohttp==3.14.5 \\
    --hash=sha256:aa \\
    --hash=sha256:bb
    # via open-webui
open-webui==0.12.4 \\
    --hash=sha256:cc
torch==2.15.0+cpu \\
    --hash=sha256:dd
";

    #[test]
    fn pins_read_name_and_version_only() {
        let pins = pins(LOCK);
        assert_eq!(pins.len(), 3);
        assert_eq!(pins["torch"], "2.15.0+cpu");
        assert_eq!(pins["aiohttp"], "3.14.5");
    }

    #[test]
    fn changes_list_added_removed_and_changed() {
        let old = pins(LOCK);
        let new_text = LOCK.replace("aiohttp==3.14.5", "aiohttp==3.14.6").replace("torch==2.15.0+cpu", "mcp==2.3.0");
        let lines = changes(&old, &pins(&new_text));
        assert_eq!(lines, ["  ~ aiohttp 3.14.5 -> 3.14.6", "  + mcp 2.3.0", "  - torch 2.15.0+cpu", "  1 packages unchanged"]);
    }

    #[test]
    fn compile_command_uses_the_torch_index_only_when_given() {
        let lock = Lock { torch_index: "https://torch.example/cpu".into(), arches: vec!["arm64".into()] };
        let command = compile_command("uv".into(), "in.txt".into(), "out.txt".into(), &lock, "arm64");
        assert_eq!(
            command.to_string(),
            "uv pip compile in.txt --generate-hashes --no-header --quiet --python-version 3.11 \
             --python-platform aarch64-manylinux_2_28 --output-file out.txt --index https://torch.example/cpu"
        );
        let main = Lock { torch_index: String::new(), arches: vec![] };
        assert!(!compile_command("uv".into(), "i".into(), "o".into(), &main, "amd64").to_string().contains("--index"));
    }

    #[test]
    fn the_committed_locks_pin_the_targets_file_version() {
        let root = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = Config::load(&root.join("dockerfiles/targets.toml")).unwrap();
        let version = config.version().unwrap();
        let mut found = 0;
        for (name, lock) in &config.locks {
            for arch in &lock.arches {
                let Ok(text) = std::fs::read_to_string(root.join(format!("dockerfiles/locks/{name}-{arch}.txt"))) else {
                    continue; // a lock that could not be resolved yet (see the targets file)
                };
                assert_eq!(pins(&text)["open-webui"], version, "{name}-{arch}");
                assert!(text.lines().filter(|l| !l.starts_with(' ') && !l.is_empty()).all(|l| l.ends_with('\\')), "{name}-{arch}: a pin without a hash");
                found += 1;
            }
        }
        assert!(found > 0, "no committed lock at all");
    }
}
