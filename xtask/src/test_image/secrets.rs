//! Finds values that look like secrets in an image's config: its environment, its labels
//! and the commands of its history (where build arguments show up too). Anything found
//! there ships to every user of the image. Findings never repeat the value itself.

/// Words that make a variable's name secret-looking.
const SECRET_WORDS: [&str; 10] = [
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "CREDENTIAL",
    "AUTH_KEY",
];
/// Names that point at where a secret lives instead of holding it.
const REFERENCE_SUFFIXES: [&str; 3] = ["_FILE", "_PATH", "_DIR"];
/// Prefixes of well-known token formats, each followed by at least 16 more characters.
const TOKEN_PREFIXES: [&str; 9] =
    ["ghp_", "gho_", "ghs_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "hf_", "sk-"];

/// One secret-looking value: where it is and why it looks secret.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    pub place: String,
    pub why: String,
}

/// A `NAME=value` pair (an ENV entry, a label, an assignment in a command).
pub fn scan_assignment(place: &str, name: &str, value: &str) -> Vec<Finding> {
    let mut findings = scan_text(place, value);
    let upper = name.to_ascii_uppercase();
    let value = value.trim_matches(|c| c == '"' || c == '\'');
    let secret_name = SECRET_WORDS.iter().any(|word| upper.contains(word))
        && !REFERENCE_SUFFIXES.iter().any(|suffix| upper.ends_with(suffix));
    // An empty value or one taken from another variable at run time holds nothing.
    if secret_name && !value.is_empty() && !value.starts_with('$') && findings.is_empty() {
        findings.push(Finding {
            place: place.to_string(),
            why: format!("{name} has a value ({} characters, not shown)", value.chars().count()),
        });
    }
    findings
}

/// Free text: a history command, a label value.
pub fn scan_text(place: &str, text: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut found = |why: String| findings.push(Finding { place: place.to_string(), why });
    if text.contains("-----BEGIN ") {
        found("PEM material (a key or certificate)".to_string());
    }
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
        let token = TOKEN_PREFIXES.iter().find(|prefix| {
            word.strip_prefix(**prefix).is_some_and(|rest| {
                rest.len() >= 16
                    && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
        });
        if let Some(prefix) = token {
            found(format!("a token of the {prefix}… format"));
        } else if is_aws_key_id(word) {
            found("an AWS access key id".to_string());
        }
    }
    if has_url_password(text) {
        found("a URL with a password".to_string());
    }
    findings
}

/// Every `NAME=value` word of a history command, and the command as free text.
pub fn scan_command(place: &str, command: &str) -> Vec<Finding> {
    let mut findings = scan_text(place, command);
    for word in command.split_whitespace() {
        let Some((name, value)) = word.split_once('=') else { continue };
        let identifier = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if identifier {
            // scan_text already saw the value as part of the command.
            findings.extend(
                scan_assignment(place, name, value)
                    .into_iter()
                    .filter(|f| f.why.contains(" has a value ")),
            );
        }
    }
    findings
}

fn is_aws_key_id(word: &str) -> bool {
    word.len() == 20
        && (word.starts_with("AKIA") || word.starts_with("ASIA"))
        && word.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn has_url_password(text: &str) -> bool {
    text.match_indices("://").any(|(at, _)| {
        let rest = &text[at + 3..];
        let authority = rest.split(|c: char| c == '/' || c.is_whitespace()).next().unwrap_or("");
        authority.rsplit_once('@').is_some_and(|(user_info, _)| user_info.contains(':'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test tokens are assembled at run time so no scanner mistakes this file for a leak.
    fn fake(prefix: &str) -> String {
        format!("{prefix}{}", "a1B2c3D4e5F6g7H8i9J0".repeat(2))
    }

    #[test]
    fn secret_names_with_values_are_found_without_the_value() {
        let findings = scan_assignment("ENV", "SERVICE_PASSWORD", "hunter2-not-real");
        assert_eq!(
            findings,
            [Finding {
                place: "ENV".into(),
                why: "SERVICE_PASSWORD has a value (16 characters, not shown)".into()
            }]
        );
        assert!(!format!("{findings:?}").contains("hunter2"));
        assert_eq!(scan_assignment("ENV", "webui_secret_key", "x").len(), 1);
    }

    #[test]
    fn references_and_empty_values_are_not_secrets() {
        for (name, value) in [
            ("WEBUI_SECRET_KEY_FILE", "/data/.key"),
            ("WEBUI_SECRET_KEY", ""),
            ("API_TOKEN", "$FROM_THE_HOST"),
            ("SSL_CERT_FILE", "/run/secrets/ca_bundle"),
            ("NVIDIA_DRIVER_CAPABILITIES", "compute,utility"),
            ("org.opencontainers.image.source", "https://github.com/o/r"),
        ] {
            assert_eq!(scan_assignment("ENV", name, value), [], "{name}");
        }
    }

    #[test]
    fn token_formats_pem_and_url_passwords_are_found_anywhere() {
        for text in [fake("ghp_"), fake("hf_"), fake("sk-"), format!("AKIA{}", "ABCDEFGH23456789")]
        {
            assert_eq!(scan_text("label x", &format!("note {text} end")).len(), 1, "{text}");
        }
        assert_eq!(scan_text("h", "printf '-----BEGIN CERTIFICATE-----' > ca.pem").len(), 1);
        assert_eq!(
            scan_text("h", "pip install --index-url https://me:pw@host.invalid/simple x").len(),
            1
        );
        assert_eq!(scan_text("h", "pip install --index-url https://host.invalid/simple x"), []);
        assert_eq!(scan_text("h", "sk-short hf_abc task-runner"), []);
    }

    #[test]
    fn history_commands_reveal_build_arguments() {
        let build_arg = "RUN |2 GITHUB_TOKEN=abc123 TORCH_INDEX= /bin/sh -c make";
        let findings = scan_command("history step 3", build_arg);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].why.starts_with("GITHUB_TOKEN has a value"));
        // What the real Dockerfile's history holds: a secret mount and the path to it.
        let real = "RUN |2 OPEN_WEBUI_VERSION=0.12.4 TORCH_INDEX= /bin/sh -c if [ -s /run/secrets/ca_bundle ]; \
                    then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi && export UV_LINK_MODE=copy";
        assert_eq!(scan_command("history step 2", real), []);
    }
}
