//! Image generation (`POST /v1/images/generations`, OpenAI's shape, which
//! vLLM-Omni and SGLang's diffusion servers serve too): a prompt in, `n`
//! images of a `size` out, after a time that grows with the pixels made.
//! Like the encoder endpoints, requests are independent: a diffusion
//! server's cost is its steps over its pixels, and this model says so
//! without pretending to know its scheduler.
//!
//! An image's bytes begin with a PNG signature and an `IHDR` chunk for the
//! size asked, so a client that reads the header sees the right size; the
//! rest is filler, `bytes_per_megapixel` of it per megapixel, not a
//! picture.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use barrage_core::rng::Rng;

/// The images endpoint's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// Time of a request whatever its size, ms.
    pub base_ms: f64,
    /// Time per megapixel made, ms.
    pub per_megapixel_ms: f64,
    /// Bytes of an image per megapixel (a PNG of a photo is about 1.5 MB).
    pub bytes_per_megapixel: u32,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            base_ms: 50.0,
            per_megapixel_ms: 400.0,
            bytes_per_megapixel: 100_000,
        }
    }
}

impl ImagesConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, v) in [("base_ms", self.base_ms), ("per_megapixel_ms", self.per_megapixel_ms)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("images.{name} must be ≥ 0, got {v}"));
            }
        }
        if self.bytes_per_megapixel > 16_000_000 {
            return Err(format!(
                "images.bytes_per_megapixel must be at most 16000000, got {}",
                self.bytes_per_megapixel
            ));
        }
        Ok(())
    }
}

/// What an image request asks.
#[derive(Debug, PartialEq)]
pub(crate) struct ImagesAsked {
    /// The prompt's tokens (words).
    pub prompt_tokens: u32,
    pub n: u32,
    pub width: u32,
    pub height: u32,
    /// URLs back rather than the bytes.
    pub url: bool,
}

impl ImagesAsked {
    fn megapixels(&self) -> f64 {
        f64::from(self.width) * f64::from(self.height) / 1e6
    }
}

/// Read a request body; a refusal is a message for a 400.
pub(crate) fn parse(body: &[u8]) -> Result<ImagesAsked, String> {
    #[derive(Deserialize)]
    struct Request {
        prompt: Option<String>,
        n: Option<u32>,
        size: Option<String>,
        response_format: Option<String>,
    }
    let r: Request = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let prompt = r.prompt.ok_or("Missing required parameter: 'prompt'.")?;
    let n = r.n.unwrap_or(1);
    if !(1..=10).contains(&n) {
        return Err(format!("{n} is not a valid value for 'n': it must be from 1 to 10"));
    }
    let (width, height) = match r.size.as_deref() {
        None | Some("auto") => (1024, 1024),
        Some(s) => s
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
            .filter(|&(w, h)| (16..=4096).contains(&w) && (16..=4096).contains(&h))
            .ok_or_else(|| format!("'{s}' is not a valid size: give WIDTHxHEIGHT, each 16 to 4096"))?,
    };
    let url = match r.response_format.as_deref() {
        None | Some("b64_json") => false,
        Some("url") => true,
        Some(other) => return Err(format!("'{other}' is not a response_format: use b64_json or url")),
    };
    Ok(ImagesAsked {
        prompt_tokens: prompt.split_whitespace().count() as u32,
        n,
        width,
        height,
        url,
    })
}

/// How long the request takes, ms.
pub(crate) fn latency_ms(asked: &ImagesAsked, config: &ImagesConfig) -> f64 {
    config.base_ms + config.per_megapixel_ms * f64::from(asked.n) * asked.megapixels()
}

/// One image's bytes: a PNG signature and `IHDR`, then filler from `rng`.
fn image(width: u32, height: u32, len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut out = Vec::with_capacity(len.max(33));
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    out.extend_from_slice(&13u32.to_be_bytes());
    let chunk_start = out.len();
    out.extend_from_slice(b"IHDR");
    out.extend_from_slice(&ihdr);
    let crc = crc32fast::hash(&out[chunk_start..]);
    out.extend_from_slice(&crc.to_be_bytes());
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len.max(33));
    out
}

/// The response body: `n` images (or their URLs) and the usage.
pub(crate) fn body(asked: &ImagesAsked, config: &ImagesConfig, rng: &mut Rng) -> String {
    let len = (f64::from(config.bytes_per_megapixel) * asked.megapixels()) as usize;
    let data: Vec<Value> = (0..asked.n)
        .map(|i| {
            if asked.url {
                json!({"url": format!("https://sim.invalid/images/{:016x}-{i}.png", rng.next_u64())})
            } else {
                json!({"b64_json": STANDARD.encode(image(asked.width, asked.height, len, rng))})
            }
        })
        .collect();
    json!({
        "created": 0,
        "data": data,
        "usage": {"input_tokens": asked.prompt_tokens, "output_tokens": 0, "total_tokens": asked.prompt_tokens,
                  "input_tokens_details": {"text_tokens": asked.prompt_tokens, "image_tokens": 0}},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_and_answered_with_images_of_their_size() {
        let asked = parse(br#"{"prompt": "a red fox", "n": 2, "size": "512x256"}"#).unwrap();
        assert_eq!(
            (asked.prompt_tokens, asked.n, asked.width, asked.height),
            (3, 2, 512, 256)
        );
        let config = ImagesConfig::default();
        let out: Value = serde_json::from_str(&body(&asked, &config, &mut Rng::new(1))).unwrap();
        let images = out["data"].as_array().unwrap();
        assert_eq!(images.len(), 2);
        let png = STANDARD.decode(images[0]["b64_json"].as_str().unwrap()).unwrap();
        assert_eq!(png.len(), (100_000.0 * 512.0 * 256.0 / 1e6) as usize);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[16..24], [0, 0, 2, 0, 0, 0, 1, 0], "IHDR: 512 wide, 256 high");
        assert_eq!(crc32fast::hash(&png[12..29]).to_be_bytes(), png[29..33]);
        assert_eq!(out["usage"]["input_tokens"], 3);
        assert!((latency_ms(&asked, &config) - (50.0 + 400.0 * 2.0 * 0.131_072)).abs() < 1e-9);
        let url = parse(br#"{"prompt": "x", "response_format": "url"}"#).unwrap();
        let out: Value = serde_json::from_str(&body(&url, &config, &mut Rng::new(1))).unwrap();
        assert!(out["data"][0]["url"].as_str().unwrap().ends_with("-0.png"));
        for bad in [
            r#"{"n": 1}"#,
            r#"{"prompt": "x", "n": 0}"#,
            r#"{"prompt": "x", "size": "big"}"#,
            r#"{"prompt": "x", "size": "99999x2"}"#,
            r#"{"prompt": "x", "response_format": "png"}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
