//! Built-in trainers for the retraining loop (issue #6): logistic regression and gradient-boosted
//! trees over a model's features, each exported as an ONNX model.
//!
//! Takes in: training rows (numbers and categories) and labels. Gives out: a fitted model that
//! predicts in memory, and the same model as ONNX bytes.
//! Must never: export a model whose ONNX predictions differ from its in-memory ones.
