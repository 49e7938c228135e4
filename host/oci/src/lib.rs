//! Barrage plugins as OCI artifacts, in the Wasm OCI layout: an image
//! manifest whose config is `application/vnd.wasm.config.v0+json` and whose
//! one layer is the component, `application/wasm`. Pushed and pulled with
//! `oci-client`, the OCI distribution client the ORAS project keeps.
//!
//! A plugin's minisign signature travels in the manifest, base64-encoded in
//! the annotation [`SIGNATURE_ANNOTATION`] (manifests are canonical JSON,
//! whose strings cannot hold the signature file's newlines): the artifact
//! stays one layer, as tools that read the Wasm layout expect, and pulling
//! it brings the signature along.
//!
//! A pull writes nothing until the layer's size, digest and media types are
//! checked: a refused or cut download never leaves a plugin half-installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

/// The Wasm OCI layout's config media type.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The Wasm OCI layout's layer media type.
pub const WASM_LAYER: &str = "application/wasm";
/// The manifest annotation holding the component's minisign signature
/// file, base64 (standard alphabet, padded).
pub const SIGNATURE_ANNOTATION: &str = "dev.barrage.plugin.minisig";
/// The largest layer a pull takes unless told otherwise, bytes.
pub const DEFAULT_MAX_LAYER: u64 = 512 << 20;

/// Why a push or a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference is not one.
    #[error("`{reference}` is not an OCI reference (REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]): {message}")]
    Reference {
        /// What was given.
        reference: String,
        /// Why.
        message: String,
    },
    /// The registry could not be reached.
    #[error("registry {registry} could not be reached: {message}")]
    Unreachable {
        /// host[:port].
        registry: String,
        /// Why.
        message: String,
    },
    /// Nothing at that reference.
    #[error("{reference}: no such artifact in the registry ({message})")]
    NotFound {
        /// The reference.
        reference: String,
        /// The registry's words.
        message: String,
    },
    /// The artifact is not a Wasm component in the Wasm OCI layout.
    #[error("{reference} is not a Barrage plugin artifact: {message}")]
    NotAPlugin {
        /// The reference.
        reference: String,
        /// What it is instead.
        message: String,
    },
    /// The component is larger than the pull allows.
    #[error(
        "{reference}: the component is {size} bytes, over the limit of {limit} bytes (raise --max-size-mib if it is expected)"
    )]
    TooLarge {
        /// The reference.
        reference: String,
        /// Its size (as announced, or as received so far).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes received are not the bytes the manifest names.
    #[error(
        "{reference}: the download is not what the manifest names (expected {expected}, got {actual}); nothing was written"
    )]
    Digest {
        /// The reference.
        reference: String,
        /// The manifest's digest.
        expected: String,
        /// The received bytes' digest.
        actual: String,
    },
    /// The registry refused or failed the operation.
    #[error("{reference}: {message}")]
    Registry {
        /// The reference.
        reference: String,
        /// The registry's words, or the client's.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Speak plain HTTP to every registry (loopback registries always get it).
    pub plain_http: bool,
    /// A username and password; none: anonymous.
    pub credentials: Option<(String, String)>,
}

impl RegistryOptions {
    /// Credentials from `BARRAGE_REGISTRY_USERNAME` and
    /// `BARRAGE_REGISTRY_PASSWORD`, when both are set.
    pub fn from_env(plain_http: bool) -> RegistryOptions {
        let credentials = match (
            std::env::var("BARRAGE_REGISTRY_USERNAME"),
            std::env::var("BARRAGE_REGISTRY_PASSWORD"),
        ) {
            (Ok(user), Ok(password)) => Some((user, password)),
            _ => None,
        };
        RegistryOptions {
            plain_http,
            credentials,
        }
    }

    fn auth(&self) -> RegistryAuth {
        match &self.credentials {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    fn client(&self, reference: &Reference) -> Result<Client, OciError> {
        // reqwest's TLS takes the process's default crypto provider; the
        // host uses ring everywhere else.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let host = reference
            .resolve_registry()
            .rsplit_once(':')
            .map_or(reference.resolve_registry(), |(h, _)| h);
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
        let config = ClientConfig {
            protocol: if self.plain_http || loopback {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            user_agent: concat!("barrage/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        Client::try_from(config).map_err(|e| OciError::Registry {
            reference: reference.whole(),
            message: format!("the client could not be set up: {e}"),
        })
    }
}

/// Parse `reference`, with or without an `oci://` prefix.
pub fn parse_reference(reference: &str) -> Result<Reference, OciError> {
    let bare = reference.strip_prefix("oci://").unwrap_or(reference);
    bare.parse().map_err(|e: oci_client::ParseError| OciError::Reference {
        reference: reference.to_string(),
        message: e.to_string(),
    })
}

/// `sha256:` and the hex digest of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What a plugin says of itself, for the artifact's config and annotations.
#[derive(Debug, Clone)]
pub struct PluginFacts {
    /// The name it is picked by.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// Its world: `codec`, `dataset`, `reporter`.
    pub kind: String,
    /// Its contract version.
    pub contract: String,
    /// The interfaces it imports and exports.
    pub imports: Vec<String>,
    /// See `imports`.
    pub exports: Vec<String>,
}

/// A pushed artifact.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The reference pinned to the manifest's digest.
    pub pinned: String,
    /// The manifest's digest.
    pub manifest_digest: String,
    /// The component's digest.
    pub layer_digest: String,
}

/// Push `component` (with its minisign `signature`, if any) to `reference`.
pub async fn push(
    options: &RegistryOptions,
    reference: &str,
    component: Vec<u8>,
    signature: Option<String>,
    facts: &PluginFacts,
) -> Result<Pushed, OciError> {
    let r = parse_reference(reference)?;
    let client = options.client(&r)?;
    let layer_digest = digest(&component);
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": {
            "target": format!("barrage:plugin/{}@{}", facts.kind, facts.contract),
            "imports": facts.imports,
            "exports": facts.exports,
        },
    });
    let title = BTreeMap::from([(
        "org.opencontainers.image.title".to_string(),
        format!("{}.wasm", facts.name),
    )]);
    let layers = [ImageLayer::new(component, WASM_LAYER.into(), Some(title))];
    let config = Config::new(config.to_string().into_bytes(), WASM_CONFIG.into(), None);
    let mut annotations = BTreeMap::from([
        ("org.opencontainers.image.title".to_string(), facts.name.clone()),
        ("org.opencontainers.image.version".to_string(), facts.version.clone()),
        ("dev.barrage.plugin.kind".to_string(), facts.kind.clone()),
        ("dev.barrage.plugin.contract".to_string(), facts.contract.clone()),
    ]);
    if let Some(sig) = signature {
        annotations.insert(SIGNATURE_ANNOTATION.into(), BASE64.encode(sig));
    }
    let mut manifest = OciImageManifest::build(&layers, &config, Some(annotations));
    // Registries (distribution 2.x among them) tell manifest kinds apart by it.
    manifest.media_type = Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.into());
    client
        .push(&r, &layers, config, &options.auth(), Some(manifest))
        .await
        .map_err(|e| classify(&r, e))?;
    // The digest of the manifest as the registry holds it (the client
    // writes it as canonical JSON).
    let manifest_digest = client
        .fetch_manifest_digest(&r, &options.auth())
        .await
        .map_err(|e| classify(&r, e))?;
    let pinned = format!("{}/{}@{manifest_digest}", r.resolve_registry(), r.repository());
    Ok(Pushed {
        pinned,
        manifest_digest,
        layer_digest,
    })
}

/// A pulled plugin, on disk.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The component's path.
    pub path: PathBuf,
    /// Its signature's path, when the artifact carried one.
    pub signature: Option<PathBuf>,
    /// The reference pinned to the manifest's digest.
    pub pinned: String,
    /// The component's digest.
    pub layer_digest: String,
}

/// Pull the plugin at `reference` into `dir`, as `NAME.wasm` (`name`, or
/// the artifact's title, or the repository's last segment), with
/// `NAME.wasm.minisig` beside it when it carries a signature. Nothing is
/// written unless all of it checks out.
pub async fn pull(
    options: &RegistryOptions,
    reference: &str,
    dir: &Path,
    name: Option<&str>,
    max_layer: u64,
) -> Result<Pulled, OciError> {
    let r = parse_reference(reference)?;
    let client = options.client(&r)?;
    let not_a_plugin = |message: String| OciError::NotAPlugin {
        reference: r.whole(),
        message,
    };
    let (manifest, manifest_digest) = client
        .pull_manifest(&r, &options.auth())
        .await
        .map_err(|e| classify(&r, e))?;
    let manifest = match manifest {
        OciManifest::Image(m) => m,
        OciManifest::ImageIndex(_) => {
            return Err(not_a_plugin(
                "it is an image index (a multi-platform image), not one artifact".into(),
            ));
        }
    };
    if manifest.config.media_type != WASM_CONFIG {
        return Err(not_a_plugin(format!(
            "its config media type is {}, not {WASM_CONFIG}",
            manifest.config.media_type
        )));
    }
    let [layer] = manifest.layers.as_slice() else {
        return Err(not_a_plugin(format!(
            "it has {} layers; a Wasm artifact has one",
            manifest.layers.len()
        )));
    };
    if layer.media_type != WASM_LAYER {
        return Err(not_a_plugin(format!(
            "its layer's media type is {}, not {WASM_LAYER}",
            layer.media_type
        )));
    }
    let announced = u64::try_from(layer.size).unwrap_or(u64::MAX);
    if announced > max_layer {
        return Err(OciError::TooLarge {
            reference: r.whole(),
            size: announced,
            limit: max_layer,
        });
    }
    let mut stream = client.pull_blob_stream(&r, layer).await.map_err(|e| classify(&r, e))?;
    let mut bytes = Vec::with_capacity(announced.min(max_layer) as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| registry_error(&r, format!("the download failed: {e}")))?;
        if (bytes.len() + chunk.len()) as u64 > max_layer {
            return Err(OciError::TooLarge {
                reference: r.whole(),
                size: (bytes.len() + chunk.len()) as u64,
                limit: max_layer,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    let actual = digest(&bytes);
    if actual != layer.digest {
        return Err(OciError::Digest {
            reference: r.whole(),
            expected: layer.digest.clone(),
            actual,
        });
    }
    let annotations = manifest.annotations.clone().unwrap_or_default();
    let title = layer
        .annotations
        .as_ref()
        .and_then(|a| a.get("org.opencontainers.image.title"))
        .and_then(|t| t.strip_suffix(".wasm"));
    let name = name
        .or(title)
        .unwrap_or_else(|| r.repository().rsplit('/').next().unwrap_or("plugin"));
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(not_a_plugin(format!(
            "its name `{name}` is not a file name; give --name"
        )));
    }
    std::fs::create_dir_all(dir).map_err(|source| io(dir, source))?;
    let path = dir.join(format!("{name}.wasm"));
    let signature = annotations
        .get(SIGNATURE_ANNOTATION)
        .map(|b64| {
            BASE64
                .decode(b64)
                .map_err(|e| not_a_plugin(format!("its signature annotation is not base64: {e}")))
        })
        .transpose()?;
    let sig_path = signature.as_ref().map(|_| {
        let mut p = path.as_os_str().to_owned();
        p.push(".minisig");
        PathBuf::from(p)
    });
    // Written aside, then renamed: a reader sees the old files or the new,
    // never a part.
    let write = |target: &Path, contents: &[u8]| -> Result<PathBuf, OciError> {
        let mut partial = target.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        std::fs::write(&partial, contents).map_err(|source| io(&partial, source))?;
        Ok(partial)
    };
    let component_part = write(&path, &bytes)?;
    let signature_part = match (&sig_path, signature) {
        (Some(p), Some(sig)) => Some((write(p, &sig)?, p.clone())),
        _ => None,
    };
    std::fs::rename(&component_part, &path).map_err(|source| io(&path, source))?;
    match signature_part {
        Some((part, target)) => std::fs::rename(&part, &target).map_err(|source| io(&target, source))?,
        // A signature of an earlier pull does not belong to these bytes.
        None => {
            let mut old = path.as_os_str().to_owned();
            old.push(".minisig");
            let _ = std::fs::remove_file(PathBuf::from(old));
        }
    }
    Ok(Pulled {
        path,
        signature: sig_path,
        pinned: format!("{}/{}@{manifest_digest}", r.resolve_registry(), r.repository()),
        layer_digest: actual,
    })
}

fn io(path: &Path, source: std::io::Error) -> OciError {
    OciError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn registry_error(r: &Reference, message: String) -> OciError {
    OciError::Registry {
        reference: r.whole(),
        message,
    }
}

/// An `oci-client` error as a user reads it: a registry that is down, an
/// artifact that is not there, a digest that does not match.
fn classify(r: &Reference, e: OciDistributionError) -> OciError {
    let chain = {
        let mut s = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            source = inner.source();
        }
        s
    };
    match &e {
        OciDistributionError::RequestError(re) if re.is_connect() || re.is_timeout() => OciError::Unreachable {
            registry: r.resolve_registry().to_string(),
            message: chain,
        },
        OciDistributionError::ImageManifestNotFoundError(_) => OciError::NotFound {
            reference: r.whole(),
            message: chain,
        },
        OciDistributionError::ServerError { code: 404, .. } => OciError::NotFound {
            reference: r.whole(),
            message: chain,
        },
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown | oci_client::errors::OciErrorCode::NameUnknown
                )
            }) =>
        {
            OciError::NotFound {
                reference: r.whole(),
                message: chain,
            }
        }
        OciDistributionError::DigestError(d) => OciError::Digest {
            reference: r.whole(),
            expected: String::new(),
            actual: d.to_string(),
        },
        _ => OciError::Registry {
            reference: r.whole(),
            message: chain,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_take_an_oci_prefix_and_bad_ones_are_named() {
        let r = parse_reference("oci://127.0.0.1:5000/plugins/my-codec:1.0").unwrap();
        assert_eq!(
            (r.resolve_registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "plugins/my-codec", Some("1.0"))
        );
        let e = parse_reference("127.0.0.1:5000/Bad Name").unwrap_err().to_string();
        assert!(e.contains("is not an OCI reference"), "{e}");
        assert_eq!(
            digest(b"hi"),
            "sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
        );
    }
}
