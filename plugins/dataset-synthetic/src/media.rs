//! Synthetic images and audio, encoded inside the plugin: PNG (deflate's
//! stored blocks: a PNG as large as its pixels, as a photo nearly is),
//! JPEG (`jpeg-encoder`, at a given quality) and WAV (16-bit PCM). The
//! content is a smooth gradient with seeded noise, or a tone with noise:
//! what matters to a server is the size, the format and the bytes, and
//! these compress about as real ones do.

use barrage_sdk::dataset::random;
use serde::Deserialize;

/// Images to send with each prompt.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Images a prompt.
    #[serde(default = "one")]
    pub count: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `jpeg` (default) or `png`.
    #[serde(default)]
    pub format: ImageFormat,
    /// JPEG quality, 1 to 100 (default 85).
    #[serde(default = "default_quality")]
    pub quality: u8,
}

/// An image encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Baseline JPEG.
    #[default]
    Jpeg,
    /// PNG, 8-bit RGB.
    Png,
}

/// Audio clips to send with each prompt.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSpec {
    /// Clips a prompt.
    #[serde(default = "one")]
    pub count: u32,
    /// Length of a clip, seconds.
    pub seconds: f64,
    /// Samples a second (default 16000, what speech models take).
    #[serde(default = "default_rate")]
    pub sample_rate: u32,
}

fn one() -> u32 {
    1
}
fn default_quality() -> u8 {
    85
}
fn default_rate() -> u32 {
    16_000
}

impl ImageSpec {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if !(1..=8192).contains(&v) {
                return Err(format!("images.{name} must be from 1 to 8192 pixels, got {v}"));
            }
        }
        if !(1..=16).contains(&self.count) {
            return Err(format!("images.count must be from 1 to 16, got {}", self.count));
        }
        if !(1..=100).contains(&self.quality) {
            return Err(format!("images.quality must be from 1 to 100, got {}", self.quality));
        }
        Ok(())
    }

    pub fn media_type(&self) -> &'static str {
        match self.format {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
        }
    }

    /// One image, its noise drawn from the run's seeded random source.
    pub fn make(&self) -> Result<Vec<u8>, String> {
        let (w, h) = (self.width as usize, self.height as usize);
        let tint = random::next_u64();
        let mut noise = random::next_u64();
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let n = (next_noise(&mut noise) >> 59) as usize;
                for (c, shift) in [(x, 0), (y, 8), (x + y, 16)] {
                    let base = (c * 255 / (w + h).max(1)) + ((tint >> shift) & 0x3f) as usize;
                    rgb.push((base + n).min(255) as u8);
                }
            }
        }
        match self.format {
            ImageFormat::Png => Ok(png(self.width, self.height, &rgb)),
            ImageFormat::Jpeg => {
                let mut out = Vec::new();
                jpeg_encoder::Encoder::new(&mut out, self.quality)
                    .encode(
                        &rgb,
                        self.width as u16,
                        self.height as u16,
                        jpeg_encoder::ColorType::Rgb,
                    )
                    .map_err(|e| format!("encoding a JPEG: {e}"))?;
                Ok(out)
            }
        }
    }
}

impl AudioSpec {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.seconds > 0.0 && self.seconds <= 3600.0) {
            return Err(format!(
                "audio.seconds must be above 0 and at most 3600, got {}",
                self.seconds
            ));
        }
        if !(8_000..=192_000).contains(&self.sample_rate) {
            return Err(format!(
                "audio.sample_rate must be from 8000 to 192000, got {}",
                self.sample_rate
            ));
        }
        if !(1..=16).contains(&self.count) {
            return Err(format!("audio.count must be from 1 to 16, got {}", self.count));
        }
        Ok(())
    }

    /// One clip: a tone with noise, mono 16-bit PCM in a WAV file.
    pub fn make(&self) -> Vec<u8> {
        let samples = (self.seconds * f64::from(self.sample_rate)) as u32;
        let pitch = 200.0 + (random::next_u64() % 400) as f64;
        let mut noise = random::next_u64();
        let data_len = samples * 2;
        let mut out = Vec::with_capacity(44 + data_len as usize);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&1u16.to_le_bytes()); // mono
        out.extend_from_slice(&self.sample_rate.to_le_bytes());
        out.extend_from_slice(&(self.sample_rate * 2).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for i in 0..samples {
            let t = f64::from(i) / f64::from(self.sample_rate);
            let v =
                8000.0 * (std::f64::consts::TAU * pitch * t).sin() + ((next_noise(&mut noise) >> 54) as f64 - 512.0);
            out.extend_from_slice(&(v as i16).to_le_bytes());
        }
        out
    }
}

/// The next step of a 64-bit LCG (Knuth's MMIX constants): noise per pixel
/// or sample, far cheaper than a host call to `random` for each.
fn next_noise(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state
}

/// A PNG of 8-bit RGB pixels, its image data in deflate's stored blocks.
fn png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    let row = width as usize * 3;
    let mut raw = Vec::with_capacity((row + 1) * height as usize);
    for line in rgb.chunks(row) {
        raw.push(0); // no filter
        raw.extend_from_slice(line);
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks = raw.chunks(65_535).collect::<Vec<_>>();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    if blocks.is_empty() {
        zlib.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", &ihdr), (b"IDAT", &zlib), (b"IEND", &Vec::new())] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    out
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    b << 16 | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_matches_zlibs() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }
}
