//! Each metric against examples computed by hand.

use std::time::{Duration, Instant};

use super::*;
use crate::transport::{Ending, Exchange};
use barrage_core::types::{ContentDelta, Event, Usage};
use barrage_plugin_host::{StreamOutcome, TimedEvent};

/// An exchange sent at `origin` + 0 whose frames arrive at the given ms
/// offsets, each frame carrying the given events.
fn exchange(origin: Instant, frames: Vec<(f64, Vec<Event>)>, end_ms: f64) -> Response {
    let at = |ms: f64| origin + Duration::from_secs_f64(ms / 1000.0);
    let mut events = Vec::new();
    let n = frames.len() as u32;
    for (i, (ms, evs)) in frames.into_iter().enumerate() {
        for event in evs {
            events.push(TimedEvent {
                at: at(ms),
                frame: i as u32,
                event,
            });
        }
    }
    let exchange = Exchange {
        sent: origin,
        slot_wait: None,
        connection: None,
        headers_at: Some(at(1.0)),
        first_byte: Some(at(2.0)),
        end: at(end_ms),
        status: Some(200),
        version: Some("HTTP/1.1"),
        ending: Ending::Complete,
        bytes_received: 100,
        bytes_sent: 10,
        grpc: None,
    };
    Response {
        exchange,
        decoded: StreamOutcome {
            events,
            frames: n,
            failure: None,
            streamed: true,
        },
        malformed: MalformedFrames::Fail,
    }
}

fn content(tokens: Option<u32>) -> Event {
    Event::Content(ContentDelta {
        bytes: 3,
        tokens,
        text: None,
    })
}

fn usage(prompt: u32, completion: u32) -> Event {
    Event::Usage(Usage {
        prompt_tokens: Some(prompt),
        completion_tokens: Some(completion),
        cached_tokens: None,
        reasoning_tokens: None,
    })
}

fn end() -> Vec<Event> {
    vec![Event::Finish("stop".into()), Event::Done]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= b.abs() * 0.001 + 0.002
}

#[test]
fn role_only_and_empty_first_frames_do_not_count_as_the_first_token() {
    let o = Instant::now();
    let ex = exchange(
        o,
        vec![
            (5.0, vec![Event::RoleOnly]),
            (6.0, vec![Event::EmptyDelta]),
            (20.0, vec![content(Some(1))]),
            (30.0, vec![content(Some(1))]),
            (40.0, vec![content(Some(1))]),
            (41.0, end()),
        ],
        42.0,
    );
    let r = Record::from_exchange(1, 0, o, o, &ex);
    assert_eq!(r.status, Status::Ok);
    assert!(close(r.ttft().unwrap(), 20.0), "{:?}", r.ttft());
    assert!(close(r.ttfb().unwrap(), 2.0));
    assert_eq!(r.output_tokens, 3);
    assert_eq!(r.output_tokens_source, TokenSource::Frames);
    // (40 − 20) / (3 − 1)
    assert!(close(r.tpot().unwrap(), 10.0));
    assert!(close(r.e2e().unwrap(), 40.0));
    assert!(close(r.e2e_stream(), 42.0));
    assert!(close(r.normalized().unwrap(), 14.0));
    assert_eq!(r.ttfa(), None, "no reasoning, no time to first answer");
}

#[test]
fn multi_token_frames_spread_each_gap_over_its_tokens() {
    // Frames at 10, 20 (4 tokens), 50 (2 tokens): inter-chunk gaps 10 and 30;
    // inter-token: 10/4 four times, 30/2 twice.
    let o = Instant::now();
    let ex = exchange(
        o,
        vec![
            (10.0, vec![content(Some(1))]),
            (20.0, vec![content(Some(4))]),
            (50.0, vec![content(Some(2))]),
            (50.5, end()),
        ],
        51.0,
    );
    let r = Record::from_exchange(1, 0, o, o, &ex);
    assert_eq!(r.output_tokens, 7);
    let chunks: Vec<f64> = r.inter_chunk().collect();
    assert!(close(chunks[0], 10.0) && close(chunks[1], 30.0), "{chunks:?}");
    let tokens: Vec<(f64, u32)> = r.inter_token().collect();
    assert_eq!(tokens.len(), 2);
    assert!(close(tokens[0].0, 2.5) && tokens[0].1 == 4);
    assert!(close(tokens[1].0, 15.0) && tokens[1].1 == 2);
    // TPOT = (50 − 10) / (7 − 1)
    assert!(close(r.tpot().unwrap(), 40.0 / 6.0));

    let mut agg = Aggregator::new(1, MetricsOptions::default(), 120.0);
    agg.add(&r);
    let s = agg.summary("x", RunFacts::default(), &[], &[], None);
    let it = s.stages[0].inter_token_ms.as_ref().unwrap();
    assert_eq!(it.count, 6, "one sample per token after the first frame");
    // Four samples of 2.5 and two of 15: mean (10 + 30) / 6.
    assert!(close(it.mean, 40.0 / 6.0), "{}", it.mean);
    assert!(close(it.p(50.0).unwrap(), 2.5));
    let ic = s.stages[0].inter_chunk_ms.as_ref().unwrap();
    assert_eq!(ic.count, 2);
    assert!(close(ic.mean, 20.0));
}

#[test]
fn gaps_recorded_as_runs_give_the_distribution_of_every_sample() {
    // Frames that share a read share a timestamp: runs of zero gaps
    // between runs of other gaps, with token counts varying inside a run.
    let o = Instant::now();
    let times = [10.0, 10.0, 10.0, 12.0, 14.0, 14.0, 14.0, 14.0, 20.0, 20.0, 26.0, 27.0];
    let mut frames: Vec<(f64, Vec<Event>)> = times
        .iter()
        .enumerate()
        .map(|(i, &ms)| (ms, vec![content(Some(1 + (i as u32 % 3)))]))
        .collect();
    frames.push((27.5, end()));
    let r = Record::from_exchange(1, 0, o, o, &exchange(o, frames, 28.0));
    let mut agg = Aggregator::new(1, MetricsOptions::default(), 120.0);
    agg.add(&r);
    let s = agg.summary("x", RunFacts::default(), &[], &[], None);

    let (mut chunk, mut token) = (hist::Hist::ms(), hist::Hist::ms());
    for gap in r.inter_chunk() {
        chunk.record(gap);
    }
    for (gap, tokens) in r.inter_token() {
        for _ in 0..tokens {
            token.record(gap);
        }
    }
    let ps = MetricsOptions::default().percentiles;
    assert_eq!(s.stages[0].inter_chunk_ms, chunk.dist(&ps));
    assert_eq!(s.stages[0].inter_token_ms, token.dist(&ps));
    assert_eq!(s.stages[0].inter_chunk_ms.as_ref().unwrap().count, 11);
}

#[test]
fn usage_overrides_frame_counts_and_spreads_over_frames_without_counts() {
    // Two frames without token counts, usage says 6 output tokens: each frame
    // is taken to carry 3.
    let o = Instant::now();
    let ex = exchange(
        o,
        vec![
            (10.0, vec![content(None)]),
            (40.0, vec![content(None)]),
            (41.0, vec![usage(12, 6)]),
            (42.0, end()),
        ],
        43.0,
    );
    let r = Record::from_exchange(1, 0, o, o, &ex);
    assert_eq!((r.output_tokens, r.output_tokens_source), (6, TokenSource::Usage));
    assert_eq!(
        (r.prompt_tokens, r.prompt_tokens_source),
        (Some(12), Some(TokenSource::Usage))
    );
    assert_eq!(r.frame_tokens(1), 3);
    let tokens: Vec<(f64, u32)> = r.inter_token().collect();
    assert!(close(tokens[0].0, 10.0) && tokens[0].1 == 3, "{tokens:?}");
    assert!(close(r.tpot().unwrap(), 30.0 / 5.0));

    // Without usage or counts: one token per frame, and said to be approximate.
    let ex = exchange(
        o,
        vec![(10.0, vec![content(None)]), (40.0, vec![content(None)]), (41.0, end())],
        42.0,
    );
    let r = Record::from_exchange(2, 0, o, o, &ex);
    assert_eq!((r.output_tokens, r.output_tokens_source), (2, TokenSource::FrameCount));
    assert_eq!(r.prompt_tokens_source, None);
}

#[test]
fn a_single_token_response_has_ttft_but_no_tpot_or_gaps() {
    let o = Instant::now();
    let ex = exchange(o, vec![(15.0, vec![content(Some(1))]), (16.0, end())], 16.0);
    let r = Record::from_exchange(1, 0, o, o, &ex);
    assert_eq!(r.status, Status::Ok);
    assert!(close(r.ttft().unwrap(), 15.0));
    assert_eq!(r.tpot(), None);
    assert_eq!(r.inter_chunk().count(), 0);
    let mut agg = Aggregator::new(1, MetricsOptions::default(), 120.0);
    agg.add(&r);
    let s = agg.summary("x", RunFacts::default(), &[], &[], None);
    assert_eq!(s.stages[0].ttft_ms.as_ref().unwrap().count, 1);
    assert!(s.stages[0].tpot_ms.is_none() && s.stages[0].inter_token_ms.is_none());
}

#[test]
fn reasoning_counts_as_output_and_time_to_first_answer_is_separate() {
    let o = Instant::now();
    let reasoning = Event::Reasoning(ContentDelta {
        bytes: 3,
        tokens: Some(1),
        text: None,
    });
    let ex = exchange(
        o,
        vec![
            (10.0, vec![reasoning.clone()]),
            (20.0, vec![reasoning]),
            (30.0, vec![content(Some(1))]),
            (31.0, end()),
        ],
        31.0,
    );
    let r = Record::from_exchange(1, 0, o, o, &ex);
    assert!(close(r.ttft().unwrap(), 10.0));
    assert!(close(r.ttfa().unwrap(), 30.0));
    assert_eq!(r.reasoning_frames, 2);
    assert_eq!(r.output_tokens, 3);
}

#[test]
fn failed_and_truncated_requests_are_counted_but_not_timed() {
    let o = Instant::now();
    let ok = Record::from_exchange(
        1,
        0,
        o,
        o,
        &exchange(o, vec![(10.0, vec![content(Some(1))]), (11.0, end())], 11.0),
    );
    // Frames but no end marker or finish reason.
    let truncated = Record::from_exchange(
        2,
        0,
        o,
        o,
        &exchange(
            o,
            vec![(10.0, vec![content(Some(1))]), (20.0, vec![content(Some(1))])],
            21.0,
        ),
    );
    assert_eq!(truncated.status, Status::Truncated);
    let mut http = exchange(o, vec![], 5.0);
    http.exchange.status = Some(503);
    let http = Record::from_exchange(3, 0, o, o, &http);
    assert_eq!(
        (http.status, http.error.as_deref()),
        (Status::HttpError, Some("HTTP 503"))
    );
    let mut timeout = exchange(o, vec![(10.0, vec![content(Some(1))])], 100.0);
    timeout.exchange.ending = Ending::Timeout;
    let timeout = Record::from_exchange(4, 0, o, o, &timeout);
    assert_eq!(timeout.status, Status::Timeout);
    let mut cancelled = exchange(o, vec![], 50.0);
    cancelled.exchange.ending = Ending::Cancelled;
    let cancelled = Record::from_exchange(5, 0, o, o, &cancelled);

    let options = MetricsOptions {
        slos: slo::parse_all(&["ttft < 50ms".to_string()]).unwrap(),
        ..MetricsOptions::default()
    };
    let mut agg = Aggregator::new(1, options, 120.0);
    for r in [&ok, &truncated, &http, &timeout, &cancelled] {
        agg.add(r);
    }
    let counts = [ScheduleCounts {
        scheduled: 8,
        dropped: 1,
        missed: 1,
        not_sent: 1,
        ..ScheduleCounts::default()
    }];
    let s = agg.summary("x", RunFacts::default(), &[], &counts, None);
    let st = &s.stages[0];
    assert_eq!((st.sent, st.succeeded, st.failed, st.cancelled), (5, 1, 3, 1));
    assert_eq!(st.failed_by_class.get(&Status::Truncated), Some(&1));
    assert_eq!(st.failed_by_class.get(&Status::HttpError), Some(&1));
    assert!(st.accounted, "8 = 5 + 1 + 1 + 1 and 5 = 1 + 3 + 1");
    let client = st.client.as_ref().unwrap();
    assert!(
        client.saturated && client.missed == 1,
        "a missed arrival is the client's: {client:?}"
    );
    assert_eq!(st.ttft_ms.as_ref().unwrap().count, 1, "only the success is timed");
    assert_eq!(st.errors.get("http_error: HTTP 503"), Some(&1));
    let g = st.goodput.as_ref().unwrap();
    // One good request of four settled (the cancelled one does not count).
    assert_eq!(g.good, 1);
    assert!(close(g.share, 0.25));
    let wrong = [ScheduleCounts {
        scheduled: 8,
        dropped: 1,
        not_sent: 1,
        ..ScheduleCounts::default()
    }];
    assert!(!agg.summary("x", RunFacts::default(), &[], &wrong, None).stages[0].accounted);
}

#[test]
fn throughput_and_the_time_series() {
    // Two requests: sent at 0 and 500 ms, each 3 one-token frames, ending
    // at 1500 and 2000 ms. Window 0 → 2000 ms.
    let mut agg = Aggregator::new(1, MetricsOptions::default(), 120.0);
    for (id, sent) in [(1, 0.0), (2, 500.0)] {
        let r = Record {
            id,
            sent_ms: sent,
            scheduled_ms: sent,
            first_token_ms: Some(sent + 100.0),
            last_token_ms: Some(sent + 1200.0),
            content_frames_ms: vec![sent + 100.0, sent + 700.0, sent + 1200.0],
            content_frame_tokens: vec![Some(1); 3],
            end_ms: sent + 1500.0,
            output_tokens: 3,
            prompt_tokens: Some(10),
            measured: true,
            ..Record::default()
        };
        agg.add(&r);
    }
    let s = agg.summary("x", RunFacts::default(), &[], &[], None);
    let st = &s.stages[0];
    assert!(close(st.window_s, 2.0));
    assert!(close(st.requests_per_s, 1.0));
    assert!(close(st.output_tokens_per_s, 3.0));
    assert!(close(st.input_tokens_per_s, 10.0));
    assert!(close(st.total_tokens_per_s, 13.0));
    assert!(
        close(st.achieved_rate, 2.0),
        "2 sends 0.5 s apart: {}",
        st.achieved_rate
    );
    let ts = &s.timeseries;
    assert_eq!(ts.len(), 3);
    assert_eq!((ts[0].sent, ts[1].sent, ts[2].sent), (2, 0, 0));
    assert_eq!((ts[0].completed, ts[1].completed, ts[2].completed), (0, 1, 1));
    // Tokens by arrival: 100, 600, 700 | 1200, 1200, 1700.
    assert_eq!((ts[0].output_tokens, ts[1].output_tokens), (3, 3));
    // In flight: 1 s + 0.5 s in second 0; 0.5 + 1 in second 1; 0 in second 2 (ends at 2000).
    assert!(close(ts[0].concurrency, 1.5) && close(ts[1].concurrency, 1.5), "{ts:?}");
    // The series' histograms are coarse (2 significant digits): within 1 %.
    assert!(
        (ts[0].ttft_p50_ms.unwrap() - 100.0).abs() <= 1.0,
        "{:?}",
        ts[0].ttft_p50_ms
    );
}

#[test]
fn a_long_time_series_holds_histograms_only_for_seconds_still_open() {
    // An hour at 4 requests a second, latencies varying by the second,
    // records arriving up to 3 s out of the order they ended (as from many
    // tasks), with a 10 s timeout: a timeline that settles must hold about
    // 70 seconds of histograms, and draw the same chart as one that never does.
    let timeout_s = 10.0;
    let mut settling = summary::Timeline::new(timeout_s);
    let mut keeping = summary::Timeline::new(1e9);
    let seconds = 3600;
    let mut most_open = 0;
    let mut pending: Vec<Record> = Vec::new();
    for i in 0..seconds * 4 {
        let sent = i as f64 * 250.0;
        let ttft = 1.0 + (i % 37) as f64 * 3.0;
        let e2e = ttft + 2000.0 + (i % 11) as f64 * 700.0;
        pending.push(Record {
            id: i as u64,
            sent_ms: sent,
            scheduled_ms: sent,
            first_token_ms: Some(sent + ttft),
            last_token_ms: Some(sent + e2e),
            content_frames_ms: vec![sent + ttft, sent + e2e],
            content_frame_tokens: vec![Some(1); 2],
            end_ms: sent + e2e,
            output_tokens: 2,
            measured: true,
            ..Record::default()
        });
        // Hand over, in a shuffled order, what ended more than 3 s ago.
        let now = sent;
        pending.sort_by_key(|r| r.id % 7);
        let (ready, wait): (Vec<_>, Vec<_>) = pending.drain(..).partition(|r| r.end_ms + 3000.0 < now);
        pending = wait;
        for r in &ready {
            settling.add(r, false);
            keeping.add(r, false);
        }
        most_open = most_open.max(settling.unsettled());
    }
    for r in &pending {
        settling.add(r, false);
        keeping.add(r, false);
    }
    let bound = ((timeout_s * 1000.0 + summary::SETTLE_SLACK_MS) / 1000.0) as usize + 3 + 9;
    assert!(
        most_open <= bound,
        "{most_open} seconds held histograms at once, at most {bound} expected"
    );
    assert!(
        keeping.unsettled() > seconds - 20,
        "the reference must keep every second"
    );
    let (a, b) = (settling.points(), keeping.points());
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(
            (
                a.sent,
                a.completed,
                a.output_tokens,
                a.ttft_p50_ms,
                a.ttft_p99_ms,
                a.tpot_p50_ms
            ),
            (
                b.sent,
                b.completed,
                b.output_tokens,
                b.ttft_p50_ms,
                b.ttft_p99_ms,
                b.tpot_p50_ms
            ),
            "second {}",
            a.t_s
        );
        assert!(close(a.concurrency, b.concurrency));
    }
}

#[test]
fn records_round_trip_through_json() {
    let o = Instant::now();
    let r = Record::from_exchange(
        9,
        1,
        o,
        o,
        &exchange(o, vec![(10.0, vec![content(Some(2))]), (11.0, end())], 11.0),
    );
    let line = serde_json::to_string(&r).unwrap();
    let back: Record = serde_json::from_str(&line).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), line);
}

#[test]
fn a_malformed_frame_fails_the_request_or_is_counted_and_skipped() {
    let o = Instant::now();
    let frames = vec![
        (10.0, vec![content(Some(1))]),
        (15.0, vec![Event::Malformed("not JSON".into())]),
        (20.0, vec![content(Some(1))]),
        (21.0, end()),
    ];
    let mut ex = exchange(o, frames, 22.0);
    let failed = Record::from_exchange(1, 0, o, o, &ex);
    assert_eq!(failed.status, Status::Malformed);
    assert_eq!(failed.error.as_deref(), Some("malformed frame: not JSON"));
    assert_eq!(failed.malformed_frames, 1);
    ex.malformed = MalformedFrames::Count;
    let counted = Record::from_exchange(1, 0, o, o, &ex);
    assert_eq!(counted.status, Status::Ok);
    assert_eq!((counted.malformed_frames, counted.output_tokens), (1, 2));
    assert!(counted.error.is_none());
}

#[test]
fn a_stream_without_frames_or_an_end_is_never_ok_and_no_output_is_never_goodput() {
    let o = Instant::now();
    // Headers, then nothing: an empty stream.
    let empty = Record::from_exchange(1, 0, o, o, &exchange(o, vec![], 5.0));
    assert_eq!(empty.status, Status::EmptyResponse);
    // One frame of output and no end: truncated, however short.
    let one = Record::from_exchange(2, 0, o, o, &exchange(o, vec![(3.0, vec![content(Some(1))])], 4.0));
    assert_eq!(one.status, Status::Truncated);
    // A complete stream with no output succeeds, but is not good.
    let silent = Record::from_exchange(3, 0, o, o, &exchange(o, vec![(3.0, end())], 4.0));
    assert_eq!((silent.status, silent.output_tokens), (Status::Ok, 0));
    assert!(!slo::is_good(&silent, &[]));
    // A body gathered whole (not streamed) needs no end marker.
    let mut whole = exchange(o, vec![(3.0, vec![content(Some(1))])], 4.0);
    whole.decoded.streamed = false;
    assert_eq!(Record::from_exchange(4, 0, o, o, &whole).status, Status::Ok);
}
