//! Native unit tests of the wire format, through the SDK's test harness.
//! The stream is in the shape Google's `streamGenerateContent` reference
//! documents (events separated by CRLF pairs, as the API sends them).

use super::*;
use barrage_sdk::testing::{self, decode_stream, sse_frames};
use barrage_sdk::{Datetime, ToolCall};

fn spec(prompt: Prompt, stream: bool) -> RequestSpec {
    RequestSpec {
        id: 1,
        model: "gemini-2.5-flash".into(),
        prompt,
        generation: Generation {
            max_tokens: Some(32),
            min_tokens: None,
            ignore_eos: false,
            temperature: Some(0.25),
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

fn http(req: &EncodedRequest) -> (&HttpRequest, Value) {
    let WireRequest::Http(h) = &req.request else { panic!() };
    (h, serde_json::from_slice(&h.body).unwrap())
}

#[test]
fn a_chat_becomes_contents_with_media_calls_and_responses() {
    testing::reset();
    testing::set_secret(API_KEY, "AIzaSy-0123456789");
    let user = Message {
        role: "user".into(),
        content: vec![
            ContentPart::Text("Describe".into()),
            ContentPart::Audio(Media {
                media_type: "audio/wav".into(),
                source: MediaSource::Inline(b"RIFF".to_vec()),
                tokens: None,
            }),
            ContentPart::Image(Media {
                media_type: "image/jpeg".into(),
                source: MediaSource::Url("gs://bucket/cat.jpg".into()),
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
            id: "c1".into(),
            name: "look".into(),
            arguments: r#"{"at":"it"}"#.into(),
        }],
        tool_call_id: None,
    };
    let result = Message {
        tool_call_id: Some("c1".into()),
        ..Message::text("tool", "a cat")
    };
    let mut s = spec(
        Prompt::Messages(vec![Message::text("system", "be brief"), user, call, result]),
        true,
    );
    s.tools = vec![Tool {
        name: "look".into(),
        description: Some("look".into()),
        parameters: r#"{"type":"object"}"#.into(),
    }];
    let req = Gemini::encode(s).unwrap();
    let (h, body) = http(&req);
    assert_eq!(h.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert!(
        h.headers
            .contains(&("x-goog-api-key".into(), "AIzaSy-0123456789".into()))
    );
    assert_eq!(body["systemInstruction"], json!({"parts": [{"text": "be brief"}]}));
    let c = &body["contents"];
    assert_eq!(
        c[0]["parts"][1]["inlineData"],
        json!({"mimeType": "audio/wav", "data": "UklGRg=="})
    );
    assert_eq!(c[0]["parts"][2]["fileData"]["fileUri"], "gs://bucket/cat.jpg");
    assert_eq!(c[1]["role"], "model");
    assert_eq!(
        c[1]["parts"][0]["functionCall"],
        json!({"name": "look", "args": {"at": "it"}})
    );
    assert_eq!(c[2]["parts"][0]["functionResponse"]["name"], "look");
    assert_eq!(
        body["generationConfig"],
        json!({"maxOutputTokens": 32, "temperature": 0.25})
    );
    assert_eq!(body["tools"][0]["functionDeclarations"][0]["name"], "look");
}

#[test]
fn vertex_paths_and_tokens_and_bad_settings() {
    testing::reset();
    testing::set_secret(ACCESS_TOKEN, "ya29.a0-0123456789");
    testing::set_config(json!({"api": "vertex", "project": "my-proj", "location": "europe-west4"}));
    let req = Gemini::encode(spec(Prompt::Text("hi".into()), false)).unwrap();
    let (h, _) = http(&req);
    assert_eq!(
        h.path,
        "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    );
    assert!(
        h.headers
            .contains(&("authorization".into(), "Bearer ya29.a0-0123456789".into()))
    );
    let err = Settings::from_config(&json!({"api": "vertex"})).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("project"));
    assert!(Settings::from_config(&json!({"api": "palm"})).is_err());
    assert!(Settings::from_config(&json!({"version": "v1/../x"})).is_err());
    let orphan = Message {
        tool_call_id: Some("nope".into()),
        ..Message::text("tool", "x")
    };
    testing::reset();
    let err = Gemini::encode(spec(Prompt::Messages(vec![orphan]), true)).unwrap_err();
    assert!(err.contains("nope"), "{err}");
}

const STREAM: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Plan\", \"thought\": true}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"totalTokenCount\": 9},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 1,\"totalTokenCount\": 10}}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" world\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 2,\"totalTokenCount\": 15,\"thoughtsTokenCount\": 4}}\r\n\r\n";

#[test]
fn a_stream_reports_thoughts_text_usage_and_ends_at_its_finish_reason() {
    let events = decode_stream::<Gemini>(sse_frames(STREAM), DecodeOptions { want_text: true }).unwrap();
    assert!(
        matches!(&events[0], Event::Reasoning(d) if d.text.as_deref() == Some("Plan")),
        "{events:?}"
    );
    assert!(matches!(&events[2], Event::Content(d) if d.text.as_deref() == Some("Hello")));
    assert!(matches!(&events[4], Event::Content(d) if d.bytes == 6));
    assert!(
        matches!(&events[5], Event::Usage(u) if u.prompt_tokens == Some(9) && u.completion_tokens == Some(6)
            && u.reasoning_tokens == Some(4)),
        "{events:?}"
    );
    assert!(matches!(&events[6], Event::Finish(r) if r == "STOP"));
    assert!(matches!(events[7], Event::Done));
}

#[test]
fn errors_and_bad_chunks_are_named() {
    let head = |status| ResponseHead {
        status,
        headers: vec![],
    };
    let denied = decode_unary(
        &head(401),
        br#"{"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}"#,
        &DecodeOptions { want_text: false },
    );
    assert!(
        matches!(&denied[0], Event::ServerError(e) if e.code.as_deref() == Some("UNAUTHENTICATED")),
        "{denied:?}"
    );
    let whole = decode_unary(
        &head(200),
        br#"{"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "MAX_TOKENS"}],
             "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1}}"#,
        &DecodeOptions { want_text: false },
    );
    assert!(matches!(&whole[0], Event::Content(d) if d.bytes == 2));
    assert!(matches!(&whole[2], Event::Finish(r) if r == "MAX_TOKENS"), "{whole:?}");
    assert!(!whole.iter().any(|e| matches!(e, Event::Done)));
    let events = decode_stream::<Gemini>(
        sse_frames("data: {\"candidates\n\n"),
        DecodeOptions { want_text: false },
    )
    .unwrap();
    assert!(matches!(&events[0], Event::Malformed(_)));
}
