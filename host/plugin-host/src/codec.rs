//! A loaded codec plugin and its instances.
//!
//! Loading compiles the component (or takes it from the cache), checks its
//! contract and configuration, and pre-instantiates it. Each
//! [`CodecInstance`] is one store with one instance; a trap poisons a store,
//! so a failed instance is dropped and another made from the pre-instance.

use std::sync::Arc;

use barrage_core::framing::TimedFrame;
use barrage_core::types::{DecodeOptions, EncodedRequest, Event, RequestSpec, ResponseHead};
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::{Codec, CodecPre, Pre};
use crate::component::{classify_error, new_store};
use crate::engine::PluginEngine;
use crate::registry::PluginSource;
use crate::state::{HostState, PluginContext};
use crate::{FailureKind, PluginError, PluginFailure, PluginInfo};

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
    pre: CodecPre,
    ctx: PluginContext,
}

impl CodecPlugin {
    /// Load a codec: compile, check the contract, instantiate once to read
    /// its info and have it check its configuration.
    pub fn load(
        engine: &PluginEngine,
        source: &PluginSource,
        ctx: PluginContext,
    ) -> Result<Arc<CodecPlugin>, PluginError> {
        let loaded = crate::component::load::<CodecPre>(engine, source, ctx)?;
        Ok(Arc::new(CodecPlugin {
            info: loaded.info,
            sha256: loaded.sha256,
            contract_version: loaded.contract_version,
            source: source.clone(),
            engine: engine.clone(),
            pre: loaded.pre,
            ctx: loaded.ctx,
        }))
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The tokenizer its instances are offered.
    pub fn tokenizer(&self) -> &Arc<dyn crate::tokenizer::Tokenizer> {
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
    pub fn encode(&mut self, spec: RequestSpec) -> Result<EncodedRequest, PluginFailure> {
        self.call(|c, s| c.encode(s, spec))
    }

    /// Start decoding a streamed response.
    pub fn open(&mut self, head: &ResponseHead, options: DecodeOptions) -> Result<ResourceAny, PluginFailure> {
        self.call(|c, s| c.open(s, head, options).map(Ok))
    }

    /// Decode a batch of frames of the stream `decoder`; each event comes
    /// with the index of its frame in the batch, as the plugin gave it
    /// (unchecked).
    pub fn push(&mut self, decoder: ResourceAny, frames: Vec<TimedFrame>) -> Result<Vec<(u32, Event)>, PluginFailure> {
        self.call(|c, s| c.push(s, decoder, frames))
    }

    /// End the stream `decoder` and free it.
    pub fn finish(&mut self, decoder: ResourceAny) -> Result<Vec<Event>, PluginFailure> {
        let events = self.call(|c, s| c.finish(s, decoder));
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
        head: &ResponseHead,
        body: &[u8],
        options: DecodeOptions,
    ) -> Result<Vec<Event>, PluginFailure> {
        self.call(|c, s| c.decode_unary(s, head, body, options))
    }
}
