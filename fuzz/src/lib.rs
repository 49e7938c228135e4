//! The fuzz targets: one function per target, each taking the fuzzer's bytes
//! and panicking only on a real defect (a panic, an overflow, a hang, or an
//! answer that depends on how the input was split). `fuzz_targets/` wraps
//! each for libFuzzer (`fuzz/run` builds and runs them); `tests/corpus.rs`
//! replays the corpus through them in the ordinary test suite, so every
//! input a fuzzer once found stays a regression test.
//!
//! Where a target needs choices besides its input (a framing, a read size,
//! a plugin), they come from its first bytes.

use std::time::Instant;

use barrage_core::framing::{Framer, Framing, Refusal};

/// A fuzz target: the fuzzer's bytes in, a panic on a defect.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("framers", framers),
    ("h1_response", h1_response),
    ("rate_expr", rate_expr),
    ("run_config", run_config),
    ("sim_config", sim_config),
    ("datasets", datasets),
    ("openai_chunk", openai_chunk),
];

type Cut = (Vec<(Option<String>, Vec<u8>)>, Result<(), Refusal>);

fn cut(framing: Framing, limit: usize, body: &[u8], piece: usize) -> Cut {
    let mut framer = Framer::limited(framing, limit);
    let (mut out, now) = (barrage_core::framing::Frames::default(), Instant::now());
    let mut result = Ok(());
    for read in body.chunks(piece) {
        result = framer.push(read, now, &mut out);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        framer.finish(now, &mut out);
    }
    let frames = out.iter().map(|f| (f.event.map(str::to_owned), f.data.to_vec()));
    (frames.collect(), result)
}

/// The SSE, NDJSON, gRPC, AWS event-stream and raw framers: the same frames, and the same
/// refusal of an over-long frame, however the reads fall; no frame over
/// the limit.
pub fn framers(data: &[u8]) {
    let [choice, split, body @ ..] = data else { return };
    let framings = [
        Framing::Raw,
        Framing::Sse,
        Framing::Ndjson,
        Framing::GrpcMessages,
        Framing::AwsEventStream,
    ];
    // Bit 2 picks the limit; the rest the framing.
    let framing = framings[usize::from((choice & 3) | ((choice >> 3) << 2)) % framings.len()];
    let limit = if choice & 4 != 0 { 64 } else { usize::MAX };
    let whole = cut(framing, limit, body, body.len().max(1));
    let split = cut(framing, limit, body, 1 + usize::from(*split));
    if framing == Framing::Raw {
        // A raw frame is a read: only the bytes are the same.
        let bytes = |c: &Cut| c.0.iter().flat_map(|f| f.1.clone()).collect::<Vec<u8>>();
        assert_eq!(bytes(&whole), body);
        assert_eq!(bytes(&split), body);
        return;
    }
    assert_eq!(whole, split, "the frames depend on where the reads fell");
    assert!(
        whole.0.iter().all(|f| f.1.len() <= limit),
        "a frame over the limit was cut"
    );
}

/// The direct HTTP/1.1 path's head parser and body decoders (length,
/// chunked, until close): the same head, body and ending in one read or
/// many; a decoder that is not done always takes some of a read.
pub fn h1_response(data: &[u8]) {
    let [choice, split, bytes @ ..] = data else { return };
    let method = ["GET", "HEAD", "POST"][usize::from(choice % 3)];
    let whole = barrage_engine::fuzzing::h1_response(bytes, method, usize::MAX);
    let split = barrage_engine::fuzzing::h1_response(bytes, method, 1 + usize::from(*split));
    assert_eq!(whole, split, "the response depends on where the reads fell");
}

/// The rate-expression parser and evaluator: bounded in length and depth,
/// so nothing overflows the stack.
pub fn rate_expr(data: &[u8]) {
    if let Ok(src) = std::str::from_utf8(data) {
        let _ = barrage_engine::fuzzing::rate_expr(src);
    }
}

/// A run configuration as `run --config` reads it, and what the pacer
/// derives from one that passes its checks.
pub fn run_config(data: &[u8]) {
    if let Ok(yaml) = std::str::from_utf8(data) {
        let _ = barrage_engine::fuzzing::run_config(yaml);
    }
}

/// A simulator configuration as `barrage sim --config` reads it.
pub fn sim_config(data: &[u8]) {
    if let Ok(yaml) = std::str::from_utf8(data)
        && let Ok(config) = serde_yaml_ng::from_str::<barrage_sim::SimConfig>(yaml)
    {
        let _ = config.validate();
    }
}

/// The dataset readers (JSON Lines, CSV, ShareGPT, traces) on any input
/// file, through the SDK's native harness, skipping or failing bad records.
pub fn datasets(data: &[u8]) {
    use barrage_sdk::testing::Harness;
    let [choice, file @ ..] = data else { return };
    let on_error = if choice & 8 != 0 { "skip" } else { "fail" };
    let harness = |name: &str| {
        Harness::new()
            .config(serde_json::json!({ "on_error": on_error }))
            .file(name, file.to_vec())
    };
    let _ = match choice & 7 {
        0 => harness("in.jsonl").run::<dataset_jsonl::Jsonl>().map(drop),
        1 => harness("in.csv").run::<dataset_csv::Csv>().map(drop),
        2 => harness("in.json").run::<dataset_sharegpt::ShareGpt>().map(drop),
        3 => harness("in.jsonl").run::<dataset_sharegpt::ShareGpt>().map(drop),
        4 => harness("in.csv").run::<dataset_trace::Trace>().map(drop),
        _ => harness("in.jsonl").run::<dataset_trace::Trace>().map(drop),
    };
}

/// The OpenAI codecs' fast chunk parser against `serde_json`: whenever the
/// fast path takes a chunk, the events are the ones `serde_json`'s parse gives.
pub fn openai_chunk(data: &[u8]) {
    if let Err(e) = openai_common::check_fast_path(data) {
        panic!("{e}");
    }
}
