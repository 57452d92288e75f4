//! Where things live in the store (see `DESIGN.md`):
//! `<model>/predictions/date=YYYY-MM-DD/hour=HH/<unique>.parquet` and
//! `<model>/labels/date=YYYY-MM-DD/<unique>.parquet`.

use chrono::{DateTime, Datelike, Timelike, Utc};
use object_store::path::Path;

use crate::decode::Table;

/// The hive partition a row belongs to, from its timestamp (µs since the epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// Days since the epoch, as (year, month, day).
    pub date: (i32, u32, u32),
    /// Hour of the day; `None` for labels, which partition by date only.
    pub hour: Option<u32>,
}

impl Partition {
    /// The partition of `table` for a timestamp in µs since the epoch.
    pub fn of(table: Table, micros: i64) -> Self {
        let t = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default();
        let hour = matches!(table, Table::Predictions).then(|| t.hour());
        Self { date: (t.year(), t.month(), t.day()), hour }
    }

    /// The partition's folder under the model.
    pub fn dir(&self, model: &str, table: Table) -> Path {
        let (y, m, d) = self.date;
        let mut s = format!("{model}/{}/date={y:04}-{m:02}-{d:02}", table.as_str());
        if let Some(h) = self.hour {
            s.push_str(&format!("/hour={h:02}"));
        }
        Path::from(s)
    }
}

/// A model's table folder, e.g. `credit/predictions`.
pub fn table_dir(model: &str, table: Table) -> Path {
    Path::from(format!("{model}/{}", table.as_str()))
}

/// File name of the Parquet file that WAL segment `seq` of writer `writer` contributes to a
/// partition. The same segment always yields the same names, so replaying it after a crash
/// overwrites rather than duplicates.
pub fn file_name(writer: &str, seq: u64) -> String {
    format!("part-{writer}-{seq:016}.parquet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_paths() {
        let micros = 1_764_078_000_000_000; // 2025-11-25T13:40:00Z
        assert_eq!(
            Partition::of(Table::Predictions, micros).dir("m", Table::Predictions).as_ref(),
            "m/predictions/date=2025-11-25/hour=13"
        );
        assert_eq!(Partition::of(Table::Labels, micros).dir("m", Table::Labels).as_ref(), "m/labels/date=2025-11-25");
    }
}
