//! What loading any plugin shares: compile (or take from the cache), check
//! the contract and world, link the version's imports, pre-instantiate, ask
//! the plugin who it is and have it check its configuration. Also the store
//! every call runs in and how a failed call is classified.

use std::sync::Arc;

use wasmtime::component::Component;
use wasmtime::{Store, Trap, UpdateDeadline};

use crate::bindings::{Contract, Meta, Pre};
use crate::contract::{ContractInfo, World, supported_list};
use crate::engine::{PluginEngine, sha256_hex};
use crate::lock::Approved;
use crate::registry::PluginSource;
use crate::state::{CallDeadline, HostState, LogBudget, MemoryBudget, MemoryHit, PluginContext};
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
    /// The lockfile entry approving it, when the engine is locked.
    pub approved: Option<Approved>,
}

impl LoadedComponent {
    /// Read and compile `source`; a locked engine first checks it against
    /// its lockfile, so code it does not approve is never compiled.
    pub fn load(engine: &PluginEngine, source: &PluginSource) -> Result<LoadedComponent, PluginError> {
        let bytes = source.bytes()?;
        // Hashed once: the lockfile, the compile cache and the result all want it.
        let sha256 = sha256_hex(&bytes);
        let approved = match engine.lock() {
            Some(lock) => Some(
                lock.approve(&source.label(), source, (&bytes, &sha256), crate::lock::now())?
                    .clone(),
            ),
            None => None,
        };
        let component = engine.compile(&source.label(), &bytes, &sha256)?;
        let contract = ContractInfo::read(engine.engine(), &component);
        if let (Some(entry), Some(world), Some(lock)) = (&approved, contract.world, engine.lock()) {
            lock.check_kind(entry, world)?;
        }
        Ok(LoadedComponent {
            component,
            contract,
            sha256,
            size: bytes.len(),
            approved,
        })
    }

    /// What the plugin's instances may use: the engine's limits, under the
    /// lockfile's caps if it has any.
    pub(crate) fn allowance(&self, engine: &PluginEngine, name: &str) -> Allowance {
        let limits = self.approved.as_ref().map(Approved::limits).unwrap_or_default();
        Allowance {
            budget: engine.plugin_budget(name),
            memory_limit: limits.memory_under(engine.options().memory_limit),
            deadline_cap: limits.deadline,
        }
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
    /// The context its instances get, named as users pick the plugin.
    pub ctx: PluginContext,
    /// What its instances may use.
    pub allowance: Allowance,
}

/// What one plugin's instances may use: memory per instance, the budget
/// all of them count against together, and a cap on their calls' deadline
/// (a lockfile's `deadline_ms`, for a codec's calls).
#[derive(Clone)]
pub(crate) struct Allowance {
    pub budget: Arc<MemoryBudget>,
    pub memory_limit: usize,
    pub deadline_cap: Option<std::time::Duration>,
}

impl Allowance {
    /// `deadline`, or the cap if it is shorter.
    pub fn deadline(&self, deadline: std::time::Duration) -> std::time::Duration {
        self.deadline_cap.map_or(deadline, |cap| cap.min(deadline))
    }
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
    ctx.log = LogBudget::wrap(ctx.name.clone(), ctx.log);
    let allowance = loaded.allowance(engine, &label);
    let mut store = new_store(engine, ctx.clone(), &allowance);
    let instance = pre.instantiate(&mut store).map_err(start)?;
    // The plugin is known by one name: the one users pick it by (the file's
    // or the built-in's), in errors and logs too, whatever it calls itself
    // (`plugin list` and `inspect` show that).
    let info = instance.info(&mut store).map_err(start)?;
    check_secrets(&label, &info, &ctx.secrets)?;
    arm(&mut store, engine.options().call_deadline);
    if let Err(e) = instance.check_config(&mut store).map_err(start)? {
        return Err(PluginError::Config {
            name: label,
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
        allowance,
    })
}

/// Refuse a plugin whose required secrets are not all granted, or which is
/// granted one it does not declare (a misspelt name would otherwise go
/// unnoticed until a request fails).
fn check_secrets(label: &str, info: &PluginInfo, granted: &crate::state::Secrets) -> Result<(), PluginError> {
    let refuse = |problem: String| {
        Err(PluginError::Secret {
            name: label.to_string(),
            problem,
        })
    };
    for name in granted.names() {
        if !info.secrets.iter().any(|s| s.name == name) {
            let declared: Vec<&str> = info.secrets.iter().map(|s| s.name.as_str()).collect();
            return refuse(match declared.is_empty() {
                true => format!("reads no secrets, but secret `{name}` is granted to it; remove the grant"),
                false => format!(
                    "does not read a secret named `{name}`; it reads: {}",
                    declared.join(", ")
                ),
            });
        }
    }
    for need in info.secrets.iter().filter(|s| s.required) {
        if !granted.names().any(|n| n == need.name) {
            return refuse(format!(
                "needs secret `{}` ({}), which is not granted: grant it with `--codec-secret {}=env:VARIABLE` (or \
                 `=file:PATH`), or under `codec_secrets` in the run configuration",
                need.name, need.description, need.name
            ));
        }
    }
    Ok(())
}

/// A new store for `ctx`, with the plugin's memory limit, its budget and
/// the process's, and a deadline armed per call ([`arm`]).
pub(crate) fn new_store(engine: &PluginEngine, ctx: PluginContext, allowance: &Allowance) -> Store<HostState> {
    let budgets = [allowance.budget.clone(), engine.total_budget().clone()];
    let mut store = Store::new(engine.engine(), HostState::new(ctx, allowance.memory_limit, budgets));
    store.limiter(|s| &mut s.limiter);
    // At every epoch tick a running call checks its deadline; past it, the
    // call traps as interrupted.
    store.epoch_deadline_callback(|mut store| match store.data_mut().deadline.passed() {
        true => Err(Trap::Interrupt.into()),
        false => Ok(UpdateDeadline::Continue(1)),
    });
    // Instantiation runs the plugin's start code: give it the call deadline.
    arm(&mut store, engine.options().call_deadline);
    store
}

/// Give the call about to run in `store` `deadline` of CPU time.
pub(crate) fn arm(store: &mut Store<HostState>, deadline: std::time::Duration) {
    store.data_mut().deadline = CallDeadline::start(deadline);
    store.set_epoch_deadline(1);
}

/// Why a plugin call failed: the memory cap or a budget, the deadline
/// (`deadline` is named in the message), or a trap, with the panic message
/// the SDK logged just before it, or the import that trapped.
pub(crate) fn classify_error(
    state: &mut HostState,
    err: &wasmtime::Error,
    deadline: std::time::Duration,
) -> (FailureKind, String) {
    match state.limiter.hit.take() {
        Some(MemoryHit::Instance(limit)) => {
            return (
                FailureKind::MemoryLimit,
                format!("memory limit of {} MiB reached", limit >> 20),
            );
        }
        Some(MemoryHit::Budget(covers, limit)) => {
            return (
                FailureKind::MemoryLimit,
                format!(
                    "memory budget of {} MiB for {covers} reached: its other live instances hold the rest \
                     (raise --plugin-memory-budget-mib or --plugins-memory-budget-mib, or lower concurrency)",
                    limit >> 20
                ),
            );
        }
        None => {}
    }
    if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return (
            FailureKind::Timeout,
            format!(
                "call ran past its {} ms deadline (CPU time) and was stopped",
                deadline.as_millis()
            ),
        );
    }
    let detail = match err.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        // Not a wasm trap: an import that refused (the trapping stubs name
        // the import they stand for). The outermost context is wasmtime's
        // backtrace; the cause is the root.
        None => forbidden_import(&err.root_cause().to_string()),
    };
    let message = match state.last_panic.take() {
        Some(panic) => format!("{panic} ({detail})"),
        None => detail,
    };
    (FailureKind::Trap, message)
}

/// wasmtime's words for a call to an import the linker stubbed out, said as
/// what it means for a plugin; any other message as it is.
fn forbidden_import(message: &str) -> String {
    match message
        .strip_prefix("unknown import: `")
        .and_then(|rest| rest.strip_suffix("` has not been defined"))
    {
        Some(import) => format!(
            "called `{import}`, which plugins are not given: a plugin has no files, network, clocks or \
             environment; everything it needs comes through the barrage:plugin contract"
        ),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_forbidden_import_is_named_as_such() {
        assert_eq!(
            super::forbidden_import("unknown import: `wasi:http/outgoing-handler@0.2.6#handle` has not been defined"),
            "called `wasi:http/outgoing-handler@0.2.6#handle`, which plugins are not given: a plugin has no files, \
             network, clocks or environment; everything it needs comes through the barrage:plugin contract"
        );
        assert_eq!(super::forbidden_import("something else"), "something else");
    }
}
