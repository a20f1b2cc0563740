//! Just enough of a Dockerfile reader to know its stages and the build arguments it
//! declares, so that `build` can refuse an argument the Dockerfile would ignore.

use std::collections::{BTreeMap, BTreeSet};

/// Arguments BuildKit accepts without a declaration.
const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "SOURCE_DATE_EPOCH",
];

#[derive(Debug, Default)]
pub struct Dockerfile {
    /// Stage names in the order they appear.
    pub stages: Vec<String>,
    /// Every argument an `ARG` line declares, globally or inside a stage.
    pub args: BTreeSet<String>,
    /// The default of each argument, from the first `ARG NAME=VALUE` that gives one.
    pub defaults: BTreeMap<String, String>,
}

/// One instruction with its continuation lines joined, and the line it starts on.
pub struct Instruction {
    pub line: usize,
    pub keyword: String,
    pub rest: String,
}

impl Dockerfile {
    pub fn parse(text: &str) -> Dockerfile {
        let mut dockerfile = Dockerfile::default();
        for instruction in instructions(text) {
            let words: Vec<&str> = instruction.rest.split_whitespace().collect();
            match instruction.keyword.as_str() {
                "FROM" => {
                    if let [.., as_word, name] = words.as_slice() {
                        if as_word.eq_ignore_ascii_case("as") {
                            dockerfile.stages.push(name.to_string());
                        }
                    }
                }
                "ARG" => {
                    for word in words {
                        let (name, default) = match word.split_once('=') {
                            Some((name, value)) => (name, Some(value.trim_matches('"'))),
                            None => (word, None),
                        };
                        dockerfile.args.insert(name.to_string());
                        if let Some(value) = default {
                            dockerfile.defaults.entry(name.to_string()).or_insert_with(|| value.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        dockerfile
    }

    /// The default value the Dockerfile gives an argument, if any.
    pub fn default_of(&self, name: &str) -> Option<String> {
        self.defaults.get(name).cloned()
    }

    /// Whether `--build-arg name=…` would reach anything in this Dockerfile.
    pub fn accepts_arg(&self, name: &str) -> bool {
        self.args.contains(name) || name.starts_with("BUILDKIT_") || PREDEFINED_ARGS.contains(&name)
    }
}

/// Splits a Dockerfile into instructions, skipping comments and blank lines. Heredoc
/// bodies are not instructions and are skipped too.
pub fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut joined = trimmed.to_string();
        while joined.ends_with('\\') {
            joined.pop();
            // A comment line inside a continuation is dropped, as Docker does.
            match lines.find(|(_, next)| !next.trim_start().starts_with('#')) {
                Some((_, next)) => {
                    joined.push(' ');
                    joined.push_str(next.trim());
                }
                None => break,
            }
        }
        if let Some(marker) = heredoc_marker(&joined) {
            for (_, body) in lines.by_ref() {
                if body.trim() == marker {
                    break;
                }
            }
        }
        let (keyword, rest) = joined.split_once(char::is_whitespace).unwrap_or((&joined, ""));
        out.push(Instruction {
            line: index + 1,
            keyword: keyword.to_ascii_uppercase(),
            rest: rest.trim().to_string(),
        });
    }
    out
}

fn heredoc_marker(instruction: &str) -> Option<String> {
    let start = instruction.find("<<")? + 2;
    let word: String = instruction[start..]
        .trim_start_matches('-')
        .trim_matches(|c| c == '"' || c == '\'')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
ARG BASE=debian
ARG ONE TWO=2
FROM ${BASE} AS base
RUN echo a \\
    # a comment inside a continuation
    && echo b
FROM base as final
ARG LATE
RUN <<EOF
ARG NOT_AN_ARG
EOF
";

    #[test]
    fn finds_stages_and_args() {
        let dockerfile = Dockerfile::parse(TEXT);
        assert_eq!(dockerfile.stages, ["base", "final"]);
        assert_eq!(dockerfile.args.iter().collect::<Vec<_>>(), ["BASE", "LATE", "ONE", "TWO"]);
        assert_eq!(dockerfile.default_of("BASE").as_deref(), Some("debian"));
        assert_eq!(dockerfile.default_of("ONE"), None);
    }

    #[test]
    fn accepts_declared_and_predefined_args_only() {
        let dockerfile = Dockerfile::parse(TEXT);
        assert!(dockerfile.accepts_arg("LATE"));
        assert!(dockerfile.accepts_arg("HTTPS_PROXY"));
        assert!(dockerfile.accepts_arg("BUILDKIT_INLINE_CACHE"));
        assert!(!dockerfile.accepts_arg("NOT_AN_ARG"));
        assert!(!dockerfile.accepts_arg("late"));
    }

    #[test]
    fn instructions_keep_their_first_line() {
        let lines: Vec<(usize, String)> =
            instructions(TEXT).into_iter().map(|i| (i.line, i.keyword)).collect();
        assert_eq!(lines[3], (5, "RUN".to_string()));
        assert_eq!(lines[4], (8, "FROM".to_string()));
        assert_eq!(lines.last().unwrap(), &(10, "RUN".to_string()));
    }

    #[test]
    fn the_repository_dockerfile_has_every_target_stage() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dockerfiles/Dockerfile");
        let dockerfile = Dockerfile::parse(&std::fs::read_to_string(path).unwrap());
        for stage in ["default", "gpu", "vastai"] {
            assert!(dockerfile.stages.iter().any(|s| s == stage), "{stage}");
        }
    }
}
