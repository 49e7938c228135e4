//! Prompt tokens of the images and audio in a request, in whichever API's
//! shape it sends them, by rules like the servers': an image is `ceil(width / patch) × ceil(height / patch)`
//! tokens (Qwen2-VL's rule, 14-pixel patches merged 2 × 2 into 28), read
//! from the PNG, JPEG or GIF header of the bytes sent; an image the
//! simulator cannot measure (a URL it does not fetch, another format) is
//! `image_tokens` (LLaVA-1.5's 576); audio is `audio_tokens_per_s` a second
//! of a WAV file (Qwen2-Audio's 25), else `audio_tokens`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Pixels a side of the square each image token covers; 0 counts every
    /// image as `image_tokens`.
    pub image_patch: u32,
    /// Tokens of an image the simulator cannot measure.
    pub image_tokens: u32,
    /// Tokens a second of WAV audio.
    pub audio_tokens_per_s: f64,
    /// Tokens of a clip the simulator cannot measure.
    pub audio_tokens: u32,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            image_patch: 28,
            image_tokens: 576,
            audio_tokens_per_s: 25.0,
            audio_tokens: 750,
        }
    }
}

impl MediaConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.audio_tokens_per_s >= 0.0 && self.audio_tokens_per_s <= 10_000.0) {
            return Err(format!(
                "media.audio_tokens_per_s must be from 0 to 10000, got {}",
                self.audio_tokens_per_s
            ));
        }
        Ok(())
    }

    fn image(&self, bytes: Option<&[u8]>) -> u32 {
        match bytes.and_then(image_size) {
            Some((w, h)) if self.image_patch > 0 => w.div_ceil(self.image_patch) * h.div_ceil(self.image_patch),
            _ => self.image_tokens,
        }
    }

    fn audio(&self, bytes: Option<&[u8]>) -> u32 {
        match bytes.and_then(wav_seconds) {
            Some(s) => (s * self.audio_tokens_per_s).ceil() as u32,
            None => self.audio_tokens,
        }
    }

    /// The tokens of one OpenAI chat content part that is not text.
    pub(crate) fn part_tokens(&self, part: &Value) -> u32 {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "image_url" => {
                let url = part
                    .pointer("/image_url/url")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.image(data_url_bytes(url).as_deref())
            }
            "input_audio" => {
                let data = part.pointer("/input_audio/data").and_then(Value::as_str);
                self.audio(data.and_then(|d| STANDARD.decode(d).ok()).as_deref())
            }
            "audio_url" => {
                let url = part
                    .pointer("/audio_url/url")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.audio(data_url_bytes(url).as_deref())
            }
            _ => 0,
        }
    }
}

impl MediaConfig {
    /// [`MediaConfig::tokens_in`] of a JSON body already read once as its
    /// API's request (so it parses).
    pub(crate) fn tokens_in_body(&self, body: &[u8]) -> u32 {
        serde_json::from_slice::<Value>(body).map_or(0, |v| self.tokens_in(&v))
    }

    /// The tokens of every image and clip anywhere in a request body, in
    /// whichever API's shape: OpenAI chat parts, Responses' `input_image`,
    /// Anthropic's `image` blocks, Bedrock's `image` blocks, Gemini's
    /// `inlineData` and `fileData` parts.
    pub(crate) fn tokens_in(&self, v: &Value) -> u32 {
        let b64 = |s: Option<&Value>| s.and_then(Value::as_str).and_then(|d| STANDARD.decode(d).ok());
        match v {
            Value::Array(items) => items.iter().map(|i| self.tokens_in(i)).sum(),
            Value::Object(o) => {
                match o.get("type").and_then(Value::as_str) {
                    Some("image_url" | "input_audio" | "audio_url") => return self.part_tokens(v),
                    Some("input_image") => {
                        let url = o.get("image_url").and_then(Value::as_str).unwrap_or_default();
                        return self.image(data_url_bytes(url).as_deref());
                    }
                    Some("image") if o.contains_key("source") => {
                        return self.image(b64(v.pointer("/source/data")).as_deref());
                    }
                    _ => {}
                }
                if let Some(image) = o.get("image").filter(|i| i.get("source").is_some()) {
                    return self.image(b64(image.pointer("/source/bytes")).as_deref());
                }
                for (key, source) in [("inlineData", true), ("fileData", false)] {
                    if let Some(part) = o.get(key) {
                        let bytes = if source { b64(part.get("data")) } else { None };
                        let mime = part.get("mimeType").and_then(Value::as_str).unwrap_or_default();
                        return if mime.starts_with("audio/") {
                            self.audio(bytes.as_deref())
                        } else {
                            self.image(bytes.as_deref())
                        };
                    }
                }
                o.values().map(|x| self.tokens_in(x)).sum()
            }
            _ => 0,
        }
    }
}

/// The bytes of a `data:…;base64,…` URL.
fn data_url_bytes(url: &str) -> Option<Vec<u8>> {
    let (_, b64) = url.strip_prefix("data:")?.split_once(";base64,")?;
    STANDARD.decode(b64).ok()
}

/// Width and height from a PNG's `IHDR`, a JPEG's start-of-frame or a
/// GIF's screen descriptor.
pub(crate) fn image_size(b: &[u8]) -> Option<(u32, u32)> {
    let be32 = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let be16 = |i: usize| Some(u32::from(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?)));
    if b.starts_with(b"\x89PNG\r\n\x1a\n") && b.get(12..16) == Some(b"IHDR") {
        return Some((be32(16)?, be32(20)?));
    }
    if b.starts_with(b"GIF8") {
        let le16 = |i: usize| Some(u32::from(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?)));
        return Some((le16(6)?, le16(8)?));
    }
    if b.starts_with(&[0xff, 0xd8]) {
        let mut i = 2;
        while i + 4 <= b.len() {
            if b[i] != 0xff {
                return None;
            }
            let marker = b[i + 1];
            let len = be16(i + 2)? as usize;
            // SOF0–SOF15, less DHT (C4), JPG (C8) and DAC (CC).
            if (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + len;
        }
    }
    None
}

/// A WAV file's length in seconds: its `data` chunk over its byte rate.
pub(crate) fn wav_seconds(b: &[u8]) -> Option<f64> {
    if !(b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WAVE")) {
        return None;
    }
    let le32 = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let mut i = 12;
    let mut byte_rate = None;
    while i + 8 <= b.len() {
        let size = le32(i + 4)? as usize;
        match &b[i..i + 4] {
            b"fmt " => byte_rate = le32(i + 16),
            b"data" => return Some(f64::from(size as u32) / f64::from(byte_rate.filter(|&r| r > 0)?)),
            _ => {}
        }
        i += 8 + size + (size & 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_are_read_from_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&640u32.to_be_bytes());
        png.extend_from_slice(&480u32.to_be_bytes());
        assert_eq!(image_size(&png), Some((640, 480)));
        // A JPEG with an APP0 segment before its SOF0.
        let jpeg = [
            0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8, 0x01, 0xe0, 0x02, 0x80, 3,
        ];
        assert_eq!(image_size(&jpeg), Some((640, 480)));
        assert_eq!(image_size(b"GIF89a\x80\x02\xe0\x01"), Some((640, 480)));
        assert_eq!(image_size(b"BM...."), None);
        let mut wav = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0".to_vec();
        wav.extend_from_slice(&16_000u32.to_le_bytes());
        wav.extend_from_slice(&32_000u32.to_le_bytes());
        wav.extend_from_slice(b"\x02\0\x10\0data");
        wav.extend_from_slice(&64_000u32.to_le_bytes());
        assert_eq!(wav_seconds(&wav), Some(2.0));
    }

    #[test]
    fn parts_count_by_the_rules() {
        let c = MediaConfig::default();
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&100u32.to_be_bytes());
        png.extend_from_slice(&56u32.to_be_bytes());
        let url = format!("data:image/png;base64,{}", STANDARD.encode(&png));
        assert_eq!(
            c.part_tokens(&json!({"type": "image_url", "image_url": {"url": url}})),
            4 * 2
        );
        assert_eq!(
            c.part_tokens(&json!({"type": "image_url", "image_url": {"url": "https://x/y.png"}})),
            576
        );
        assert_eq!(c.part_tokens(&json!({"type": "text", "text": "a b"})), 0);
        let b64 = STANDARD.encode(&png);
        // The same image in each API's shape, and one at a URL.
        let body = json!({"messages": [{"content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}},
            {"image": {"format": "png", "source": {"bytes": b64}}},
            {"inlineData": {"mimeType": "image/png", "data": b64}},
            {"type": "input_image", "image_url": url},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://b/x.jpg"}},
            {"text": "words are not media"}]}]});
        assert_eq!(c.tokens_in(&body), 4 * 8 + 576);
    }
}
