//! What loading any plugin shares: compile (or take from the cache), check
//! the contract and world, link the version's imports, pre-instantiate, ask
//! the plugin who it is and have it check its configuration. Also the store
//! every call runs in and how a failed call is classified.

use wasmtime::component::Component;
use wasmtime::{Store, Trap};

use crate::bindings::{Contract, Meta, Pre};
use crate::contract::{ContractInfo, World, supported_list};
use crate::engine::{PluginEngine, sha256_hex};
use crate::registry::PluginSource;
use crate::state::{HostState, PluginContext};
use crate::{FailureKind, PluginError, PluginInfo};

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

    /// The binding module for this component's contract version, or why it
    /// has none, with a message naming the plugin and the versions.
    pub fn contract(&self, name: &str) -> Result<Contract, PluginError> {
        let incompatible = |found: String| match self.contract.versions.is_empty() {
            true => PluginError::WrongWorld {
                name: name.to_string(),
                problem: format!(
                    "is not a Barrage plugin: it implements none of the barrage:plugin worlds (codec, dataset, reporter); \
                     this host supports {}",
                    supported_list()
                ),
            },
            false => PluginError::Incompatible {
                name: name.to_string(),
                found,
                supported: supported_list(),
            },
        };
        let version = self
            .contract
            .supported_version()
            .map_err(|e| incompatible(e.to_string()))?;
        Contract::for_version(version).ok_or_else(|| incompatible(format!("barrage:plugin@{version}")))
    }

    /// Refuse a component that does not implement `world` at a supported
    /// version.
    pub fn expect_world(&self, name: &str, world: World) -> Result<Contract, PluginError> {
        let contract = self.contract(name)?;
        match self.contract.world {
            Some(w) if w == world => Ok(contract),
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

/// A plugin of one world, loaded and checked, ready to make instances.
pub(crate) struct Loaded<P> {
    pub info: PluginInfo,
    pub sha256: String,
    pub contract_version: String,
    pub pre: P,
    /// The context its instances get, named as the plugin names itself.
    pub ctx: PluginContext,
}

/// Load a plugin of `P`'s world: compile, check the contract, instantiate
/// once to read its info and have it check its configuration.
pub(crate) fn load<P: Pre>(
    engine: &PluginEngine,
    source: &PluginSource,
    mut ctx: PluginContext,
) -> Result<Loaded<P>, PluginError> {
    let label = source.label();
    let loaded = LoadedComponent::load(engine, source)?;
    let contract = loaded.expect_world(&label, P::WORLD)?;
    let start = |e: wasmtime::Error| PluginError::Start {
        name: label.clone(),
        message: format!("{e:#}"),
    };
    let linker = contract
        .linker(engine.engine(), &loaded.component, Some(P::WORLD))
        .map_err(start)?;
    let pre = P::new(contract, &linker, &loaded.component).map_err(start)?;
    ctx.name = label.clone().into();
    let mut store = new_store(engine, ctx.clone());
    let instance = pre.instantiate(&mut store).map_err(start)?;
    let info = instance.info(&mut store).map_err(start)?;
    ctx.name = info.name.clone().into();
    store.data_mut().ctx.name = ctx.name.clone();
    store.set_epoch_deadline(engine.deadline_ticks());
    if let Err(e) = instance.check_config(&mut store).map_err(start)? {
        return Err(PluginError::Config {
            name: info.name.clone(),
            field: e.field,
            message: e.message,
        });
    }
    Ok(Loaded {
        info,
        sha256: loaded.sha256,
        contract_version: loaded.contract.versions.first().cloned().unwrap_or_default(),
        pre,
        ctx,
    })
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
