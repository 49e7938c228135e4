//! `barrage:plugin@0.2.0`, generated from `wit/frozen/0.2.0`, and its
//! conversion to and from the host's types. Nothing outside `bindings/`
//! sees a generated type.

use barrage_core::framing::Frames;
use barrage_core::types as host;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Instance, Linker, ResourceAny, TypedFunc};

use crate::dataset::{DatasetBatch, InputError};
use crate::prepare::{Sample, SessionTurn};
use crate::reporter::ReportFile;
use crate::state::{HostState, LogLevel};
use crate::{ConfigError, PluginInfo, SecretNeed};

/// The `codec` world, and the imports and types every world shares.
mod codec {
    wasmtime::component::bindgen!({
        world: "codec",
        path: "../../wit/frozen/0.2.0",
    });
}

/// The `dataset` world.
mod dataset {
    wasmtime::component::bindgen!({
        world: "dataset",
        path: "../../wit/frozen/0.2.0",
        with: {
            "barrage:plugin/types": super::codec::barrage::plugin::types,
            "barrage:plugin/log": super::codec::barrage::plugin::log,
            "barrage:plugin/config": super::codec::barrage::plugin::config,
            "barrage:plugin/random": super::codec::barrage::plugin::random,
            "barrage:plugin/tokenizer": super::codec::barrage::plugin::tokenizer,
            "barrage:plugin/secrets": super::codec::barrage::plugin::secrets,
        },
    });
}

/// The `reporter` world.
mod reporter {
    wasmtime::component::bindgen!({
        world: "reporter",
        path: "../../wit/frozen/0.2.0",
        with: {
            "barrage:plugin/types": super::codec::barrage::plugin::types,
            "barrage:plugin/log": super::codec::barrage::plugin::log,
            "barrage:plugin/config": super::codec::barrage::plugin::config,
            "barrage:plugin/random": super::codec::barrage::plugin::random,
            "barrage:plugin/tokenizer": super::codec::barrage::plugin::tokenizer,
            "barrage:plugin/secrets": super::codec::barrage::plugin::secrets,
        },
    });
}

use codec::barrage::plugin::{config, log, random, secrets, tokenizer, types};
use codec::exports::barrage::plugin::request_codec as wire;
use dataset::barrage::plugin::files;
use dataset::exports::barrage::plugin::dataset_source;
use reporter::barrage::plugin::records;
use reporter::exports::barrage::plugin::report_renderer;

shared_bindings!("barrage:plugin/meta@0.2.0");

/// The imports every world shares: those of 0.1, and `secrets`.
pub(super) fn link_common(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link_shared(linker)?;
    secrets::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

impl secrets::Host for HostState {
    fn get(&mut self, name: String) -> Result<String, String> {
        self.secret(&name)
    }
}

impl Codec {
    pub(super) fn encode(
        &self,
        store: &mut Store<HostState>,
        spec: host::RequestSpec,
    ) -> wasmtime::Result<Result<host::EncodedRequest, String>> {
        let spec = wire::RequestSpec::from(spec);
        Ok(self
            .0
            .barrage_plugin_request_codec()
            .call_encode(store, &spec)?
            .map(Into::into))
    }

    /// Events come back with the index of their frame, unchecked (the
    /// caller checks it).
    pub(super) fn push(
        &self,
        store: &mut Store<HostState>,
        decoder: ResourceAny,
        frames: Frames,
    ) -> wasmtime::Result<Result<Vec<(u32, host::Event)>, String>> {
        let batch = frame_batch(frames);
        let events = self
            .0
            .barrage_plugin_request_codec()
            .decoder()
            .call_push(store, decoder, &batch)?;
        Ok(events.map(|events| events.into_iter().map(|fe| (fe.frame, fe.event.into())).collect()))
    }
}

// Conversions.

impl From<types::PluginInfo> for PluginInfo {
    fn from(i: types::PluginInfo) -> PluginInfo {
        PluginInfo {
            name: i.name,
            version: i.version,
            description: i.description,
            secrets: i
                .secrets
                .into_iter()
                .map(|s| SecretNeed {
                    name: s.name,
                    required: s.required,
                    description: s.description,
                })
                .collect(),
        }
    }
}

fn media_to_wire(m: host::Media) -> types::Media {
    types::Media {
        media_type: m.media_type,
        source: match m.source {
            host::MediaSource::Inline(b) => types::MediaSource::Inline(b),
            host::MediaSource::Url(u) => types::MediaSource::Url(u),
        },
        tokens: m.tokens,
    }
}

fn media_from_wire(m: types::Media) -> host::Media {
    host::Media {
        media_type: m.media_type,
        source: match m.source {
            types::MediaSource::Inline(b) => host::MediaSource::Inline(b),
            types::MediaSource::Url(u) => host::MediaSource::Url(u),
        },
        tokens: m.tokens,
    }
}

impl From<host::Tool> for types::Tool {
    fn from(t: host::Tool) -> types::Tool {
        types::Tool {
            name: t.name,
            description: t.description,
            parameters: t.parameters,
        }
    }
}

impl From<types::Tool> for host::Tool {
    fn from(t: types::Tool) -> host::Tool {
        host::Tool {
            name: t.name,
            description: t.description,
            parameters: t.parameters,
        }
    }
}

impl From<host::ChatMessage> for types::Message {
    fn from(m: host::ChatMessage) -> types::Message {
        types::Message {
            role: m.role,
            content: m
                .content
                .into_iter()
                .map(|p| match p {
                    host::ContentPart::Text(t) => types::ContentPart::Text(t),
                    host::ContentPart::Image(m) => types::ContentPart::Image(media_to_wire(m)),
                    host::ContentPart::Audio(m) => types::ContentPart::Audio(media_to_wire(m)),
                })
                .collect(),
            tool_calls: m
                .tool_calls
                .into_iter()
                .map(|c| types::ToolCall {
                    id: c.id,
                    name: c.name,
                    arguments: c.arguments,
                })
                .collect(),
            tool_call_id: m.tool_call_id,
        }
    }
}

impl From<types::Message> for host::ChatMessage {
    fn from(m: types::Message) -> host::ChatMessage {
        host::ChatMessage {
            role: m.role,
            content: m
                .content
                .into_iter()
                .map(|p| match p {
                    types::ContentPart::Text(t) => host::ContentPart::Text(t),
                    types::ContentPart::Image(m) => host::ContentPart::Image(media_from_wire(m)),
                    types::ContentPart::Audio(m) => host::ContentPart::Audio(media_from_wire(m)),
                })
                .collect(),
            tool_calls: m
                .tool_calls
                .into_iter()
                .map(|c| host::ToolCall {
                    id: c.id,
                    name: c.name,
                    arguments: c.arguments,
                })
                .collect(),
            tool_call_id: m.tool_call_id,
        }
    }
}

impl From<host::Prompt> for types::Prompt {
    fn from(p: host::Prompt) -> types::Prompt {
        match p {
            host::Prompt::Text(t) => types::Prompt::Text(t),
            host::Prompt::Messages(m) => types::Prompt::Messages(m.into_iter().map(Into::into).collect()),
            host::Prompt::TokenIds(ids) => types::Prompt::TokenIds(ids),
            host::Prompt::Inputs(inputs) => types::Prompt::Inputs(inputs),
            host::Prompt::Rerank(r) => types::Prompt::Rerank(types::RerankQuery {
                query: r.query,
                documents: r.documents,
            }),
        }
    }
}

impl From<types::Prompt> for host::Prompt {
    fn from(p: types::Prompt) -> host::Prompt {
        match p {
            types::Prompt::Text(t) => host::Prompt::Text(t),
            types::Prompt::Messages(m) => host::Prompt::Messages(m.into_iter().map(Into::into).collect()),
            types::Prompt::TokenIds(ids) => host::Prompt::TokenIds(ids),
            types::Prompt::Inputs(inputs) => host::Prompt::Inputs(inputs),
            types::Prompt::Rerank(r) => host::Prompt::Rerank(host::RerankQuery {
                query: r.query,
                documents: r.documents,
            }),
        }
    }
}

impl From<host::RequestSpec> for wire::RequestSpec {
    fn from(s: host::RequestSpec) -> wire::RequestSpec {
        let g = s.generation;
        let since_epoch = s.send_time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        wire::RequestSpec {
            id: s.id,
            model: s.model,
            prompt: s.prompt.into(),
            generation: wire::Generation {
                max_tokens: g.max_tokens,
                min_tokens: g.min_tokens,
                ignore_eos: g.ignore_eos,
                temperature: g.temperature,
                stream: g.stream,
                include_usage: g.include_usage,
            },
            extra: s.extra,
            tools: s.tools.into_iter().map(Into::into).collect(),
            send_time: types::Datetime {
                seconds: since_epoch.as_secs(),
                nanoseconds: since_epoch.subsec_nanos(),
            },
        }
    }
}

impl From<wire::EncodedRequest> for host::EncodedRequest {
    fn from(r: wire::EncodedRequest) -> host::EncodedRequest {
        host::EncodedRequest {
            request: match r.request {
                wire::WireRequest::Http(h) => host::WireRequest::Http(host::HttpRequest {
                    method: h.method,
                    path: h.path,
                    headers: h.headers,
                    body: h.body,
                }),
                wire::WireRequest::Grpc(g) => host::WireRequest::Grpc(host::GrpcRequest {
                    service: g.service,
                    method: g.method,
                    metadata: g.metadata,
                    message: g.message,
                    server_streaming: g.server_streaming,
                }),
            },
            streaming: r.streaming,
            framing: match r.framing {
                wire::Framing::Raw => host::Framing::Raw,
                wire::Framing::Sse => host::Framing::Sse,
                wire::Framing::Ndjson => host::Framing::Ndjson,
                wire::Framing::GrpcMessages => host::Framing::GrpcMessages,
                wire::Framing::AwsEventStream => host::Framing::AwsEventStream,
            },
            output: match r.output {
                wire::OutputKind::Tokens => host::OutputKind::Tokens,
                wire::OutputKind::Embeddings => host::OutputKind::Embeddings,
                wire::OutputKind::Ranking => host::OutputKind::Ranking,
                wire::OutputKind::Images => host::OutputKind::Images,
                wire::OutputKind::Audio => host::OutputKind::Audio,
            },
            prompt_tokens: r.prompt_tokens,
        }
    }
}

/// A stream's frames with their bytes in one buffer.
/// The host's frames are already one buffer with spans: only the spans are
/// rewritten. A batch is far below 4 GiB (frames are bounded by
/// `max_frame_mib`, and a plugin's memory by its limit).
fn frame_batch(frames: Frames) -> wire::FrameBatch {
    let (data, spans) = frames.into_parts();
    let span = |s: barrage_core::framing::Span| wire::Span {
        start: s.start as u32,
        len: s.len as u32,
    };
    let frames = spans
        .iter()
        .map(|f| wire::Frame {
            event: f.event.map(span),
            data: span(f.data),
        })
        .collect();
    wire::FrameBatch { data, frames }
}

fn media_output(m: wire::MediaOutput) -> host::MediaOutput {
    host::MediaOutput {
        count: m.count,
        bytes: m.bytes,
    }
}

impl From<wire::Event> for host::Event {
    fn from(e: wire::Event) -> host::Event {
        match e {
            wire::Event::Content(d) => host::Event::Content(delta(d)),
            wire::Event::Reasoning(d) => host::Event::Reasoning(delta(d)),
            wire::Event::RoleOnly => host::Event::RoleOnly,
            wire::Event::EmptyDelta => host::Event::EmptyDelta,
            wire::Event::Usage(u) => host::Event::Usage(host::Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                cached_tokens: u.cached_tokens,
                reasoning_tokens: u.reasoning_tokens,
            }),
            wire::Event::Finish(r) => host::Event::Finish(r),
            wire::Event::ServerError(e) => host::Event::ServerError(host::ServerError {
                code: e.code,
                message: e.message,
            }),
            wire::Event::KeepAlive => host::Event::KeepAlive,
            wire::Event::Done => host::Event::Done,
            wire::Event::Malformed(m) => host::Event::Malformed(m),
            wire::Event::Embeddings(e) => host::Event::Embeddings {
                count: e.count,
                dimensions: e.dimensions,
            },
            wire::Event::Ranking(r) => host::Event::Ranking(r.count),
            wire::Event::Image(m) => host::Event::Image(media_output(m)),
            wire::Event::Audio(m) => host::Event::Audio(media_output(m)),
        }
    }
}

impl From<dataset_source::Sample> for Sample {
    fn from(s: dataset_source::Sample) -> Sample {
        Sample {
            id: s.id,
            prompt: s.prompt.into(),
            prompt_tokens: s.prompt_tokens,
            output_tokens: s.output_tokens,
            at_ms: s.at_ms,
            session: s.session.map(|t| SessionTurn {
                session: t.session,
                turn: t.turn,
                think_time_ms: t.think_time_ms,
            }),
            extra: s.extra,
            tools: s.tools.into_iter().map(Into::into).collect(),
        }
    }
}
