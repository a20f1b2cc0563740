//! The static checks: what the image's config, history and files say, before any server
//! runs. The config checks are pure functions of `docker image inspect`'s JSON.

use serde_json::Value;
use xshell::Shell;

use super::secrets::{self, Finding};
use super::{fail, CheckResult, Recorder, Subject};
use crate::build::{LABEL_TARGET, LABEL_TORCH_INDEX};
use crate::config::TorchBuild;
use crate::docker::{human_bytes, CommandLine};

/// The in-image script whose JSON report the file checks read.
const PROBE: &str = include_str!("probe.py");

pub fn run(sh: &Shell, subject: &Subject, recorder: &mut Recorder) {
    let name = subject.name;
    let no_log = || None;
    let inspected = inspect(sh, &subject.image);
    let config = |f: fn(&Subject, &Value) -> CheckResult| -> CheckResult {
        match &inspected {
            Ok(image) => f(subject, image),
            Err(error) => Err(fail("docker image inspect to answer", error.clone())),
        }
    };
    recorder.check(name, "exposed port", no_log, || config(exposed_port));
    recorder.check(name, "healthcheck", no_log, || config(healthcheck));
    recorder.check(name, "entrypoint", no_log, || config(entrypoint));
    recorder.check(name, "user", no_log, || config(user));
    recorder.check(name, "labels", no_log, || config(labels));
    recorder.check(name, "no secrets", no_log, || {
        let image =
            inspected.as_ref().map_err(|e| fail("docker image inspect to answer", e.clone()))?;
        no_secrets(image, &history(sh, &subject.image)?)
    });

    let mut facts = None;
    recorder.check(name, "open-webui", no_log, || {
        let probe = probe(sh, subject)?;
        let found = &probe["open_webui"];
        let result = match (found["version"].as_str(), found["error"].as_str()) {
            (Some(v), _) if v == subject.version => {
                Ok(format!("{v} importable by {}", probe["python"].as_str().unwrap_or("python3")))
            }
            (Some(v), _) => {
                Err(fail(format!("Open WebUI {}", subject.version), format!("Open WebUI {v}")))
            }
            (None, error) => {
                Err(fail("`import open_webui` to work", error.unwrap_or("no report").to_string()))
            }
        };
        facts = Some(probe);
        result
    });
    let Some(facts) = facts else {
        for check in ["python caches", "apt caches", "torch", "baked model"] {
            recorder.skip(name, check, "the image's files could not be read");
        }
        return;
    };
    recorder.check(name, "python caches", no_log, || {
        nothing_found(&facts["python_caches"], "no pip or uv cache")
    });
    recorder.check(name, "apt caches", no_log, || {
        nothing_found(&facts["apt"], "no apt lists or package caches")
    });
    let index = inspected
        .as_ref()
        .ok()
        .and_then(|i| i["Config"]["Labels"][LABEL_TORCH_INDEX].as_str())
        .unwrap_or("");
    match subject.target.test.torch {
        None => recorder.skip(name, "torch", "the targets file expects no particular torch"),
        Some(TorchBuild::Cpu) if !is_cpu_index(index) => recorder.skip(
            name,
            "torch",
            format!("built from {:?}, not a CPU index, so its torch may be CUDA", index),
        ),
        Some(build) => {
            recorder.check(name, "torch", no_log, || torch(build, &facts["torch"]));
        }
    }
    match &subject.target.test.baked_model {
        None => recorder.skip(name, "baked model", "the target bakes no model"),
        Some(path) => {
            recorder.check(name, "baked model", no_log, || {
                match facts["baked_model"].as_object() {
                    Some(model) => Ok(format!(
                        "{path}: {} files, {}",
                        model["files"],
                        human_bytes(model["bytes"].as_u64().unwrap_or(0))
                    )),
                    None => Err(fail(format!("model files in {path}"), "no files there")),
                }
            });
        }
    }
}

fn inspect(sh: &Shell, image: &str) -> Result<Value, String> {
    let text =
        CommandLine::docker().args(["image", "inspect", "--format", "{{json .}}", image]).read(sh);
    let text = text.map_err(|e| format!("{e:#}"))?;
    serde_json::from_str(&text).map_err(|e| format!("cannot read docker's answer: {e}"))
}

fn history(sh: &Shell, image: &str) -> anyhow::Result<Vec<String>> {
    let text = CommandLine::docker()
        .args(["history", "--no-trunc", "--format", "{{.CreatedBy}}", image])
        .read(sh)?;
    Ok(text.lines().map(str::to_string).collect())
}

/// The command that runs the probe in the image, as root and without network.
pub fn probe_command(subject: &Subject) -> CommandLine {
    let mut command = CommandLine::docker()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "0:0",
            "--entrypoint",
            "python3",
            "--name",
        ])
        .arg(format!("{}-{}-probe", subject.run_id, subject.name));
    for label in subject.labels() {
        command = command.arg("--label").arg(label);
    }
    command
        .arg(subject.image.as_str())
        .args(["-c", PROBE])
        .arg(subject.target.test.baked_model.clone().unwrap_or_default())
}

fn probe(sh: &Shell, subject: &Subject) -> Result<Value, super::Failure> {
    let out = probe_command(subject).read(sh)?;
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .map_err(|e| fail("a JSON report from the probe", format!("{e}: {out}")))
}

pub fn exposed_port(subject: &Subject, image: &Value) -> CheckResult {
    let want = format!("{}/tcp", subject.target.port);
    let ports: Vec<&String> =
        image["Config"]["ExposedPorts"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
    if ports.iter().any(|p| **p == want) {
        Ok(want)
    } else {
        Err(fail(format!("EXPOSE {want}"), format!("exposed: {ports:?}")))
    }
}

pub fn healthcheck(_: &Subject, image: &Value) -> CheckResult {
    let test: Vec<&str> = image["Config"]["Healthcheck"]["Test"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match test.first() {
        None | Some(&"NONE") => Err(fail("a HEALTHCHECK", "none")),
        Some(_) => Ok(test.join(" ")),
    }
}

pub fn entrypoint(subject: &Subject, image: &Value) -> CheckResult {
    let seen: Vec<&str> = image["Config"]["Entrypoint"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let want = &subject.target.test.entrypoint;
    if seen.is_empty() {
        Err(fail(
            if want.is_empty() { "an entrypoint".to_string() } else { format!("{want:?}") },
            "none",
        ))
    } else if !want.is_empty() && seen != *want {
        Err(fail(format!("{want:?}"), format!("{seen:?}")))
    } else {
        Ok(format!("{seen:?}"))
    }
}

pub fn user(subject: &Subject, image: &Value) -> CheckResult {
    let seen = image["Config"]["User"].as_str().unwrap_or("");
    let want = &subject.target.user;
    let show = |u: &str| if u.is_empty() { "root (no USER)".to_string() } else { u.to_string() };
    if seen == want {
        Ok(show(seen))
    } else {
        Err(fail(show(want), show(seen)))
    }
}

pub fn labels(subject: &Subject, image: &Value) -> CheckResult {
    let labels = &image["Config"]["Labels"];
    let get = |key: &str| labels[key].as_str().unwrap_or("");
    let mut wrong = Vec::new();
    let mut want = |key: &str, expected: Option<&str>| {
        let seen = get(key);
        match expected {
            Some(value) if seen != value => wrong.push(format!("{key}={seen:?} (want {value:?})")),
            None if seen.is_empty() => wrong.push(format!("{key} missing")),
            _ => {}
        }
    };
    want("org.opencontainers.image.version", Some(subject.version));
    want("org.opencontainers.image.source", Some(subject.source));
    want(LABEL_TARGET, Some(subject.name));
    for key in ["revision", "created", "title", "description"] {
        want(&format!("org.opencontainers.image.{key}"), None);
    }
    if wrong.is_empty() {
        Ok(format!(
            "OCI labels of {} at {}",
            get("org.opencontainers.image.version"),
            short(get("org.opencontainers.image.revision"))
        ))
    } else {
        Err(fail("the OCI labels and the target label of the build", wrong.join("; ")))
    }
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

pub fn no_secrets(image: &Value, history: &[String]) -> CheckResult {
    let mut findings: Vec<Finding> = Vec::new();
    let env = image["Config"]["Env"].as_array().cloned().unwrap_or_default();
    for entry in env.iter().filter_map(Value::as_str) {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        findings.extend(secrets::scan_assignment(&format!("ENV {key}"), key, value));
    }
    if let Some(labels) = image["Config"]["Labels"].as_object() {
        for (key, value) in labels {
            findings.extend(secrets::scan_assignment(
                &format!("LABEL {key}"),
                key,
                value.as_str().unwrap_or(""),
            ));
        }
    }
    // `docker history` lists the newest step first; people count from the first.
    for (index, command) in history.iter().rev().enumerate() {
        findings.extend(secrets::scan_command(&format!("history step {}", index + 1), command));
    }
    if findings.is_empty() {
        Ok(format!("{} env entries, the labels and {} history steps", env.len(), history.len()))
    } else {
        let seen: Vec<String> =
            findings.iter().map(|f| format!("{}: {}", f.place, f.why)).collect();
        Err(fail("no secret-looking values in the env, labels or history", seen.join("; ")))
    }
}

fn nothing_found(found: &Value, what: &str) -> CheckResult {
    let found = found.as_array().cloned().unwrap_or_default();
    if found.is_empty() {
        return Ok(what.to_string());
    }
    let seen: Vec<String> = found
        .iter()
        .map(|f| {
            format!(
                "{} ({} files, {})",
                f["path"].as_str().unwrap_or("?"),
                f["files"],
                human_bytes(f["bytes"].as_u64().unwrap_or(0))
            )
        })
        .collect();
    Err(fail(what, seen.join(", ")))
}

/// Whether a torch index serves CPU-only wheels, like PyTorch's `…/whl/cpu`.
pub fn is_cpu_index(index: &str) -> bool {
    index.trim_end_matches('/').rsplit('/').next() == Some("cpu")
}

pub fn torch(build: TorchBuild, facts: &Value) -> CheckResult {
    if facts.is_null() {
        return Err(fail(format!("torch ({build:?} build)"), "no torch installed"));
    }
    let version = facts["version"].as_str().unwrap_or("?");
    let cuda = facts["cuda"].as_str();
    match (build, cuda) {
        (TorchBuild::Cuda, Some(cuda)) => Ok(format!("torch {version}, CUDA {cuda}")),
        (TorchBuild::Cpu, None) => Ok(format!("torch {version}, CPU only")),
        (TorchBuild::Cuda, None) => {
            Err(fail("a CUDA build of torch", format!("torch {version}, CPU only")))
        }
        (TorchBuild::Cpu, Some(cuda)) => {
            Err(fail("a CPU-only torch", format!("torch {version}, CUDA {cuda}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;
    use std::time::Duration;

    fn with_subject(name: &str, f: impl FnOnce(&Subject)) {
        let path =
            camino::Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../dockerfiles/targets.toml");
        let config = Config::load(&path).unwrap();
        let subject = Subject {
            name,
            target: config.target(name).unwrap(),
            image: "img:1".into(),
            version: "0.12.4",
            source: "https://example.invalid/src",
            health_timeout: Duration::from_secs(1),
            stop_timeout: Duration::from_secs(1),
            run_id: "t-1",
        };
        f(&subject);
    }

    fn vastai_like() -> Value {
        json!({"Config": {
            "ExposedPorts": {"7500/tcp": {}},
            "Healthcheck": {"Test": ["CMD", "healthcheck"]},
            "Entrypoint": ["tini", "--", "vastai-start"],
            "User": "",
            "Env": ["PATH=/usr/bin", "DATA_DIR=/workspace/open-webui"],
            "Labels": {
                "org.opencontainers.image.version": "0.12.4",
                "org.opencontainers.image.source": "https://example.invalid/src",
                "org.opencontainers.image.revision": "b75ff48b74b11407d266",
                "org.opencontainers.image.created": "2026-12-03T22:40:08Z",
                "org.opencontainers.image.title": "Open WebUI (vastai)",
                "org.opencontainers.image.description": "d",
                "dev.open-webui-images.target": "vastai",
            },
        }})
    }

    #[test]
    fn a_good_config_passes_every_config_check() {
        with_subject("vastai", |s| {
            let image = vastai_like();
            for check in [exposed_port, healthcheck, entrypoint, user, labels] {
                check(s, &image).unwrap();
            }
            no_secrets(&image, &["RUN |1 A=b /bin/sh -c true".into()]).unwrap();
        });
    }

    #[test]
    fn each_config_check_says_what_it_expected_and_saw() {
        with_subject("vastai", |s| {
            let mut image = vastai_like();
            image["Config"]["ExposedPorts"] = json!({"8080/tcp": {}});
            image["Config"]["Healthcheck"] = json!({"Test": ["NONE"]});
            image["Config"]["Entrypoint"] = json!(["python3"]);
            image["Config"]["User"] = json!("1000:0");
            image["Config"]["Labels"]["org.opencontainers.image.version"] = json!("0.1");
            image["Config"]["Env"] = json!(["SERVICE_PASSWORD=hunter2-not-real"]);
            let failure = exposed_port(s, &image).unwrap_err();
            assert_eq!(
                (failure.expected.as_str(), failure.seen.as_str()),
                ("EXPOSE 7500/tcp", "exposed: [\"8080/tcp\"]")
            );
            assert_eq!(healthcheck(s, &image).unwrap_err().seen, "none");
            assert_eq!(entrypoint(s, &image).unwrap_err().seen, "[\"python3\"]");
            let failure = user(s, &image).unwrap_err();
            assert_eq!(
                (failure.expected.as_str(), failure.seen.as_str()),
                ("root (no USER)", "1000:0")
            );
            assert!(labels(s, &image)
                .unwrap_err()
                .seen
                .contains("version=\"0.1\" (want \"0.12.4\")"));
            let failure = no_secrets(&image, &[]).unwrap_err();
            assert!(
                failure.seen.starts_with("ENV SERVICE_PASSWORD: SERVICE_PASSWORD has a value"),
                "{}",
                failure.seen
            );
            assert!(!failure.seen.contains("hunter2"));
        });
    }

    #[test]
    fn torch_builds_and_cpu_indexes() {
        let cuda = json!({"version": "2.15.0+cu132", "cuda": "13.2"});
        let cpu = json!({"version": "2.15.0+cpu", "cuda": null});
        assert_eq!(torch(TorchBuild::Cuda, &cuda).unwrap(), "torch 2.15.0+cu132, CUDA 13.2");
        assert_eq!(torch(TorchBuild::Cpu, &cpu).unwrap(), "torch 2.15.0+cpu, CPU only");
        assert_eq!(torch(TorchBuild::Cpu, &cuda).unwrap_err().expected, "a CPU-only torch");
        assert_eq!(torch(TorchBuild::Cuda, &Value::Null).unwrap_err().seen, "no torch installed");
        assert!(is_cpu_index("https://download.pytorch.org/whl/cpu/"));
        assert!(!is_cpu_index("") && !is_cpu_index("https://download.pytorch.org/whl/cu128"));
    }

    #[test]
    fn the_probe_runs_as_root_offline_and_carries_the_run_label() {
        with_subject("vastai", |s| {
            let text = probe_command(s).to_string();
            assert!(text.starts_with(
                "docker run --rm --network none --user 0:0 --entrypoint python3 --name t-1-vastai-probe \
                 --label dev.open-webui-images.test-run=t-1 img:1 -c "
            ), "{text}");
        });
    }
}
