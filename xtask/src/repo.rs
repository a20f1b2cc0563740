//! The one place that names the repository's paths.

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::Shell;

/// The targets file, relative to the root: the single source of truth for the images.
pub const TARGETS_FILE: &str = "dockerfiles/targets.toml";
/// The naive one-RUN image that `cargo xtask bench` compares the project's build with.
pub const BENCH_NAIVE: &str = "xtask/tests/fixtures/bench";
/// Where the xtask writes what it generates (bake files, summaries, reports).
pub const OUT_DIR: &str = "target/xtask";
/// Documentation kept in the repository, some of it generated.
pub const DOCS_DIR: &str = "docs";
/// `cargo xtask size --write`: the recorded sizes, and the page made from them (in DOCS_DIR).
pub const SIZE_BASELINE: &str = "image-sizes.json";
pub const SIZE_PAGE: &str = "image-sizes.md";

/// The checkout this xtask belongs to, a shell whose working directory is its root, and
/// the targets file and output folder this run uses.
pub struct Repo {
    pub root: Utf8PathBuf,
    pub sh: Shell,
    pub targets_file: Utf8PathBuf,
    pub out_dir: Utf8PathBuf,
}

impl Repo {
    /// `targets_file` and `out_dir` override the defaults; relative ones are taken from
    /// the directory the xtask was started in.
    pub fn locate(targets_file: Option<Utf8PathBuf>, out_dir: Option<Utf8PathBuf>) -> Result<Repo> {
        let root = Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("the xtask crate has no parent directory")?
            .to_path_buf();
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let cwd = Utf8PathBuf::from_path_buf(cwd).map_err(|p| anyhow::anyhow!("{} is not UTF-8", p.display()))?;
        let absolute = |path: Utf8PathBuf| if path.is_absolute() { path } else { cwd.join(path) };
        let sh = Shell::new().context("cannot start a shell")?;
        sh.change_dir(&root);
        Ok(Repo {
            targets_file: targets_file.map_or_else(|| root.join(TARGETS_FILE), absolute),
            out_dir: out_dir.map_or_else(|| root.join(OUT_DIR), absolute),
            root,
            sh,
        })
    }

    /// The folder that the targets file's relative paths start from.
    pub fn targets_dir(&self) -> &Utf8Path {
        self.targets_file.parent().unwrap_or(&self.root)
    }
}
