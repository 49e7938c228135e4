//! Every manifest we ship, rendered as a user would (`kubectl kustomize`,
//! `barrage-operator crd` / `render`), read into the Kubernetes API's own
//! types with unknown fields refused; the Prometheus Operator's kinds
//! checked by the `@kubernetes-models/prometheus-operator` validators (npm,
//! installed by tests/run); the example BenchmarkRuns checked against the
//! CRD's schema as the API server would.

use std::path::{Path, PathBuf};
use std::process::Command;

use barrage_operator::crd::BenchmarkRun;
use barrage_operator::strict::{StrictError, from_value};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{CustomResourceDefinition, JSONSchemaProps};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn operator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_barrage-operator"))
}

fn run(mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn kustomize(dir: &str) -> Vec<Value> {
    let mut cmd = Command::new("kubectl");
    cmd.args(["kustomize", &root().join(dir).display().to_string()]);
    documents(&run(cmd))
}

/// One object against its API type; the Prometheus Operator's kinds are
/// gathered for the npm validators.
fn check(doc: &Value, monitors: &mut Vec<Value>) -> Result<(), String> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let name = format!("{kind} {}", doc["metadata"]["name"].as_str().unwrap_or("?"));
    let r: Result<(), StrictError> = match kind {
        "ConfigMap" => from_value::<ConfigMap>(doc).map(drop),
        "PersistentVolumeClaim" => from_value::<PersistentVolumeClaim>(doc).map(drop),
        "Job" => from_value::<Job>(doc).map(drop),
        "Service" => from_value::<Service>(doc).map(drop),
        "ServiceAccount" => from_value::<ServiceAccount>(doc).map(drop),
        "Namespace" => from_value::<Namespace>(doc).map(drop),
        "Deployment" => from_value::<Deployment>(doc).map(drop),
        "ClusterRole" => from_value::<ClusterRole>(doc).map(drop),
        "ClusterRoleBinding" => from_value::<ClusterRoleBinding>(doc).map(drop),
        "CustomResourceDefinition" => from_value::<CustomResourceDefinition>(doc).map(drop),
        "BenchmarkRun" => from_value::<BenchmarkRun>(doc).map(drop),
        "PodMonitor" | "ServiceMonitor" => {
            monitors.push(doc.clone());
            Ok(())
        }
        other => return Err(format!("{name}: no check for kind {other}")),
    };
    r.map_err(|e| format!("{name}: {e}"))
}

fn check_all(docs: &[Value], monitors: &mut Vec<Value>) {
    let failures: Vec<String> = docs.iter().filter_map(|d| check(d, monitors).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_checked_in_crd_is_the_one_the_types_generate() {
    let checked_in = std::fs::read_to_string(root().join("deploy/operator/crd.yaml")).unwrap();
    assert!(
        checked_in == barrage_operator::crd::crd_yaml(),
        "deploy/operator/crd.yaml is stale: cargo run -p barrage-operator -- crd > deploy/operator/crd.yaml"
    );
    assert_eq!(
        run({
            let mut c = operator();
            c.arg("crd");
            c
        }),
        checked_in
    );
}

#[test]
fn the_crd_is_a_structural_schema() {
    let docs = documents(&std::fs::read_to_string(root().join("deploy/operator/crd.yaml")).unwrap());
    let crd: CustomResourceDefinition = from_value(&docs[0]).unwrap();
    let version = &crd.spec.versions[0];
    assert!(
        version.subresources.as_ref().unwrap().status.is_some(),
        "status must be a subresource"
    );
    let schema = version.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
    let mut problems = Vec::new();
    structural(schema, "", &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The API server's rules for a CRD's schema that a generator can break:
/// every node typed (unless it preserves unknown fields or is int-or-string),
/// and `properties` never beside `additionalProperties`.
fn structural(s: &JSONSchemaProps, at: &str, problems: &mut Vec<String>) {
    let free = s.x_kubernetes_preserve_unknown_fields == Some(true) || s.x_kubernetes_int_or_string == Some(true);
    if s.type_.is_none() && !free {
        problems.push(format!("{at}: no type"));
    }
    if s.properties.is_some() && s.additional_properties.is_some() {
        problems.push(format!("{at}: properties and additionalProperties together"));
    }
    for forbidden in [s.one_of.is_some(), s.any_of.is_some(), s.all_of.is_some()] {
        if forbidden && !free {
            problems.push(format!("{at}: oneOf/anyOf/allOf without a type of its own"));
        }
    }
    for (k, v) in s.properties.iter().flatten() {
        structural(v, &format!("{at}.{k}"), problems);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(
        items,
    )) = &s.items
    {
        structural(items, &format!("{at}[]"), problems);
    }
}

/// A value against a CRD schema node: types, required fields, enums, and no
/// field the schema does not list (the API server would prune it).
fn conforms(v: &Value, s: &JSONSchemaProps, at: &str, problems: &mut Vec<String>) {
    if s.x_kubernetes_preserve_unknown_fields == Some(true) {
        return;
    }
    if v.is_null() {
        if s.nullable != Some(true) {
            problems.push(format!("{at}: null is not allowed"));
        }
        return;
    }
    let ok = match s.type_.as_deref() {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    };
    if !ok {
        problems.push(format!("{at}: {v} is not of type {:?}", s.type_));
        return;
    }
    if let Some(allowed) = &s.enum_
        && !allowed.iter().any(|a| a.0 == *v)
    {
        problems.push(format!("{at}: {v} is not one of the allowed values"));
    }
    if let Value::Object(o) = v {
        for r in s.required.iter().flatten() {
            if !o.contains_key(r) {
                problems.push(format!("{at}.{r}: required"));
            }
        }
        if let Some(props) = &s.properties {
            for (k, x) in o {
                match props.get(k) {
                    Some(p) => conforms(x, p, &format!("{at}.{k}"), problems),
                    None => problems.push(format!("{at}.{k}: not in the schema")),
                }
            }
        }
    }
    if let (
        Value::Array(a),
        Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(items)),
    ) = (v, &s.items)
    {
        for (i, x) in a.iter().enumerate() {
            conforms(x, items, &format!("{at}[{i}]"), problems);
        }
    }
}

fn crd_schema() -> JSONSchemaProps {
    let docs = documents(&std::fs::read_to_string(root().join("deploy/operator/crd.yaml")).unwrap());
    let crd: CustomResourceDefinition = from_value(&docs[0]).unwrap();
    crd.spec.versions[0].schema.clone().unwrap().open_api_v3_schema.unwrap()
}

fn examples() -> Vec<(PathBuf, Value)> {
    let dir = root().join("deploy/operator/examples");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        for doc in documents(&std::fs::read_to_string(&path).unwrap()) {
            out.push((path.clone(), doc));
        }
    }
    assert!(out.len() >= 2, "examples missing from {}", dir.display());
    out
}

#[test]
fn the_example_runs_conform_to_the_crd_and_render_to_valid_objects() {
    let schema = crd_schema();
    for (path, doc) in examples() {
        let mut problems = Vec::new();
        // apiVersion, kind and metadata are the API server's own.
        let body = serde_json::json!({"spec": doc["spec"]});
        conforms(&body, &schema, "", &mut problems);
        assert!(problems.is_empty(), "{}: {}", path.display(), problems.join("\n"));
        from_value::<BenchmarkRun>(&doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let rendered = run({
            let mut c = operator();
            c.args([
                "render",
                "--image",
                "registry.example/barrage:0.1.0",
                "--start-at",
                "1796000000",
            ]);
            c.arg(&path);
            c
        });
        let docs = documents(&rendered);
        assert!(
            docs.iter()
                .any(|d| d["kind"] == "Job" && d["spec"]["completionMode"] == "Indexed")
        );
        check_all(&docs, &mut Vec::new());
    }
}

#[test]
fn the_crd_schema_check_refuses_what_the_api_server_would_prune_or_refuse() {
    let schema = crd_schema();
    let (_, mut doc) = examples().remove(0);
    doc["spec"]["traffic"]["ratee"] = 5.into();
    doc["spec"]["shards"] = "two".into();
    doc["spec"]["modelType"] = "vision".into();
    let mut problems = Vec::new();
    conforms(&serde_json::json!({"spec": doc["spec"]}), &schema, "", &mut problems);
    let all = problems.join("\n");
    for expected in [
        ".spec.traffic.ratee: not in the schema",
        ".spec.shards: \"two\" is not of type",
        ".spec.modelType: \"vision\" is not one of",
    ] {
        assert!(all.contains(expected), "{expected} not in:\n{all}");
    }
}

#[test]
fn render_names_the_file_and_field_of_a_bad_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    // `render` of a run with this traffic: it must fail; its stderr.
    let refused = |traffic: &str| {
        std::fs::write(
            &file,
            format!(
                "apiVersion: barrage.dev/v1alpha1\nkind: BenchmarkRun\nmetadata: {{name: x}}\nspec:\n  endpoint: http://vllm:8000\n  traffic: {traffic}\n"
            ),
        )
        .unwrap();
        let out = operator().args(["render", "--image", "i"]).arg(&file).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused("{rate: 5, durationSecond: 60}");
    assert!(
        err.contains("bad.yaml") && err.contains("spec.traffic.durationSecond"),
        "{err}"
    );
    let err = refused("{rate: 5}");
    assert!(
        err.contains("spec.traffic.durationSeconds") && err.contains("a run must end"),
        "{err}"
    );
}

#[test]
fn every_kustomize_base_renders_to_valid_objects() {
    let mut monitors = Vec::new();
    for dir in [
        "deploy/kustomize/job",
        "deploy/kustomize/shards",
        "deploy/kustomize/merge",
        "deploy/kustomize/monitoring",
        "deploy/operator",
    ] {
        let docs = kustomize(dir);
        assert!(!docs.is_empty(), "{dir} rendered nothing");
        check_all(&docs, &mut monitors);
        // The pods' configuration is Barrage's: `barrage run --config` reads
        // it in tests/e2e/kubernetes.rs.
        if dir.ends_with("shards") {
            let job = docs.iter().find(|d| d["kind"] == "Job").unwrap();
            assert_eq!(job["spec"]["completions"], job["spec"]["parallelism"]);
            let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
            let volume = &job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"];
            assert_eq!(
                &cm["metadata"]["name"], volume,
                "the Job mounts the generated ConfigMap"
            );
        }
    }
    let kinds: Vec<&str> = monitors.iter().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(kinds, ["PodMonitor", "ServiceMonitor"]);
    validate_monitors(&monitors).unwrap();
}

#[test]
fn the_monitor_validators_refuse_a_bad_monitor() {
    let docs = kustomize("deploy/kustomize/monitoring");
    let mut pm = docs.into_iter().find(|d| d["kind"] == "PodMonitor").unwrap();
    pm["spec"]["podMetricsEndpoints"][0]["interval"] = "5 seconds".into();
    let e = validate_monitors(&[pm]).unwrap_err();
    assert!(e.contains("interval"), "{e}");
}

/// The Prometheus Operator's kinds through its models' validators (node).
fn validate_monitors(monitors: &[Value]) -> Result<(), String> {
    let tools = root().join("target/test-tools/k8s-models");
    assert!(
        tools
            .join("node_modules/@kubernetes-models/prometheus-operator")
            .is_dir(),
        "{} is missing: tests/run installs @kubernetes-models/prometheus-operator there",
        tools.display()
    );
    let script = tools.join("validate.mjs");
    std::fs::write(
        &script,
        "import { readFileSync } from 'node:fs';\n\
         import { PodMonitor, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';\n\
         const kinds = { PodMonitor, ServiceMonitor };\n\
         let bad = 0;\n\
         for (const doc of JSON.parse(readFileSync(0, 'utf8'))) {\n\
           try { new kinds[doc.kind](doc).validate(); } catch (e) { bad++; console.error(`${doc.kind} ${doc.metadata.name}: ${e.message}`); }\n\
         }\n\
         process.exit(bad ? 1 : 0);\n",
    )
    .unwrap();
    let mut child = Command::new("node")
        .arg(&script)
        .current_dir(&tools)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(monitors).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
