//! Native unit tests of the wire format, through the SDK's test harness. The
//! recorded-stream fixtures are decoded through the real wasm host by the
//! end-to-end tests (`tests/e2e/codecs.rs`).

use super::*;
use barrage_sdk::testing::{self, decode_stream, sse_frames};

fn spec(prompt: Prompt, stream: bool) -> RequestSpec {
    RequestSpec {
        id: 7,
        model: "m".into(),
        prompt,
        generation: Generation {
            max_tokens: Some(64),
            min_tokens: None,
            ignore_eos: true,
            temperature: None,
            stream,
            include_usage: true,
        },
        extra: Some(r#"{"top_p": 0.5, "max_tokens": 32}"#.into()),
        tools: Vec::new(),
        send_time: barrage_sdk::Datetime {
            seconds: 0,
            nanoseconds: 0,
        },
    }
}

fn body_of(req: &EncodedRequest) -> Value {
    match &req.request {
        WireRequest::Http(h) => serde_json::from_slice(&h.body).unwrap(),
        WireRequest::Grpc(_) => panic!("expected HTTP"),
    }
}

#[test]
fn chat_encode_builds_messages_and_stream_options() {
    testing::set_config(serde_json::json!({}));
    let req = ChatCodec::encode(spec(Prompt::Text("hi there".into()), true)).unwrap();
    let WireRequest::Http(http) = &req.request else {
        panic!()
    };
    assert_eq!(http.path, "/v1/chat/completions");
    assert_eq!(http.method, "POST");
    assert!(req.streaming);
    assert!(matches!(req.framing, Framing::Sse));
    let body = body_of(&req);
    assert_eq!(body["messages"][0]["content"], "hi there");
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["ignore_eos"], true);
    assert_eq!(body["top_p"], 0.5);
    // Extra fields win over generated ones.
    assert_eq!(body["max_tokens"], 32);
}

#[test]
fn completions_encode_honours_settings() {
    testing::set_config(
        serde_json::json!({"path": "/openai/v1/completions", "continuous_usage_stats": true, "headers": {"x-team": "perf"}}),
    );
    let req = CompletionsCodec::encode(spec(Prompt::TokenIds(vec![1, 2, 3]), true)).unwrap();
    let WireRequest::Http(http) = &req.request else {
        panic!()
    };
    assert_eq!(http.path, "/openai/v1/completions");
    assert!(http.headers.contains(&("x-team".into(), "perf".into())));
    let body = body_of(&req);
    assert_eq!(body["prompt"], serde_json::json!([1, 2, 3]));
    assert_eq!(body["stream_options"]["continuous_usage_stats"], true);
    testing::set_config(serde_json::json!({}));
}

#[test]
fn wrong_prompt_kind_is_an_error() {
    let chat = Prompt::Messages(vec![Message::text("user", "x")]);
    assert!(
        CompletionsCodec::encode(spec(chat, false))
            .unwrap_err()
            .contains("openai-chat")
    );
    assert!(
        ChatCodec::encode(spec(Prompt::TokenIds(vec![1]), false))
            .unwrap_err()
            .contains("openai-completions")
    );
}

#[test]
fn config_errors_name_the_field() {
    let err = ChatCodec::check_config(&serde_json::json!({"pathh": "/x"})).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("pathh"));
    let err = ChatCodec::check_config(&serde_json::json!({"max_tokens_field": "n"})).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("max_tokens_field"));
    let err = ChatCodec::check_config(&serde_json::json!({"path": "v1"})).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("path"));
    assert!(ChatCodec::check_config(&serde_json::json!({"max_tokens_field": "max_completion_tokens"})).is_ok());
}

#[test]
fn continuous_usage_gives_tokens_per_chunk() {
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"ab\"}}],\"usage\":{\"completion_tokens\":2}}\n\n\
                data: {\"choices\":[{\"delta\":{\"content\":\"cde\"}}],\"usage\":{\"completion_tokens\":5}}\n\n";
    let events = decode_stream::<ChatCodec>(sse_frames(body), DecodeOptions { want_text: true }).unwrap();
    let tokens: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Content(d) => Some((d.tokens, d.text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        tokens,
        vec![(Some(2), Some("ab".into())), (Some(3), Some("cde".into()))]
    );
}

#[test]
fn text_is_only_copied_when_asked() {
    let body = "data: {\"choices\":[{\"text\":\"hello\"}]}\n\n";
    let events = decode_stream::<CompletionsCodec>(sse_frames(body), DecodeOptions { want_text: false }).unwrap();
    assert!(matches!(
        &events[0],
        Event::Content(ContentDelta {
            bytes: 5,
            tokens: None,
            text: None
        })
    ));
}

#[test]
fn unary_decodes_message_usage_and_http_errors() {
    let head = ResponseHead {
        status: 200,
        headers: vec![],
    };
    let body = br#"{"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
    let events = decode_unary(&head, body, &DecodeOptions { want_text: false });
    assert!(matches!(events[0], Event::Content(ContentDelta { bytes: 2, .. })));
    assert!(matches!(&events[1], Event::Finish(r) if r == "stop"));
    assert!(matches!(
        events[2],
        Event::Usage(Usage {
            prompt_tokens: Some(3),
            completion_tokens: Some(1),
            ..
        })
    ));

    let head = ResponseHead {
        status: 429,
        headers: vec![],
    };
    let events = decode_unary(&head, b"slow down", &DecodeOptions { want_text: false });
    assert!(matches!(&events[0], Event::ServerError(e) if e.code.as_deref() == Some("429")));
}

#[test]
fn chat_messages_carry_images_audio_and_tool_calls_as_the_chat_api_writes_them() {
    use barrage_sdk::{Media, MediaSource, Tool, ToolCall};
    let media = |media_type: &str, source: MediaSource| Media {
        media_type: media_type.into(),
        source,
        tokens: None,
    };
    let user = Message {
        role: "user".into(),
        content: vec![
            ContentPart::Text("What is in these?".into()),
            ContentPart::Image(media("image/png", MediaSource::Inline(vec![0x89, b'P', b'N', b'G']))),
            ContentPart::Image(media(
                "image/jpeg",
                MediaSource::Url("https://example.com/cat.jpg".into()),
            )),
            ContentPart::Audio(media("audio/wav", MediaSource::Inline(b"RIFF".to_vec()))),
        ],
        tool_calls: Vec::new(),
        tool_call_id: None,
    };
    let assistant = Message {
        role: "assistant".into(),
        content: Vec::new(),
        tool_calls: vec![ToolCall {
            id: "call_1".into(),
            name: "lookup".into(),
            arguments: r#"{"q":"cats"}"#.into(),
        }],
        tool_call_id: None,
    };
    let tool = Message {
        tool_call_id: Some("call_1".into()),
        ..Message::text("tool", "three cats")
    };
    let mut s = spec(Prompt::Messages(vec![user, assistant, tool]), true);
    s.tools = vec![Tool {
        name: "lookup".into(),
        description: Some("search".into()),
        parameters: r#"{"type":"object","properties":{"q":{"type":"string"}}}"#.into(),
    }];
    let body = body_of(&ChatCodec::encode(s).unwrap());
    let m = &body["messages"];
    assert_eq!(
        m[0]["content"][0],
        serde_json::json!({"type": "text", "text": "What is in these?"})
    );
    assert_eq!(m[0]["content"][1]["image_url"]["url"], "data:image/png;base64,iVBORw==");
    assert_eq!(m[0]["content"][2]["image_url"]["url"], "https://example.com/cat.jpg");
    assert_eq!(
        m[0]["content"][3],
        serde_json::json!({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}})
    );
    assert!(m[1]["content"].is_null(), "{m}");
    assert_eq!(m[1]["tool_calls"][0]["function"]["name"], "lookup");
    assert_eq!(m[1]["tool_calls"][0]["function"]["arguments"], r#"{"q":"cats"}"#);
    assert_eq!(
        m[2],
        serde_json::json!({"role": "tool", "content": "three cats", "tool_call_id": "call_1"})
    );
    assert_eq!(body["tools"][0]["function"]["parameters"]["type"], "object");
    assert_eq!(body["tools"][0]["function"]["description"], "search");

    // Audio the API cannot take inline is refused by name; tools need chat.
    let flac = Message {
        role: "user".into(),
        content: vec![ContentPart::Audio(media("audio/flac", MediaSource::Inline(vec![1])))],
        tool_calls: Vec::new(),
        tool_call_id: None,
    };
    assert!(
        ChatCodec::encode(spec(Prompt::Messages(vec![flac]), true))
            .unwrap_err()
            .contains("audio/flac")
    );
    let mut with_tools = spec(Prompt::Text("x".into()), true);
    with_tools.tools = vec![Tool {
        name: "t".into(),
        description: None,
        parameters: "{}".into(),
    }];
    assert!(
        CompletionsCodec::encode(with_tools)
            .unwrap_err()
            .contains("openai-chat")
    );
}

#[test]
fn an_api_key_granted_as_a_secret_is_sent_as_a_bearer_token() {
    testing::set_secret(API_KEY, "sk-test-0123456789");
    let req = ChatCodec::encode(spec(Prompt::Text("x".into()), true)).unwrap();
    let WireRequest::Http(http) = &req.request else {
        panic!()
    };
    assert!(
        http.headers
            .contains(&("authorization".into(), "Bearer sk-test-0123456789".into()))
    );
    testing::reset();
    let req = ChatCodec::encode(spec(Prompt::Text("x".into()), true)).unwrap();
    let WireRequest::Http(http) = &req.request else {
        panic!()
    };
    assert!(!http.headers.iter().any(|(k, _)| k == "authorization"));
}
