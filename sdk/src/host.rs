//! Functions the host offers every plugin, whatever its world.
//!
//! In a wasm build these call the host; in a native build (unit tests) they
//! are answered by the thread's [`crate::testing::TestHost`].

/// Log lines, written to the run's log tagged with the plugin's name.
pub mod log {
    pub use crate::wit::host::barrage::plugin::log::Level;

    /// Log `message` at `level`.
    pub fn log(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        crate::wit::host::barrage::plugin::log::log(level, message);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| h.logs.push((level, message.to_string())));
    }

    /// Log at trace level.
    pub fn trace(message: &str) {
        log(Level::Trace, message)
    }

    /// Log at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }

    /// Log at info level.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }

    /// Log at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }

    /// Log at error level.
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// The configuration table the user gave this plugin.
pub mod config {
    /// The configuration as JSON text; `{}` when none was given.
    pub fn raw() -> String {
        // Asked of the host once per instance: its configuration cannot
        // change while it lives, and codecs read it for every request.
        #[cfg(target_arch = "wasm32")]
        {
            static RAW: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            RAW.get_or_init(crate::wit::host::barrage::plugin::config::get).clone()
        }
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| h.config.to_string())
    }

    /// The configuration as a JSON value. The host checked it is an object.
    pub fn value() -> serde_json::Value {
        serde_json::from_str(&raw()).unwrap_or(serde_json::Value::Object(Default::default()))
    }

    /// The configuration deserialized into `T`; the error message names the
    /// offending field as serde reports it.
    pub fn get<T: serde::de::DeserializeOwned>() -> Result<T, String> {
        serde_json::from_str(&raw()).map_err(|e| e.to_string())
    }

    /// A configuration table deserialized into `T`, for `check_config`: an
    /// unknown field (with `deny_unknown_fields`) is named as the error's
    /// field, so the host can point at it.
    pub fn parse<T: serde::de::DeserializeOwned>(config: &serde_json::Value) -> Result<T, crate::ConfigError> {
        serde_json::from_value(config.clone()).map_err(|e| {
            let message = e.to_string();
            // serde names unknown fields as "unknown field `x`, expected ...".
            let field = message
                .split('`')
                .nth(1)
                .filter(|_| message.starts_with("unknown field"))
                .map(str::to_string);
            crate::ConfigError { field, message }
        })
    }
}

/// The run's seeded random source.
pub mod random {
    /// The next 64 random bits.
    pub fn next_u64() -> u64 {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::host::barrage::plugin::random::next_u64();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.next_u64());
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64() -> f64 {
        (next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The run's tokenizer.
pub mod tokenizer {
    pub use crate::wit::host::barrage::plugin::tokenizer::TokenizerInfo;

    /// Name of the tokenizer and whether it is exact.
    pub fn info() -> TokenizerInfo {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::host::barrage::plugin::tokenizer::info();
        #[cfg(not(target_arch = "wasm32"))]
        return TokenizerInfo {
            name: "words".into(),
            exact: false,
        };
    }

    /// Number of tokens in `text`.
    pub fn count(text: &str) -> u32 {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::host::barrage::plugin::tokenizer::count(text);
        #[cfg(not(target_arch = "wasm32"))]
        return text.split_whitespace().count() as u32;
    }

    /// Token ids of `text`.
    pub fn encode(text: &str) -> Vec<u32> {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::host::barrage::plugin::tokenizer::encode(text);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::words_encode(text);
    }

    /// Text of `tokens`.
    pub fn decode(tokens: &[u32]) -> String {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::host::barrage::plugin::tokenizer::decode(tokens);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::words_decode(tokens);
    }
}

/// Secrets the user granted this plugin. Declare each name in
/// `PluginInfo::secrets`; the host refuses a grant of an undeclared name,
/// and refuses to load the plugin when a required one is not granted.
pub mod secrets {
    /// The value granted under `name`, or why there is none. Never log it or
    /// put it in an error: the host masks it wherever it finds it, but a
    /// transformed value (a prefix, a hash) it cannot recognise.
    pub fn get(name: &str) -> Result<String, String> {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::host::barrage::plugin::secrets::get(name);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| {
            h.secrets
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no secret `{name}` was granted"))
        });
    }
}
