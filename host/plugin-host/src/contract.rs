//! Which contract a component was built against, read from its type before
//! anything is instantiated.
//!
//! A plugin's imports and exports are named `barrage:plugin/<interface>@<version>`.
//! The exported interface says which world it implements; the version says
//! which release of the WIT package it was built with.

use std::fmt;

use wasmtime::Engine;
use wasmtime::component::Component;

pub use crate::bindings::SUPPORTED_VERSIONS;

/// The WIT package every plugin implements.
pub const PACKAGE: &str = "barrage:plugin";

/// The kind of plugin, i.e. the WIT world it implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum World {
    /// A model-server codec (`request-codec` export).
    Codec,
    /// A dataset preprocessor (`dataset-source` export).
    Dataset,
    /// A reporter (`report-renderer` export).
    Reporter,
}

impl World {
    fn from_export(interface: &str) -> Option<World> {
        match interface {
            "request-codec" => Some(World::Codec),
            "dataset-source" => Some(World::Dataset),
            "report-renderer" => Some(World::Reporter),
            _ => None,
        }
    }

    /// The world named `name` (`codec`, `dataset`, `reporter`).
    pub fn from_name(name: &str) -> Option<World> {
        [World::Codec, World::Dataset, World::Reporter]
            .into_iter()
            .find(|w| w.name() == name)
    }

    /// The world's name in the WIT package.
    pub fn name(self) -> &'static str {
        match self {
            World::Codec => "codec",
            World::Dataset => "dataset",
            World::Reporter => "reporter",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A semantic version of the WIT package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
}

impl Version {
    /// Parse `X.Y.Z` (a pre-release suffix makes it unparseable, and so unsupported).
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.split('.').map(|p| p.parse::<u64>().ok());
        let v = Version {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(v)
    }

    /// Whether a plugin built for `self` runs on a host implementing `host`:
    /// same major (and, for `0.x`, same minor) and no newer than the host.
    /// `0.0.x` only matches itself, as in wasmtime's own semver matching.
    pub fn runs_on(self, host: Version) -> bool {
        let same_series = match (self.major, host.major) {
            (0, 0) if self.minor == 0 => self == host,
            (0, 0) => self.minor == host.minor,
            (a, b) => a == b,
        };
        same_series && self <= host
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What a component's type says about its contract.
#[derive(Debug, Clone)]
pub struct ContractInfo {
    /// The world implemented, if any `barrage:plugin` export names one.
    pub world: Option<World>,
    /// Versions of `barrage:plugin` named in imports and exports (normally one).
    pub versions: Vec<String>,
    /// Every import name, in the component's order.
    pub imports: Vec<String>,
    /// Every export name, in the component's order.
    pub exports: Vec<String>,
}

impl ContractInfo {
    /// Read the contract from a compiled component.
    pub fn read(engine: &Engine, component: &Component) -> ContractInfo {
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(engine).map(|(name, _)| name.to_string()).collect();
        let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
        let mut world = None;
        let mut versions = Vec::new();
        for (name, is_export) in imports
            .iter()
            .map(|n| (n, false))
            .chain(exports.iter().map(|n| (n, true)))
        {
            let Some(rest) = name.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/')) else {
                continue;
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if !versions.iter().any(|v| v == version) {
                versions.push(version.to_string());
            }
            if is_export && world.is_none() {
                world = World::from_export(interface);
            }
        }
        ContractInfo {
            world,
            versions,
            imports,
            exports,
        }
    }

    /// The single supported version this component targets, or why not.
    pub fn supported_version(&self) -> Result<Version, Unsupported> {
        match self.versions.as_slice() {
            [] => Err(Unsupported::NoInterface),
            [v] => {
                let version = Version::parse(v).ok_or_else(|| Unsupported::Version(v.clone()))?;
                if SUPPORTED_VERSIONS.iter().any(|h| version.runs_on(*h)) {
                    Ok(version)
                } else {
                    Err(Unsupported::Version(v.clone()))
                }
            }
            many => Err(Unsupported::Several(many.to_vec())),
        }
    }
}

/// Why a component's contract is not one this host runs; the message says
/// what it targets, and reads after "it targets".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// No `barrage:plugin` import or export at all.
    #[error(
        "no barrage:plugin interface at all (a WASI command program, or a component for another host, is not a plugin)"
    )]
    NoInterface,
    /// A version this host has no binding module for.
    #[error("{PACKAGE}@{0}")]
    Version(String),
    /// Interfaces of several versions in one component.
    #[error("several versions at once ({})", .0.join(", "))]
    Several(Vec<String>),
}

/// The versions this host supports, for messages: `barrage:plugin@0.1.0`.
pub fn supported_list() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("{PACKAGE}@{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn semver_matching_follows_the_0x_rules() {
        assert!(v("0.1.0").runs_on(v("0.1.0")));
        assert!(v("0.1.0").runs_on(v("0.1.3")));
        assert!(
            !v("0.1.4").runs_on(v("0.1.3")),
            "a plugin may use functions added after the host"
        );
        assert!(!v("0.2.0").runs_on(v("0.1.0")));
        assert!(!v("0.0.1").runs_on(v("0.0.2")));
        assert!(v("1.2.0").runs_on(v("1.5.0")));
        assert!(!v("2.0.0").runs_on(v("1.5.0")));
        assert_eq!(Version::parse("0.1.0-rc1"), None);
        assert_eq!(Version::parse("0.1"), None);
    }
}
