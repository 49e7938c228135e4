//! A run's verdict for CI: the checks it passed or failed (its thresholds,
//! and whether it ran as planned), as the exit code, a JUnit XML file that
//! CI systems read, and a Markdown summary for a CI job's page.

use std::fmt::Write as _;

use crate::metrics::Summary;

/// Why a run failed, in the order the exit code picks the first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// A plugin thread panicked and was restarted: a bug in Barrage.
    PluginRestarts,
    /// Requests were sent and none succeeded.
    NoneSucceeded,
    /// The client was saturated, and `strict_client` makes that an error.
    ClientSaturated,
    /// A threshold failed.
    Threshold,
    /// The run was stopped early (a signal, `max_error_rate`).
    Stopped,
}

/// One pass/fail check: a JUnit test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was checked, e.g. `ttft p99 < 300ms`.
    pub name: String,
    /// Which part of the run: `run` or `stage N`.
    pub scope: String,
    /// Why it failed; none when it passed.
    pub failure: Option<String>,
    /// What a failure of it is.
    pub kind: Failure,
}

/// Every check of a run and the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The checks, the run's own first, then each threshold's.
    pub checks: Vec<Check>,
    /// The first failure in [`Failure`]'s order; none when all passed.
    pub failure: Option<Failure>,
}

impl Gate {
    /// Judge `summary`; `strict_client` makes a saturated client a failure.
    pub fn of(summary: &Summary, strict_client: bool) -> Gate {
        let run = |name: &str, kind, failure: Option<String>| Check {
            name: name.to_string(),
            scope: "run".into(),
            failure,
            kind,
        };
        let mut checks = vec![run(
            "the run ended as planned",
            Failure::Stopped,
            summary.run.stopped.then(|| {
                format!(
                    "stopped early: {}",
                    summary.run.stop_reason.as_deref().unwrap_or("no reason given")
                )
            }),
        )];
        let total = &summary.total;
        checks.push(run(
            "requests succeeded",
            Failure::NoneSucceeded,
            (total.sent > 0 && total.succeeded == 0).then(|| format!("no request succeeded ({} sent)", total.sent)),
        ));
        let restarts = summary.run.host.map_or(0, |h| h.plugin_thread_restarts);
        checks.push(run(
            "no plugin thread restarted",
            Failure::PluginRestarts,
            (restarts > 0).then(|| format!("a plugin thread panicked and was restarted {restarts} times")),
        ));
        if strict_client {
            for s in &summary.stages {
                let saturated = s.client.as_ref().filter(|c| c.saturated);
                checks.push(Check {
                    name: "the client kept up".into(),
                    scope: scope(s.stage),
                    failure: saturated.map(|c| format!("the client was saturated: {}", c.reasons.join("; "))),
                    kind: Failure::ClientSaturated,
                });
            }
        }
        for t in &summary.thresholds {
            checks.push(Check {
                name: t.threshold.clone(),
                scope: scope(t.stage),
                failure: (!t.passed).then(|| t.describe()),
                kind: Failure::Threshold,
            });
        }
        let failure = checks.iter().filter(|c| c.failure.is_some()).map(|c| c.kind).min();
        Gate { checks, failure }
    }

    /// Checks that failed.
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.failure.is_some())
    }

    /// The JUnit XML file: one suite for the run, one test case per check,
    /// the console table as the suite's output.
    pub fn junit(&self, summary: &Summary, console: &str) -> String {
        crate::junit::Suite {
            name: "barrage".into(),
            started_unix_s: (summary.run.started_unix_ms / 1000) as i64,
            time_s: summary.run.duration_s,
            properties: vec![
                ("results".into(), summary.dir.clone()),
                ("target".into(), summary.run.target.clone()),
                ("codec".into(), summary.run.codec.clone()),
                ("seed".into(), summary.run.seed.to_string()),
                ("barrage_version".into(), summary.barrage_version.clone()),
            ],
            cases: self
                .checks
                .iter()
                .map(|c| crate::junit::Case {
                    name: c.name.clone(),
                    classname: format!("barrage.{}", c.scope.replace(' ', "")),
                    failure: c.failure.clone().map(|why| (why, format!("{:?}", c.kind))),
                })
                .collect(),
            output: console.to_string(),
        }
        .xml()
    }

    /// A Markdown summary for a CI job's page (GitHub's
    /// `$GITHUB_STEP_SUMMARY`, GitLab's job notes): the verdict, each
    /// check that failed, every threshold, and the headline figures.
    pub fn markdown(&self, summary: &Summary) -> String {
        let mut m = String::new();
        let verdict = if self.failure.is_none() { "passed" } else { "FAILED" };
        let _ = writeln!(
            m,
            "### Barrage run {verdict}: {} ({}), {:.1} s\n",
            summary.run.target, summary.run.codec, summary.run.duration_s
        );
        for c in self.failed().filter(|c| c.kind != Failure::Threshold) {
            let _ = writeln!(m, "- :x: {}: {}", c.scope, c.failure.as_deref().unwrap_or_default());
        }
        if !summary.thresholds.is_empty() {
            m.push_str("\n| | threshold | scope | value | limit |\n|---|---|---|---|---|\n");
            for t in &summary.thresholds {
                let _ = writeln!(
                    m,
                    "| {} | `{}` | {} | {} | {} |",
                    if t.passed { ":white_check_mark:" } else { ":x:" },
                    t.threshold.replace('|', "\\|"),
                    scope(t.stage),
                    t.value.map_or("no value".into(), |v| format!("{v:.3}")),
                    t.limit.map_or("-".into(), |v| format!("{v:.3}")),
                );
            }
        }
        m.push('\n');
        m.push_str(&crate::report::figures_markdown(summary));
        let _ = writeln!(m, "\nResults: `{}`\n", summary.dir);
        m
    }
}

fn scope(stage: Option<usize>) -> String {
    stage.map_or("run".to_string(), |i| format!("stage {i}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{RunFacts, StageSummary, ThresholdResult};

    fn summary() -> Summary {
        Summary {
            schema_version: 1,
            barrage_version: "0".into(),
            dir: "runs/x".into(),
            run: RunFacts {
                started_unix_ms: 1_764_639_000_000,
                duration_s: 12.5,
                target: "http://127.0.0.1:1".into(),
                codec: "openai-chat".into(),
                ..RunFacts::default()
            },
            percentiles: vec![50.0, 99.0],
            slos: Vec::new(),
            precision: String::new(),
            stages: vec![StageSummary {
                stage: Some(0),
                sent: 10,
                succeeded: 10,
                ..StageSummary::default()
            }],
            total: StageSummary {
                sent: 10,
                succeeded: 10,
                ..StageSummary::default()
            },
            timeseries: Vec::new(),
            thresholds: vec![
                ThresholdResult {
                    threshold: "ttft p99 < 300ms".into(),
                    stage: None,
                    value: Some(120.0),
                    limit: Some(300.0),
                    passed: true,
                },
                ThresholdResult {
                    threshold: "stage 0: error_rate < 1% & <more>".into(),
                    stage: Some(0),
                    value: Some(0.5),
                    limit: Some(0.01),
                    passed: false,
                },
            ],
            server: None,
            spikes: Vec::new(),
            load_marks: Vec::new(),
            export: None,
        }
    }

    #[test]
    fn the_first_failure_in_order_decides() {
        let mut s = summary();
        assert_eq!(Gate::of(&s, false).failure, Some(Failure::Threshold));
        s.run.stopped = true;
        assert_eq!(Gate::of(&s, false).failure, Some(Failure::Threshold));
        s.thresholds.clear();
        assert_eq!(Gate::of(&s, false).failure, Some(Failure::Stopped));
        s.total.succeeded = 0;
        assert_eq!(Gate::of(&s, false).failure, Some(Failure::NoneSucceeded));
        s.run.stopped = false;
        s.total.succeeded = 10;
        assert_eq!(Gate::of(&s, false).failure, None);
    }

    #[test]
    fn junit_has_a_case_per_check_and_escapes_text() {
        let s = summary();
        let gate = Gate::of(&s, true);
        let xml = gate.junit(&s, "table <here>\n");
        assert!(xml.contains("timestamp=\"2025-12-02T01:30:00\""), "{xml}");
        assert!(xml.contains(&format!("tests=\"{}\" failures=\"1\"", gate.checks.len())));
        assert!(xml.contains("name=\"stage 0: error_rate &lt; 1% &amp; &lt;more&gt;\" classname=\"barrage.stage0\""));
        assert!(
            xml.contains("<failure message=\"stage 0: error_rate &lt; 1% &amp; &lt;more&gt;: 0.5 (limit 0.01)\""),
            "{xml}"
        );
        assert!(xml.contains("name=\"the client kept up\" classname=\"barrage.stage0\" time=\"0\"/>"));
        assert!(xml.contains("<system-out>table &lt;here&gt;\n</system-out>"));
    }

    #[test]
    fn markdown_says_the_verdict_and_every_threshold() {
        let s = summary();
        let md = Gate::of(&s, false).markdown(&s);
        assert!(md.starts_with("### Barrage run FAILED"), "{md}");
        assert!(
            md.contains("| :white_check_mark: | `ttft p99 < 300ms` | run | 120.000 | 300.000 |"),
            "{md}"
        );
        assert!(
            md.contains("| :x: | `stage 0: error_rate < 1% & <more>` | stage 0 | 0.500 | 0.010 |"),
            "{md}"
        );
    }
}
