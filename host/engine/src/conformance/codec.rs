//! A codec's checks.

use barrage_core::framing::Framing;
use barrage_core::rng::Rng;
use barrage_core::types::{ChatMessage, Prompt, RequestSpec, ResponseHead};
use barrage_plugin_host::{CodecPlugin, CodecWorkers};

use super::transcript::{Transcript, decode, decode_transcript};
use super::{Check, Outcome, Setup, tolerable};

/// The largest body every split in two is tried for; past it, splits are
/// taken at this many evenly spaced offsets.
const ALL_SPLITS_UP_TO: usize = 4096;
/// How much a long stream holds: a transcript's body repeated to this.
const LONG_STREAM_BYTES: usize = 2 << 20;
/// Random frames thrown at the codec.
const RANDOM_FRAMES: usize = 400;

fn spec(prompt: Prompt, stream: bool) -> RequestSpec {
    super::transcript::request(1, "conformance", prompt, 16, stream)
}

pub(super) fn checks(setup: &Setup<'_>) -> Vec<Check> {
    let plugin = match CodecPlugin::load(setup.engine, &setup.source, setup.context.clone()) {
        Ok(p) => p,
        Err(e) => return vec![Check::new("loads", Outcome::Failed(e.to_string()))],
    };
    let mut checks = vec![Check::new(
        "loads",
        Outcome::Passed(format!(
            "{} {}, contract {}",
            plugin.info.name, plugin.info.version, plugin.contract_version
        )),
    )];
    let framing = encode_checks(&plugin, &mut checks);
    let workers = match CodecWorkers::start(plugin.clone(), 1) {
        Ok(w) => w,
        Err(e) => {
            checks.push(Check::new("decodes", Outcome::Failed(format!("no plugin thread: {e}"))));
            return checks;
        }
    };
    checks.push(random_frames(&workers, framing));
    if setup.transcripts.is_empty() {
        checks.push(Check::new(
            "golden transcripts",
            Outcome::Skipped("none given (--transcript; `barrage plugin record` makes them)".into()),
        ));
    }
    for path in &setup.transcripts {
        let name = path
            .file_name()
            .map_or(path.display().to_string(), |n| n.to_string_lossy().into_owned());
        match Transcript::read(path) {
            Ok(t) => transcript_checks(&workers, &name, &t, &mut checks),
            Err(e) => checks.push(Check::new(format!("{name}: reads"), Outcome::Failed(e.to_string()))),
        }
    }
    checks
}

/// The requests it encodes: each a request the transport would send, or
/// a refusal (a prompt kind it does not take), never a trap. Returns the
/// framing its streamed request asks for.
fn encode_checks(plugin: &std::sync::Arc<CodecPlugin>, checks: &mut Vec<Check>) -> Option<Framing> {
    let mut instance = match plugin.instance() {
        Ok(i) => i,
        Err(e) => {
            checks.push(Check::new("encodes", Outcome::Failed(e.to_string())));
            return None;
        }
    };
    let chat = Prompt::Messages(vec![
        ChatMessage::text("system", "Answer briefly."),
        ChatMessage::text("user", "What is a token?"),
    ]);
    let cases = [
        (
            "text prompt, streamed",
            spec(Prompt::Text("What is a token?".into()), true),
        ),
        (
            "text prompt, not streamed",
            spec(Prompt::Text("What is a token?".into()), false),
        ),
        ("chat prompt, streamed", spec(chat, true)),
        (
            "token-id prompt, streamed",
            spec(Prompt::TokenIds(vec![3, 14, 15, 92]), true),
        ),
    ];
    let mut framing = None;
    let mut encoded = 0;
    for (what, spec) in cases {
        let stream = spec.generation.stream;
        let check = match instance.encode(spec) {
            Ok(req) => match crate::transport::check_request(&req) {
                Ok(()) => {
                    encoded += 1;
                    if stream && framing.is_none() {
                        framing = Some(req.framing);
                    }
                    Outcome::Passed(format!("a request the transport sends (streaming: {})", req.streaming))
                }
                Err(e) => Outcome::Failed(format!("not a request the transport sends: {e}")),
            },
            Err(f) if f.kind == barrage_plugin_host::FailureKind::Returned => {
                Outcome::Passed(format!("refused, as data: {}", f.message))
            }
            Err(f) => {
                // A failed instance is poisoned: the next case needs a new one.
                if let Ok(fresh) = plugin.instance() {
                    instance = fresh;
                }
                Outcome::Failed(f.to_string())
            }
        };
        checks.push(Check::new(format!("encode: {what}"), check));
    }
    if encoded == 0 {
        checks.push(Check::new(
            "encodes something",
            Outcome::Failed("it refused every request asked of it".into()),
        ));
    }
    framing
}

/// Random frames, some of them near-misses of the framing, never a trap.
fn random_frames(workers: &CodecWorkers, framing: Option<Framing>) -> Check {
    let framing = framing.unwrap_or(Framing::Sse);
    let mut rng = Rng::new(7);
    let mut body = Vec::new();
    for i in 0..RANDOM_FRAMES {
        let len = (rng.next_u64() % 200) as usize;
        let junk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        match framing {
            Framing::Sse => {
                body.extend_from_slice(b"data: ");
                // Every other frame is almost JSON.
                if i % 2 == 0 {
                    body.extend_from_slice(b"{\"choices\":[{\"delta\":{\"content\":");
                }
                body.extend(junk.iter().map(|b| if *b == b'\n' { b' ' } else { *b }));
                body.extend_from_slice(b"\n\n");
            }
            Framing::Ndjson => {
                body.extend(junk.iter().map(|b| if *b == b'\n' { b' ' } else { *b }));
                body.push(b'\n');
            }
            Framing::GrpcMessages => {
                body.push(0);
                body.extend_from_slice(&(junk.len() as u32).to_be_bytes());
                body.extend_from_slice(&junk);
            }
            Framing::Raw | Framing::AwsEventStream => body.extend_from_slice(&junk),
        }
    }
    let head = ResponseHead {
        status: 200,
        headers: Vec::new(),
    };
    let decoded = decode(workers, true, framing, &head, &body, &[]);
    Check::judged(
        "random frames",
        format!(
            "{RANDOM_FRAMES} random frames ({} bytes) became {} events, no trap",
            body.len(),
            decoded.lines.len()
        ),
        tolerable(&decoded.failure),
    )
}

fn transcript_checks(workers: &CodecWorkers, name: &str, t: &Transcript, checks: &mut Vec<Check>) {
    let Ok(body) = t.body() else { return };
    let whole = decode_transcript(workers, t, &body, &[]);
    let expected = &t.events;
    let differs = |lines: &[String]| -> Option<String> {
        let first = expected
            .iter()
            .zip(lines)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(lines.len()));
        (lines != expected.as_slice()).then(|| {
            format!(
                "event {first}: expected `{}`, got `{}` ({} events expected, {} got)",
                expected.get(first).map_or("(none)", String::as_str),
                lines.get(first).map_or("(none)", String::as_str),
                expected.len(),
                lines.len()
            )
        })
    };
    let failure_or =
        |d: &super::transcript::Decoded| d.failure.as_ref().map(|f| f.to_string()).or_else(|| differs(&d.lines));
    checks.push(Check::judged(
        format!("{name}: decodes to its events"),
        format!("{} events", expected.len()),
        failure_or(&whole),
    ));

    // Every way the bytes could arrive in two reads.
    let offsets: Vec<usize> = if body.len() <= ALL_SPLITS_UP_TO {
        (1..body.len()).collect()
    } else {
        (1..ALL_SPLITS_UP_TO)
            .map(|i| i * body.len() / ALL_SPLITS_UP_TO)
            .collect()
    };
    let failure = offsets.iter().find_map(|&cut| {
        failure_or(&decode_transcript(workers, t, &body, &[cut])).map(|why| format!("split at byte {cut}: {why}"))
    });
    checks.push(Check::judged(
        format!("{name}: every split of the stream"),
        format!("{} splits, the same events", offsets.len()),
        failure,
    ));
    let failure = [1usize, 7, 64].iter().find_map(|&size| {
        let cuts: Vec<usize> = (size..body.len()).step_by(size).collect();
        failure_or(&decode_transcript(workers, t, &body, &cuts)).map(|why| format!("reads of {size} bytes: {why}"))
    });
    checks.push(Check::judged(
        format!("{name}: small reads"),
        "reads of 1, 7 and 64 bytes, the same events",
        failure,
    ));
    let again = decode_transcript(workers, t, &body, &[]);
    checks.push(Check::judged(
        format!("{name}: deterministic"),
        "decoded twice, alike",
        (again != whole).then(|| "a second decode gave other events".to_string()),
    ));

    // Cut short anywhere: whatever the codec makes of it, not a trap.
    let failure = offsets
        .iter()
        .step_by(offsets.len().div_ceil(256).max(1))
        .find_map(|&cut| {
            tolerable(&decode_transcript(workers, t, &body[..cut], &[]).failure)
                .map(|f| format!("cut at byte {cut}: {f}"))
        });
    checks.push(Check::judged(
        format!("{name}: truncated"),
        "cut short at many offsets, never a trap",
        failure,
    ));
    if t.stream {
        malformed_and_long(workers, name, t, &body, checks);
    }
}

/// A stream with its frames broken, and a long one, through the host's
/// limits.
fn malformed_and_long(workers: &CodecWorkers, name: &str, t: &Transcript, body: &[u8], checks: &mut Vec<Check>) {
    let junk: &[u8] = match t.framing().unwrap_or(Framing::Raw) {
        Framing::Sse => b"data: {\"\xff\xfe not json\n\ndata:\n\ndata: {}\n\n: keep-alive\n\n",
        Framing::Ndjson => b"{\"\xff\xfe not json\n{}\n\n",
        Framing::GrpcMessages => &[0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0],
        Framing::Raw | Framing::AwsEventStream => b"\xff\xfe\x00 not what it expects",
    };
    let mut broken = junk.to_vec();
    broken.extend_from_slice(body);
    broken.extend_from_slice(junk);
    let decoded = decode_transcript(workers, t, &broken, &[]);
    checks.push(Check::judged(
        format!("{name}: malformed frames"),
        format!("broken frames around it became {} events, no trap", decoded.lines.len()),
        tolerable(&decoded.failure),
    ));
    let copies = (LONG_STREAM_BYTES / body.len().max(1)).clamp(2, 100_000);
    let long: Vec<u8> = body.iter().copied().cycle().take(body.len() * copies).collect();
    let started = std::time::Instant::now();
    let decoded = decode_transcript(workers, t, &long, &[]);
    checks.push(Check::judged(
        format!("{name}: long stream within limits"),
        format!(
            "{copies} copies ({} KiB, {} events) in {:.0} ms, within the deadline and memory limit",
            long.len() >> 10,
            decoded.lines.len(),
            started.elapsed().as_secs_f64() * 1000.0
        ),
        tolerable(&decoded.failure),
    ));
}
