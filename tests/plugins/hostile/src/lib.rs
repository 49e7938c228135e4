//! A hostile codec: a working streaming codec (every SSE frame is one
//! content token, `[DONE]` ends the stream) that attacks the host in the
//! way its configuration's `attack` names. The host's boundary tests load it
//! once per attack:
//!
//! - `redirect`: requests go to `to` (host:port) by the path (`@host:port/...`,
//!   or `form: "absolute"` for `http://host:port/...`, `form: "host"` for a
//!   `Host` header naming it).
//! - `bad-index`: every event names a frame past the end of its batch (on
//!   every `every`-th stream of an instance; default every stream).
//! - `hold`: each stream holds `mib` MiB until it ends.
//! - `flood`: `malformed` reasons, log lines and event counts far past any
//!   sane size, on every push (`reason_mib`, `events`, and `log_lines` lines
//!   of `log_mib` MiB or `log_kib` KiB).
//! - `slow-encode`: every second `encode` never returns.
//! - `slow-decode`: every `push` first burns `spins` loop turns of CPU (no
//!   clock here: calibrate by measuring), well within a generous deadline.
//! - `ambient`: `encode` looks for what the sandbox does not give (a file,
//!   the environment, the arguments, the clock, randomness) and fails the
//!   request with what it found.
//! - `clock`: logs each request's id and `send-time` as it is encoded
//!   (`encoded <id> at <seconds>.<nanoseconds>`).
//! - `leak`: tries to show the `token` secret everywhere: a log line on
//!   every `encode`, every third `encode` fails naming it, and the first
//!   frame of every stream is a server error quoting it (as its code too).

use barrage_sdk::prelude::*;
use serde_json::Value;

pub struct Hostile;

fn setting(key: &str) -> Value {
    config::value().get(key).cloned().unwrap_or(Value::Null)
}

fn attack() -> String {
    setting("attack").as_str().unwrap_or("").to_string()
}

fn number(key: &str, default: u64) -> u64 {
    setting(key).as_u64().unwrap_or(default)
}

pub struct Stream {
    held: Vec<Vec<u8>>,
    bad_index: bool,
    leaked: bool,
}

thread_local! {
    static ENCODED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static STREAMS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Codec for Hostile {
    type Decoder = Stream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            description: "attacks the host as its configuration says".into(),
            secrets: vec![barrage_sdk::SecretNeed {
                name: "token".into(),
                required: attack() == "leak",
                description: "what the `leak` attack tries to show".into(),
            }],
        }
    }

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        let n = ENCODED.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        if attack() == "slow-encode" && n.is_multiple_of(2) {
            #[allow(clippy::empty_loop)]
            loop {
                std::hint::black_box(());
            }
        }
        if attack() == "ambient" {
            let file = match std::fs::read("/etc/hostname") {
                Ok(bytes) => format!("read {} bytes", bytes.len()),
                Err(e) => format!("denied ({})", e.kind()),
            };
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(u64::MAX);
            let started = std::time::Instant::now();
            std::hint::black_box((0..100_000u64).sum::<u64>());
            // std seeds its hash keys from WASI's random source.
            let random = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
            return Err(format!(
                "file: {file}; env vars: {}; args: {}; cwd: {}; clock: {since_epoch} s; elapsed: {} ns; random: {}",
                std::env::vars_os().count(),
                std::env::args_os().count(),
                std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|_| "none".into()),
                started.elapsed().as_nanos(),
                random,
            ));
        }
        if attack() == "clock" {
            let t = &spec.send_time;
            log::warn(&format!("encoded {} at {}.{:09}", spec.id, t.seconds, t.nanoseconds));
        }
        if attack() == "leak" {
            let token = secrets::get("token")?;
            log::warn(&format!("the token is {token}"));
            if n.is_multiple_of(3) {
                return Err(format!("encode refused, token {token}"));
            }
        }
        let mut path = "/v1/completions".to_string();
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if attack() == "redirect" {
            let to = setting("to").as_str().unwrap_or("127.0.0.1:9").to_string();
            match setting("form").as_str() {
                Some("absolute") => path = format!("http://{to}/v1/completions"),
                Some("host") => headers.push(("host".into(), to)),
                _ => path = format!("@{to}/v1/completions"),
            }
        }
        let body = serde_json::json!({
            "model": spec.model,
            "prompt": match spec.prompt { Prompt::Text(t) => t, _ => String::new() },
            "max_tokens": spec.generation.max_tokens,
            "stream": true,
        });
        Ok(EncodedRequest {
            request: WireRequest::Http(HttpRequest {
                method: "POST".into(),
                path,
                headers,
                body: body.to_string().into_bytes(),
            }),
            streaming: true,
            framing: Framing::Sse,
            output: OutputKind::Tokens,
            prompt_tokens: None,
        })
    }

    fn decoder(_head: ResponseHead, _options: DecodeOptions) -> Stream {
        let mut held = Vec::new();
        if attack() == "hold" {
            for _ in 0..number("mib", 16) {
                // Touched, so the pages are really there.
                held.push(std::hint::black_box(vec![0x5Au8; 1 << 20]));
            }
        }
        let n = STREAMS.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        Stream {
            held,
            bad_index: attack() == "bad-index" && n.is_multiple_of(number("every", 1).max(1)),
            leaked: false,
        }
    }

    fn decode_unary(_head: ResponseHead, _body: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(vec![Event::Done])
    }
}

impl Decoder for Stream {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        let attack = attack();
        if attack == "slow-decode" {
            let mut x = 0u64;
            for i in 0..number("spins", 0) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            std::hint::black_box(x);
        }
        let n = frames.len() as u32;
        let mut out = Vec::new();
        if attack == "leak" && !self.leaked {
            self.leaked = true;
            let token = secrets::get("token")?;
            out.push(FrameEvent {
                frame: 0,
                event: Event::ServerError(ServerError {
                    code: Some(token.clone()),
                    message: format!("the server saw {token}"),
                }),
            });
        }
        for (i, f) in frames.iter().enumerate() {
            let event = if f.data.starts_with(b"[DONE]") {
                out.push(FrameEvent {
                    frame: i as u32,
                    event: Event::Finish("stop".into()),
                });
                Event::Done
            } else {
                Event::Content(ContentDelta {
                    bytes: f.data.len() as u32,
                    tokens: Some(1),
                    text: None,
                })
            };
            let frame = if self.bad_index { n + i as u32 } else { i as u32 };
            out.push(FrameEvent { frame, event });
        }
        if attack == "flood" {
            let line_bytes = match number("log_kib", 0) {
                0 => (number("log_mib", 10) as usize) << 20,
                kib => (kib as usize) << 10,
            };
            if line_bytes > 0 {
                let line = "L".repeat(line_bytes);
                for _ in 0..number("log_lines", 1) {
                    log::warn(&line);
                }
            }
            for _ in 0..number("events", 500_000) {
                out.push(FrameEvent {
                    frame: 0,
                    event: Event::Content(ContentDelta {
                        bytes: 1,
                        tokens: Some(1),
                        text: None,
                    }),
                });
            }
            let reason_mib = number("reason_mib", 10) as usize;
            if reason_mib > 0 {
                out.push(FrameEvent {
                    frame: 0,
                    event: Event::Malformed("R".repeat(reason_mib << 20)),
                });
            }
        }
        std::hint::black_box(&self.held);
        Ok(out)
    }
}

barrage_sdk::export_codec!(Hostile);
