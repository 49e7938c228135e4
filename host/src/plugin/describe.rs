//! What `barrage plugin list` and `inspect` show: a plugin's identity, read
//! through the `meta` interface every world exports.

use wasmtime::component::{ComponentExportIndex, TypedFunc};

use super::PluginError;
use super::bindings::PluginInfo;
use super::codec::{LoadedComponent, base_linker, new_store};
use super::contract::{ContractInfo, PACKAGE};
use super::engine::PluginEngine;
use super::registry::PluginSource;
use super::state::PluginContext;

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
    let info = match loaded.contract.supported_version() {
        Ok(_) => ask_info(engine, &loaded, ctx).map_err(|e| format!("{e:#}")),
        Err(found) => Err(format!("targets {found}, not supported by this host")),
    };
    Ok(Description {
        source: source.clone(),
        contract: loaded.contract,
        sha256: loaded.sha256,
        size: loaded.size,
        info,
    })
}

fn ask_info(engine: &PluginEngine, loaded: &LoadedComponent, ctx: PluginContext) -> wasmtime::Result<PluginInfo> {
    let version = loaded.contract.versions.first().cloned().unwrap_or_default();
    let meta = format!("{PACKAGE}/meta@{version}");
    let export = |parent: Option<&ComponentExportIndex>, name: &str| {
        loaded
            .component
            .get_export_index(parent, name)
            .ok_or_else(|| wasmtime::format_err!("the plugin does not export `{name}`"))
    };
    let meta_idx = export(None, &meta)?;
    let info_idx = export(Some(&meta_idx), "info")?;
    let linker = base_linker(engine, &loaded.component)?;
    let mut store = new_store(engine, ctx);
    let instance = linker.instantiate(&mut store, &loaded.component)?;
    let info: TypedFunc<(), (PluginInfo,)> = instance.get_typed_func(&mut store, info_idx)?;
    let (info,) = info.call(&mut store, ())?;
    Ok(info)
}
