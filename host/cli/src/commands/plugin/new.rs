//! `barrage plugin new`: a plugin project in Rust, Python or JavaScript
//! that builds and passes its own tests as generated. The templates live in
//! `host/cli/templates/`; the SDK, the guest libraries and the contract are
//! vendored into the project from this repository, so a project builds
//! against exactly the contract this Barrage speaks, with nothing to fetch
//! but the language's own toolchain.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The plugin's name: lowercase letters, digits and `-`, starting with a letter.
    name: String,
    /// The language of the project.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// The plugin's world.
    #[arg(long, value_enum, default_value = "codec")]
    kind: Kind,
    /// Where the project goes (default: ./NAME). Must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum Kind {
    Codec,
    Dataset,
    Reporter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Codec => "codec",
            Kind::Dataset => "dataset",
            Kind::Reporter => "reporter",
        }
    }
}

/// The guest toolchains the templates pin (tests/setup installs the same).
pub(crate) const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
pub(crate) const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
/// wit-bindgen as the workspace has it: the vendored SDK's one dependency
/// that generates code.
const WIT_BINDGEN_VERSION: &str = "0.61";

/// A file of this repository, embedded at build time.
macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../", $path)))),*]
    };
}

type Files = &'static [(&'static str, &'static str)];

const WIT: Files = embed!(
    "wit/codec.wit",
    "wit/dataset.wit",
    "wit/host.wit",
    "wit/reporter.wit",
    "wit/types.wit",
    "wit/worlds.wit",
);

const RUST_SDK: Files = embed!(
    "sdk/src/codec.rs",
    "sdk/src/dataset.rs",
    "sdk/src/host.rs",
    "sdk/src/lib.rs",
    "sdk/src/reporter.rs",
    "sdk/src/testing.rs",
);

const PYTHON_LIB: Files = embed!(
    "sdk/python/barrage_plugin/__init__.py",
    "sdk/python/barrage_plugin/_export.py",
    "sdk/python/barrage_plugin/_native.py",
    "sdk/python/barrage_plugin/codec.py",
    "sdk/python/barrage_plugin/dataset.py",
    "sdk/python/barrage_plugin/host.py",
    "sdk/python/barrage_plugin/reporter.py",
    "sdk/python/barrage_plugin/testing.py",
    "sdk/python/barrage_plugin/types.py",
    "sdk/python/dataset_source.py",
    "sdk/python/request_codec.py",
);

const JS_LIB: Files = embed!(
    "sdk/js/barrage-plugin/common.js",
    "sdk/js/barrage-plugin/dataset.js",
    "sdk/js/barrage-plugin/files.js",
    "sdk/js/barrage-plugin/hooks.js",
    "sdk/js/barrage-plugin/host.js",
    "sdk/js/barrage-plugin/index.js",
    "sdk/js/barrage-plugin/native/config.js",
    "sdk/js/barrage-plugin/native/files.js",
    "sdk/js/barrage-plugin/native/log.js",
    "sdk/js/barrage-plugin/native/random.js",
    "sdk/js/barrage-plugin/native/records.js",
    "sdk/js/barrage-plugin/native/secrets.js",
    "sdk/js/barrage-plugin/native/state.js",
    "sdk/js/barrage-plugin/native/tokenizer.js",
    "sdk/js/barrage-plugin/records.js",
    "sdk/js/barrage-plugin/register.js",
    "sdk/js/barrage-plugin/reporter.js",
    "sdk/js/barrage-plugin/testing.js",
);

/// A template: (path in the project, contents with `{{placeholders}}`).
fn template(lang: Lang, kind: Kind) -> Vec<(&'static str, &'static str)> {
    macro_rules! t {
        ($path:literal) => {
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $path))
        };
    }
    let python = |app, test| vec![("app.py", app), ("test_app.py", test)];
    let js = |plugin, test| vec![("plugin.js", plugin), ("plugin.test.js", test)];
    let mut files = match (lang, kind) {
        (Lang::Rust, Kind::Codec) => vec![("src/lib.rs", t!("rust/codec.rs"))],
        (Lang::Rust, Kind::Dataset) => vec![("src/lib.rs", t!("rust/dataset.rs"))],
        (Lang::Rust, Kind::Reporter) => vec![("src/lib.rs", t!("rust/reporter.rs"))],
        (Lang::Python, Kind::Codec) => python(t!("python/codec.py"), t!("python/test_codec.py")),
        (Lang::Python, Kind::Dataset) => python(t!("python/dataset.py"), t!("python/test_dataset.py")),
        (Lang::Python, Kind::Reporter) => python(t!("python/reporter.py"), t!("python/test_reporter.py")),
        (Lang::Js, Kind::Codec) => js(t!("js/codec.js"), t!("js/codec.test.js")),
        (Lang::Js, Kind::Dataset) => js(t!("js/dataset.js"), t!("js/dataset.test.js")),
        (Lang::Js, Kind::Reporter) => js(t!("js/reporter.js"), t!("js/reporter.test.js")),
    };
    files.extend(match lang {
        Lang::Rust => vec![
            ("Cargo.toml", t!("rust/Cargo.toml")),
            ("README.md", t!("rust/README.md")),
            (".gitignore", t!("rust/gitignore")),
            ("vendor/barrage-sdk/Cargo.toml", t!("rust/sdk-Cargo.toml")),
        ],
        Lang::Python => vec![
            ("build.sh", t!("python/build.sh")),
            ("requirements-dev.txt", t!("python/requirements-dev.txt")),
            ("README.md", t!("python/README.md")),
            (".gitignore", t!("python/gitignore")),
        ],
        Lang::Js => vec![
            ("package.json", t!("js/package.json")),
            ("README.md", t!("js/README.md")),
            (".gitignore", t!("js/gitignore")),
        ],
    });
    if kind == Kind::Dataset {
        files.push(("prompts.txt", t!("shared/prompts.txt")));
    }
    files
}

/// The vendored files: (path in the project, contents, verbatim).
fn vendored(lang: Lang) -> Vec<(String, &'static str)> {
    let under = |files: Files, from: &str, to: &str| -> Vec<(String, &'static str)> {
        files
            .iter()
            .map(|(path, text)| {
                (
                    format!("{to}{}", path.strip_prefix(from).expect("under its folder")),
                    *text,
                )
            })
            .collect()
    };
    match lang {
        Lang::Rust => [
            under(RUST_SDK, "sdk/", "vendor/barrage-sdk/"),
            under(WIT, "", "vendor/barrage-sdk/"),
        ]
        .concat(),
        Lang::Python => [under(PYTHON_LIB, "sdk/python/", "lib/"), under(WIT, "", "")].concat(),
        Lang::Js => [under(JS_LIB, "sdk/js/", ""), under(WIT, "", "")].concat(),
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "`{name}` is not a plugin name: use lowercase letters, digits and `-`, starting with a letter \
             (at most 64 characters), e.g. `my-server`"
        );
    }
    Ok(())
}

fn fill(text: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(text.to_string(), |text, (key, value)| {
        text.replace(&format!("{{{{{key}}}}}"), value)
    })
}

pub(crate) fn new(args: NewArgs) -> Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args.path.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!(
            "{} already exists and is not empty: choose another NAME or --path",
            dir.display()
        );
    }
    let module = args.name.replace('-', "_");
    let kind = args.kind.as_str();
    let test_args = if args.kind == Kind::Dataset {
        " --dataset-file prompts.txt"
    } else {
        ""
    };
    let values = [
        ("name", args.name.as_str()),
        ("module", module.as_str()),
        ("kind", kind),
        // The SDK is versioned with the workspace.
        ("sdk_version", env!("CARGO_PKG_VERSION")),
        ("wit_bindgen_version", WIT_BINDGEN_VERSION),
        ("componentize_py_version", COMPONENTIZE_PY_VERSION),
        ("componentize_js_version", COMPONENTIZE_JS_VERSION),
        ("test_args", test_args),
    ];
    let mut written = 0;
    for (path, text) in template(args.lang, args.kind) {
        write(&dir, path, &fill(text, &values))?;
        written += 1;
    }
    for (path, text) in vendored(args.lang) {
        write(&dir, &path, text)?;
        written += 1;
    }
    #[cfg(unix)]
    if matches!(args.lang, Lang::Python) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("build.sh"), std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", dir.join("build.sh").display()))?;
    }
    println!("created {kind} `{}` in {} ({written} files)", args.name, dir.display());
    let d = dir.display();
    let test = format!("barrage plugin test {module}.wasm{test_args}");
    match args.lang {
        Lang::Rust => println!(
            "next:\n  cd {d}\n  cargo test\n  cargo build --release --target wasm32-wasip2\n  \
             barrage plugin test target/wasm32-wasip2/release/{module}.wasm{test_args}"
        ),
        Lang::Python => println!(
            "next:\n  cd {d}\n  python3 -m unittest\n  pip install -r requirements-dev.txt\n  ./build.sh\n  {test}"
        ),
        // A garbage collector's pauses are charged to a call's deadline (see the README).
        Lang::Js => {
            println!("next:\n  cd {d}\n  npm install\n  npm test\n  npm run build\n  {test} --plugin-deadline-ms 200")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write(dir: &Path, path: &str, text: &str) -> Result<()> {
    let path = dir.join(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
    }

    /// Every file of these folders is embedded: a file added to a guest
    /// library or the contract reaches the projects `plugin new` makes.
    #[test]
    fn every_file_of_the_sdks_and_the_contract_is_vendored() {
        for (files, folder, ext) in [
            (WIT, "wit", "wit"),
            (RUST_SDK, "sdk/src", "rs"),
            (PYTHON_LIB, "sdk/python", "py"),
            (JS_LIB, "sdk/js/barrage-plugin", "js"),
        ] {
            let mut on_disk = Vec::new();
            let mut stack = vec![repo(folder)];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).unwrap() {
                    let path = entry.unwrap().path();
                    let rel = path
                        .strip_prefix(repo(""))
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    // Neither the Python library's own tests nor the frozen
                    // contracts are vendored.
                    let skipped = rel.ends_with("/tests") || rel.ends_with("__pycache__") || rel == "wit/frozen";
                    if path.is_dir() && !skipped {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == ext) {
                        on_disk.push(rel);
                    }
                }
            }
            on_disk.sort();
            let embedded: Vec<String> = files.iter().map(|(p, _)| p.to_string()).collect();
            assert_eq!(embedded, on_disk, "{folder}");
        }
    }

    /// What the templates pin is what the test suite installs and the workspace builds with.
    #[test]
    fn the_pinned_versions_are_the_ones_in_use() {
        let setup = std::fs::read_to_string(repo("tests/setup")).unwrap();
        assert!(setup.contains(&format!("componentize-py=={COMPONENTIZE_PY_VERSION}")));
        assert!(setup.contains(&format!("@bytecodealliance/componentize-js@{COMPONENTIZE_JS_VERSION}")));
        let workspace = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
        assert!(workspace.contains(&format!("wit-bindgen = {{ version = \"{WIT_BINDGEN_VERSION}\"")));
    }

    #[test]
    fn a_name_is_checked() {
        assert!(check_name("my-server2").is_ok());
        for bad in ["", "My", "9lives", "a_b", "trailing-", "x/y"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
