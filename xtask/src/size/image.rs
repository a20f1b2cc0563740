//! Reads an image as `docker save` streams it: an archive of blobs (the layer archives,
//! the config, the manifest) in an order that is not the layer order. Each layer is
//! reduced to its list of members while it streams past, and its bytes are handed to
//! compression threads that measure what gzip would make of it, so memory stays small
//! whatever the image weighs.

use std::collections::HashMap;
use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use anyhow::{bail, Context, Result};
use flate2::{Compress, Compression, FlushCompress};
use serde::Deserialize;

use super::tar::{self, Kind};
use crate::docker::CommandLine;

/// Small blobs (config, manifest, empty layers) are kept whole until the manifest says
/// what they are; bigger ones can only be layers and are read as they stream.
const SMALL_BLOB: u64 = 4 << 20;
/// Each chunk is compressed on its own; at this size the lost context at chunk edges
/// changes the total by far less than 0.1%.
const CHUNK: usize = 1 << 20;
/// Big layers are sampled: their first chunks, then one chunk in every few, and the ratio
/// found applies to the rest. Compressing every byte of an 8 GB image takes two cores
/// several minutes, longer than `docker save` takes to stream it; the sample keeps up.
const ALWAYS_COMPRESSED: usize = 64;
const SAMPLE_EVERY: usize = 2;
/// gzip's header and trailer around each layer's deflate stream.
const GZIP_FRAME: u64 = 18;
/// The level registries see from `docker push` and BuildKit (gzip's default).
const GZIP_LEVEL: u32 = 6;

/// What one layer archive holds, in archive order.
pub struct Layer {
    /// The layer's digest as the manifest names it.
    pub digest: String,
    /// Estimated size of the gzip-compressed archive, what a registry transfer moves
    /// (gzip's own level-6 output differs from it by a percent or two).
    pub compressed_bytes: u64,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Absolute, without a trailing slash: `/usr/bin/python3`.
    pub path: String,
    pub kind: EntryKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A file's bytes: regular files, and symlinks counted by their target's length as
    /// Docker counts them; hard links are 0 (their data is counted once).
    File(u64),
    Dir,
    /// `.wh.NAME`: the lower layers' `NAME` (and all below it) is deleted.
    Whiteout,
    /// `.wh..wh..opq` in a directory: the lower layers' contents of it are hidden.
    Opaque,
}

/// The image's config: only what the report needs.
#[derive(Deserialize, Default)]
pub struct Config {
    #[serde(default)]
    pub history: Vec<History>,
}

#[derive(Deserialize)]
pub struct History {
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub empty_layer: bool,
}

pub struct Saved {
    pub config: Config,
    pub layers: Vec<Layer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Manifest {
    config: String,
    layers: Vec<String>,
}

/// The query that streams the image; never echoed, it changes nothing.
pub fn save_command(image: &str) -> CommandLine {
    CommandLine::docker().args(["save", image])
}

/// Streams `docker save IMAGE` and reads every layer.
pub fn read(image: &str) -> Result<Saved> {
    let line = save_command(image);
    let mut child = Command::new(&line.program)
        .args(&line.args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {line}"))?;
    let stdout = child.stdout.take().context("docker save has no output")?;
    let result = read_archive(io::BufReader::with_capacity(1 << 20, stdout));
    let output = child.wait_with_output().with_context(|| format!("cannot run {line}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
        bail!("`{line}` failed: {first}");
    }
    result.with_context(|| format!("cannot read the output of `{line}`"))
}

/// Reads a `docker save` archive: the OCI layout of Docker 25 and later, or the older
/// `ID/layer.tar` layout (where repeated layers are symlinks to the first copy).
pub fn read_archive(input: impl Read) -> Result<Saved> {
    let pool = Pool::start();
    let mut outer = tar::Reader::new(input);
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let mut streamed: HashMap<String, (u64, Vec<Entry>, usize)> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    while let Some(member) = outer.next()? {
        let path = member.path.trim_start_matches("./").to_string();
        match member.kind {
            Kind::File if member.size <= SMALL_BLOB => {
                small.insert(path, outer.read_contents(member.size, SMALL_BLOB)?);
            }
            Kind::File => {
                let job = pool.job();
                let mut tee = Tee::new(outer.contents(member.size), &pool, job);
                let entries = read_layer(&mut tee).with_context(|| format!("cannot read layer {path}"))?;
                io::copy(&mut tee, &mut io::sink())?;
                tee.flush();
                streamed.insert(path, (member.size, entries, job));
            }
            Kind::Symlink | Kind::HardLink => {
                links.insert(path.clone(), resolve(&path, &member.link, member.kind));
            }
            _ => {}
        }
    }
    let manifest = small.get("manifest.json").context("the archive has no manifest.json")?;
    let mut manifests: Vec<Manifest> = serde_json::from_slice(manifest).context("manifest.json does not parse")?;
    let manifest = manifests.pop().context("manifest.json names no image")?;
    let config = small.get(&manifest.config).context("the archive lacks the image config")?;
    let config: Config = serde_json::from_slice(config).context("the image config does not parse")?;

    // Small layers were kept whole; read them now, in the same way.
    let mut jobs = Vec::new();
    for path in &manifest.layers {
        let path = links.get(path).unwrap_or(path);
        if streamed.contains_key(path) {
            jobs.push(path.clone());
            continue;
        }
        let data = small.get(path).with_context(|| format!("the archive lacks layer {path}"))?;
        let job = pool.job();
        let mut tee = Tee::new(&data[..], &pool, job);
        let entries = read_layer(&mut tee).with_context(|| format!("cannot read layer {path}"))?;
        io::copy(&mut tee, &mut io::sink())?;
        tee.flush();
        streamed.insert(path.clone(), (data.len() as u64, entries, job));
        jobs.push(path.clone());
    }
    let compressed = pool.finish();
    let layers = jobs
        .iter()
        .map(|path| {
            let (_, entries, job) = &streamed[path];
            let digest = path.rsplit('/').next().unwrap_or(path);
            let digest = if path.starts_with("blobs/") { format!("sha256:{digest}") } else { path.clone() };
            Layer { digest, compressed_bytes: compressed[*job] + GZIP_FRAME, entries: entries.clone() }
        })
        .collect();
    Ok(Saved { config, layers })
}

fn resolve(path: &str, link: &str, kind: Kind) -> String {
    if kind == Kind::HardLink {
        return link.trim_start_matches("./").to_string();
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    for part in link.split('/') {
        match part {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// The members of one layer archive, whiteouts recognised.
pub fn read_layer(input: impl Read) -> Result<Vec<Entry>> {
    let mut reader = tar::Reader::new(input);
    let mut entries = Vec::new();
    while let Some(member) = reader.next()? {
        let trimmed = member.path.trim_start_matches("./").trim_matches('/');
        if trimmed.is_empty() || trimmed == "." {
            continue;
        }
        let path = format!("/{trimmed}");
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", &path));
        let entry = if name == ".wh..wh..opq" {
            Entry { path: if parent.is_empty() { "/".into() } else { parent.to_string() }, kind: EntryKind::Opaque }
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            Entry { path: format!("{parent}/{hidden}"), kind: EntryKind::Whiteout }
        } else {
            let kind = match member.kind {
                Kind::Dir => EntryKind::Dir,
                Kind::Symlink => EntryKind::File(member.link.len() as u64),
                Kind::HardLink => EntryKind::File(0),
                Kind::File | Kind::Other => EntryKind::File(member.size),
            };
            Entry { path, kind }
        };
        entries.push(entry);
    }
    // The archive's closing blocks (and anything after them) are left to the caller.
    drop(reader.into_inner());
    Ok(entries)
}

/// Passes a layer's bytes through to the reader and, in chunks, to the compression pool.
struct Tee<'p, R> {
    inner: R,
    pool: &'p Pool,
    job: usize,
    chunk: Vec<u8>,
    chunks: usize,
}

impl<'p, R: Read> Tee<'p, R> {
    fn new(inner: R, pool: &'p Pool, job: usize) -> Self {
        Tee { inner, pool, job, chunk: Vec::with_capacity(CHUNK), chunks: 0 }
    }

    fn flush(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let sampled = self.chunks < ALWAYS_COMPRESSED || self.chunks % SAMPLE_EVERY == 0;
        self.chunks += 1;
        if sampled {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            self.pool.send(self.job, chunk);
        } else {
            self.pool.skipped(self.job, self.chunk.len() as u64);
            self.chunk.clear();
        }
    }
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() >= CHUNK {
            self.flush();
        }
        Ok(n)
    }
}

/// Per job (layer): bytes compressed, what they compressed to, and bytes not sampled.
#[derive(Clone, Copy, Default)]
struct Tally {
    input: u64,
    output: u64,
    skipped: u64,
}

impl Tally {
    /// The compressed size of the whole job, the skipped bytes at the sample's ratio.
    fn estimate(&self) -> u64 {
        if self.input == 0 {
            return 0;
        }
        let ratio = self.output as f64 / self.input as f64;
        self.output + (self.skipped as f64 * ratio).round() as u64
    }
}

/// Threads that deflate chunks and add up the compressed bytes per job (layer).
struct Pool {
    sender: Option<mpsc::SyncSender<(usize, Vec<u8>)>>,
    workers: Vec<thread::JoinHandle<()>>,
    totals: Arc<Mutex<Vec<Tally>>>,
}

impl Pool {
    fn start() -> Pool {
        let threads = thread::available_parallelism().map_or(2, |n| n.get());
        // A few chunks in flight: enough to keep every thread busy, little memory.
        let (sender, receiver) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
        let receiver = Arc::new(Mutex::new(receiver));
        let totals = Arc::new(Mutex::new(Vec::<Tally>::new()));
        let workers = (0..threads)
            .map(|_| {
                let receiver = Arc::clone(&receiver);
                let totals = Arc::clone(&totals);
                thread::spawn(move || {
                    let mut out = vec![0u8; CHUNK + CHUNK / 8 + 1024];
                    loop {
                        let Ok((job, chunk)) = receiver.lock().map(|r| r.recv()).unwrap_or(Err(mpsc::RecvError)) else {
                            return;
                        };
                        let size = deflated_size(&chunk, &mut out);
                        let mut totals = totals.lock().unwrap_or_else(|e| e.into_inner());
                        totals[job].input += chunk.len() as u64;
                        totals[job].output += size;
                    }
                })
            })
            .collect();
        Pool { sender: Some(sender), workers, totals }
    }

    fn job(&self) -> usize {
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.push(Tally::default());
        totals.len() - 1
    }

    fn skipped(&self, job: usize, bytes: u64) {
        self.totals.lock().unwrap_or_else(|e| e.into_inner())[job].skipped += bytes;
    }

    fn send(&self, job: usize, chunk: Vec<u8>) {
        if let Some(sender) = &self.sender {
            // A send fails only when every worker is gone, which `finish` reports.
            let _ = sender.send((job, chunk));
        }
    }

    fn finish(mut self) -> Vec<u64> {
        self.sender = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        let totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.iter().map(Tally::estimate).collect()
    }
}

/// Bytes of a raw deflate stream of `data` at gzip's default level.
fn deflated_size(data: &[u8], out: &mut [u8]) -> u64 {
    let mut compress = Compress::new(Compression::new(GZIP_LEVEL), false);
    let mut input = data;
    loop {
        let before_in = compress.total_in();
        let status = compress.compress(input, out, FlushCompress::Finish);
        input = &input[(compress.total_in() - before_in) as usize..];
        match status {
            Ok(flate2::Status::StreamEnd) | Err(_) => return compress.total_out(),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tar::tests::archive;
    use super::*;

    #[test]
    fn whiteouts_and_sizes() {
        let layer = archive(&[
            ("etc/", b'5', b"", ""),
            ("etc/.wh.old", b'0', b"", ""),
            ("var/.wh..wh..opq", b'0', b"", ""),
            ("./usr/bin/tool", b'0', &[1u8; 1000], ""),
            ("usr/bin/alias", b'2', b"", "tool"),
            ("usr/bin/hard", b'1', b"", "usr/bin/tool"),
        ]);
        let entries = read_layer(&layer[..]).unwrap();
        let kinds: Vec<(&str, &EntryKind)> = entries.iter().map(|e| (e.path.as_str(), &e.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("/etc", &EntryKind::Dir),
                ("/etc/old", &EntryKind::Whiteout),
                ("/var", &EntryKind::Opaque),
                ("/usr/bin/tool", &EntryKind::File(1000)),
                ("/usr/bin/alias", &EntryKind::File(4)),
                ("/usr/bin/hard", &EntryKind::File(0)),
            ]
        );
    }

    #[test]
    fn reads_an_oci_layout_in_any_order() {
        let big = archive(&[("big", b'0', &vec![0u8; (SMALL_BLOB + 10) as usize], "")]);
        let small = archive(&[("small", b'0', b"hello", "")]);
        let config = br#"{"history":[{"created_by":"ADD big"},{"created_by":"ENV A=1","empty_layer":true},{"created_by":"RUN small"}]}"#;
        let manifest = br#"[{"Config":"blobs/sha256/c","Layers":["blobs/sha256/b","blobs/sha256/s"]}]"#;
        let outer = archive(&[
            ("blobs/sha256/s", b'0', &small, ""),
            ("blobs/sha256/c", b'0', config, ""),
            ("blobs/sha256/b", b'0', &big, ""),
            ("manifest.json", b'0', manifest, ""),
        ]);
        let saved = read_archive(&outer[..]).unwrap();
        assert_eq!(saved.layers.len(), 2);
        assert_eq!(saved.layers[0].digest, "sha256:b");
        assert_eq!(saved.layers[0].entries[0].kind, EntryKind::File(SMALL_BLOB + 10));
        assert_eq!(saved.layers[1].entries[0].path, "/small");
        // Zeros compress to almost nothing, but not to nothing.
        let compressed = saved.layers[0].compressed_bytes;
        assert!(compressed > GZIP_FRAME && compressed < 100_000, "{compressed}");
        assert_eq!(saved.config.history.len(), 3);
    }

    #[test]
    fn a_sample_stands_for_the_skipped_bytes() {
        let tally = Tally { input: 400, output: 100, skipped: 1200 };
        assert_eq!(tally.estimate(), 100 + 300);
        assert_eq!(Tally::default().estimate(), 0);
    }

    #[test]
    fn old_layout_symlinks_resolve() {
        assert_eq!(resolve("b/layer.tar", "../a/layer.tar", Kind::Symlink), "a/layer.tar");
    }

    #[test]
    fn deflate_size_matches_a_whole_stream() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let mut out = vec![0u8; text.len() + 1024];
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(GZIP_LEVEL));
        io::Write::write_all(&mut encoder, &text).unwrap();
        assert_eq!(deflated_size(&text, &mut out), encoder.finish().unwrap().len() as u64);
    }
}
