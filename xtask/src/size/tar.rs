//! A streaming reader for the tar archives `docker save` writes: the outer archive of
//! blobs and each layer inside it. It reads headers and skips contents, so an 8 GB image
//! passes through in fixed memory. It knows the ustar fields, GNU long names and PAX
//! `path`/`linkpath`/`size` records, which is what Docker and BuildKit write.

use std::io::{self, Read};

use anyhow::{bail, Context, Result};

const BLOCK: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    HardLink,
    Symlink,
    Dir,
    Other,
}

/// One member of an archive; its contents, if any, follow in the stream.
#[derive(Debug)]
pub struct Header {
    pub path: String,
    pub link: String,
    pub size: u64,
    pub kind: Kind,
}

pub struct Reader<R> {
    inner: R,
    /// Bytes of the current member (plus padding) not read yet.
    pending: u64,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Reader<R> {
        Reader { inner, pending: 0 }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next member, skipping what is left of the current one; `None` at the end.
    pub fn next(&mut self) -> Result<Option<Header>> {
        self.skip_rest()?;
        let mut long_path = None;
        let mut long_link = None;
        let mut pax_size = None;
        loop {
            let mut block = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut block)? || block.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            let size = match pax_size.take() {
                Some(size) => size,
                None => parse_number(&block[124..136]).context("bad size in a tar header")?,
            };
            let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
            match block[156] {
                // Extensions that describe the member after them.
                b'L' | b'K' | b'x' => {
                    let data = self.read_small(size, padded)?;
                    match block[156] {
                        b'L' => long_path = Some(c_string(&data)),
                        b'K' => long_link = Some(c_string(&data)),
                        _ => {
                            for (key, value) in pax_records(&data) {
                                match key.as_str() {
                                    "path" => long_path = Some(value),
                                    "linkpath" => long_link = Some(value),
                                    "size" => pax_size = value.parse().ok(),
                                    _ => {}
                                }
                            }
                        }
                    }
                }
                b'g' => {
                    self.read_small(size, padded)?;
                }
                flag => {
                    let mut path = long_path.take().unwrap_or_else(|| {
                        let name = c_string(&block[0..100]);
                        let prefix = if &block[257..262] == b"ustar" { c_string(&block[345..500]) } else { String::new() };
                        if prefix.is_empty() { name } else { format!("{prefix}/{name}") }
                    });
                    let kind = match flag {
                        b'0' | 0 | b'7' => Kind::File,
                        b'1' => Kind::HardLink,
                        b'2' => Kind::Symlink,
                        b'5' => Kind::Dir,
                        _ => Kind::Other,
                    };
                    if kind == Kind::File && path.ends_with('/') {
                        path.pop();
                    }
                    let link = long_link.take().unwrap_or_else(|| c_string(&block[157..257]));
                    // Links and directories carry no data, whatever their size field says.
                    let size = if matches!(kind, Kind::File | Kind::Other) { size } else { 0 };
                    self.pending = size.div_ceil(BLOCK as u64) * BLOCK as u64;
                    return Ok(Some(Header { path, link, size, kind }));
                }
            }
        }
    }

    /// Reads the current member's contents (at most `limit` bytes, else an error).
    pub fn read_contents(&mut self, size: u64, limit: u64) -> Result<Vec<u8>> {
        if size > limit {
            bail!("a tar member of {size} bytes is larger than the {limit} expected");
        }
        let padded = self.pending;
        self.pending = 0;
        self.read_small(size, padded)
    }

    /// The current member's contents as a reader; the padding is skipped by `next`.
    pub fn contents(&mut self, size: u64) -> Contents<'_, R> {
        Contents { reader: self, left: size }
    }

    fn read_small(&mut self, size: u64, padded: u64) -> Result<Vec<u8>> {
        let mut data = vec![0u8; padded as usize];
        self.inner.read_exact(&mut data).context("the tar stream ended inside a member")?;
        data.truncate(size as usize);
        Ok(data)
    }

    fn skip_rest(&mut self) -> Result<()> {
        let copied = io::copy(&mut (&mut self.inner).take(self.pending), &mut io::sink())?;
        if copied != self.pending {
            bail!("the tar stream ended inside a member");
        }
        self.pending = 0;
        Ok(())
    }
}

/// Reads one member's data; what is left unread is skipped by the next `Reader::next`.
pub struct Contents<'a, R> {
    reader: &'a mut Reader<R>,
    left: u64,
}

impl<R: Read> Read for Contents<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.left as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.reader.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the tar stream ended inside a member"));
        }
        self.left -= n as u64;
        self.reader.pending -= n as u64;
        Ok(n)
    }
}

/// Fills one block; false on a clean end of stream before its first byte.
fn read_block(inner: &mut impl Read, block: &mut [u8; BLOCK]) -> Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match inner.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => bail!("the tar stream ended inside a header"),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// An octal field, or GNU's base-256 form (high bit set) for sizes over 8 GB.
fn parse_number(field: &[u8]) -> Result<u64> {
    if field[0] & 0x80 != 0 {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for &byte in &field[1..] {
            value = value.checked_mul(256).context("number too large")? + u64::from(byte);
        }
        return Ok(value);
    }
    let text = std::str::from_utf8(field)?.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Ok(0);
    }
    Ok(u64::from_str_radix(text, 8)?)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// PAX records: `LEN key=value\n`, one after the other.
fn pax_records(mut data: &[u8]) -> Vec<(String, String)> {
    let mut records = Vec::new();
    while let Some(space) = data.iter().position(|&b| b == b' ') {
        let Some(len) = std::str::from_utf8(&data[..space]).ok().and_then(|s| s.parse::<usize>().ok()) else {
            break;
        };
        if len <= space + 1 || len > data.len() {
            break;
        }
        let record = String::from_utf8_lossy(&data[space + 1..len - 1]).into_owned();
        if let Some((key, value)) = record.split_once('=') {
            records.push((key.to_string(), value.to_string()));
        }
        data = &data[len..];
    }
    records
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A ustar header block for tests, with the checksum left empty (nothing reads it).
    pub fn header(path: &str, flag: u8, size: u64, link: &str) -> Vec<u8> {
        let mut block = vec![0u8; BLOCK];
        block[..path.len()].copy_from_slice(path.as_bytes());
        block[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        block[156] = flag;
        block[157..157 + link.len()].copy_from_slice(link.as_bytes());
        block[257..263].copy_from_slice(b"ustar\0");
        block
    }

    /// A whole archive from (path, flag, contents, link) members.
    pub fn archive(members: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, flag, data, link) in members {
            out.extend(header(path, *flag, data.len() as u64, link));
            out.extend(*data);
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        out.extend([0u8; 2 * BLOCK]);
        out
    }

    #[test]
    fn reads_members_and_skips_contents() {
        let data = archive(&[("a/", b'5', b"", ""), ("a/f", b'0', &[7u8; 700], ""), ("a/l", b'2', b"", "f")]);
        let mut reader = Reader::new(&data[..]);
        let first = reader.next().unwrap().unwrap();
        assert_eq!((first.path.as_str(), first.kind), ("a/", Kind::Dir));
        let file = reader.next().unwrap().unwrap();
        assert_eq!((file.path.as_str(), file.size), ("a/f", 700));
        let link = reader.next().unwrap().unwrap();
        assert_eq!((link.kind, link.link.as_str()), (Kind::Symlink, "f"));
        assert!(reader.next().unwrap().is_none());
    }

    #[test]
    fn pax_path_and_size_win() {
        let long = format!("{}/file", "d".repeat(150));
        let record = format!("path={long}\n");
        let pax = format!("{} {record}", record.len() + 4);
        assert_eq!(pax.len(), record.len() + 4);
        let data = archive(&[("ignored", b'x', pax.as_bytes(), ""), ("short", b'0', b"abc", "")]);
        let mut reader = Reader::new(&data[..]);
        let member = reader.next().unwrap().unwrap();
        assert_eq!((member.path, member.size), (long, 3));
        let mut contents = String::new();
        reader.contents(3).read_to_string(&mut contents).unwrap();
        assert_eq!(contents, "abc");
        assert!(reader.next().unwrap().is_none());
    }

    #[test]
    fn base256_sizes_parse() {
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[7] = 0x02; // 2 << 32
        assert_eq!(parse_number(&field).unwrap(), 2 << 32);
        assert_eq!(parse_number(b"00000001750\0").unwrap(), 1000);
    }

    #[test]
    fn a_truncated_stream_is_an_error() {
        let data = archive(&[("f", b'0', &[1u8; 600], "")]);
        let mut reader = Reader::new(&data[..700]);
        reader.next().unwrap().unwrap();
        assert!(reader.next().is_err());
    }
}
