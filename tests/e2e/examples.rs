//! Every shipped example parses and validates; examples run as documented.

use crate::common::{barrage, run, workspace};

#[test]
fn every_example_config_is_valid() {
    let dir = workspace().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("sim-") {
            barrage::sim::SimConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        } else {
            let config = barrage::load::RunConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            config.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(sim) = &config.sim {
                sim.validate().unwrap_or_else(|e| panic!("{name}: sim: {e}"));
            }
        }
        seen += 1;
    }
    assert!(seen >= 10, "{seen} examples");
}

#[test]
fn a_shape_example_runs_against_the_embedded_simulator() {
    let dir = tempfile::tempdir().unwrap();
    for example in ["constant.yaml", "concurrency.yaml", "ramp.yaml"] {
        let out = dir.path().join(example);
        let (code, stdout, stderr) = run(barrage()
            .args(["run", "--quiet", "--duration", "1", "--max-tokens", "4", "--config"])
            .arg(workspace().join("examples").join(example))
            .arg("--output")
            .arg(&out));
        assert_eq!(code, 0, "{example}: {stderr}");
        assert!(stdout.contains("results:"), "{stdout}");
        assert!(out.join("summary.json").exists());
    }
}
