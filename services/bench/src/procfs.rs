//! Readings from `/proc`: a process's resident memory and CPU time, and the machine's CPU use, so
//! every figure can say whether the CPU or something else (fsync, round trips) bounded it.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on every Linux architecture
/// the bench runs on).
const TICKS_PER_SECOND: u64 = 100;

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    /// Now.
    pub rss_kib: u64,
    /// Peak since start or since the last [`reset_peak`].
    pub peak_kib: u64,
}

/// Memory of process `pid` (zeros when it cannot be read).
pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory { rss_kib: field("VmRSS:"), peak_kib: field("VmHWM:") }
}

/// Resets the peak resident size of `pid` to its present size (Linux `clear_refs` value 5), so
/// that the next reading of the peak covers only what follows.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// User plus system CPU time consumed by process `pid` so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at indexes 11 and 12.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / TICKS_PER_SECOND)
}

/// Busy and total jiffies of all CPUs together, from `/proc/stat`.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return (0, 0) };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// CPU use over an interval: of the whole machine, and of one process (the service) when given.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    started: Instant,
    machine: (u64, u64),
    process: Option<(u32, Duration)>,
}

/// What a [`CpuMeter`] saw.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuUse {
    /// Share of all cores busy (any process), 0–100.
    pub machine_busy_pct: f64,
    /// CPU time of the measured process as a share of one core, 0–100 × cores.
    pub service_core_pct: Option<f64>,
}

impl CpuMeter {
    /// Starts measuring the machine and, when given, process `pid`.
    pub fn start(pid: Option<u32>) -> Self {
        Self { started: Instant::now(), machine: machine_jiffies(), process: pid.map(|p| (p, cpu_time(p))) }
    }

    /// The use since [`CpuMeter::start`].
    pub fn stop(&self) -> CpuUse {
        let (busy, total) = machine_jiffies();
        let d_total = total.saturating_sub(self.machine.1);
        let machine_busy_pct =
            if d_total == 0 { 0.0 } else { busy.saturating_sub(self.machine.0) as f64 * 100.0 / d_total as f64 };
        let wall = self.started.elapsed().as_secs_f64();
        let service_core_pct = self.process.map(|(pid, before)| {
            let used = cpu_time(pid).saturating_sub(before).as_secs_f64();
            if wall > 0.0 { used * 100.0 / wall } else { 0.0 }
        });
        CpuUse { machine_busy_pct, service_core_pct }
    }
}
