//! A trained model: in-memory prediction, metadata, and export to ONNX.

use crate::Result;
use crate::data::Data;
use crate::gbm::{Gbm, Objective};
use crate::linear::{Linear, sigmoid, softmax};
use crate::onnx::{AttrValue, Dim, ElemType, GraphBuilder, ML_DOMAIN, ML_OPSET, Model, OPSET, ValueInfo};
use crate::preprocess::{FeatureInfo, Matrix, Preprocessor};
use crate::spec::TrainSpec;

/// Classification or regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Predicts one of the training classes, with a probability per class.
    Classification,
    /// Predicts a number.
    Regression,
}

/// How the exported graph takes its inputs (`docs/models.md`, "Signature contract").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum InputLayout {
    /// One input per feature, named as the feature, shape `[N, 1]`: `float` for numerical and
    /// boolean (0.0 / 1.0) features, `string` for categorical ones. Missing values are `NaN` and `""`.
    #[default]
    PerFeature,
    /// One `float` input `[N, F]` with this name, column `j` being the `j`-th training feature.
    /// Only for models whose features are all numerical or boolean.
    Matrix {
        /// The input's name, e.g. `float_input`.
        name: String,
    },
}

/// What training did, for the model's record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainReport {
    /// Training rows used.
    pub rows: usize,
    /// Mean log-loss (classification) or mean squared error (regression) on the training rows.
    pub training_loss: f64,
    /// Optimizer iterations (logistic regression).
    pub iterations: Option<usize>,
    /// Whether the optimizer met its tolerance (logistic regression).
    pub converged: Option<bool>,
    /// Trees grown (gradient boosting).
    pub trees: Option<usize>,
}

/// Everything about a trained model except its parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelInfo {
    /// The hyperparameters it was trained with.
    pub spec: TrainSpec,
    /// Classification or regression.
    pub task: Task,
    /// The features it takes, in input order, with their learned encoding.
    pub features: Vec<FeatureInfo>,
    /// Columns of the design matrix the model sees (`feature` or `feature=category`).
    pub columns: Vec<String>,
    /// Class labels, sorted: column `c` of the probabilities is `classes[c]`. Empty for regression.
    pub classes: Vec<String>,
    /// How training went.
    pub report: TrainReport,
}

/// Predictions of a model for some rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    /// A classifier's output.
    Classes {
        /// Predicted class of each row: the class with the highest probability (the first on ties).
        labels: Vec<String>,
        /// `probabilities[row][c]` is the probability of `classes[c]`.
        probabilities: Vec<Vec<f64>>,
    },
    /// A regressor's output, one value per row.
    Values(Vec<f64>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fitted {
    Logistic(Linear),
    Ridge(Linear),
    Trees(Gbm),
}

/// A trained model: predicts in memory and exports itself as ONNX with the same predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    pub(crate) info: ModelInfo,
    pub(crate) preprocessor: Preprocessor,
    pub(crate) fitted: Fitted,
}

impl Trained {
    /// The model's metadata (features, classes, hyperparameters, training report).
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Predicts `data`, which must hold every training feature with the same kind (other columns
    /// are ignored). Inputs are taken as float32, as the ONNX model takes them.
    pub fn predict(&self, data: &Data) -> Result<Predictions> {
        let x = self.preprocessor.transform(data)?;
        Ok(self.predict_matrix(&x))
    }

    pub(crate) fn predict_matrix(&self, x: &Matrix) -> Predictions {
        let rows = 0..x.rows;
        match &self.fitted {
            Fitted::Ridge(m) => Predictions::Values(rows.map(|i| m.scores(x.row(i))[0]).collect()),
            Fitted::Trees(m) if m.objective == Objective::SquaredError => {
                Predictions::Values(rows.map(|i| m.raw(x.row(i))[0]).collect())
            }
            Fitted::Logistic(m) => self.classes(rows.map(|i| m.scores(x.row(i))).collect()),
            Fitted::Trees(m) => self.classes(rows.map(|i| m.raw(x.row(i))).collect()),
        }
    }

    /// Probabilities from raw scores: one score is the log-odds of class 1, several are softmax logits.
    fn classes(&self, raw: Vec<Vec<f64>>) -> Predictions {
        let probabilities: Vec<Vec<f64>> = raw
            .into_iter()
            .map(|z| {
                if z.len() == 1 {
                    let p = sigmoid(z[0]);
                    vec![1.0 - p, p]
                } else {
                    softmax(&z)
                }
            })
            .collect();
        let labels = probabilities.iter().map(|p| self.info.classes[argmax(p)].clone()).collect();
        Predictions::Classes { labels, probabilities }
    }

    /// The model as ONNX bytes, with one input per feature ([`InputLayout::PerFeature`]).
    pub fn to_onnx(&self) -> Vec<u8> {
        self.to_onnx_with(&InputLayout::PerFeature).expect("the per-feature layout fits every model")
    }

    /// The model as ONNX bytes with the given input layout. Fails only for
    /// [`InputLayout::Matrix`] with a categorical feature.
    ///
    /// Outputs (`docs/models.md`): classifiers `label` (string `[N]`) and `probabilities`
    /// (float `[N, C]`, columns in [`ModelInfo::classes`] order); regressors `variable` (float `[N, 1]`).
    /// Opsets: default domain 13, `ai.onnx.ml` 3.
    pub fn to_onnx_with(&self, layout: &InputLayout) -> Result<Vec<u8>> {
        let mut b = GraphBuilder::default();
        let x = self.preprocessor.to_onnx(&mut b, layout)?;
        let d = self.preprocessor.width() as i64;
        match &self.fitted {
            Fitted::Logistic(m) => {
                let z = linear_nodes(&mut b, &x, m, d);
                if m.outputs == 1 {
                    let p1 = b.op("Sigmoid", &[&z], vec![]);
                    let one = b.floats("one", vec![1], vec![1.0]);
                    let p0 = b.op("Sub", &[&one, &p1], vec![]);
                    b.node("Concat", "", &[&p0, &p1], &["probabilities"], vec![("axis", AttrValue::Int(1))]);
                } else {
                    b.node("Softmax", "", &[&z], &["probabilities"], vec![("axis", AttrValue::Int(1))]);
                }
                self.label_nodes(&mut b);
            }
            Fitted::Ridge(m) => {
                let z = linear_nodes(&mut b, &x, m, d);
                b.node("Identity", "", &[&z], &["variable"], vec![]);
            }
            Fitted::Trees(m) if m.objective == Objective::SquaredError => {
                let mut attrs = tree_nodes(m);
                attrs.push(("n_targets", AttrValue::Int(1)));
                attrs.push(("base_values", AttrValue::Floats(vec![m.base[0] as f32])));
                attrs.push(("aggregate_function", AttrValue::String("SUM".into())));
                attrs.push(("post_transform", AttrValue::String("NONE".into())));
                attrs.extend(leaf_weights(m, "target", false));
                b.node("TreeEnsembleRegressor", ML_DOMAIN, &[&x], &["variable"], attrs);
            }
            Fitted::Trees(m) => {
                // Every leaf carries a weight for every class it touches, and the binary case is
                // written as two classes (class 0 always 0): ONNX Runtime's one-class binary
                // encoding changes meaning when all weights happen to be positive. The base scores
                // are folded into the first round's leaves, because ONNX Runtime ignores
                // base_values for two classes with weights on both. SOFTMAX over (0, F) is the
                // sigmoid of F.
                let mut attrs = tree_nodes(m);
                attrs.push(("classlabels_strings", AttrValue::Strings(self.info.classes.clone())));
                attrs.push(("post_transform", AttrValue::String("SOFTMAX".into())));
                attrs.extend(leaf_weights(m, "class", m.objective == Objective::Binary));
                let tree_label = b.fresh("tree_label");
                b.node("TreeEnsembleClassifier", ML_DOMAIN, &[&x], &[&tree_label, "probabilities"], attrs);
                self.label_nodes(&mut b);
            }
        }
        let outputs = match self.info.task {
            Task::Classification => vec![
                ValueInfo { name: "label".into(), elem_type: ElemType::String, shape: vec![Dim::Param("N")] },
                ValueInfo {
                    name: "probabilities".into(),
                    elem_type: ElemType::Float,
                    shape: vec![Dim::Param("N"), Dim::Fixed(self.info.classes.len() as i64)],
                },
            ],
            Task::Regression => vec![ValueInfo {
                name: "variable".into(),
                elem_type: ElemType::Float,
                shape: vec![Dim::Param("N"), Dim::Fixed(1)],
            }],
        };
        b.graph.outputs = outputs;
        b.graph.name = format!("anchorwatch_{}", self.info.spec.name());
        let task = match self.info.task {
            Task::Classification => format!("classification, {} classes", self.info.classes.len()),
            Task::Regression => "regression".to_string(),
        };
        let model = Model {
            producer_name: "anchorwatch-trainer".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: format!("anchorwatch built-in trainer: {} ({task})", self.info.spec.name()),
            graph: b.graph,
            opsets: vec![("", OPSET), (ML_DOMAIN, ML_OPSET)],
            metadata: vec![("anchorwatch.trainer".into(), self.info.spec.name().into())],
        };
        Ok(model.encode())
    }

    /// `label` = the class of the highest probability (ArgMax keeps the first on ties).
    fn label_nodes(&self, b: &mut GraphBuilder) {
        let idx =
            b.op("ArgMax", &["probabilities"], vec![("axis", AttrValue::Int(1)), ("keepdims", AttrValue::Int(0))]);
        let k = self.info.classes.len() as i64;
        let classes = b.strings("classes", vec![k], self.info.classes.clone());
        b.node("Gather", "", &[&classes, &idx], &["label"], vec![("axis", AttrValue::Int(0))]);
    }
}

fn argmax(p: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[best] {
            best = i;
        }
    }
    best
}

/// `X · W + b`, returning the name of the `[N, k]` result.
fn linear_nodes(b: &mut GraphBuilder, x: &str, m: &Linear, d: i64) -> String {
    let w = b.floats("weights", vec![d, m.outputs as i64], m.weights.iter().map(|v| *v as f32).collect());
    let bias = b.floats("bias", vec![m.outputs as i64], m.bias.iter().map(|v| *v as f32).collect());
    let xw = b.op("MatMul", &[x, &w], vec![]);
    b.op("Add", &[&xw, &bias], vec![])
}

/// The `nodes_*` attributes of a tree ensemble; tree `round * outputs + k` is `trees[round][k]`.
fn tree_nodes(m: &Gbm) -> Vec<(&'static str, AttrValue)> {
    use crate::gbm::Node;
    let (mut tree_ids, mut node_ids, mut features, mut modes, mut values, mut trues, mut falses) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (t, tree) in m.trees.iter().flatten().enumerate() {
        for (id, node) in tree.nodes.iter().enumerate() {
            tree_ids.push(t as i64);
            node_ids.push(id as i64);
            match node {
                Node::Split { feature, threshold, left, right } => {
                    features.push(*feature as i64);
                    modes.push("BRANCH_LEQ".to_string());
                    values.push(*threshold);
                    trues.push(*left as i64);
                    falses.push(*right as i64);
                }
                Node::Leaf { .. } => {
                    features.push(0);
                    modes.push("LEAF".to_string());
                    values.push(0.0);
                    trues.push(0);
                    falses.push(0);
                }
            }
        }
    }
    vec![
        ("nodes_treeids", AttrValue::Ints(tree_ids)),
        ("nodes_nodeids", AttrValue::Ints(node_ids)),
        ("nodes_featureids", AttrValue::Ints(features)),
        ("nodes_modes", AttrValue::Strings(modes)),
        ("nodes_values", AttrValue::Floats(values)),
        ("nodes_truenodeids", AttrValue::Ints(trues)),
        ("nodes_falsenodeids", AttrValue::Ints(falses)),
    ]
}

/// The `{prefix}_treeids/_nodeids/_ids/_weights` attributes. Classifiers get the base score folded
/// into the first round; `binary` adds a zero weight for class 0 beside class 1's.
fn leaf_weights(m: &Gbm, prefix: &'static str, binary: bool) -> Vec<(&'static str, AttrValue)> {
    use crate::gbm::Node;
    let fold_base = m.objective != Objective::SquaredError;
    let outputs = m.base.len();
    let (mut tree_ids, mut node_ids, mut ids, mut weights) = (vec![], vec![], vec![], vec![]);
    for (t, tree) in m.trees.iter().flatten().enumerate() {
        let (round, k) = (t / outputs, t % outputs);
        for (id, node) in tree.nodes.iter().enumerate() {
            if let Node::Leaf { value } = node {
                let w = if fold_base && round == 0 { (m.base[k] + *value as f64) as f32 } else { *value };
                if binary {
                    tree_ids.push(t as i64);
                    node_ids.push(id as i64);
                    ids.push(0);
                    weights.push(0.0);
                }
                tree_ids.push(t as i64);
                node_ids.push(id as i64);
                ids.push(if binary { 1 } else { k as i64 });
                weights.push(w);
            }
        }
    }
    let names: [&'static str; 4] = match prefix {
        "class" => ["class_treeids", "class_nodeids", "class_ids", "class_weights"],
        _ => ["target_treeids", "target_nodeids", "target_ids", "target_weights"],
    };
    vec![
        (names[0], AttrValue::Ints(tree_ids)),
        (names[1], AttrValue::Ints(node_ids)),
        (names[2], AttrValue::Ints(ids)),
        (names[3], AttrValue::Floats(weights)),
    ]
}
