//! The messages of JetStream's gRPC service, `jetstream_proto.Orchestrator`,
//! that a benchmark sends and reads: `Decode` and its stream of responses.
//! Written out with prost's derive, tag for tag as in JetStream's
//! `jetstream/core/proto/jetstream.proto`; written by hand so that building
//! needs no `protoc`. The tests pin the byte layout, and
//! `tests/e2e/interop.rs` checks it against the stubs the `google-jetstream`
//! package ships.

/// The service's full name, as it appears in the request path.
pub const SERVICE: &str = "jetstream_proto.Orchestrator";

/// `Decode`'s request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DecodeRequest {
    /// The most tokens to generate.
    #[prost(int32, tag = "4")]
    pub max_tokens: i32,
    #[prost(oneof = "decode_request::Content", tags = "5, 6")]
    pub content: Option<decode_request::Content>,
    #[prost(oneof = "decode_request::MetadataOptional", tags = "7")]
    pub metadata_optional: Option<decode_request::MetadataOptional>,
    #[prost(int32, tag = "8")]
    pub num_samples: i32,
}

/// [`DecodeRequest`]'s nested messages.
pub mod decode_request {
    /// A prompt the server tokenizes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TextContent {
        #[prost(string, tag = "1")]
        pub text: String,
    }

    /// A prompt as token ids.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TokenContent {
        #[prost(int32, repeated, tag = "1")]
        pub token_ids: Vec<i32>,
    }

    /// The client's start time.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        #[prost(float, tag = "1")]
        pub start_time: f32,
    }

    /// The prompt.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Content {
        #[prost(message, tag = "5")]
        TextContent(TextContent),
        #[prost(message, tag = "6")]
        TokenContent(TokenContent),
    }

    /// Request metadata.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum MetadataOptional {
        #[prost(message, tag = "7")]
        Metadata(Metadata),
    }
}

/// Each message of `Decode`'s response stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DecodeResponse {
    #[prost(oneof = "decode_response::Content", tags = "2, 3")]
    pub content: Option<decode_response::Content>,
}

/// [`DecodeResponse`]'s nested messages.
pub mod decode_response {
    /// A placeholder first message.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InitialContent {}

    /// The new output of each sample.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamContent {
        #[prost(message, repeated, tag = "1")]
        pub samples: Vec<stream_content::Sample>,
    }

    /// [`StreamContent`]'s sample.
    pub mod stream_content {
        /// One sample's new text and its token ids (one id, or several with
        /// speculative decoding).
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Sample {
            #[prost(string, tag = "1")]
            pub text: String,
            #[prost(int32, repeated, tag = "2")]
            pub token_ids: Vec<i32>,
        }
    }

    /// What the message holds.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Content {
        #[prost(message, tag = "2")]
        InitialContent(InitialContent),
        #[prost(message, tag = "3")]
        StreamContent(StreamContent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn fields_are_where_the_proto_puts_them() {
        let req = DecodeRequest {
            max_tokens: 16,
            content: Some(decode_request::Content::TextContent(decode_request::TextContent {
                text: "hi".into(),
            })),
            ..Default::default()
        };
        // max_tokens (4, varint 16), text_content (5, LEN: text 1 "hi").
        let expected = [0x20, 16, 0x2a, 4, 0x0a, 2, b'h', b'i'];
        assert_eq!(req.encode_to_vec(), expected);
        assert_eq!(DecodeRequest::decode(&expected[..]).unwrap(), req);
        let response = DecodeResponse {
            content: Some(decode_response::Content::StreamContent(
                decode_response::StreamContent {
                    samples: vec![decode_response::stream_content::Sample {
                        text: "a".into(),
                        token_ids: vec![9],
                    }],
                },
            )),
        };
        // stream_content (3, LEN: samples 1 (LEN: text 1 "a", token_ids 2 packed [9])).
        assert_eq!(response.encode_to_vec(), [0x1a, 8, 0x0a, 6, 0x0a, 1, b'a', 0x12, 1, 9]);
    }
}
