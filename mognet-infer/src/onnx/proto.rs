//! Just enough of the protocol-buffer wire format to write an ONNX model: the messages, fields
//! and types the exporter uses, encoded by hand so that the engine's crate stays free of a
//! protobuf dependency. Field numbers are those of `onnx.proto` (IR version 8).

/// An encoded message under construction.
#[derive(Debug, Default, Clone)]
pub struct Message(Vec<u8>);

/// ONNX tensor element types (`TensorProto.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// 32-bit float.
    Float = 1,
    /// 8-bit unsigned integer.
    Uint8 = 2,
    /// 8-bit signed integer.
    Int8 = 3,
    /// 64-bit signed integer.
    Int64 = 7,
    /// 64-bit float.
    Double = 11,
}

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }

    /// A varint field (int64, int32, enum).
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }

    /// A 32-bit float field.
    pub fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend(v.to_le_bytes());
        self
    }

    /// A length-delimited field: bytes, a string, or an embedded message.
    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    /// A string field.
    pub fn string(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    /// An embedded message field.
    pub fn message(&mut self, field: u32, m: &Message) -> &mut Self {
        self.bytes(field, &m.0)
    }

    /// A packed repeated varint field.
    pub fn packed(&mut self, field: u32, values: &[i64]) -> &mut Self {
        let mut inner = Message::default();
        for &v in values {
            inner.varint(v as u64);
        }
        self.bytes(field, &inner.0)
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// `TensorProto`: a named constant of `dims` with little-endian `raw` data.
pub fn tensor(name: &str, elem: ElemType, dims: &[i64], raw: &[u8]) -> Message {
    let mut t = Message::default();
    t.packed(1, dims)
        .int(2, elem as i64)
        .string(8, name)
        .bytes(9, raw);
    t
}

/// A float tensor.
pub fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, ElemType::Float, dims, &raw)
}

/// An int64 tensor.
pub fn int64_tensor(name: &str, dims: &[i64], values: &[i64]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, ElemType::Int64, dims, &raw)
}

/// An attribute of a node (`AttributeProto`).
#[derive(Debug, Clone)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOAT`.
    Float(f32),
}

/// `AttributeProto`.
fn attribute(name: &str, value: &Attr) -> Message {
    let mut a = Message::default();
    a.string(1, name);
    match value {
        Attr::Float(f) => a.float(2, *f).int(20, 1),
        Attr::Int(i) => a.int(3, *i).int(20, 2),
        Attr::Ints(v) => a.packed(8, v).int(20, 7),
    };
    a
}

/// `NodeProto`: `op_type` from `inputs` to `outputs`.
pub fn node(
    name: &str,
    op_type: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[(&str, Attr)],
) -> Message {
    let mut n = Message::default();
    for i in inputs {
        n.string(1, i);
    }
    for o in outputs {
        n.string(2, o);
    }
    n.string(3, name).string(4, op_type);
    for (k, v) in attrs {
        n.message(5, &attribute(k, v));
    }
    n
}

/// A dimension of a value's shape: a size, or a symbol (the batch).
#[derive(Debug, Clone)]
pub enum Dim {
    /// A fixed size.
    Value(i64),
    /// A named free size.
    Param(&'static str),
}

/// `ValueInfoProto` of a tensor `name` of `elem` and `dims`.
pub fn value_info(name: &str, elem: ElemType, dims: &[Dim]) -> Message {
    let mut shape = Message::default();
    for d in dims {
        let mut dim = Message::default();
        match d {
            Dim::Value(v) => dim.int(1, *v),
            Dim::Param(p) => dim.string(2, p),
        };
        shape.message(1, &dim);
    }
    let mut tensor_type = Message::default();
    tensor_type.int(1, elem as i64).message(2, &shape);
    let mut ty = Message::default();
    ty.message(1, &tensor_type);
    let mut v = Message::default();
    v.string(1, name).message(2, &ty);
    v
}

/// `ModelProto` around `graph`: IR version 8, the default opset at `opset`.
pub fn model(graph: &Message, opset: i64, producer: &str) -> Vec<u8> {
    let mut op = Message::default();
    op.string(1, "").int(2, opset);
    let mut m = Message::default();
    m.int(1, 8)
        .string(2, producer)
        .string(3, env!("CARGO_PKG_VERSION"))
        .message(7, graph)
        .message(8, &op);
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_by_hand() {
        let mut m = Message::default();
        // Field 1 varint 150: 08 96 01 (the protobuf documentation's example).
        m.int(1, 150);
        assert_eq!(m.clone().into_bytes(), vec![0x08, 0x96, 0x01]);
        // Field 2 string "testing": 12 07 74 65 73 74 69 6e 67.
        let mut s = Message::default();
        s.string(2, "testing");
        assert_eq!(
            s.into_bytes(),
            vec![0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67]
        );
        // Packed field 4 of [3, 270, 86942]: 22 06 03 8e 02 9e a7 05.
        let mut p = Message::default();
        p.packed(4, &[3, 270, 86942]);
        assert_eq!(
            p.into_bytes(),
            vec![0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05]
        );
        // A negative int64 takes ten bytes (two's complement).
        let mut n = Message::default();
        n.int(1, -1);
        assert_eq!(n.into_bytes().len(), 11);
        // A float is fixed32, little-endian.
        let mut f = Message::default();
        f.float(2, 1.0);
        assert_eq!(f.into_bytes(), vec![0x15, 0x00, 0x00, 0x80, 0x3f]);
    }
}
