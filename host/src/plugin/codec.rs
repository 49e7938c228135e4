//! A loaded codec plugin and its instances.
//!
//! Loading compiles the component (or takes it from the cache), checks its
//! contract and configuration, and pre-instantiates it. Each
//! [`CodecInstance`] is one store with one instance; a trap poisons a store,
//! so a failed instance is dropped and another made from the pre-instance.

use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker, ResourceAny};
use wasmtime::{Store, Trap};

use super::bindings::codec::barrage::plugin as imports;
use super::bindings::codec::{Codec, CodecPre};
use super::bindings::{PluginInfo, wire};
use super::contract::{ContractInfo, World, supported_list};
use super::engine::{PluginEngine, sha256_hex};
use super::registry::PluginSource;
use super::state::{HostState, PluginContext};
use super::{FailureKind, PluginError, PluginFailure};

/// A component read from disk or the binary, compiled and its contract read.
pub struct LoadedComponent {
    /// The compiled component.
    pub component: Component,
    /// What its type says.
    pub contract: ContractInfo,
    /// sha256 of the component bytes.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: usize,
}

impl LoadedComponent {
    /// Read and compile `source`.
    pub fn load(engine: &PluginEngine, source: &PluginSource) -> Result<LoadedComponent, PluginError> {
        let bytes = source.bytes()?;
        let component = engine.compile(&source.label(), &bytes)?;
        let contract = ContractInfo::read(engine.engine(), &component);
        Ok(LoadedComponent {
            component,
            contract,
            sha256: sha256_hex(&bytes),
            size: bytes.len(),
        })
    }

    /// Refuse a component that does not implement `world` at a supported
    /// version, with a message naming the plugin and the versions.
    pub fn expect_world(&self, name: &str, world: World) -> Result<(), PluginError> {
        self.contract.supported_version().map_err(|found| match self.contract.versions.is_empty() {
            true => PluginError::WrongWorld {
                name: name.to_string(),
                problem: format!(
                    "is not a Barrage plugin: it implements none of the barrage:plugin worlds (codec, dataset, reporter); \
                     this host supports {}",
                    supported_list()
                ),
            },
            false => PluginError::Incompatible { name: name.to_string(), found, supported: supported_list() },
        })?;
        match self.contract.world {
            Some(w) if w == world => Ok(()),
            Some(w) => Err(PluginError::WrongWorld {
                name: name.to_string(),
                problem: format!("is a {w} plugin, but a {world} plugin is needed here"),
            }),
            None => Err(PluginError::WrongWorld {
                name: name.to_string(),
                problem: "exports no barrage:plugin world (codec, dataset or reporter)".into(),
            }),
        }
    }
}

/// The linker half every world shares: the common imports, and a trap for
/// anything else. Plugins get no WASI: a plugin that calls into WASI (a
/// clock, the environment, stderr) traps at that call, and only then.
pub(crate) fn base_linker(engine: &PluginEngine, component: &Component) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine.engine());
    imports::types::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    imports::log::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    imports::config::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    imports::random::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    imports::tokenizer::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    linker.define_unknown_imports_as_traps(component)?;
    Ok(linker)
}

/// A new store for `ctx`, with the memory limit and a deadline armed per call.
pub(crate) fn new_store(engine: &PluginEngine, ctx: PluginContext) -> Store<HostState> {
    let mut store = Store::new(engine.engine(), HostState::new(ctx, engine.options().memory_limit));
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_trap();
    // Instantiation runs the plugin's start code: give it the same deadline.
    store.set_epoch_deadline(engine.deadline_ticks());
    store
}

/// Why a plugin call failed: the memory cap, the deadline (`deadline` is
/// named in the message), or a trap, with the panic message the SDK logged
/// just before it when there was one.
pub(crate) fn classify_error(
    state: &mut HostState,
    err: &wasmtime::Error,
    deadline: std::time::Duration,
) -> (FailureKind, String) {
    if state.limiter.hit {
        (
            FailureKind::MemoryLimit,
            format!("memory limit of {} MiB reached", state.limiter.limit >> 20),
        )
    } else if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        (
            FailureKind::Timeout,
            format!("call ran past its {} ms deadline and was stopped", deadline.as_millis()),
        )
    } else {
        let detail = match err.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{err}"),
        };
        let message = match state.last_panic.take() {
            Some(panic) => format!("{panic} ({detail})"),
            None => detail,
        };
        (FailureKind::Trap, message)
    }
}

/// A codec plugin ready to make instances.
pub struct CodecPlugin {
    /// What the plugin says it is.
    pub info: PluginInfo,
    /// sha256 of the component.
    pub sha256: String,
    /// The contract version it targets.
    pub contract_version: String,
    /// Where it came from.
    pub source: PluginSource,
    engine: PluginEngine,
    pre: CodecPre<HostState>,
    ctx: PluginContext,
}

impl CodecPlugin {
    /// Load a codec: compile, check the contract, instantiate once to read
    /// its info and have it check its configuration.
    pub fn load(
        engine: &PluginEngine,
        source: &PluginSource,
        mut ctx: PluginContext,
    ) -> Result<Arc<CodecPlugin>, PluginError> {
        let label = source.label();
        let loaded = LoadedComponent::load(engine, source)?;
        loaded.expect_world(&label, World::Codec)?;
        let start = |e: wasmtime::Error| PluginError::Start {
            name: label.clone(),
            message: format!("{e:#}"),
        };
        let linker = base_linker(engine, &loaded.component).map_err(start)?;
        let pre = CodecPre::new(linker.instantiate_pre(&loaded.component).map_err(start)?).map_err(start)?;
        ctx.name = label.clone().into();
        let mut store = new_store(engine, ctx.clone());
        let codec = pre.instantiate(&mut store).map_err(start)?;
        let info = codec.barrage_plugin_meta().call_info(&mut store).map_err(start)?;
        ctx.name = info.name.clone().into();
        store.data_mut().ctx.name = ctx.name.clone();
        store.set_epoch_deadline(engine.deadline_ticks());
        match codec
            .barrage_plugin_meta()
            .call_check_config(&mut store)
            .map_err(start)?
        {
            Ok(()) => {}
            Err(e) => {
                return Err(PluginError::Config {
                    name: info.name.clone(),
                    field: e.field,
                    message: e.message,
                });
            }
        }
        Ok(Arc::new(CodecPlugin {
            info,
            sha256: loaded.sha256,
            contract_version: loaded.contract.versions.first().cloned().unwrap_or_default(),
            source: source.clone(),
            engine: engine.clone(),
            pre,
            ctx,
        }))
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The tokenizer its instances are offered.
    pub fn tokenizer(&self) -> &std::sync::Arc<dyn crate::tokenizer::Tokenizer> {
        &self.ctx.tokenizer
    }

    /// A fresh instance in a store of its own.
    pub fn instance(self: &Arc<Self>) -> Result<CodecInstance, PluginFailure> {
        let mut store = new_store(&self.engine, self.ctx.clone());
        match self.pre.instantiate(&mut store) {
            Ok(codec) => Ok(CodecInstance {
                plugin: self.clone(),
                store,
                codec,
                poisoned: false,
            }),
            Err(e) => Err(PluginFailure {
                plugin: self.name().to_string(),
                kind: FailureKind::Trap,
                message: format!("could not instantiate: {e:#}"),
            }),
        }
    }
}

/// One instance of a codec in its own store. Every call runs under the
/// engine's deadline and memory limit; after a failed call the instance is
/// poisoned and must be dropped.
pub struct CodecInstance {
    plugin: Arc<CodecPlugin>,
    store: Store<HostState>,
    codec: Codec,
    poisoned: bool,
}

impl CodecInstance {
    /// True after a trap, timeout or memory-limit hit.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The plugin this is an instance of.
    pub fn plugin(&self) -> &Arc<CodecPlugin> {
        &self.plugin
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&Codec, &mut Store<HostState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginFailure> {
        if self.poisoned {
            return Err(self.failure(FailureKind::Trap, "instance was poisoned by an earlier failure".into()));
        }
        self.store.set_epoch_deadline(self.plugin.engine.deadline_ticks());
        match f(&self.codec, &mut self.store) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(message)) => Err(self.failure(FailureKind::Returned, message)),
            Err(e) => Err(self.classify(e)),
        }
    }

    fn failure(&self, kind: FailureKind, message: String) -> PluginFailure {
        PluginFailure {
            plugin: self.plugin.name().to_string(),
            kind,
            message,
        }
    }

    fn classify(&mut self, err: wasmtime::Error) -> PluginFailure {
        self.poisoned = true;
        let deadline = self.plugin.engine.options().call_deadline;
        let (kind, message) = classify_error(self.store.data_mut(), &err, deadline);
        self.failure(kind, message)
    }

    /// Encode a request.
    pub fn encode(&mut self, spec: &wire::RequestSpec) -> Result<wire::EncodedRequest, PluginFailure> {
        self.call(|c, s| c.barrage_plugin_request_codec().call_encode(s, spec))
    }

    /// Start decoding a streamed response.
    pub fn open(
        &mut self,
        head: &wire::ResponseHead,
        options: wire::DecodeOptions,
    ) -> Result<ResourceAny, PluginFailure> {
        self.call(|c, s| {
            c.barrage_plugin_request_codec()
                .decoder()
                .call_constructor(s, head, options)
                .map(Ok)
        })
    }

    /// Decode a batch of frames of the stream `decoder`.
    pub fn push(
        &mut self,
        decoder: ResourceAny,
        frames: &[wire::Frame],
    ) -> Result<Vec<wire::FrameEvent>, PluginFailure> {
        self.call(|c, s| c.barrage_plugin_request_codec().decoder().call_push(s, decoder, frames))
    }

    /// End the stream `decoder` and free it.
    pub fn finish(&mut self, decoder: ResourceAny) -> Result<Vec<wire::Event>, PluginFailure> {
        let events = self.call(|c, s| c.barrage_plugin_request_codec().decoder().call_finish(s, decoder));
        self.close(decoder);
        events
    }

    /// Free the stream `decoder` without finishing it (a cancelled request).
    pub fn close(&mut self, decoder: ResourceAny) {
        if !self.poisoned {
            self.store.set_epoch_deadline(self.plugin.engine.deadline_ticks());
            if let Err(e) = decoder.resource_drop(&mut self.store) {
                let _ = self.classify(e);
            }
        }
    }

    /// Decode a complete non-streamed response.
    pub fn decode_unary(
        &mut self,
        head: &wire::ResponseHead,
        body: &[u8],
        options: wire::DecodeOptions,
    ) -> Result<Vec<wire::Event>, PluginFailure> {
        self.call(|c, s| {
            c.barrage_plugin_request_codec()
                .call_decode_unary(s, head, body, options)
        })
    }
}
