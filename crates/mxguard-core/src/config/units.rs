//! Values that admins write in more than one way: sizes, durations, thresholds.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A byte count: `1048576`, `"512k"`, `"50M"`, `"1G"` (binary multiples).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// A duration in whole seconds: `60`, `"90s"`, `"5m"`, `"2h"`, `"35d"`, `"1w"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

/// A duration in milliseconds: `2` or `1.5` (seconds), `"500ms"`, `"2s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub u64);

impl Millis {
    pub fn parse(s: &str) -> Option<Millis> {
        let s = s.trim();
        if let Some(ms) = s.strip_suffix("ms") {
            return ms.trim().parse().ok().map(Millis);
        }
        Seconds::parse(s).and_then(|v| v.0.checked_mul(1000).map(Millis))
    }
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

struct MillisVisitor;

impl Visitor<'_> for MillisVisitor {
    type Value = Millis;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration, like 2 or 0.5 (seconds) or \"500ms\"")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Millis, E> {
        u64::try_from(v)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            .and_then(|v| self.visit_u64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
        v.checked_mul(1000)
            .map(Millis)
            .ok_or_else(|| E::custom(too_long(&v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Millis, E> {
        // 2^64 ms, the first value a u64 cannot hold (`as` would saturate).
        const LIMIT: f64 = 18_446_744_073_709_551_616.0;
        if !(v.is_finite() && v >= 0.0) {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        } else if v * 1000.0 >= LIMIT {
            Err(E::custom(too_long(&v.to_string())))
        } else {
            Ok(Millis((v * 1000.0) as u64))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Millis, E> {
        match Millis::parse(v) {
            Some(m) => Ok(m),
            // Well-formed but too large to count in milliseconds.
            None if Seconds::parse(v).is_some() => Err(E::custom(too_long(&format!("\"{v}\"")))),
            None => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MillisVisitor)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0))
    }
}

fn too_long(v: &str) -> String {
    format!(
        "duration {v} is too long to count in milliseconds; write a duration like 30 (seconds), \"5m\" or \"500ms\""
    )
}

/// An action threshold: a number, or `false` to disable the action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold(pub Option<f64>);

fn parse_with_units(s: &str, units: &[(&str, u64)]) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    if unit.is_empty() {
        return Some(n);
    }
    let mult = units.iter().find(|(u, _)| *u == unit)?.1;
    n.checked_mul(mult)
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("k", 1 << 10),
    ("kb", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1 << 20),
    ("mb", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1 << 30),
    ("gb", 1 << 30),
    ("gib", 1 << 30),
];

const TIME_UNITS: &[(&str, u64)] = &[
    ("s", 1),
    ("m", 60),
    ("h", 3600),
    ("d", 86400),
    ("w", 7 * 86400),
];

impl ByteSize {
    pub fn parse(s: &str) -> Option<ByteSize> {
        parse_with_units(s, SIZE_UNITS).map(ByteSize)
    }
}

impl Seconds {
    pub fn parse(s: &str) -> Option<Seconds> {
        parse_with_units(s, TIME_UNITS).map(Seconds)
    }
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

struct UnitVisitor {
    what: &'static str,
    parse: fn(&str) -> Option<u64>,
}

impl Visitor<'_> for UnitVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        (self.parse)(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            what: "a size in bytes, like 1048576 or \"50M\" (units k, M, G)",
            parse: |s| ByteSize::parse(s).map(|b| b.0),
        })
        .map(ByteSize)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            what: "a duration, like 60 (seconds) or \"5m\" (units s, m, h, d, w)",
            parse: |s| Seconds::parse(s).map(|b| b.0),
        })
        .map(Seconds)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

struct ThresholdVisitor;

impl Visitor<'_> for ThresholdVisitor {
    type Value = Threshold;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a finite score like 15, or false to disable the action")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Threshold, E> {
        if v {
            Err(E::invalid_value(de::Unexpected::Bool(true), &self))
        } else {
            Ok(Threshold(None))
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Threshold, E> {
        Ok(Threshold(Some(v as f64)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Threshold, E> {
        Ok(Threshold(Some(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Threshold, E> {
        if v.is_finite() {
            Ok(Threshold(Some(v)))
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ThresholdVisitor)
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(v) => s.serialize_f64(v),
            None => s.serialize_bool(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(ByteSize::parse("50M"), Some(ByteSize(50 << 20)));
        assert_eq!(ByteSize::parse("512 KiB"), Some(ByteSize(512 << 10)));
        assert_eq!(ByteSize::parse("12"), Some(ByteSize(12)));
        assert_eq!(ByteSize::parse("12q"), None);
        assert_eq!(ByteSize::parse("99999999999999999999G"), None);
        assert_eq!(Seconds::parse("5m"), Some(Seconds(300)));
        assert_eq!(Seconds::parse("35d"), Some(Seconds(35 * 86400)));
        assert_eq!(Seconds::parse("m"), None);
        assert_eq!(Millis::parse("500ms"), Some(Millis(500)));
        assert_eq!(Millis::parse("2s"), Some(Millis(2000)));
        assert_eq!(Millis::parse("18446744073709552s"), None, "overflows in ms");
        assert_eq!(
            Millis::parse("18446744073709551ms"),
            Some(Millis(18446744073709551))
        );
    }
}
