//! The messages of KServe v2's `inference.GRPCInferenceService` that an LLM
//! benchmark sends and reads (`ModelInfer`, `ModelStreamInfer`), written
//! out with prost's derive, field for field and tag for tag as in the
//! protocol's `grpc_service.proto` (kserve/open-inference-protocol, the same
//! file Triton ships). Written by hand rather than generated so building
//! needs no `protoc`; the tests encode against byte layouts the proto fixes.

// BTreeMap, not HashMap: a HashMap seeds itself from the system's randomness,
// which a plugin is not given.
use std::collections::BTreeMap;

/// The service's full name, as it appears in the request path.
pub const SERVICE: &str = "inference.GRPCInferenceService";

/// A request or response parameter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferParameter {
    #[prost(oneof = "infer_parameter::ParameterChoice", tags = "1, 2, 3, 4, 5")]
    pub parameter_choice: Option<infer_parameter::ParameterChoice>,
}

/// [`InferParameter`]'s choices.
pub mod infer_parameter {
    /// One of a parameter's value kinds.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ParameterChoice {
        #[prost(bool, tag = "1")]
        BoolParam(bool),
        #[prost(int64, tag = "2")]
        Int64Param(i64),
        #[prost(string, tag = "3")]
        StringParam(String),
        #[prost(double, tag = "4")]
        DoubleParam(f64),
        #[prost(uint64, tag = "5")]
        Uint64Param(u64),
    }
}

/// A tensor's elements, one field per data type (the alternative to the
/// raw contents).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferTensorContents {
    #[prost(bool, repeated, tag = "1")]
    pub bool_contents: Vec<bool>,
    #[prost(int32, repeated, tag = "2")]
    pub int_contents: Vec<i32>,
    #[prost(int64, repeated, tag = "3")]
    pub int64_contents: Vec<i64>,
    #[prost(uint32, repeated, tag = "4")]
    pub uint_contents: Vec<u32>,
    #[prost(uint64, repeated, tag = "5")]
    pub uint64_contents: Vec<u64>,
    #[prost(float, repeated, tag = "6")]
    pub fp32_contents: Vec<f32>,
    #[prost(double, repeated, tag = "7")]
    pub fp64_contents: Vec<f64>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub bytes_contents: Vec<Vec<u8>>,
}

/// An input tensor of a request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferInputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    #[prost(btree_map = "string, message", tag = "4")]
    pub parameters: BTreeMap<String, InferParameter>,
    #[prost(message, optional, tag = "5")]
    pub contents: Option<InferTensorContents>,
}

/// An output the request asks for by name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferRequestedOutputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(btree_map = "string, message", tag = "2")]
    pub parameters: BTreeMap<String, InferParameter>,
}

/// `ModelInfer`'s request, and each message of `ModelStreamInfer`'s.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferRequest {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(btree_map = "string, message", tag = "4")]
    pub parameters: BTreeMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    pub inputs: Vec<InferInputTensor>,
    #[prost(message, repeated, tag = "6")]
    pub outputs: Vec<InferRequestedOutputTensor>,
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub raw_input_contents: Vec<Vec<u8>>,
}

/// An output tensor of a response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferOutputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    #[prost(btree_map = "string, message", tag = "4")]
    pub parameters: BTreeMap<String, InferParameter>,
    #[prost(message, optional, tag = "5")]
    pub contents: Option<InferTensorContents>,
}

/// `ModelInfer`'s response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferResponse {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(btree_map = "string, message", tag = "4")]
    pub parameters: BTreeMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<InferOutputTensor>,
    /// One entry per output, in order, when the server sends raw contents
    /// (Triton always does).
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub raw_output_contents: Vec<Vec<u8>>,
}

/// Each message of `ModelStreamInfer`'s response stream: an error, or a response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelStreamInferResponse {
    #[prost(string, tag = "1")]
    pub error_message: String,
    #[prost(message, optional, tag = "2")]
    pub infer_response: Option<ModelInferResponse>,
}

/// A BYTES tensor's raw contents: each element as a 4-byte little-endian
/// length and its bytes.
pub fn raw_bytes_elements(raw: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        out.push(rest.get(4..4 + len)?);
        rest = &rest[4 + len..];
    }
    Some(out)
}

/// Elements as a BYTES tensor's raw contents.
pub fn raw_bytes(elements: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elements {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn fields_are_where_the_proto_puts_them() {
        let req = ModelInferRequest {
            model_name: "m".into(),
            inputs: vec![InferInputTensor {
                name: "t".into(),
                datatype: "BYTES".into(),
                shape: vec![1],
                contents: Some(InferTensorContents {
                    bytes_contents: vec![b"x".to_vec()],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        // model_name (1, LEN "m"), inputs (5, LEN: name 1 "t", datatype 2
        // "BYTES", shape 3 packed [1], contents 5 {bytes_contents 8 "x"}).
        let expected = [
            0x0a, 1, b'm', 0x2a, 18, 0x0a, 1, b't', 0x12, 5, b'B', b'Y', b'T', b'E', b'S', 0x1a, 1, 1, 0x2a, 3, 0x42,
            1, b'x',
        ];
        assert_eq!(req.encode_to_vec(), expected);
        let back = ModelInferRequest::decode(&expected[..]).unwrap();
        assert_eq!(back, req);
        let stream = ModelStreamInferResponse {
            error_message: "e".into(),
            infer_response: None,
        };
        assert_eq!(stream.encode_to_vec(), [0x0a, 1, b'e']);
    }

    #[test]
    fn raw_bytes_round_trip_and_truncation_is_refused() {
        let raw = raw_bytes(&[b"ab", b"", b"c"]);
        assert_eq!(raw, [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0, 1, 0, 0, 0, b'c']);
        assert_eq!(raw_bytes_elements(&raw).unwrap(), [&b"ab"[..], b"", b"c"]);
        assert!(raw_bytes_elements(&raw[..raw.len() - 1]).is_none());
        assert!(raw_bytes_elements(&[1, 0]).is_none());
    }
}
