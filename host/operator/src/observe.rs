//! Reading what the cluster did: a Job's progress, the pods that failed or
//! cannot start, and the merged run's figures from the merge pod's
//! termination message. Pure functions of API objects.

use barrage_core::headline::Headline;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// How far a Job has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub active: u32,
    /// Active pods that are running (no probes: ready once started).
    pub ready: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// Complete or Failed: no pod of it will run again.
    pub finished: bool,
    pub suspended: bool,
}

pub fn progress(job: &Job) -> Progress {
    let status = job.status.clone().unwrap_or_default();
    let count = |n: Option<i32>| n.unwrap_or(0).max(0) as u32;
    let finished = status
        .conditions
        .iter()
        .flatten()
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
    Progress {
        active: count(status.active),
        ready: count(status.ready),
        succeeded: count(status.succeeded),
        failed: count(status.failed),
        finished,
        suspended: job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false),
    }
}

/// A pod of the run that failed, or that cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The shard (its completion index), when the pod is a shard.
    pub shard: Option<u32>,
    pub pod: String,
    /// `OOMKilled`, `Error`, `Evicted`, `ImagePullBackOff`, `Unschedulable`….
    pub reason: String,
    pub detail: String,
    /// Failed for good, rather than stuck before starting.
    pub failed: bool,
}

const STUCK: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

pub fn problems(pods: &[Pod]) -> Vec<Problem> {
    let mut out = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let shard = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("batch.kubernetes.io/job-completion-index"))
            .and_then(|i| i.parse().ok());
        let Some(status) = &pod.status else { continue };
        let problem = |reason: &str, detail: String, failed: bool| Problem {
            shard,
            pod: name.clone(),
            reason: reason.to_string(),
            detail,
            failed,
        };
        let containers = status.container_statuses.iter().flatten();
        if status.phase.as_deref() == Some("Failed") {
            let terminated = containers.clone().find_map(|c| c.state.as_ref()?.terminated.clone());
            let (reason, detail) = match (&status.reason, terminated) {
                (Some(reason), _) => (reason.clone(), status.message.clone().unwrap_or_default()),
                (None, Some(t)) => (
                    t.reason.unwrap_or_else(|| "Error".into()),
                    format!("exit code {}", t.exit_code),
                ),
                (None, None) => ("Failed".into(), status.message.clone().unwrap_or_default()),
            };
            out.push(problem(&reason, detail, true));
            continue;
        }
        if let Some(w) = containers
            .filter_map(|c| c.state.as_ref()?.waiting.clone())
            .find(|w| w.reason.as_deref().is_some_and(|r| STUCK.contains(&r)))
        {
            out.push(problem(
                w.reason.as_deref().unwrap_or_default(),
                w.message.unwrap_or_default(),
                false,
            ));
            continue;
        }
        if let Some(c) =
            status.conditions.iter().flatten().find(|c| {
                c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
            })
        {
            out.push(problem("Unschedulable", c.message.clone().unwrap_or_default(), false));
        }
    }
    out.sort_by(|a, b| (a.shard, &a.pod).cmp(&(b.shard, &b.pod)));
    out
}

/// The figures the merge wrote to its termination message (`--status-file`).
pub fn headline(pods: &[Pod]) -> Option<Headline> {
    pods.iter()
        .flat_map(|p| p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()))
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
        .find_map(|m| serde_json::from_str(m.trim()).ok())
}

/// Sets a condition, keeping its transition time while its status stays.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) if old.status == new.status => {
            old.reason = new.reason;
            old.message = new.message;
            old.observed_generation = new.observed_generation;
        }
        Some(old) => *old = new,
        None => conditions.push(new),
    }
}

pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: now,
    }
}
