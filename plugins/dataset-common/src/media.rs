//! Images and audio that records name: files under the dataset's
//! `media_dir` (read through the `files` import, which reaches nothing
//! else) or URLs the server fetches itself. Media types come from the
//! file's extension; a file larger than `max_media_mib` is refused, naming
//! it, since servers refuse those anyway (OpenAI's limit is 20 MB an
//! image) and every sample's media sits in memory for the run.

use barrage_sdk::dataset::{DatasetError, files};
use barrage_sdk::{ContentPart, Media, MediaSource};

use crate::input::Item;

/// Which kind of media a record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `image/…`.
    Image,
    /// `audio/…`.
    Audio,
}

impl Kind {
    /// `media` as a content part of this kind.
    pub fn part(self, media: Media) -> ContentPart {
        match self {
            Kind::Image => ContentPart::Image(media),
            Kind::Audio => ContentPart::Audio(media),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Audio => "audio",
        }
    }

    /// The media type of a file with extension `ext`.
    fn media_type(self, ext: &str) -> Option<&'static str> {
        let ext = ext.to_ascii_lowercase();
        Some(match (self, ext.as_str()) {
            (Kind::Image, "png") => "image/png",
            (Kind::Image, "jpg" | "jpeg") => "image/jpeg",
            (Kind::Image, "gif") => "image/gif",
            (Kind::Image, "webp") => "image/webp",
            (Kind::Audio, "wav") => "audio/wav",
            (Kind::Audio, "mp3") => "audio/mpeg",
            (Kind::Audio, "flac") => "audio/flac",
            (Kind::Audio, "ogg") => "audio/ogg",
            (Kind::Audio, "m4a") => "audio/mp4",
            _ => return None,
        })
    }

    fn extensions(self) -> &'static str {
        match self {
            Kind::Image => "png, jpg, jpeg, gif or webp",
            Kind::Audio => "wav, mp3, flac, ogg or m4a",
        }
    }
}

/// Most bytes one media file may hold, by default: 20 MiB.
pub const DEFAULT_MAX_MIB: f64 = 20.0;

/// A media file or URL named by `item`, as a content part.
pub fn load(reference: &str, kind: Kind, max_mib: f64, item: &Item) -> Result<ContentPart, DatasetError> {
    let what = kind.name();
    let ext = reference
        .rsplit_once('.')
        .map(|(_, e)| e.split(['?', '#']).next().unwrap_or(e))
        .unwrap_or("");
    let media_type = kind.media_type(ext);
    if ["http://", "https://", "gs://", "s3://"]
        .iter()
        .any(|scheme| reference.starts_with(scheme))
    {
        return Ok(kind.part(Media {
            // A URL's type is the server's to find out; the extension is a guess.
            media_type: media_type
                .unwrap_or(match kind {
                    Kind::Image => "image/jpeg",
                    Kind::Audio => "audio/wav",
                })
                .into(),
            source: MediaSource::Url(reference.into()),
            tokens: None,
        }));
    }
    let media_type = media_type.ok_or_else(|| {
        item.error(format!(
            "{what} `{reference}`: cannot tell its type from its extension; give a {} file",
            kind.extensions()
        ))
    })?;
    let size = files::size(reference).map_err(|e| item.error(format!("{what} `{reference}`: {e}")))?;
    let max = (max_mib * 1024.0 * 1024.0) as u64;
    if size > max {
        return Err(item.error(format!(
            "{what} `{reference}` is {size} bytes, more than max_media_mib ({max_mib} MiB): shrink it, or raise max_media_mib"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    while (bytes.len() as u64) < size {
        let chunk = files::read(reference, bytes.len() as u64, 16 << 20)
            .map_err(|e| item.error(format!("{what} `{reference}`: {e}")))?;
        if chunk.is_empty() {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(kind.part(Media {
        media_type: media_type.into(),
        source: MediaSource::Inline(bytes),
        tokens: None,
    }))
}

/// Check a `max_media_mib` setting.
pub fn check_max(max_mib: f64) -> Result<(), String> {
    if max_mib > 0.0 && max_mib <= 1024.0 {
        Ok(())
    } else {
        Err(format!("max_media_mib must be above 0 and at most 1024, got {max_mib}"))
    }
}
