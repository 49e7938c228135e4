//! The process's file descriptors, for a process that holds thousands of
//! sockets (the client's connections).

use std::os::fd::AsFd;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The most entries [`grow_table`] makes room for: 512 KiB of kernel memory.
const MOST_GROWN: u64 = 65_536;

/// Raise the soft descriptor limit to the hard one (which any user may) and
/// return the soft limit then in force, `None` when there is none.
pub fn raise_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|soft| soft < hard)
    {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        );
    }
    getrlimit(Resource::Nofile).current
}

/// Grow the descriptor table now, once, to the soft limit (at most
/// 65,536 entries). The kernel grows it by doubling whenever a new
/// descriptor does not fit, and every growth waits for an RCU grace period
/// in the call that opened the descriptor (`connect` on the client's
/// pacer, `accept` on a server's runtime), each stalled for milliseconds on a
/// busy machine (seen with `perf record -e sched:sched_switch`). The table
/// never shrinks, so after this no later call pays. A best effort: where it
/// fails, descriptors are merely slower to open.
pub fn grow_table() {
    let Some(top) = getrlimit(Resource::Nofile)
        .current
        .unwrap_or(MOST_GROWN)
        .min(MOST_GROWN)
        .checked_sub(1)
    else {
        return;
    };
    let Ok(top) = i32::try_from(top) else {
        return;
    };
    // A copy of stderr at the lowest free descriptor from `top` up, closed
    // again (when dropped): only the table's size stays.
    let _ = rustix::io::fcntl_dupfd_cloexec(std::io::stderr().as_fd(), top);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_size() -> u64 {
        // The FDSize line of /proc/self/status: the table's current size.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
        line["FDSize:".len()..].trim().parse().unwrap()
    }

    #[test]
    fn the_table_is_grown_to_the_limit() {
        let limit = raise_limit().expect("a descriptor limit");
        grow_table();
        assert!(table_size() >= limit.min(MOST_GROWN), "{} < {limit}", table_size());
    }
}
