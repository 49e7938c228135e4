//! The `BenchmarkRun` operator: a run as a Kubernetes resource, carried out
//! as an Indexed Job of shards started at one instant and a merge Job, its
//! figures written back into the resource's status.
//!
//! `crd` is the resource, `render` the objects a run needs (pure),
//! `observe` what the cluster's objects say (pure), `reconcile` the
//! controller's step, `strict` the check that a manifest has no field its
//! type does not know.

pub mod crd;
pub mod observe;
pub mod reconcile;
pub mod record;
pub mod render;
pub mod strict;

use std::sync::Arc;

use futures::Stream;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use kube::{Api, Client};

pub use reconcile::{Context, Error};

/// The controller's stream of reconcile outcomes, watching `namespace` or
/// every namespace. The caller drives it (and says what it likes about each
/// outcome).
pub fn controller(
    client: Client,
    namespace: Option<&str>,
    defaults: render::Defaults,
) -> impl Stream<Item = Result<String, String>> {
    use futures::StreamExt as _;
    let (runs, jobs): (Api<crd::BenchmarkRun>, Api<Job>) = match namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let ctx = Arc::new(Context {
        client,
        defaults,
        clock: Box::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        }),
    });
    Controller::new(runs, watcher::Config::default())
        .owns(jobs, watcher::Config::default())
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .map(|outcome| match outcome {
            Ok((object, _)) => Ok(format!(
                "reconciled {}/{}",
                object.namespace.unwrap_or_default(),
                object.name
            )),
            Err(e) => Err(e.to_string()),
        })
}
