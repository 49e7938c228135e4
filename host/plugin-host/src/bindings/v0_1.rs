//! `barrage:plugin@0.1.0`, generated from `wit/frozen/0.1.0`, and its
//! conversion to and from the host's types. Nothing outside `bindings/`
//! sees a generated type.

use barrage_core::framing::TimedFrame;
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

/// The imports every world shares.
pub(super) fn link_common(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    types::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    log::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    config::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    random::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    tokenizer::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

/// The `files` import of the dataset world.
pub(super) fn link_files(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    files::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

/// The `records` import of the reporter world.
pub(super) fn link_records(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    records::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

/// `meta.info` of an instance of any world, by its export index.
pub(super) fn info(
    instance: &Instance,
    store: &mut Store<HostState>,
    component: &Component,
) -> wasmtime::Result<PluginInfo> {
    let meta = component
        .get_export_index(None, "barrage:plugin/meta@0.1.0")
        .ok_or_else(|| wasmtime::format_err!("the plugin does not export `barrage:plugin/meta@0.1.0`"))?;
    let idx = component
        .get_export_index(Some(&meta), "info")
        .ok_or_else(|| wasmtime::format_err!("the plugin does not export `info`"))?;
    let info: TypedFunc<(), (types::PluginInfo,)> = instance.get_typed_func(&mut *store, idx)?;
    let (info,) = info.call(&mut *store, ())?;
    Ok(info.into())
}

// Host side of the imports: each delegates to the version-neutral method of
// `HostState`.

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.plugin_log(level, message);
    }
}

impl config::Host for HostState {
    fn get(&mut self) -> String {
        self.config_json()
    }
}

impl random::Host for HostState {
    fn next_u64(&mut self) -> u64 {
        self.random_u64()
    }

    fn fill(&mut self, len: u32) -> Vec<u8> {
        self.random_bytes(len)
    }
}

impl tokenizer::Host for HostState {
    fn info(&mut self) -> tokenizer::TokenizerInfo {
        tokenizer::TokenizerInfo {
            name: self.ctx.tokenizer.name().to_string(),
            exact: self.ctx.tokenizer.exact(),
        }
    }

    fn count(&mut self, text: String) -> u32 {
        self.ctx.tokenizer.count(&text)
    }

    fn encode(&mut self, text: String) -> Vec<u32> {
        self.ctx.tokenizer.encode(&text)
    }

    fn decode(&mut self, tokens: Vec<u32>) -> String {
        self.ctx.tokenizer.decode(&tokens)
    }
}

impl files::Host for HostState {
    fn names(&mut self) -> Vec<String> {
        self.file_names()
    }

    fn size(&mut self, name: String) -> Result<u64, String> {
        self.file_size(&name)
    }

    fn read(&mut self, name: String, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        self.file_read(&name, offset, len)
    }
}

impl records::Host for HostState {
    fn count(&mut self) -> u64 {
        self.record_count()
    }

    fn next_batch(&mut self, max: u32) -> Vec<String> {
        self.record_batch(max)
    }
}

// Exports, world by world.

/// A world's pre-instance and instance: the same wrappers for every world,
/// with `meta` (which every world exports) on the instance.
macro_rules! world {
    ($module:ident, $pre:ident, $instance:ident, $what:literal) => {
        #[doc = concat!("A pre-instantiated ", $what, ".")]
        pub(crate) struct $pre($module::$pre<HostState>);

        #[doc = concat!("An instance of a ", $what, ".")]
        pub(crate) struct $instance($module::$instance);

        impl $pre {
            pub(super) fn new(linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<$pre> {
                Ok($pre($module::$pre::new(linker.instantiate_pre(component)?)?))
            }

            pub(super) fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<$instance> {
                self.0.instantiate(store).map($instance)
            }
        }

        impl $instance {
            pub(super) fn info(&self, store: &mut Store<HostState>) -> wasmtime::Result<PluginInfo> {
                self.0.barrage_plugin_meta().call_info(store).map(Into::into)
            }

            pub(super) fn check_config(
                &self,
                store: &mut Store<HostState>,
            ) -> wasmtime::Result<Result<(), ConfigError>> {
                Ok(self
                    .0
                    .barrage_plugin_meta()
                    .call_check_config(store)?
                    .map_err(Into::into))
            }
        }
    };
}

world!(codec, CodecPre, Codec, "codec");
world!(dataset, DatasetPre, Dataset, "dataset plugin");
world!(reporter, ReporterPre, Reporter, "reporter");

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

    pub(super) fn open(
        &self,
        store: &mut Store<HostState>,
        head: &host::ResponseHead,
        options: host::DecodeOptions,
    ) -> wasmtime::Result<ResourceAny> {
        let head = response_head(head);
        let options = wire::DecodeOptions {
            want_text: options.want_text,
        };
        self.0
            .barrage_plugin_request_codec()
            .decoder()
            .call_constructor(store, &head, options)
    }

    /// Events come back with the index of their frame, unchecked (the
    /// caller checks it).
    pub(super) fn push(
        &self,
        store: &mut Store<HostState>,
        decoder: ResourceAny,
        frames: Vec<TimedFrame>,
    ) -> wasmtime::Result<Result<Vec<(u32, host::Event)>, String>> {
        let frames: Vec<wire::Frame> = frames
            .into_iter()
            .map(|f| wire::Frame {
                event: f.event,
                data: f.data,
            })
            .collect();
        let events = self
            .0
            .barrage_plugin_request_codec()
            .decoder()
            .call_push(store, decoder, &frames)?;
        Ok(events.map(|events| events.into_iter().map(|fe| (fe.frame, fe.event.into())).collect()))
    }

    pub(super) fn finish(
        &self,
        store: &mut Store<HostState>,
        decoder: ResourceAny,
    ) -> wasmtime::Result<Result<Vec<host::Event>, String>> {
        let events = self
            .0
            .barrage_plugin_request_codec()
            .decoder()
            .call_finish(store, decoder)?;
        Ok(events.map(|e| e.into_iter().map(Into::into).collect()))
    }

    pub(super) fn decode_unary(
        &self,
        store: &mut Store<HostState>,
        head: &host::ResponseHead,
        body: &[u8],
        options: host::DecodeOptions,
    ) -> wasmtime::Result<Result<Vec<host::Event>, String>> {
        let head = response_head(head);
        let options = wire::DecodeOptions {
            want_text: options.want_text,
        };
        let events = self
            .0
            .barrage_plugin_request_codec()
            .call_decode_unary(store, &head, body, options)?;
        Ok(events.map(|e| e.into_iter().map(Into::into).collect()))
    }
}

impl Dataset {
    pub(super) fn open(&self, store: &mut Store<HostState>) -> wasmtime::Result<Result<ResourceAny, InputError>> {
        Ok(self
            .0
            .barrage_plugin_dataset_source()
            .call_open(store)?
            .map_err(Into::into))
    }

    pub(super) fn next_batch(
        &self,
        store: &mut Store<HostState>,
        generator: ResourceAny,
        max: u32,
    ) -> wasmtime::Result<Result<DatasetBatch, InputError>> {
        let batch = self
            .0
            .barrage_plugin_dataset_source()
            .generator()
            .call_next_batch(store, generator, max)?;
        Ok(batch
            .map(|b| DatasetBatch {
                samples: b.samples.into_iter().map(Into::into).collect(),
                skipped: b.skipped.into_iter().map(Into::into).collect(),
                done: b.done,
            })
            .map_err(Into::into))
    }
}

impl Reporter {
    pub(super) fn wants_records(&self, store: &mut Store<HostState>) -> wasmtime::Result<bool> {
        self.0.barrage_plugin_report_renderer().call_wants_records(store)
    }

    pub(super) fn render(
        &self,
        store: &mut Store<HostState>,
        schema_version: u32,
        summary: String,
    ) -> wasmtime::Result<Result<Vec<ReportFile>, String>> {
        let input = report_renderer::ReportInput {
            schema_version,
            summary,
        };
        let files = self.0.barrage_plugin_report_renderer().call_render(store, &input)?;
        Ok(files.map(|files| {
            files
                .into_iter()
                .map(|f| ReportFile {
                    path: f.path,
                    contents: f.contents,
                })
                .collect()
        }))
    }
}

// Conversions.

impl From<types::PluginInfo> for PluginInfo {
    fn from(i: types::PluginInfo) -> PluginInfo {
        PluginInfo {
            name: i.name,
            version: i.version,
            description: i.description,
        }
    }
}

impl From<types::ConfigError> for ConfigError {
    fn from(e: types::ConfigError) -> ConfigError {
        ConfigError {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<host::Prompt> for types::Prompt {
    fn from(p: host::Prompt) -> types::Prompt {
        match p {
            host::Prompt::Text(t) => types::Prompt::Text(t),
            host::Prompt::Messages(m) => types::Prompt::Messages(
                m.into_iter()
                    .map(|m| types::Message {
                        role: m.role,
                        content: m.content,
                    })
                    .collect(),
            ),
            host::Prompt::TokenIds(ids) => types::Prompt::TokenIds(ids),
        }
    }
}

impl From<types::Prompt> for host::Prompt {
    fn from(p: types::Prompt) -> host::Prompt {
        match p {
            types::Prompt::Text(t) => host::Prompt::Text(t),
            types::Prompt::Messages(m) => host::Prompt::Messages(
                m.into_iter()
                    .map(|m| host::ChatMessage {
                        role: m.role,
                        content: m.content,
                    })
                    .collect(),
            ),
            types::Prompt::TokenIds(ids) => host::Prompt::TokenIds(ids),
        }
    }
}

impl From<host::RequestSpec> for wire::RequestSpec {
    fn from(s: host::RequestSpec) -> wire::RequestSpec {
        let g = s.generation;
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
            },
        }
    }
}

fn response_head(head: &host::ResponseHead) -> wire::ResponseHead {
    wire::ResponseHead {
        status: head.status,
        headers: head.headers.clone(),
    }
}

fn delta(d: wire::ContentDelta) -> host::ContentDelta {
    host::ContentDelta {
        bytes: d.bytes,
        tokens: d.tokens,
        text: d.text,
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
        }
    }
}

impl From<dataset_source::DatasetError> for InputError {
    fn from(e: dataset_source::DatasetError) -> InputError {
        InputError {
            file: e.file,
            line: e.line,
            message: e.message,
        }
    }
}
