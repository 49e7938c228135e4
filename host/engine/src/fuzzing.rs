//! Entry points for the fuzz targets in `fuzz/`: what reads a server's bytes
//! or a user's configuration, driven as the engine drives it. Each returns
//! what it made of its input; the targets check that nothing panics and
//! that the answer does not depend on how the input was split. Not an API.

use std::time::{Duration, Instant};

use crate::config::{RunConfig, StageKind};
use crate::load::shape;
use crate::transport::h1::{self, BodyDecoder, Parsed};

/// What the direct HTTP/1.1 path made of a response.
#[derive(Debug, PartialEq, Eq)]
pub struct H1Outcome {
    /// The final head's status and header count, or why there is none.
    pub head: Result<Option<(u16, usize)>, String>,
    /// The body as decoded.
    pub body: Vec<u8>,
    /// How the body ended: complete, not yet, or why it failed.
    pub ending: Result<bool, String>,
}

/// `bytes` read as one response to `method`, as the connection reads it:
/// interim responses skipped, the head parsed, then the rest of the bytes
/// decoded in reads of `piece` bytes.
pub fn h1_response(bytes: &[u8], method: &str, piece: usize) -> H1Outcome {
    let mut at = 0;
    let head = loop {
        match h1::parse_head(&bytes[at..], method) {
            Ok(Parsed::Partial) => {
                return H1Outcome {
                    head: Ok(None),
                    body: Vec::new(),
                    ending: Ok(false),
                };
            }
            Ok(Parsed::Interim(n)) => at += n,
            Ok(Parsed::Head(head, n)) => {
                at += n;
                break head;
            }
            Err(e) => {
                return H1Outcome {
                    head: Err(e),
                    body: Vec::new(),
                    ending: Ok(false),
                };
            }
        }
    };
    let mut decoder = head.body.clone();
    let mut body = Vec::new();
    let ending = decode_in_pieces(&mut decoder, &bytes[at..], piece.max(1), &mut body);
    H1Outcome {
        head: Ok(Some((head.status, head.headers.len()))),
        body,
        ending,
    }
}

fn decode_in_pieces(
    decoder: &mut BodyDecoder,
    mut rest: &[u8],
    piece: usize,
    body: &mut Vec<u8>,
) -> Result<bool, String> {
    while !rest.is_empty() && !decoder.is_done() {
        let read = &rest[..piece.min(rest.len())];
        let mut held = read;
        // A read is decoded until the body ends or the read is used up,
        // as `Conn::read_body` does with its buffer.
        while !held.is_empty() && !decoder.is_done() {
            let used = decoder.decode(held, |d| body.extend_from_slice(d))?;
            // Else the connection would read the same bytes forever.
            assert!(used > 0, "the decoder took nothing of a read yet is not done");
            held = &held[used..];
        }
        rest = &rest[read.len() - held.len()..];
        if !held.is_empty() {
            break;
        }
    }
    Ok(decoder.is_done())
}

/// A run configuration as `barrage run --config` reads it; when it passes
/// its checks, what the pacer derives from each stage before anything is
/// sent: its measurement window, the first arrivals of its schedule, the
/// arrivals left, and a closed loop's users over time.
pub fn run_config(yaml: &str) -> Result<u64, String> {
    let config: RunConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
    let plan = config.plan().map_err(|e| e.to_string())?;
    let config = &plan.config;
    let _ = Duration::from_secs_f64(config.request.timeout_s);
    let _ = Duration::from_secs_f64(config.grace_period_s);
    let start = Instant::now();
    let mut arrivals = 0u64;
    for (index, (stage, kind)) in config.stages.iter().zip(&plan.kinds).enumerate() {
        let _ = Duration::from_secs_f64(stage.pause_after_s);
        let window = crate::load::shared::Window::of(stage, start);
        let _ = window.contains(start);
        match kind {
            StageKind::Arrivals => {
                // As the pacer draws them, up to its first wait.
                let mut a = shape::stage_arrivals(stage, config.seed, index);
                for _ in 0..1000 {
                    match a.poll_next() {
                        shape::Next::At(at) => {
                            // The pacer's send time: must not overflow.
                            let _ = start + at;
                            arrivals += 1;
                        }
                        shape::Next::NotBefore(_) | shape::Next::End => break,
                    }
                }
                arrivals = arrivals.saturating_add(a.left());
            }
            StageKind::Users => {
                let d = stage.duration_s.unwrap_or(1.0);
                for k in 0..=10 {
                    arrivals = arrivals.saturating_add(shape::users_at(stage, d * f64::from(k) / 10.0) as u64);
                }
            }
            StageKind::Trace => {}
        }
    }
    Ok(arrivals)
}

/// A rate expression: parsed, and evaluated over a stage as the pacer's
/// thinning and the configuration check evaluate it.
pub fn rate_expr(src: &str) -> Option<f64> {
    let expr = crate::load::expr::Expr::parse(src).ok()?;
    Some(
        (0..=64)
            .map(|k| expr.eval(f64::from(k) * 1.5))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    )
}
