//! What the KServe v2 codecs (`kserve-v2-http`, `kserve-v2-grpc`) share:
//! their settings, the input tensors the LLM backends of Triton take, and
//! turning what a response's output tensors say into events.
//!
//! The backends' layouts:
//!
//! - `tensorrt-llm` (the TensorRT-LLM backend's `ensemble`/`tensorrt_llm_bls`):
//!   `text_input`, `max_tokens`, `stream` (and `temperature`) as tensors;
//! - `vllm` (the vLLM backend): `text_input`, `stream`, and the generation
//!   options as one JSON string, `sampling_parameters`, with
//!   `exclude_input_in_output`.
//!
//! Both answer with `text_output` (the new text of each response) and, when
//! asked with `return_num_input_tokens` / `return_num_output_tokens`, the
//! token counts `num_input_tokens` and `num_output_tokens` (the tokens of
//! that response). Tensor names are configurable, since deployments rename
//! them.

use std::collections::BTreeMap;

use barrage_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Which backend's input layout to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// TensorRT-LLM: generation options are tensors of their own.
    #[default]
    TensorrtLlm,
    /// vLLM: generation options in one `sampling_parameters` JSON string.
    Vllm,
}

/// The configuration table both codecs take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The model in the path; none: the run's model.
    pub model: Option<String>,
    /// A model version; none: the server's policy picks.
    pub version: Option<String>,
    /// The input layout.
    pub backend: Backend,
    /// Name of the prompt's input tensor.
    pub text_input: String,
    /// Name of the output tensor holding the text.
    pub text_output: String,
    /// Name of the output-length input tensor (TensorRT-LLM).
    pub max_tokens_input: String,
    /// Ask for `num_input_tokens` and `num_output_tokens`, which give exact
    /// token counts. Turn off for a model whose configuration lacks the
    /// `return_num_*_tokens` inputs (Triton refuses inputs it does not know).
    pub token_counts: bool,
    /// Ask for the `finish_reason` output (`return_finish_reason`); none: on
    /// for the vLLM backend, which has it, off for TensorRT-LLM.
    pub finish_reason: Option<bool>,
    /// Extra headers (HTTP) or metadata (gRPC) sent with every request.
    pub headers: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            model: None,
            version: None,
            backend: Backend::default(),
            text_input: "text_input".into(),
            text_output: "text_output".into(),
            max_tokens_input: "max_tokens".into(),
            token_counts: true,
            finish_reason: None,
            headers: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Parse and check a configuration table.
    pub fn from_config(config: &Value) -> Result<Settings, ConfigError> {
        let settings: Settings = config::parse(config)?;
        let names = [
            ("model", settings.model.as_deref().unwrap_or("m")),
            ("version", settings.version.as_deref().unwrap_or("1")),
            ("text_input", &settings.text_input),
            ("text_output", &settings.text_output),
            ("max_tokens_input", &settings.max_tokens_input),
        ];
        for (field, name) in names {
            if name.is_empty() || name.contains(['/', '?', '#', ' ']) {
                return Err(ConfigError {
                    field: Some(field.into()),
                    message: format!("{field} `{name}` must be a non-empty name without `/`, `?`, `#` or spaces"),
                });
            }
        }
        Ok(settings)
    }

    /// The settings of this plugin's configuration.
    pub fn current() -> Settings {
        Settings::from_config(&config::value()).unwrap_or_default()
    }

    /// Whether the `finish_reason` output is asked for.
    pub fn finish_reason(&self) -> bool {
        self.finish_reason.unwrap_or(self.backend == Backend::Vllm)
    }

    /// The model a request names.
    pub fn model<'a>(&'a self, spec: &'a RequestSpec) -> &'a str {
        self.model.as_deref().unwrap_or(&spec.model)
    }
}

/// An input tensor's value: one element.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A BYTES tensor holding a string.
    Text(String),
    /// An INT32 tensor.
    Int(i32),
    /// A BOOL tensor.
    Bool(bool),
    /// An FP32 tensor.
    Float(f32),
}

/// The input tensors for `spec`, by name, in the backend's layout.
pub fn inputs(settings: &Settings, spec: &RequestSpec) -> Result<Vec<(String, Input)>, String> {
    let Prompt::Text(text) = &spec.prompt else {
        return Err(
            "the KServe v2 codecs take a text prompt (it is sent as a string tensor); \
                    give a chat dataset a chat template (dataset.chat_template)"
                .into(),
        );
    };
    let g = &spec.generation;
    let count = |n: u32| Input::Int(i32::try_from(n).unwrap_or(i32::MAX));
    let mut inputs = vec![
        (settings.text_input.clone(), Input::Text(text.clone())),
        ("stream".to_string(), Input::Bool(g.stream)),
    ];
    match settings.backend {
        Backend::TensorrtLlm => {
            if let Some(max) = g.max_tokens {
                inputs.push((settings.max_tokens_input.clone(), count(max)));
            }
            if let Some(t) = g.temperature {
                inputs.push(("temperature".into(), Input::Float(t)));
            }
        }
        Backend::Vllm => {
            let mut sampling = Map::new();
            if let Some(max) = g.max_tokens {
                sampling.insert("max_tokens".into(), max.into());
            }
            if let Some(min) = g.min_tokens {
                sampling.insert("min_tokens".into(), min.into());
            }
            if g.ignore_eos {
                sampling.insert("ignore_eos".into(), true.into());
            }
            if let Some(t) = g.temperature {
                sampling.insert("temperature".into(), f64::from(t).into());
            }
            inputs.push((
                "sampling_parameters".into(),
                Input::Text(Value::Object(sampling).to_string()),
            ));
            inputs.push(("exclude_input_in_output".into(), Input::Bool(true)));
        }
    }
    if settings.token_counts {
        inputs.push(("return_num_input_tokens".into(), Input::Bool(true)));
        inputs.push(("return_num_output_tokens".into(), Input::Bool(true)));
    }
    if settings.finish_reason() {
        inputs.push(("return_finish_reason".into(), Input::Bool(true)));
    }
    Ok(inputs)
}

/// What one response (a streamed one, or a whole unary one) says.
#[derive(Debug, Default)]
pub struct Response {
    /// The text output's text.
    pub text: String,
    /// `num_output_tokens`: the tokens of this response.
    pub output_tokens: Option<u32>,
    /// `num_input_tokens`.
    pub input_tokens: Option<u32>,
    /// `finish_reason`, when it says one.
    pub finish: Option<String>,
}

/// A `finish_reason` output's value as a reason: the vLLM backend says
/// "None" until the last response.
pub fn finish_reason(value: &str) -> Option<String> {
    (!matches!(value, "None" | "null" | "")).then(|| value.to_string())
}

/// The event for a response without the text output: it names the tensor
/// it wanted and the ones the response has.
pub fn missing_output(settings: &Settings, has: &[&str]) -> Event {
    Event::Malformed(format!(
        "the response has no output tensor `{}` (it has: {}); set text_output in the codec's configuration",
        settings.text_output,
        has.join(", ")
    ))
}

/// Decoding state of one stream: the counts so far, reported when it ends.
pub struct Stream {
    want_text: bool,
    /// The configuration the decoder runs with.
    pub settings: Settings,
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
    finish: Option<String>,
    failed: bool,
}

impl Stream {
    /// A stream decoded with `options`.
    pub fn new(options: &DecodeOptions, settings: Settings) -> Stream {
        Stream {
            want_text: options.want_text,
            settings,
            input_tokens: None,
            output_tokens: None,
            finish: None,
            failed: false,
        }
    }

    /// One streamed response, or the event that says why it is not one.
    pub fn response(&mut self, response: Result<Response, Event>, emit: &mut dyn FnMut(Event)) {
        let r = match response {
            Ok(r) => r,
            Err(event) => {
                self.failed |= matches!(event, Event::ServerError(_));
                return emit(event);
            }
        };
        self.input_tokens = r.input_tokens.or(self.input_tokens);
        if let Some(n) = r.output_tokens {
            self.output_tokens = Some(self.output_tokens.unwrap_or(0) + n);
        }
        if r.text.is_empty() {
            emit(Event::EmptyDelta);
        } else {
            emit(Event::Content(ContentDelta {
                bytes: r.text.len() as u32,
                tokens: r.output_tokens,
                text: self.want_text.then_some(r.text),
            }));
        }
        if let Some(reason) = r.finish {
            emit(Event::Finish(reason.clone()));
            self.finish = Some(reason);
        }
    }

    /// The stream ended cleanly (a cut one is the transport's error, never
    /// this): Triton's streams have no end marker of their own, so this is
    /// their end. Without the finish_reason output there is no reason to
    /// report, and the stream is still whole.
    pub fn end(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if self.failed {
            return events;
        }
        if self.finish.is_none() && !self.settings.finish_reason() {
            events.push(Event::Finish("unreported".into()));
        }
        if self.input_tokens.is_some() || self.output_tokens.is_some() {
            events.push(Event::Usage(Usage {
                prompt_tokens: self.input_tokens,
                completion_tokens: self.output_tokens,
                cached_tokens: None,
                reasoning_tokens: None,
            }));
        }
        events.push(Event::Done);
        events
    }
}

/// The events of a whole non-streamed response.
pub fn unary_events(response: Result<Response, Event>, options: &DecodeOptions) -> Vec<Event> {
    let r = match response {
        Ok(r) => r,
        Err(event) => return vec![event],
    };
    let mut events = vec![
        Event::Content(ContentDelta {
            bytes: r.text.len() as u32,
            tokens: r.output_tokens,
            text: options.want_text.then_some(r.text),
        }),
        Event::Finish(r.finish.unwrap_or_else(|| "unreported".into())),
    ];
    if r.input_tokens.is_some() || r.output_tokens.is_some() {
        events.push(Event::Usage(Usage {
            prompt_tokens: r.input_tokens,
            completion_tokens: r.output_tokens,
            cached_tokens: None,
            reasoning_tokens: None,
        }));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RequestSpec {
        RequestSpec {
            id: 1,
            model: "ensemble".into(),
            prompt: Prompt::Text("hi".into()),
            generation: Generation {
                max_tokens: Some(16),
                min_tokens: None,
                ignore_eos: true,
                temperature: None,
                stream: true,
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

    #[test]
    fn each_backend_has_its_layout() {
        let trt = inputs(&Settings::default(), &spec()).unwrap();
        let names: Vec<&str> = trt.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "text_input",
                "stream",
                "max_tokens",
                "return_num_input_tokens",
                "return_num_output_tokens"
            ]
        );
        let vllm = Settings {
            backend: Backend::Vllm,
            token_counts: false,
            ..Settings::default()
        };
        let inputs = inputs(&vllm, &spec()).unwrap();
        let Some((_, Input::Text(sampling))) = inputs.iter().find(|(n, _)| n == "sampling_parameters") else {
            panic!("{inputs:?}")
        };
        let sampling: Value = serde_json::from_str(sampling).unwrap();
        assert_eq!(
            (sampling["max_tokens"].as_u64(), sampling["ignore_eos"].as_bool()),
            (Some(16), Some(true))
        );
        assert!(
            inputs
                .iter()
                .any(|(n, v)| n == "return_finish_reason" && *v == Input::Bool(true))
        );
        assert!(!inputs.iter().any(|(n, _)| n == "return_num_output_tokens"));
    }

    #[test]
    fn a_stream_sums_its_counts_and_ends_with_the_body() {
        let mut stream = Stream::new(&DecodeOptions { want_text: false }, Settings::default());
        let mut events = Vec::new();
        for (text, tokens) in [("The", 1), (" sky is", 2)] {
            let r = Response {
                text: text.into(),
                output_tokens: Some(tokens),
                input_tokens: Some(5),
                finish: None,
            };
            stream.response(Ok(r), &mut |e| events.push(e));
        }
        events.extend(stream.end());
        let text = format!("{events:?}");
        assert!(
            matches!(
                &events[1],
                Event::Content(ContentDelta {
                    bytes: 7,
                    tokens: Some(2),
                    ..
                })
            ),
            "{text}"
        );
        assert!(matches!(&events[2], Event::Finish(r) if r == "unreported"), "{text}");
        assert!(
            matches!(
                events[3],
                Event::Usage(Usage {
                    prompt_tokens: Some(5),
                    completion_tokens: Some(3),
                    ..
                })
            ),
            "{text}"
        );
        assert!(matches!(events[4], Event::Done), "{text}");
    }
}
