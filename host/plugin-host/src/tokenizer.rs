//! Tokenizers offered to plugins through the `tokenizer` import.
//!
//! [`load`] turns a specification into a tokenizer: `words` (the
//! approximate fallback: one whitespace-separated word per token, labelled
//! as not exact), `cl100k_base` / `o200k_base` (OpenAI's BPE encodings,
//! embedded in the binary, offline), a Hugging Face `tokenizer.json` file or
//! a directory holding one, or a model id (`org/name`) found in the local
//! Hugging Face cache. Nothing is downloaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A tokenizer shared by all plugin instances of a run.
pub trait Tokenizer: Send + Sync {
    /// Name shown in results, e.g. a model id or `words`.
    fn name(&self) -> &str;
    /// False for an approximate counting rule.
    fn exact(&self) -> bool;
    /// Number of tokens in `text`.
    fn count(&self, text: &str) -> u32;
    /// Token ids of `text`.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// Text of `tokens`.
    fn decode(&self, tokens: &[u32]) -> String;
    /// The directory the tokenizer was loaded from (where its
    /// `tokenizer_config.json` and chat template live), if a file.
    fn directory(&self) -> Option<&Path> {
        None
    }
}

/// The fallback when no tokenizer is configured: one whitespace-separated
/// word is one token. Approximate, and labelled so in results.
#[derive(Default)]
pub struct WordTokenizer {
    vocab: Mutex<Vocab>,
}

#[derive(Default)]
struct Vocab {
    ids: HashMap<String, u32>,
    words: Vec<String>,
}

impl WordTokenizer {
    /// A shareable instance.
    pub fn shared() -> Arc<dyn Tokenizer> {
        Arc::new(WordTokenizer::default())
    }
}

impl Tokenizer for WordTokenizer {
    fn name(&self) -> &str {
        "words"
    }

    fn exact(&self) -> bool {
        false
    }

    fn count(&self, text: &str) -> u32 {
        text.split_whitespace().count() as u32
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        let mut vocab = self.vocab.lock().unwrap_or_else(|p| p.into_inner());
        text.split_whitespace()
            .map(|w| match vocab.ids.get(w) {
                Some(&id) => id,
                None => {
                    let id = vocab.words.len() as u32;
                    vocab.words.push(w.to_string());
                    vocab.ids.insert(w.to_string(), id);
                    id
                }
            })
            .collect()
    }

    fn decode(&self, tokens: &[u32]) -> String {
        let vocab = self.vocab.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .iter()
            .map(|&t| vocab.words.get(t as usize).map(String::as_str).unwrap_or("<unk>"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why a tokenizer could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A `tokenizer.json` that could not be read or parsed.
    #[error("tokenizer {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Nothing matches the specification.
    #[error(
        "tokenizer `{spec}`: not `words`, `cl100k_base` or `o200k_base`, not a tokenizer.json file or a directory \
         holding one, and no model `{spec}` in the Hugging Face cache ({cache}); download it there first \
         (e.g. `huggingface-cli download {spec} tokenizer.json`) or give the file's path"
    )]
    NotFound {
        /// What was asked.
        spec: String,
        /// Where the cache was searched.
        cache: String,
    },
}

/// A Hugging Face `tokenizer.json`, through the `tokenizers` crate.
pub struct HfTokenizer {
    name: String,
    inner: tokenizers::Tokenizer,
    dir: Option<std::path::PathBuf>,
}

impl HfTokenizer {
    /// Load `path`, naming the tokenizer `name`.
    pub fn from_file(path: &Path, name: &str) -> Result<HfTokenizer, TokenizerError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizerError::File {
            path: path.display().to_string(),
            message: format!("not a Hugging Face tokenizer.json: {e}"),
        })?;
        Ok(HfTokenizer {
            name: name.to_string(),
            inner,
            dir: path.parent().map(Path::to_path_buf),
        })
    }
}

impl Tokenizer for HfTokenizer {
    fn name(&self) -> &str {
        &self.name
    }

    fn directory(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn exact(&self) -> bool {
        true
    }

    fn count(&self, text: &str) -> u32 {
        self.encode(text).len() as u32
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        // Without special tokens: a prompt's own tokens, as servers count them
        // before a chat template adds its markers.
        // `encode_fast` skips the character offsets nothing here uses.
        self.inner
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    fn decode(&self, tokens: &[u32]) -> String {
        self.inner.decode(tokens, false).unwrap_or_default()
    }
}

/// OpenAI's BPE encodings, embedded by `tiktoken-rs`.
pub struct Tiktoken {
    name: &'static str,
    bpe: tiktoken_rs::CoreBPE,
}

impl Tokenizer for Tiktoken {
    fn name(&self) -> &str {
        self.name
    }

    fn exact(&self) -> bool {
        true
    }

    fn count(&self, text: &str) -> u32 {
        self.encode(text).len() as u32
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        self.bpe.encode_ordinary(text)
    }

    fn decode(&self, tokens: &[u32]) -> String {
        self.bpe.decode(tokens).unwrap_or_default()
    }
}

/// The Hugging Face hub cache: `$HF_HUB_CACHE`, `$HF_HOME/hub`, or `~/.cache/huggingface/hub`.
pub fn hf_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("huggingface").join("hub")
}

/// `tokenizer.json` of model `id` in the cache: the snapshot `refs/main`
/// names, or else any snapshot that has one.
fn find_in_cache(cache: &Path, id: &str) -> Option<PathBuf> {
    let model = cache.join(format!("models--{}", id.replace('/', "--")));
    let snapshots = model.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(model.join("refs").join("main")) {
        let file = snapshots.join(rev.trim()).join("tokenizer.json");
        if file.is_file() {
            return Some(file);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("tokenizer.json")))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// Load the tokenizer `spec` names (see the module documentation). Loaded
/// tokenizers are kept for the life of the process: the reporters and the
/// codec of one run share one.
pub fn load(spec: &str) -> Result<Arc<dyn Tokenizer>, TokenizerError> {
    static LOADED: OnceLock<Mutex<HashMap<String, Arc<dyn Tokenizer>>>> = OnceLock::new();
    let cache = LOADED.get_or_init(Default::default);
    if let Some(t) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(spec) {
        return Ok(t.clone());
    }
    let loaded: Arc<dyn Tokenizer> = match spec {
        "" | "words" => Arc::new(WordTokenizer::default()),
        "cl100k_base" | "cl100k" => Arc::new(Tiktoken {
            name: "cl100k_base",
            bpe: tiktoken_rs::cl100k_base().map_err(|e| TokenizerError::File {
                path: "cl100k_base".into(),
                message: e.to_string(),
            })?,
        }),
        "o200k_base" | "o200k" => Arc::new(Tiktoken {
            name: "o200k_base",
            bpe: tiktoken_rs::o200k_base().map_err(|e| TokenizerError::File {
                path: "o200k_base".into(),
                message: e.to_string(),
            })?,
        }),
        _ => {
            let path = Path::new(spec);
            let file = if path.is_file() {
                path.to_path_buf()
            } else if path.is_dir() && path.join("tokenizer.json").is_file() {
                path.join("tokenizer.json")
            } else {
                let hub = hf_cache_dir();
                find_in_cache(&hub, spec).ok_or_else(|| TokenizerError::NotFound {
                    spec: spec.to_string(),
                    cache: hub.display().to_string(),
                })?
            };
            Arc::new(HfTokenizer::from_file(&file, spec)?)
        }
    };
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(spec.to_string(), loaded.clone());
    Ok(loaded)
}

/// A chat template (Jinja, as Hugging Face ships it in
/// `tokenizer_config.json` or `chat_template.jinja`), rendered the way
/// `apply_chat_template(..., add_generation_prompt=True)` does, so chat
/// prompts are counted (or sent as text) as the server sees them.
pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

/// Why a chat template could not be loaded or rendered; the message names
/// the file or the template's own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

impl From<String> for TemplateError {
    fn from(message: String) -> TemplateError {
        TemplateError(message)
    }
}

impl ChatTemplate {
    /// Load `spec`: `auto` (next to the tokenizer's `tokenizer.json`), a
    /// `tokenizer_config.json`, or a Jinja file; relative paths from `base`.
    pub fn load(spec: &str, base: &Path, tokenizer: &dyn Tokenizer) -> Result<ChatTemplate, TemplateError> {
        let path = if spec == "auto" {
            let dir = tokenizer.directory().ok_or_else(|| {
                format!(
                    "`auto` takes the template next to the tokenizer's tokenizer.json, and the tokenizer `{}` is not a file; \
                     give --tokenizer a tokenizer.json or name the template file",
                    tokenizer.name()
                )
            })?;
            let jinja = dir.join("chat_template.jinja");
            if jinja.is_file() {
                jinja
            } else {
                dir.join("tokenizer_config.json")
            }
        } else {
            base.join(spec)
        };
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let is_json = path.extension().is_some_and(|e| e == "json");
        let template = if is_json {
            let config: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
            let token = |key: &str| match &config[key] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).unwrap_or("").to_string(),
                _ => String::new(),
            };
            let source = match &config["chat_template"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(named) => named
                    .iter()
                    .find(|t| t["name"] == "default")
                    .or(named.first())
                    .and_then(|t| t["template"].as_str())
                    .unwrap_or_default()
                    .to_string(),
                _ => String::new(),
            };
            if source.is_empty() {
                return Err(format!("{} has no `chat_template`", path.display()).into());
            }
            ChatTemplate {
                source,
                bos: token("bos_token"),
                eos: token("eos_token"),
            }
        } else {
            ChatTemplate {
                source: text,
                bos: String::new(),
                eos: String::new(),
            }
        };
        // Fail now, on a syntax error, rather than on the first chat prompt.
        template.environment()?;
        Ok(template)
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn environment(&self) -> Result<minijinja::Environment<'static>, TemplateError> {
        let mut env = minijinja::Environment::new();
        // Hugging Face templates call Python string methods (`.strip()`, `.startswith()`).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |m: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, m))
        });
        env.add_template_owned("chat", self.source.clone())
            .map_err(|e| format!("the template does not parse: {e}"))?;
        Ok(env)
    }

    /// The prompt text for `messages`, ending with the assistant's turn opened.
    pub fn render(&self, messages: &[barrage_core::types::ChatMessage]) -> Result<String, TemplateError> {
        let env = self.environment()?;
        let t = env.get_template("chat").map_err(|e| e.to_string())?;
        t.render(minijinja::context! {
            messages => messages.iter().map(|m| minijinja::context! { role => m.role.clone(), content => m.text_content() }).collect::<Vec<_>>(),
            add_generation_prompt => true,
            bos_token => self.bos.clone(),
            eos_token => self.eos.clone(),
        })
        .map_err(|e| TemplateError(format!("rendering failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small WordLevel tokenizer.json, written by hand in the format the
    /// `tokenizers` crate saves.
    pub(crate) fn word_level_json() -> String {
        serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": {"type": "Lowercase"},
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "the": 1, "cat": 2, "sat": 3, "on": 4, "mat": 5, ".": 6},
                      "unk_token": "[UNK]"}
        })
        .to_string()
    }

    #[test]
    fn a_tokenizer_json_file_and_directory_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokenizer.json");
        std::fs::write(&file, word_level_json()).unwrap();
        let t = load(file.to_str().unwrap()).unwrap();
        assert!(t.exact());
        assert_eq!(t.encode("The cat sat on the mat."), vec![1, 2, 3, 4, 1, 5, 6]);
        assert_eq!(t.count("the dog"), 2, "unknown words are [UNK] tokens");
        assert_eq!(t.decode(&[2, 3]), "cat sat");
        let by_dir = load(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(by_dir.count("the cat"), 2);
    }

    #[test]
    fn models_are_found_in_the_hugging_face_cache() {
        let cache = tempfile::tempdir().unwrap();
        let snap = cache.path().join("models--acme--tiny/snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("tokenizer.json"), word_level_json()).unwrap();
        std::fs::create_dir_all(cache.path().join("models--acme--tiny/refs")).unwrap();
        std::fs::write(cache.path().join("models--acme--tiny/refs/main"), "abc123\n").unwrap();
        assert_eq!(
            find_in_cache(cache.path(), "acme/tiny"),
            Some(snap.join("tokenizer.json"))
        );
        assert_eq!(find_in_cache(cache.path(), "acme/other"), None);
    }

    #[test]
    fn bad_specifications_say_what_to_do() {
        let e = load("no-such-org/no-such-model").err().unwrap().to_string();
        assert!(
            e.contains("Hugging Face cache") && e.contains("huggingface-cli download"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("tokenizer.json");
        std::fs::write(&bad, "{\"model\": 3}").unwrap();
        let e = load(bad.to_str().unwrap()).err().unwrap().to_string();
        assert!(e.contains("tokenizer.json") && e.contains("not a Hugging Face"), "{e}");
    }

    #[test]
    fn openai_encodings_are_available_offline() {
        let cl = load("cl100k_base").unwrap();
        // Known token counts of cl100k_base and o200k_base.
        assert_eq!(cl.count("hello world"), 2);
        assert_eq!(cl.encode("hello world"), vec![15339, 1917]);
        assert_eq!(cl.decode(&[15339, 1917]), "hello world");
        let o = load("o200k").unwrap();
        assert_eq!(o.name(), "o200k_base");
        assert_eq!(o.encode("hello world"), vec![24912, 2375]);
    }

    #[test]
    fn words_round_trip_and_count() {
        let t = WordTokenizer::default();
        let ids = t.encode("the cat  sat on the mat");
        assert_eq!(ids.len(), 6);
        assert_eq!(ids[0], ids[4]);
        assert_eq!(t.count("the cat  sat on the mat"), 6);
        assert_eq!(t.decode(&ids), "the cat sat on the mat");
        assert!(!t.exact());
    }

    #[test]
    fn chat_templates_from_tokenizer_config_render_like_hugging_face() {
        let dir = tempfile::tempdir().unwrap();
        // The list form, a Python string method, a bos token given as an object.
        let template = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}[S]{{ m.content.strip() }}{% else %}[{{ m.role | upper }}]{{ m.content }}{% endif %}{% endfor %}{% if add_generation_prompt %}[ASSISTANT]{% endif %}";
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            serde_json::json!({
                "bos_token": {"content": "<s>"},
                "chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": template}],
            })
            .to_string(),
        )
        .unwrap();
        let words = load("words").unwrap();
        let t = ChatTemplate::load("tokenizer_config.json", dir.path(), words.as_ref()).unwrap();
        let m = barrage_core::types::ChatMessage::text;
        assert_eq!(
            t.render(&[m("system", "  be brief "), m("user", "hi")]).unwrap(),
            "<s>[S]be brief[USER]hi[ASSISTANT]"
        );
        let e = ChatTemplate::load("auto", dir.path(), words.as_ref()).err().unwrap().0;
        assert!(e.contains("not a file"), "{e}");
        std::fs::write(dir.path().join("t.jinja"), "{{ raise_exception('no system role') }}").unwrap();
        let t = ChatTemplate::load("t.jinja", dir.path(), words.as_ref()).unwrap();
        assert!(t.render(&[m("user", "x")]).unwrap_err().0.contains("no system role"));
    }
}
