//! A dataset's checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use barrage_plugin_host::PluginSource;
use barrage_plugin_host::prepare::{DatasetConfig, DatasetError, PrepareEnv, Prepared, prepare};

use super::{Check, Outcome, Setup};

/// A line no dataset format reads.
const BAD_LINE: &str = "{\"prompt\": \u{1}, this is not a record";

fn prepared(setup: &Setup<'_>, files: &[PathBuf], seed: u64) -> Result<Prepared, DatasetError> {
    let config: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&setup.context.config_json).unwrap_or_default();
    let dataset = DatasetConfig {
        plugin: match &setup.source {
            PluginSource::Builtin { name, .. } => name.to_string(),
            PluginSource::File(path) => path.display().to_string(),
        },
        files: files.to_vec(),
        config,
        cache: false,
        chat_template: None,
        apply_chat_template: false,
        media_dir: None,
    };
    let mut context = setup.context.clone();
    context.seed = seed;
    prepare(
        &dataset,
        PrepareEnv {
            engine: setup.engine,
            registry: setup.registry,
            context,
            base_dir: Path::new("."),
            cache_dir: None,
        },
    )
}

pub(super) fn checks(setup: &Setup<'_>) -> Vec<Check> {
    let first = match prepared(setup, &setup.dataset_files, 1) {
        Ok(p) => p,
        Err(e) => return vec![Check::new("loads and generates", Outcome::Failed(e.to_string()))],
    };
    let mut checks = vec![Check::new(
        "loads and generates",
        Outcome::Passed(format!(
            "{} samples, {} input records skipped",
            first.samples.len(),
            first.skipped.len()
        )),
    )];
    let samples = |p: &Prepared| serde_json::to_string(&p.samples).unwrap_or_default();
    checks.push(match prepared(setup, &setup.dataset_files, 1) {
        Ok(again) => Check::judged(
            "same seed, same samples",
            "prepared twice with seed 1, alike",
            (samples(&again) != samples(&first)).then(|| "the same seed gave other samples".to_string()),
        ),
        Err(e) => Check::new("same seed, same samples", Outcome::Failed(e.to_string())),
    });

    // The lengths it declares, by the tokenizer it was given.
    let tokenizer = &setup.context.tokenizer;
    let declared: Vec<(u32, u32)> = first
        .samples
        .iter()
        .filter_map(|s| Some((s.prompt_tokens?, tokenizer.count(&s.prompt.text()?))))
        .collect();
    checks.push(if declared.is_empty() {
        Check::new(
            "declared lengths",
            Outcome::Skipped("no sample declares its prompt's length".into()),
        )
    } else {
        let off: Vec<&(u32, u32)> = declared.iter().filter(|(d, c)| d != c).collect();
        Check::judged(
            "declared lengths",
            format!("{} samples' prompts of the lengths they declare ({})", declared.len(), tokenizer.name()),
            off.first().map(|(d, c)| {
                format!(
                    "{} of {} samples declare another prompt length than the {} tokenizer counts (e.g. {d} declared, {c} counted)",
                    off.len(),
                    declared.len(),
                    tokenizer.name()
                )
            }),
        )
    });
    checks.push(bad_input(setup));
    checks
}

/// An input file with a bad second line: refused (or skipped) naming the
/// file and the line, never a trap.
fn bad_input(setup: &Setup<'_>) -> Check {
    let name = "bad input located";
    let Some(original) = setup.dataset_files.first() else {
        return Check::new(
            name,
            Outcome::Skipped("it reads no files (--dataset-file gives one)".into()),
        );
    };
    let text = match std::fs::read_to_string(original) {
        Ok(t) => t,
        Err(e) => return Check::new(name, Outcome::Failed(format!("{}: {e}", original.display()))),
    };
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    let rest: Vec<&str> = lines.collect();
    let file_name = original
        .file_name()
        .map_or("input".into(), |n| n.to_string_lossy().into_owned());
    let bad = setup.work_dir.join(format!("bad-{file_name}"));
    let broken = format!("{head}\n{BAD_LINE}\n{}\n", rest.join("\n"));
    if let Err(e) = std::fs::write(&bad, broken) {
        return Check::new(name, Outcome::Failed(format!("{}: {e}", bad.display())));
    }
    let mut files = setup.dataset_files.clone();
    files[0] = bad.clone();
    let shown = bad.display().to_string();
    let bad_name = format!("bad-{file_name}");
    let names_the_place = |message: &str| message.contains(&bad_name) && message.contains('2');
    match prepared(setup, &files, 1) {
        Err(DatasetError::Failed(f)) => Check::new(name, Outcome::Failed(format!("a bad line made it fail: {f}"))),
        Err(e) if names_the_place(&e.to_string()) => Check::new(name, Outcome::Passed(format!("refused: {e}"))),
        Err(e) => Check::new(
            name,
            Outcome::Failed(format!("refused without naming {shown} and its line 2: {e}")),
        ),
        Ok(p) if p.skipped.iter().any(|s| names_the_place(&s.at)) => {
            Check::new(name, Outcome::Passed("skipped, its file and line named".into()))
        }
        Ok(_) => Check::new(
            name,
            Outcome::Failed(format!("a line no format reads ({shown}:2) was taken silently")),
        ),
    }
}
