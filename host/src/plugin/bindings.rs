//! Host-side bindings of the `barrage:plugin@0.1.0` worlds, generated from `wit/`.
//!
//! The imports every world shares (`log`, `config`, `random`, `tokenizer`)
//! are generated once, with the `codec` world, and reused by the other two so
//! the host implements each import once.

/// The `codec` world, and the shared imports and types.
pub mod codec {
    wasmtime::component::bindgen!({
        world: "codec",
        path: "../wit",
    });
}

/// The `dataset` world.
pub mod dataset {
    wasmtime::component::bindgen!({
        world: "dataset",
        path: "../wit",
        with: {
            "barrage:plugin/types": super::codec::barrage::plugin::types,
            "barrage:plugin/log": super::codec::barrage::plugin::log,
            "barrage:plugin/config": super::codec::barrage::plugin::config,
            "barrage:plugin/random": super::codec::barrage::plugin::random,
            "barrage:plugin/tokenizer": super::codec::barrage::plugin::tokenizer,
        },
    });
}

/// The `reporter` world.
pub mod reporter {
    wasmtime::component::bindgen!({
        world: "reporter",
        path: "../wit",
        with: {
            "barrage:plugin/types": super::codec::barrage::plugin::types,
            "barrage:plugin/log": super::codec::barrage::plugin::log,
            "barrage:plugin/config": super::codec::barrage::plugin::config,
            "barrage:plugin/random": super::codec::barrage::plugin::random,
            "barrage:plugin/tokenizer": super::codec::barrage::plugin::tokenizer,
        },
    });
}

pub use codec::barrage::plugin::types::{ConfigError, Message, PluginInfo, Prompt};
pub use codec::exports::barrage::plugin::request_codec as wire;

impl std::fmt::Display for wire::Event {
    /// One line per event, as `barrage plugin decode` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn opt(v: Option<u32>) -> String {
            v.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
        }
        fn delta(f: &mut std::fmt::Formatter<'_>, kind: &str, d: &wire::ContentDelta) -> std::fmt::Result {
            write!(f, "{kind} bytes={} tokens={}", d.bytes, opt(d.tokens))?;
            match &d.text {
                Some(t) => write!(f, " text={t:?}"),
                None => Ok(()),
            }
        }
        match self {
            wire::Event::Content(d) => delta(f, "content", d),
            wire::Event::Reasoning(d) => delta(f, "reasoning", d),
            wire::Event::RoleOnly => f.write_str("role-only"),
            wire::Event::EmptyDelta => f.write_str("empty-delta"),
            wire::Event::Usage(u) => write!(
                f,
                "usage prompt={} completion={} cached={} reasoning={}",
                opt(u.prompt_tokens),
                opt(u.completion_tokens),
                opt(u.cached_tokens),
                opt(u.reasoning_tokens)
            ),
            wire::Event::Finish(reason) => write!(f, "finish {reason}"),
            wire::Event::ServerError(e) => {
                write!(
                    f,
                    "server-error code={} message={:?}",
                    e.code.as_deref().unwrap_or("-"),
                    e.message
                )
            }
            wire::Event::KeepAlive => f.write_str("keep-alive"),
            wire::Event::Done => f.write_str("done"),
            wire::Event::Malformed(why) => write!(f, "malformed {why:?}"),
        }
    }
}
