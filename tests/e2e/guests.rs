//! Plugins in Python and JavaScript, built by the toolchains their authors
//! use (componentize-py from PyPI, componentize-js from npm; tests/setup
//! installs both): projects made by `barrage plugin new` in each language
//! pass their own tests and the conformance kit as generated, and give the
//! same records as the Rust one run for run; the Python and JavaScript ports
//! of the Ollama example decode exactly as the Rust one does.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{barrage, cargo, fixture, run, test_plugin, workspace};

#[derive(Clone, Copy, Debug)]
enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    /// What runs and the kit are given for this language's plugins: a
    /// JavaScript plugin's garbage collector can pause a call for tens of
    /// ms, which its CPU deadline is charged for (docs/plugins.md).
    fn limits(self) -> &'static [&'static str] {
        match self {
            Lang::Js => &["--plugin-deadline-ms", "200"],
            Lang::Rust | Lang::Python => &[],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

const LANGS: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];

/// A directory with `componentize-py` in it, for the scripts that call it
/// by name (pip may have put its own anywhere, or off PATH).
fn tool_bin(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("componentize-py");
    std::fs::write(
        &script,
        "#!/bin/sh\nexec python3 -c 'import sys; from componentize_py import script; sys.argv[0] = \"componentize-py\"; \
         sys.exit(script())' \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn path_with(bin: &Path) -> String {
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// `cmd`, which must succeed; its stdout.
fn ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `barrage plugin new` a project of `kind` in `lang` under `dir`, run its
/// own tests, build it as its README says: the .wasm file.
fn scaffold(dir: &Path, lang: Lang, kind: &str) -> PathBuf {
    let name = format!("my-{}-{kind}", lang.name());
    let module = name.replace('-', "_");
    let project = dir.join(&name);
    let stdout = ok(
        barrage()
            .current_dir(dir)
            .args(["plugin", "new", &name, "--lang", lang.name(), "--kind", kind]),
        "plugin new",
    );
    assert!(stdout.contains(&format!("created {kind} `{name}`")), "{stdout}");
    let bin = tool_bin(dir);
    match lang {
        Lang::Rust => {
            // One target directory for every Rust project a test makes: their
            // dependencies build once.
            let target = workspace().join("target/scaffolds");
            ok(
                cargo()
                    .current_dir(&project)
                    .env("CARGO_TARGET_DIR", &target)
                    .args(["test", "--quiet"]),
                "cargo test",
            );
            ok(
                cargo().current_dir(&project).env("CARGO_TARGET_DIR", &target).args([
                    "build",
                    "--quiet",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                ]),
                "cargo build",
            );
            target.join(format!("wasm32-wasip2/release/{module}.wasm"))
        }
        Lang::Python => {
            ok(
                Command::new("python3").current_dir(&project).args(["-m", "unittest"]),
                "python3 -m unittest",
            );
            ok(
                Command::new("./build.sh")
                    .current_dir(&project)
                    .env("PATH", path_with(&bin)),
                "build.sh",
            );
            project.join(format!("{module}.wasm"))
        }
        Lang::Js => {
            // What `npm install` would fetch, installed once by tests/setup.
            std::os::unix::fs::symlink(
                workspace().join("target/test-tools/js/node_modules"),
                project.join("node_modules"),
            )
            .unwrap();
            ok(
                Command::new("npm").current_dir(&project).args(["test", "--silent"]),
                "npm test",
            );
            ok(
                Command::new("npm")
                    .current_dir(&project)
                    .args(["run", "build", "--silent"]),
                "npm run build",
            );
            project.join(format!("{module}.wasm"))
        }
    }
}

/// `barrage plugin test ARGS`, which must pass: the table.
fn conformance(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(barrage().current_dir(dir).args(["plugin", "test"]).args(args));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    stdout
}

/// A run's records without what depends on timing: sorted by id, each
/// list (frame times) as its length.
fn records(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    let mut records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| {
            let record: serde_json::Map<String, serde_json::Value> = serde_json::from_str(l).unwrap();
            record
                .into_iter()
                .filter(|(k, _)| !k.ends_with("_ms") && k != "connection_id")
                .map(|(k, v)| match v {
                    serde_json::Value::Array(a) => (k, a.len().into()),
                    v => (k, v),
                })
                .collect()
        })
        .collect();
    records.sort_by_key(|r| r["id"].as_u64());
    records
}

#[test]
fn codecs_made_by_plugin_new_pass_the_kit_and_give_the_same_records_in_three_languages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let codecs: Vec<PathBuf> = LANGS.iter().map(|&lang| scaffold(d, lang, "codec")).collect();
    for (lang, codec) in LANGS.iter().zip(&codecs) {
        let table = conformance(d, &[&[codec.to_str().unwrap()], lang.limits()].concat());
        let random = table
            .lines()
            .find(|l| l.starts_with("random frames"))
            .unwrap_or_default();
        assert!(random.contains(" pass "), "{table}");
    }
    // Golden transcripts recorded from the simulator with the Python codec
    // hold the Rust and JavaScript ones to the same events, however the
    // bytes are split.
    ok(
        barrage()
            .current_dir(d)
            .args(["plugin", "record", "--requests", "2", "--output", "golden", "--codec"])
            .arg(&codecs[1]),
        "plugin record",
    );
    for (lang, codec) in [(Lang::Rust, &codecs[0]), (Lang::Js, &codecs[2])] {
        let table = conformance(
            d,
            &[&[codec.to_str().unwrap(), "--transcript", "golden"], lang.limits()].concat(),
        );
        assert!(table.contains("every split of the stream"), "{table}");
    }
    // The same run, seed and simulator: the same records, field for field,
    // the request bytes included.
    let mut seen = Vec::new();
    for (lang, codec) in LANGS.iter().zip(&codecs) {
        let out = d.join(format!("run-{}", lang.name()));
        let (code, stdout, stderr) = run(barrage()
            .args([
                "run",
                "--quiet",
                "--requests",
                "24",
                "--rate",
                "200",
                "--seed",
                "11",
                "--max-tokens",
                "12",
            ])
            .args(lang.limits())
            .arg("--codec")
            .arg(codec)
            .arg("--output")
            .arg(&out));
        assert_eq!(code, 0, "{lang:?}: {stdout}\n{stderr}");
        let records = records(&out);
        assert_eq!(records.len(), 24);
        assert!(
            records.iter().all(|r| r["status"] == "ok" && r["output_tokens"] == 12),
            "{records:?}"
        );
        seen.push(records);
    }
    assert_eq!(seen[0], seen[1], "Rust and Python");
    assert_eq!(seen[0], seen[2], "Rust and JavaScript");
}

#[test]
fn datasets_and_reporters_made_by_plugin_new_work_alike_in_three_languages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prompts = d.join("prompts.txt");
    let mut text = String::from("# a prompt per line\n");
    for i in 0..30 {
        text += &format!("prompt number {i} {}\n", "and more ".repeat(i % 7));
    }
    text += &"x".repeat(200);
    std::fs::write(&prompts, text).unwrap();
    let datasets: Vec<PathBuf> = LANGS.iter().map(|&lang| scaffold(d, lang, "dataset")).collect();
    let reporters: Vec<PathBuf> = LANGS.iter().map(|&lang| scaffold(d, lang, "reporter")).collect();
    for (lang, dataset) in LANGS.iter().zip(&datasets) {
        let table = conformance(
            d,
            &[
                &[dataset.to_str().unwrap(), "--dataset-file", "prompts.txt"],
                lang.limits(),
            ]
            .concat(),
        );
        let located = table
            .lines()
            .find(|l| l.starts_with("bad input located"))
            .unwrap_or_default();
        assert!(located.contains(" pass "), "{table}");
    }
    for (lang, reporter) in LANGS.iter().zip(&reporters) {
        conformance(d, &[&[reporter.to_str().unwrap()], lang.limits()].concat());
    }
    // Each dataset shuffled by the same seed sends the same prompts in the
    // same order; every reporter renders the run alike.
    let mut seen = Vec::new();
    for (lang, dataset) in LANGS.iter().zip(&datasets) {
        let out = d.join(format!("run-{}", lang.name()));
        let mut cmd = barrage();
        cmd.current_dir(d)
            .args(["run", "--quiet", "--requests", "30", "--rate", "300", "--seed", "5"])
            // The JavaScript reporter runs in every run.
            .args(Lang::Js.limits())
            .arg("--dataset")
            .arg(dataset)
            .args([
                "--dataset-file",
                "prompts.txt",
                "--dataset-config",
                r#"{"shuffle": true, "output_tokens": 6, "max_chars": 150}"#,
                "--output",
            ])
            .arg(&out);
        for reporter in &reporters {
            cmd.arg("--reporter").arg(reporter);
        }
        let (code, stdout, stderr) = run(&mut cmd);
        assert_eq!(code, 0, "{lang:?}: {stdout}\n{stderr}");
        let records = records(&out);
        let prompt_tokens: Vec<u64> = records.iter().map(|r| r["prompt_tokens"].as_u64().unwrap()).collect();
        // The too-long line was skipped, and the order is not the file's.
        assert!(records.iter().all(|r| r["output_tokens"] == 6), "{records:?}");
        let mut sorted = prompt_tokens.clone();
        sorted.sort();
        assert_ne!(prompt_tokens, sorted, "shuffled");
        seen.push(records);
        let reports: Vec<String> = LANGS
            .iter()
            .map(|l| std::fs::read_to_string(out.join(format!("my-{}-reporter.txt", l.name()))).unwrap())
            .collect();
        assert!(
            reports[0].starts_with("stage ") && reports[0].ends_with("ok: 30\n"),
            "{}",
            reports[0]
        );
        assert_eq!(reports[0], reports[1], "Rust and Python reporters");
        assert_eq!(reports[0], reports[2], "Rust and JavaScript reporters");
    }
    assert_eq!(seen[0], seen[1], "Rust and Python datasets");
    assert_eq!(seen[0], seen[2], "Rust and JavaScript datasets");
}

#[test]
fn the_python_and_javascript_ports_of_the_ollama_example_decode_as_the_rust_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ws = workspace();
    // The guest libraries' own tests, then the ports' tests, natively.
    ok(
        Command::new("python3")
            .current_dir(ws.join("sdk/python"))
            .args(["-m", "unittest", "discover", "-s", "tests"]),
        "the Python guest library's tests",
    );
    ok(
        Command::new("node").current_dir(ws.join("sdk/js")).args([
            "--import",
            "./barrage-plugin/register.js",
            "--test",
            "test/",
        ]),
        "the JavaScript guest library's tests",
    );
    let py_dir = ws.join("sdk/examples/ollama-generate-py");
    ok(
        Command::new("python3")
            .current_dir(&py_dir)
            .env("PYTHONPATH", ws.join("sdk/python"))
            .args(["-m", "unittest"]),
        "the Python port's tests",
    );
    let js_dir = ws.join("sdk/examples/ollama-generate-js");
    ok(
        Command::new("node")
            .current_dir(&js_dir)
            .args(["--import", "../../js/barrage-plugin/register.js", "--test"]),
        "the JavaScript port's tests",
    );
    // Built as their headers say.
    let bin = tool_bin(d);
    let python = d.join("ollama_generate_py.wasm");
    ok(
        Command::new("componentize-py")
            .env("PATH", path_with(&bin))
            .current_dir(&py_dir)
            .args([
                "-d",
                "../../../wit",
                "-w",
                "codec",
                "componentize",
                "-p",
                ".",
                "-p",
                "../../python",
                "app",
                "-o",
            ])
            .arg(&python),
        "componentize-py",
    );
    let js = d.join("ollama_generate_js.wasm");
    ok(
        Command::new(ws.join("target/test-tools/js/node_modules/.bin/componentize-js"))
            .current_dir(ws.join("sdk"))
            .args([
                "--wit",
                "../wit",
                "--world-name",
                "codec",
                "--disable",
                "stdio",
                "random",
                "clocks",
                "http",
            ])
            .args(["fetch-event", "-o"])
            .arg(&js)
            .arg("examples/ollama-generate-js/codec.js"),
        "componentize-js",
    );
    let rust = test_plugin("ollama-generate");
    // The fixtures through each codec, in 5-byte reads: the same events, the
    // malformed lines' reasons included.
    for body in ["ollama-generate.ndjson", "ollama-generate-edge.ndjson"] {
        let decode = |codec: &Path| {
            let (_, stdout, stderr) = run(barrage()
                .args(["plugin", "decode", "--framing", "ndjson", "--text", "--read-size", "5"])
                .args(["--malformed-frames", "count", "--codec"])
                .arg(codec)
                .arg(fixture(body)));
            assert!(stdout.contains(" responses: "), "{stdout}\n{stderr}");
            stdout
        };
        let expected = decode(&rust);
        assert!(expected.lines().count() >= 7, "{expected}");
        assert_eq!(decode(&python), expected, "{body}: Python");
        assert_eq!(decode(&js), expected, "{body}: JavaScript");
    }
}
