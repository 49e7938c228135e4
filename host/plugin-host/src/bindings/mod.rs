//! The contract versions this host speaks, one module each, behind one enum
//! per world.
//!
//! Each `vX_Y` module holds the bindings generated from `wit/frozen/X.Y.Z`
//! and converts them to and from the host's types; the rest of the host
//! only sees the enums here. Supporting a new contract version is a new
//! module, a new arm in each `match` below and a new entry in
//! [`SUPPORTED_VERSIONS`]; plugins built for the older versions keep loading.

mod v0_1;

use barrage_core::framing::TimedFrame;
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
pub const SUPPORTED_VERSIONS: &[Version] = &[Version {
    major: 0,
    minor: 1,
    patch: 0,
}];

/// Which binding module serves a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `barrage:plugin@0.1.x`.
    V0_1,
}

impl Contract {
    /// The module for a plugin built against `version`, if this host has one.
    pub fn for_version(version: Version) -> Option<Contract> {
        let host = SUPPORTED_VERSIONS.iter().find(|h| version.runs_on(**h))?;
        match (host.major, host.minor) {
            (0, 1) => Some(Contract::V0_1),
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
                }
            }

            fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<$instance> {
                match self {
                    $pre::V0_1(pre) => pre.instantiate(store).map($instance::V0_1),
                }
            }
        }

        impl Meta for $instance {
            fn info(&self, store: &mut Store<HostState>) -> wasmtime::Result<PluginInfo> {
                match self {
                    $instance::V0_1(i) => i.info(store),
                }
            }

            fn check_config(&self, store: &mut Store<HostState>) -> wasmtime::Result<Result<(), ConfigError>> {
                match self {
                    $instance::V0_1(i) => i.check_config(store),
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
}

/// A codec instance.
pub(crate) enum Codec {
    V0_1(v0_1::Codec),
}

impl Codec {
    pub(crate) fn encode(
        &self,
        store: &mut Store<HostState>,
        spec: RequestSpec,
    ) -> wasmtime::Result<Result<EncodedRequest, String>> {
        match self {
            Codec::V0_1(c) => c.encode(store, spec),
        }
    }

    pub(crate) fn open(
        &self,
        store: &mut Store<HostState>,
        head: &ResponseHead,
        options: DecodeOptions,
    ) -> wasmtime::Result<ResourceAny> {
        match self {
            Codec::V0_1(c) => c.open(store, head, options),
        }
    }

    pub(crate) fn push(
        &self,
        store: &mut Store<HostState>,
        decoder: ResourceAny,
        frames: Vec<TimedFrame>,
    ) -> wasmtime::Result<Result<Vec<(u32, Event)>, String>> {
        match self {
            Codec::V0_1(c) => c.push(store, decoder, frames),
        }
    }

    pub(crate) fn finish(
        &self,
        store: &mut Store<HostState>,
        decoder: ResourceAny,
    ) -> wasmtime::Result<Result<Vec<Event>, String>> {
        match self {
            Codec::V0_1(c) => c.finish(store, decoder),
        }
    }

    pub(crate) fn decode_unary(
        &self,
        store: &mut Store<HostState>,
        head: &ResponseHead,
        body: &[u8],
        options: DecodeOptions,
    ) -> wasmtime::Result<Result<Vec<Event>, String>> {
        match self {
            Codec::V0_1(c) => c.decode_unary(store, head, body, options),
        }
    }
}

/// A pre-instantiated dataset plugin.
pub(crate) enum DatasetPre {
    V0_1(v0_1::DatasetPre),
}

/// A dataset plugin instance.
pub(crate) enum Dataset {
    V0_1(v0_1::Dataset),
}

impl Dataset {
    pub(crate) fn open(&self, store: &mut Store<HostState>) -> wasmtime::Result<Result<ResourceAny, InputError>> {
        match self {
            Dataset::V0_1(d) => d.open(store),
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
        }
    }
}

/// A pre-instantiated reporter.
pub(crate) enum ReporterPre {
    V0_1(v0_1::ReporterPre),
}

/// A reporter instance.
pub(crate) enum Reporter {
    V0_1(v0_1::Reporter),
}

impl Reporter {
    pub(crate) fn wants_records(&self, store: &mut Store<HostState>) -> wasmtime::Result<bool> {
        match self {
            Reporter::V0_1(r) => r.wants_records(store),
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
        }
    }
}
