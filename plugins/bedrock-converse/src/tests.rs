//! Native unit tests of the wire format, through the SDK's test harness.
//! The events are in the shapes AWS's ConverseStream reference documents;
//! the signature is checked against botocore end to end
//! (`tests/e2e/protocols.rs`, `tests/interop/sigv4_server.py`).

use super::*;
use barrage_sdk::testing::{self, decode_stream};
use barrage_sdk::{Datetime, ToolCall};

fn spec(prompt: Prompt, stream: bool) -> RequestSpec {
    RequestSpec {
        id: 1,
        model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        prompt,
        generation: Generation {
            max_tokens: Some(64),
            min_tokens: None,
            ignore_eos: false,
            temperature: Some(0.5),
            stream,
            include_usage: true,
        },
        extra: None,
        tools: Vec::new(),
        // 2015-08-30T12:36:00Z
        send_time: Datetime {
            seconds: 1_440_938_160,
            nanoseconds: 0,
        },
    }
}

fn parts(req: &EncodedRequest) -> (&str, &[(String, String)], Value) {
    let WireRequest::Http(h) = &req.request else { panic!() };
    (&h.path, &h.headers, serde_json::from_slice(&h.body).unwrap())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn a_chat_becomes_converse_blocks_signed_at_the_send_time() {
    testing::reset();
    testing::set_secret(aws_common::ACCESS_KEY_ID, "AKIDEXAMPLE");
    testing::set_secret(
        aws_common::SECRET_ACCESS_KEY,
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    );
    testing::set_config(json!({"region": "eu-west-3"}));
    let user = Message {
        role: "user".into(),
        content: vec![
            ContentPart::Text("What is this?".into()),
            ContentPart::Image(Media {
                media_type: "image/png".into(),
                source: MediaSource::Inline(b"PNG".to_vec()),
                tokens: None,
            }),
        ],
        tool_calls: Vec::new(),
        tool_call_id: None,
    };
    let call = Message {
        role: "assistant".into(),
        content: Vec::new(),
        tool_calls: vec![ToolCall {
            id: "t1".into(),
            name: "look".into(),
            arguments: r#"{"at":"it"}"#.into(),
        }],
        tool_call_id: None,
    };
    let result = Message {
        tool_call_id: Some("t1".into()),
        ..Message::text("tool", "a cat")
    };
    let mut s = spec(
        Prompt::Messages(vec![Message::text("system", "be brief"), user, call, result]),
        true,
    );
    s.tools = vec![Tool {
        name: "look".into(),
        description: Some("look at it".into()),
        parameters: r#"{"type":"object"}"#.into(),
    }];
    let req = BedrockConverse::encode(s).unwrap();
    let (path, headers, body) = parts(&req);
    assert_eq!(path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream");
    assert_eq!(req.framing, Framing::AwsEventStream);
    assert_eq!(body["system"], json!([{"text": "be brief"}]));
    assert_eq!(body["messages"][0]["content"][1]["image"]["source"]["bytes"], "UE5H");
    assert_eq!(
        body["messages"][1]["content"][0]["toolUse"]["input"],
        json!({"at": "it"})
    );
    assert_eq!(body["messages"][2]["role"], "user");
    assert_eq!(body["messages"][2]["content"][0]["toolResult"]["toolUseId"], "t1");
    assert_eq!(body["inferenceConfig"], json!({"maxTokens": 64, "temperature": 0.5}));
    assert_eq!(
        body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"],
        "object"
    );
    assert_eq!(header(headers, "x-amz-date"), Some("20150830T123600Z"));
    let auth = header(headers, "authorization").unwrap();
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-3/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature="
        ),
        "{auth}"
    );
}

#[test]
fn without_credentials_requests_go_unsigned_and_half_a_pair_is_refused() {
    testing::reset();
    let req = BedrockConverse::encode(spec(Prompt::Text("hi".into()), false)).unwrap();
    let (path, headers, _) = parts(&req);
    assert!(path.ends_with("/converse"));
    assert_eq!(header(headers, "authorization"), None);
    testing::set_secret(aws_common::ACCESS_KEY_ID, "AKIDEXAMPLE");
    let err = BedrockConverse::encode(spec(Prompt::Text("hi".into()), false)).unwrap_err();
    assert!(err.contains("secret-access-key"), "{err}");
}

#[test]
fn what_bedrock_cannot_take_is_refused_by_name() {
    testing::reset();
    let at_url = Message {
        role: "user".into(),
        content: vec![ContentPart::Image(Media {
            media_type: "image/png".into(),
            source: MediaSource::Url("https://example.invalid/cat.png".into()),
            tokens: None,
        })],
        tool_calls: Vec::new(),
        tool_call_id: None,
    };
    let err = BedrockConverse::encode(spec(Prompt::Messages(vec![at_url]), true)).unwrap_err();
    assert!(err.contains("not from a URL"), "{err}");
    let err = BedrockConverse::encode(spec(Prompt::TokenIds(vec![1]), true)).unwrap_err();
    assert!(err.contains("token ids"), "{err}");
    assert!(Settings::from_config(&json!({"region": "us east"})).is_err());
    assert!(Settings::from_config(&json!({"endpoint": "x"})).is_err());
}

fn event(kind: &str, payload: Value) -> FrameBuf {
    FrameBuf {
        event: Some(kind.into()),
        data: payload.to_string().into_bytes(),
    }
}

#[test]
fn a_stream_reports_text_reasoning_tool_input_stop_and_usage() {
    let frames = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"text": "Hello"}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"a\":1}"}}}),
        ),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15,
                                            "cacheReadInputTokens": 4}, "metrics": {"latencyMs": 100}}),
        ),
    ];
    let events = decode_stream::<BedrockConverse>(frames, DecodeOptions { want_text: true }).unwrap();
    assert!(matches!(events[0], Event::RoleOnly));
    assert!(matches!(&events[1], Event::Reasoning(d) if d.text.as_deref() == Some("hmm")));
    assert!(matches!(&events[2], Event::Content(d) if d.bytes == 5));
    assert!(matches!(&events[5], Event::Content(d) if d.text.as_deref() == Some("{\"a\":1}")));
    assert!(matches!(&events[6], Event::Finish(r) if r == "tool_use"));
    assert!(
        matches!(&events[7], Event::Usage(u) if u.prompt_tokens == Some(14) && u.completion_tokens == Some(5)
            && u.cached_tokens == Some(4)),
        "{events:?}"
    );
    assert!(matches!(events[8], Event::Done));
}

#[test]
fn exceptions_and_bad_payloads_are_named() {
    let frames = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "exception:throttlingException",
            json!({"message": "Too many requests, please wait"}),
        ),
        FrameBuf {
            event: Some("contentBlockDelta".into()),
            data: b"{\"delta\":".to_vec(),
        },
    ];
    let events = decode_stream::<BedrockConverse>(frames, DecodeOptions { want_text: false }).unwrap();
    assert!(
        matches!(&events[1], Event::ServerError(e) if e.code.as_deref() == Some("throttlingException")
            && e.message == "Too many requests, please wait"),
        "{events:?}"
    );
    assert!(
        matches!(&events[2], Event::Malformed(m) if m.contains("contentBlockDelta")),
        "{events:?}"
    );
}

#[test]
fn a_whole_response_and_a_refusal_decode() {
    let head = |status| ResponseHead {
        status,
        headers: vec![],
    };
    let body = json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hi there"}]}},
                      "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
                      "metrics": {"latencyMs": 9}});
    let events = decode_unary(
        &head(200),
        body.to_string().as_bytes(),
        &DecodeOptions { want_text: false },
    );
    assert!(matches!(&events[0], Event::Content(d) if d.bytes == 8));
    assert!(matches!(&events[1], Event::Finish(r) if r == "end_turn"));
    assert!(matches!(&events[2], Event::Usage(u) if u.prompt_tokens == Some(3)));
    let denied = decode_unary(
        &head(403),
        br#"{"message":"The security token included in the request is invalid."}"#,
        &DecodeOptions { want_text: false },
    );
    assert!(
        matches!(&denied[0], Event::ServerError(e) if e.message.contains("security token")),
        "{denied:?}"
    );
    let junk = decode_unary(&head(200), b"<html>", &DecodeOptions { want_text: false });
    assert!(matches!(&junk[0], Event::Malformed(_)));
}
