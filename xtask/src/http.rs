//! A minimal HTTP/1.1 client over loopback, enough to ask a container whether it is up
//! and to sign a user in, without pulling an HTTP client into the xtask's dependencies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET path` from `addr`; `timeout` bounds the connect and each read and write.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response> {
    request(addr, &Request { method: "GET", path, bearer: None, json: None }, timeout)
}

/// One request; the bearer token goes into a header only, never into an error.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub bearer: Option<&'a str>,
    /// A JSON body, sent with its content type.
    pub json: Option<&'a str>,
}

pub fn request(addr: SocketAddr, request: &Request, timeout: Duration) -> Result<Response> {
    let Request { method, path, bearer, json } = request;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n");
    if let Some(token) = bearer {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = json {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(json.unwrap_or_default());
    stream.write_all(head.as_bytes()).with_context(|| format!("cannot send {method} {path} to {addr}"))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("no answer from {addr}{path}"))?;
    parse(&raw).with_context(|| format!("bad answer from {addr}{path}"))
}

fn parse(raw: &[u8]) -> Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { bail!("no end of headers") };
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let Some(status) = status else { bail!("no status in {status_line:?}") };
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else { break };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_bodies() {
        let plain = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":true}").unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (200, "{\"status\":true}"));
        let chunked = parse(b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnot \r\n5\r\nready\r\n0\r\n\r\n").unwrap();
        assert_eq!((chunked.status, chunked.body.as_str()), (503, "not ready"));
        assert!(parse(b"garbage").is_err());
    }
}
