//! How much a plugin may hand the host. A plugin's output reaches records,
//! the console and host memory, so none of it is taken unbounded: strings
//! are cut (with a marker saying how much), events per call are capped, log
//! lines are budgeted per plugin (see `state::LogBudget`).

use barrage_core::types::Event;

/// Longest message kept from a plugin: a `malformed` reason, a server-error
/// message, an error a call returned, a panic message.
pub const MAX_MESSAGE: usize = 4 << 10;
/// Longest text of one content or reasoning delta.
pub const MAX_TEXT: usize = 1 << 20;
/// Longest log line.
pub const MAX_LOG_LINE: usize = 4 << 10;
/// Bytes of log lines one plugin may write before the rest are dropped.
pub const LOG_BUDGET: usize = 16 << 20;
/// Events one call may return per frame it was given (plus this many once,
/// so `finish` and an empty batch have room too).
pub const EVENTS_PER_FRAME: usize = 64;

/// Latest send time or longest think time a dataset sample may name, ms
/// (about 116 days, the engine's longest time): a time the schedule can
/// hold, so a plugin's `1e300` is an error naming the sample, not a panic.
pub const MAX_SAMPLE_MS: f64 = 1e10;

/// Most output tokens a dataset sample may ask (the run's own limit on
/// `request.max_tokens`).
pub const MAX_SAMPLE_TOKENS: u32 = 10_000_000;

/// `s`, cut at a character boundary to at most `max` bytes plus a marker
/// naming how many bytes were cut.
pub fn cut(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} more bytes cut]", &s[..end], s.len() - end).into()
}

/// `s` cut as [`cut`] does, owned.
pub fn cut_owned(s: String, max: usize) -> String {
    match cut(&s, max) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(c) => c,
    }
}

/// Most events a call given `frames` frames may return.
pub fn max_events(frames: usize) -> usize {
    EVENTS_PER_FRAME * (frames + 1)
}

/// Cut `event`'s strings to their bounds, in place (the common case, all
/// within bounds, touches nothing).
pub fn event(event: &mut Event) {
    fn bound(s: &mut String, max: usize) {
        if s.len() > max {
            *s = cut_owned(std::mem::take(s), max);
        }
    }
    match event {
        Event::Malformed(why) | Event::Finish(why) => bound(why, MAX_MESSAGE),
        Event::ServerError(e) => {
            bound(&mut e.message, MAX_MESSAGE);
            if let Some(code) = &mut e.code {
                bound(code, MAX_MESSAGE);
            }
        }
        Event::Content(d) | Event::Reasoning(d) => {
            if let Some(text) = &mut d.text {
                bound(text, MAX_TEXT);
            }
        }
        Event::RoleOnly
        | Event::EmptyDelta
        | Event::Usage(_)
        | Event::KeepAlive
        | Event::Done
        | Event::Embeddings { .. }
        | Event::Ranking(_)
        | Event::Image(_)
        | Event::Audio(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_characters_whole_and_says_how_much_went() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééé", 3), "é… [4 more bytes cut]");
        let long = "x".repeat(10_000);
        let c = cut(&long, MAX_MESSAGE);
        assert!(c.starts_with(&"x".repeat(MAX_MESSAGE)));
        assert!(c.ends_with(&format!("… [{} more bytes cut]", 10_000 - MAX_MESSAGE)));
    }
}
