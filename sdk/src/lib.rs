//! Write Barrage plugins in plain Rust.
//!
//! Barrage loads model-server codecs, dataset preprocessors and reporters as
//! sandboxed WebAssembly components that implement the `barrage:plugin@0.2.0`
//! WIT package (carried in this crate's `wit/` folder). This crate hides the
//! generated bindings. Enable the feature of the world the plugin implements,
//! exactly one per plugin crate:
//!
//! - `codec`: implement [`codec::Codec`] and [`codec::Decoder`], call [`export_codec!`];
//! - `dataset`: implement [`dataset::Dataset`], call [`export_dataset!`];
//! - `reporter`: implement [`reporter::Reporter`], call [`export_reporter!`];
//!
//! and build the crate as a `cdylib` for `wasm32-wasip2`. Each module's
//! documentation has a complete example.
//!
//! Every world gets the same host functions: [`log`], [`config`],
//! [`random`], [`tokenizer`] and [`secrets`]. The same code compiles natively, where those
//! are answered by [`testing`], so plugin logic is unit-tested with plain
//! `cargo test`. See `docs/plugins.md`.
//!
//! Plugins have no filesystem, network, environment or clock: the WASI
//! that `std` links is stubbed, so `std::env` finds nothing, `std::fs`
//! opens nothing, `std::time` stands still at zero, and `HashMap`'s
//! hasher is seeded from the run's seed. Use the seeded [`random`] source
//! and the plugin [`config`].

#[cfg(feature = "codec")]
pub mod codec;
#[cfg(feature = "dataset")]
pub mod dataset;
pub mod host;
#[cfg(feature = "reporter")]
pub mod reporter;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use host::{config, log, random, secrets, tokenizer};
pub use wit::host::barrage::plugin::types::{
    ConfigError, ContentPart, Datetime, Media, MediaSource, Message, PluginInfo, Prompt, RerankQuery, SecretNeed, Tool,
    ToolCall,
};

impl PluginInfo {
    /// A plugin that reads no secrets.
    pub fn new(name: impl Into<String>, version: impl Into<String>, description: impl Into<String>) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            secrets: Vec::new(),
        }
    }
}

impl SecretNeed {
    /// A secret the plugin works without.
    pub fn optional(name: impl Into<String>, description: impl Into<String>) -> SecretNeed {
        SecretNeed {
            name: name.into(),
            required: false,
            description: description.into(),
        }
    }
}

/// `read()`, once per plugin instance in a wasm build (what it reads from
/// the host, configuration and secrets, cannot change while an instance
/// lives), every time natively, where each test sets its own. `read` must
/// be the same function at every call site of one expansion.
#[macro_export]
macro_rules! once_per_instance {
    ($ty:ty, $read:expr) => {{
        #[cfg(target_arch = "wasm32")]
        {
            static CELL: ::std::sync::OnceLock<$ty> = ::std::sync::OnceLock::new();
            CELL.get_or_init($read).clone()
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            ($read)()
        }
    }};
}

impl Message {
    /// A message of one text part.
    pub fn text(role: impl Into<String>, text: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: vec![ContentPart::Text(text.into())],
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// Its text parts, joined by newlines.
    pub fn text_content(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n")
    }
}

impl Tool {
    /// Its `parameters`, the JSON Schema a codec sends as the API wants it.
    pub fn schema(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.parameters)
            .map_err(|e| format!("the parameters of tool `{}` are not JSON: {e}", self.name))
    }
}

impl ToolCall {
    /// Its `arguments`, for APIs that take them as a JSON object rather than a string.
    pub fn arguments_json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.arguments)
            .map_err(|e| format!("the arguments of tool call `{}` are not JSON: {e}", self.id))
    }
}

/// The contract version this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// Everything a codec author usually needs, in one import.
#[cfg(feature = "codec")]
pub mod prelude {
    pub use crate::codec::{
        Codec, ConfigError, ContentDelta, ContentPart, DecodeOptions, Decoder, Embeddings, EncodedRequest, Event,
        Frame, FrameBuf, FrameEvent, Framing, Generation, GrpcRequest, HttpRequest, MediaOutput, Message, OutputKind,
        PluginInfo, Prompt, Ranking, RequestSpec, ResponseHead, ServerError, Unstreamed, Usage, WireRequest,
        check_path, each_frame, ensure_http_error, generation_only, grpc_compressed, grpc_messages, http_error,
        is_grpc_compressed, is_success, merge_extra, merge_extra_nested, snippet,
    };
    pub use crate::host::{config, log, random, secrets, tokenizer};
}

/// Generated bindings. Not part of the SDK's stable surface: use the
/// re-exports in the world modules instead.
///
/// The imports every world shares are generated once (`host`) and reused
/// by each world, so the host surface is one set of types whatever the
/// world. A wasm build generates the world's export macros for the plugin
/// crate to call; they are crate-wide names, so a wasm build takes exactly
/// one world feature. A native build (unit tests, any number of features)
/// has no exports and needs only the types.
#[doc(hidden)]
pub mod wit {
    /// The shared imports and types (`host-api` world).
    pub mod host {
        wit_bindgen::generate!({
            world: "host-api",
            path: "wit",
        });
    }

    macro_rules! world {
        ($module:ident, $feature:tt, $world:tt, $export:tt, $bindings:tt) => {
            #[cfg(all(feature = $feature, target_arch = "wasm32"))]
            pub mod $module {
                wit_bindgen::generate!({
                    world: $world,
                    path: "wit",
                    with: {
                        "barrage:plugin/types@0.2.0": crate::wit::host::barrage::plugin::types,
                        "barrage:plugin/log@0.2.0": crate::wit::host::barrage::plugin::log,
                        "barrage:plugin/config@0.2.0": crate::wit::host::barrage::plugin::config,
                        "barrage:plugin/random@0.2.0": crate::wit::host::barrage::plugin::random,
                        "barrage:plugin/tokenizer@0.2.0": crate::wit::host::barrage::plugin::tokenizer,
                        "barrage:plugin/secrets@0.2.0": crate::wit::host::barrage::plugin::secrets,
                    },
                    pub_export_macro: true,
                    export_macro_name: $export,
                    default_bindings_module: $bindings,
                });
            }

            #[cfg(all(feature = $feature, not(target_arch = "wasm32")))]
            pub mod $module {
                wit_bindgen::generate!({
                    world: $world,
                    path: "wit",
                    with: {
                        "barrage:plugin/types@0.2.0": crate::wit::host::barrage::plugin::types,
                        "barrage:plugin/log@0.2.0": crate::wit::host::barrage::plugin::log,
                        "barrage:plugin/config@0.2.0": crate::wit::host::barrage::plugin::config,
                        "barrage:plugin/random@0.2.0": crate::wit::host::barrage::plugin::random,
                        "barrage:plugin/tokenizer@0.2.0": crate::wit::host::barrage::plugin::tokenizer,
                        "barrage:plugin/secrets@0.2.0": crate::wit::host::barrage::plugin::secrets,
                    },
                });
            }
        };
    }

    world!(
        codec,
        "codec",
        "codec",
        "__export_codec_world",
        "barrage_sdk::wit::codec"
    );
    world!(
        dataset,
        "dataset",
        "dataset",
        "__export_dataset_world",
        "barrage_sdk::wit::dataset"
    );
    world!(
        reporter,
        "reporter",
        "reporter",
        "__export_reporter_world",
        "barrage_sdk::wit::reporter"
    );
}

#[cfg(all(
    target_arch = "wasm32",
    any(
        all(feature = "codec", feature = "dataset"),
        all(feature = "codec", feature = "reporter"),
        all(feature = "dataset", feature = "reporter")
    )
))]
compile_error!(
    "a plugin implements one world: enable exactly one of barrage-sdk's features `codec`, `dataset`, `reporter` \
     (in a workspace, build plugins of different worlds in separate cargo invocations: features unify within one)"
);

/// Route panics through the host's log before the instance traps, so the
/// host's error names the panic instead of an anonymous `unreachable`.
/// Called at the top of every exported function; cheap after the first call.
#[doc(hidden)]
pub fn __init() {
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                log::error(&format!("plugin panicked: {info}"));
            }));
        });
    }
}

/// `config` parsed for a `check_config` export: invalid JSON is a config error.
#[doc(hidden)]
pub fn __config_for_check() -> Result<serde_json::Value, ConfigError> {
    serde_json::from_str(&config::raw()).map_err(|e| ConfigError {
        field: None,
        message: format!("configuration is not valid JSON: {e}"),
    })
}
