//! `cargo xtask lint` on the fixture project under tests/fixtures/lint, whose files agree
//! with each other: each test breaks one agreement in a copy and expects the finding.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A copy of the fixture project with `edits` applied: (file, text, replacement).
fn project(edits: &[(&str, &str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("xtask-lint"));
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    for file in ["targets.toml", "Dockerfile", "README.md", "workflows/ci.yml"] {
        std::fs::copy(fixture("lint").join(file), dir.join(file)).unwrap();
    }
    for (file, from, to) in edits {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "the fixture {file} no longer contains {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
    dir
}

fn lint_in(dir: &Path, extra: &[&str]) -> std::process::Output {
    let targets = dir.join("targets.toml");
    let workflows = dir.join("workflows");
    let readme = dir.join("README.md");
    let mut args = vec![
        "--targets-file",
        targets.to_str().unwrap(),
        "lint",
        "--no-external",
        "--workflows",
        workflows.to_str().unwrap(),
        "--doc",
        readme.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    xtask(&args)
}

/// The findings of a JSON run, and whether it failed.
fn findings(edits: &[(&str, &str, &str)]) -> (bool, Vec<Value>) {
    let out = lint_in(&project(edits), &["--format", "json"]);
    let findings: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}{}", text(&out.stdout), text(&out.stderr)));
    (!out.status.success(), findings.as_array().unwrap().clone())
}

/// Asserts exactly one finding, from `check`, in `file` at `line`, whose message has `words`.
fn expect_one(edits: &[(&str, &str, &str)], check: &str, file: &str, line: u64, words: &str) {
    let (failed, found) = findings(edits);
    assert!(failed, "lint passed despite {edits:?}");
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(f["check"], check, "{f:#}");
    assert!(f["file"].as_str().unwrap().ends_with(file), "{f:#}");
    assert_eq!(f["line"], line, "{f:#}");
    assert!(f["message"].as_str().unwrap().contains(words), "{f:#}");
}

#[test]
fn the_fixture_project_is_clean() {
    let (failed, found) = findings(&[]);
    assert!(!failed && found.is_empty(), "{found:#?}");
}

// -- the targets file against the Dockerfile

#[test]
fn a_target_stage_missing_from_the_dockerfile() {
    expect_one(
        &[("targets.toml", "stage = \"large\"", "stage = \"huge\"")],
        "targets-dockerfile",
        "targets.toml",
        21,
        "stage \"huge\" is not a stage",
    );
}

#[test]
fn a_target_build_arg_the_dockerfile_does_not_declare() {
    expect_one(
        &[("targets.toml", "{ FLAVOUR = \"rich\" }", "{ FLAVOUR = \"rich\", COLOUR = \"red\" }")],
        "targets-dockerfile",
        "targets.toml",
        25,
        "build argument COLOUR is not declared",
    );
}

#[test]
fn a_shared_build_arg_the_dockerfile_does_not_declare() {
    expect_one(
        &[("targets.toml", "[args]\n", "[args]\nUV_VERSION = \"1\"\n")],
        "targets-dockerfile",
        "targets.toml",
        10,
        "[args]: build argument UV_VERSION",
    );
}

#[test]
fn a_dockerfile_arg_nothing_sets_is_a_warning_that_fail_on_decides() {
    let edits = [("Dockerfile", "ARG FLAVOUR=plain\n", "ARG FLAVOUR=plain\nARG MIRROR\n")];
    expect_one(&edits, "targets-dockerfile", "Dockerfile", 5, "ARG MIRROR has no default");
    let dir = project(&edits);
    let out = lint_in(&dir, &["--fail-on", "error"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The human form: file:line: severity: message.
    let line = text(&out.stdout);
    assert!(
        line.starts_with(&format!("{}:5: warning: ARG MIRROR", dir.join("Dockerfile").display())),
        "{line}"
    );
    assert!(!lint_in(&dir, &["--fail-on", "warning"]).status.success());
}

// -- the workflow against the xtask, the targets file and the Dockerfile

#[test]
fn a_workflow_calling_a_subcommand_that_does_not_exist() {
    expect_one(
        &[("workflows/ci.yml", "cargo xtask lint --fail-on error", "cargo xtask lnit")],
        "workflow-xtask",
        "ci.yml",
        25,
        "unrecognized subcommand 'lnit'",
    );
}

#[test]
fn a_workflow_passing_a_flag_the_subcommand_does_not_have() {
    expect_one(
        &[(
            "workflows/ci.yml",
            "          --build-arg FLAVOUR=rich\n",
            "          --bulid-arg FLAVOUR=rich\n",
        )],
        "workflow-xtask",
        "ci.yml",
        28,
        "unexpected argument '--bulid-arg'",
    );
}

#[test]
fn a_workflow_build_arg_the_dockerfile_does_not_declare() {
    expect_one(
        &[("workflows/ci.yml", "--build-arg FLAVOUR=rich", "--build-arg FLAVOR=rich")],
        "workflow-xtask",
        "ci.yml",
        28,
        "build argument FLAVOR is not declared by the Dockerfile",
    );
}

#[test]
fn a_workflow_naming_a_dockerfile_path_that_does_not_exist() {
    expect_one(
        &[("workflows/ci.yml", "run: df -h /", "run: cat dockerfiles/Dockerfil")],
        "workflow-dockerfile",
        "ci.yml",
        24,
        "dockerfiles/Dockerfil does not exist",
    );
}

#[test]
fn a_workflow_with_a_target_list_of_its_own() {
    let (failed, found) = findings(&[(
        "workflows/ci.yml",
        "matrix: ${{ fromJSON(needs.matrix.outputs.matrix) }}",
        "matrix:\n        target: [small, large]",
    )]);
    assert!(failed);
    let lines: Vec<(&str, u64)> =
        found.iter().map(|f| (f["check"].as_str().unwrap(), f["line"].as_u64().unwrap())).collect();
    assert_eq!(
        lines,
        [("workflow-targets", 19), ("workflow-targets", 20), ("workflow-targets", 20)],
        "{found:#?}"
    );
    assert!(found[1]["message"]
        .as_str()
        .unwrap()
        .contains("target \"small\" is written in the workflow"));
}

#[test]
fn a_workflow_naming_a_target_by_hand() {
    expect_one(
        &[("workflows/ci.yml", "cargo xtask lint --fail-on error", "cargo xtask build small")],
        "workflow-targets",
        "ci.yml",
        25,
        "target \"small\" is written in the workflow",
    );
}

#[test]
fn a_workflow_calling_an_unknown_target() {
    expect_one(
        &[("workflows/ci.yml", "cargo xtask lint --fail-on error", "cargo xtask build tiny")],
        "workflow-xtask",
        "ci.yml",
        25,
        "unknown target \"tiny\" (known: large, small)",
    );
}

#[test]
fn a_workflow_reading_a_matrix_key_the_xtask_does_not_emit() {
    expect_one(
        &[("workflows/ci.yml", "if: matrix.free_runner_disk", "if: matrix.free_disk")],
        "workflow-matrix",
        "ci.yml",
        23,
        "matrix.free_disk is not a key of `cargo xtask matrix`",
    );
}

#[test]
fn a_workflow_that_does_not_ask_the_xtask_for_its_matrix() {
    expect_one(
        &[("workflows/ci.yml", "$(cargo xtask matrix)", "[]")],
        "workflow-matrix",
        "ci.yml",
        1,
        "no workflow runs `cargo xtask matrix`",
    );
}

#[test]
fn a_workflow_with_an_unpinned_action() {
    expect_one(
        &[("workflows/ci.yml", "actions/checkout@v6", "actions/checkout@main")],
        "workflow-pinning",
        "ci.yml",
        12,
        "actions/checkout@main is not pinned",
    );
}

#[test]
fn a_workflow_that_prints_a_secret() {
    expect_one(
        &[("workflows/ci.yml", "run: df -h /", "run: echo \"${{ secrets.TOKEN }}\"")],
        "workflow-secrets",
        "ci.yml",
        24,
        "a secret is printed",
    );
}

// -- the docs against the xtask and the targets file

#[test]
fn a_documented_command_that_does_not_parse() {
    expect_one(
        &[("README.md", "build small large --dry-run", "build small large --dryrun")],
        "docs-xtask",
        "README.md",
        4,
        "unexpected argument '--dryrun'",
    );
}

#[test]
fn a_documented_command_with_an_unknown_target() {
    expect_one(
        &[("README.md", "image-job large", "image-job medium")],
        "docs-xtask",
        "README.md",
        5,
        "unknown target \"medium\"",
    );
}

#[test]
fn a_documented_docker_run_with_the_wrong_port_volume_or_tag() {
    expect_one(
        &[("README.md", "127.0.0.1:8080:8080", "127.0.0.1:8080:7500")],
        "docs-docker-run",
        "README.md",
        6,
        "listens on 8080 (target small), not 7500",
    );
    expect_one(
        &[("README.md", "-v /workspace:/workspace", "-v /workspace:/srv")],
        "docs-docker-run",
        "README.md",
        7,
        "keeps its data in /workspace/data",
    );
    expect_one(
        &[("README.md", "lint-fixture:large", "lint-fixture:huge")],
        "docs-docker-run",
        "README.md",
        7,
        "lint-fixture:huge is not a tag any target gets",
    );
}

// -- hadolint, actionlint, and the repository itself

/// Whether the linters can run; under CI=true they must.
fn linters_or_skip(test: &str) -> bool {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/venv/bin");
    let on_path = |name: &str| std::process::Command::new(name).arg("--version").output().is_ok();
    if (bin.join("hadolint").is_file() || on_path("hadolint"))
        && (bin.join("actionlint").is_file() || on_path("actionlint"))
    {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: hadolint or actionlint is missing, and lint tests never skip under CI=true (run bash .ci/setup-host)");
    }
    eprintln!(
        "\n!!! SKIPPED {test}: hadolint or actionlint is missing (run bash .ci/setup-host) !!!\n"
    );
    false
}

#[test]
fn hadolint_and_actionlint_findings_are_reported_with_their_lines() {
    if !linters_or_skip("hadolint_and_actionlint_findings_are_reported_with_their_lines") {
        return;
    }
    let dir = project(&[
        (
            "Dockerfile",
            "RUN echo \"$FLAVOUR\" >/flavour",
            "RUN cd /tmp && echo \"$FLAVOUR\" >/flavour",
        ),
        (
            "workflows/ci.yml",
            "runs-on: ubuntu-24.04\n    outputs:",
            "runs-on: ubuntu-24.04\n    outptus:",
        ),
    ]);
    let targets = dir.join("targets.toml");
    let out = xtask(&[
        "--targets-file",
        targets.to_str().unwrap(),
        "lint",
        "--format",
        "json",
        "--workflows",
        dir.join("workflows").to_str().unwrap(),
        "--doc",
        dir.join("README.md").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let hadolint = found.iter().find(|f| f["check"] == "hadolint").expect("a hadolint finding");
    assert_eq!(hadolint["line"], 8, "{hadolint:#}");
    assert!(hadolint["message"].as_str().unwrap().starts_with("DL3003 "), "{hadolint:#}");
    let actionlint =
        found.iter().find(|f| f["check"] == "actionlint").expect("an actionlint finding");
    assert_eq!(actionlint["line"], 9, "{actionlint:#}");
    assert!(actionlint["message"].as_str().unwrap().contains("outptus"), "{actionlint:#}");
}

#[test]
fn the_repository_itself_is_clean() {
    let mut args = vec!["lint"];
    if !linters_or_skip("the_repository_itself_is_clean (external linters)") {
        args.push("--no-external");
    }
    let out = xtask(&args);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("-- lint: 0 errors, 0 warnings"), "{}", text(&out.stderr));
}
