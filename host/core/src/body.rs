//! The seam between the transport, which reads and times a response, and
//! whatever makes sense of it (the plugin host decodes it; a test collects
//! the bytes). The transport knows nothing of decoding.

use std::time::Instant;

use crate::framing::Refusal;
use crate::types::ResponseHead;

/// Where the transport puts a response as it reads it. Every time is
/// taken by the transport; a sink only receives.
pub trait ResponseSink {
    /// What the sink makes of a whole response.
    type Outcome;

    /// The status line and headers, before any body byte.
    fn head(&mut self, head: ResponseHead);

    /// Body bytes, read at `at` (with the chunked framing and the like
    /// already removed).
    fn data(&mut self, data: &[u8], at: Instant);

    /// The transport finished one read of the socket; more may follow.
    /// A natural point to hand collected work on.
    fn read_done(&mut self) {}

    /// The sink takes no more of this response: a frame went over its
    /// limit, or the body cannot be framed. The transport asks after every
    /// read and stops reading.
    fn refused(&self) -> Option<Refusal> {
        None
    }

    /// The body was read to its end at `at`.
    fn end(self, at: Instant) -> Self::Outcome;

    /// The exchange was cut short at `at` (a timeout, a stop, a failed
    /// read, a refusal): the outcome of what arrived whole; a frame still
    /// unfinished is not one.
    fn cut(self, at: Instant) -> Self::Outcome;
}
