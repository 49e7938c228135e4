//! A fast path for parsing the one JSON shape a stream repeats for every
//! token: a chunk with `choices`, maybe `usage`, and fields we skip.
//!
//! Decoding runs in wasm for every frame of every stream (hundreds of
//! thousands a second at high request rates), and `serde_json`'s derived
//! parser spent most of a codec's time there. This reader builds the same
//! [`Chunk`] the derived parser would, scanning bytes in place, but it gives up
//! (returns `None`) on anything it does not handle exactly as `serde_json`
//! does: error objects, escaped keys, numbers that are not plain `u32`s, deep
//! nesting, duplicate fields, anything malformed. The caller then parses the
//! frame with `serde_json`, so every answer, and every error message, is
//! `serde_json`'s; the tests check both paths agree on a large set of chunks.

use std::borrow::Cow;

use super::{Choice, Chunk, CompletionDetails, Delta, PromptDetails, WireUsage};

/// Deeper than any chunk a server sends; beyond it the caller's parser
/// (with its own limit) decides.
const MAX_DEPTH: u32 = 64;

/// Parse `data` as a chunk, or `None` when `serde_json` must decide.
pub(crate) fn chunk(data: &[u8]) -> Option<Chunk<'_>> {
    chunk_and_repeat(data).map(|(chunk, _)| chunk)
}

/// [`chunk`], and, when the chunk is a plain text chunk, what a stream
/// repeating it with other text would look like.
pub(crate) fn chunk_and_repeat(data: &[u8]) -> Option<(Chunk<'_>, Option<Repeat>)> {
    let mut r = Reader {
        b: data,
        i: 0,
        text: Texts::None,
    };
    let chunk = r.chunk()?;
    r.ws();
    if r.i != data.len() {
        return None;
    }
    let repeat = match (r.text, Repeat::shape(&chunk)) {
        (Texts::One(start, end), Some(shape)) => Some(Repeat {
            prefix: data[..start].to_vec(),
            suffix: data[end..].to_vec(),
            shape,
        }),
        _ => None,
    };
    Some((chunk, repeat))
}

/// A plain text chunk with its text cut out: the bytes before the text's
/// string and after it. A stream sends the same chunk for every token but
/// for the text (the same id, model, creation time, index and nulls), so a
/// frame made of the same bytes around another string is that chunk with
/// that text, and is read by finding the string alone. JSON's grammar makes
/// this exact: a string value replaced by another string value changes
/// nothing else about the document, so the chunk is what the full parse
/// would have made; anything else about the frame that differs (usage, a
/// finish reason, another id) fails the byte comparison and takes the full
/// parse.
pub(crate) struct Repeat {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    shape: Shape,
}

/// Where a plain chunk's text sits.
#[derive(Clone, Copy)]
enum Shape {
    /// `choices[0].text` (completions).
    Text,
    /// `choices[0].delta.content` (chat).
    DeltaContent,
}

/// The text strings a read came across: only a chunk with exactly one is plain.
#[derive(Clone, Copy)]
enum Texts {
    None,
    /// The string's token, from its opening quote to past its closing one.
    One(usize, usize),
    Several,
}

impl Repeat {
    /// The shape of `chunk` if it is plain: one choice with text in one
    /// place and nothing else that makes events (no role, reasoning,
    /// finish reason, usage or error).
    fn shape(chunk: &Chunk<'_>) -> Option<Shape> {
        let bare = chunk.usage.is_none()
            && chunk.error.is_none()
            && chunk.object.as_deref() != Some("error")
            && chunk.message.is_none()
            && chunk.kind.is_none()
            && chunk.code.is_none();
        match &chunk.choices[..] {
            [
                Choice {
                    text: Some(_),
                    delta: None,
                    message: None,
                    finish_reason: None,
                },
            ] if bare => Some(Shape::Text),
            [
                Choice {
                    text: None,
                    delta:
                        Some(Delta {
                            role: None,
                            content: Some(_),
                            reasoning_content: None,
                            reasoning: None,
                        }),
                    message: None,
                    finish_reason: None,
                },
            ] if bare => Some(Shape::DeltaContent),
            _ => None,
        }
    }

    /// `data` as a chunk, if it is this one with other text.
    pub(crate) fn chunk<'a>(&self, data: &'a [u8]) -> Option<Chunk<'a>> {
        let text = self.text(data)?;
        let choice = match self.shape {
            Shape::Text => Choice {
                text: Some(text),
                ..Choice::default()
            },
            Shape::DeltaContent => Choice {
                delta: Some(Delta {
                    content: Some(text),
                    ..Delta::default()
                }),
                ..Choice::default()
            },
        };
        // `object` is left out: it was not "error" (or the chunk would not
        // be plain), which is all the decoder asks of it.
        Some(Chunk {
            choices: vec![choice],
            ..Chunk::default()
        })
    }

    /// The text of `data`, if it is this chunk with other text: all a
    /// plain chunk says (the decoder makes its event of it without building
    /// the chunk).
    pub(crate) fn text<'a>(&self, data: &'a [u8]) -> Option<Cow<'a, str>> {
        let end = data.len().checked_sub(self.suffix.len())?;
        if end < self.prefix.len()
            || !same(&data[end..], &self.suffix)
            || !same(&data[..self.prefix.len()], &self.prefix)
        {
            return None;
        }
        let mut r = Reader {
            b: &data[..end],
            i: self.prefix.len(),
            text: Texts::None,
        };
        let text = r.string()?;
        (r.i == end).then_some(text)
    }
}

/// Byte equality eight bytes at a time: the C library's `memcmp` under
/// wasm32-wasip2 compares a byte per step (and comparing the last few bytes
/// as slices called it). The last word overlaps the one before it.
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    (0..n / 8).all(|k| word(a, 8 * k) == word(b, 8 * k)) && word(a, n - 8) == word(b, n - 8)
}

/// A string as scanned: its bytes between the quotes, whether they hold
/// escapes, and whether they are all ASCII.
struct RawStr<'a> {
    bytes: &'a [u8],
    escaped: bool,
    ascii: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Flags (the high bit of a byte) on the bytes of `word` (little-endian) that
/// are a quote, a backslash or a control character (below 0x20): the classic
/// word-at-a-time zero-byte and less-than tests. A borrow can flag a byte
/// above a true hit, never below one, so the lowest flag is exact.
fn needs_look(word: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH_BITS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
    below_space | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')))
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    /// The text strings read (`text`, `delta.content`), for [`Repeat`].
    text: Texts,
}

/// Stores a known field's parsed `value` in `slot`, marking it seen; `None`
/// when the value did not parse or the field came before (`serde_json`
/// refuses a repeated known field with its own message).
fn fill<T>(seen: &mut bool, slot: &mut T, value: Option<T>) -> Option<()> {
    if std::mem::replace(seen, true) {
        return None;
    }
    *slot = value?;
    Some(())
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// `null`, consumed; false (nothing consumed) for any other value.
    fn null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(true);
        }
        Some(false)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A string's bytes between the quotes, checked as `serde_json` checks a
    /// string it skips: no raw control characters, only valid escapes.
    fn raw_str(&mut self) -> Option<RawStr<'a>> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        // Every byte seen, OR-ed: no high bit means ASCII, hence valid UTF-8.
        let mut seen = 0u64;
        loop {
            // Eight bytes at a time up to the next byte that needs a look;
            // strings are most of a chunk's bytes.
            while let Some(word) = self.b.get(self.i..self.i + 8) {
                let word = u64::from_le_bytes(word.try_into().ok()?);
                let look = needs_look(word);
                if look != 0 {
                    let before = look.trailing_zeros() / 8;
                    seen |= word & ((1u64 << (before * 8)) - 1);
                    self.i += before as usize;
                    break;
                }
                seen |= word;
                self.i += 8;
            }
            match *self.b.get(self.i)? {
                b'"' => {
                    let bytes = &self.b[start..self.i];
                    self.i += 1;
                    let ascii = seen & HIGH_BITS == 0;
                    return Some(RawStr { bytes, escaped, ascii });
                }
                b'\\' => {
                    escaped = true;
                    match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let hex = self.b.get(self.i + 2..self.i + 6)?;
                            hex.iter().all(u8::is_ascii_hexdigit).then_some(())?;
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                c => {
                    seen |= u64::from(c);
                    self.i += 1;
                }
            }
        }
    }

    /// A string value, borrowed unless it holds escapes (then unescaped by
    /// `serde_json`, which also refuses what it would refuse in the full parse).
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.peek()?;
        let start = self.i;
        let raw = self.raw_str()?;
        if raw.escaped {
            return serde_json::from_slice::<String>(&self.b[start..self.i])
                .ok()
                .map(Cow::Owned);
        }
        if raw.ascii {
            // SAFETY: no byte has its high bit set (`raw_str` OR-ed them
            // all), so these are ASCII bytes, which are valid UTF-8.
            return Some(Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(raw.bytes) }));
        }
        std::str::from_utf8(raw.bytes).ok().map(Cow::Borrowed)
    }

    fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null()? {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// [`Self::opt_string`] for a text field, noting where its string lies.
    fn opt_text(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null()? {
            return Some(None);
        }
        let start = self.i;
        let text = self.string()?;
        self.text = match self.text {
            Texts::None => Texts::One(start, self.i),
            _ => Texts::Several,
        };
        Some(Some(text))
    }

    /// A plain unsigned integer that fits a `u32`, or null.
    fn opt_u32(&mut self) -> Option<Option<u32>> {
        if self.null()? {
            return Some(None);
        }
        let start = self.i;
        let mut value: u32 = 0;
        while let Some(&c @ b'0'..=b'9') = self.b.get(self.i) {
            value = value.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        // Fractions, exponents, signs and leading zeros: `serde_json` decides.
        let plain = digits > 0 && (digits == 1 || self.b[start] != b'0');
        let ends = !matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'));
        (plain && ends).then_some(Some(value))
    }

    /// An object key. Escaped keys are left to `serde_json`, which would
    /// unescape them before matching field names.
    fn key(&mut self) -> Option<&'a [u8]> {
        let raw = self.raw_str()?;
        if raw.escaped || !raw.ascii && std::str::from_utf8(raw.bytes).is_err() {
            return None;
        }
        self.eat(b':')?;
        Some(raw.bytes)
    }

    /// Calls `field` with each key of an object, the reader placed on its
    /// value; `field` must consume the value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Step over any value, checking it as `serde_json` checks a value it ignores.
    fn skip(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.raw_str().map(drop),
            b'{' if depth < MAX_DEPTH => self.object(|r, _| r.skip(depth + 1)),
            b'[' if depth < MAX_DEPTH => {
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match *self.b.get(self.i)? {
            b'0' => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            self.b.get(self.i).filter(|c| c.is_ascii_digit())?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            self.b.get(self.i).filter(|c| c.is_ascii_digit())?;
            self.digits();
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn chunk(&mut self) -> Option<Chunk<'a>> {
        let mut chunk = Chunk::default();
        let (mut seen_choices, mut seen_usage, mut seen_object) = (false, false, false);
        self.object(|r, key| match key {
            // A repeated field: `serde_json` refuses it with its own message.
            b"choices" if std::mem::replace(&mut seen_choices, true) => None,
            b"choices" => r.choices(&mut chunk.choices),
            b"usage" => {
                let usage = if r.null()? { None } else { Some(r.usage()?) };
                fill(&mut seen_usage, &mut chunk.usage, Some(usage))
            }
            b"object" => fill(&mut seen_object, &mut chunk.object, r.opt_string()),
            // Error shapes are rare and their `code` is any value: serde_json's.
            b"error" | b"message" | b"type" | b"code" => None,
            _ => r.skip(1),
        })?;
        (chunk.object.as_deref() != Some("error")).then_some(chunk)
    }

    fn choices(&mut self, choices: &mut Vec<Choice<'a>>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            choices.push(self.choice()?);
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn choice(&mut self) -> Option<Choice<'a>> {
        let mut choice = Choice::default();
        let mut seen = [false; 4];
        self.object(|r, key| match key {
            b"text" => fill(&mut seen[0], &mut choice.text, r.opt_text()),
            b"delta" => fill(&mut seen[1], &mut choice.delta, r.opt_delta()),
            b"message" => fill(&mut seen[2], &mut choice.message, r.opt_delta()),
            b"finish_reason" => fill(&mut seen[3], &mut choice.finish_reason, r.opt_string()),
            _ => r.skip(2),
        })?;
        Some(choice)
    }

    fn opt_delta(&mut self) -> Option<Option<Delta<'a>>> {
        if self.null()? {
            return Some(None);
        }
        let mut delta = Delta::default();
        let mut seen = [false; 4];
        self.object(|r, key| {
            if key == b"content" {
                return fill(&mut seen[1], &mut delta.content, r.opt_text());
            }
            let (slot, seen) = match key {
                b"role" => (&mut delta.role, &mut seen[0]),
                b"reasoning_content" => (&mut delta.reasoning_content, &mut seen[2]),
                b"reasoning" => (&mut delta.reasoning, &mut seen[3]),
                _ => return r.skip(3),
            };
            fill(seen, slot, r.opt_string())
        })?;
        Some(Some(delta))
    }

    fn usage(&mut self) -> Option<WireUsage> {
        let mut usage = WireUsage {
            prompt_tokens: None,
            completion_tokens: None,
            prompt_tokens_details: None,
            completion_tokens_details: None,
        };
        let mut seen = [false; 4];
        self.object(|r, key| match key {
            b"prompt_tokens" => fill(&mut seen[0], &mut usage.prompt_tokens, r.opt_u32()),
            b"completion_tokens" => fill(&mut seen[1], &mut usage.completion_tokens, r.opt_u32()),
            b"prompt_tokens_details" => fill(
                &mut seen[2],
                &mut usage.prompt_tokens_details,
                r.opt_count(b"cached_tokens")
                    .map(|v| v.map(|cached_tokens| PromptDetails { cached_tokens })),
            ),
            b"completion_tokens_details" => fill(
                &mut seen[3],
                &mut usage.completion_tokens_details,
                r.opt_count(b"reasoning_tokens")
                    .map(|v| v.map(|reasoning_tokens| CompletionDetails { reasoning_tokens })),
            ),
            _ => r.skip(2),
        })?;
        Some(usage)
    }

    /// Null, or an object read for the one count `name` (other fields skipped).
    fn opt_count(&mut self, name: &[u8]) -> Option<Option<Option<u32>>> {
        if self.null()? {
            return Some(None);
        }
        let (mut count, mut seen) = (None, false);
        self.object(|r, key| {
            if key == name {
                fill(&mut seen, &mut count, r.opt_u32())
            } else {
                r.skip(3)
            }
        })?;
        Some(Some(count))
    }
}

/// What a parsed chunk means, as text, so two parses can be compared.
fn events(chunk: Chunk<'_>) -> String {
    let mut out = String::new();
    super::decode_chunk(chunk, true, &mut Some(3), &mut |e| out.push_str(&format!("{e:?};")));
    out
}

/// Whether the fast path took `data` (false: it left it to `serde_json`);
/// an error when it took it and `serde_json` disagrees. The differential
/// check of the tests and of the `openai_chunk` fuzz target.
#[doc(hidden)]
pub fn check_fast_path(data: &[u8]) -> Result<bool, String> {
    check_repeat_path(data)?;
    let Some(fast) = chunk(data) else {
        return Ok(false);
    };
    match serde_json::from_slice::<Chunk>(data) {
        Ok(slow) => {
            let (fast, slow) = (events(fast), events(slow));
            if fast == slow {
                return Ok(true);
            }
            Err(format!(
                "fast and serde parses differ on {}: {fast} vs {slow}",
                String::from_utf8_lossy(data)
            ))
        }
        Err(e) => Err(format!(
            "fast path accepted what serde_json refuses ({e}): {}",
            String::from_utf8_lossy(data)
        )),
    }
}

/// The repeat path's half of [`check_fast_path`]: the bytes up to the
/// first newline are a stream's earlier frame, the rest a later one (the
/// whole, when there is no newline); when the later frame is read as the
/// earlier plain chunk with other text, `serde_json` must agree.
fn check_repeat_path(data: &[u8]) -> Result<(), String> {
    let (first, second) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let Some((_, Some(repeat))) = chunk_and_repeat(first) else {
        return Ok(());
    };
    let Some(fast) = repeat.chunk(second) else {
        return Ok(());
    };
    match serde_json::from_slice::<Chunk>(second).map(events) {
        Ok(slow) if events(fast) == slow => Ok(()),
        Ok(_) => Err(format!(
            "the repeat path and serde differ on {}",
            String::from_utf8_lossy(data)
        )),
        Err(e) => Err(format!(
            "the repeat path accepted what serde_json refuses ({e}): {}",
            String::from_utf8_lossy(data)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whenever the fast path answers, `serde_json` agrees with it.
    fn agree(data: &[u8]) -> bool {
        check_fast_path(data).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Chunks as servers stream them; every one must take the fast path.
    const SERVERS: &[&str] = &[
        // vLLM chat, first chunk, content, finish, usage.
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732752000,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732752000,"model":"m","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732752000,"model":"m","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"length","stop_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732752000,"model":"m","choices":[],"usage":{"prompt_tokens":16,"total_tokens":80,"completion_tokens":64,"prompt_tokens_details":{"cached_tokens":8}}}"#,
        // vLLM completions with continuous usage.
        r#"{"id":"cmpl-1","object":"text_completion","created":1732752000,"model":"m","choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":{"prompt_tokens":16,"total_tokens":20,"completion_tokens":4}}"#,
        // Reasoning models (both field names), escapes, unicode.
        r#"{"choices":[{"index":0,"delta":{"reasoning_content":"Let me think.\n\"Quoted\" \u00e9 \ud83d\ude00"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"reasoning":"hmm","content":null}}]}"#,
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\u{e9} \u{1F600}\"}}]}",
        // OpenAI: system_fingerprint, obfuscation, usage null, details.
        r#"{"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Hi","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"abc"}"#,
        r#"{"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":4,"audio_tokens":0,"accepted_prediction_tokens":0}}}"#,
        // llama.cpp: timings object, numbers with fractions.
        r#"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1,"id":"x","model":"m","object":"chat.completion.chunk","usage":{"completion_tokens":5,"prompt_tokens":3,"total_tokens":8},"timings":{"prompt_n":3,"prompt_ms":1.5e1,"predicted_per_second":-0.25}}"#,
        // Logprobs: nested arrays and objects, negative floats.
        r#"{"choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.01,"bytes":[97],"top_logprobs":[]}]},"finish_reason":null}]}"#,
        // Whitespace everywhere, empty objects and arrays.
        " { \"choices\" : [ { \"delta\" : { } , \"x\" : [ ] , \"y\" : { } } ] , \"usage\" : null } \n",
    ];

    #[test]
    fn server_chunks_take_the_fast_path_and_match_serde() {
        for chunk in SERVERS {
            assert!(agree(chunk.as_bytes()), "fast path declined: {chunk}");
        }
    }

    #[test]
    fn declines_what_it_leaves_to_serde() {
        for data in [
            r#"{"error":{"message":"overloaded","type":"server_error","code":503}}"#,
            r#"{"object":"error","message":"bad","type":"BadRequestError","code":400}"#,
            r#"{"choices":[],"choices":[]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"usage":{"completion_tokens":1.0}}"#,
            r#"{"usage":{"completion_tokens":-1}}"#,
            r#"{"usage":{"completion_tokens":4294967296}}"#,
            r#"{"usage":{"completion_tokens":01}}"#,
            r#"{"ch\u006fices":[]}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[{"text":1}]}"#,
            r#"{"choices":[]} x"#,
            r#"{"choices":[],}"#,
            r#"{"x":01}"#,
            r#"{"x":1.}"#,
            r#"{"x":"\x"}"#,
            "{\"x\":\"a\tb\"}",
            r#"{"choices":[{"delta":{"content":"\ud800"}}]}"#,
            r#"[[], null]"#,
            "",
        ] {
            assert!(chunk(data.as_bytes()).is_none(), "fast path accepted {data}");
        }
    }

    /// A small deterministic generator (xorshift), so the test needs no crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const SCALARS: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "7",
        "-3",
        "1.5",
        "2e3",
        "-0.5E-2",
        "01",
        "1.",
        "-",
        "\"\"",
        "\"x\"",
        "\"a\\nb\"",
        "\"\\u00e9\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud800\"",
        "\"\\q\"",
        "\"\u{e9}\"",
        "4294967295",
        "4294967296",
        "nul",
        "[]",
        "{}",
        "[1,2]",
        "{\"a\":[{}]}",
        "[1,]",
    ];

    fn value(rng: &mut Rng, keys: &[&str], depth: u32) -> String {
        if depth > 3 || rng.below(3) == 0 {
            return rng.pick(SCALARS).to_string();
        }
        if rng.below(4) == 0 {
            let items: Vec<String> = (0..rng.below(3)).map(|_| value(rng, keys, depth + 1)).collect();
            return format!("[{}]", items.join(rng.pick(&[",", " , ", ",\n"])));
        }
        object(rng, keys, depth + 1)
    }

    fn object(rng: &mut Rng, keys: &[&str], depth: u32) -> String {
        let fields: Vec<String> = (0..rng.below(5))
            .map(|_| {
                let key = rng.pick(keys);
                format!(
                    "{}\"{key}\"{}:{}",
                    rng.pick(&["", " "]),
                    rng.pick(&["", " "]),
                    value(rng, keys, depth)
                )
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    #[test]
    fn word_test_matches_the_bytewise_one() {
        // The index of the first byte needing a look, or 8.
        let bytewise = |w: u64| {
            let bytes = w.to_le_bytes();
            bytes
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(8) as u32
        };
        let needs_look = |w: u64| needs_look(w).trailing_zeros() / 8;
        for filler in [b'a', b' ', b'!', 0x7f, 0x80, 0xff] {
            for c in 0..=255u8 {
                for at in 0..8 {
                    let mut bytes = [filler; 8];
                    bytes[at] = c;
                    let w = u64::from_le_bytes(bytes);
                    assert_eq!(needs_look(w), bytewise(w), "{bytes:?}");
                }
            }
        }
        let mut rng = Rng(7);
        for _ in 0..200_000 {
            // Bytes near the edges the test is about.
            let bytes: [u8; 8] = std::array::from_fn(|_| b"\x00\x1f !\"#[\\]\x7f\x80\xa2\xdc\xff"[rng.below(14)]);
            let w = u64::from_le_bytes(bytes);
            assert_eq!(needs_look(w), bytewise(w), "{bytes:?}");
        }
    }

    /// Events of a stream decoded frame by frame by `serde_json` alone,
    /// as `StreamDecoder::decode_frame` would without its fast paths.
    fn reference_events(frames: &[Vec<u8>]) -> Vec<String> {
        let mut last = None;
        let mut out = Vec::new();
        for data in frames {
            let data = data.trim_ascii();
            let mut emit = |e: barrage_sdk::codec::Event| out.push(format!("{e:?}"));
            if data.is_empty() {
                emit(barrage_sdk::codec::Event::KeepAlive);
            } else if data == b"[DONE]" {
                emit(barrage_sdk::codec::Event::Done);
            } else {
                match serde_json::from_slice::<Chunk>(data) {
                    Ok(chunk) => crate::decode_chunk(chunk, true, &mut last, &mut emit),
                    Err(_) => emit(barrage_sdk::codec::Event::Malformed(String::new())),
                }
            }
        }
        out
    }

    fn decoded_events(frames: &[Vec<u8>]) -> Vec<String> {
        let mut decoder = crate::StreamDecoder::new(&barrage_sdk::codec::DecodeOptions { want_text: true });
        let mut out = Vec::new();
        for data in frames {
            decoder.decode_frame(data, &mut |e| {
                // Malformed messages are serde_json's in both; compared by kind.
                out.push(match e {
                    barrage_sdk::codec::Event::Malformed(_) => {
                        format!("{:?}", barrage_sdk::codec::Event::Malformed(String::new()))
                    }
                    e => format!("{e:?}"),
                })
            });
        }
        out
    }

    #[test]
    fn same_sees_a_difference_in_any_byte_of_any_length() {
        for n in 0..40 {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            assert!(same(&a, &a.clone()), "{n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same(&a, &b), "length {n}, byte {at}");
            }
            assert!(!same(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    #[test]
    fn a_repeated_chunk_decodes_as_the_full_parse_would() {
        // Plain chunks as servers repeat them, the text marked `@`.
        const PLAIN: &[&str] = &[
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732752000,"model":"m","choices":[{"index":0,"delta":{"content":@},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":@,"logprobs":null,"finish_reason":null,"stop_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content": @ }}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"content":@,"refusal":null}}],"object":"chat.completion.chunk"}"#,
        ];
        // Texts, and what else may stand where the text was.
        const TEXTS: &[&str] = &[
            r#""the""#,
            r#""""#,
            r#"" w\"q\" \\ \n \u00e9 \ud83d\ude00""#,
            "\"caf\u{e9}\"",
            r#""\ud800""#,
            r#""\x""#,
            "\"a\tb\"",
            r#""a","role":"user""#,
            r#""a"}},{"delta":{"content":"b""#,
            r#"null"#,
            r#"7"#,
            r#""unterminated"#,
            r#" "spaced" "#,
        ];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut repeats = 0;
        for _ in 0..3_000 {
            // A stream mostly repeats one chunk.
            let plain = rng.pick(PLAIN);
            let frames: Vec<Vec<u8>> = (0..rng.below(12) + 1)
                .map(|_| {
                    let mut frame = match rng.below(8) {
                        0 => SERVERS[rng.below(SERVERS.len())].to_string(),
                        1 => "[DONE]".to_string(),
                        2 => rng.pick(PLAIN).replace('@', rng.pick(TEXTS)),
                        _ => plain.replace('@', rng.pick(TEXTS)),
                    };
                    // Now and then, another id, number or field order.
                    if rng.below(8) == 0 && !frame.is_empty() {
                        let at = rng.below(frame.len());
                        if frame.is_char_boundary(at) {
                            frame.insert(at, rng.pick(&["1", " ", "\\"]).chars().next().unwrap_or(' '));
                        }
                    }
                    frame.into_bytes()
                })
                .collect();
            assert_eq!(
                decoded_events(&frames),
                reference_events(&frames),
                "{:#?}",
                frames.iter().map(|f| String::from_utf8_lossy(f)).collect::<Vec<_>>()
            );
            // The fuzz target's check of the same path, frame after frame.
            for pair in frames.windows(2) {
                check_repeat_path(&[&pair[0][..], b"\n", &pair[1][..]].concat()).unwrap_or_else(|e| panic!("{e}"));
            }
            // Count frames the repeat path took, to know it was tested.
            let mut decoder = crate::StreamDecoder::new(&barrage_sdk::codec::DecodeOptions { want_text: false });
            for data in &frames {
                let data = data.trim_ascii();
                if decoder.repeat.as_ref().and_then(|r| r.text(data)).is_some() {
                    repeats += 1;
                }
                decoder.decode_frame(data, &mut |_| {});
            }
        }
        assert!(repeats > 1_000, "the repeat path took only {repeats} frames");
    }

    #[test]
    fn random_chunks_and_broken_bytes_agree_with_serde() {
        let keys = [
            "choices",
            "usage",
            "object",
            "text",
            "delta",
            "message",
            "finish_reason",
            "role",
            "content",
            "reasoning_content",
            "reasoning",
            "prompt_tokens",
            "completion_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
            "cached_tokens",
            "reasoning_tokens",
            "index",
            "id",
            "error",
            "code",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut taken = 0;
        let total = 20_000;
        for n in 0..total {
            let mut data = if n % 2 == 0 {
                object(&mut rng, &keys, 0).into_bytes()
            } else {
                SERVERS[rng.below(SERVERS.len())].as_bytes().to_vec()
            };
            // Break some of them: drop, change or insert a byte.
            if rng.below(2) == 0 && !data.is_empty() {
                let at = rng.below(data.len());
                let byte = b"{}[],:\"\\0123456789-.eEnul \t\x01\xff"[rng.below(27)];
                match rng.below(3) {
                    0 => drop(data.remove(at)),
                    1 => data[at] = byte,
                    _ => data.insert(at, byte),
                }
            }
            taken += usize::from(agree(&data));
        }
        // The generator must reach the fast path often enough to test it.
        assert!(taken > total / 5, "only {taken} of {total} chunks took the fast path");
    }
}
