//! Thresholds: pass/fail conditions on a summary's figures, for gating CI
//! (`ttft p99 < 300ms`, `error_rate < 1%`, `achieved_rate > 0.99 * requested`,
//! `stage 1: tpot p50 <= 40ms`). Unlike an objective ([`super::slo`]),
//! which judges each request, a threshold judges a stage or the run.
//!
//! A threshold names any number in a stage's summary (`summary.json`'s
//! `stages[]` and `total`), by its key (`achieved_rate`), a dotted path
//! (`goodput.share`, `client.cpu_share`, `by_status.ok`), or a
//! distribution and one of its statistics (`ttft p99`, `e2e_ms mean`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stage::StageSummary;

/// Which part of a run a threshold judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// All stages together (`total` in `summary.json`): the default.
    Run,
    /// One stage, by index.
    Stage(usize),
    /// Every stage on its own: one result per stage.
    EachStage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
        }
    }
}

/// The right-hand side: a number, or a multiple of another figure of the
/// same stage (`0.99 * requested`).
#[derive(Debug, Clone, PartialEq)]
enum Limit {
    Value(f64),
    Times(f64, Figure),
}

/// A number in a stage summary.
#[derive(Debug, Clone, PartialEq)]
enum Figure {
    /// A JSON path into the stage summary, e.g. `["goodput", "share"]`.
    Path(Vec<String>),
    /// `stat` of a distribution, e.g. (`ttft_ms`, `p99`).
    Stat(String, String),
    /// failed / (sent − cancelled).
    ErrorRate,
}

/// Distributions of a stage summary: they take a statistic.
const DISTRIBUTIONS: &[&str] = &[
    "ttft_ms",
    "ttfb_ms",
    "ttfa_ms",
    "inter_chunk_ms",
    "inter_token_ms",
    "tpot_ms",
    "e2e_ms",
    "e2e_stream_ms",
    "normalized_ms_per_token",
    "send_lag_ms",
    "queue_wait_ms",
    "prompt_tokens",
    "output_tokens_per_request",
];

/// Short names users write, and the summary key each stands for.
const ALIASES: &[(&str, &str)] = &[
    ("requested", "requested_rate"),
    ("concurrency", "requested_concurrency"),
    ("goodput", "goodput.requests_per_s"),
    ("goodput_share", "goodput.share"),
    ("normalized", "normalized_ms_per_token"),
    ("itl", "inter_chunk_ms"),
];

/// Counts only the load engine knows, at the end of a stage: not judged
/// while a run is going on (see [`Threshold::live`]).
const END_ONLY: &[&str] = &["scheduled", "dropped", "missed", "not_sent", "client", "accounted"];

/// One threshold, as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Which part of the run it judges.
    pub scope: Scope,
    figure: Figure,
    op: Op,
    limit: Limit,
    text: String,
}

/// The verdict of one threshold on one stage (or the run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// The threshold, as written.
    pub threshold: String,
    /// Stage index; none for the run as a whole.
    pub stage: Option<usize>,
    /// The figure's value; none when the summary has no such value (no
    /// request measured it, or the stage never ran).
    pub value: Option<f64>,
    /// The bound it was compared with.
    pub limit: Option<f64>,
    /// Whether it held. A threshold without a value fails: a gate must not
    /// pass on no evidence.
    pub passed: bool,
}

impl ThresholdResult {
    /// `ttft p99 < 300ms: 412.5 (limit 300)`, with the stage when the
    /// text does not name it (`stages: …`), for a console or a CI log.
    pub fn describe(&self) -> String {
        let text = self.threshold.trim_start();
        let stage = match self.stage {
            Some(i) if !text.starts_with("stage") || text.starts_with("stages") => format!(" [stage {i}]"),
            _ => String::new(),
        };
        let value = self.value.map_or("no value".to_string(), |v| format!("{}", round(v)));
        let limit = self.limit.map_or(String::new(), |l| format!(" (limit {})", round(l)));
        format!("{}{stage}: {value}{limit}", self.threshold)
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Why a text is not a threshold; the message shows the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdError(pub String);

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Threshold, ThresholdError> {
        parse(s).map_err(ThresholdError)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const FORM: &str = "write `[stage N: | stages:] METRIC [STAT] OP LIMIT`, e.g. `ttft p99 < 300ms`, \
                    `error_rate < 1%`, `achieved_rate > 0.99 * requested`";

fn parse(s: &str) -> Result<Threshold, String> {
    let text = s.trim();
    let (scope, body) = split_scope(text)?;
    let (lhs, op, rhs) = split_op(body).ok_or_else(|| format!("`{text}` is not a threshold; {FORM}"))?;
    let figure = figure(lhs.trim(), text)?;
    let limit = limit(rhs.trim(), &figure, text)?;
    Ok(Threshold {
        scope,
        figure,
        op,
        limit,
        text: text.to_string(),
    })
}

fn split_scope(text: &str) -> Result<(Scope, &str), String> {
    let Some((head, body)) = text.split_once(':') else {
        return Ok((Scope::Run, text));
    };
    let head = head.trim();
    let scope = if head == "run" {
        Scope::Run
    } else if head == "stages" {
        Scope::EachStage
    } else if let Some(n) = head.strip_prefix("stage") {
        Scope::Stage(n.trim().parse().map_err(|_| {
            format!("`{head}` in `{text}` is not a scope; write `stage N:` (N from 0), `stages:` or `run:`")
        })?)
    } else {
        return Err(format!(
            "`{head}` in `{text}` is not a scope; write `stage N:` (N from 0), `stages:` or `run:`"
        ));
    };
    Ok((scope, body))
}

fn split_op(body: &str) -> Option<(&str, Op, &str)> {
    // Two-character operators first: `<=` also contains `<`.
    for (token, op) in [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)] {
        if let Some((l, r)) = body.split_once(token) {
            return Some((l, op, r));
        }
    }
    None
}

/// Every key a stage summary has at its top level (those left out when
/// empty included).
fn summary_keys() -> Vec<String> {
    let full = StageSummary {
        server: Some(crate::server_metrics::ServerStats::default()),
        ..StageSummary::default()
    };
    match serde_json::to_value(full) {
        Ok(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn resolve_name(name: &str) -> String {
    ALIASES
        .iter()
        .find(|(a, _)| *a == name)
        .map_or(name.to_string(), |(_, key)| key.to_string())
}

fn figure(lhs: &str, text: &str) -> Result<Figure, String> {
    let mut words = lhs.split_whitespace();
    let name = words
        .next()
        .ok_or_else(|| format!("`{text}` names no metric; {FORM}"))?;
    let stat = words.next();
    if let Some(extra) = words.next() {
        return Err(format!("`{extra}` in `{text}` is not expected; {FORM}"));
    }
    if name == "error_rate" {
        return match stat {
            None => Ok(Figure::ErrorRate),
            Some(s) => Err(format!("`error_rate` in `{text}` is one number; drop `{s}`")),
        };
    }
    let name = resolve_name(name);
    let dist = [name.clone(), format!("{name}_ms")]
        .into_iter()
        .find(|n| DISTRIBUTIONS.contains(&n.as_str()));
    if let Some(dist) = dist {
        let stat = stat.ok_or_else(|| {
            format!("`{dist}` in `{text}` is a distribution: name a statistic, e.g. `{name} p99` (p<N>, mean, min, max, stddev, count)")
        })?;
        let percentile = stat.strip_prefix('p').and_then(|p| p.parse::<f64>().ok());
        let stat = match percentile {
            // `p99.0` is the summary's `p99`.
            Some(p) => super::hist::percentile_key(p),
            None if matches!(stat, "mean" | "min" | "max" | "stddev" | "count") => stat.to_string(),
            None => {
                return Err(format!(
                    "`{stat}` in `{text}` is not a statistic; use p<N> (e.g. p99, p99.9), mean, min, max, stddev or count"
                ));
            }
        };
        return Ok(Figure::Stat(dist, stat));
    }
    let path: Vec<String> = name.split('.').map(str::to_string).collect();
    if !summary_keys().contains(&path[0]) {
        let mut known: Vec<String> = summary_keys()
            .into_iter()
            .filter(|k| !matches!(k.as_str(), "stage" | "label" | "errors"))
            .collect();
        known.extend(["error_rate", "requested", "goodput", "goodput_share"].map(String::from));
        known.sort();
        known.dedup();
        return Err(format!(
            "`{name}` in `{text}` is not a metric of the summary; use one of {}",
            known.join(", ")
        ));
    }
    if let Some(s) = stat {
        return Err(format!(
            "`{name}` in `{text}` is one number, not a distribution; drop `{s}`"
        ));
    }
    Ok(Figure::Path(path))
}

impl Figure {
    fn key(&self) -> &str {
        match self {
            Figure::Path(p) => &p[0],
            Figure::Stat(d, _) => d,
            Figure::ErrorRate => "error_rate",
        }
    }

    /// Whether durations (`ms`, `s`, `us`) may bound it: a figure in ms,
    /// or a statistic of one (`server.ttft_ms.p99`).
    fn in_ms(&self) -> bool {
        let in_ms = |key: &str| key.ends_with("_ms") || key.ends_with("_ms_per_token");
        match self {
            Figure::Path(path) => path.iter().any(|k| in_ms(k)),
            _ => in_ms(self.key()),
        }
    }

    fn value(&self, stage: &Value) -> Option<f64> {
        match self {
            Figure::ErrorRate => {
                let n = |k: &str| stage.get(k).and_then(Value::as_f64);
                let settled = n("sent")? - n("cancelled")?;
                (settled > 0.0).then(|| n("failed").unwrap_or(0.0) / settled)
            }
            Figure::Stat(dist, stat) => stage.get(dist)?.get(stat)?.as_f64(),
            Figure::Path(path) => path.iter().try_fold(stage, |v, k| v.get(k))?.as_f64(),
        }
    }
}

fn limit(rhs: &str, figure: &Figure, text: &str) -> Result<Limit, String> {
    if let Some((factor, name)) = rhs.split_once('*') {
        let factor = number(factor.trim(), text)?;
        let other = match self::figure(name.trim(), text)? {
            f @ Figure::Path(_) => f,
            _ => {
                return Err(format!(
                    "`{}` in `{text}`: a multiple may only be of a number such as `requested`",
                    name.trim()
                ));
            }
        };
        return Ok(Limit::Times(factor, other));
    }
    let split = rhs
        .find(|c: char| c.is_ascii_alphabetic() || c == 'µ' || c == '%')
        .unwrap_or(rhs.len());
    let (number_text, unit) = rhs.split_at(split);
    if number_text.trim().is_empty() {
        // A bare name: `sent >= scheduled`.
        let other = self::figure(rhs, text)?;
        return Ok(Limit::Times(1.0, other));
    }
    let value = number(number_text.trim(), text)?;
    let factor = match unit.trim() {
        "" => 1.0,
        "%" => 0.01,
        u @ ("ms" | "s" | "us" | "µs") => {
            if !figure.in_ms() {
                return Err(format!(
                    "`{}` in `{text}` is not a duration: give a plain number, not `{u}`",
                    figure.key()
                ));
            }
            match u {
                "s" => 1000.0,
                "ms" => 1.0,
                _ => 0.001,
            }
        }
        other => return Err(format!("unit `{other}` in `{text}`: use ms, s, us or %")),
    };
    Ok(Limit::Value(value * factor))
}

fn number(s: &str, text: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("`{s}` in `{text}` is not a number; {FORM}"))
}

impl Threshold {
    /// Whether this threshold's percentile is one the summary computes;
    /// the message says which to add otherwise.
    pub fn check_percentiles(&self, percentiles: &[f64]) -> Result<(), ThresholdError> {
        if let Figure::Stat(_, stat) = &self.figure
            && let Some(p) = stat.strip_prefix('p').and_then(|p| p.parse::<f64>().ok())
            && !percentiles.contains(&p)
        {
            return Err(ThresholdError(format!(
                "`{}`: {stat} is not among the percentiles computed ({}); add {p} to report.percentiles",
                self.text,
                percentiles
                    .iter()
                    .map(|p| format!("{p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }

    /// Whether it can be judged while the run goes on: the schedule's
    /// counts and the client's verdict exist only at the end of a stage.
    pub fn live(&self) -> bool {
        let end_only = |f: &Figure| END_ONLY.contains(&f.key());
        !end_only(&self.figure) && !matches!(&self.limit, Limit::Times(_, f) if end_only(f))
    }

    /// The verdict on one stage's summary (or the run's).
    pub fn judge(&self, summary: &StageSummary) -> ThresholdResult {
        let json = serde_json::to_value(summary).unwrap_or(Value::Null);
        self.judge_json(&json, summary.stage)
    }

    fn judge_json(&self, json: &Value, stage: Option<usize>) -> ThresholdResult {
        let value = self.figure.value(json);
        let limit = match &self.limit {
            Limit::Value(v) => Some(*v),
            Limit::Times(k, f) => f.value(json).map(|v| k * v),
        };
        ThresholdResult {
            threshold: self.text.clone(),
            stage,
            value,
            limit,
            passed: matches!((value, limit), (Some(v), Some(l)) if self.op.holds(v, l)),
        }
    }

    /// The verdicts on the stages (as JSON) and run this threshold's scope names.
    fn judge_scope(&self, stages: &[Value], total: &Value) -> Vec<ThresholdResult> {
        let stage_of = |json: &Value| json["stage"].as_u64().map(|i| i as usize);
        match self.scope {
            Scope::Run => vec![self.judge_json(total, None)],
            Scope::EachStage => stages.iter().map(|s| self.judge_json(s, stage_of(s))).collect(),
            Scope::Stage(i) => vec![match stages.get(i) {
                Some(s) => self.judge_json(s, stage_of(s)),
                None => ThresholdResult {
                    threshold: self.text.clone(),
                    stage: Some(i),
                    value: None,
                    limit: None,
                    passed: false,
                },
            }],
        }
    }
}

/// Every threshold's verdicts on the stages and the run, each summary
/// turned into JSON once however many thresholds read it.
pub fn judge_all(thresholds: &[&Threshold], stages: &[StageSummary], total: &StageSummary) -> Vec<ThresholdResult> {
    if thresholds.is_empty() {
        return Vec::new();
    }
    let json = |s: &StageSummary| serde_json::to_value(s).unwrap_or(Value::Null);
    let stages: Vec<Value> = stages.iter().map(json).collect();
    let total = json(total);
    thresholds.iter().flat_map(|t| t.judge_scope(&stages, &total)).collect()
}

/// Parse thresholds from config entries, each of which may hold several
/// separated by commas.
pub fn parse_all<'a>(entries: impl IntoIterator<Item = &'a String>) -> Result<Vec<Threshold>, ThresholdError> {
    super::slo::parse_list(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::hist::Dist;

    fn stage() -> StageSummary {
        let mut ttft = Dist {
            count: 10,
            mean: 120.0,
            min: 80.0,
            max: 400.0,
            stddev: 30.0,
            cdf: Vec::new(),
            percentiles: Default::default(),
        };
        ttft.percentiles.insert("p50".into(), 110.0);
        ttft.percentiles.insert("p99".into(), 390.0);
        StageSummary {
            stage: Some(1),
            requested_rate: Some(10.0),
            achieved_rate: 9.95,
            sent: 100,
            succeeded: 97,
            failed: 2,
            cancelled: 1,
            ttft_ms: Some(ttft),
            ..StageSummary::default()
        }
    }

    fn judge(text: &str) -> ThresholdResult {
        text.parse::<Threshold>().unwrap().judge(&stage())
    }

    #[test]
    fn thresholds_judge_distributions_rates_and_multiples() {
        let r = judge("ttft p99 < 300ms");
        assert_eq!((r.value, r.limit, r.passed), (Some(390.0), Some(300.0), false));
        assert!(judge("ttft p99 < 0.5s").passed);
        assert!(judge("ttft_ms mean <= 120").passed);
        assert!(!judge("ttft_ms mean < 120").passed);
        // 2 failed of 99 settled: 2.02 %.
        let r = judge("error_rate < 2%");
        assert!(!r.passed && (r.value.unwrap() - 2.0 / 99.0).abs() < 1e-12, "{r:?}");
        assert!(judge("error_rate < 3%").passed);
        let r = judge("achieved_rate > 0.99 * requested");
        assert_eq!((r.limit, r.passed), (Some(9.9), true));
        assert!(!judge("achieved_rate >= requested").passed);
        assert!(judge("succeeded >= 97").passed);
        assert_eq!(judge("stage 1: sent > 99").stage, Some(1));
    }

    #[test]
    fn a_threshold_with_no_value_fails() {
        let r = judge("tpot p50 < 50ms");
        assert_eq!((r.value, r.passed), (None, false));
        let r = judge("goodput_share > 0.9");
        assert_eq!((r.value, r.passed), (None, false));
        let t: Threshold = "stage 4: ttft p99 < 1s".parse().unwrap();
        let results = judge_all(&[&t], &[stage()], &stage());
        assert_eq!((results[0].stage, results[0].passed), (Some(4), false));
    }

    #[test]
    fn scopes_pick_the_stages_judged() {
        let t: Threshold = "stages: sent > 50".parse().unwrap();
        let mut second = stage();
        second.stage = Some(2);
        second.sent = 10;
        let results = judge_all(&[&t], &[stage(), second], &StageSummary::default());
        assert_eq!(
            results.iter().map(|r| (r.stage, r.passed)).collect::<Vec<_>>(),
            vec![(Some(1), true), (Some(2), false)]
        );
        let t: Threshold = "run: sent > 50".parse().unwrap();
        assert_eq!(judge_all(&[&t], &[stage()], &StageSummary::default())[0].stage, None);
    }

    #[test]
    fn bad_thresholds_say_what_is_wrong() {
        let e = |s: &str| s.parse::<Threshold>().unwrap_err().0;
        assert!(
            e("latency p99 < 3ms").contains("`latency`"),
            "{}",
            e("latency p99 < 3ms")
        );
        assert!(e("latency p99 < 3ms").contains("achieved_rate"));
        assert!(e("ttft < 3ms").contains("name a statistic"));
        assert!(e("ttft p99 3ms").contains("METRIC [STAT] OP LIMIT"));
        assert!(e("ttft median < 3ms").contains("not a statistic"));
        assert!(e("error_rate < 3ms").contains("not a duration"));
        assert!(e("ttft p99 < 3h").contains("unit `h`"));
        assert!(e("sent p99 > 3").contains("one number"));
        assert!(e("stage x: sent > 3").contains("stage N:"));
        assert!(e("achieved_rate > 0.9 * ttft p99").contains("multiple"));
        let t: Threshold = "ttft p99.5 < 3ms".parse().unwrap();
        let err = t.check_percentiles(&[50.0, 99.0]).unwrap_err().0;
        assert!(err.contains("add 99.5 to report.percentiles"), "{err}");
        assert!(
            parse_all(&["ttft p99 < 1s, error_rate < 1%".to_string()])
                .unwrap()
                .len()
                == 2
        );
    }

    #[test]
    fn schedule_counts_wait_for_the_stage_end() {
        assert!("ttft p99 < 1s".parse::<Threshold>().unwrap().live());
        assert!(!"missed < 1".parse::<Threshold>().unwrap().live());
        assert!(!"sent >= 0.99 * scheduled".parse::<Threshold>().unwrap().live());
        assert!(!"client.cpu_share < 0.9".parse::<Threshold>().unwrap().live());
    }

    #[test]
    fn every_distribution_named_is_one_in_the_summary() {
        let keys = summary_keys();
        for d in DISTRIBUTIONS {
            assert!(keys.contains(&d.to_string()), "{d}");
        }
        for (_, key) in ALIASES {
            assert!(keys.contains(&key.split('.').next().unwrap().to_string()), "{key}");
        }
    }
}
