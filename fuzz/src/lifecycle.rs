//! The predictor's request parsing (`/v1/models/{model}/predict` and `/v2/models/{model}/infer`).

#[path = "../../src/lifecycle/input.rs"]
pub mod input;
