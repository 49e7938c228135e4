//! The container image, built here without a Docker engine
//! (`deploy/image/build.sh`: umoci, from Debian), inspected with skopeo and
//! run for real under runc (Debian's; crun refuses this machine's hybrid
//! cgroups) against the simulator on loopback.

use std::path::Path;
use std::process::Command;

use crate::common::{SimProcess, summary, workspace};

fn ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (tests/run installs umoci, skopeo, runc)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_image_is_built_without_docker_inspected_and_run_under_an_oci_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    // The workspace's build puts the operator beside the binary.
    let operator = Path::new(env!("CARGO_BIN_EXE_barrage")).with_file_name("barrage-operator");
    assert!(
        operator.is_file(),
        "{} is not built (cargo build --workspace)",
        operator.display()
    );
    ok(Command::new(workspace().join("deploy/image/build.sh"))
        .env("BIN", env!("CARGO_BIN_EXE_barrage"))
        .env("OPERATOR_BIN", &operator)
        .env("OUT", &layout)
        .env("TAG", "test"));
    let reference = format!("oci:{}:test", layout.display());

    // What the image says of itself.
    let config: serde_json::Value =
        serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", "--config", &reference]))).unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "{config}");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/barrage"]));
    assert_eq!(c["WorkingDir"], "/results");
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "barrage");
    assert!(c["Labels"]["org.opencontainers.image.version"].is_string(), "{config}");

    // What is in it: the binary and the certificates; no shell.
    let bundle = tmp.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:test", layout.display())])
        .arg(&bundle));
    let root = bundle.join("rootfs");
    assert!(root.join("barrage").is_file() && root.join("etc/ssl/certs/ca-certificates.crt").is_file());
    assert!(root.join("barrage-operator").is_file(), "the operator is in the image");
    assert!(!root.join("bin/sh").exists(), "no shell in the image");

    // Run it: the simulator on the host's loopback (the container shares
    // the host's network), results on a directory the image's user owns.
    let sim = SimProcess::start(&["--mode", "zero"]);
    let results = tmp.path().join("results");
    std::fs::create_dir(&results).unwrap();
    ok(Command::new("chown").args(["65532:65532"]).arg(&results));
    let spec_path = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
    let process = &mut spec["process"];
    process["terminal"] = false.into();
    let mut args = process["args"].as_array().cloned().unwrap_or_default();
    assert_eq!(args, [serde_json::json!("/barrage")], "the entrypoint alone");
    for a in [
        "run",
        "--quiet",
        "--reporter",
        "json",
        "--rate",
        "20",
        "--duration",
        "1",
        "--output",
        "/results/r",
    ] {
        args.push(a.into());
    }
    args.extend(["--target".into(), format!("http://{}", sim.addr).into()]);
    process["args"] = args.into();
    let namespaces = spec["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|n| n["type"] != "network");
    spec["mounts"].as_array_mut().unwrap().push(serde_json::json!({
        "destination": "/results", "type": "bind", "source": results, "options": ["rbind", "rw"]
    }));
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let id = format!("barrage-test-{}", std::process::id());
    ok(Command::new("timeout")
        .args(["120", "runc", "run", "--bundle"])
        .arg(&bundle)
        .arg(&id));
    let s = summary(&results.join("r"));
    assert_eq!(s["total"]["sent"], 20, "{s}");
    assert_eq!(s["total"]["succeeded"], 20);
    owned_by_the_image_user(&results.join("r/summary.json"));
}

fn owned_by_the_image_user(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(path).unwrap().uid(),
        65532,
        "written as the image's user, not root"
    );
}
