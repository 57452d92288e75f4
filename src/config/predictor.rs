//! `[predictor]`: the built-in predictor's settings.

use std::time::Duration;

use anchorwatch_collector::config::units;
use serde::{Deserialize, Serialize};

/// `[predictor]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictorConfig {
    /// Serve the champions at `/v1/models/{model}/predict` and `/v2/models/{model}/infer`. The
    /// registry endpoints work either way. Default `true`.
    pub enabled: bool,
    /// ONNX Runtime sessions per champion: requests run at once per model (a session runs one at
    /// a time). Default `2`. Example: `4`.
    pub pool_size: usize,
    /// Threads one session uses for one request. Default `1`.
    pub intra_threads: usize,
    /// Rows one request may hold; more get 400. Default `1024`.
    pub max_batch_rows: usize,
    /// How often the server checks the store for a champion promoted by another process (the CLI,
    /// another replica). Default `"5s"`.
    #[serde(with = "units::duration")]
    pub reload_interval: Duration,
    /// Store every answered row as a prediction row through the collector. Rows are queued and
    /// written in batches after the answer, so capture never delays it.
    /// `false` answers without storing (ids are still generated and returned), which leaves
    /// drift and accuracy monitoring blind to this traffic; it exists to measure capture's cost
    /// (`make bench-predictor`) or for a predictor whose traffic is captured elsewhere.
    /// Default `true`.
    pub capture: bool,
    /// Rows that may wait to be captured, per model, the batch being written included; a
    /// request whose rows do not fit is dropped and counted (`reason="queue_full"`), and its
    /// answer still goes out. At least `max_batch_rows`. Default `65536`.
    pub capture_queue_rows: usize,
}

impl Default for PredictorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            pool_size: 2,
            intra_threads: 1,
            max_batch_rows: 1024,
            reload_interval: Duration::from_secs(5),
            capture: true,
            capture_queue_rows: 65_536,
        }
    }
}

impl PredictorConfig {
    /// Checks the numbers are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.pool_size == 0 || self.pool_size > 256 {
            return Err("predictor.pool_size: must be 1 to 256".into());
        }
        if self.intra_threads == 0 {
            return Err("predictor.intra_threads: must be at least 1".into());
        }
        if self.max_batch_rows == 0 {
            return Err("predictor.max_batch_rows: must be at least 1".into());
        }
        if self.capture_queue_rows < self.max_batch_rows {
            return Err(format!(
                "predictor.capture_queue_rows: must be at least max_batch_rows ({}), got {}",
                self.max_batch_rows, self.capture_queue_rows
            ));
        }
        if self.reload_interval.is_zero() {
            return Err("predictor.reload_interval: must be more than 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capture_queue_holds_at_least_one_full_request() {
        assert_eq!(PredictorConfig::default().validate(), Ok(()));
        let small = PredictorConfig { capture_queue_rows: 100, max_batch_rows: 101, ..Default::default() };
        assert_eq!(
            small.validate(),
            Err("predictor.capture_queue_rows: must be at least max_batch_rows (101), got 100".to_string())
        );
    }
}
