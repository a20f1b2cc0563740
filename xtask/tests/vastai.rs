//! The vastai image run the way Vast.ai runs it: the image's entrypoint on an empty
//! /workspace volume with the variables Vast.ai injects, and SSH/Jupyter mode, where an
//! idle process replaces the entrypoint and the template's on-start command is run.
//!
//! By default the tests build a small twin of the image (tests/fixtures/vastai): the
//! Dockerfile's real `ollama` stage fed a stand-in Ollama bundle through the local-file
//! path, the real start-up scripts, and a stand-in for Open WebUI. With
//! VASTAI_TEST_IMAGE=REF they run against that image instead, e.g. the real one built
//! with a stand-in bundle (see docs/vastai.md).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A documentation address (RFC 5737): it only ever appears as a string in these tests.
const PUBLIC_IP: &str = "203.0.113.7";
/// The public port Vast.ai would have mapped to the internal one.
const MAPPED_PORT: &str = "40123";
const PORT: u16 = 7500;
/// No model hub is reachable from the test hosts; the real Open WebUI would wait for it.
const OFFLINE: (&str, &str) = ("OFFLINE_MODE", "true");

// Small programs run with the container's own Python, so that the same checks work on the
// fixture and on the real image, and no traffic leaves for any address but the container.

/// Prints every process as [pid, argv] in JSON.
const PROCESSES_PY: &str = r#"
import json, os
out = []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        raw = open(f'/proc/{pid}/cmdline', 'rb').read()
    except OSError:
        continue
    out.append([int(pid), [a.decode() for a in raw.split(b'\0') if a]])
print(json.dumps(out))
"#;

/// Prints the environment of process argv[1] in JSON, the secret key as its SHA-256.
const ENVIRON_PY: &str = r#"
import hashlib, json, sys
raw = open(f'/proc/{sys.argv[1]}/environ', 'rb').read()
env = dict(e.decode().split('=', 1) for e in raw.split(b'\0') if e)
if 'WEBUI_SECRET_KEY' in env:
    env['WEBUI_SECRET_KEY'] = hashlib.sha256(env['WEBUI_SECRET_KEY'].encode()).hexdigest()
print(json.dumps(env))
"#;

/// `METHOD URL TOKEN BODY`: prints the status, then the body.
const HTTP_PY: &str = r#"
import sys, urllib.error, urllib.request
method, url, token, body = sys.argv[1:]
headers = {'Content-Type': 'application/json'}
if token:
    headers['Authorization'] = 'Bearer ' + token
request = urllib.request.Request(url, data=body.encode() or None, method=method, headers=headers)
try:
    response = urllib.request.urlopen(request, timeout=30)
except urllib.error.HTTPError as error:
    response = error
print(response.status)
print(response.read().decode())
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A build context whose ollama/ folder holds the stand-in packed the way a release is
/// (`bin/ollama` and `lib/ollama/` in a .tar.zst); returns it and the bundle's SHA-256.
fn standin_context() -> (PathBuf, String) {
    let dir = temp_dir("vastai-test-context");
    let pack = dir.join("pack");
    std::fs::create_dir_all(pack.join("bin")).unwrap();
    std::fs::create_dir_all(pack.join("lib/ollama")).unwrap();
    std::fs::copy(fixture("vastai").join("standin-ollama"), pack.join("bin/ollama")).unwrap();
    std::fs::write(pack.join("lib/ollama/README"), "stand-in libraries\n").unwrap();
    std::fs::create_dir_all(dir.join("context/ollama")).unwrap();
    let bundle = dir.join("context/ollama/ollama-linux-amd64.tar.zst");
    // Fixed names, owners and times make the bundle, and so the build cache, repeatable.
    let script = "tar --sort=name --mtime=@0 --owner=0 --group=0 -C \"$1\" -cf - bin lib | zstd -q -c >\"$2\"";
    let packed = Command::new("sh").args(["-c", script, "sh"]).arg(&pack).arg(&bundle).status();
    assert!(
        packed.is_ok_and(|s| s.success()),
        "packing the stand-in needs GNU tar and zstd on the host"
    );
    let sum = Command::new("sha256sum").arg(&bundle).output().unwrap();
    let sha = text(&sum.stdout).split_whitespace().next().unwrap().to_string();
    (dir.join("context"), sha)
}

/// Builds the repository Dockerfile's `ollama` stage from `context` as `tag`.
fn build_ollama_stage(context: &Path, tag: &str, args: &[(&str, &str)]) -> Output {
    let dockerfile = repo_root().join("dockerfiles/Dockerfile");
    let mut command = Command::new("docker");
    command.args([
        "buildx",
        "build",
        "--progress",
        "plain",
        "--load",
        "--target",
        "ollama",
        "--tag",
        tag,
    ]);
    command.arg("--file").arg(dockerfile);
    for (key, value) in args {
        command.args(["--build-arg", &format!("{key}={value}")]);
    }
    command.arg(context).output().unwrap()
}

/// The image under test, and a guard that removes what was built for it.
fn image_under_test() -> (String, Images) {
    if let Ok(image) = std::env::var("VASTAI_TEST_IMAGE") {
        return (image, Images(Vec::new()));
    }
    let id = unique("vastai-test");
    let (ollama, image) = (format!("{id}-ollama:test"), format!("{id}-fixture:test"));
    let guard = Images(vec![image.clone(), ollama.clone()]);
    let (context, sha) = standin_context();
    let source = "ollama/ollama-linux-amd64.tar.zst";
    let built = build_ollama_stage(
        &context,
        &ollama,
        &[("OLLAMA_SOURCE", source), ("OLLAMA_SHA256", &sha)],
    );
    assert!(built.status.success(), "ollama stage: {}", text(&built.stderr));
    let rootfs = repo_root().join("dockerfiles/rootfs");
    let built = Command::new("docker")
        .args(["buildx", "build", "--progress", "plain", "--load", "--tag", &image])
        .args(["--build-arg", &format!("OLLAMA_IMAGE={ollama}")])
        .arg("--build-context")
        .arg(format!("rootfs={}", rootfs.display()))
        .arg(fixture("vastai"))
        .output()
        .unwrap();
    assert!(built.status.success(), "fixture image: {}", text(&built.stderr));
    (image, guard)
}

/// A container, removed with its anonymous volumes however the test ends.
struct Container(String);

impl Container {
    fn start(image: &str, env: &[(&str, &str)], volumes: &[&str], idle: bool) -> Container {
        let container = Container(unique("vastai-test-run"));
        let mut args =
            vec!["run".to_string(), "--detach".into(), "--name".into(), container.0.clone()];
        for volume in volumes {
            args.extend(["--volume".into(), volume.to_string()]);
        }
        for (key, value) in env {
            args.extend(["--env".into(), format!("{key}={value}")]);
        }
        if idle {
            // SSH/Jupyter mode: Vast.ai's own process replaces the entrypoint.
            args.extend(["--entrypoint".into(), "sleep".into()]);
        }
        args.push(image.to_string());
        if idle {
            args.push("infinity".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = docker(&args);
        assert!(started.status.success(), "docker run: {}", text(&started.stderr));
        container
    }

    fn exec(&self, command: &[&str]) -> Output {
        let mut args = vec!["exec", &self.0];
        args.extend_from_slice(command);
        docker(&args)
    }

    fn logs(&self) -> String {
        let out = docker(&["logs", &self.0]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }

    fn file(&self, path: &str) -> Option<String> {
        let out = self.exec(&["cat", path]);
        out.status.success().then(|| text(&out.stdout))
    }

    fn running(&self) -> bool {
        text(&docker(&["inspect", "--format", "{{.State.Running}}", &self.0]).stdout).trim()
            == "true"
    }

    /// Waits until the image's own health check passes; shows `log` when it does not.
    fn wait_healthy(&self, log: impl Fn() -> String) {
        let started = Instant::now();
        while !self.exec(&["healthcheck"]).status.success() {
            assert!(self.running(), "{} stopped; its log:\n{}", self.0, log());
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "not healthy in 240 s; log:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Every process in the container as (pid, argv).
    fn processes(&self) -> Vec<(u32, Vec<String>)> {
        let out = self.exec(&["python3", "-c", PROCESSES_PY]);
        serde_json::from_slice(&out.stdout).expect("process list")
    }

    /// Pids of the processes that run `PROGRAM serve`, whatever interpreter runs them.
    fn serving(&self, program: &str) -> Vec<u32> {
        self.processes()
            .into_iter()
            .filter(|(_, argv)| {
                argv.windows(2).any(|w| {
                    (w[0] == program || w[0].ends_with(&format!("/{program}"))) && w[1] == "serve"
                })
            })
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Open WebUI's environment, with the secret key replaced by its SHA-256.
    fn webui_env(&self) -> BTreeMap<String, String> {
        let pids = self.serving("open-webui");
        assert_eq!(pids.len(), 1, "one Open WebUI process: {:?}", self.processes());
        let out = self.exec(&["python3", "-c", ENVIRON_PY, &pids[0].to_string()]);
        serde_json::from_slice(&out.stdout).expect("environment")
    }

    /// An HTTP request to a port inside the container: (status, JSON body).
    fn http(&self, method: &str, port: u16, path: &str, token: &str, body: &str) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{port}{path}");
        let out = self.exec(&["python3", "-c", HTTP_PY, method, &url, token, body]);
        let stdout = text(&out.stdout);
        let (status, rest) = stdout.split_once('\n').unwrap_or(("0", ""));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(rest.trim()).unwrap_or(Value::Null),
        )
    }

    fn signup(&self, email: &str) -> String {
        let body = format!(r#"{{"name":"Test","email":"{email}","password":"a-test-password-1"}}"#);
        let (status, answer) = self.http("POST", PORT, "/api/v1/auths/signup", "", &body);
        assert_eq!(status, 200, "sign-up: {answer}");
        answer["token"].as_str().expect("a token").to_string()
    }

    fn signed_in_as(&self, token: &str) -> Option<String> {
        let (status, answer) = self.http("GET", PORT, "/api/v1/auths/", token, "");
        (status == 200).then(|| answer["email"].as_str().unwrap_or_default().to_string())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "--force", "--volumes", &self.0]);
    }
}

struct Volume(String);

impl Volume {
    fn new() -> Volume {
        let volume = Volume(unique("vastai-test-disk"));
        assert!(docker(&["volume", "create", &volume.0]).status.success());
        volume
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = docker(&["volume", "rm", "--force", &self.0]);
    }
}

#[test]
fn entrypoint_mode_on_an_empty_workspace() {
    if !docker_or_skip("entrypoint_mode_on_an_empty_workspace") {
        return;
    }
    let (image, _images) = image_under_test();
    let disk = Volume::new();
    let token = unique("open-button-token");
    // The provisioning hook given by path: a file the template would have put there.
    let hook = temp_dir("vastai-test-hook").join("provision.sh");
    std::fs::write(&hook, "echo provisioned in entrypoint mode\n").unwrap();
    let hook_mount = format!("{}:/opt/hook/provision.sh:ro", hook.display());
    let env = [
        ("PROVISIONING_SCRIPT", "/opt/hook/provision.sh"),
        ("VAST_TCP_PORT_7500", MAPPED_PORT),
        ("PUBLIC_IPADDR", PUBLIC_IP),
        ("OPEN_BUTTON_TOKEN", token.as_str()),
        ("OLLAMA_PULL_MODELS", "tiny:1b,other"),
        ("WEBUI_AUTH", "False"),
        OFFLINE,
    ];
    let disk_mount = format!("{}:/workspace", disk.0);
    let mounts = [disk_mount.as_str(), hook_mount.as_str()];
    let first = Container::start(&image, &env, &mounts, false);
    first.wait_healthy(|| first.logs());

    let logs = first.logs();
    let url = format!("http://{PUBLIC_IP}:{MAPPED_PORT}");
    assert!(logs.contains(&format!("vastai: Open WebUI public URL: {url}")), "{logs}");
    assert!(logs.contains("WEBUI_AUTH=False ignored"), "{logs}");
    assert!(!logs.contains(&token), "the access token must not be logged");
    let webui = first.webui_env();
    assert_eq!(webui["WEBUI_URL"], url);
    assert_eq!(webui["WEBUI_AUTH"], "True", "a public address always needs sign-in");
    assert_eq!(webui["OLLAMA_BASE_URL"], "http://127.0.0.1:11434");
    assert_eq!(webui["DATA_DIR"], "/workspace/open-webui");
    assert!(webui["HF_HOME"].starts_with("/workspace/"), "{webui:?}");
    let key = webui["WEBUI_SECRET_KEY"].clone();
    assert_ne!(key.len(), 0);

    // Ollama was installed from the bundle, started before Open WebUI and waited for.
    assert!(first.exec(&["test", "-x", "/usr/bin/ollama"]).status.success());
    assert!(first.exec(&["test", "-d", "/usr/lib/ollama"]).status.success());
    let provisioned = logs.find("provisioning: provisioned in entrypoint mode").expect("hook ran");
    let ollama_up = logs.find("vastai: Ollama answers at").expect("Ollama was waited for");
    assert!(provisioned < ollama_up, "provisioning runs before the services: {logs}");
    let webui_start = logs.find("vastai: starting Open WebUI").expect("Open WebUI started");
    assert!(ollama_up < webui_start, "{logs}");
    let started = Instant::now();
    while first.file("/workspace/ollama/models/manifests/other").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "models not pulled:\n{}",
            first.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A user signs up; a restart keeps the user, and the key signs the same sessions.
    let session = first.signup("someone@example.com");
    assert!(
        first.file("/workspace/open-webui/webui.db").is_some(),
        "the database lives on the disk"
    );
    assert!(docker(&["restart", &first.0]).status.success());
    first.wait_healthy(|| first.logs());
    assert_eq!(first.webui_env()["WEBUI_SECRET_KEY"], key);
    assert_eq!(first.signed_in_as(&session).as_deref(), Some("someone@example.com"));
    let logs = first.logs();
    assert_eq!(logs.matches("provisioning: provisioned").count(), 1, "{logs}");
    assert!(logs.contains("provisioning already ran in this container"), "{logs}");

    // docker stop ends both services cleanly and quickly.
    let stopping = Instant::now();
    assert!(docker(&["stop", "--time", "30", &first.0]).status.success());
    assert!(stopping.elapsed() < Duration::from_secs(25), "stop took {:?}", stopping.elapsed());
    let code = docker(&["inspect", "--format", "{{.State.ExitCode}}", &first.0]);
    assert_eq!(text(&code.stdout).trim(), "0", "{}", first.logs());
    // The supervisor's last word comes after both services are gone.
    let stdout = text(&docker(&["logs", &first.0]).stdout);
    assert_eq!(stdout.lines().last(), Some("vastai: stopped"), "{stdout}");
    drop(first);

    // A new instance on the same disk finds the users and the key again.
    let second = Container::start(&image, &env, &mounts, false);
    second.wait_healthy(|| second.logs());
    assert_eq!(second.signed_in_as(&session).as_deref(), Some("someone@example.com"));
    assert_eq!(second.webui_env()["WEBUI_SECRET_KEY"], key);
}

#[test]
fn on_start_mode_starts_the_services_once() {
    if !docker_or_skip("on_start_mode_starts_the_services_once") {
        return;
    }
    let (image, _images) = image_under_test();
    let disk = Volume::new();
    // The disk mounted elsewhere: WORKSPACE moves all the state with it. The provisioning
    // hook is given by URL, served from inside the container.
    const HOOK_URL: &str = "http://127.0.0.1:8999/provision.sh";
    let env = [("WORKSPACE", "/data"), ("PROVISIONING_SCRIPT", HOOK_URL), OFFLINE];
    let container = Container::start(&image, &env, &[&format!("{}:/data", disk.0)], true);
    let log = || container.file("/var/log/open-webui-vastai.log").unwrap_or_default();
    let script = "printf 'echo hello from provisioning\\necho ran >>/data/provisioned-count\\n' >/data/provision.sh";
    assert!(container.exec(&["sh", "-c", script]).status.success());
    let serve = ["python3", "-m", "http.server", "8999", "--bind", "127.0.0.1", "--directory", "/data"];
    assert!(docker(&[&["exec", "--detach", &container.0][..], &serve].concat()).status.success());
    let started = Instant::now();
    while container.http("GET", 8999, "/", "", "").0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(20), "the hook server did not start");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Vast.ai may run the on-start command again; both return at once and succeed.
    for _ in 0..2 {
        let started = Instant::now();
        let out = container.exec(&["vastai-on-start"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(10), "on-start must return at once");
    }
    container.wait_healthy(log);
    let again = container.exec(&["vastai-on-start"]);
    assert!(text(&again.stdout).contains("already running"), "{}", text(&again.stdout));
    assert_eq!(container.serving("open-webui").len(), 1, "{:?}", container.processes());
    assert_eq!(container.serving("ollama").len(), 1, "{:?}", container.processes());
    assert!(log().contains("provisioning: hello from provisioning"), "{}", log());
    let webui = container.webui_env();
    assert_eq!(webui["DATA_DIR"], "/data/open-webui");
    assert_eq!(webui["OLLAMA_MODELS"], "/data/ollama/models");
    assert!(!webui.contains_key("WEBUI_URL"), "no public address, no public URL");
    // Without WEBUI_SECRET_KEY or OPEN_BUTTON_TOKEN the key is generated onto the disk.
    assert!(container.file("/data/open-webui/.webui_secret_key").is_some());
    assert!(container.file("/workspace/open-webui/webui.db").is_none());

    // Ollama killed: the supervisor starts it again, and it answers again.
    let before = container.serving("ollama");
    assert!(container
        .exec(&["sh", "-c", "kill -KILL \"$1\"", "sh", &before[0].to_string()])
        .status
        .success());
    let started = Instant::now();
    loop {
        let now = container.serving("ollama");
        if now.len() == 1
            && now != before
            && container.http("GET", 11434, "/api/version", "", "").0 == 200
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "Ollama not restarted:\n{}", log());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(log().contains("ollama exited (status 137); restarting it in 1s"), "{}", log());

    // A restart of the instance: on-start again brings the services back, once, and
    // the provisioning script does not run a second time.
    assert!(docker(&["restart", "--time", "1", &container.0]).status.success());
    assert!(container.exec(&["vastai-on-start"]).status.success());
    assert!(container.exec(&["vastai-on-start"]).status.success());
    container.wait_healthy(log);
    assert_eq!(container.serving("open-webui").len(), 1, "{:?}", container.processes());
    assert!(log().contains("provisioning already ran in this container"), "{}", log());
    assert_eq!(container.file("/data/provisioned-count").as_deref(), Some("ran\n"));
}

#[test]
fn a_bad_bundle_fails_the_build_with_a_clear_message() {
    if !docker_or_skip("a_bad_bundle_fails_the_build_with_a_clear_message") {
        return;
    }
    let (context, sha) = standin_context();
    let tag = format!("{}:test", unique("vastai-test-bad"));
    let _images = Images(vec![tag.clone()]);
    let wrong = if sha == "0".repeat(64) { "1".repeat(64) } else { "0".repeat(64) };
    let source = "ollama/ollama-linux-amd64.tar.zst";
    let cases = [
        (vec![("OLLAMA_SOURCE", source), ("OLLAMA_SHA256", wrong.as_str())], "checksum mismatch"),
        (
            vec![("OLLAMA_SOURCE", "ollama/missing.tar.zst"), ("OLLAMA_SHA256", sha.as_str())],
            "no such file",
        ),
        (vec![("OLLAMA_VERSION", "0.0.1")], "OLLAMA_SHA256 is empty"),
        (
            vec![("OLLAMA_SOURCE", "/etc/passwd"), ("OLLAMA_SHA256", sha.as_str())],
            "give a URL or a file",
        ),
    ];
    for (args, message) in cases {
        let built = build_ollama_stage(&context, &tag, &args);
        let stderr = text(&built.stderr);
        assert!(!built.status.success(), "{args:?} must fail the build");
        assert!(
            stderr.lines().any(|l| l.contains("ollama stage:") && l.contains(message)),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        !docker(&["image", "inspect", &tag]).status.success(),
        "a failed build leaves no image"
    );
}

#[test]
fn vast_template_reads_the_image_and_the_targets_file() {
    if !docker_or_skip("vast_template_reads_the_image_and_the_targets_file") {
        return;
    }
    let (image, _images) = image_under_test();
    let out =
        xtask(&["vast-template", "--image", &image, "--format", "json", "--model-space", "20"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let template: Value = serde_json::from_slice(&out.stdout).unwrap();
    let size = text(&docker(&["image", "inspect", "--format", "{{.Size}}", &image]).stdout);
    let size: u64 = size.trim().parse().unwrap();
    assert_eq!(template["image"], image.as_str());
    assert_eq!(template["image_size_bytes"], size);
    assert_eq!(template["docker_options"], "-p 7500:7500");
    assert_eq!(template["on_start"], "/usr/local/bin/vastai-on-start");
    let disk = template["disk_gb"].as_u64().unwrap();
    assert!(
        disk * 1_000_000_000 >= size + 30_000_000_000 && disk % 5 == 0,
        "{disk} GB for {size} bytes"
    );
    // The on-start command it names exists in the image and is executable.
    let probe = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "test",
        &image,
        "-x",
        "/usr/local/bin/vastai-on-start",
    ]);
    assert!(probe.status.success());

    // Another target's port, or an image that is not there: one line, non-zero.
    for args in [
        vec!["vast-template", "default", "--image", image.as_str()],
        vec!["vast-template", "--image", "vastai-test-absent:none"],
    ] {
        let out = xtask(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

/// The fixture stands in for the vastai stage, so it must carry the same settings.
#[test]
fn the_fixture_has_the_settings_of_the_vastai_stage() {
    let real = std::fs::read_to_string(repo_root().join("dockerfiles/Dockerfile")).unwrap();
    let twin = std::fs::read_to_string(fixture("vastai").join("Dockerfile")).unwrap();
    let stage = &real[real.find("FROM cuda AS vastai").expect("the vastai stage")..];
    let mut settings = Vec::new();
    for line in stage.lines().map(str::trim) {
        if ["EXPOSE", "VOLUME", "ENTRYPOINT"].iter().any(|k| line.starts_with(k)) {
            settings.push(line.to_string());
        }
        // KEY=VALUE words of ENV and LABEL lines and their continuations.
        let words = line.split_whitespace().map(|w| w.trim_end_matches('\\'));
        settings.extend(words.filter(|w| w.contains('=') && !w.starts_with("--")).map(String::from));
    }
    assert!(settings.len() >= 7, "{settings:?}");
    for setting in settings {
        assert!(twin.contains(&setting), "the fixture Dockerfile lacks {setting:?}");
    }
}
