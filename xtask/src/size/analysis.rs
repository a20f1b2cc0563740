//! From the layers of an image to a report: what each layer adds, where the bytes of the
//! final filesystem are, which bytes are waste, and which known offenders it ships.
//!
//! Waste is counted once: a copy of a file in a lower layer is waste when a later layer
//! deletes it (a whiteout, an opaque directory, a file put where a directory was) or
//! writes that path again (an edit, a `chown`, a `chmod`). The copy that survives in the
//! final filesystem is not waste, and a file written once is never waste.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::image::{EntryKind, Saved};

/// How many rows of each list the report keeps.
pub const KEEP: usize = 40;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The target from the targets file, when the image is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub image: String,
    pub id: String,
    /// What `docker image inspect` calls Size: every layer's bytes added up.
    pub total_bytes: u64,
    /// The gzip-compressed layers: what a registry transfer moves.
    pub compressed_bytes: u64,
    pub layers: Vec<LayerReport>,
    /// Where the bytes of the final filesystem are, largest first.
    pub groups: Vec<PathBytes>,
    pub largest_files: Vec<PathBytes>,
    pub waste_bytes: u64,
    /// Number of lower-layer copies that are waste; `waste` lists the largest.
    pub waste_files: u64,
    pub waste: Vec<Waste>,
    pub offenders: Vec<Offender>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LayerReport {
    pub digest: String,
    pub bytes: u64,
    pub compressed_bytes: u64,
    pub files: u64,
    /// The Dockerfile line that made the layer, as the image history records it.
    pub instruction: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PathBytes {
    pub path: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Waste {
    pub path: String,
    pub bytes: u64,
    /// The layer (from 1) holding the copy that is waste.
    pub layer: usize,
    /// The later layer that deletes or rewrites it.
    pub by_layer: usize,
    /// `deleted` or `overwritten`.
    pub how: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Offender {
    /// `cache`, `model-weights` or `cuda-in-cpu-image`.
    pub kind: String,
    pub path: String,
    pub bytes: u64,
}

pub struct Options {
    /// Model weight files from this size on are flagged.
    pub weights_threshold: u64,
    /// The image is meant for CPU, so NVIDIA/CUDA libraries in it are dead weight.
    pub cpu_only: bool,
}

/// Directories whose contents are package-manager caches, found anywhere in a path.
const CACHES: [&str; 7] =
    ["/.cache/pip", "/.cache/uv", "/var/lib/apt/lists", "/var/cache/apt", "/.npm/_cacache", "/.cache/yarn", "/tmp"];
/// Extensions of model weight files.
const WEIGHTS: [&str; 9] = ["safetensors", "gguf", "onnx", "pt", "pth", "ckpt", "h5", "tflite", "msgpack"];

struct Copy {
    bytes: u64,
    layer: usize,
}

pub fn analyse(image: &str, id: &str, saved: &Saved, options: &Options) -> Report {
    let instructions = instructions(saved);
    let mut tree: BTreeMap<String, Copy> = BTreeMap::new();
    let mut waste: Vec<Waste> = Vec::new();
    let mut layers = Vec::new();

    for (index, layer) in saved.layers.iter().enumerate() {
        let number = index + 1;
        // Deletions first: they hide what the lower layers hold, never this layer's files.
        for entry in &layer.entries {
            match entry.kind {
                EntryKind::Whiteout => {
                    remove(&mut tree, &entry.path, true, number, "deleted", &mut waste);
                }
                EntryKind::Opaque => {
                    let below = if entry.path == "/" { String::new() } else { entry.path.clone() };
                    remove_below(&mut tree, &below, number, "deleted", &mut waste);
                }
                _ => {}
            }
        }
        let (mut bytes, mut files) = (0, 0);
        for entry in &layer.entries {
            match entry.kind {
                EntryKind::File(size) => {
                    bytes += size;
                    files += 1;
                    // A file where a directory was hides everything below it.
                    remove_below(&mut tree, &entry.path, number, "deleted", &mut waste);
                    if let Some(old) = tree.insert(entry.path.clone(), Copy { bytes: size, layer: number }) {
                        if old.layer < number {
                            waste.push(waste_row(&entry.path, &old, number, "overwritten"));
                        }
                    }
                }
                EntryKind::Dir => {
                    // A directory where a file was replaces it.
                    if tree.get(&entry.path).is_some_and(|c| c.layer < number) {
                        remove(&mut tree, &entry.path, false, number, "deleted", &mut waste);
                    }
                }
                _ => {}
            }
        }
        layers.push(LayerReport {
            digest: layer.digest.clone(),
            bytes,
            compressed_bytes: layer.compressed_bytes,
            files,
            instruction: instructions.get(index).cloned().unwrap_or_default(),
        });
    }

    waste.retain(|w| w.bytes > 0);
    let waste_bytes = waste.iter().map(|w| w.bytes).sum();
    let waste_files = waste.len() as u64;
    waste.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    waste.truncate(KEEP);

    Report {
        target: None,
        image: image.to_string(),
        id: id.to_string(),
        total_bytes: layers.iter().map(|l| l.bytes).sum(),
        compressed_bytes: layers.iter().map(|l| l.compressed_bytes).sum(),
        layers,
        groups: largest(group_sizes(&tree)),
        largest_files: largest(tree.iter().map(|(p, c)| (p.clone(), c.bytes)).collect()),
        waste_bytes,
        waste_files,
        waste,
        offenders: offenders(&tree, options),
    }
}

fn waste_row(path: &str, copy: &Copy, by_layer: usize, how: &str) -> Waste {
    Waste { path: path.to_string(), bytes: copy.bytes, layer: copy.layer, by_layer, how: how.to_string() }
}

/// Removes `path` (and, when `with_children`, all below it) from the lower layers.
fn remove(tree: &mut BTreeMap<String, Copy>, path: &str, with_children: bool, by: usize, how: &str, waste: &mut Vec<Waste>) {
    if tree.get(path).is_some_and(|c| c.layer < by) {
        let copy = tree.remove(path).expect("the path was just found");
        waste.push(waste_row(path, &copy, by, how));
    }
    if with_children {
        remove_below(tree, path, by, how, waste);
    }
}

/// Removes everything below directory `dir` ("" for the root) that lower layers put there.
fn remove_below(tree: &mut BTreeMap<String, Copy>, dir: &str, by: usize, how: &str, waste: &mut Vec<Waste>) {
    let prefix = format!("{dir}/");
    let doomed: Vec<String> = tree
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .filter(|(_, c)| c.layer < by)
        .map(|(p, _)| p.clone())
        .collect();
    for path in doomed {
        let copy = tree.remove(&path).expect("the path was just listed");
        waste.push(waste_row(&path, &copy, by, how));
    }
}

/// The instruction behind each layer: history entries that made no layer are skipped.
fn instructions(saved: &Saved) -> Vec<String> {
    saved.config.history.iter().filter(|h| !h.empty_layer).map(|h| tidy(&h.created_by)).collect()
}

/// `RUN |2 A=1 B= /bin/sh -c CMD` becomes `RUN CMD`, `COPY x / # buildkit` `COPY x /`.
pub fn tidy(created_by: &str) -> String {
    let mut text = created_by.trim().trim_end_matches("# buildkit").trim().to_string();
    if let Some(rest) = text.strip_prefix("RUN |") {
        // `|N` build arguments precede the shell; they are recorded, not part of the line.
        if let Some(at) = rest.find("/bin/sh -c ") {
            text = format!("RUN {}", &rest[at + "/bin/sh -c ".len()..]);
        }
    } else if let Some(rest) = text.strip_prefix("/bin/sh -c #(nop) ") {
        text = rest.trim().to_string();
    } else if let Some(rest) = text.strip_prefix("/bin/sh -c ") {
        text = format!("RUN {rest}");
    } else if let Some(rest) = text.strip_prefix("RUN /bin/sh -c ") {
        text = format!("RUN {rest}");
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let text = words.join(" ");
    if text.is_empty() { "(base image)".to_string() } else { text }
}

/// The bucket a file's bytes are shown under: one Python package in a site-packages
/// (each NVIDIA library on its own), else its directory three levels down.
pub fn group_of(path: &str) -> String {
    if let Some(at) = path.find("/site-packages/") {
        let base = &path[..at + "/site-packages".len()];
        let mut rest = path[base.len() + 1..].split('/');
        let first = rest.next().unwrap_or_default();
        let has_more = path[base.len() + 1..].contains('/');
        return match (first, rest.next()) {
            ("nvidia", Some(second)) if has_more => format!("{base}/nvidia/{second}"),
            _ if !has_more => format!("{base} (loose files)"),
            _ => format!("{base}/{first}"),
        };
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let depth = parts.len().saturating_sub(1).clamp(1, 3);
    format!("/{}", parts[..depth.min(parts.len())].join("/"))
}

fn group_sizes(tree: &BTreeMap<String, Copy>) -> Vec<(String, u64)> {
    let mut groups: HashMap<String, u64> = HashMap::new();
    for (path, copy) in tree {
        *groups.entry(group_of(path)).or_default() += copy.bytes;
    }
    groups.into_iter().collect()
}

fn largest(mut rows: Vec<(String, u64)>) -> Vec<PathBytes> {
    rows.retain(|(_, bytes)| *bytes > 0);
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(KEEP);
    rows.into_iter().map(|(path, bytes)| PathBytes { path, bytes }).collect()
}

fn offenders(tree: &BTreeMap<String, Copy>, options: &Options) -> Vec<Offender> {
    let mut found: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (path, copy) in tree {
        if let Some(root) = cache_root(path) {
            *found.entry(("cache".into(), root)).or_default() += copy.bytes;
        }
        if copy.bytes >= options.weights_threshold && is_weights(path) {
            *found.entry(("model-weights".into(), path.clone())).or_default() += copy.bytes;
        }
        if options.cpu_only {
            if let Some(library) = cuda_library(path) {
                *found.entry(("cuda-in-cpu-image".into(), library)).or_default() += copy.bytes;
            }
        }
    }
    let mut offenders: Vec<Offender> = found
        .into_iter()
        .filter(|(_, bytes)| *bytes > 0)
        .map(|((kind, path), bytes)| Offender { kind, path, bytes })
        .collect();
    offenders.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    offenders
}

fn cache_root(path: &str) -> Option<String> {
    CACHES.iter().find_map(|cache| {
        let at = path.find(&format!("{cache}/"))?;
        // `/tmp` only at the top: a package's own `tmp` folder is not a cache.
        (*cache != "/tmp" || at == 0).then(|| path[..at + cache.len()].to_string())
    })
}

fn is_weights(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    // `.bin` is too common to flag alone; PyTorch and transformers name theirs this way.
    WEIGHTS.contains(&extension.as_str()) || (extension == "bin" && name.contains("model"))
}

/// The NVIDIA package or CUDA library a path belongs to, if any.
fn cuda_library(path: &str) -> Option<String> {
    if let Some(at) = path.find("/site-packages/nvidia/") {
        let base = &path[..at + "/site-packages/nvidia/".len()];
        let name = path[base.len()..].split('/').next()?;
        return Some(format!("{base}{name}"));
    }
    if let Some(at) = path.find("/site-packages/triton/") {
        return Some(path[..at + "/site-packages/triton".len()].to_string());
    }
    let name = path.rsplit('/').next()?;
    let cuda = ["libcudart", "libcublas", "libcudnn", "libcufft", "libcurand", "libcusparse", "libcusolver", "libnccl", "libnvrtc"];
    cuda.iter().any(|lib| name.starts_with(lib)).then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::image::{Config, Entry, History, Layer};
    use super::*;

    fn file(path: &str, size: u64) -> Entry {
        Entry { path: path.into(), kind: EntryKind::File(size) }
    }

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry { path: path.into(), kind }
    }

    fn image(layers: Vec<Vec<Entry>>) -> Saved {
        let history = (0..layers.len()).map(|i| History { created_by: format!("RUN step{i}"), empty_layer: false }).collect();
        let layers = layers
            .into_iter()
            .enumerate()
            .map(|(i, entries)| Layer { digest: format!("sha256:{i}"), compressed_bytes: 10, entries })
            .collect();
        Saved { config: Config { history }, layers }
    }

    fn report(saved: &Saved) -> Report {
        analyse("img", "sha256:x", saved, &Options { weights_threshold: 1000, cpu_only: true })
    }

    #[test]
    fn waste_counts_each_dead_copy_once_and_never_the_survivor() {
        let saved = image(vec![
            vec![file("/kept", 5), file("/gone", 100), file("/edited", 30), entry("/dir", EntryKind::Dir), file("/dir/a", 7)],
            vec![entry("/gone", EntryKind::Whiteout), file("/edited", 40)],
            vec![file("/edited", 50), entry("/dir", EntryKind::Opaque), file("/dir/b", 1)],
        ]);
        let report = report(&saved);
        assert_eq!(report.waste_bytes, 100 + 30 + 40 + 7);
        assert_eq!(report.waste_files, 4);
        let rows: Vec<(&str, u64, usize, usize, &str)> =
            report.waste.iter().map(|w| (w.path.as_str(), w.bytes, w.layer, w.by_layer, w.how.as_str())).collect();
        assert_eq!(
            rows,
            [
                ("/gone", 100, 1, 2, "deleted"),
                ("/edited", 40, 2, 3, "overwritten"),
                ("/edited", 30, 1, 2, "overwritten"),
                ("/dir/a", 7, 1, 3, "deleted"),
            ]
        );
        assert_eq!(report.total_bytes, 142 + 40 + 51);
        assert_eq!(report.layers[1].instruction, "RUN step1");
        assert_eq!(report.compressed_bytes, 30);
    }

    #[test]
    fn deleting_a_directory_wastes_everything_below_it() {
        let saved = image(vec![vec![file("/d/x/1", 10), file("/d/x/2", 20), file("/d/y", 1)], vec![entry("/d/x", EntryKind::Whiteout)]]);
        let report = report(&saved);
        assert_eq!(report.waste_bytes, 30);
        assert_eq!(report.largest_files, [PathBytes { path: "/d/y".into(), bytes: 1 }]);
    }

    #[test]
    fn groups_split_site_packages_by_package() {
        let sp = "/opt/venv/lib/python3.11/site-packages";
        assert_eq!(group_of(&format!("{sp}/torch/lib/libtorch.so")), format!("{sp}/torch"));
        assert_eq!(group_of(&format!("{sp}/nvidia/cublas/lib/x.so")), format!("{sp}/nvidia/cublas"));
        assert_eq!(group_of(&format!("{sp}/six.py")), format!("{sp} (loose files)"));
        assert_eq!(group_of("/usr/lib/x86_64-linux-gnu/libc.so.6"), "/usr/lib/x86_64-linux-gnu");
        assert_eq!(group_of("/etc/passwd"), "/etc");
        assert_eq!(group_of("/kept"), "/kept");
    }

    #[test]
    fn offenders_are_flagged() {
        let sp = "/opt/venv/lib/python3.11/site-packages";
        let saved = image(vec![vec![
            file("/root/.cache/pip/http/a", 300),
            file("/var/lib/apt/lists/deb_Packages", 200),
            file("/models/encoder.safetensors", 5000),
            file("/models/small.onnx", 10),
            file("/models/pytorch_model.bin", 2000),
            file(&format!("{sp}/nvidia/cudnn/lib/libcudnn.so.9"), 9000),
            file("/usr/lib/tmp/x", 1),
        ]]);
        let report = report(&saved);
        let rows: Vec<(&str, &str, u64)> = report.offenders.iter().map(|o| (o.kind.as_str(), o.path.as_str(), o.bytes)).collect();
        assert_eq!(
            rows,
            [
                ("cuda-in-cpu-image", &format!("{sp}/nvidia/cudnn")[..], 9000),
                ("model-weights", "/models/encoder.safetensors", 5000),
                ("model-weights", "/models/pytorch_model.bin", 2000),
                ("cache", "/root/.cache/pip", 300),
                ("cache", "/var/lib/apt/lists", 200),
            ]
        );
    }

    #[test]
    fn instructions_read_like_the_dockerfile() {
        assert_eq!(tidy("RUN |2 A=1 B= /bin/sh -c apt-get   update # buildkit"), "RUN apt-get update");
        assert_eq!(tidy("COPY rootfs/ / # buildkit"), "COPY rootfs/ /");
        assert_eq!(tidy("/bin/sh -c #(nop) ADD file:abc in / "), "ADD file:abc in /");
        assert_eq!(tidy(""), "(base image)");
    }
}
