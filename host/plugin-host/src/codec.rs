//! A loaded codec plugin and its instances.
//!
//! Loading compiles the component (or takes it from the cache), checks its
//! contract and configuration, and pre-instantiates it. Each
//! [`CodecInstance`] is one store with one instance; a trap poisons a store,
//! so a failed instance is dropped and another made from the pre-instance.

use std::sync::Arc;
use std::time::Duration;

use barrage_core::framing::Frames;
use barrage_core::types::{DecodeOptions, EncodedRequest, Event, RequestSpec, ResponseHead};
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::{Codec, CodecPre, Pre};
use crate::bounds;
use crate::component::{Allowance, arm, classify_error, new_store};
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
    allowance: Allowance,
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
            allowance: loaded.allowance,
        }))
    }

    /// The name it was picked by (its file's, or the built-in's).
    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    /// Linear memory its live instances held together, at most.
    pub fn memory_peak(&self) -> usize {
        self.allowance.budget.peak()
    }

    /// How long one `encode` may run.
    pub fn encode_deadline(&self) -> Duration {
        self.allowance.deadline(self.engine.options().encode_deadline)
    }

    /// The tokenizer its instances are offered.
    pub fn tokenizer(&self) -> &Arc<dyn crate::tokenizer::Tokenizer> {
        &self.ctx.tokenizer
    }

    /// A fresh instance in a store of its own.
    pub fn instance(self: &Arc<Self>) -> Result<CodecInstance, PluginFailure> {
        let mut store = new_store(&self.engine, self.ctx.clone(), &self.allowance);
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

/// Bytes of input an encode gets one encode deadline for: writing out 64 KiB
/// of prompt takes well under a millisecond, so a codec doing real work
/// never meets the deadline, and a loop meets it at once.
pub const ENCODE_DEADLINE_PER: usize = 64 << 10;

/// Frames a `push` gets one decode deadline for (and one more per
/// [`ENCODE_DEADLINE_PER`] bytes of them): a plugin thread that fell
/// behind hands a stream's queued frames to one call, thousands of them,
/// which is real work that one deadline would cut short.
pub const DECODE_DEADLINE_FRAMES: usize = 1024;

/// One instance of a codec in its own store. Every call runs under a
/// deadline (`encode` its own), the memory limit and budgets, and what it
/// returns is bounded (see [`bounds`]); after a trap the instance is
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

    /// Linear memory this instance holds.
    pub fn memory(&self) -> usize {
        self.store.data().limiter.held()
    }

    fn call<R>(
        &mut self,
        deadline: Duration,
        f: impl FnOnce(&Codec, &mut Store<HostState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginFailure> {
        if self.poisoned {
            return Err(self.failure(FailureKind::Trap, "instance was poisoned by an earlier failure".into()));
        }
        arm(&mut self.store, deadline);
        match f(&self.codec, &mut self.store) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(message)) => {
                Err(self.failure(FailureKind::Returned, bounds::cut_owned(message, bounds::MAX_MESSAGE)))
            }
            Err(e) => Err(self.classify(e, deadline)),
        }
    }

    fn decode_deadline(&self) -> Duration {
        self.plugin
            .allowance
            .deadline(self.plugin.engine.options().call_deadline)
    }

    fn failure(&self, kind: FailureKind, mut message: String) -> PluginFailure {
        self.plugin.ctx.secrets.mask(&mut message);
        PluginFailure {
            plugin: self.plugin.name().to_string(),
            kind,
            message,
        }
    }

    fn classify(&mut self, err: wasmtime::Error, deadline: Duration) -> PluginFailure {
        self.poisoned = true;
        let (kind, message) = classify_error(self.store.data_mut(), &err, deadline);
        self.failure(kind, message)
    }

    /// A failure unless a call given `frames` frames returned at most as
    /// many events as the host takes.
    fn check_count(&self, events: usize, frames: usize) -> Result<(), PluginFailure> {
        let max = bounds::max_events(frames);
        if events > max {
            return Err(self.failure(
                FailureKind::Output,
                format!(
                    "returned {events} events for {frames} frames; a call may return at most {max} ({} per frame, plus {})",
                    bounds::EVENTS_PER_FRAME,
                    bounds::EVENTS_PER_FRAME
                ),
            ));
        }
        Ok(())
    }

    /// `events`, counted and each bounded.
    fn bounded(&self, mut events: Vec<Event>, frames: usize) -> Result<Vec<Event>, PluginFailure> {
        self.check_count(events.len(), frames)?;
        for event in &mut events {
            bounds::event(event);
            self.plugin.ctx.secrets.mask_event(event);
        }
        Ok(events)
    }

    /// Encode a request, under the encode deadline: the configured one per
    /// [`ENCODE_DEADLINE_PER`] bytes of prompt and extra fields (at least
    /// once), since writing out a long-context prompt is real work that a
    /// loop is not.
    pub fn encode(&mut self, spec: RequestSpec) -> Result<EncodedRequest, PluginFailure> {
        let size = spec.prompt.size() + spec.extra.as_ref().map_or(0, String::len);
        let deadline = self.plugin.encode_deadline() * (1 + size / ENCODE_DEADLINE_PER) as u32;
        self.call(deadline, |c, s| c.encode(s, spec))
    }

    /// Start decoding a streamed response.
    pub fn open(&mut self, head: ResponseHead, options: DecodeOptions) -> Result<ResourceAny, PluginFailure> {
        self.call(self.decode_deadline(), |c, s| c.open(s, head, options).map(Ok))
    }

    /// Decode a batch of frames of the stream `decoder` (never empty), under
    /// one decode deadline per [`DECODE_DEADLINE_FRAMES`] frames and per
    /// [`ENCODE_DEADLINE_PER`] bytes (at least one); each event comes with
    /// the index of its frame in the batch, checked to be one of the batch's.
    pub fn push(&mut self, decoder: ResourceAny, frames: Frames) -> Result<Vec<(u32, Event)>, PluginFailure> {
        let n = frames.len();
        let bytes: usize = frames.spans().iter().map(|f| f.data.len).sum();
        let deadline = self.decode_deadline() * (1 + n / DECODE_DEADLINE_FRAMES + bytes / ENCODE_DEADLINE_PER) as u32;
        let mut tagged = self.call(deadline, |c, s| c.push(s, decoder, frames))?;
        self.check_count(tagged.len(), n)?;
        for (frame, event) in &mut tagged {
            if *frame as usize >= n {
                return Err(self.failure(
                    FailureKind::Output,
                    format!("returned an event for frame {frame} of a batch of {n} frames (indexes are 0-based)"),
                ));
            }
            bounds::event(event);
            self.plugin.ctx.secrets.mask_event(event);
        }
        Ok(tagged)
    }

    /// End the stream `decoder` and free it.
    pub fn finish(&mut self, decoder: ResourceAny) -> Result<Vec<Event>, PluginFailure> {
        let events = self.call(self.decode_deadline(), |c, s| c.finish(s, decoder));
        self.close(decoder);
        self.bounded(events?, 0)
    }

    /// Free the stream `decoder` without finishing it (a cancelled request).
    pub fn close(&mut self, decoder: ResourceAny) {
        if !self.poisoned {
            let deadline = self.decode_deadline();
            arm(&mut self.store, deadline);
            if let Err(e) = decoder.resource_drop(&mut self.store) {
                let _ = self.classify(e, deadline);
            }
        }
    }

    /// Decode a complete non-streamed response.
    pub fn decode_unary(
        &mut self,
        head: ResponseHead,
        body: &[u8],
        options: DecodeOptions,
    ) -> Result<Vec<Event>, PluginFailure> {
        let events = self.call(self.decode_deadline(), |c, s| c.decode_unary(s, head, body, options))?;
        self.bounded(events, 1)
    }
}
