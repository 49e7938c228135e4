//! The WASI a plugin gets: all of it there, none of it real. Guests made
//! by other toolchains (componentize-py's CPython, componentize-js's
//! StarlingMonkey) call WASI as they start and as they run, and Rust's
//! standard library links it in; a missing import would trap the call. So
//! every WASI 0.2 interface is provided, each as a stub that gives no
//! access and no ambient information:
//!
//! - no environment variables, arguments or working directory; `exit` ends
//!   the call as a trap;
//! - stdin closed, stdout and stderr discarded (plugins log through the
//!   contract's `log`);
//! - no preopened directories, so every path fails to open;
//! - TCP, UDP and name lookup refused;
//! - the wall clock stopped at the Unix epoch and the monotonic clock at
//!   zero (a plugin's sense of time would be a second clock beside the
//!   host's, whose timestamps are the measurements);
//! - random bytes, and the insecure seed, from the run's seed.

use rand::SeedableRng as _;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, LinkerInstance, ResourceTable, ResourceType};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::state::HostState;

/// The WASI context of a store of a run seeded with `seed`.
pub(crate) fn context(seed: u64) -> WasiCtx {
    // Distinct from the contract's `random` stream, which starts from the seed itself.
    let wasi_seed = seed ^ 0x5741_5349_5f73_6565;
    WasiCtx::builder()
        .secure_random(rand::rngs::StdRng::seed_from_u64(wasi_seed))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(wasi_seed.rotate_left(17)))
        .insecure_random_seed(u128::from(wasi_seed))
        .wall_clock(Stopped)
        .monotonic_clock(Stopped)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Link the stubs of every WASI 0.2 interface, then make every other import
/// `component` has that is not `linked` already (`wasi:http`, another
/// host's API, another world's interface) a function that traps, naming the
/// import (see `component::forbidden_import`).
pub(crate) fn link(
    linker: &mut Linker<HostState>,
    component: &Component,
    engine: &Engine,
    linked: impl Fn(&str) -> bool,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    // Not `Linker::define_unknown_imports_as_traps`: it defines an import
    // under the exact version imported, and so would shadow the WASI
    // defined above at another 0.2 version (which semver lookups resolve
    // to) with traps.
    for (name, item) in component.component_type().imports(engine) {
        if !linked(name) && stub(name).is_none() {
            trap_all(&mut linker.root(), name, &item.ty, None, engine)?;
        }
    }
    Ok(())
}

/// What the stub for WASI import `name` (`wasi:cli/environment@0.2.6`)
/// gives, or `None` when `name` is not one of the WASI 0.2 interfaces
/// stubbed (then it is linked as a trap).
pub fn stub(name: &str) -> Option<&'static str> {
    let (interface, version) = name.split_once('@')?;
    if !version.starts_with("0.2.") {
        return None;
    }
    Some(match interface {
        "wasi:cli/environment" => "empty: no variables, no arguments, no working directory",
        "wasi:cli/exit" => "exit ends the call as a trap",
        "wasi:cli/stdin" | "wasi:cli/terminal-stdin" => "closed",
        "wasi:cli/stdout" | "wasi:cli/stderr" => "discarded; log through barrage:plugin/log",
        "wasi:cli/terminal-input"
        | "wasi:cli/terminal-output"
        | "wasi:cli/terminal-stdout"
        | "wasi:cli/terminal-stderr" => "no terminal",
        "wasi:clocks/wall-clock" => "stopped at the Unix epoch",
        "wasi:clocks/monotonic-clock" => "stopped at zero",
        "wasi:filesystem/preopens" => "no directories",
        "wasi:filesystem/types" => "nothing to open",
        "wasi:io/error" | "wasi:io/poll" | "wasi:io/streams" => "streams of the stubs above",
        "wasi:random/random" | "wasi:random/insecure" | "wasi:random/insecure-seed" => "from the run's seed",
        "wasi:sockets/network"
        | "wasi:sockets/instance-network"
        | "wasi:sockets/tcp"
        | "wasi:sockets/tcp-create-socket"
        | "wasi:sockets/udp"
        | "wasi:sockets/udp-create-socket"
        | "wasi:sockets/ip-name-lookup" => "refused",
        _ => return None,
    })
}

/// Define `item` (and what it holds) as a trap naming it.
fn trap_all(
    linker: &mut LinkerInstance<'_, HostState>,
    name: &str,
    item: &ComponentItem,
    parent: Option<&str>,
    engine: &Engine,
) -> wasmtime::Result<()> {
    match item {
        ComponentItem::ComponentFunc(_) => {
            let full = match parent {
                Some(p) => format!("{p}#{name}"),
                None => name.to_string(),
            };
            linker.func_new(name, move |_, _, _, _| {
                wasmtime::bail!("unknown import: `{full}` has not been defined")
            })
        }
        ComponentItem::ComponentInstance(instance) => {
            let mut inner = linker.instance(name)?;
            for (export, item) in instance.exports(engine) {
                trap_all(&mut inner, export, &item.ty, Some(name), engine)?;
            }
            Ok(())
        }
        ComponentItem::Resource(_) => linker.resource(name, ResourceType::host::<()>(), |_, _| Ok(())),
        _ => Ok(()),
    }
}

/// A clock that never moves.
struct Stopped;

impl wasmtime_wasi::HostWallClock for Stopped {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for Stopped {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

/// The parts of a store's data the WASI stubs work on.
pub(crate) struct Wasi {
    pub ctx: WasiCtx,
    pub table: ResourceTable,
}

impl Wasi {
    pub(crate) fn new(seed: u64) -> Wasi {
        Wasi {
            ctx: context(seed),
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.wasi.table,
        }
    }
}
