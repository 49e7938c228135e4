//! The contract versions this host speaks, one module each, behind one enum
//! per world.
//!
//! Each `vX_Y` module holds the bindings generated from `wit/frozen/X.Y.Z`
//! and converts them to and from the host's types; the rest of the host
//! only sees the enums here. Supporting a new contract version is a new
//! module, a new arm in each `match` below and a new entry in
//! [`SUPPORTED_VERSIONS`]; plugins built for the older versions keep loading.

/// What every version module says in the same words over its own generated
/// types: the host side of the imports every version has (`types`, `log`,
/// `config`, `random`, `tokenizer`, `files`, `records`) and their linking
/// (`link_shared`, `link_files`, `link_records`), `meta.info` by export
/// index, each world's wrappers, and the calls and conversions whose types
/// no version has changed (a codec's `open`, `finish`, `decode-unary`, a
/// dataset's and a reporter's calls). Invoked in each version module after
/// its `bindgen!`s and `use`s, with the name of its `meta` export.
macro_rules! shared_bindings {
    ($meta:literal) => {
        /// The imports every version has, for every world.
        fn link_shared(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
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
                .get_export_index(None, $meta)
                .ok_or_else(|| wasmtime::format_err!("the plugin does not export `{}`", $meta))?;
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

        version_world!(codec, CodecPre, Codec, "codec");
        version_world!(dataset, DatasetPre, Dataset, "dataset plugin");
        version_world!(reporter, ReporterPre, Reporter, "reporter");

        // Calls and conversions that read the same in every version.

        impl Codec {
            pub(super) fn open(
                &self,
                store: &mut Store<HostState>,
                head: host::ResponseHead,
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
                head: host::ResponseHead,
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
            pub(super) fn open(
                &self,
                store: &mut Store<HostState>,
            ) -> wasmtime::Result<Result<ResourceAny, InputError>> {
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
                let files = self
                    .0
                    .barrage_plugin_report_renderer()
                    .call_render(store, &input)?;
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

        impl From<types::ConfigError> for ConfigError {
            fn from(e: types::ConfigError) -> ConfigError {
                ConfigError {
                    field: e.field,
                    message: e.message,
                }
            }
        }

        fn response_head(head: host::ResponseHead) -> wire::ResponseHead {
            wire::ResponseHead {
                status: head.status,
                headers: head.headers,
            }
        }

        fn delta(d: wire::ContentDelta) -> host::ContentDelta {
            host::ContentDelta {
                bytes: d.bytes,
                tokens: d.tokens,
                text: d.text,
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
    };
}

/// A world's pre-instance and instance: the same wrappers for every world
/// and version, with `meta` (which every world exports) on the instance.
macro_rules! version_world {
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

mod v0_1;
mod v0_2;

use barrage_core::framing::Frames;
use barrage_core::types::{DecodeOptions, EncodedRequest, Event, RequestSpec, ResponseHead};
use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceAny};

use crate::contract::{Version, World};
use crate::dataset::{DatasetBatch, InputError};
use crate::reporter::ReportFile;
use crate::state::HostState;
use crate::{ConfigError, PluginInfo};

/// Contract versions this host loads, one per binding module. A plugin built
/// for another release of the same `0.x` series, or for a newer patch than
/// listed, is refused.
pub const SUPPORTED_VERSIONS: &[Version] = &[
    Version {
        major: 0,
        minor: 1,
        patch: 0,
    },
    Version {
        major: 0,
        minor: 2,
        patch: 0,
    },
];

/// Which binding module serves a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `barrage:plugin@0.1.x`.
    V0_1,
    /// `barrage:plugin@0.2.x`: content parts, tools, secrets, signing
    /// time, non-generative outputs, AWS event streams, frame batches.
    V0_2,
}

impl Contract {
    /// The module for a plugin built against `version`, if this host has one.
    pub fn for_version(version: Version) -> Option<Contract> {
        let host = SUPPORTED_VERSIONS.iter().find(|h| version.runs_on(**h))?;
        match (host.major, host.minor) {
            (0, 1) => Some(Contract::V0_1),
            (0, 2) => Some(Contract::V0_2),
            _ => None,
        }
    }

    /// A linker with this version's imports for `world`, and a trap for
    /// anything else. Plugins get no WASI: a plugin that calls into WASI (a
    /// clock, the environment, stderr) traps at that call, and only then.
    pub(crate) fn linker(
        self,
        engine: &wasmtime::Engine,
        component: &Component,
        world: Option<World>,
    ) -> wasmtime::Result<Linker<HostState>> {
        let mut linker = Linker::new(engine);
        match self {
            Contract::V0_1 => {
                v0_1::link_common(&mut linker)?;
                match world {
                    Some(World::Dataset) => v0_1::link_files(&mut linker)?,
                    Some(World::Reporter) => v0_1::link_records(&mut linker)?,
                    Some(World::Codec) | None => {}
                }
            }
            Contract::V0_2 => {
                v0_2::link_common(&mut linker)?;
                match world {
                    Some(World::Dataset) => v0_2::link_files(&mut linker)?,
                    Some(World::Reporter) => v0_2::link_records(&mut linker)?,
                    Some(World::Codec) | None => {}
                }
            }
        }
        // A world's own interfaces are linked for that world only; asking
        // any plugin its info (no world) finds the rest as traps.
        let linked = |name: &str| {
            let only = |interface: &str, w: World| name.starts_with(interface) && world != Some(w);
            name.starts_with("barrage:plugin/")
                && !only("barrage:plugin/files@", World::Dataset)
                && !only("barrage:plugin/records@", World::Reporter)
        };
        crate::sandbox::link(&mut linker, component, engine, linked)?;
        Ok(linker)
    }

    /// Instantiate `component` with only the shared imports and ask who it
    /// is, whatever its world.
    pub(crate) fn info(
        self,
        linker: &Linker<HostState>,
        store: &mut Store<HostState>,
        component: &Component,
    ) -> wasmtime::Result<PluginInfo> {
        let instance = linker.instantiate(&mut *store, component)?;
        match self {
            Contract::V0_1 => v0_1::info(&instance, store, component),
            Contract::V0_2 => v0_2::info(&instance, store, component),
        }
    }
}

/// What every world's instance answers: `meta`.
pub(crate) trait Meta {
    fn info(&self, store: &mut Store<HostState>) -> wasmtime::Result<PluginInfo>;
    fn check_config(&self, store: &mut Store<HostState>) -> wasmtime::Result<Result<(), ConfigError>>;
}

/// One world's pre-instantiated component, of any contract version.
pub(crate) trait Pre: Sized {
    type Instance: Meta;
    const WORLD: World;
    fn new(contract: Contract, linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Self>;
    fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Self::Instance>;
}

/// Expands to the `Pre` and `Meta` impls of one world, which differ only in
/// their names.
macro_rules! world {
    ($world:expr, $pre:ident, $instance:ident) => {
        impl Pre for $pre {
            type Instance = $instance;
            const WORLD: World = $world;

            fn new(contract: Contract, linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Self> {
                match contract {
                    Contract::V0_1 => v0_1::$pre::new(linker, component).map($pre::V0_1),
                    Contract::V0_2 => v0_2::$pre::new(linker, component).map($pre::V0_2),
                }
            }

            fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<$instance> {
                match self {
                    $pre::V0_1(pre) => pre.instantiate(store).map($instance::V0_1),
                    $pre::V0_2(pre) => pre.instantiate(store).map($instance::V0_2),
                }
            }
        }

        impl Meta for $instance {
            fn info(&self, store: &mut Store<HostState>) -> wasmtime::Result<PluginInfo> {
                match self {
                    $instance::V0_1(i) => i.info(store),
                    $instance::V0_2(i) => i.info(store),
                }
            }

            fn check_config(&self, store: &mut Store<HostState>) -> wasmtime::Result<Result<(), ConfigError>> {
                match self {
                    $instance::V0_1(i) => i.check_config(store),
                    $instance::V0_2(i) => i.check_config(store),
                }
            }
        }
    };
}

world!(World::Codec, CodecPre, Codec);
world!(World::Dataset, DatasetPre, Dataset);
world!(World::Reporter, ReporterPre, Reporter);

/// A pre-instantiated codec.
pub(crate) enum CodecPre {
    V0_1(v0_1::CodecPre),
    V0_2(v0_2::CodecPre),
}

/// A codec instance.
pub(crate) enum Codec {
    V0_1(v0_1::Codec),
    V0_2(v0_2::Codec),
}

impl Codec {
    pub(crate) fn encode(
        &self,
        store: &mut Store<HostState>,
        spec: RequestSpec,
    ) -> wasmtime::Result<Result<EncodedRequest, String>> {
        match self {
            Codec::V0_1(c) => c.encode(store, spec),
            Codec::V0_2(c) => c.encode(store, spec),
        }
    }

    pub(crate) fn open(
        &self,
        store: &mut Store<HostState>,
        head: ResponseHead,
        options: DecodeOptions,
    ) -> wasmtime::Result<ResourceAny> {
        match self {
            Codec::V0_1(c) => c.open(store, head, options),
            Codec::V0_2(c) => c.open(store, head, options),
        }
    }

    pub(crate) fn push(
        &self,
        store: &mut Store<HostState>,
        decoder: ResourceAny,
        frames: Frames,
    ) -> wasmtime::Result<Result<Vec<(u32, Event)>, String>> {
        match self {
            Codec::V0_1(c) => c.push(store, decoder, frames),
            Codec::V0_2(c) => c.push(store, decoder, frames),
        }
    }

    pub(crate) fn finish(
        &self,
        store: &mut Store<HostState>,
        decoder: ResourceAny,
    ) -> wasmtime::Result<Result<Vec<Event>, String>> {
        match self {
            Codec::V0_1(c) => c.finish(store, decoder),
            Codec::V0_2(c) => c.finish(store, decoder),
        }
    }

    pub(crate) fn decode_unary(
        &self,
        store: &mut Store<HostState>,
        head: ResponseHead,
        body: &[u8],
        options: DecodeOptions,
    ) -> wasmtime::Result<Result<Vec<Event>, String>> {
        match self {
            Codec::V0_1(c) => c.decode_unary(store, head, body, options),
            Codec::V0_2(c) => c.decode_unary(store, head, body, options),
        }
    }
}

/// A pre-instantiated dataset plugin.
pub(crate) enum DatasetPre {
    V0_1(v0_1::DatasetPre),
    V0_2(v0_2::DatasetPre),
}

/// A dataset plugin instance.
pub(crate) enum Dataset {
    V0_1(v0_1::Dataset),
    V0_2(v0_2::Dataset),
}

impl Dataset {
    pub(crate) fn open(&self, store: &mut Store<HostState>) -> wasmtime::Result<Result<ResourceAny, InputError>> {
        match self {
            Dataset::V0_1(d) => d.open(store),
            Dataset::V0_2(d) => d.open(store),
        }
    }

    pub(crate) fn next_batch(
        &self,
        store: &mut Store<HostState>,
        generator: ResourceAny,
        max: u32,
    ) -> wasmtime::Result<Result<DatasetBatch, InputError>> {
        match self {
            Dataset::V0_1(d) => d.next_batch(store, generator, max),
            Dataset::V0_2(d) => d.next_batch(store, generator, max),
        }
    }
}

/// A pre-instantiated reporter.
pub(crate) enum ReporterPre {
    V0_1(v0_1::ReporterPre),
    V0_2(v0_2::ReporterPre),
}

/// A reporter instance.
pub(crate) enum Reporter {
    V0_1(v0_1::Reporter),
    V0_2(v0_2::Reporter),
}

impl Reporter {
    pub(crate) fn wants_records(&self, store: &mut Store<HostState>) -> wasmtime::Result<bool> {
        match self {
            Reporter::V0_1(r) => r.wants_records(store),
            Reporter::V0_2(r) => r.wants_records(store),
        }
    }

    pub(crate) fn render(
        &self,
        store: &mut Store<HostState>,
        schema_version: u32,
        summary: String,
    ) -> wasmtime::Result<Result<Vec<ReportFile>, String>> {
        match self {
            Reporter::V0_1(r) => r.render(store, schema_version, summary),
            Reporter::V0_2(r) => r.render(store, schema_version, summary),
        }
    }
}
