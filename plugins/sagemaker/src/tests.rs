//! Native unit tests of the wire format, through the SDK's test harness.

use super::*;
use barrage_sdk::Datetime;
use barrage_sdk::testing::{self, decode_stream};
use serde_json::json;

fn spec(stream: bool) -> RequestSpec {
    RequestSpec {
        id: 1,
        model: "llama-endpoint".into(),
        prompt: Prompt::Text("hello there".into()),
        generation: Generation {
            max_tokens: Some(8),
            min_tokens: None,
            ignore_eos: false,
            temperature: None,
            stream,
            include_usage: true,
        },
        extra: None,
        tools: Vec::new(),
        send_time: Datetime {
            seconds: 1_440_938_160,
            nanoseconds: 0,
        },
    }
}

#[test]
fn a_request_is_a_chat_body_sent_to_the_endpoint_and_signed() {
    testing::reset();
    testing::set_secret(aws_common::ACCESS_KEY_ID, "AKIDEXAMPLE");
    testing::set_secret(
        aws_common::SECRET_ACCESS_KEY,
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    );
    testing::set_config(json!({"inference_component": "llama-ic-1"}));
    let req = SageMaker::encode(spec(true)).unwrap();
    let WireRequest::Http(h) = &req.request else { panic!() };
    assert_eq!(h.path, "/endpoints/llama-endpoint/invocations-response-stream");
    assert_eq!(req.framing, Framing::AwsEventStream);
    let body: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(body["messages"], json!([{"role": "user", "content": "hello there"}]));
    assert_eq!(body["stream_options"]["include_usage"], true);
    let header = |name: &str| h.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(header("x-amzn-sagemaker-inference-component"), Some("llama-ic-1"));
    assert_eq!(header("accept"), None);
    let auth = header("authorization").unwrap();
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sagemaker/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amzn-sagemaker-accept;x-amzn-sagemaker-inference-component, "
        ),
        "{auth}"
    );
    testing::set_config(json!({"endpoint": "other"}));
    let req = SageMaker::encode(spec(false)).unwrap();
    let WireRequest::Http(h) = &req.request else { panic!() };
    assert_eq!(h.path, "/endpoints/other/invocations");
    assert_eq!(
        Settings::from_config(&json!({"endpoint": "a/b"}))
            .unwrap_err()
            .field
            .as_deref(),
        Some("endpoint")
    );
}

fn part(bytes: &str) -> FrameBuf {
    FrameBuf {
        event: Some("PayloadPart".into()),
        data: bytes.as_bytes().to_vec(),
    }
}

#[test]
fn payload_parts_are_joined_and_read_at_each_events_end() {
    let chunk = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
    let last = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}]}"#;
    let usage = r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}"#;
    let (a, b) = chunk.split_at(20);
    let frames = vec![
        part(&format!("data: {a}")),
        part(&format!("{b}\n")),
        part(&format!("\ndata: {last}\r\n\r\ndata: {usage}\n\ndata: [DO")),
        part("NE]\n\n"),
    ];
    let events = decode_stream::<SageMaker>(frames, DecodeOptions { want_text: true }).unwrap();
    // Frames 0 and 1 hold part of an event; frame 2 ends three events.
    assert!(matches!(events[0], Event::KeepAlive), "{events:?}");
    assert!(matches!(events[1], Event::KeepAlive), "{events:?}");
    assert!(
        matches!(&events[2], Event::Content(d) if d.text.as_deref() == Some("Hi")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, Event::Finish(r) if r == "stop")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Usage(u) if u.completion_tokens == Some(2))),
        "{events:?}"
    );
    assert!(matches!(events.last(), Some(Event::Done)), "{events:?}");
}

#[test]
fn model_errors_are_named() {
    let frames = vec![FrameBuf {
        event: Some("exception:ModelStreamError".into()),
        data: br#"{"Message":"CUDA out of memory","ErrorCode":"ModelError"}"#.to_vec(),
    }];
    let events = decode_stream::<SageMaker>(frames, DecodeOptions { want_text: false }).unwrap();
    assert!(
        matches!(&events[0], Event::ServerError(e) if e.code.as_deref() == Some("ModelError") && e.message == "CUDA out of memory"),
        "{events:?}"
    );
}
