//! The model lifecycle: the registry of ONNX model versions and the built-in predictor that serves
//! each model's champion with ONNX Runtime, capturing every prediction into the collector.
//!
//! Takes in: ONNX files (uploaded, or from a trainer), promotions and rollbacks, and prediction
//! requests (JSON records or Open Inference Protocol v2).
//! Gives out: versions under `<root>/<model>/models/` (`docs/models.md`), predictions with their
//! `prediction_id`, and the same rows stored through the collector's write path.
//! Must never: serve or promote a model that does not fit the schema, change anything on a
//! refused upload, or fail a prediction because capture could not keep up (it drops and counts).

pub mod api;
pub mod capture;
pub use crate::config::predictor as config;
pub mod input;
pub mod metrics;
pub mod predictor;
pub mod registry;
pub mod runtime;
pub mod signature;

pub use config::PredictorConfig;
pub use predictor::{Champion, Lifecycle, ServedModel};
pub use registry::{ModelRecord, NewVersion, Registry, RegistryError, Status};
