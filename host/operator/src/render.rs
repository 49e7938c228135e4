//! From a `BenchmarkRun` to what runs it: Barrage's run configuration in a
//! ConfigMap, a results claim, the Indexed Job of shards (all started at one
//! instant) and the merge Job. Pure: no API calls, so every object can be
//! checked without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, SeccompProfile, SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Value, json};

use crate::crd::{Arrival, BenchmarkRun, BenchmarkRunSpec, ModelType, Sweep};

/// Where the pods mount what they share.
pub const CONFIG_DIR: &str = "/config";
pub const RESULTS_DIR: &str = "/results";
pub const DATASETS_DIR: &str = "/datasets";
pub const TERMINATION_LOG: &str = "/dev/termination-log";
pub const RUN_LABEL: &str = "barrage.dev/run";
pub const ROLE_LABEL: &str = "barrage.dev/role";
const DEFAULT_START_DELAY_S: u32 = 30;
const MAX_SHARDS: u32 = 100_000;

/// A spec the operator cannot run, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("spec.{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// What the operator brings to every run.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub image: String,
}

/// The objects that run one `BenchmarkRun`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config_map: ConfigMap,
    /// None when the spec names a claim of its own.
    pub claim: Option<PersistentVolumeClaim>,
    /// The shards, or a sweep's one pod.
    pub shards: Job,
    /// None for a sweep: its pod writes its own figures.
    pub merge: Option<Job>,
}

pub fn config_map_name(run: &str) -> String {
    format!("{run}-config")
}
pub fn claim_name(run: &str) -> String {
    format!("{run}-results")
}
pub fn shard_job_name(run: &str) -> String {
    format!("{run}-shards")
}
pub fn merge_job_name(run: &str) -> String {
    format!("{run}-merge")
}

/// The plan for `run`, its shards starting at `start_at_unix_s`.
pub fn plan(run: &BenchmarkRun, defaults: &Defaults, start_at_unix_s: i64) -> Result<Plan, SpecError> {
    let name = run.metadata.name.clone().unwrap_or_default();
    let spec = &run.spec;
    let config = run_config(&name, spec)?;
    let yaml = serde_yaml_ng::to_string(&config).map_err(|e| invalid("runConfig", e.to_string()))?;
    let owner = owner_reference(run);
    let meta = |object: String, role: &str| ObjectMeta {
        name: Some(object),
        namespace: run.metadata.namespace.clone(),
        labels: Some(labels(&name, role)),
        owner_references: owner.clone().map(|o| vec![o]),
        ..ObjectMeta::default()
    };
    let config_map = ConfigMap {
        metadata: meta(config_map_name(&name), "config"),
        data: Some(BTreeMap::from([("run.yaml".to_string(), yaml)])),
        ..ConfigMap::default()
    };
    let users_claim = spec.results.as_ref().and_then(|r| r.claim_name.clone());
    let claim = users_claim.is_none().then(|| {
        let results = spec.results.clone().unwrap_or_default();
        PersistentVolumeClaim {
            metadata: meta(claim_name(&name), "results"),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: results.storage_class_name,
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity(results.storage.unwrap_or_else(|| "1Gi".into())),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        }
    });
    let claim_of_run = users_claim.unwrap_or_else(|| claim_name(&name));
    let image = spec.image.clone().unwrap_or_else(|| defaults.image.clone());
    if image.is_empty() {
        return Err(invalid(
            "image",
            "no image: set spec.image or start the operator with --image",
        ));
    }
    let pod = PodParts {
        run: &name,
        spec,
        image,
        claim: claim_of_run,
    };

    let n = spec.shards;
    let config_file = format!("{CONFIG_DIR}/run.yaml");
    let shard_args = match &spec.sweep {
        None => vec![
            "run".to_string(),
            "--config".into(),
            config_file,
            "--shards".into(),
            n.to_string(),
            "--start-at".into(),
            start_at_unix_s.to_string(),
            "--output".into(),
            format!("{RESULTS_DIR}/{name}/shard-$(JOB_COMPLETION_INDEX)"),
        ],
        Some(sweep) => {
            let mut args = vec![
                "sweep".to_string(),
                "--config".into(),
                config_file,
                "--output".into(),
                format!("{RESULTS_DIR}/{name}/sweep"),
                "--status-file".into(),
                TERMINATION_LOG.into(),
            ];
            for (flag, value) in sweep_flags(sweep) {
                args.extend([flag.to_string(), value]);
            }
            args
        }
    };
    let mut shard_pod = pod.template("shard", shard_args);
    if let Some(port) = spec.metrics_port {
        shard_pod.spec.as_mut().expect("built above").containers[0].ports = Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: i32::from(port),
            ..ContainerPort::default()
        }]);
    }
    let shards = Job {
        metadata: meta(shard_job_name(&name), "shard"),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(n as i32),
            // All at once: they start together.
            parallelism: Some(n as i32),
            // A shard that fails is not retried (its part of the schedule has
            // passed) and does not stop the others: the merge names it missing.
            backoff_limit_per_index: Some(0),
            max_failed_indexes: Some(n as i32),
            template: shard_pod,
            ..JobSpec::default()
        }),
        ..Job::default()
    };

    let mut merge_args = vec!["merge".to_string(), "--skip-missing".into()];
    merge_args.extend((0..n).map(|i| format!("{RESULTS_DIR}/{name}/shard-{i}")));
    merge_args.extend([
        "--output".into(),
        format!("{RESULTS_DIR}/{name}/merged"),
        "--status-file".into(),
        TERMINATION_LOG.into(),
    ]);
    let merge = spec.sweep.is_none().then(|| Job {
        metadata: meta(merge_job_name(&name), "merge"),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: pod.template("merge", merge_args),
            ..JobSpec::default()
        }),
        ..Job::default()
    });
    Ok(Plan {
        config_map,
        claim,
        shards,
        merge,
    })
}

/// `barrage sweep`'s flags for what the spec sets.
fn sweep_flags(sweep: &Sweep) -> Vec<(&'static str, String)> {
    let mut flags = Vec::new();
    let mut add = |flag, value: Option<String>| {
        if let Some(v) = value {
            flags.push((flag, v));
        }
    };
    add("--max-rate", sweep.max_rate.map(|v| v.to_string()));
    add("--max-points", sweep.max_points.map(|v| v.to_string()));
    add("--point-duration", sweep.point_duration_seconds.map(|v| v.to_string()));
    add("--warmup", sweep.warmup_seconds.map(|v| v.to_string()));
    add("--probe-duration", sweep.probe_duration_seconds.map(|v| v.to_string()));
    add("--precision", sweep.precision.map(|v| v.to_string()));
    flags
}

fn check_sweep(spec: &BenchmarkRunSpec, sweep: &Sweep) -> Result<(), SpecError> {
    let t = &spec.traffic;
    if t.rate.is_some() || t.concurrency.is_some() || t.duration_seconds.is_some() || !t.spikes.is_empty() {
        return Err(invalid(
            "traffic",
            "a sweep chooses its own rates and durations: leave traffic out",
        ));
    }
    if spec.total_prompts.is_some() {
        return Err(invalid(
            "totalPrompts",
            "a sweep chooses its own runs: leave totalPrompts out",
        ));
    }
    if spec.shards != 1 {
        return Err(invalid(
            "shards",
            "a sweep runs in one pod (each rate is a run of its own): set shards to 1",
        ));
    }
    if spec.pushgateway.is_some() || spec.metrics_port.is_some() {
        return Err(invalid(
            "pushgateway",
            "live export is for a single run; a sweep's points are runs of their own (drop pushgateway and metricsPort)",
        ));
    }
    let positive = [
        ("sweep.maxRate", sweep.max_rate),
        ("sweep.pointDurationSeconds", sweep.point_duration_seconds),
        ("sweep.probeDurationSeconds", sweep.probe_duration_seconds),
    ];
    for (field, v) in positive {
        if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
            return Err(invalid(field, "must be a number above 0"));
        }
    }
    if sweep.warmup_seconds.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
        return Err(invalid("sweep.warmupSeconds", "must be seconds, 0 or more"));
    }
    if sweep.max_points == Some(0) {
        return Err(invalid("sweep.maxPoints", "must be at least 1"));
    }
    if sweep.precision.is_some_and(|v| !(v > 0.0 && v < 1.0)) {
        return Err(invalid("sweep.precision", "is a share between 0 and 1"));
    }
    Ok(())
}

/// When the shards start, from when the Job is made.
pub fn start_at(spec: &BenchmarkRunSpec, now_unix_s: i64) -> i64 {
    now_unix_s + i64::from(spec.start_delay_seconds.unwrap_or(DEFAULT_START_DELAY_S))
}

pub fn labels(run: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "barrage".to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "barrage-operator".to_string(),
        ),
        (RUN_LABEL.to_string(), run.to_string()),
        (ROLE_LABEL.to_string(), role.to_string()),
    ])
}

fn owner_reference(run: &BenchmarkRun) -> Option<OwnerReference> {
    use kube::Resource as _;
    run.controller_owner_ref(&())
}

struct PodParts<'a> {
    run: &'a str,
    spec: &'a BenchmarkRunSpec,
    image: String,
    claim: String,
}

impl PodParts<'_> {
    /// The pod both Jobs run: Barrage as a non-root user on a read-only root,
    /// the run's configuration, the results claim and a scratch `/tmp`.
    fn template(&self, role: &str, args: Vec<String>) -> PodTemplateSpec {
        let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            read_only: read_only.then_some(true),
            ..VolumeMount::default()
        };
        let mut mounts = vec![
            mount("config", CONFIG_DIR, true),
            mount("results", RESULTS_DIR, false),
            mount("tmp", "/tmp", false),
        ];
        let mut volumes = vec![
            Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: config_map_name(self.run),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "results".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: self.claim.clone(),
                    read_only: None,
                }),
                ..Volume::default()
            },
            Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
        ];
        if let Some(cm) = self.spec.dataset.as_ref().and_then(|d| d.config_map.clone()) {
            mounts.push(mount("datasets", DATASETS_DIR, true));
            volumes.push(Volume {
                name: "datasets".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: cm,
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            });
        }
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels(self.run, role)),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(65532),
                    run_as_group: Some(65532),
                    fs_group: Some(65532),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".into(),
                        ..SeccompProfile::default()
                    }),
                    ..PodSecurityContext::default()
                }),
                containers: vec![Container {
                    name: "barrage".into(),
                    image: Some(self.image.clone()),
                    image_pull_policy: self.spec.image_pull_policy.clone(),
                    args: Some(args),
                    resources: self.spec.resources.clone(),
                    volume_mounts: Some(mounts),
                    termination_message_path: Some(TERMINATION_LOG.into()),
                    security_context: Some(SecurityContext {
                        allow_privilege_escalation: Some(false),
                        read_only_root_filesystem: Some(true),
                        capabilities: Some(Capabilities {
                            drop: Some(vec!["ALL".into()]),
                            ..Capabilities::default()
                        }),
                        ..SecurityContext::default()
                    }),
                    ..Container::default()
                }],
                volumes: Some(volumes),
                ..PodSpec::default()
            }),
        }
    }
}

/// Barrage's run configuration for `spec`, as the ConfigMap carries it.
pub fn run_config(run: &str, spec: &BenchmarkRunSpec) -> Result<Value, SpecError> {
    if spec.model_type == ModelType::Diffusion {
        return Err(invalid(
            "modelType",
            "diffusion models are not measured yet (they need non-generative outcomes, contract 0.2.0); \
             use instruction-tuned-llm",
        ));
    }
    if spec.shards == 0 {
        return Err(invalid("shards", "must be at least 1"));
    }
    // Kubernetes' bound on an Indexed Job; past it the merge's argument
    // list alone would be gigabytes.
    if spec.shards > MAX_SHARDS {
        return Err(invalid(
            "shards",
            format!("at most {MAX_SHARDS} (an Indexed Job's most completions)"),
        ));
    }
    let mut config = match spec.run_config.clone() {
        None => json!({}),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(invalid("runConfig", "must be a mapping of run configuration keys")),
    };
    let c = config.as_object_mut().expect("an object");
    for key in ["target", "stages", "shard", "start_at", "output"] {
        if c.contains_key(key) {
            return Err(invalid(
                format!("runConfig.{key}"),
                "is set by the operator from the spec's own fields; remove it",
            ));
        }
    }
    c.insert("target".into(), json!(target(spec)?));
    if let Some(codec) = &spec.codec {
        c.insert("codec".into(), json!(codec));
    }
    if let Some(model) = &spec.model {
        c.insert("model".into(), json!(model));
    }
    if let Some(seed) = spec.seed {
        c.insert("seed".into(), json!(seed));
    }
    let request = object(c, "request")?;
    if let Some(n) = spec.input_length {
        request.insert("prompt_tokens".into(), json!(n));
    }
    if let Some(n) = spec.max_output_length {
        request.insert("max_tokens".into(), json!(n));
    }
    match &spec.sweep {
        None => {
            c.insert("stages".into(), Value::Array(stages(spec)?));
        }
        Some(sweep) => check_sweep(spec, sweep)?,
    }
    if let Some(d) = &spec.dataset {
        if d.plugin.is_empty() {
            return Err(invalid(
                "dataset.plugin",
                "name the dataset plugin (sharegpt, jsonl, …)",
            ));
        }
        let files: Vec<String> = d.files.iter().map(|f| format!("{DATASETS_DIR}/{f}")).collect();
        let mut dataset = json!({"plugin": d.plugin, "files": files});
        if let Some(cfg) = &d.config {
            dataset["config"] = cfg.clone();
        }
        c.insert("dataset".into(), dataset);
    }
    let report = object(c, "report")?;
    for (key, values) in [("slo", &spec.slos), ("thresholds", &spec.thresholds)] {
        if !values.is_empty() {
            report.insert(key.into(), json!(values));
        }
    }
    // Live figures only where asked for: an `export` section must name
    // somewhere to send them.
    if spec.pushgateway.is_some() || spec.metrics_port.is_some() || c.contains_key("export") {
        let export = object(c, "export")?;
        export.insert("run_id".into(), json!(run));
        if let Some(url) = &spec.pushgateway {
            export.insert("pushgateway".into(), json!(url));
        }
        if let Some(port) = spec.metrics_port {
            export.insert("listen".into(), json!(format!("0.0.0.0:{port}")));
        }
    }
    Ok(config)
}

fn object<'a>(
    c: &'a mut serde_json::Map<String, Value>,
    key: &str,
) -> Result<&'a mut serde_json::Map<String, Value>, SpecError> {
    c.entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| invalid(format!("runConfig.{key}"), "must be a mapping"))
}

fn target(spec: &BenchmarkRunSpec) -> Result<String, SpecError> {
    let endpoint = spec.endpoint.trim().trim_end_matches('/');
    if endpoint.is_empty() {
        return Err(invalid(
            "endpoint",
            "name the model server (a URL, or a host name with spec.port)",
        ));
    }
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("http", endpoint));
    if scheme != "http" && scheme != "https" {
        return Err(invalid("endpoint", format!("scheme `{scheme}` is not http or https")));
    }
    let host = rest.split('/').next().unwrap_or_default();
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    match (has_port, spec.port) {
        (true, Some(_)) => Err(invalid("port", "the endpoint carries a port already; give one of them")),
        (false, None) if !endpoint.contains("://") => Err(invalid(
            "port",
            "the endpoint is a host name: give the server's port (or a URL with it)",
        )),
        (false, Some(port)) => {
            let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
            let path = if path.is_empty() {
                String::new()
            } else {
                format!("/{path}")
            };
            Ok(format!("{scheme}://{host}:{port}{path}"))
        }
        _ => Ok(format!("{scheme}://{rest}")),
    }
}

/// The stages: one, or with spikes the spans between them and the spikes
/// themselves, each a stage of its own so each is summarized apart.
fn stages(spec: &BenchmarkRunSpec) -> Result<Vec<Value>, SpecError> {
    let t = &spec.traffic;
    let ends = |stage: &mut serde_json::Map<String, Value>, duration: Option<f64>| {
        if let Some(d) = duration {
            stage.insert("duration_s".into(), json!(d));
        }
        if let Some(n) = spec.total_prompts {
            stage.insert("requests".into(), json!(n));
        }
    };
    if t.duration_seconds.is_none() && spec.total_prompts.is_none() {
        return Err(invalid(
            "traffic.durationSeconds",
            "a run must end: set traffic.durationSeconds or totalPrompts",
        ));
    }
    if let Some(d) = t.duration_seconds
        && !(d.is_finite() && d > 0.0)
    {
        return Err(invalid(
            "traffic.durationSeconds",
            "must be a number of seconds above 0",
        ));
    }
    match (t.rate, t.concurrency) {
        (Some(_), Some(_)) => Err(invalid(
            "traffic",
            "give rate (open loop) or concurrency (closed loop), not both",
        )),
        (None, None) => Err(invalid("traffic", "give rate (requests/s) or concurrency (users)")),
        (None, Some(users)) => {
            if !t.spikes.is_empty() {
                return Err(invalid(
                    "traffic.spikes",
                    "spikes are rates: use traffic.rate with them",
                ));
            }
            if users == 0 {
                return Err(invalid("traffic.concurrency", "must be at least 1"));
            }
            let mut stage = serde_json::Map::new();
            stage.insert("shape".into(), json!("concurrency"));
            stage.insert("concurrency".into(), json!(users));
            ends(&mut stage, t.duration_seconds);
            Ok(vec![Value::Object(stage)])
        }
        (Some(rate), None) => {
            let rate_ok = |r: f64| r.is_finite() && r > 0.0;
            if !rate_ok(rate) {
                return Err(invalid("traffic.rate", "must be requests per second above 0"));
            }
            let shape = match t.arrival {
                Arrival::Poisson => "poisson",
                Arrival::Constant => "constant",
            };
            let stage = |rate: f64, duration: Option<f64>, with_requests: bool| {
                let mut s = serde_json::Map::new();
                s.insert("shape".into(), json!(shape));
                s.insert("rate".into(), json!(rate));
                if with_requests {
                    ends(&mut s, duration);
                } else if let Some(d) = duration {
                    s.insert("duration_s".into(), json!(d));
                }
                Value::Object(s)
            };
            if t.spikes.is_empty() {
                return Ok(vec![stage(rate, t.duration_seconds, true)]);
            }
            let Some(total) = t.duration_seconds else {
                return Err(invalid(
                    "traffic.durationSeconds",
                    "spikes are placed in time: give the run a duration",
                ));
            };
            if spec.total_prompts.is_some() {
                return Err(invalid(
                    "totalPrompts",
                    "with spikes the run ends by its duration; drop totalPrompts",
                ));
            }
            let mut out = Vec::new();
            let mut at = 0.0;
            for (i, s) in t.spikes.iter().enumerate() {
                let field = |f: &str| format!("traffic.spikes[{i}].{f}");
                if !(s.at_seconds.is_finite() && s.at_seconds >= at) {
                    return Err(invalid(
                        field("atSeconds"),
                        format!("must be at or after {at} s (spikes in order, not overlapping)"),
                    ));
                }
                if !(s.duration_seconds.is_finite() && s.duration_seconds > 0.0) {
                    return Err(invalid(field("durationSeconds"), "must be seconds above 0"));
                }
                if s.at_seconds + s.duration_seconds > total {
                    return Err(invalid(
                        field("durationSeconds"),
                        format!("the spike ends after the run's {total} s"),
                    ));
                }
                if !rate_ok(s.rate) {
                    return Err(invalid(field("rate"), "must be requests per second above 0"));
                }
                if s.at_seconds > at {
                    out.push(stage(rate, Some(s.at_seconds - at), false));
                }
                out.push(stage(s.rate, Some(s.duration_seconds), false));
                at = s.at_seconds + s.duration_seconds;
            }
            if total > at {
                out.push(stage(rate, Some(total - at), false));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Spike, Traffic};

    fn spec(traffic: Traffic) -> BenchmarkRunSpec {
        BenchmarkRunSpec {
            endpoint: "vllm.bench.svc".into(),
            port: Some(8000),
            traffic,
            shards: 1,
            ..BenchmarkRunSpec::default()
        }
    }

    #[test]
    fn spikes_become_stages_that_keep_their_times() {
        let s = spec(Traffic {
            rate: Some(10.0),
            arrival: Arrival::Constant,
            duration_seconds: Some(300.0),
            spikes: vec![
                Spike {
                    at_seconds: 60.0,
                    duration_seconds: 30.0,
                    rate: 50.0,
                },
                Spike {
                    at_seconds: 90.0,
                    duration_seconds: 10.0,
                    rate: 80.0,
                },
            ],
            ..Traffic::default()
        });
        let config = run_config("r", &s).unwrap();
        let spans: Vec<(f64, f64)> = config["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["rate"].as_f64().unwrap(), s["duration_s"].as_f64().unwrap()))
            .collect();
        assert_eq!(spans, [(10.0, 60.0), (50.0, 30.0), (80.0, 10.0), (10.0, 200.0)]);
        assert_eq!(config["target"], "http://vllm.bench.svc:8000");
    }

    #[test]
    fn a_sweep_is_one_pod_without_stages_or_a_merge() {
        let mut s = spec(Traffic::default());
        s.sweep = Some(Sweep {
            max_rate: Some(200.0),
            point_duration_seconds: Some(5.0),
            ..Sweep::default()
        });
        let mut run = BenchmarkRun::new("knee", s.clone());
        run.metadata.namespace = Some("bench".into());
        let plan = plan(&run, &Defaults { image: "i".into() }, 0).unwrap();
        assert!(plan.merge.is_none());
        let args = plan.shards.spec.unwrap().template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert_eq!(args[0], "sweep");
        assert!(args.windows(2).any(|w| w == ["--max-rate", "200"]), "{args:?}");
        assert!(
            args.windows(2).any(|w| w == ["--status-file", TERMINATION_LOG]),
            "{args:?}"
        );
        assert!(
            !run_config("knee", &s)
                .unwrap()
                .as_object()
                .unwrap()
                .contains_key("stages")
        );
        s.shards = 2;
        assert_eq!(run_config("knee", &s).unwrap_err().field, "shards");
        s.shards = 1;
        s.traffic.rate = Some(5.0);
        assert_eq!(run_config("knee", &s).unwrap_err().field, "traffic");
        s.traffic.rate = None;
        s.sweep.as_mut().unwrap().precision = Some(2.0);
        assert_eq!(run_config("knee", &s).unwrap_err().field, "sweep.precision");
    }

    #[test]
    fn bad_specs_name_their_field() {
        let mut s = spec(Traffic {
            rate: Some(10.0),
            duration_seconds: Some(100.0),
            spikes: vec![Spike {
                at_seconds: 90.0,
                duration_seconds: 20.0,
                rate: 50.0,
            }],
            ..Traffic::default()
        });
        assert_eq!(
            run_config("r", &s).unwrap_err().field,
            "traffic.spikes[0].durationSeconds"
        );
        s.traffic.spikes.clear();
        s.endpoint = "http://vllm:8000".into();
        assert_eq!(run_config("r", &s).unwrap_err().field, "port");
        s.port = None;
        s.shards = 100_001;
        assert_eq!(run_config("r", &s).unwrap_err().field, "shards");
        s.shards = 1;
        s.model_type = ModelType::Diffusion;
        assert_eq!(run_config("r", &s).unwrap_err().field, "modelType");
        s.model_type = ModelType::InstructionTunedLlm;
        s.traffic.duration_seconds = None;
        assert_eq!(run_config("r", &s).unwrap_err().field, "traffic.durationSeconds");
        s.total_prompts = Some(100);
        s.run_config = Some(json!({"stages": []}));
        assert_eq!(run_config("r", &s).unwrap_err().field, "runConfig.stages");
        s.run_config = Some(json!({"request": {"ignore_eos": true}}));
        let c = run_config("r", &s).unwrap();
        assert_eq!(c["request"]["ignore_eos"], true);
        assert_eq!(c["stages"][0]["requests"], 100);
    }
}
