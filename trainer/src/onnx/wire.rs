//! The protobuf wire format, write side only: what the ONNX encoder needs and nothing more.
//!
//! Field numbers and wire types follow the protobuf encoding guide: a field is a tag
//! (`field_number << 3 | wire_type`) as a varint, then its value; varints are little-endian base-128;
//! `int64` negatives are their two's-complement `u64` (ten bytes); a packed `float` is four little-endian bytes each;
//! strings, bytes, nested messages and packed repeated scalars are length-delimited.

/// The wire types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    /// int32, int64, uint64, bool, enum.
    Varint = 0,
    /// string, bytes, embedded messages, packed repeated fields.
    LengthDelimited = 2,
}

/// A growing buffer of encoded fields.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// A bare varint (no tag).
    pub(crate) fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    fn tag(&mut self, field: u32, wire: WireType) {
        self.varint(((field as u64) << 3) | wire as u64);
    }

    /// An `int64` (or `int32`, or enum) field; negatives take ten bytes, as protobuf encodes them.
    pub(crate) fn int64(&mut self, field: u32, value: i64) {
        self.tag(field, WireType::Varint);
        self.varint(value as u64);
    }

    /// A `bytes` field.
    pub(crate) fn bytes(&mut self, field: u32, value: &[u8]) {
        self.tag(field, WireType::LengthDelimited);
        self.varint(value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    /// A `string` field.
    pub(crate) fn string(&mut self, field: u32, value: &str) {
        self.bytes(field, value.as_bytes());
    }

    /// A repeated `float` field, packed (parsers accept packed encoding for any repeated scalar).
    pub(crate) fn packed_floats(&mut self, field: u32, values: &[f32]) {
        if values.is_empty() {
            return;
        }
        self.tag(field, WireType::LengthDelimited);
        self.varint(values.len() as u64 * 4);
        for v in values {
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A repeated `int64` field, packed.
    pub(crate) fn packed_int64s(&mut self, field: u32, values: &[i64]) {
        if values.is_empty() {
            return;
        }
        let mut inner = Writer::new();
        for &v in values {
            inner.varint(v as u64);
        }
        self.bytes(field, &inner.buf);
    }

    /// An embedded message field, encoded by `body`.
    pub(crate) fn message(&mut self, field: u32, body: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::new();
        body(&mut inner);
        self.bytes(field, &inner.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::new();
        f(&mut w);
        w.into_bytes()
    }

    // Known sequences from the protobuf encoding guide and hand-checked against its rules.
    #[test]
    fn varints() {
        assert_eq!(encoded(|w| w.varint(0)), [0x00]);
        assert_eq!(encoded(|w| w.varint(1)), [0x01]);
        assert_eq!(encoded(|w| w.varint(127)), [0x7f]);
        assert_eq!(encoded(|w| w.varint(128)), [0x80, 0x01]);
        assert_eq!(encoded(|w| w.varint(150)), [0x96, 0x01]);
        assert_eq!(encoded(|w| w.varint(300)), [0xac, 0x02]);
        assert_eq!(encoded(|w| w.varint(u64::MAX)), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }

    #[test]
    fn int64_fields() {
        // The guide's first example: field 1 = 150.
        assert_eq!(encoded(|w| w.int64(1, 150)), [0x08, 0x96, 0x01]);
        // Negative int64: ten-byte two's complement.
        assert_eq!(encoded(|w| w.int64(1, -1)), [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        // Field numbers above 15 take a two-byte tag: field 20 varint = (20 << 3) | 0 = 160.
        assert_eq!(encoded(|w| w.int64(20, 2)), [0xa0, 0x01, 0x02]);
    }

    #[test]
    fn strings_and_messages() {
        // The guide's string example: field 2 = "testing".
        assert_eq!(encoded(|w| w.string(2, "testing")), [0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67]);
        // The guide's embedded message example: field 3 = { field 1 = 150 }.
        assert_eq!(encoded(|w| w.message(3, |m| m.int64(1, 150))), [0x1a, 0x03, 0x08, 0x96, 0x01]);
        assert_eq!(encoded(|w| w.string(1, "")), [0x0a, 0x00]);
    }

    #[test]
    fn floats() {
        // 1.0f32 = 0x3f800000 and -2.0f32 = 0xc0000000, little-endian, packed in one field.
        assert_eq!(
            encoded(|w| w.packed_floats(4, &[1.0, -2.0])),
            [0x22, 0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]
        );
        assert!(encoded(|w| w.packed_floats(4, &[])).is_empty());
    }

    #[test]
    fn packed_int64s() {
        // The guide's packed example: field 4 = [3, 270, 86942] -> 22 06 03 8E 02 9E A7 05.
        assert_eq!(encoded(|w| w.packed_int64s(4, &[3, 270, 86942])), [0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05]);
    }
}
