//! Finding plugins by name: built into the binary, installed in the plugin
//! directory, or given as a path.
//!
//! An installed `NAME.wasm` overrides the built-in `NAME`, so a fixed or
//! extended codec can be dropped in without rebuilding Barrage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::PluginError;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

/// Where a plugin's bytes come from.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// Built into this binary.
    Builtin {
        /// Its name.
        name: &'static str,
        /// The world it implements (`codec`, `dataset`, `reporter`).
        world: &'static str,
        /// The component.
        bytes: &'static [u8],
    },
    /// A `.wasm` file.
    File(Arc<Path>),
}

impl PluginSource {
    /// A short name for messages: the built-in's name or the file's stem.
    pub fn label(&self) -> String {
        match self {
            PluginSource::Builtin { name, .. } => name.to_string(),
            PluginSource::File(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
        }
    }

    /// Where it lives, for listings: `built-in` or the path.
    pub fn location(&self) -> String {
        match self {
            PluginSource::Builtin { .. } => "built-in".into(),
            PluginSource::File(path) => path.display().to_string(),
        }
    }

    /// The component bytes.
    pub fn bytes(&self) -> Result<std::borrow::Cow<'static, [u8]>, PluginError> {
        match self {
            PluginSource::Builtin { bytes, .. } => Ok(std::borrow::Cow::Borrowed(bytes)),
            PluginSource::File(path) => {
                std::fs::read(path)
                    .map(std::borrow::Cow::Owned)
                    .map_err(|source| PluginError::Read {
                        path: path.display().to_string(),
                        source,
                    })
            }
        }
    }
}

/// The plugins this host can find.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Directory of installed plugins (`*.wasm`), if any.
    pub plugin_dir: Option<PathBuf>,
}

impl Registry {
    /// The registry with the default plugin directory:
    /// `$BARRAGE_PLUGIN_DIR`, else `$XDG_DATA_HOME/barrage/plugins`, else
    /// `~/.local/share/barrage/plugins`.
    pub fn from_env() -> Registry {
        Registry {
            plugin_dir: crate::engine::user_path("BARRAGE_PLUGIN_DIR", "XDG_DATA_HOME", ".local/share", "plugins"),
        }
    }

    /// The built-in plugins.
    pub fn builtins() -> impl Iterator<Item = PluginSource> {
        builtin::BUILTIN
            .iter()
            .map(|&(name, world, bytes)| PluginSource::Builtin { name, world, bytes })
    }

    /// The installed plugins, sorted by file name.
    pub fn installed(&self) -> Vec<PluginSource> {
        let Some(dir) = &self.plugin_dir else { return Vec::new() };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        files.into_iter().map(|p| PluginSource::File(p.into())).collect()
    }

    /// Find a plugin: a path (anything with a `/` or ending in `.wasm`) is
    /// taken as is; a name is looked up among installed, then built-in plugins.
    pub fn resolve(&self, name_or_path: &str) -> Result<PluginSource, PluginError> {
        self.find(name_or_path, None)
    }

    /// [`resolve`](Registry::resolve) among the built-ins of one world, so
    /// the `csv` dataset and the `csv` reporter are told apart.
    pub fn resolve_in(&self, world: super::World, name_or_path: &str) -> Result<PluginSource, PluginError> {
        self.find(name_or_path, Some(world.name()))
    }

    fn find(&self, name_or_path: &str, world: Option<&str>) -> Result<PluginSource, PluginError> {
        if name_or_path.contains('/') || name_or_path.ends_with(".wasm") {
            return Ok(PluginSource::File(PathBuf::from(name_or_path).into()));
        }
        if let Some(found) = self.installed().into_iter().find(|s| s.label() == name_or_path) {
            return Ok(found);
        }
        let of_world = |s: &PluginSource| match (s, world) {
            (PluginSource::Builtin { world: w, .. }, Some(want)) => *w == want,
            _ => true,
        };
        if let Some(found) = Self::builtins().find(|s| s.label() == name_or_path && of_world(s)) {
            return Ok(found);
        }
        let mut names: Vec<String> = Self::builtins()
            .filter(of_world)
            .chain(self.installed())
            .map(|s| s.label())
            .collect();
        names.sort();
        names.dedup();
        Err(PluginError::NotFound {
            name: name_or_path.to_string(),
            hint: format!("known plugins: {} (or give a path to a .wasm file)", names.join(", ")),
        })
    }

    /// Whether an installed plugin hides the built-in `name`.
    pub fn overrides_builtin(&self, name: &str) -> bool {
        self.installed().iter().any(|s| s.label() == name)
    }
}
