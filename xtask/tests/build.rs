//! `cargo xtask build` against the real Docker engine, on the fixture image family.

mod common;

use common::*;

fn build(repository: &str, out_dir: &Path, extra: &[&str]) -> std::process::Output {
    let targets = fixture("build").join("targets.toml");
    let mut args = vec![
        "--targets-file", targets.to_str().unwrap(),
        "--out-dir", out_dir.to_str().unwrap(),
        "build", "--repository", repository, "--progress", "plain",
    ];
    args.extend_from_slice(extra);
    xtask(&args)
}

use std::path::Path;

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn builds_with_a_build_arg_override() {
    if !docker_or_skip("builds_with_a_build_arg_override") {
        return;
    }
    let repository = unique("xtask-test-override");
    let _cleanup = Images(vec![format!("{repository}:0.0.1"), format!("{repository}:latest")]);
    let out = out_dir("xtask-override");
    let result = build(&repository, &out, &["--build-arg", "GREETING=bonjour", "one"]);
    assert!(result.status.success(), "{}", text(&result.stderr));

    let greeting = docker(&["run", "--rm", &format!("{repository}:0.0.1"), "cat", "/greeting"]);
    assert_eq!(text(&greeting.stdout).trim(), "bonjour");
    let label = docker(&["image", "inspect", "--format",
        "{{index .Config.Labels \"dev.open-webui-images.target\"}}", &format!("{repository}:latest")]);
    assert_eq!(text(&label.stdout).trim(), "one");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("build-summary.json")).unwrap()).unwrap();
    assert_eq!(summary[0]["target"], "one");
    assert!(summary[0]["image_id"].as_str().unwrap().starts_with("sha256:"));
    assert!(summary[0]["size_bytes"].as_u64().unwrap() > 0);
    // The command is echoed before it runs.
    assert!(text(&result.stderr).contains("$ docker buildx bake --file"), "{}", text(&result.stderr));
}

#[test]
fn several_targets_share_their_common_stage() {
    if !docker_or_skip("several_targets_share_their_common_stage") {
        return;
    }
    let repository = unique("xtask-test-pair");
    let one = format!("{repository}:0.0.1");
    let two = format!("{repository}:0.0.1-two");
    let _cleanup = Images(vec![one.clone(), two.clone(), format!("{repository}:latest"), format!("{repository}:two")]);
    let result = build(&repository, &out_dir("xtask-pair"), &["--build-arg", "GREETING=shared", "one", "two"]);
    assert!(result.status.success(), "{}", text(&result.stderr));

    let layers = |image: &str| -> Vec<String> {
        let out = docker(&["image", "inspect", "--format", "{{range .RootFS.Layers}}{{println .}}{{end}}", image]);
        text(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    };
    let (first, second) = (layers(&one), layers(&two));
    assert_eq!(first.len(), second.len());
    // Everything but the last layer comes from `common`, built once and shared.
    assert_eq!(first[..first.len() - 1], second[..second.len() - 1]);
    assert_ne!(first.last(), second.last());
    let name = docker(&["run", "--rm", &two, "cat", "/name"]);
    assert_eq!(text(&name.stdout).trim(), "two");
}

#[test]
fn a_failing_step_fails_the_build() {
    if !docker_or_skip("a_failing_step_fails_the_build") {
        return;
    }
    let repository = unique("xtask-test-broken");
    let result = build(&repository, &out_dir("xtask-broken"), &["broken"]);
    assert!(!result.status.success());
    let stderr = text(&result.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: the build of broken failed"), "{stderr}");
    let gone = docker(&["image", "inspect", &format!("{repository}:0.0.1-broken")]);
    assert!(!gone.status.success(), "a failed build must not leave an image");
}

#[test]
fn bad_input_is_one_line_and_non_zero() {
    let broken = std::env::temp_dir().join(unique("xtask-broken-targets")).with_extension("toml");
    let good = std::fs::read_to_string(fixture("build").join("targets.toml")).unwrap();
    std::fs::write(&broken, good.replace("stage = \"two\"", "stgae = \"two\"")).unwrap();

    for args in [
        vec!["build", "nope"],
        vec!["--targets-file", broken.to_str().unwrap(), "build", "two"],
        vec!["build", "--build-arg", "NOT_DECLARED=1", "--dry-run"],
    ] {
        let result = xtask(&args);
        assert_eq!(result.status.code(), Some(1), "{args:?}");
        let stderr = text(&result.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    let result = xtask(&["--targets-file", broken.to_str().unwrap(), "build", "two"]);
    let stderr = text(&result.stderr);
    assert!(stderr.contains(".toml:18: unknown field `stgae`"), "{stderr}");
}

#[test]
fn dry_run_prints_every_target_and_runs_nothing() {
    let out = out_dir("xtask-dry");
    let result = xtask(&["--out-dir", out.to_str().unwrap(), "build", "--dry-run", "default", "vastai", "gpu"]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    let stdout = text(&result.stdout);
    let command = stdout.lines().last().unwrap();
    assert!(command.starts_with("docker buildx bake --file "), "{command}");
    assert!(command.ends_with(" default vastai gpu"), "{command}");
    let json_start = stdout.find('{').unwrap();
    let json_end = stdout.rfind('}').unwrap();
    let bake: serde_json::Value = serde_json::from_str(&stdout[json_start..=json_end]).unwrap();
    for target in ["default", "vastai", "gpu"] {
        assert_eq!(bake["target"][target]["target"], target);
    }
    // The printed command can be run as it is: its bake file is the one printed.
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bake.json")).unwrap()).unwrap();
    assert_eq!(written, bake);
    assert!(!out.join("build-summary.json").exists(), "a dry run builds nothing");
}
