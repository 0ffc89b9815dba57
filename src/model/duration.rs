//! Durations as Istio reads them: Go's `time.ParseDuration` (Istio decodes
//! YAML through jsonpb, which uses it), so `1.5s`, `100ms`, `1h30m`, `300us`
//! are valid and `1d` or `5 seconds` are not.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parsed duration that remembers how it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duration {
    /// The text as written in the YAML.
    pub text: String,
    /// Nanoseconds; negative durations parse (Go allows them) and fail validation.
    pub nanos: i64,
}

impl Duration {
    pub fn parse(text: &str) -> Result<Duration, String> {
        parse_go_duration(text).map(|nanos| Duration {
            text: text.to_string(),
            nanos,
        })
    }

    pub fn from_millis(ms: i64) -> Duration {
        Duration {
            text: format!("{ms}ms"),
            nanos: ms * 1_000_000,
        }
    }

    pub fn as_std(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.nanos.max(0) as u64)
    }

    /// Istio's `ValidateDuration`: at least 1ms and a whole number of milliseconds.
    pub fn validate_ms(&self) -> Result<(), &'static str> {
        if self.nanos < 1_000_000 {
            return Err("duration must be greater than 1ms");
        }
        if self.nanos % 1_000_000 != 0 {
            return Err("only durations to ms precision are supported");
        }
        Ok(())
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Serializes as written, so config dumps show what the user wrote.
impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

/// A duration is a string; a bare number gets told which unit to add
/// (`fixedDelay: 7` → write "7s").
struct DurationVisitor;

impl DurationVisitor {
    fn number<E: serde::de::Error>(n: impl fmt::Display) -> E {
        E::custom(format!(
            "a duration needs a unit: write \"{n}s\" for {n} seconds (Istio durations are strings such as 1.5s, 100ms, 1h30m)"
        ))
    }
}

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 1.5s")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Duration, E> {
        Duration::parse(s).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Duration, E> {
        Err(Self::number(n))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Duration, E> {
        Err(Self::number(n))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Duration, E> {
        Err(Self::number(n))
    }
}

/// Port of Go's `time.ParseDuration`, with its error texts.
pub fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s.starts_with('.') || s.starts_with(|c: char| c.is_ascii_digit())) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let pre = int_len > 0;
        let mut v: u64 = 0;
        for b in s[..int_len].bytes() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or_else(invalid)?;
        }
        s = &s[int_len..];
        // Fraction.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let n = s.bytes().take_while(u8::is_ascii_digit).count();
            post = n > 0;
            let mut overflow = false;
            for b in s[..n].bytes() {
                if overflow {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(b - b'0')))
                {
                    Some(f) if f < (1 << 63) => {
                        frac = f;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            s = &s[n..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let mult: u64 = match unit {
            "ns" => 1,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(orig)
                ));
            }
        };
        if v > (1u64 << 63) / mult {
            return Err(invalid());
        }
        v *= mult;
        if frac > 0 {
            v += (frac as f64 * (mult as f64 / scale)) as u64;
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > 1 << 63 {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > i64::MAX as u64 {
        return Err(invalid());
    }
    Ok(total as i64)
}

pub use super::names::go_quote;

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const S: i64 = 1_000 * MS;

    #[test]
    fn go_parse_duration_accepts_what_go_accepts() {
        assert_eq!(parse_go_duration("1.5s"), Ok(1500 * MS));
        assert_eq!(parse_go_duration("100ms"), Ok(100 * MS));
        assert_eq!(parse_go_duration("1h30m"), Ok(90 * 60 * S));
        assert_eq!(parse_go_duration("300us"), Ok(300_000));
        assert_eq!(parse_go_duration("300µs"), Ok(300_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("0s"), Ok(0));
        assert_eq!(parse_go_duration(".5s"), Ok(500 * MS));
        assert_eq!(parse_go_duration("5.s"), Ok(5 * S));
        assert_eq!(parse_go_duration("-2s"), Ok(-2 * S));
        assert_eq!(
            parse_go_duration("1h1m1s1ms1us1ns"),
            Ok(3661 * S + MS + 1001)
        );
    }

    #[test]
    fn go_parse_duration_rejects_what_go_rejects() {
        assert_eq!(
            parse_go_duration("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        assert_eq!(
            parse_go_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert_eq!(
            parse_go_duration("5 seconds"),
            Err("time: unknown unit \" seconds\" in duration \"5 seconds\"".into())
        );
        for bad in [
            "",
            "s",
            ".s",
            "-",
            "1.2.3s",
            "9999999999999999999h",
            "3000000h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn validate_ms_follows_istio_validate_duration() {
        assert!(Duration::parse("1ms").unwrap().validate_ms().is_ok());
        assert!(Duration::parse("0s").unwrap().validate_ms().is_err());
        assert!(Duration::parse("1500us").unwrap().validate_ms().is_err());
        assert!(Duration::parse("-1s").unwrap().validate_ms().is_err());
    }
}
