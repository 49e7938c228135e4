//! Native unit tests of the wire format, through the SDK's test harness.
//! The stream is in the shape OpenAI's streaming reference documents.

use super::*;
use barrage_sdk::testing::{self, decode_stream, sse_frames};
use barrage_sdk::{Datetime, Media, ToolCall};

fn spec(prompt: Prompt, stream: bool) -> RequestSpec {
    RequestSpec {
        id: 1,
        model: "gpt-5".into(),
        prompt,
        generation: Generation {
            max_tokens: Some(16),
            min_tokens: None,
            ignore_eos: false,
            temperature: None,
            stream,
            include_usage: true,
        },
        extra: None,
        tools: Vec::new(),
        send_time: Datetime {
            seconds: 0,
            nanoseconds: 0,
        },
    }
}

#[test]
fn a_chat_becomes_input_items_with_images_calls_and_outputs() {
    testing::reset();
    testing::set_secret(API_KEY, "sk-0123456789");
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
            id: "call_1".into(),
            name: "look".into(),
            arguments: "{}".into(),
        }],
        tool_call_id: None,
    };
    let result = Message {
        tool_call_id: Some("call_1".into()),
        ..Message::text("tool", "a cat")
    };
    let mut s = spec(
        Prompt::Messages(vec![Message::text("developer", "be brief"), user, call, result]),
        true,
    );
    s.tools = vec![Tool {
        name: "look".into(),
        description: None,
        parameters: r#"{"type":"object"}"#.into(),
    }];
    let req = OpenAiResponses::encode(s).unwrap();
    let WireRequest::Http(h) = &req.request else { panic!() };
    let body: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(h.path, "/v1/responses");
    assert!(
        h.headers
            .contains(&("authorization".into(), "Bearer sk-0123456789".into()))
    );
    let input = &body["input"];
    assert_eq!(
        input[0],
        json!({"role": "developer", "content": [{"type": "input_text", "text": "be brief"}]})
    );
    assert_eq!(input[1]["content"][1]["image_url"], "data:image/png;base64,UE5H");
    assert_eq!(
        input[2],
        json!({"type": "function_call", "call_id": "call_1", "name": "look", "arguments": "{}"})
    );
    assert_eq!(
        input[3],
        json!({"type": "function_call_output", "call_id": "call_1", "output": "a cat"})
    );
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "name": "look", "parameters": {"type": "object"}}])
    );
    assert_eq!(body["max_output_tokens"], 16);
    assert_eq!(body["store"], false);
}

const STREAM: &str = r#"event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}}

event: response.in_progress
data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","status":"in_progress","output":[]}}

event: response.reasoning_summary_text.delta
data: {"type":"response.reasoning_summary_text.delta","sequence_number":2,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Thinking"}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Hi"}

event: response.output_text.done
data: {"type":"response.output_text.done","sequence_number":4,"item_id":"msg_1","output_index":1,"content_index":0,"text":"Hi"}

event: response.incomplete
data: {"type":"response.incomplete","sequence_number":5,"response":{"id":"resp_1","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[],"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":16,"output_tokens_details":{"reasoning_tokens":10},"total_tokens":28}}}

"#;

#[test]
fn a_stream_reports_reasoning_text_why_it_ended_and_usage() {
    let events = decode_stream::<OpenAiResponses>(sse_frames(STREAM), DecodeOptions { want_text: true }).unwrap();
    assert!(matches!(events[0], Event::RoleOnly), "{events:?}");
    assert!(matches!(&events[2], Event::Reasoning(d) if d.text.as_deref() == Some("Thinking")));
    assert!(matches!(&events[3], Event::Content(d) if d.text.as_deref() == Some("Hi")));
    assert!(
        matches!(&events[5], Event::Finish(r) if r == "max_output_tokens"),
        "{events:?}"
    );
    assert!(
        matches!(&events[6], Event::Usage(u) if u.prompt_tokens == Some(12) && u.completion_tokens == Some(16)
            && u.cached_tokens == Some(4) && u.reasoning_tokens == Some(10)),
        "{events:?}"
    );
    assert!(matches!(events[7], Event::Done));
}

#[test]
fn an_error_event_and_a_bad_frame_are_named() {
    let body = "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"overloaded\"}\n\n\
                event: response.output_text.delta\ndata: {\"delta\n\n";
    let events = decode_stream::<OpenAiResponses>(sse_frames(body), DecodeOptions { want_text: false }).unwrap();
    assert!(
        matches!(&events[0], Event::ServerError(e) if e.code.as_deref() == Some("server_error") && e.message == "overloaded")
    );
    assert!(matches!(&events[1], Event::Malformed(_)));
}

#[test]
fn a_whole_response_and_a_refusal_decode() {
    let head = |status| ResponseHead {
        status,
        headers: vec![],
    };
    let body = json!({"id": "resp_1", "object": "response", "status": "completed",
        "output": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "hmm"}]},
                   {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]},
                   {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"a\":1}"}],
        "usage": {"input_tokens": 3, "output_tokens": 7, "total_tokens": 10}});
    let events = decode_unary(
        &head(200),
        body.to_string().as_bytes(),
        &DecodeOptions { want_text: false },
    );
    assert!(matches!(&events[0], Event::Reasoning(d) if d.bytes == 3), "{events:?}");
    assert!(matches!(&events[1], Event::Content(d) if d.bytes == 5));
    assert!(matches!(&events[2], Event::Content(d) if d.bytes == 7));
    assert!(matches!(&events[3], Event::Finish(r) if r == "completed"));
    assert!(matches!(&events[4], Event::Usage(u) if u.completion_tokens == Some(7)));
    let denied = decode_unary(
        &head(401),
        br#"{"error":{"message":"Incorrect API key provided: sk-x","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        &DecodeOptions { want_text: false },
    );
    assert!(
        matches!(&denied[0], Event::ServerError(e) if e.code.as_deref() == Some("invalid_api_key")),
        "{denied:?}"
    );
    assert!(OpenAiResponses::encode(spec(Prompt::TokenIds(vec![1]), true)).is_err());
}
