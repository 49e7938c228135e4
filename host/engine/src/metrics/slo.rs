//! Service-level objectives: `ttft < 200ms`, `tpot <= 50ms`. A request is
//! *good* when it succeeded and met every one; goodput counts good requests.

use std::fmt;
use std::str::FromStr;

use super::record::{Record, Status};

/// A per-request quantity an objective can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SloMetric {
    /// Time to first token.
    Ttft,
    /// Time to first byte.
    Ttfb,
    /// Time per output token.
    Tpot,
    /// The request's largest gap between output frames.
    MaxInterChunk,
    /// Send → last output frame.
    E2e,
    /// Send → stream end.
    E2eStream,
    /// (Send → stream end) / output tokens.
    Normalized,
}

const METRICS: &[(&str, SloMetric)] = &[
    ("ttft", SloMetric::Ttft),
    ("ttfb", SloMetric::Ttfb),
    ("tpot", SloMetric::Tpot),
    ("max_inter_chunk", SloMetric::MaxInterChunk),
    ("e2e", SloMetric::E2e),
    ("e2e_stream", SloMetric::E2eStream),
    ("normalized", SloMetric::Normalized),
];

/// One objective: `metric < limit` (or `<=`).
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// What is bounded.
    pub metric: SloMetric,
    /// The bound, ms.
    pub limit_ms: f64,
    /// `<=` rather than `<`.
    pub inclusive: bool,
    text: String,
}

impl Slo {
    /// Whether `r` meets this objective. A request without the quantity (a
    /// one-token response has no TPOT) meets it: there is nothing to miss.
    pub fn met_by(&self, r: &Record) -> bool {
        let v = match self.metric {
            SloMetric::Ttft => r.ttft(),
            SloMetric::Ttfb => r.ttfb(),
            SloMetric::Tpot => r.tpot(),
            SloMetric::MaxInterChunk => r.max_inter_chunk(),
            SloMetric::E2e => r.e2e(),
            SloMetric::E2eStream => Some(r.e2e_stream()),
            SloMetric::Normalized => r.normalized(),
        };
        v.is_none_or(|v| {
            if self.inclusive {
                v <= self.limit_ms
            } else {
                v < self.limit_ms
            }
        })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a text is not an objective; the message shows the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SloError(pub String);

impl FromStr for Slo {
    type Err = SloError;

    fn from_str(s: &str) -> Result<Slo, SloError> {
        parse(s).map_err(SloError)
    }
}

/// The objective `s` describes, or what is wrong with it.
fn parse(s: &str) -> Result<Slo, String> {
    let text = s.trim();
    let names = || METRICS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let (lhs, rhs, inclusive) = if let Some((l, r)) = text.split_once("<=") {
        (l, r, true)
    } else if let Some((l, r)) = text.split_once('<') {
        (l, r, false)
    } else {
        return Err(format!(
            "`{text}` is not an objective; write `METRIC < LIMIT`, e.g. `ttft < 200ms` (metrics: {})",
            names()
        ));
    };
    let name = lhs.trim();
    let metric = METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            format!(
                "`{name}` in `{text}` is not a metric an objective can bound; use one of {}",
                names()
            )
        })?;
    let rhs = rhs.trim();
    let (number, unit) = rhs.split_at(
        rhs.find(|c: char| c.is_ascii_alphabetic() || c == 'µ')
            .unwrap_or(rhs.len()),
    );
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{rhs}` in `{text}` is not a duration like `200ms`, `1.5s` or `500us`"))?;
    let factor = match unit.trim() {
        "ms" | "" => 1.0,
        "s" => 1000.0,
        "us" | "µs" => 0.001,
        other => return Err(format!("unit `{other}` in `{text}`: use ms, s or us")),
    };
    if !(value > 0.0 && value.is_finite()) {
        return Err(format!("the limit in `{text}` must be a duration > 0"));
    }
    Ok(Slo {
        metric,
        limit_ms: value * factor,
        inclusive,
        text: text.to_string(),
    })
}

/// Parse objectives from config entries, each of which may hold several
/// separated by commas.
pub fn parse_all<'a>(entries: impl IntoIterator<Item = &'a String>) -> Result<Vec<Slo>, SloError> {
    parse_list(entries)
}

/// Parse config entries, each of which may hold several items separated
/// by commas (objectives, thresholds).
pub fn parse_list<'a, T: FromStr>(entries: impl IntoIterator<Item = &'a String>) -> Result<Vec<T>, T::Err> {
    entries
        .into_iter()
        .flat_map(|e| e.split(','))
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// Whether `r` is good: succeeded and met every objective.
pub fn is_good(r: &Record, slos: &[Slo]) -> bool {
    // An answer with no output is no answer, however fast.
    r.status == Status::Ok && r.output_tokens > 0 && slos.iter().all(|s| s.met_by(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_objectives_and_units() {
        let s: Vec<Slo> = parse_all(&["ttft < 200ms, tpot<=50ms".to_string(), "e2e < 1.5s".to_string()]).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].metric, s[0].limit_ms, s[0].inclusive),
            (SloMetric::Ttft, 200.0, false)
        );
        assert_eq!(
            (s[1].metric, s[1].limit_ms, s[1].inclusive),
            (SloMetric::Tpot, 50.0, true)
        );
        assert_eq!(s[2].limit_ms, 1500.0);
        assert_eq!("ttfb < 500us".parse::<Slo>().unwrap().limit_ms, 0.5);
    }

    #[test]
    fn bad_objectives_say_what_is_wrong() {
        let e = "latency < 3ms".parse::<Slo>().unwrap_err().0;
        assert!(e.contains("`latency`") && e.contains("ttft"), "{e}");
        assert!("ttft 200".parse::<Slo>().unwrap_err().0.contains("METRIC < LIMIT"));
        assert!("ttft < fast".parse::<Slo>().unwrap_err().0.contains("not a duration"));
        assert!("ttft < 3h".parse::<Slo>().unwrap_err().0.contains("unit `h`"));
        assert!("ttft < -3ms".parse::<Slo>().is_err());
    }

    #[test]
    fn good_means_ok_and_every_objective_met() {
        let r = Record {
            sent_ms: 0.0,
            first_token_ms: Some(150.0),
            last_token_ms: Some(450.0),
            content_frames_ms: vec![150.0, 450.0],
            output_tokens: 4, // tpot 100 ms
            end_ms: 460.0,
            ..Record::default()
        };
        let slos = parse_all(&["ttft < 200ms".to_string()]).unwrap();
        assert!(is_good(&r, &slos));
        let slos = parse_all(&["ttft < 200ms, tpot < 100ms".to_string()]).unwrap();
        assert!(!is_good(&r, &slos), "tpot is exactly 100, not below");
        let slos = parse_all(&["tpot <= 100ms".to_string()]).unwrap();
        assert!(is_good(&r, &slos));
        let failed = Record {
            status: Status::Timeout,
            ..r
        };
        assert!(!is_good(&failed, &[]));
    }
}
