//! The `barrage` command: parses arguments and runs the engine's commands.

mod commands;
mod options;

/// mimalloc, not glibc's malloc: the pacer allocates each request and the
/// I/O workers free it, and glibc then makes the pacer wait on its arena's
/// lock while a worker frees into it (seen as futex waits on the pacer in
/// `perf record -e sched:sched_switch`: ~1,700 per 30,000 arrivals at 5,000
/// req/s, ~100 with mimalloc, whose frees from other threads take no lock).
/// A worker preempted while holding that lock is milliseconds of send lag.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    commands::main()
}
