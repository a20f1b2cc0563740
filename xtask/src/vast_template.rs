//! `cargo xtask vast-template`: everything to paste into a Vast.ai template for the
//! vastai image. The values come from the targets file (image name, port, data folder)
//! and from the built image itself (its size, exposed ports, environment, entrypoint
//! and the on-start script its label names), and the two are checked against each other,
//! so the template cannot drift from the image.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::build::LABEL_TARGET;
use crate::config::Config;
use crate::docker::{self, human_bytes, CommandLine};
use crate::repo::Repo;

/// The label by which the vastai stage names its on-start script.
pub const LABEL_ON_START: &str = "dev.open-webui-images.vastai-on-start";
/// Room for Open WebUI's database, uploads and model caches (embedding, whisper).
const DATA_HEADROOM_BYTES: u64 = 10_000_000_000;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The target from dockerfiles/targets.toml
    #[arg(default_value = "vastai")]
    pub target: String,
    /// The image to read instead of the target's version tag
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Repository for the image name instead of the targets file's
    #[arg(long)]
    pub repository: Option<String>,
    /// Gigabytes to set aside for Ollama models in the disk recommendation
    #[arg(long, value_name = "GB", default_value_t = 40)]
    pub model_space: u64,
    /// Output: human or json
    #[arg(long, default_value = "human", value_parser = ["human", "json"])]
    pub format: String,
}

/// What the template needs to know about the built image.
#[derive(Debug, PartialEq)]
pub struct ImageFacts {
    pub size_bytes: u64,
    pub exposed_ports: Vec<String>,
    pub env: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub has_entrypoint: bool,
}

#[derive(Debug, Serialize)]
pub struct Template {
    pub image: String,
    pub launch_mode: &'static str,
    pub docker_options: String,
    pub ports: Vec<String>,
    pub env: Vec<EnvEntry>,
    pub on_start: String,
    pub image_size_bytes: u64,
    pub disk_gb: u64,
    pub disk_breakdown: String,
    /// Whether the image bundles Ollama (its label says so; images without the label
    /// are taken to).
    pub ollama: bool,
}

#[derive(Debug, Serialize)]
pub struct EnvEntry {
    pub name: &'static str,
    pub value: String,
    pub purpose: &'static str,
}

pub fn run(repo: &Repo, args: Args) -> Result<()> {
    let config = Config::load(&repo.targets_file)?;
    let target = config.target(&args.target)?;
    let repository = args.repository.as_deref().unwrap_or(&config.project.repository);
    let version = config.version().unwrap_or_default();
    let image = args.image.clone().unwrap_or_else(|| target.tags(repository, version)[0].clone());

    docker::ensure_engine(&repo.sh)?;
    let inspect = inspect_command(&image).read(&repo.sh).map_err(|_| {
        anyhow::anyhow!(
            "image {image} is not in the local engine; build it with \
             `cargo xtask build {}` or name one with --image",
            args.target
        )
    })?;
    let facts = parse_inspect(&inspect)
        .with_context(|| format!("cannot read `docker image inspect {image}`"))?;
    let template =
        template(&args.target, target.port, &target.data_dir, &image, &facts, args.model_space)?;
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&template)?),
        _ => print!("{}", render(&template)),
    }
    Ok(())
}

pub fn inspect_command(image: &str) -> CommandLine {
    CommandLine::docker().args(["image", "inspect", "--format", "{{json .}}", image])
}

/// Reads the fields the template needs from `docker image inspect` JSON.
pub fn parse_inspect(json: &str) -> Result<ImageFacts> {
    let value: Value = serde_json::from_str(json).context("not JSON")?;
    let config = &value["Config"];
    let pairs = |field: &Value| -> Vec<(String, String)> {
        field.as_object().map_or_else(Vec::new, |map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
    };
    let env = config["Env"].as_array().map_or_else(Vec::new, |entries| {
        entries
            .iter()
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    let exposed_ports =
        config["ExposedPorts"].as_object().map_or_else(Vec::new, |m| m.keys().cloned().collect());
    Ok(ImageFacts {
        size_bytes: value["Size"].as_u64().context("no Size")?,
        exposed_ports,
        env,
        labels: pairs(&config["Labels"]),
        has_entrypoint: config["Entrypoint"].as_array().is_some_and(|a| !a.is_empty()),
    })
}

/// The template for `image`, after checking that the image is what the targets file says.
pub fn template(
    name: &str,
    port: u16,
    data_dir: &str,
    image: &str,
    facts: &ImageFacts,
    model_space_gb: u64,
) -> Result<Template> {
    let label = |key: &str| facts.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let env = |key: &str| facts.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let Some(on_start) = label(LABEL_ON_START) else {
        bail!("image {image} has no {LABEL_ON_START} label: it is not a Vast.ai image (build the vastai target)");
    };
    if let Some(built_as) = label(LABEL_TARGET) {
        if built_as != name {
            bail!("image {image} was built as target {built_as}, not {name}; pass the {built_as} target or another --image");
        }
    }
    if !facts.exposed_ports.iter().any(|p| p == &format!("{port}/tcp")) {
        bail!(
            "image {image} exposes {:?}, but the targets file gives {name} port {port}; rebuild the image",
            facts.exposed_ports
        );
    }
    if env("PORT") != Some(&port.to_string()) {
        bail!(
            "image {image} sets PORT={}, but the targets file gives port {port}; rebuild the image",
            env("PORT").unwrap_or("nothing")
        );
    }
    if env("DATA_DIR") != Some(data_dir) {
        bail!(
            "image {image} keeps its data in {}, but the targets file says {data_dir}; rebuild the image",
            env("DATA_DIR").unwrap_or("nothing")
        );
    }
    if !facts.has_entrypoint {
        bail!("image {image} has no entrypoint; rebuild the vastai target");
    }
    let workspace = env("WORKSPACE").unwrap_or("/workspace");

    // An image that records no bundled Ollama needs no room for its models.
    let ollama = label(crate::build::LABEL_OLLAMA).is_none_or(|bundled| !bundled.is_empty());
    let models = if ollama { model_space_gb * 1_000_000_000 } else { 0 };
    let total = facts.size_bytes + DATA_HEADROOM_BYTES + models;
    // Whole multiples of 5 GB, the way people pick a disk size.
    let disk_gb = total.div_ceil(5_000_000_000) * 5;
    let ports = vec![format!("{port}:{port}")];
    let pull = EnvEntry {
        name: "OLLAMA_PULL_MODELS",
        value: String::new(),
        purpose: "models Ollama pulls at start, e.g. llama3.2:3b,qwen2.5:7b (kept on the disk)",
    };
    let elsewhere = EnvEntry {
        name: "OLLAMA_BASE_URL",
        value: String::new(),
        purpose: "no Ollama is bundled in this image: the URL of one Open WebUI should use",
    };
    let env_entries = vec![
        if ollama { pull } else { elsewhere },
        EnvEntry {
            name: "PROVISIONING_SCRIPT",
            value: String::new(),
            purpose: "a script (path or URL) run once per instance before the services",
        },
    ];
    let docker_options = ports.iter().map(|p| format!("-p {p}")).collect::<Vec<_>>().join(" ");
    Ok(Template {
        image: image.to_string(),
        launch_mode: "entrypoint",
        docker_options,
        ports,
        env: env_entries,
        on_start: on_start.to_string(),
        image_size_bytes: facts.size_bytes,
        disk_gb,
        disk_breakdown: if ollama {
            format!(
                "image {} + data and caches {} + Ollama models {} (--model-space), in {workspace}",
                human_bytes(facts.size_bytes),
                human_bytes(DATA_HEADROOM_BYTES),
                human_bytes(models),
            )
        } else {
            format!(
                "image {} + data and caches {}, in {workspace} (no Ollama bundled)",
                human_bytes(facts.size_bytes),
                human_bytes(DATA_HEADROOM_BYTES),
            )
        },
        ollama,
    })
}

/// The template as people paste it, field by field.
pub fn render(t: &Template) -> String {
    let port = t.ports[0].split(':').next().unwrap_or_default();
    let mut out = String::new();
    out += &format!("Image Path:Tag    {}\n", t.image);
    out += if t.ollama {
        "Launch mode       Docker ENTRYPOINT (the image starts Ollama and Open WebUI itself)\n"
    } else {
        "Launch mode       Docker ENTRYPOINT (the image starts Open WebUI itself)\n"
    };
    out += &format!("Docker options    {}\n", t.docker_options);
    out += "Environment       (optional; Vast.ai sets PUBLIC_IPADDR, VAST_TCP_PORT_*, OPEN_BUTTON_TOKEN)\n";
    for e in &t.env {
        out += &format!("  {}={}    # {}\n", e.name, e.value, e.purpose);
    }
    out += "On-start script   none in ENTRYPOINT mode; in SSH or Jupyter mode:\n";
    out += &format!("  {}\n", t.on_start);
    out += &format!(
        "Disk space        {} GB (rounded up to 5 GB)\n  {}\n",
        t.disk_gb, t.disk_breakdown
    );
    out += &format!("Open WebUI        http://PUBLIC_IPADDR:VAST_TCP_PORT_{port} (the start-up log prints it)\n");
    out += "  the first account created becomes the admin; sign-in is always on\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSPECT: &str = r#"{"Id":"sha256:abc","Size":7370000000,"Config":{
        "Env":["PATH=/usr/bin","WORKSPACE=/workspace","DATA_DIR=/workspace/open-webui","PORT=7500"],
        "ExposedPorts":{"7500/tcp":{}},
        "Entrypoint":["tini","--","vastai-start"],
        "Labels":{"dev.open-webui-images.target":"vastai",
                  "dev.open-webui-images.vastai-on-start":"/usr/local/bin/vastai-on-start"}}}"#;

    fn facts() -> ImageFacts {
        parse_inspect(INSPECT).unwrap()
    }

    #[test]
    fn reads_the_inspect_fields() {
        let facts = facts();
        assert_eq!(facts.size_bytes, 7_370_000_000);
        assert_eq!(facts.exposed_ports, ["7500/tcp"]);
        assert!(facts.env.contains(&("PORT".to_string(), "7500".to_string())));
        assert!(facts.has_entrypoint);
    }

    #[test]
    fn disk_is_image_plus_headroom_in_steps_of_five() {
        let t = template("vastai", 7500, "/workspace/open-webui", "r:t", &facts(), 40).unwrap();
        // 7.37 + 10 + 40 = 57.37 GB, rounded up to 60.
        assert_eq!(t.disk_gb, 60);
        assert_eq!(t.docker_options, "-p 7500:7500");
        assert_eq!(t.on_start, "/usr/local/bin/vastai-on-start");
        let t = template("vastai", 7500, "/workspace/open-webui", "r:t", &facts(), 0).unwrap();
        assert_eq!(t.disk_gb, 20);
    }

    #[test]
    fn an_image_without_ollama_gets_no_room_for_models() {
        let label = r#""dev.open-webui-images.target":"vastai","dev.open-webui-images.ollama":"","#;
        let bare = parse_inspect(&INSPECT.replace(r#""dev.open-webui-images.target":"vastai","#, label)).unwrap();
        let t = template("vastai", 7500, "/workspace/open-webui", "r:t", &bare, 40).unwrap();
        // 7.37 + 10 GB, rounded up to 20: nothing for models that no Ollama would pull.
        assert_eq!((t.disk_gb, t.ollama), (20, false));
        assert_eq!(t.env[0].name, "OLLAMA_BASE_URL");
        assert!(render(&t).contains("(the image starts Open WebUI itself)"));
        let with = INSPECT.replace(r#""dev.open-webui-images.target":"vastai","#, &label.replace(r#":"""#, r#":"0.13.0""#));
        let t = template("vastai", 7500, "/workspace/open-webui", "r:t", &parse_inspect(&with).unwrap(), 40).unwrap();
        assert_eq!((t.disk_gb, t.ollama), (60, true));
    }

    #[test]
    fn disagreements_with_the_targets_file_are_errors() {
        let error =
            template("vastai", 8080, "/workspace/open-webui", "r:t", &facts(), 40).unwrap_err();
        assert!(error.to_string().contains("targets file gives vastai port 8080"), "{error}");
        let error = template("vastai", 7500, "/data", "r:t", &facts(), 40).unwrap_err();
        assert!(error.to_string().contains("targets file says /data"), "{error}");
        let error =
            template("gpu", 7500, "/workspace/open-webui", "r:t", &facts(), 40).unwrap_err();
        assert!(error.to_string().contains("built as target vastai, not gpu"), "{error}");
        let plain =
            parse_inspect(&INSPECT.replace("dev.open-webui-images.vastai-on-start", "x")).unwrap();
        let error =
            template("vastai", 7500, "/workspace/open-webui", "r:t", &plain, 40).unwrap_err();
        assert!(error.to_string().contains("not a Vast.ai image"), "{error}");
    }

    #[test]
    fn renders_every_field() {
        let t = template("vastai", 7500, "/workspace/open-webui", "repo:0.1-vastai", &facts(), 40)
            .unwrap();
        let text = render(&t);
        for needle in [
            "repo:0.1-vastai",
            "-p 7500:7500",
            "OLLAMA_PULL_MODELS=",
            "/usr/local/bin/vastai-on-start",
            "60 GB",
            "VAST_TCP_PORT_7500",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert!(text.lines().all(|l| l.len() <= 110), "{text}");
    }
}
