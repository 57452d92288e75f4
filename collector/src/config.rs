//! `[collector]`: durability, batching and limits of ingest; and the duration and size units
//! every config section uses.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wal::SyncPolicy;

/// `[collector]` settings. Every field has a default; an empty section is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Folder for write-ahead logs (local disk only), one subfolder per model; one per process,
    /// never shared. Default: the store's own `<root>/<model>/wal` for a local store; required
    /// when the store is object storage. Example: `"/var/lib/anchorwatch/wal"`.
    pub wal_dir: Option<PathBuf>,
    /// When a 2xx is sent: `always` (after an fsync, shared by concurrent requests; the default),
    /// `interval` (after the write; fsync every `sync_interval`), or `never`.
    pub sync: SyncPolicy,
    /// fsync period under `sync = "interval"`. Default `"100ms"`.
    #[serde(with = "units::duration")]
    pub sync_interval: Duration,
    /// Longest time acknowledged rows wait before they are written to Parquet. Default `"10s"`.
    #[serde(with = "units::duration")]
    pub flush_interval: Duration,
    /// A WAL segment is flushed to Parquet once it holds this much. Default `"32MiB"`.
    #[serde(with = "units::bytes")]
    pub max_segment_bytes: u64,
    /// Acknowledged but not yet flushed data beyond which ingest answers 429. Default `"512MiB"`.
    #[serde(with = "units::bytes")]
    pub max_pending_bytes: u64,
    /// Requests waiting for the WAL writer, per model, beyond which ingest answers 429. Default `1024`.
    pub max_queued_requests: usize,
    /// zstd level of Parquet files, 1 (fast) to 22 (small). Default `3`.
    pub zstd_level: i32,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            wal_dir: None,
            sync: SyncPolicy::Always,
            sync_interval: Duration::from_millis(100),
            flush_interval: Duration::from_secs(10),
            max_segment_bytes: 32 << 20,
            max_pending_bytes: 512 << 20,
            max_queued_requests: 1024,
            zstd_level: 3,
        }
    }
}

impl CollectorConfig {
    /// Checks ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=22).contains(&self.zstd_level) {
            return Err(format!("collector.zstd_level: must be 1 to 22, got {}", self.zstd_level));
        }
        if self.max_segment_bytes < 4096 {
            return Err(format!("collector.max_segment_bytes: must be at least 4KiB, got {}", self.max_segment_bytes));
        }
        if self.max_pending_bytes < self.max_segment_bytes {
            return Err("collector.max_pending_bytes: must be at least max_segment_bytes".into());
        }
        if self.max_queued_requests == 0 {
            return Err("collector.max_queued_requests: must be at least 1".into());
        }
        if self.flush_interval.is_zero() {
            return Err("collector.flush_interval: must be more than 0".into());
        }
        Ok(())
    }
}

/// Human units in config: durations like `"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"7d"`; sizes like
/// `"512KiB"`, `"32MiB"`, `"1GB"` or a plain number of bytes.
pub mod units {
    use std::time::Duration;

    /// Parses a duration: a number and one of `ms`, `s`, `m`, `h`, `d`.
    pub fn parse_duration(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("`{s}` has no unit; write e.g. \"10s\" or \"250ms\""))?;
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration like \"10s\""))?;
        let secs = match unit.trim() {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            "d" => n * 86400.0,
            other => return Err(format!("unknown duration unit `{other}` in `{s}`; use ms, s, m, h or d")),
        };
        Ok(Duration::from_secs_f64(secs))
    }

    /// Parses a size: a number of bytes, or a number and one of `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`.
    pub fn parse_bytes(s: &str) -> Result<u64, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a size like \"32MiB\""))?;
        let factor = match unit.trim() {
            "" | "B" => 1.0,
            "KB" => 1e3,
            "KiB" => 1024.0,
            "MB" => 1e6,
            "MiB" => 1024.0 * 1024.0,
            "GB" => 1e9,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            other => return Err(format!("unknown size unit `{other}` in `{s}`; use B, KB, KiB, MB, MiB, GB or GiB")),
        };
        Ok((n * factor) as u64)
    }

    fn format_duration(d: &Duration) -> String {
        if d.subsec_millis() != 0 || d.as_secs() == 0 {
            format!("{}ms", d.as_millis())
        } else {
            format!("{}s", d.as_secs())
        }
    }

    /// Serde for durations as strings.
    pub mod duration {
        use serde::{Deserialize, Deserializer, Serializer};
        use std::time::Duration;

        /// Writes `"10s"`-style text.
        pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&super::format_duration(d))
        }

        /// Reads `"10s"`-style text.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            super::parse_duration(&String::deserialize(d)?).map_err(serde::de::Error::custom)
        }
    }

    /// Serde for optional durations (`Option<Duration>`): absent or `"90d"`-style text. Pair it
    /// with `#[serde(default, skip_serializing_if = "Option::is_none")]`.
    pub mod opt_duration {
        use serde::{Deserialize, Deserializer, Serializer};
        use std::time::Duration;

        /// Writes `"10s"`-style text, or nothing.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_str(&super::format_duration(d)),
                None => s.serialize_none(),
            }
        }

        /// Reads `"10s"`-style text.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::parse_duration(&String::deserialize(d)?).map(Some).map_err(serde::de::Error::custom)
        }
    }

    /// Serde for sizes as strings or integers.
    pub mod bytes {
        use serde::{Deserialize, Deserializer, Serializer};

        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Size {
            Int(u64),
            Text(String),
        }

        /// Writes a plain number of bytes.
        pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_u64(*n)
        }

        /// Reads a number of bytes or `"32MiB"`-style text.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
            match Size::deserialize(d)
                .map_err(|_| serde::de::Error::custom("expected a size like \"32MiB\" or a number of bytes"))?
            {
                Size::Int(n) => Ok(n),
                Size::Text(s) => super::parse_bytes(&s).map_err(serde::de::Error::custom),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_units() {
            assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
            assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
            assert!(parse_duration("10").unwrap_err().contains("no unit"));
            assert!(parse_duration("10w").unwrap_err().contains("unknown duration unit"));
            assert_eq!(parse_bytes("32MiB").unwrap(), 32 << 20);
            assert_eq!(parse_bytes("4096").unwrap(), 4096);
            assert!(parse_bytes("3 parsecs").is_err());
        }
    }
}
