//! `barrage:plugin@0.1.0`, generated from `wit/frozen/0.1.0`, and its
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
use crate::{ConfigError, PluginInfo};

/// The `codec` world, and the imports and types every world shares.
mod codec {
    wasmtime::component::bindgen!({
        world: "codec",
        path: "../../wit/frozen/0.1.0",
    });
}

/// The `dataset` world.
mod dataset {
    wasmtime::component::bindgen!({
        world: "dataset",
        path: "../../wit/frozen/0.1.0",
        with: {
            "barrage:plugin/types": super::codec::barrage::plugin::types,
            "barrage:plugin/log": super::codec::barrage::plugin::log,
            "barrage:plugin/config": super::codec::barrage::plugin::config,
            "barrage:plugin/random": super::codec::barrage::plugin::random,
            "barrage:plugin/tokenizer": super::codec::barrage::plugin::tokenizer,
        },
    });
}

/// The `reporter` world.
mod reporter {
    wasmtime::component::bindgen!({
        world: "reporter",
        path: "../../wit/frozen/0.1.0",
        with: {
            "barrage:plugin/types": super::codec::barrage::plugin::types,
            "barrage:plugin/log": super::codec::barrage::plugin::log,
            "barrage:plugin/config": super::codec::barrage::plugin::config,
            "barrage:plugin/random": super::codec::barrage::plugin::random,
            "barrage:plugin/tokenizer": super::codec::barrage::plugin::tokenizer,
        },
    });
}

use codec::barrage::plugin::{config, log, random, tokenizer, types};
use codec::exports::barrage::plugin::request_codec as wire;
use dataset::barrage::plugin::files;
use dataset::exports::barrage::plugin::dataset_source;
use reporter::barrage::plugin::records;
use reporter::exports::barrage::plugin::report_renderer;

shared_bindings!("barrage:plugin/meta@0.1.0");

/// The imports every world shares.
pub(super) fn link_common(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link_shared(linker)
}

impl Codec {
    pub(super) fn encode(
        &self,
        store: &mut Store<HostState>,
        spec: host::RequestSpec,
    ) -> wasmtime::Result<Result<host::EncodedRequest, String>> {
        let spec = match spec_to_wire(spec) {
            Ok(spec) => spec,
            Err(why) => return Ok(Err(why)),
        };
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
        let frames: Vec<wire::Frame> = frames
            .iter()
            .map(|f| wire::Frame {
                event: f.event.map(str::to_owned),
                data: f.data.to_vec(),
            })
            .collect();
        let events = self
            .0
            .barrage_plugin_request_codec()
            .decoder()
            .call_push(store, decoder, &frames)?;
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
            secrets: Vec::new(),
        }
    }
}

/// A prompt as 0.1 writes it, or why it cannot be: 0.1 has text-only
/// messages and no inputs to embed or rank.
fn prompt_to_wire(p: host::Prompt) -> Result<types::Prompt, String> {
    let newer = |what: &str| {
        Err(format!(
            "this codec was built for contract 0.1.0, which has no {what}: use a codec built for 0.2"
        ))
    };
    Ok(match p {
        host::Prompt::Text(t) => types::Prompt::Text(t),
        host::Prompt::Messages(messages) => {
            let mut out = Vec::with_capacity(messages.len());
            for m in messages {
                if m.media().is_some() {
                    return newer("image or audio parts");
                }
                if !m.tool_calls.is_empty() || m.tool_call_id.is_some() {
                    return newer("tool calls");
                }
                out.push(types::Message {
                    content: m.text_content(),
                    role: m.role,
                });
            }
            types::Prompt::Messages(out)
        }
        host::Prompt::TokenIds(ids) => types::Prompt::TokenIds(ids),
        host::Prompt::Inputs(_) => return newer("inputs to embed"),
        host::Prompt::Rerank(_) => return newer("rerank queries"),
    })
}

impl From<types::Prompt> for host::Prompt {
    fn from(p: types::Prompt) -> host::Prompt {
        match p {
            types::Prompt::Text(t) => host::Prompt::Text(t),
            types::Prompt::Messages(m) => host::Prompt::Messages(
                m.into_iter()
                    .map(|m| host::ChatMessage::text(m.role, m.content))
                    .collect(),
            ),
            types::Prompt::TokenIds(ids) => host::Prompt::TokenIds(ids),
        }
    }
}

/// The request as 0.1 writes it, or why it cannot be.
fn spec_to_wire(s: host::RequestSpec) -> Result<wire::RequestSpec, String> {
    if !s.tools.is_empty() {
        return Err("this codec was built for contract 0.1.0, which has no tools: use a codec built for 0.2".into());
    }
    let g = s.generation;
    Ok(wire::RequestSpec {
        id: s.id,
        model: s.model,
        prompt: prompt_to_wire(s.prompt)?,
        generation: wire::Generation {
            max_tokens: g.max_tokens,
            min_tokens: g.min_tokens,
            ignore_eos: g.ignore_eos,
            temperature: g.temperature,
            stream: g.stream,
            include_usage: g.include_usage,
        },
        extra: s.extra,
    })
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
            },
            output: host::OutputKind::Tokens,
            prompt_tokens: None,
        }
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
            tools: Vec::new(),
        }
    }
}
