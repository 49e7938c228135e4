//! Whether the client itself was the bottleneck of a stage: the evidence
//! the load engine gathers (CPU, I/O wake-ups, decode backlog, missed
//! arrivals) and the judgement made from it. A saturated client measures
//! itself as much as the server, so every report says so.

use serde::{Deserialize, Serialize};

/// Send lag p99 past which the client is judged behind its schedule.
pub const LAG_P99_MS: f64 = 10.0;
/// I/O wake-up lag p99 past which read timestamps may be late by as much.
pub const IO_LAG_P99_MS: f64 = 10.0;
/// Share of the client's cores past which it has no headroom left.
pub const CPU_SHARE: f64 = 0.9;

/// What the load engine saw of the client during a stage.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClientLoad {
    /// CPU time of the whole process over the stage's wall time and the
    /// cores it may run on (1: every core busy all the time).
    pub cpu_share: f64,
    /// How late a timer on the I/O runtime fired (a probe every 10 ms): a
    /// busy runtime reads sockets as late, and so timestamps late.
    pub io_lag_p99_ms: f64,
    /// The largest such delay.
    pub io_lag_max_ms: f64,
    /// Most frames waiting for the plugin threads at once.
    pub decode_backlog_peak_frames: u64,
    /// Most bytes of frames waiting for the plugin threads at once, MiB.
    pub decode_backlog_peak_mib: f64,
    /// Of the missed arrivals, those missed because the decode backlog was
    /// at its bound (the rest: the pacer or a wait for a connection or a
    /// slot ran past `max_send_lag_ms`, or the I/O threads were behind).
    pub missed_for_backlog: u64,
    /// Of the missed arrivals, those missed because the I/O threads were
    /// behind (a timer over 100 ms late, or over 1,024 woken tasks waiting):
    /// responses already asked for were waiting unread.
    #[serde(default)]
    pub missed_for_io: u64,
}

impl ClientLoad {
    /// Two runs' (shards') evidence for one stage: the worse of each.
    pub fn worst(self, other: ClientLoad) -> ClientLoad {
        ClientLoad {
            cpu_share: self.cpu_share.max(other.cpu_share),
            io_lag_p99_ms: self.io_lag_p99_ms.max(other.io_lag_p99_ms),
            io_lag_max_ms: self.io_lag_max_ms.max(other.io_lag_max_ms),
            decode_backlog_peak_frames: self.decode_backlog_peak_frames.max(other.decode_backlog_peak_frames),
            decode_backlog_peak_mib: self.decode_backlog_peak_mib.max(other.decode_backlog_peak_mib),
            missed_for_backlog: self.missed_for_backlog + other.missed_for_backlog,
            missed_for_io: self.missed_for_io + other.missed_for_io,
        }
    }
}

/// The judgement on a stage's client, with its evidence.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientHealth {
    /// The client was (part of) the bottleneck: the stage's figures
    /// describe the client as much as the server.
    pub saturated: bool,
    /// Why, one sentence per sign found; empty when not saturated.
    pub reasons: Vec<String>,
    /// Actual − scheduled send, p99, ms.
    pub send_lag_p99_ms: Option<f64>,
    /// Arrivals missed (not sent: too late, or the decode backlog full).
    pub missed: u64,
    /// The evidence.
    #[serde(flatten)]
    pub load: ClientLoad,
}

impl ClientHealth {
    /// Judge a stage from its missed arrivals, its send lag p99 and what
    /// the engine saw.
    pub fn judge(missed: u64, send_lag_p99_ms: Option<f64>, load: ClientLoad) -> ClientHealth {
        let mut reasons = Vec::new();
        if missed > 0 {
            let causes: Vec<String> = [
                (load.missed_for_backlog, "while the decode backlog was full"),
                (load.missed_for_io, "while the I/O threads were behind"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, why)| format!("{n} {why}"))
            .collect();
            let causes = if causes.is_empty() {
                String::new()
            } else {
                format!(" ({})", causes.join(", "))
            };
            reasons.push(format!(
                "{missed} arrivals were missed: not sent within max_send_lag_ms, or held back{causes}"
            ));
        }
        if let Some(lag) = send_lag_p99_ms.filter(|&l| l > LAG_P99_MS) {
            reasons.push(format!("send lag p99 is {lag:.1} ms (over {LAG_P99_MS} ms)"));
        }
        if load.io_lag_p99_ms > IO_LAG_P99_MS {
            reasons.push(format!(
                "the I/O threads woke {:.1} ms late at p99 (over {IO_LAG_P99_MS} ms): read times may be late by as much",
                load.io_lag_p99_ms
            ));
        }
        if load.cpu_share >= CPU_SHARE {
            reasons.push(format!("the client used {:.0}% of its cores", 100.0 * load.cpu_share));
        }
        ClientHealth {
            saturated: !reasons.is_empty(),
            reasons,
            send_lag_p99_ms,
            missed,
            load,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sign_alone_makes_the_client_saturated_and_is_named() {
        let calm = ClientLoad {
            cpu_share: 0.3,
            io_lag_p99_ms: 0.2,
            ..ClientLoad::default()
        };
        let ok = ClientHealth::judge(0, Some(0.4), calm);
        assert!(!ok.saturated, "{ok:?}");
        assert!(ok.reasons.is_empty());
        let cases = [
            (ClientHealth::judge(3, Some(0.4), calm), "3 arrivals were missed"),
            (ClientHealth::judge(0, Some(25.0), calm), "send lag p99 is 25.0 ms"),
            (
                ClientHealth::judge(
                    0,
                    None,
                    ClientLoad {
                        io_lag_p99_ms: 40.0,
                        ..calm
                    },
                ),
                "woke 40.0 ms late",
            ),
            (
                ClientHealth::judge(
                    0,
                    None,
                    ClientLoad {
                        cpu_share: 0.97,
                        ..calm
                    },
                ),
                "used 97% of its cores",
            ),
            (
                ClientHealth::judge(
                    5,
                    None,
                    ClientLoad {
                        missed_for_backlog: 2,
                        ..calm
                    },
                ),
                "(2 while the decode backlog was full)",
            ),
            (
                ClientHealth::judge(
                    5,
                    None,
                    ClientLoad {
                        missed_for_backlog: 2,
                        missed_for_io: 3,
                        ..calm
                    },
                ),
                "(2 while the decode backlog was full, 3 while the I/O threads were behind)",
            ),
        ];
        for (health, reason) in cases {
            assert!(health.saturated, "{health:?}");
            assert!(
                health.reasons.iter().any(|r| r.contains(reason)),
                "{reason}: {:?}",
                health.reasons
            );
        }
    }
}
