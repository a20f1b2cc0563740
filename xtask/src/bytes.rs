//! Sizes as people write them in the targets file and on the command line: `9 GB`,
//! `12GiB`, `800MB`, `1.5 GB`. Decimal units are powers of 1000, as Docker prints them;
//! the `i` units are powers of 1024.

use anyhow::{bail, Result};

pub fn parse(text: &str) -> Result<u64> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim();
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => bail!("{text:?} is not a size: write a number and a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. \"9 GB\""),
    };
    let value: f64 = match number.parse() {
        Ok(value) if number.chars().next().is_some_and(|c| c.is_ascii_digit()) => value,
        _ => bail!("{text:?} is not a size: it must start with a number, e.g. \"9 GB\""),
    };
    Ok((value * factor as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_spellings_parse() {
        assert_eq!(parse("12GB").unwrap(), 12_000_000_000);
        assert_eq!(parse("12 GiB").unwrap(), 12 << 30);
        assert_eq!(parse("800MB").unwrap(), 800_000_000);
        assert_eq!(parse("1.5 GB").unwrap(), 1_500_000_000);
        assert_eq!(parse(" 100 kB ").unwrap(), 100_000);
        assert_eq!(parse("512 B").unwrap(), 512);
    }

    #[test]
    fn nonsense_does_not() {
        for bad in ["12 parsecs", "12", "GB", "", "-1 GB", "1.2.3 GB", ".5 GB"] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains("is not a size"), "{bad}: {error}");
        }
    }
}
