//! A small ONNX object model (the parts of `onnx.proto` the exporters use) and its protobuf encoding.
//!
//! Field numbers are those of `onnx/onnx-ml.proto` (ONNX 1.x); the encoding is the ordinary
//! protobuf wire format ([`wire`]). Nothing here knows about training: the exporters build a
//! [`Model`] and call [`Model::encode`].

mod wire;

use wire::Writer;

/// IR version written into every model: 8 (ONNX 1.10), understood by every ONNX Runtime since 1.10.
pub(crate) const IR_VERSION: i64 = 8;
/// Default-domain opset the graphs use.
pub(crate) const OPSET: i64 = 13;
/// `ai.onnx.ml` opset the graphs use (TreeEnsemble*, OneHotEncoder).
pub(crate) const ML_OPSET: i64 = 3;
/// Names of the graph's intermediate values and initializers start with this; feature names may not.
pub(crate) const INTERNAL_PREFIX: &str = "anchorwatch.";
/// The graph's output names (`docs/models.md`); feature names may not be one of them.
pub(crate) const OUTPUT_NAMES: [&str; 3] = ["label", "probabilities", "variable"];
/// The ONNX-ML operator domain.
pub(crate) const ML_DOMAIN: &str = "ai.onnx.ml";

/// `TensorProto.DataType` values used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElemType {
    Float = 1,
    String = 8,
    Int64 = 7,
}

/// One dimension of a graph input or output.
#[derive(Debug, Clone)]
pub(crate) enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A named, dynamic size (the batch).
    Param(&'static str),
}

/// A graph input or output: name, element type and shape.
#[derive(Debug, Clone)]
pub(crate) struct ValueInfo {
    pub name: String,
    pub elem_type: ElemType,
    pub shape: Vec<Dim>,
}

/// Values of a constant tensor.
#[derive(Debug, Clone)]
pub(crate) enum TensorData {
    Float(Vec<f32>),
    Int64(Vec<i64>),
    String(Vec<String>),
}

/// A constant tensor: an initializer, or a tensor-valued attribute.
#[derive(Debug, Clone)]
pub(crate) struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: TensorData,
}

/// Value of a node attribute.
#[derive(Debug, Clone)]
pub(crate) enum AttrValue {
    Int(i64),
    String(String),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

/// A graph node.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub op_type: &'static str,
    pub domain: &'static str,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(&'static str, AttrValue)>,
}

/// A graph: nodes in topological order, constant initializers, inputs and outputs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Tensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

/// A whole model.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub producer_name: String,
    pub producer_version: String,
    pub doc_string: String,
    pub graph: Graph,
    /// `(domain, version)`; the default domain is `""`.
    pub opsets: Vec<(&'static str, i64)>,
    pub metadata: Vec<(String, String)>,
}

impl Model {
    /// The serialized `ModelProto`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // ModelProto: ir_version 1, producer_name 2, producer_version 3, doc_string 6, graph 7,
        // opset_import 8, metadata_props 14.
        let mut w = Writer::new();
        w.int64(1, IR_VERSION);
        w.string(2, &self.producer_name);
        w.string(3, &self.producer_version);
        if !self.doc_string.is_empty() {
            w.string(6, &self.doc_string);
        }
        w.message(7, |g| encode_graph(g, &self.graph));
        for (domain, version) in &self.opsets {
            // OperatorSetIdProto: domain 1, version 2.
            w.message(8, |o| {
                o.string(1, domain);
                o.int64(2, *version);
            });
        }
        for (key, value) in &self.metadata {
            // StringStringEntryProto: key 1, value 2.
            w.message(14, |e| {
                e.string(1, key);
                e.string(2, value);
            });
        }
        w.into_bytes()
    }
}

fn encode_graph(w: &mut Writer, graph: &Graph) {
    // GraphProto: node 1, name 2, initializer 5, input 11, output 12.
    for node in &graph.nodes {
        w.message(1, |n| encode_node(n, node));
    }
    w.string(2, &graph.name);
    for tensor in &graph.initializers {
        w.message(5, |t| encode_tensor(t, tensor));
    }
    for input in &graph.inputs {
        w.message(11, |v| encode_value_info(v, input));
    }
    for output in &graph.outputs {
        w.message(12, |v| encode_value_info(v, output));
    }
}

fn encode_node(w: &mut Writer, node: &Node) {
    // NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7.
    for input in &node.inputs {
        w.string(1, input);
    }
    for output in &node.outputs {
        w.string(2, output);
    }
    w.string(3, &node.name);
    w.string(4, node.op_type);
    for (name, value) in &node.attributes {
        w.message(5, |a| encode_attribute(a, name, value));
    }
    if !node.domain.is_empty() {
        w.string(7, node.domain);
    }
}

fn encode_attribute(w: &mut Writer, name: &str, value: &AttrValue) {
    // AttributeProto: name 1, i 3, s 4, floats 7, ints 8, strings 9, type 20.
    // AttributeType: INT 2, STRING 3, FLOATS 6, INTS 7, STRINGS 8.
    w.string(1, name);
    let kind = match value {
        AttrValue::Int(i) => {
            w.int64(3, *i);
            2
        }
        AttrValue::String(s) => {
            w.string(4, s);
            3
        }
        AttrValue::Floats(fs) => {
            w.packed_floats(7, fs);
            6
        }
        AttrValue::Ints(is) => {
            w.packed_int64s(8, is);
            7
        }
        AttrValue::Strings(ss) => {
            for s in ss {
                w.string(9, s);
            }
            8
        }
    };
    w.int64(20, kind);
}

fn encode_tensor(w: &mut Writer, tensor: &Tensor) {
    // TensorProto: dims 1, data_type 2, float_data 4, string_data 6, int64_data 7, name 8.
    w.packed_int64s(1, &tensor.dims);
    match &tensor.data {
        TensorData::Float(values) => {
            w.int64(2, ElemType::Float as i64);
            w.packed_floats(4, values);
        }
        TensorData::String(values) => {
            w.int64(2, ElemType::String as i64);
            for v in values {
                w.string(6, v);
            }
        }
        TensorData::Int64(values) => {
            w.int64(2, ElemType::Int64 as i64);
            w.packed_int64s(7, values);
        }
    }
    w.string(8, &tensor.name);
}

fn encode_value_info(w: &mut Writer, info: &ValueInfo) {
    // ValueInfoProto: name 1, type 2. TypeProto: tensor_type 1. TypeProto.Tensor: elem_type 1,
    // shape 2. TensorShapeProto: dim 1. Dimension: dim_value 1, dim_param 2.
    w.string(1, &info.name);
    w.message(2, |t| {
        t.message(1, |tt| {
            tt.int64(1, info.elem_type as i64);
            tt.message(2, |s| {
                for dim in &info.shape {
                    s.message(1, |d| match dim {
                        Dim::Fixed(n) => d.int64(1, *n),
                        Dim::Param(p) => d.string(2, p),
                    });
                }
            });
        });
    });
}

/// Builds a graph with unique intermediate names.
#[derive(Debug, Default)]
pub(crate) struct GraphBuilder {
    pub graph: Graph,
    counter: usize,
}

impl GraphBuilder {
    /// A fresh value name with a readable stem, in the reserved [`INTERNAL_PREFIX`] namespace so
    /// that it never meets a feature name.
    pub(crate) fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{INTERNAL_PREFIX}{stem}_{}", self.counter)
    }

    /// Adds a float initializer and returns its name.
    pub(crate) fn floats(&mut self, stem: &str, dims: Vec<i64>, values: Vec<f32>) -> String {
        self.initializer(stem, dims, TensorData::Float(values))
    }

    /// Adds an int64 initializer and returns its name.
    pub(crate) fn int64s(&mut self, stem: &str, dims: Vec<i64>, values: Vec<i64>) -> String {
        self.initializer(stem, dims, TensorData::Int64(values))
    }

    /// Adds a string initializer and returns its name.
    pub(crate) fn strings(&mut self, stem: &str, dims: Vec<i64>, values: Vec<String>) -> String {
        self.initializer(stem, dims, TensorData::String(values))
    }

    fn initializer(&mut self, stem: &str, dims: Vec<i64>, data: TensorData) -> String {
        let name = self.fresh(stem);
        self.graph.initializers.push(Tensor { name: name.clone(), dims, data });
        name
    }

    /// Adds a default-domain node with one output and returns that output's name.
    pub(crate) fn op(
        &mut self,
        op_type: &'static str,
        inputs: &[&str],
        attributes: Vec<(&'static str, AttrValue)>,
    ) -> String {
        let out = self.fresh(&op_type.to_lowercase());
        self.node(op_type, "", inputs, &[&out], attributes);
        out
    }

    /// Adds a node with the given outputs.
    pub(crate) fn node(
        &mut self,
        op_type: &'static str,
        domain: &'static str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<(&'static str, AttrValue)>,
    ) {
        let name = self.fresh(op_type);
        self.graph.nodes.push(Node {
            op_type,
            domain,
            name,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attributes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_info_bytes() {
        let info =
            ValueInfo { name: "x".into(), elem_type: ElemType::Float, shape: vec![Dim::Param("N"), Dim::Fixed(1)] };
        let mut w = Writer::new();
        encode_value_info(&mut w, &info);
        // name "x"; type { tensor_type { elem_type 1, shape { dim { dim_param "N" } dim { dim_value 1 } } } }
        let expected = [
            0x0a, 0x01, b'x', // name
            0x12, 0x0f, // type, 15 bytes
            0x0a, 0x0d, // tensor_type, 13 bytes
            0x08, 0x01, // elem_type FLOAT
            0x12, 0x09, // shape, 9 bytes
            0x0a, 0x03, 0x12, 0x01, b'N', // dim { dim_param "N" }
            0x0a, 0x02, 0x08, 0x01, // dim { dim_value 1 }
        ];
        assert_eq!(w.into_bytes(), expected);
    }

    #[test]
    fn attribute_bytes() {
        let mut w = Writer::new();
        encode_attribute(&mut w, "axis", &AttrValue::Int(1));
        assert_eq!(w.into_bytes(), [0x0a, 0x04, b'a', b'x', b'i', b's', 0x18, 0x01, 0xa0, 0x01, 0x02]);

        let mut w = Writer::new();
        encode_attribute(&mut w, "s", &AttrValue::Strings(vec!["a".into(), "bc".into()]));
        assert_eq!(w.into_bytes(), [0x0a, 0x01, b's', 0x4a, 0x01, b'a', 0x4a, 0x02, b'b', b'c', 0xa0, 0x01, 0x08]);
    }

    #[test]
    fn tensor_bytes() {
        let t = Tensor { name: "w".into(), dims: vec![2], data: TensorData::Float(vec![1.0, 0.5]) };
        let mut w = Writer::new();
        encode_tensor(&mut w, &t);
        let expected = [
            0x0a, 0x01, 0x02, // dims [2], packed
            0x10, 0x01, // data_type FLOAT
            0x22, 0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x3f, // float_data
            0x42, 0x01, b'w', // name
        ];
        assert_eq!(w.into_bytes(), expected);
    }

    #[test]
    fn empty_model_header() {
        let model = Model {
            producer_name: "p".into(),
            producer_version: "1".into(),
            doc_string: String::new(),
            graph: Graph { name: "g".into(), ..Graph::default() },
            opsets: vec![("", 13)],
            metadata: vec![],
        };
        let expected = [
            0x08, 0x08, // ir_version 8
            0x12, 0x01, b'p', // producer_name
            0x1a, 0x01, b'1', // producer_version
            0x3a, 0x03, 0x12, 0x01, b'g', // graph { name "g" }
            0x42, 0x04, 0x0a, 0x00, 0x10, 0x0d, // opset_import { domain "", version 13 }
        ];
        assert_eq!(model.encode(), expected);
    }
}
