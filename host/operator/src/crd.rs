//! The `BenchmarkRun` resource: the seed's "Benchmarking API for Kubernetes"
//! (endpoint, port, traffic shape, model type, dataset, lengths, total
//! prompts, spikes) plus what running it as shards needs. The CRD in
//! `deploy/operator/crd.yaml` is generated from these types
//! (`barrage-operator crd`); a test keeps the two the same.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "barrage.dev";
pub const VERSION: &str = "v1alpha1";

#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "barrage.dev",
    version = "v1alpha1",
    kind = "BenchmarkRun",
    namespaced,
    shortname = "brun",
    status = "BenchmarkRunStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Done","type":"integer","jsonPath":".status.shardsSucceeded"}"#,
    printcolumn = r#"{"name":"Rate","type":"number","jsonPath":".status.achievedRate"}"#,
    printcolumn = r#"{"name":"TTFT p99 ms","type":"number","jsonPath":".status.ttftP99Ms"}"#,
    printcolumn = r#"{"name":"Passed","type":"boolean","jsonPath":".status.thresholdsPassed"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BenchmarkRunSpec {
    /// The model server: a URL (`http://vllm.default.svc:8000`) or a host
    /// name (`vllm.default.svc`, then `port` is needed).
    pub endpoint: String,
    /// The server's port, when `endpoint` does not carry one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// What the server serves. Only `instruction-tuned-llm` is measured
    /// today; `diffusion` waits for the non-generative contract.
    #[serde(default)]
    pub model_type: ModelType,
    /// The model name requests carry (default: what the codec asks the
    /// server for, or `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The codec plugin (default `openai-chat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// The load (not with `sweep`, which chooses its own).
    #[serde(default)]
    pub traffic: Traffic,
    /// Find where the server saturates instead of offering one load:
    /// `barrage sweep` in one pod (docs/capacity.md); the knee goes into
    /// `status.kneeRate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<Dataset>,
    /// Prompt length in tokens (synthetic prompts; a dataset's own lengths
    /// win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_length: Option<u32>,
    /// `max_tokens` of each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_length: Option<u32>,
    /// Stop after this many requests (across all shards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_prompts: Option<u64>,
    /// Pods sending the load, as one Indexed Job; each sends its part.
    #[serde(default = "one")]
    pub shards: u32,
    /// The Barrage image (default: the operator's `--image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Each shard pod's resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Objectives for goodput, in Barrage's syntax (`ttft p99 < 500ms`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<String>,
    /// Thresholds judged on the merged run (`error_rate < 1%`); the verdict
    /// is `status.thresholdsPassed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
    /// Seconds from creating the Job to the shards' common start (default
    /// 30): time for every pod to be scheduled and pull the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_delay_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Results>,
    /// Push each shard's live figures to this Pushgateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushgateway: Option<String>,
    /// Serve each shard's live figures on this port (`/metrics`), for a
    /// PodMonitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_port: Option<u16>,
    /// The run's seed; every shard shares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Any other key of Barrage's run configuration, as YAML would give it
    /// (`request: {ignore_eos: true}`, `headers`, `report`); the fields
    /// above win where both say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub run_config: Option<serde_json::Value>,
    /// Set to stop the run: the shards are stopped (each keeps what it
    /// measured) and what they measured is merged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ModelType {
    #[default]
    InstructionTunedLlm,
    Diffusion,
}

/// The traffic shape. Either a rate (open loop: `arrival` spaces the
/// requests) or `concurrency` users (closed loop).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    /// Requests per second, across all shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default)]
    pub arrival: Arrival,
    /// Users, each sending its next request when the last one ended
    /// (instead of `rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// How long to send; with `totalPrompts`, whichever comes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Spells of a higher rate within the run (open loop, with a duration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spikes: Vec<Spike>,
}

/// A sweep's settings; each left out takes `barrage sweep`'s default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sweep {
    /// Highest rate tried, requests/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<f64>,
    /// Most rates tried after the probe (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_points: Option<u32>,
    /// Longest each rate runs (default 20 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_duration_seconds: Option<f64>,
    /// Unmeasured seconds at the start of each rate (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_seconds: Option<f64>,
    /// Seconds per level of the closed-loop probe (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_duration_seconds: Option<f64>,
    /// Stop once the rates bracketing the knee are this close (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    #[default]
    Poisson,
    Constant,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spike {
    /// Seconds from the start.
    pub at_seconds: f64,
    pub duration_seconds: f64,
    /// Requests per second during the spike.
    pub rate: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    /// The dataset plugin: `sharegpt`, `jsonl`, `csv`, `trace`, `synthetic`….
    pub plugin: String,
    /// A ConfigMap holding the dataset's files, mounted at `/datasets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// The files, relative to `/datasets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// The plugin's own settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub config: Option<serde_json::Value>,
}

/// Where shards write their run directories and the merge reads them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    /// An existing PersistentVolumeClaim. Shards on several nodes need it
    /// `ReadWriteMany`. Without one the operator makes a claim of its own
    /// (`ReadWriteOnce`), deleted with the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_name: Option<String>,
    /// The size of the claim the operator makes (default `1Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// The Job is made; its pods are not running yet.
    Pending,
    /// Shards are sending.
    Running,
    /// The shards are done; the merge is running.
    Merging,
    /// Merged: every shard completed and every threshold passed.
    Succeeded,
    /// Merged, but a threshold failed or a shard is missing; or the spec is
    /// invalid; or the merge produced nothing.
    Failed,
    /// Stopped by `spec.cancel`; the figures are what ran.
    Cancelled,
}

impl Phase {
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Cancelled)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BenchmarkRunStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why the phase is what it is, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The instant every shard starts at (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    #[serde(default)]
    pub shards: u32,
    #[serde(default)]
    pub shards_active: u32,
    #[serde(default)]
    pub shards_succeeded: u32,
    #[serde(default)]
    pub shards_failed: u32,
    /// The merged run's figures, once merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p99_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_p99_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds_passed: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_thresholds: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_start_spread_ms: Option<f64>,
    /// A sweep's knee, requests/s, and its standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knee_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knee_uncertainty: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The CRD as YAML, as checked in.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt as _;
    let crd = BenchmarkRun::crd();
    format!(
        "# Generated by `barrage-operator crd` from host/operator/src/crd.rs; do not edit.\n{}",
        serde_yaml_ng::to_string(&crd).unwrap_or_default()
    )
}
