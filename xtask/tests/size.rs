//! `cargo xtask size` on fixture images built here with known contents (see
//! fixtures/size/Dockerfile): exact layer sizes, exact waste, budgets, diffs, --write.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::*;
use serde_json::Value;

/// Builds a stage of the fixture Dockerfile under the given tags.
fn build(stage: &str, tags: &[String]) {
    let dir = fixture("size");
    let mut args = vec!["build", "-q", "--target", stage];
    for tag in tags {
        args.extend(["-t", tag.as_str()]);
    }
    args.push(dir.to_str().unwrap());
    let out = docker(&args);
    assert!(out.status.success(), "docker build failed: {}", text(&out.stderr));
}

fn size(args: &[&str]) -> Output {
    let targets = fixture("size").join("targets.toml");
    let mut all = vec!["--targets-file", targets.to_str().unwrap(), "size"];
    all.extend_from_slice(args);
    xtask(&all)
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "size failed: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--format json prints JSON")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn waste_is_exact_and_the_surviving_copy_is_not_waste() {
    if !docker_or_skip("waste_is_exact_and_the_surviving_copy_is_not_waste") {
        return;
    }
    let image = format!("{}:lean", unique("sz-test-waste"));
    let _cleanup = Images(vec![image.clone()]);
    build("lean", &[image.clone()]);

    let report = &json(&size(&["--image", &image, "--format", "json"]))[0];
    // dive would say 690000: it also counts the surviving /overwritten and /data/owned.
    assert_eq!(report["waste_bytes"], 300_000 + 200_000 + 70_000);
    assert_eq!(report["waste_files"], 3);
    let waste: Vec<(String, u64, String)> = report["waste"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["path"].as_str().unwrap().into(), w["bytes"].as_u64().unwrap(), w["how"].as_str().unwrap().into()))
        .collect();
    let expected = [("/added-then-deleted", 300_000, "deleted"), ("/overwritten", 200_000, "overwritten"), ("/data/owned", 70_000, "overwritten")];
    assert_eq!(waste, expected.map(|(p, b, h)| (p.to_string(), b, h.to_string())));

    // The layers after the base image, each exactly what its RUN wrote.
    let layers: Vec<u64> = report["layers"].as_array().unwrap().iter().map(|l| l["bytes"].as_u64().unwrap()).collect();
    assert_eq!(layers[1..], [301_000, 0, 200_000, 50_000, 70_000, 70_000, 40_000]);
    assert!(report["layers"][2]["instruction"].as_str().unwrap().starts_with("RUN rm /added-then-deleted"));
    // The total is Docker's own figure.
    assert_eq!(report["total_bytes"], report["inspect_bytes"]);
    assert_eq!(report["total_bytes"].as_u64().unwrap(), layers.iter().sum::<u64>());
    let compressed = report["compressed_bytes"].as_u64().unwrap();
    assert!(compressed > 0 && compressed < report["total_bytes"].as_u64().unwrap());

    let offenders = report["offenders"].as_array().unwrap();
    assert!(
        offenders.iter().any(|o| o["kind"] == "cache" && o["path"] == "/root/.cache/pip" && o["bytes"] == 40_000),
        "{offenders:?}"
    );
    // The human table says the same.
    let human = size(&["--image", &image]);
    assert!(human.status.success(), "{}", text(&human.stderr));
    assert!(text(&human.stdout).contains("waste 570.00 kB in 3 files"), "{}", text(&human.stdout));
}

#[test]
fn budgets_pass_and_fail_saying_by_how_much() {
    if !docker_or_skip("budgets_pass_and_fail_saying_by_how_much") {
        return;
    }
    let repository = unique("sz-test-budget");
    let (roomy, strict) = (format!("{repository}:0.0.1-roomy"), format!("{repository}:0.0.1-strict"));
    let _cleanup = Images(vec![roomy.clone(), strict.clone()]);
    build("lean", &[roomy, strict]);

    let pass = size(&["--repository", &repository, "roomy"]);
    assert!(pass.status.success(), "{}", text(&pass.stderr));
    assert!(text(&pass.stdout).contains("within its budget of 1.00 GB"), "{}", text(&pass.stdout));

    let fail = size(&["--repository", &repository, "--format", "markdown", "strict"]);
    assert!(!fail.status.success());
    let stderr = text(&fail.stderr);
    let error = stderr.lines().find(|l| l.starts_with("error: ")).expect("an error line");
    assert!(error.contains("strict carries 570.00 kB of waste, 470.00 kB over its waste_budget of 100.00 kB"), "{error}");
    assert!(error.contains("over its size_budget of 104.86 MB"), "{error}");
    assert!(text(&fail.stdout).contains("**over budget**"), "{}", text(&fail.stdout));
}

#[test]
fn diff_of_two_fixtures_names_the_layer_and_the_path() {
    if !docker_or_skip("diff_of_two_fixtures_names_the_layer_and_the_path") {
        return;
    }
    let name = unique("sz-test-diff");
    let (lean, fat) = (format!("{name}:lean"), format!("{name}:fat"));
    let _cleanup = Images(vec![lean.clone(), fat.clone()]);
    build("fat", &[fat.clone()]);
    build("lean", &[lean.clone()]);

    let report = &json(&size(&["--image", &fat, "--against", &lean, "--format", "json", "--weights-threshold", "1 MB"]))[0];
    let diff = &report["diff"];
    assert_eq!(diff["against"], lean.as_str());
    assert_eq!(diff["total_after"].as_u64().unwrap() - diff["total_before"].as_u64().unwrap(), 2_000_000);
    let layers = diff["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 9);
    assert!(layers[..8].iter().all(|l| l["same"] == true), "{layers:?}");
    assert_eq!((&layers[8]["before"], &layers[8]["after"]), (&Value::Null, &Value::from(2_000_000)));
    assert_eq!(diff["paths"], serde_json::json!([{"path": "/models", "before": 0, "after": 2_000_000}]));
    // The weights file is flagged at this threshold.
    let offenders = report["offenders"].as_array().unwrap();
    assert!(offenders.iter().any(|o| o["kind"] == "model-weights" && o["path"] == "/models/encoder.safetensors"));
}

#[test]
fn write_records_a_baseline_that_the_next_run_compares_with() {
    if !docker_or_skip("write_records_a_baseline_that_the_next_run_compares_with") {
        return;
    }
    let repository = unique("sz-test-write");
    let roomy = format!("{repository}:0.0.1-roomy");
    let _cleanup = Images(vec![roomy.clone()]);
    build("lean", &[roomy]);
    let docs = temp_dir("sz-docs");
    let docs_arg = docs.to_str().unwrap();

    let first = size(&["--repository", &repository, "--docs-dir", docs_arg, "--write", "roomy"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let baseline: Value = serde_json::from_str(&std::fs::read_to_string(docs.join("image-sizes.json")).unwrap()).unwrap();
    assert_eq!(baseline["targets"]["roomy"]["waste_bytes"], 570_000);
    let page = std::fs::read_to_string(docs.join("image-sizes.md")).unwrap();
    assert!(page.contains("## roomy") && page.contains("](image-sizes-roomy.svg)"), "{page}");
    let svg = std::fs::read_to_string(docs.join("image-sizes-roomy.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("roomy: where"), "{svg}");

    let second = json(&size(&["--repository", &repository, "--docs-dir", docs_arg, "--format", "json", "roomy"]));
    let diff = &second[0]["diff"];
    assert!(diff["against"].as_str().unwrap().ends_with("image-sizes.json"), "{diff}");
    assert_eq!(diff["total_before"], diff["total_after"]);
    assert!(diff["paths"].as_array().unwrap().is_empty());
    std::fs::remove_dir_all(&docs).unwrap();
}

#[test]
fn a_missing_image_is_a_one_line_error() {
    if !docker_or_skip("a_missing_image_is_a_one_line_error") {
        return;
    }
    let out = size(&["--image", "sz-test-no-such-image:never"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("there is no local image sz-test-no-such-image:never"), "{stderr}");
}

#[test]
fn a_budget_that_does_not_parse_names_the_key_and_line() {
    let dir = temp_dir("sz-parsecs");
    let targets = std::fs::read_to_string(fixture("size").join("targets.toml")).unwrap();
    let path = dir.join("targets.toml");
    std::fs::write(&path, targets.replace("\"100 MiB\"", "\"12 parsecs\"")).unwrap();
    let out = xtask(&["--targets-file", path.to_str().unwrap(), "size", "strict"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("targets.toml:27: size_budget: \"12 parsecs\" is not a size"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
