//! The codec hot path: cost per decoded SSE frame through the `openai-chat`
//! plugin in wasm, against the same decoder (`openai-common`) compiled
//! natively, for batches of 1, 16 and 64 frames per `push` call; the cost of
//! a `push` that parses nothing; and the whole plugin-thread path (open,
//! push, finish) a run uses.
//!
//! Run: `cargo bench -p barrage-plugin-host --bench codec_decode`; set `CODEC_WASM` to a
//! `.wasm` file to measure another build of the chat codec (compiler flags,
//! a third-party codec) against the same native baseline, and
//! `CODEC_FRAMES=ollama` to feed Ollama NDJSON lines instead of chat chunks
//! (for the Ollama example and its Python and JavaScript ports).

use std::hint::black_box;
use std::time::{Duration, Instant};

use barrage_core::framing::Frames;
use barrage_core::types::{DecodeOptions, ResponseHead};
use barrage_plugin_host::tokenizer::WordTokenizer;
use barrage_plugin_host::{CodecPlugin, CodecWorkers, EngineOptions, PluginContext, PluginEngine, Registry};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// A chunk as vLLM streams it for a one-token delta (or, with
/// `CODEC_FRAMES=ollama`, a line as Ollama streams it).
fn chunk(i: usize) -> Vec<u8> {
    if std::env::var("CODEC_FRAMES").is_ok_and(|f| f == "ollama") {
        return format!(
            r#"{{"model":"llama3","created_at":"2024-01-01T00:00:00Z","response":" word{i}","done":false}}"#
        )
        .into_bytes();
    }
    format!(
        r#"{{"id":"chatcmpl-8f2c1d","object":"chat.completion.chunk","created":1732752000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{{"index":0,"delta":{{"content":" word{i}"}},"logprobs":null,"finish_reason":null}}]}}"#
    )
    .into_bytes()
}

fn engine() -> PluginEngine {
    PluginEngine::new(EngineOptions {
        max_instances: 16,
        ..EngineOptions::default()
    })
    .expect("engine")
}

fn ctx() -> PluginContext {
    PluginContext {
        name: "".into(),
        config_json: "{}".into(),
        seed: 0,
        tokenizer: WordTokenizer::shared(),
        log_level: barrage_plugin_host::state::parse_level("error").expect("level"),
        log: barrage_plugin_host::state::no_log(),
        secrets: Default::default(),
    }
}

fn decode(c: &mut Criterion) {
    let engine = engine();
    let name = std::env::var("CODEC_WASM").unwrap_or_else(|_| "openai-chat".into());
    let source = Registry { plugin_dir: None }.resolve(&name).expect("codec plugin");
    let plugin = CodecPlugin::load(&engine, &source, ctx()).expect("load the codec");
    let mut instance = plugin.instance().expect("instance");
    let head = ResponseHead {
        status: 200,
        headers: vec![],
    };
    let decoder = instance
        .open(head.clone(), DecodeOptions { want_text: false })
        .expect("decoder");

    let mut group = c.benchmark_group("sse_frame_decode");
    group.measurement_time(Duration::from_secs(4));
    for batch in [1usize, 16, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        let now = Instant::now();
        let mut wasm_frames = Frames::default();
        for i in 0..batch {
            wasm_frames.push(now, None, &chunk(i));
        }
        group.bench_with_input(BenchmarkId::new("wasm", batch), &wasm_frames, |b, frames| {
            // Frames are handed over owned, as the plugin threads do.
            b.iter(|| black_box(instance.push(decoder, frames.clone()).expect("push")))
        });
        let native_bytes: Vec<Vec<u8>> = (0..batch).map(chunk).collect();
        let mut native = openai_common::StreamDecoder::new(&barrage_sdk::codec::DecodeOptions { want_text: false });
        group.bench_with_input(BenchmarkId::new("native", batch), &native_bytes, |b, bytes| {
            // The wasm call copies the frames into the guest, one buffer per
            // batch; the native one gets its own copy too, so both pay for
            // owning the input.
            b.iter(|| {
                let buffer = bytes.concat();
                let mut at = 0;
                let frames: Vec<barrage_sdk::codec::Frame> = bytes
                    .iter()
                    .map(|b| {
                        at += b.len();
                        barrage_sdk::codec::Frame {
                            event: None,
                            data: &buffer[at - b.len()..at],
                        }
                    })
                    .collect();
                black_box(native.push(&frames))
            })
        });
    }
    // The floor under the wasm figures: 64 `[DONE]` frames cost the call,
    // the copies in and the events out, and next to no parsing.
    let now = Instant::now();
    let mut done = Frames::default();
    for _ in 0..64 {
        done.push(now, None, b"[DONE]");
    }
    group.bench_with_input(BenchmarkId::new("wasm_call_floor", 64), &done, |b, frames| {
        b.iter(|| black_box(instance.push(decoder, frames.clone()).expect("push")))
    });
    group.finish();

    // The path a run takes: frames handed to a plugin thread, decoded there,
    // events returned with their timestamps when the stream finishes.
    let workers = CodecWorkers::start(plugin, 1).expect("workers");
    let mut group = c.benchmark_group("plugin_thread_stream");
    group.measurement_time(Duration::from_secs(4));
    let frames_per_stream = 64;
    group.throughput(Throughput::Elements(frames_per_stream as u64));
    group.bench_function("open_push64_finish", |b| {
        b.iter(|| {
            let s = workers.open(head.clone(), DecodeOptions { want_text: false });
            let now = Instant::now();
            for i in 0..frames_per_stream {
                let mut frame = Frames::default();
                frame.push(now, None, &chunk(i));
                workers.push(s, frame);
            }
            black_box(workers.finish(s, now).blocking_recv().expect("outcome"))
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
