//! One reconcile of a `BenchmarkRun`: make what is missing, follow the
//! shards, merge when they are done, and write what happened into the
//! status. Level-triggered: every step reads the cluster again, so a
//! restarted operator picks up where the last one was.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::crd::{BenchmarkRun, BenchmarkRunStatus, Phase};
use crate::observe::{self, Progress, condition, set_condition};
use crate::render::{self, Defaults, Plan, ROLE_LABEL, RUN_LABEL};

pub const FIELD_MANAGER: &str = "barrage-operator";

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub defaults: Defaults,
    /// Unix seconds; a test fixes it.
    pub clock: Box<dyn Fn() -> i64 + Send + Sync>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("BenchmarkRun {0} has no namespace")]
    NoNamespace(String),
}

/// How often a run is looked at while its pods run: a pod stuck before
/// starting changes no Job, so no event says so.
const WHILE_RUNNING: Duration = Duration::from_secs(10);
const WHILE_MERGING: Duration = Duration::from_secs(5);

pub async fn reconcile(run: Arc<BenchmarkRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = run.name_any();
    let ns = run.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let old = run.status.clone().unwrap_or_default();
    if old.phase.is_some_and(Phase::is_final) {
        return Ok(Action::await_change());
    }
    let now = (ctx.clock)();
    let mut step = Step {
        run: &run,
        ctx: &ctx,
        ns: &ns,
        status: old.clone(),
        now: Time(k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default()),
    };
    step.status.observed_generation = run.metadata.generation;
    step.status.shards = run.spec.shards;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let action = match jobs.get_opt(&render::shard_job_name(&name)).await? {
        None => step.start(now).await?,
        Some(job) => step.follow(&job).await?,
    };
    if step.status != old {
        let runs: Api<BenchmarkRun> = Api::namespaced(ctx.client.clone(), &ns);
        runs.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(json!({ "status": step.status })),
        )
        .await?;
    }
    Ok(action)
}

/// After a failed reconcile: try again later.
pub fn error_policy(_run: Arc<BenchmarkRun>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(30))
}

struct Step<'a> {
    run: &'a BenchmarkRun,
    ctx: &'a Context,
    ns: &'a str,
    status: BenchmarkRunStatus,
    now: Time,
}

impl Step<'_> {
    fn name(&self) -> String {
        self.run.name_any()
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned,
    {
        Api::namespaced(self.ctx.client.clone(), self.ns)
    }

    fn set(&mut self, type_: &str, status: bool, reason: &str, message: String) {
        let c = condition(
            type_,
            status,
            reason,
            message,
            self.run.metadata.generation,
            self.now.clone(),
        );
        set_condition(&mut self.status.conditions, c);
    }

    fn phase(&mut self, phase: Phase, message: String) {
        self.status.phase = Some(phase);
        self.status.message = Some(message);
    }

    fn plan(&mut self, start_at: i64) -> Option<Plan> {
        match render::plan(self.run, &self.ctx.defaults, start_at) {
            Ok(plan) => Some(plan),
            Err(e) => {
                self.set("SpecValid", false, "InvalidSpec", e.to_string());
                self.phase(Phase::Failed, e.to_string());
                None
            }
        }
    }

    /// No Job yet: make the configuration, the claim and the shards.
    async fn start(&mut self, now: i64) -> Result<Action, Error> {
        if self.run.spec.cancel {
            self.set("Cancelled", true, "Cancelled", "cancelled before it started".into());
            self.phase(Phase::Cancelled, "cancelled before it started".into());
            return Ok(Action::await_change());
        }
        let start_at = render::start_at(&self.run.spec, now);
        let Some(plan) = self.plan(start_at) else {
            return Ok(Action::await_change());
        };
        create(&self.api::<ConfigMap>(), &plan.config_map).await?;
        if let Some(claim) = &plan.claim {
            create(&self.api::<PersistentVolumeClaim>(), claim).await?;
        }
        create(&self.api::<Job>(), &plan.shards).await?;
        self.set("SpecValid", true, "Valid", String::new());
        if self.run.spec.sweep.is_some() {
            // A sweep is one pod: it starts when it is scheduled.
            self.phase(Phase::Pending, "the sweep's pod is made".into());
        } else {
            let at = rfc3339(start_at);
            self.status.start_at = Some(at.clone());
            let message = format!("{} shard(s) start at {at}", self.run.spec.shards);
            self.phase(Phase::Pending, message);
        }
        Ok(Action::requeue(WHILE_RUNNING))
    }

    /// The shards exist: follow them, then the merge.
    async fn follow(&mut self, job: &Job) -> Result<Action, Error> {
        let p = observe::progress(job);
        (
            self.status.shards_active,
            self.status.shards_succeeded,
            self.status.shards_failed,
        ) = (p.active, p.succeeded, p.failed);
        if self.status.start_at.is_none() {
            self.status.start_at = start_at_of(job).map(rfc3339);
        }
        let pods = self.pods("shard").await?;
        self.note_problems(&observe::problems(&pods));
        if self.run.spec.cancel && !p.finished && !p.suspended {
            // Suspending deletes the Job's pods gracefully (SIGTERM): each
            // shard stops and writes what it measured, which is then merged.
            self.api::<Job>()
                .patch(
                    &render::shard_job_name(&self.name()),
                    &PatchParams::apply(FIELD_MANAGER),
                    &Patch::Merge(json!({"spec": {"suspend": true}})),
                )
                .await?;
            self.phase(Phase::Running, "cancelling: the shards are stopping".into());
            return Ok(Action::requeue(WHILE_MERGING));
        }
        if !(p.finished || (p.suspended && p.active == 0)) {
            let (phase, message) = if p.ready == 0 && p.succeeded + p.failed == 0 {
                (
                    Phase::Pending,
                    format!("waiting for the shards' pods to start ({} made)", p.active),
                )
            } else {
                (
                    Phase::Running,
                    format!("{} of {} shard(s) running", p.ready, self.run.spec.shards),
                )
            };
            if !self.run.spec.cancel {
                self.phase(phase, message);
            }
            return Ok(Action::requeue(WHILE_RUNNING));
        }
        if self.run.spec.sweep.is_some() {
            // A sweep's pod wrote its own figures: there is nothing to merge.
            let job = render::shard_job_name(&self.name());
            self.finish(p, observe::headline(&pods), &job);
            return Ok(Action::await_change());
        }
        match self.api::<Job>().get_opt(&render::merge_job_name(&self.name())).await? {
            None => {
                let Some(plan) = self.plan(start_at_of(job).unwrap_or(0)) else {
                    return Ok(Action::await_change());
                };
                if let Some(merge) = &plan.merge {
                    create(&self.api::<Job>(), merge).await?;
                }
                self.phase(Phase::Merging, "the shards are done; merging".into());
                Ok(Action::requeue(WHILE_MERGING))
            }
            Some(merge) if !observe::progress(&merge).finished => {
                self.phase(Phase::Merging, "merging".into());
                Ok(Action::requeue(WHILE_MERGING))
            }
            Some(_) => {
                let pods = self.pods("merge").await?;
                self.finish(p, observe::headline(&pods), &render::merge_job_name(&self.name()));
                Ok(Action::await_change())
            }
        }
    }

    async fn pods(&self, role: &str) -> Result<Vec<Pod>, Error> {
        let selector = format!("{RUN_LABEL}={},{ROLE_LABEL}={role}", self.name());
        Ok(self
            .api::<Pod>()
            .list(&ListParams::default().labels(&selector))
            .await?
            .items)
    }

    fn note_problems(&mut self, problems: &[observe::Problem]) {
        let describe = |p: &observe::Problem| {
            let who = p
                .shard
                .map_or_else(|| p.pod.clone(), |i| format!("shard {i} (pod {})", p.pod));
            if p.detail.is_empty() {
                format!("{who}: {}", p.reason)
            } else {
                format!("{who}: {}: {}", p.reason, p.detail)
            }
        };
        let failed: Vec<_> = problems.iter().filter(|p| p.failed).collect();
        if let Some(first) = failed.first() {
            let message = failed.iter().map(|p| describe(p)).collect::<Vec<_>>().join("; ");
            self.set("ShardFailed", true, &first.reason, message);
        }
        let stuck: Vec<_> = problems.iter().filter(|p| !p.failed).collect();
        match stuck.first() {
            Some(first) => {
                let message = stuck.iter().map(|p| describe(p)).collect::<Vec<_>>().join("; ");
                self.set("PodsNotStarting", true, &first.reason, message);
            }
            None if self.status.conditions.iter().any(|c| c.type_ == "PodsNotStarting") => {
                self.set("PodsNotStarting", false, "Started", String::new());
            }
            None => {}
        }
    }

    /// The merge (or a sweep) is done: its figures, the verdict and the
    /// final phase. `job` wrote the figures.
    fn finish(&mut self, shards: Progress, headline: Option<barrage_core::headline::Headline>, job: &str) {
        let cancelled = self.run.spec.cancel;
        if cancelled {
            self.set("Cancelled", true, "Cancelled", "stopped by spec.cancel".into());
        }
        let Some(h) = headline else {
            let message = format!("{job} wrote no figures: see `kubectl logs -n {} job/{job}`", self.ns);
            self.set("Merged", false, "NoFigures", message.clone());
            self.phase(if cancelled { Phase::Cancelled } else { Phase::Failed }, message);
            return;
        };
        let s = &mut self.status;
        s.achieved_rate = Some(h.achieved_rate);
        s.requests = Some(h.sent);
        s.errors = Some(h.failed);
        s.error_rate = Some(h.error_rate);
        s.ttft_p50_ms = h.ttft_p50_ms;
        s.ttft_p99_ms = h.ttft_p99_ms;
        s.e2e_p99_ms = h.e2e_p99_ms;
        s.output_tokens_per_s = Some(h.output_tokens_per_s);
        s.thresholds_passed = h.thresholds_passed;
        s.failed_thresholds = h.failed_thresholds.clone();
        s.missing_shards = h.missing_shards.clone();
        s.shard_start_spread_ms = h.shard_start_spread_ms;
        s.knee_rate = h.knee_rate;
        s.knee_uncertainty = h.knee_uncertainty;
        self.set(
            "Merged",
            true,
            if h.complete { "Complete" } else { "Incomplete" },
            if h.missing_shards.is_empty() {
                String::new()
            } else {
                format!("shard(s) {} missing", join(&h.missing_shards))
            },
        );
        if let Some(passed) = h.thresholds_passed {
            let message = h.failed_thresholds.join("; ");
            self.set(
                "ThresholdsPassed",
                passed,
                if passed { "Passed" } else { "Failed" },
                message,
            );
        }
        let (phase, message) = if cancelled {
            (Phase::Cancelled, "cancelled; the figures are what ran".to_string())
        } else if h.thresholds_passed == Some(false) {
            (
                Phase::Failed,
                format!("threshold(s) failed: {}", h.failed_thresholds.join("; ")),
            )
        } else if !h.complete || shards.failed > 0 {
            let missing = if h.missing_shards.is_empty() {
                "a shard did not end as planned".to_string()
            } else {
                format!("shard(s) {} missing", join(&h.missing_shards))
            };
            (
                Phase::Failed,
                format!("incomplete: {missing}; the figures are the other shards'"),
            )
        } else if self.run.spec.sweep.is_some() {
            let message = match (h.knee_rate, h.knee_uncertainty) {
                (Some(rate), u) => format!("knee at {rate:.1} ± {:.1} req/s", u.unwrap_or(0.0)),
                (None, _) => "no knee: no rate tried was past it (see the sweep's sweep.md)".to_string(),
            };
            (Phase::Succeeded, message)
        } else {
            (Phase::Succeeded, format!("{:.2} req/s achieved", h.achieved_rate))
        };
        self.phase(phase, message);
    }
}

fn join(shards: &[u32]) -> String {
    shards.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// Create `object`; one that exists already (a reconcile cut short) is fine.
async fn create<K>(api: &Api<K>, object: &K) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    match api
        .create(
            &PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            },
            object,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The instant the Job's shards were told to start at.
fn start_at_of(job: &Job) -> Option<i64> {
    let args = job
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .args
        .as_ref()?;
    let i = args.iter().position(|a| a == "--start-at")?;
    args.get(i + 1)?.parse().ok()
}

fn rfc3339(unix_s: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix_s)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
