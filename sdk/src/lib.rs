//! Write Barrage plugins in plain Rust.
//!
//! Barrage loads model-server codecs, dataset preprocessors and reporters as
//! sandboxed WebAssembly components that implement the `barrage:plugin@0.1.0`
//! WIT package (the `wit/` folder of the Barrage repository). This crate hides
//! the generated bindings: a codec author implements [`Codec`] and
//! [`Decoder`], calls [`export_codec!`] once, and builds the crate as a
//! `cdylib` for `wasm32-wasip2`.
//!
//! ```
//! use barrage_sdk::prelude::*;
//!
//! /// A codec for a server that streams plain text lines.
//! pub struct Lines;
//!
//! impl Codec for Lines {
//!     type Decoder = LineDecoder;
//!
//!     fn info() -> PluginInfo {
//!         PluginInfo { name: "lines".into(), version: "0.1.0".into(), description: "text lines".into() }
//!     }
//!
//!     fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
//!         let Prompt::Text(prompt) = spec.prompt else { return Err("text prompts only".into()) };
//!         Ok(EncodedRequest {
//!             request: WireRequest::Http(HttpRequest {
//!                 method: "POST".into(),
//!                 path: "/generate".into(),
//!                 headers: vec![],
//!                 body: prompt.into_bytes(),
//!             }),
//!             streaming: spec.generation.stream,
//!             framing: Framing::Ndjson,
//!         })
//!     }
//!
//!     fn decoder(_head: ResponseHead, _options: DecodeOptions) -> LineDecoder {
//!         LineDecoder
//!     }
//!
//!     fn decode_unary(_head: ResponseHead, body: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Event>, String> {
//!         Ok(vec![Event::Content(ContentDelta { bytes: body.len() as u32, tokens: None, text: None })])
//!     }
//! }
//!
//! pub struct LineDecoder;
//!
//! impl Decoder for LineDecoder {
//!     fn push(&mut self, frames: Vec<Frame>) -> Result<Vec<FrameEvent>, String> {
//!         Ok(frames
//!             .iter()
//!             .enumerate()
//!             .map(|(i, f)| FrameEvent {
//!                 frame: i as u32,
//!                 event: Event::Content(ContentDelta { bytes: f.data.len() as u32, tokens: Some(1), text: None }),
//!             })
//!             .collect())
//!     }
//! }
//!
//! barrage_sdk::export_codec!(Lines);
//!
//! // Natively, the same code runs under the test harness:
//! let events = barrage_sdk::testing::decode_stream::<Lines>(
//!     vec![barrage_sdk::testing::frame("hello")],
//!     DecodeOptions { want_text: false },
//! )
//! .unwrap();
//! assert!(matches!(events[0], Event::Content(ContentDelta { bytes: 5, .. })));
//! ```
//!
//! The same code compiles natively, where the host functions ([`log`],
//! [`config`], [`random`], [`tokenizer`]) are served by [`testing`], so plugin
//! logic is unit-tested with plain `cargo test`. See `docs/plugins.md`.
//!
//! Plugins have no filesystem, network, environment, clock or WASI
//! randomness: a plugin that uses `std::collections::HashMap` with its
//! default hasher, `std::time` or `std::env` traps when it calls them. Use
//! `BTreeMap`, the seeded [`random`] source and the plugin [`config`].

pub mod codec;
pub mod host;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use codec::{Codec, Decoder};
pub use host::{config, log, random, tokenizer};

/// The contract version this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// Everything a codec author usually needs, in one import.
pub mod prelude {
    pub use crate::codec::{
        Codec, ConfigError, ContentDelta, DecodeOptions, Decoder, EncodedRequest, Event, Frame, FrameEvent, Framing,
        Generation, GrpcRequest, HttpRequest, Message, PluginInfo, Prompt, RequestSpec, ResponseHead, ServerError,
        Usage, WireRequest,
    };
    pub use crate::host::{config, log, random, tokenizer};
}

/// Generated bindings. Not part of the SDK's stable surface: use the
/// re-exports in [`codec`] instead.
#[doc(hidden)]
pub mod wit {
    /// Bindings of the `codec` world.
    pub mod codec {
        wit_bindgen::generate!({
            world: "codec",
            path: "../wit",
            pub_export_macro: true,
            export_macro_name: "__export_codec_world",
            default_bindings_module: "barrage_sdk::wit::codec",
        });
    }
}

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
