//! The messages of vLLM's gRPC engine service, `vllm.grpc.engine.VllmEngine`
//! (`vllm serve --grpc`, through `smg-grpc-servicer`), that a benchmark
//! sends and reads: `Generate` and its stream of responses. Written out with
//! prost's derive, tag for tag as in `vllm_engine.proto` (its copy in the
//! `smg-grpc-proto` package, which vLLM's server is built from); fields a
//! benchmark never sets or reads (multimodal inputs, KV-transfer and
//! logprob details) are left out, and prost skips them when decoding.
//! Written by hand so that building needs no `protoc`; the tests pin the
//! byte layout, and `tests/e2e/interop.rs` checks it against the stubs the
//! official Python package ships.

use std::collections::BTreeMap;

/// The service's full name, as it appears in the request path.
pub const SERVICE: &str = "vllm.grpc.engine.VllmEngine";

/// Sampling parameters for text generation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SamplingParams {
    #[prost(float, optional, tag = "1")]
    pub temperature: Option<f32>,
    #[prost(float, tag = "2")]
    pub top_p: f32,
    #[prost(uint32, tag = "3")]
    pub top_k: u32,
    #[prost(float, tag = "4")]
    pub min_p: f32,
    #[prost(float, tag = "5")]
    pub frequency_penalty: f32,
    #[prost(float, tag = "6")]
    pub presence_penalty: f32,
    #[prost(float, tag = "7")]
    pub repetition_penalty: f32,
    #[prost(uint32, optional, tag = "8")]
    pub max_tokens: Option<u32>,
    #[prost(uint32, tag = "9")]
    pub min_tokens: u32,
    #[prost(string, repeated, tag = "10")]
    pub stop: Vec<String>,
    #[prost(uint32, repeated, tag = "11")]
    pub stop_token_ids: Vec<u32>,
    #[prost(bool, tag = "12")]
    pub skip_special_tokens: bool,
    #[prost(bool, tag = "13")]
    pub spaces_between_special_tokens: bool,
    #[prost(bool, tag = "14")]
    pub ignore_eos: bool,
    /// Parallel samples; 0 is one.
    #[prost(uint32, tag = "15")]
    pub n: u32,
    #[prost(int32, optional, tag = "22")]
    pub logprobs: Option<i32>,
    #[prost(int32, optional, tag = "23")]
    pub prompt_logprobs: Option<i32>,
    #[prost(int32, optional, tag = "24")]
    pub seed: Option<i32>,
    #[prost(bool, tag = "25")]
    pub include_stop_str_in_output: bool,
    #[prost(btree_map = "int32, float", tag = "26")]
    pub logit_bias: BTreeMap<i32, f32>,
    #[prost(int32, optional, tag = "27")]
    pub truncate_prompt_tokens: Option<i32>,
}

/// A prompt given as token ids.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TokenizedInput {
    #[prost(string, tag = "1")]
    pub original_text: String,
    #[prost(uint32, repeated, tag = "2")]
    pub input_ids: Vec<u32>,
}

/// `Generate`'s request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GenerateRequest {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(oneof = "generate_request::Input", tags = "2, 3")]
    pub input: Option<generate_request::Input>,
    #[prost(message, optional, tag = "4")]
    pub sampling_params: Option<SamplingParams>,
    #[prost(bool, tag = "5")]
    pub stream: bool,
}

/// [`GenerateRequest`]'s prompt.
pub mod generate_request {
    /// Token ids, or text the server tokenizes.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Input {
        #[prost(message, tag = "2")]
        Tokenized(super::TokenizedInput),
        #[prost(string, tag = "3")]
        Text(String),
    }
}

/// Each message of `Generate`'s response stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GenerateResponse {
    #[prost(oneof = "generate_response::Response", tags = "1, 2")]
    pub response: Option<generate_response::Response>,
}

/// [`GenerateResponse`]'s kinds.
pub mod generate_response {
    /// New tokens, or the end.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Response {
        #[prost(message, tag = "1")]
        Chunk(super::GenerateStreamChunk),
        #[prost(message, tag = "2")]
        Complete(super::GenerateComplete),
    }
}

/// A streamed chunk: the tokens new since the last one, and their count.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GenerateStreamChunk {
    #[prost(uint32, repeated, tag = "1")]
    pub token_ids: Vec<u32>,
    #[prost(uint32, tag = "2")]
    pub prompt_tokens: u32,
    /// The tokens of this chunk (vLLM's servicer sends the delta's count).
    #[prost(uint32, tag = "3")]
    pub completion_tokens: u32,
    #[prost(uint32, tag = "4")]
    pub cached_tokens: u32,
    /// Which of `n` outputs this is.
    #[prost(uint32, tag = "7")]
    pub index: u32,
}

/// The end of an output. Non-streamed, it holds every output token;
/// streamed, it repeats the last chunk's tokens and count.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GenerateComplete {
    #[prost(uint32, repeated, tag = "1")]
    pub output_ids: Vec<u32>,
    /// `stop`, `length`, `abort` or `error`.
    #[prost(string, tag = "2")]
    pub finish_reason: String,
    #[prost(uint32, tag = "3")]
    pub prompt_tokens: u32,
    #[prost(uint32, tag = "4")]
    pub completion_tokens: u32,
    #[prost(uint32, tag = "5")]
    pub cached_tokens: u32,
    #[prost(uint32, tag = "8")]
    pub index: u32,
    #[prost(uint32, tag = "13")]
    pub spec_accepted_tokens: u32,
    #[prost(uint32, tag = "14")]
    pub spec_draft_tokens: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn fields_are_where_the_proto_puts_them() {
        let req = GenerateRequest {
            request_id: "7".into(),
            input: Some(generate_request::Input::Text("hi".into())),
            sampling_params: Some(SamplingParams {
                max_tokens: Some(16),
                ignore_eos: true,
                ..Default::default()
            }),
            stream: true,
        };
        // request_id (1, "7"), text (3, "hi"), sampling_params (4, LEN:
        // max_tokens 8 varint 16, ignore_eos 14 true), stream (5, true).
        let expected = [0x0a, 1, b'7', 0x1a, 2, b'h', b'i', 0x22, 4, 0x40, 16, 0x70, 1, 0x28, 1];
        assert_eq!(req.encode_to_vec(), expected);
        assert_eq!(GenerateRequest::decode(&expected[..]).unwrap(), req);
        let chunk = GenerateResponse {
            response: Some(generate_response::Response::Chunk(GenerateStreamChunk {
                token_ids: vec![5, 6],
                completion_tokens: 2,
                ..Default::default()
            })),
        };
        // chunk (1, LEN: token_ids 1 packed [5, 6], completion_tokens 3 = 2).
        assert_eq!(chunk.encode_to_vec(), [0x0a, 6, 0x0a, 2, 5, 6, 0x18, 2]);
        let complete = GenerateResponse {
            response: Some(generate_response::Response::Complete(GenerateComplete {
                finish_reason: "length".into(),
                ..Default::default()
            })),
        };
        assert_eq!(
            complete.encode_to_vec(),
            [0x12, 8, 0x12, 6, b'l', b'e', b'n', b'g', b't', b'h']
        );
    }
}
