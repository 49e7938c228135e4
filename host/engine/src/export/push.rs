//! Pushing the run's metrics for runs that end before a scrape, or run as
//! many shards: to a Pushgateway (the whole registry, replacing the run's
//! group, at each stage's end and at the run's end) and by Prometheus
//! remote write 1.0 (protobuf, snappy-compressed, every interval and at
//! the same moments). One task does both, in order, so remote-write
//! timestamps only grow. A push that fails is counted and the run goes on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, oneshot};

use super::live::LiveMetrics;
use super::{ExportConfig, ExportStats, Identity, PushStats};

/// What makes the task push.
pub(super) enum Trigger {
    /// A stage's schedule is done.
    StageEnd,
    /// The run is over: the last push, then the task ends (and says so).
    Final(oneshot::Sender<()>),
}

/// Longest wait for a Pushgateway or remote-write answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client() -> Result<HttpsClient, String> {
    let tls = barrage_core::tls::client_config(&barrage_core::tls::ClientTls::default()).map_err(|e| e.to_string())?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Start the task; it pushes on each trigger, and remote-writes every
/// `remote_write_interval_s` besides.
pub(super) fn spawn(
    config: &ExportConfig,
    identity: &Identity,
    metrics: Arc<LiveMetrics>,
    stats: Arc<Mutex<ExportStats>>,
) -> Result<mpsc::UnboundedSender<Trigger>, String> {
    let client = client()?;
    let group = config.pushgateway.as_deref().map(|base| group_url(base, identity));
    let remote_write = config.remote_write.clone();
    let every = Duration::from_secs_f64(config.remote_write_interval_s);
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut clock = Clock::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let trigger = tokio::select! {
                _ = tick.tick(), if remote_write.is_some() => None,
                t = rx.recv() => match t {
                    Some(t) => Some(t),
                    None => break,
                },
            };
            let text = metrics.prometheus_text();
            if let (Some(url), Some(_)) = (&group, &trigger) {
                let outcome = put(&client, url, text.clone()).await;
                note(&stats, |s| &mut s.pushgateway, outcome);
            }
            if let Some(url) = &remote_write {
                let outcome = match write_request(&text, clock.next()) {
                    Ok(body) => post_remote_write(&client, url, body).await,
                    Err(e) => Err(e),
                };
                note(&stats, |s| &mut s.remote_write, outcome);
            }
            if let Some(Trigger::Final(done)) = trigger {
                let _ = done.send(());
                break;
            }
        }
    });
    Ok(tx)
}

fn note(
    stats: &Mutex<ExportStats>,
    which: fn(&mut ExportStats) -> &mut Option<PushStats>,
    outcome: Result<(), String>,
) {
    let mut stats = stats.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = which(&mut stats) {
        match outcome {
            Ok(()) => s.sent += 1,
            Err(e) => {
                s.failed += 1;
                s.last_error = Some(e);
            }
        }
    }
}

/// The run's group on a Pushgateway: job `barrage`, grouped by run id and
/// shard. A value that is not a plain path segment goes base64url-encoded,
/// as the Pushgateway's API allows (`run_id@base64/…`).
pub(super) fn group_url(base: &str, identity: &Identity) -> String {
    let segment = |name: &str, value: &str| {
        let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
        if plain {
            format!("/{name}/{value}")
        } else {
            format!(
                "/{name}@base64/{}",
                base64::engine::general_purpose::URL_SAFE.encode(value)
            )
        }
    };
    format!(
        "{}/metrics/job/barrage{}{}",
        base.trim_end_matches('/'),
        segment("run_id", &identity.run_id),
        segment("shard", &identity.shard)
    )
}

async fn put(client: &HttpsClient, url: &str, text: String) -> Result<(), String> {
    let request = hyper::Request::put(url)
        .header(
            "content-type",
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )
        .body(Full::new(Bytes::from(text)))
        .map_err(|e| e.to_string())?;
    send(client, request).await
}

async fn post_remote_write(client: &HttpsClient, url: &str, body: Vec<u8>) -> Result<(), String> {
    let request = hyper::Request::post(url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .header("user-agent", concat!("barrage/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    send(client, request).await
}

/// Send `request`; anything but a 2xx answer within [`ANSWER_WITHIN`] is
/// an error that says what the server said.
async fn send(client: &HttpsClient, request: hyper::Request<Full<Bytes>>) -> Result<(), String> {
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| crate::transport::error_chain(&e))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), 4096)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            let body: String = body.chars().take(300).collect();
            Err(format!("HTTP {status}: {body}"))
        }
    };
    tokio::time::timeout(ANSWER_WITHIN, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", ANSWER_WITHIN.as_secs())))
}

/// Remote-write timestamps, Unix ms: never the same twice or going back,
/// so a second write in the same millisecond is not refused as a duplicate.
#[derive(Default)]
struct Clock {
    last: i64,
}

impl Clock {
    fn next(&mut self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.last = now.max(self.last + 1);
        self.last
    }
}

/// Remote write 1.0's messages (`prompb/remote.proto`, `types.proto`):
/// only the fields Barrage sends.
mod prompb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

/// The registry's text as a snappy-compressed `WriteRequest`, every sample
/// at `timestamp_ms`: one series per sample line, its labels sorted by
/// name with `__name__` among them, as the spec requires.
pub(super) fn write_request(text: &str, timestamp_ms: i64) -> Result<Vec<u8>, String> {
    let mut timeseries = Vec::new();
    for line in crate::exposition::lines(text)? {
        let mut labels: Vec<prompb::Label> = line
            .label_pairs()
            .map_err(|e| format!("{}: {e}", line.name))?
            .into_iter()
            .map(|(name, value)| prompb::Label { name, value })
            .collect();
        labels.push(prompb::Label {
            name: "__name__".into(),
            value: line.name.to_string(),
        });
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        timeseries.push(prompb::TimeSeries {
            labels,
            samples: vec![prompb::Sample {
                value: line.value,
                timestamp: timestamp_ms,
            }],
        });
    }
    let bytes = prost::Message::encode_to_vec(&prompb::WriteRequest { timeseries });
    snap::raw::Encoder::new()
        .compress_vec(&bytes)
        .map_err(|e| format!("snappy: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_request_decodes_back_to_one_sorted_series_per_sample() {
        let text = "# TYPE barrage_requests_total counter\n\
                    barrage_requests_total{run_id=\"r\",stage=\"0\",outcome=\"ok\"} 7\n\
                    barrage_stage -1\n";
        let body = write_request(text, 1_700_000_000_000).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let request: prompb::WriteRequest = prost::Message::decode(raw.as_slice()).unwrap();
        assert_eq!(request.timeseries.len(), 2);
        let names: Vec<&str> = request.timeseries[0].labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "outcome", "run_id", "stage"]);
        assert_eq!(request.timeseries[0].labels[0].value, "barrage_requests_total");
        assert_eq!(
            request.timeseries[1].samples,
            [prompb::Sample {
                value: -1.0,
                timestamp: 1_700_000_000_000
            }]
        );
    }

    #[test]
    fn group_values_that_are_not_path_segments_go_base64() {
        let id = |run_id: &str| Identity {
            run_id: run_id.into(),
            shard: "0".into(),
            target: String::new(),
            codec: String::new(),
        };
        assert_eq!(
            group_url("http://127.0.0.1:9091/", &id("nightly-42")),
            "http://127.0.0.1:9091/metrics/job/barrage/run_id/nightly-42/shard/0"
        );
        assert_eq!(
            group_url("http://p:9091", &id("a/b")),
            "http://p:9091/metrics/job/barrage/run_id@base64/YS9i/shard/0"
        );
    }

    #[test]
    fn remote_write_timestamps_only_grow() {
        let mut clock = Clock::default();
        let (a, b) = (clock.next(), clock.next());
        assert!(b > a);
    }
}
