//! Approved plugin sets: the lockfile (`barrage.lock`) a platform team
//! writes with `barrage plugin lock` and a locked run (`--locked`) enforces.
//!
//! Each entry approves one component by name and sha256, may require a
//! minisign signature by one of the lockfile's keys, and may cap the
//! plugin's memory and call deadline. A locked engine checks every plugin
//! it loads against the lockfile before compiling it: code that is not
//! approved is never compiled, let alone run.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::contract::World;
use crate::engine::sha256_hex;
use crate::registry::PluginSource;

/// The lockfile format's version.
pub const LOCKFILE_VERSION: u32 = 1;

/// The file name a locked run looks for when none is given.
pub const DEFAULT_LOCKFILE: &str = "barrage.lock";

/// The lockfile as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// [`LOCKFILE_VERSION`].
    pub version: u32,
    /// Every plugin not built into the binary must name a signer.
    #[serde(default)]
    pub require_signatures: bool,
    /// The keys plugins may be signed with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<TrustedKey>,
    /// The approved plugins.
    #[serde(default)]
    pub plugins: Vec<Approved>,
}

/// A minisign public key the lockfile trusts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// What entries call it (`signed_by`).
    pub name: String,
    /// The key, base64 as on the second line of a minisign `.pub` file.
    pub public_key: String,
    /// Not trusted after this instant: RFC 3339, or a date (the end of that
    /// day, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Never trusted again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// One approved plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approved {
    /// The name the plugin is picked by (the built-in's name, or the file's stem).
    pub name: String,
    /// `codec`, `dataset` or `reporter`.
    pub kind: String,
    /// The plugin's own version.
    pub version: String,
    /// The contract version it targets.
    pub contract: String,
    /// sha256 of the component, hex.
    pub sha256: String,
    /// Where it came from: `built-in`, a path, or an OCI reference.
    pub source: String,
    /// The key (by name) whose signature the component must carry, in
    /// `FILE.wasm.minisig` beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Most linear memory an instance may use, MiB (a ceiling on the run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Longest a call may run, ms of CPU time (a ceiling on the run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

/// Why a plugin, or the lockfile itself, was refused.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lockfile could not be read.
    #[error("lockfile {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The lockfile is not valid.
    #[error("lockfile {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, and where.
        message: String,
    },
    /// The plugin is not in the lockfile.
    #[error(
        "plugin '{name}' (sha256 {sha256}) is not in the lockfile {lockfile}: a locked run loads only the plugins \
         listed there; if it is approved, add it with `barrage plugin lock`"
    )]
    NotListed {
        /// The plugin.
        name: String,
        /// Its digest.
        sha256: String,
        /// The lockfile.
        lockfile: String,
    },
    /// The plugin is listed, with other bytes.
    #[error(
        "plugin '{name}' has sha256 {found}, but the lockfile {lockfile} approves it only as {expected}: the \
         component changed since it was locked; if the new one is approved, lock it again"
    )]
    Changed {
        /// The plugin.
        name: String,
        /// What the lockfile says.
        expected: String,
        /// What the bytes are.
        found: String,
        /// The lockfile.
        lockfile: String,
    },
    /// The plugin is listed as another kind.
    #[error("plugin '{name}' is a {found} plugin, but the lockfile {lockfile} approves it as a {expected}")]
    Kind {
        /// The plugin.
        name: String,
        /// What the lockfile says.
        expected: String,
        /// What it is.
        found: String,
        /// The lockfile.
        lockfile: String,
    },
    /// The signature is missing, does not verify, or its key is no longer trusted.
    #[error("plugin '{name}': {reason}")]
    Signature {
        /// The plugin.
        name: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// Caps a lockfile entry puts on a plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most linear memory per instance, bytes.
    pub memory: Option<usize>,
    /// Longest call.
    pub deadline: Option<std::time::Duration>,
}

impl Limits {
    /// `limit`, or this cap on it if lower.
    pub fn memory_under(&self, limit: usize) -> usize {
        self.memory.map_or(limit, |m| m.min(limit))
    }

    /// `deadline`, or this cap on it if shorter.
    pub fn deadline_under(&self, deadline: std::time::Duration) -> std::time::Duration {
        self.deadline.map_or(deadline, |d| d.min(deadline))
    }
}

/// A trusted key, decoded.
struct Key {
    trusted: TrustedKey,
    key: minisign_verify::PublicKey,
    id: String,
    /// `not_after`, Unix seconds.
    not_after: Option<i64>,
}

/// A lockfile read and checked, ready to approve plugins.
pub struct Lock {
    path: PathBuf,
    sha256: String,
    file: Lockfile,
    keys: Vec<Key>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// A minisign key's id, as `minisign` prints it: the 8 bytes after the
/// algorithm, little-endian, in hex.
pub fn key_id(public_key_b64: &str) -> Option<String> {
    let bin = base64::engine::general_purpose::STANDARD
        .decode(public_key_b64.trim())
        .ok()?;
    let id: [u8; 8] = bin.get(2..10)?.try_into().ok()?;
    Some(format!("{:016X}", u64::from_le_bytes(id)))
}

/// Where a component's signature is looked for: beside it, `.minisig` added.
pub fn signature_path(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// `not_after` as Unix seconds: RFC 3339, or a date meaning the end of that
/// day (UTC).
fn parse_not_after(s: &str) -> Result<i64, String> {
    let instant = if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        format!("{s}T23:59:59Z")
    } else {
        s.to_string()
    };
    barrage_core::clock::parse_instant(&instant)
        .map(|ms| (ms / 1000.0).floor() as i64)
        .map_err(|e| format!("not_after `{s}`: {e} (or give a date, YYYY-MM-DD)"))
}

impl Lock {
    /// Read and check the lockfile at `path`.
    pub fn read(path: &Path) -> Result<Lock, LockError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Read {
            path: shown.clone(),
            source,
        })?;
        Lock::parse(path, &text)
    }

    /// Check a lockfile's `text`, read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Lock, LockError> {
        let invalid = |message: String| LockError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let file: Lockfile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.version != LOCKFILE_VERSION {
            return Err(invalid(format!(
                "version {} is not one this Barrage reads (it reads {LOCKFILE_VERSION})",
                file.version
            )));
        }
        let mut keys = Vec::new();
        for (i, k) in file.keys.iter().enumerate() {
            let at = format!("keys[{i}] ({})", k.name);
            let key = minisign_verify::PublicKey::from_base64(k.public_key.trim())
                .map_err(|e| invalid(format!("{at}.public_key is not a minisign public key: {e}")))?;
            let not_after = k
                .not_after
                .as_deref()
                .map(parse_not_after)
                .transpose()
                .map_err(|e| invalid(format!("{at}: {e}")))?;
            if keys.iter().any(|other: &Key| other.trusted.name == k.name) {
                return Err(invalid(format!("{at}: the name is given to two keys")));
            }
            keys.push(Key {
                trusted: k.clone(),
                key,
                id: key_id(&k.public_key).unwrap_or_default(),
                not_after,
            });
        }
        for (i, p) in file.plugins.iter().enumerate() {
            let at = format!("plugins[{i}] ({})", p.name);
            if World::from_name(&p.kind).is_none() {
                return Err(invalid(format!(
                    "{at}.kind `{}`: use codec, dataset or reporter",
                    p.kind
                )));
            }
            if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!("{at}.sha256 is not a sha256 in hex")));
            }
            match (&p.signed_by, p.source == "built-in") {
                (Some(_), true) => {
                    return Err(invalid(format!(
                        "{at}: a built-in plugin is part of the barrage binary and carries no signature of its own; \
                         leave signed_by out"
                    )));
                }
                (Some(key), false) if !keys.iter().any(|k| k.trusted.name == *key) => {
                    return Err(invalid(format!("{at}.signed_by `{key}` names no key of this lockfile")));
                }
                (None, false) if file.require_signatures => {
                    return Err(invalid(format!(
                        "{at}: require_signatures is set, and this plugin names no signer (signed_by)"
                    )));
                }
                _ => {}
            }
            if p.memory_mib == Some(0) || p.deadline_ms == Some(0) {
                return Err(invalid(format!(
                    "{at}: memory_mib and deadline_ms must be greater than 0"
                )));
            }
        }
        Ok(Lock {
            path: path.to_path_buf(),
            sha256: sha256_hex(text.as_bytes()),
            file,
            keys,
        })
    }

    /// The lockfile's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// sha256 of the lockfile's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// What it says.
    pub fn file(&self) -> &Lockfile {
        &self.file
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// The entry approving the plugin `name` from `source`, whose bytes are
    /// `bytes` with sha256 `digest` (lowercase hex): listed under that name
    /// with that digest, and signed as the entry asks. `now` is Unix seconds
    /// (a key past `not_after` is refused).
    pub fn approve(
        &self,
        name: &str,
        source: &PluginSource,
        (bytes, digest): (&[u8], &str),
        now: i64,
    ) -> Result<&Approved, LockError> {
        let found = digest.to_string();
        let listed: Vec<&Approved> = self.file.plugins.iter().filter(|p| p.name == name).collect();
        let Some(entry) = listed.iter().find(|p| p.sha256.eq_ignore_ascii_case(&found)) else {
            return Err(match listed.is_empty() {
                true => LockError::NotListed {
                    name: name.to_string(),
                    sha256: found,
                    lockfile: self.shown(),
                },
                false => LockError::Changed {
                    name: name.to_string(),
                    expected: listed
                        .iter()
                        .map(|p| p.sha256.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    found,
                    lockfile: self.shown(),
                },
            });
        };
        if let Some(signer) = &entry.signed_by {
            self.verify(name, signer, source, bytes, now)?;
        }
        Ok(entry)
    }

    /// Refuse `entry` if the component is not of the kind it approves.
    pub fn check_kind(&self, entry: &Approved, world: World) -> Result<(), LockError> {
        if entry.kind == world.name() {
            return Ok(());
        }
        Err(LockError::Kind {
            name: entry.name.clone(),
            expected: entry.kind.clone(),
            found: world.name().to_string(),
            lockfile: self.shown(),
        })
    }

    fn verify(&self, name: &str, signer: &str, source: &PluginSource, bytes: &[u8], now: i64) -> Result<(), LockError> {
        let refuse = |reason: String| LockError::Signature {
            name: name.to_string(),
            reason,
        };
        // `Lock::parse` made sure the signer is one of the keys.
        let Some(key) = self.keys.iter().find(|k| k.trusted.name == signer) else {
            return Err(refuse(format!(
                "its signer `{signer}` is not a key of {}",
                self.shown()
            )));
        };
        let described = format!("key '{signer}' ({})", key.id);
        if key.trusted.revoked {
            return Err(refuse(format!(
                "it must be signed by {described}, which {} marks revoked: nothing it signed is trusted",
                self.shown()
            )));
        }
        if let Some(end) = key.not_after
            && now > end
        {
            return Err(refuse(format!(
                "it must be signed by {described}, which {} trusts only until {}: the key has expired; \
                 sign with a current key and lock again",
                self.shown(),
                key.trusted.not_after.as_deref().unwrap_or_default()
            )));
        }
        let PluginSource::File(component) = source else {
            return Err(refuse("a built-in plugin carries no signature".into()));
        };
        let sig_path = signature_path(component);
        let text = std::fs::read_to_string(&sig_path).map_err(|e| {
            refuse(format!(
                "it must be signed by {described} ({}), but its signature {} could not be read: {e}",
                self.shown(),
                sig_path.display()
            ))
        })?;
        let signature = minisign_verify::Signature::decode(&text)
            .map_err(|e| refuse(format!("{} is not a minisign signature: {e}", sig_path.display())))?;
        key.key.verify(bytes, &signature, false).map_err(|e| {
            let why = match e {
                minisign_verify::Error::UnexpectedKeyId => {
                    format!("{} was made with another key than {described}", sig_path.display())
                }
                minisign_verify::Error::InvalidSignature => format!(
                    "{} does not verify with {described}: the component or the signature was altered",
                    sig_path.display()
                ),
                other => format!("{} does not verify with {described}: {other}", sig_path.display()),
            };
            refuse(why)
        })
    }
}

/// Which of `keys` signed the component at `path`, by its `.minisig`
/// beside it: none when it has no signature; an error saying so when the
/// signature verifies with none of them (or a key cannot be read).
pub fn signer(keys: &[TrustedKey], path: &Path, bytes: &[u8]) -> Result<Option<String>, String> {
    let sig_path = signature_path(path);
    let text = match std::fs::read_to_string(&sig_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", sig_path.display())),
    };
    let signature = minisign_verify::Signature::decode(&text)
        .map_err(|e| format!("{} is not a minisign signature: {e}", sig_path.display()))?;
    for k in keys {
        let key = minisign_verify::PublicKey::from_base64(k.public_key.trim())
            .map_err(|e| format!("key '{}' is not a minisign public key: {e}", k.name))?;
        if key.verify(bytes, &signature, false).is_ok() {
            return Ok(Some(k.name.clone()));
        }
    }
    Err(format!(
        "{} verifies with none of the keys given ({})",
        sig_path.display(),
        keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
    ))
}

/// The public key of a minisign `.pub` file: its base64 line.
pub fn read_public_key(text: &str) -> Option<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))?;
    minisign_verify::PublicKey::from_base64(line).ok()?;
    Some(line.to_string())
}

impl Approved {
    /// The caps this entry puts on its plugin.
    pub fn limits(&self) -> Limits {
        Limits {
            memory: self.memory_mib.map(|m| (m as usize) << 20),
            deadline: self.deadline_ms.map(std::time::Duration::from_millis),
        }
    }
}

/// The lockfile's text: a header saying what it is, then the TOML.
pub fn render(file: &Lockfile) -> String {
    let body = toml::to_string(file).unwrap_or_default();
    format!(
        "# Barrage's approved plugins: a run with --locked (or `locked: true`) loads only these,\n\
         # each with the sha256 given, signed by the key it names, within its limits.\n\
         # Written by `barrage plugin lock`; keys, signers and limits may be edited by hand.\n\n{body}"
    )
}

/// The clock a lock judges keys by: Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    // Made with Debian's minisign 0.11 (`minisign -G -W`, then
    // `minisign -S -W -t trusted -m f.wasm` over the six bytes "hello\n").
    const KEY: &str = "RWTTbnzCoU/p7QzK+kryNAes6QU+vZ2r2ABQMQs8Ts7BSPJb9Sh4NprT";
    const OTHER_KEY: &str = "RWQGv922wxxcsY775KdVsXSCbhDBLNd+CN7zWtVG9MrlNfzRzBRtxXuI";
    const SIGNATURE: &str = "untrusted comment: signature from minisign secret key\n\
        RUTTbnzCoU/p7RZOXfbo5kgil2ga/uA+8gqNShyEYT0hFw3atTJ7flNVo1l799A3SgczoeQZcBscf+sDNroBtVDHQRdQuirzxwU=\n\
        trusted comment: trusted\n\
        jvk1Zq48Pf8OeWWjeW3Yyh8wUFzaWC19/qIx6M8HihAY+w/FO4GPqbISloxUeV93HfmCgw6brTEm0OxGUU3GBQ==\n";
    const BYTES: &[u8] = b"hello\n";

    fn lockfile(keys: &str, plugins: &str) -> String {
        format!("version = 1\n{keys}\n{plugins}")
    }

    fn entry(name: &str, sha: &str, extra: &str) -> String {
        format!(
            "[[plugins]]\nname = \"{name}\"\nkind = \"codec\"\nversion = \"0.1.0\"\ncontract = \"0.1.0\"\n\
             sha256 = \"{sha}\"\nsource = \"plugins/{name}.wasm\"\n{extra}\n"
        )
    }

    fn key(name: &str, public: &str, extra: &str) -> String {
        format!("[[keys]]\nname = \"{name}\"\npublic_key = \"{public}\"\n{extra}\n")
    }

    fn parse(text: &str) -> Result<Lock, LockError> {
        Lock::parse(Path::new("barrage.lock"), text)
    }

    fn invalid(text: &str) -> String {
        match parse(text) {
            Err(LockError::Invalid { message, .. }) => message,
            other => panic!("{other:?}"),
        }
    }

    /// A component at `dir/name.wasm` holding `BYTES`, signed if asked.
    fn component(dir: &Path, name: &str, signature: Option<&str>) -> PluginSource {
        let path = dir.join(format!("{name}.wasm"));
        std::fs::write(&path, BYTES).unwrap();
        if let Some(sig) = signature {
            std::fs::write(signature_path(&path), sig).unwrap();
        }
        PluginSource::File(Arc::from(path.as_path()))
    }

    #[test]
    fn key_ids_are_minisigns() {
        assert_eq!(key_id(KEY).as_deref(), Some("EDE94FA1C27C6ED3"));
        assert_eq!(key_id(OTHER_KEY).as_deref(), Some("B15C1CC3B6DDBF06"));
        assert_eq!(key_id("not base64"), None);
    }

    #[test]
    fn bad_lockfiles_are_refused_with_what_is_wrong() {
        let sha = sha256_hex(BYTES);
        let cases = [
            ("version = 2\n".to_string(), "version 2 is not one this Barrage reads"),
            ("version = 1\nplugin = []\n".into(), "unknown field `plugin`"),
            (
                lockfile(&key("k", "RWQ", ""), ""),
                "keys[0] (k).public_key is not a minisign public key",
            ),
            (
                lockfile(&key("k", KEY, "not_after = \"soon\""), ""),
                "keys[0] (k): not_after `soon`",
            ),
            (
                lockfile(&(key("k", KEY, "") + &key("k", OTHER_KEY, "")), ""),
                "keys[1] (k): the name is given to two keys",
            ),
            (
                lockfile("", &entry("a", "abc", "")),
                "plugins[0] (a).sha256 is not a sha256",
            ),
            (
                lockfile("", &entry("a", &sha, "signed_by = \"nobody\"")),
                "plugins[0] (a).signed_by `nobody` names no key",
            ),
            (
                lockfile(
                    "",
                    &entry("a", &sha, "").replace("kind = \"codec\"", "kind = \"model\""),
                ),
                "plugins[0] (a).kind `model`",
            ),
            (
                lockfile(&key("k", KEY, ""), &entry("a", &sha, "signed_by = \"k\""))
                    .replace("source = \"plugins/a.wasm\"", "source = \"built-in\""),
                "a built-in plugin is part of the barrage binary",
            ),
            (
                format!("version = 1\nrequire_signatures = true\n{}", entry("a", &sha, "")),
                "require_signatures is set, and this plugin names no signer",
            ),
            (
                lockfile("", &entry("a", &sha, "memory_mib = 0")),
                "must be greater than 0",
            ),
        ];
        for (text, why) in cases {
            let message = invalid(&text);
            assert!(message.contains(why), "{why}: {message}");
        }
        // TOML's own errors say where.
        assert!(invalid("version = 1\n[[plugins]\n").contains("line 2"));
    }

    #[test]
    fn a_plugin_is_approved_by_name_and_digest_only() {
        let dir = tempfile::tempdir().unwrap();
        let sha = sha256_hex(BYTES);
        let lock = parse(&lockfile("", &entry("a", &sha, "memory_mib = 64\ndeadline_ms = 20"))).unwrap();
        let a = component(dir.path(), "a", None);
        let approved = lock.approve("a", &a, (BYTES, &sha256_hex(BYTES)), 0).unwrap();
        assert_eq!(
            approved.limits(),
            Limits {
                memory: Some(64 << 20),
                deadline: Some(std::time::Duration::from_millis(20))
            }
        );
        assert_eq!(approved.limits().memory_under(256 << 20), 64 << 20);
        assert_eq!(
            approved.limits().memory_under(32 << 20),
            32 << 20,
            "a ceiling, never a raise"
        );
        let b = component(dir.path(), "b", None);
        let e = lock
            .approve("b", &b, (BYTES, &sha256_hex(BYTES)), 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("plugin 'b' (sha256 ") && e.contains("is not in the lockfile barrage.lock"),
            "{e}"
        );
        let e = lock
            .approve("a", &a, (b"changed\n", &sha256_hex(b"changed\n")), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("approves it only as {sha}")), "{e}");
        assert!(matches!(
            lock.check_kind(approved, World::Reporter),
            Err(LockError::Kind { .. })
        ));
        assert_eq!(lock.sha256().len(), 64);
    }

    #[test]
    fn signatures_are_checked_with_the_named_key_while_it_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let sha = sha256_hex(BYTES);
        let signed = entry("a", &sha, "signed_by = \"team\"");
        let lock_with = |key_extra: &str| {
            parse(&lockfile(
                &(key("team", KEY, key_extra) + &key("other", OTHER_KEY, "")),
                &signed,
            ))
            .unwrap()
        };
        let lock = lock_with("not_after = \"2030-01-01\"");
        let a = component(dir.path(), "a", Some(SIGNATURE));
        lock.approve("a", &a, (BYTES, &sha256_hex(BYTES)), 1_800_000_000)
            .unwrap();
        let reason = |lock: &Lock, source: &PluginSource, bytes: &[u8], now: i64| match lock.approve(
            "a",
            source,
            (bytes, &sha256_hex(bytes)),
            now,
        ) {
            Err(LockError::Signature { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        // The key's day is over.
        let r = reason(&lock, &a, BYTES, 1_900_000_000);
        assert!(r.contains("trusts only until 2030-01-01: the key has expired"), "{r}");
        // Revoked.
        let r = reason(&lock_with("revoked = true"), &a, BYTES, 0);
        assert!(r.contains("marks revoked"), "{r}");
        // The component changed after signing (and was locked as changed).
        let tampered = b"hellO\n";
        let lock_tampered = parse(&lockfile(
            &key("team", KEY, ""),
            &entry("a", &sha256_hex(tampered), "signed_by = \"team\""),
        ))
        .unwrap();
        let r = reason(&lock_tampered, &a, tampered, 0);
        assert!(r.contains("does not verify with key 'team' (EDE94FA1C27C6ED3)"), "{r}");
        // Signed with another key than the one named.
        let lock_other = parse(&lockfile(
            &key("other", OTHER_KEY, ""),
            &entry("a", &sha, "signed_by = \"other\""),
        ))
        .unwrap();
        let r = reason(&lock_other, &a, BYTES, 0);
        assert!(r.contains("was made with another key than key 'other'"), "{r}");
        // No signature beside it.
        let unsigned = component(dir.path(), "unsigned", None);
        let lock = parse(&lockfile(
            &key("team", KEY, ""),
            &entry("unsigned", &sha, "signed_by = \"team\""),
        ))
        .unwrap();
        let e = lock
            .approve("unsigned", &unsigned, (BYTES, &sha256_hex(BYTES)), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsigned.wasm.minisig could not be read"), "{e}");
    }

    #[test]
    fn a_rendered_lockfile_reads_back() {
        let file = Lockfile {
            version: LOCKFILE_VERSION,
            require_signatures: false,
            keys: vec![TrustedKey {
                name: "team".into(),
                public_key: KEY.into(),
                not_after: Some("2030-01-01".into()),
                revoked: false,
            }],
            plugins: vec![Approved {
                name: "a".into(),
                kind: "codec".into(),
                version: "0.1.0".into(),
                contract: "0.1.0".into(),
                sha256: sha256_hex(BYTES),
                source: "plugins/a.wasm".into(),
                signed_by: Some("team".into()),
                memory_mib: None,
                deadline_ms: Some(20),
            }],
        };
        let text = render(&file);
        assert!(text.starts_with("# Barrage's approved plugins"));
        assert_eq!(parse(&text).unwrap().file(), &file);
    }
}
