//! What `barrage plugin list` and `inspect` show: a plugin's identity, read
//! through the `meta` interface every world exports.

use crate::bindings::Contract;
use crate::component::{LoadedComponent, new_store};
use crate::contract::ContractInfo;
use crate::engine::PluginEngine;
use crate::registry::PluginSource;
use crate::state::PluginContext;
use crate::{PluginError, PluginInfo};

/// A plugin as listed.
#[derive(Debug, Clone)]
pub struct Description {
    /// Where it came from.
    pub source: PluginSource,
    /// Its contract (world, version, imports, exports).
    pub contract: ContractInfo,
    /// sha256 of the component.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// What the plugin says it is, when it could be asked.
    pub info: Result<PluginInfo, String>,
}

/// Read `source` and, if its contract is supported, ask it who it is.
pub fn describe(engine: &PluginEngine, source: &PluginSource, ctx: PluginContext) -> Result<Description, PluginError> {
    let loaded = LoadedComponent::load(engine, source)?;
    let info = match loaded.contract(&source.label()) {
        Ok(contract) => ask_info(engine, contract, &loaded, &source.label(), ctx),
        Err(_) => Err(format!(
            "targets {}, not supported by this host",
            loaded
                .contract
                .supported_version()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        )),
    };
    Ok(Description {
        source: source.clone(),
        contract: loaded.contract,
        sha256: loaded.sha256,
        size: loaded.size,
        info,
    })
}

fn ask_info(
    engine: &PluginEngine,
    contract: Contract,
    loaded: &LoadedComponent,
    name: &str,
    ctx: PluginContext,
) -> Result<PluginInfo, String> {
    let ask = || {
        let linker = contract.linker(engine.engine(), &loaded.component, None)?;
        let mut store = new_store(engine, ctx, &loaded.allowance(engine, name));
        contract.info(&linker, &mut store, &loaded.component)
    };
    ask().map_err(|e| format!("{e:#}"))
}
