//! The live checks: the image run the way its users run it. A container starts on a
//! fresh volume with its port on 127.0.0.1 only; it must answer, sign a user up and stop
//! cleanly; then a second container on the same volume must still accept that user's
//! token, which needs both the same database and the same secret key.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xshell::Shell;

use super::{fail, CheckResult, Failure, Recorder, Subject, LOG_LINES};
use crate::container::{Container, RunOptions, Volume};
use crate::docker::CommandLine;
use crate::http::{self, Request};

/// Each HTTP request's own timeout; the health wait polls within its longer one.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Docker's health status may lag behind `/health`: a healthcheck marked
/// unhealthy during a slow start needs one interval (30s in the Dockerfile) to recover.
const HEALTH_STATUS_GRACE: Duration = Duration::from_secs(45);
/// The checks that follow a started container, skipped when it never becomes healthy.
const AFTER_HEALTH: [&str; 7] =
    ["docker health", "/api/version", "ui", "start-up log", "cpu fallback", "sign-up", "clean stop"];

pub fn run(sh: &Shell, subject: &Subject, recorder: &mut Recorder) {
    let name = subject.name;
    let target = subject.target;
    let test = &target.test;
    let no_log = || None;

    let volume =
        match Volume::create(sh, &format!("{}-{name}-data", subject.run_id), &subject.labels()) {
            Ok(volume) => volume,
            Err(error) => {
                recorder.check(name, "start", no_log, || Err(error.into()));
                return skip(recorder, name, &["/health", "data survives"], "no volume");
            }
        };
    let path = test.volume.as_deref().unwrap_or(&target.data_dir);
    let nocopy = if test.empty_volume { ",volume-nocopy" } else { "" };
    let options = RunOptions {
        port: Some(target.port),
        env: test.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        mounts: vec![format!("type=volume,src={},dst={path}{nocopy}", volume.name)],
        labels: subject.labels(),
        ..RunOptions::default()
    };

    let mut first = None;
    let started = recorder.check(name, "start", no_log, || {
        let container = Container::start(
            sh,
            &format!("{}-{name}-1", subject.run_id),
            &subject.image,
            &options,
        )?;
        let bindings = container.port_bindings(target.port)?;
        first = Some(container);
        let what = if test.empty_volume { "an empty volume" } else { "a new volume" };
        match bindings.iter().all(|b| b.starts_with("127.0.0.1:")) {
            true => Ok(format!(
                "{} on {what} at {path}, port on {}",
                subject.run_id,
                bindings.join(" ")
            )),
            false => Err(fail("the port published on 127.0.0.1 only", bindings.join(" "))),
        }
    });
    let Some(first) = first.filter(|_| started) else {
        return skip(recorder, name, &["/health", "data survives"], "the container did not start");
    };
    let log = || Some(first.log_tail(LOG_LINES));
    let addr = match first.published(target.port) {
        Ok(addr) => addr,
        Err(error) => {
            recorder.check(name, "/health", log, || Err(error.into()));
            return skip(recorder, name, &AFTER_HEALTH, "no published port");
        }
    };

    let deadline = Instant::now() + subject.health_timeout;
    if !recorder
        .check(name, "/health", log, || wait_for_health(&first, addr, subject.health_timeout))
    {
        skip(recorder, name, &AFTER_HEALTH, "/health never answered");
        return skip(recorder, name, &["data survives"], "/health never answered");
    }
    recorder.check(name, "docker health", log, || wait_for_docker_health(&first, deadline));
    recorder.check(name, "/api/version", log, || {
        let response = http::get(addr, "/api/version", REQUEST_TIMEOUT)?;
        let version: Value = serde_json::from_str(&response.body).unwrap_or_default();
        match version["version"].as_str() {
            Some(v) if v == subject.version => Ok(format!("{{\"version\":\"{v}\"}}")),
            _ => Err(fail(
                format!("{{\"version\":\"{}\"}}", subject.version),
                format!("{} {}", response.status, response.body),
            )),
        }
    });
    recorder.check(name, "ui", log, || {
        let response = http::get(addr, "/", REQUEST_TIMEOUT)?;
        let html = response.body.to_ascii_lowercase().contains("<html");
        match (response.status, html) {
            (200, true) => Ok(format!("/ serves {} bytes of HTML", response.body.len())),
            (status, _) => Err(fail(
                "200 with an HTML page",
                format!("{status}, {} bytes, HTML: {html}", response.body.len()),
            )),
        }
    });
    if test.log_contains.is_empty() {
        recorder.skip(name, "start-up log", "the target expects nothing in particular in its log");
    } else {
        recorder.check(name, "start-up log", log, || {
            let text = first.log_tail(usize::MAX >> 1);
            match test.log_contains.iter().find(|wanted| !text.contains(wanted.as_str())) {
                None => Ok(format!("the log has {}", test.log_contains.join(", "))),
                Some(missing) => Err(fail(format!("a log line with {missing:?}"), "no such line")),
            }
        });
    }
    if test.cpu_fallback {
        recorder.check(name, "cpu fallback", log, || cpu_fallback(sh, &first, addr));
    } else {
        recorder.skip(name, "cpu fallback", "the target is not tested without a GPU");
    }

    let mut user = None;
    recorder.check(name, "sign-up", log, || {
        let signed_up = sign_up(addr)?;
        let detail = format!("first user {} signed up, token received", signed_up.id);
        user = Some(signed_up);
        Ok(detail)
    });
    recorder.check(name, "clean stop", log, || clean_stop(sh, &first, subject.stop_timeout));
    // The first container goes before the second starts: they share the volume.
    drop(first);

    let Some(user) = user else {
        return skip(recorder, name, &["data survives"], "no user was signed up");
    };
    let mut second = None;
    let mut survived = || -> CheckResult {
        let container = second.insert(Container::start(
            sh,
            &format!("{}-{name}-2", subject.run_id),
            &subject.image,
            &options,
        )?);
        let addr = container.published(target.port)?;
        wait_for_health(container, addr, subject.health_timeout)?;
        let request = Request {
            method: "GET",
            path: "/api/v1/auths/",
            bearer: Some(&user.token),
            json: None,
        };
        let response = http::request(addr, &request, REQUEST_TIMEOUT)?;
        let seen: Value = serde_json::from_str(&response.body).unwrap_or_default();
        if response.status == 200 && seen["id"].as_str() == Some(&user.id) {
            Ok(format!("a new container on the volume accepts user {}'s token", user.id))
        } else {
            Err(fail(
                format!("200 and user {} for the token from before", user.id),
                format!("{} {}", response.status, first_line(&response.body)),
            ))
        }
    };
    let started = Instant::now();
    let result = survived();
    let log = || second.as_ref().map(|c: &Container| c.log_tail(LOG_LINES));
    recorder.record(name, "data survives", started, result, log);
}

fn skip(recorder: &mut Recorder, name: &str, checks: &[&'static str], reason: &str) {
    for check in checks {
        recorder.skip(name, check, reason);
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default();
    line.get(..200).unwrap_or(line)
}

fn wait_for_health(container: &Container, addr: SocketAddr, timeout: Duration) -> CheckResult {
    match container.wait_for_health(addr, timeout) {
        Ok(waited) => Ok(format!("{{\"status\":true}} after {:.1}s", waited.as_secs_f64())),
        Err(error) => Err(fail(
            format!("{{\"status\":true}} within {}s", timeout.as_secs()),
            format!("{error:#}"),
        )),
    }
}

fn wait_for_docker_health(container: &Container, deadline: Instant) -> CheckResult {
    let started = Instant::now();
    let deadline = deadline.max(started + HEALTH_STATUS_GRACE);
    loop {
        let status = container.health_status()?;
        match status.as_str() {
            "healthy" => {
                return Ok(format!("healthy after {:.1}s more", started.elapsed().as_secs_f64()))
            }
            "" => {
                let seen = "no health status: the image has no HEALTHCHECK";
                return Err(fail("Docker's health status healthy", seen));
            }
            // `unhealthy` can be stale from before the server was up: wait it out too.
            _ if Instant::now() > deadline => {
                let expected = "Docker's health status healthy within the health timeout";
                return Err(fail(expected, format!("{status} at the deadline")));
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Without a GPU, torch must find no CUDA device and the server must go on serving.
fn cpu_fallback(sh: &Shell, container: &Container, addr: SocketAddr) -> CheckResult {
    let probe = "import torch; print(torch.cuda.is_available())";
    let seen =
        CommandLine::docker().args(["exec", &container.name, "python3", "-c", probe]).read(sh)?;
    let health = http::get(addr, "/health", REQUEST_TIMEOUT)?;
    if seen.lines().last() == Some("False") && health.status == 200 {
        Ok("no GPU given: torch sees none, the server runs on CPU".to_string())
    } else {
        Err(fail(
            "torch.cuda.is_available() False and /health 200",
            format!("{seen}, /health {}", health.status),
        ))
    }
}

struct User {
    id: String,
    token: String,
}

/// Signs the first user up through Open WebUI's API; the password is random per run.
fn sign_up(addr: SocketAddr) -> Result<User, Failure> {
    let password = random_hex(16)?;
    let body =
        json!({"name": "xtask test", "email": "xtask-test@example.com", "password": password})
            .to_string();
    let request =
        Request { method: "POST", path: "/api/v1/auths/signup", bearer: None, json: Some(&body) };
    let response = http::request(addr, &request, REQUEST_TIMEOUT)?;
    let seen: Value = serde_json::from_str(&response.body).unwrap_or_default();
    match (response.status, seen["id"].as_str(), seen["token"].as_str()) {
        (200, Some(id), Some(token)) if !token.is_empty() => {
            Ok(User { id: id.to_string(), token: token.to_string() })
        }
        // The body can hold a token; show only its start.
        (status, ..) => Err(fail(
            "200 with the new user's id and token",
            format!("{status} {}", first_line(&response.body).get(..80).unwrap_or("")),
        )),
    }
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buffer)?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// `docker stop` as Docker stops a container: SIGTERM, then SIGKILL after `timeout`.
pub fn stop_command(name: &str, timeout: Duration) -> CommandLine {
    CommandLine::docker().args(["stop", "--timeout", &timeout.as_secs().to_string(), name])
}

fn clean_stop(sh: &Shell, container: &Container, timeout: Duration) -> CheckResult {
    let started = Instant::now();
    let command = stop_command(&container.name, timeout);
    // Echoed, but its output (the name) stays off stdout, which may carry the report.
    eprintln!("$ {command}");
    command.read(sh)?;
    let took = started.elapsed();
    let code = CommandLine::docker()
        .args(["inspect", "--format", "{{.State.ExitCode}}", &container.name])
        .read(sh)?;
    let expected = format!("exit code 0 or 143 within {}s of SIGTERM", timeout.as_secs());
    let took_s = took.as_secs_f64();
    if took >= timeout {
        Err(fail(expected, format!("still running after {took_s:.1}s, killed")))
    } else if code == "0" {
        Ok(format!("exit code 0 after {took_s:.1}s"))
    } else if code == "143" {
        // uvicorn shuts down on SIGTERM, then raises the signal again so that the exit
        // status says what ended it: 128 + 15.
        Ok(format!("exit code 143 (SIGTERM, re-raised after shutdown) after {took_s:.1}s"))
    } else {
        Err(fail(expected, format!("exit code {code} after {took_s:.1}s")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_gives_the_grace_period() {
        assert_eq!(
            stop_command("c1", Duration::from_secs(30)).to_string(),
            "docker stop --timeout 30 c1"
        );
    }
}
