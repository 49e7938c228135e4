//! The clock records, ground truth and shards share.

/// Nanoseconds on `CLOCK_MONOTONIC`: the clock of every `Instant` here, and
/// the same for every process on the machine, so a separate `barrage sim`'s
/// ground truth compares directly with a run's records.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
