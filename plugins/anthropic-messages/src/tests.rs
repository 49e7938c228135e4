//! Native unit tests of the wire format, through the SDK's test harness.

use super::*;
use barrage_sdk::ToolCall;
use barrage_sdk::testing::{self, decode_stream, sse_frames};

fn spec(prompt: Prompt, stream: bool) -> RequestSpec {
    RequestSpec {
        id: 1,
        model: "claude".into(),
        prompt,
        generation: Generation {
            max_tokens: None,
            min_tokens: None,
            ignore_eos: false,
            temperature: Some(0.5),
            stream,
            include_usage: true,
        },
        extra: None,
        tools: Vec::new(),
        send_time: barrage_sdk::Datetime {
            seconds: 0,
            nanoseconds: 0,
        },
    }
}

fn body(req: &EncodedRequest) -> (Vec<(String, String)>, Value) {
    let WireRequest::Http(h) = &req.request else { panic!() };
    (h.headers.clone(), serde_json::from_slice(&h.body).unwrap())
}

#[test]
fn a_chat_becomes_system_messages_images_and_tool_blocks() {
    testing::reset();
    testing::set_secret(API_KEY, "sk-ant-0123456789");
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
    let assistant = Message {
        role: "assistant".into(),
        content: Vec::new(),
        tool_calls: vec![ToolCall {
            id: "toolu_1".into(),
            name: "look".into(),
            arguments: r#"{"at":"it"}"#.into(),
        }],
        tool_call_id: None,
    };
    let result = Message {
        tool_call_id: Some("toolu_1".into()),
        ..Message::text("tool", "a cat")
    };
    let mut s = spec(
        Prompt::Messages(vec![Message::text("system", "Be brief."), user, assistant, result]),
        true,
    );
    s.tools = vec![Tool {
        name: "look".into(),
        description: None,
        parameters: r#"{"type":"object"}"#.into(),
    }];
    let req = AnthropicMessages::encode(s).unwrap();
    assert!(req.streaming);
    let (headers, b) = body(&req);
    assert!(headers.contains(&("x-api-key".into(), "sk-ant-0123456789".into())));
    assert!(headers.contains(&("anthropic-version".into(), "2023-06-01".into())));
    assert_eq!(b["system"], "Be brief.");
    assert_eq!(b["max_tokens"], 1024, "the API requires one");
    assert_eq!(b["messages"][0]["content"][1]["source"]["data"], "UE5H");
    assert_eq!(
        b["messages"][1]["content"][0],
        json!({"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"at": "it"}})
    );
    assert_eq!(b["messages"][2]["role"], "user");
    assert_eq!(
        b["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"})
    );
    assert_eq!(b["tools"][0]["input_schema"]["type"], "object");
    testing::reset();
    let (headers, _) = body(&AnthropicMessages::encode(spec(Prompt::Text("hi".into()), false)).unwrap());
    assert!(!headers.iter().any(|(k, _)| k == "x-api-key"));
    assert!(AnthropicMessages::encode(spec(Prompt::TokenIds(vec![1]), false)).is_err());
}

const STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me see\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"abc\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

#[test]
fn a_stream_reports_reasoning_text_the_stop_and_every_input_token() {
    let events = decode_stream::<AnthropicMessages>(sse_frames(STREAM), DecodeOptions { want_text: true }).unwrap();
    assert!(matches!(events[0], Event::RoleOnly), "{events:?}");
    assert!(
        matches!(&events[2], Event::Reasoning(d) if d.text.as_deref() == Some("Let me see")),
        "{events:?}"
    );
    assert!(
        matches!(events[3], Event::EmptyDelta),
        "a signature is not output: {events:?}"
    );
    assert!(matches!(events[5], Event::KeepAlive), "{events:?}");
    assert!(matches!(&events[6], Event::Content(d) if d.bytes == 5), "{events:?}");
    assert!(matches!(&events[7], Event::Finish(r) if r == "end_turn"), "{events:?}");
    assert!(
        matches!(
            events[8],
            Event::Usage(Usage {
                prompt_tokens: Some(125),
                completion_tokens: Some(15),
                cached_tokens: Some(100),
                ..
            })
        ),
        "{events:?}"
    );
    assert!(matches!(events[9], Event::Done), "{events:?}");
}

#[test]
fn errors_are_the_servers_in_a_stream_and_in_a_body() {
    let overloaded = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let events =
        decode_stream::<AnthropicMessages>(sse_frames(overloaded), DecodeOptions { want_text: false }).unwrap();
    assert!(
        matches!(&events[0], Event::ServerError(e) if e.message == "Overloaded" && e.code.as_deref() == Some("overloaded_error")),
        "{events:?}"
    );
    let head = |status| ResponseHead {
        status,
        headers: vec![],
    };
    let denied = decode_unary(
        &head(401),
        br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        &DecodeOptions { want_text: false },
    );
    assert!(
        matches!(&denied[0], Event::ServerError(e) if e.message == "invalid x-api-key"),
        "{denied:?}"
    );
    let whole = decode_unary(
        &head(200),
        br#"{"type":"message","content":[{"type":"text","text":"Hi"}],"stop_reason":"max_tokens","usage":{"input_tokens":3,"output_tokens":2}}"#,
        &DecodeOptions { want_text: false },
    );
    assert!(matches!(&whole[0], Event::Content(d) if d.bytes == 2), "{whole:?}");
    assert!(matches!(&whole[1], Event::Finish(r) if r == "max_tokens"), "{whole:?}");
    assert!(matches!(
        whole[2],
        Event::Usage(Usage {
            prompt_tokens: Some(3),
            completion_tokens: Some(2),
            ..
        })
    ));
    assert!(matches!(
        &decode_unary(&head(200), b"<html>", &DecodeOptions { want_text: false })[0],
        Event::Malformed(_)
    ));
}
