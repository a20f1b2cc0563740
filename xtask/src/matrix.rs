//! `cargo xtask matrix`: the workflow's image-job matrix, made from the targets file so
//! that the workflow never keeps a second list of targets.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::repo::Repo;

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Indent the JSON for people; the workflow reads the one-line form
    #[arg(long)]
    pub pretty: bool,
}

/// One matrix entry: what a workflow image job needs to know about its target.
#[derive(Debug, Serialize, PartialEq)]
pub struct Entry {
    pub target: String,
    pub description: String,
    pub tag_suffix: String,
    pub free_runner_disk: bool,
}

/// `{"include": [...]}`, the shape `strategy.matrix` takes through `fromJSON`.
#[derive(Debug, Serialize)]
pub struct Matrix {
    pub include: Vec<Entry>,
}

/// The keys of every entry, so that lint can check what the workflow reads as `matrix.KEY`.
pub const KEYS: &[&str] = &["target", "description", "tag_suffix", "free_runner_disk"];

pub fn matrix(config: &Config) -> Matrix {
    let include = config
        .targets
        .iter()
        .map(|(name, target)| Entry {
            target: name.clone(),
            description: target.description.clone(),
            tag_suffix: target.tag_suffix.clone(),
            free_runner_disk: target.free_runner_disk,
        })
        .collect();
    Matrix { include }
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    let matrix = matrix(&config);
    let text = if args.pretty {
        serde_json::to_string_pretty(&matrix)?
    } else {
        serde_json::to_string(&matrix)?
    };
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8Path;

    fn repository_config() -> Config {
        let path = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../dockerfiles/targets.toml");
        Config::load(&path).unwrap()
    }

    #[test]
    fn one_entry_per_target_with_its_facts() {
        let config = repository_config();
        let matrix = matrix(&config);
        let names: Vec<&str> = matrix.include.iter().map(|e| e.target.as_str()).collect();
        let expected: Vec<&str> = config.targets.keys().map(String::as_str).collect();
        assert_eq!(names, expected);
        for entry in &matrix.include {
            let target = &config.targets[&entry.target];
            assert_eq!(entry.free_runner_disk, target.free_runner_disk);
            assert_eq!(entry.tag_suffix, target.tag_suffix);
        }
    }

    #[test]
    fn cuda_targets_free_runner_disk_and_the_cpu_one_does_not() {
        let config = repository_config();
        assert!(!config.targets["default"].free_runner_disk);
        assert!(config.targets["gpu"].free_runner_disk);
        assert!(config.targets["vastai"].free_runner_disk);
    }

    #[test]
    fn keys_name_every_field_of_an_entry() {
        let json = serde_json::to_value(matrix(&repository_config())).unwrap();
        let entry = json["include"][0].as_object().unwrap();
        let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
        let mut expected = KEYS.to_vec();
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }
}
