//! A completions codec written against the frozen `barrage:plugin@0.1.0`
//! WIT with bare `wit-bindgen`, as a plugin built for that release would be.
//! Each `encode` draws one number from the host's seeded `random` source and
//! logs it, so a test can see which sequence a run's seed gave the codec.

wit_bindgen::generate!({
    world: "codec",
    path: "../../../wit/frozen/0.1.0",
});

use barrage::plugin::types::{ConfigError, PluginInfo, Prompt};
use barrage::plugin::{log, random};
use exports::barrage::plugin::request_codec::{
    ContentDelta, DecodeOptions, EncodedRequest, Event, Frame, FrameEvent, Framing, Guest, GuestDecoder, HttpRequest,
    RequestSpec, ResponseHead, WireRequest,
};

struct Frozen;

impl exports::barrage::plugin::meta::Guest for Frozen {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "frozen-contract".into(),
            version: "0.1.0".into(),
            description: "a 0.1.0 codec built without the SDK".into(),
        }
    }

    fn check_config() -> Result<(), ConfigError> {
        Ok(())
    }
}

impl Guest for Frozen {
    type Decoder = Lines;

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        log::log(log::Level::Warn, &format!("random draw {}", random::next_u64()));
        let Prompt::Text(prompt) = spec.prompt else {
            return Err("text prompts only".into());
        };
        let body = format!(
            "{{\"model\":{:?},\"prompt\":{:?},\"max_tokens\":{},\"stream\":true}}",
            spec.model,
            prompt,
            spec.generation.max_tokens.unwrap_or(16)
        );
        Ok(EncodedRequest {
            request: WireRequest::Http(HttpRequest {
                method: "POST".into(),
                path: "/v1/completions".into(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.into_bytes(),
            }),
            streaming: true,
            framing: Framing::Sse,
        })
    }

    fn decode_unary(_head: ResponseHead, _body: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Event>, String> {
        Err("streams only".into())
    }
}

/// Every data frame is one token of output, with its `finish_reason` when
/// it has one; `[DONE]` ends the stream.
struct Lines;

fn finish_reason(data: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(data).ok()?;
    let rest = text.split("\"finish_reason\":\"").nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

impl GuestDecoder for Lines {
    fn new(_head: ResponseHead, _options: DecodeOptions) -> Lines {
        Lines
    }

    fn push(&self, frames: Vec<Frame>) -> Result<Vec<FrameEvent>, String> {
        let mut events = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let frame = i as u32;
            if f.data == b"[DONE]" {
                events.push(FrameEvent {
                    frame,
                    event: Event::Done,
                });
                continue;
            }
            events.push(FrameEvent {
                frame,
                event: Event::Content(ContentDelta {
                    bytes: f.data.len() as u32,
                    tokens: Some(1),
                    text: None,
                }),
            });
            if let Some(reason) = finish_reason(&f.data) {
                events.push(FrameEvent {
                    frame,
                    event: Event::Finish(reason),
                });
            }
        }
        Ok(events)
    }

    fn finish(&self) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

export!(Frozen);
