//! Where the machine's CPU went during a step: the engine child, this bench process (the
//! simulators and the simulated people), PostgreSQL, RabbitMQ and everything else on
//! the machine, read from `/proc` before and after.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on Linux).
const TICKS: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    engine_ticks: u64,
    bench_ticks: u64,
    /// Per process of PostgreSQL and of RabbitMQ (pid -> ticks).
    postgres: HashMap<u32, u64>,
    rabbitmq: HashMap<u32, u64>,
    busy_ticks: u64,
    total_ticks: u64,
}

/// Cores in use on average over a span (2.0 = both cores of this machine busy).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuUse {
    pub engine_cores: f64,
    pub bench_cores: f64,
    pub postgres_cores: f64,
    pub rabbitmq_cores: f64,
    /// Anything else running on the machine.
    pub other_cores: f64,
    pub idle_cores: f64,
}

/// The command name and utime + stime (in ticks) of a process.
fn process_stat(pid: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the fields after it
    // are fixed.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based).
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some((name, field(14).unwrap_or(0) + field(15).unwrap_or(0)))
}

fn process_ticks(pid: &str) -> u64 {
    process_stat(pid).map_or(0, |(_, ticks)| ticks)
}

/// Ticks of every process named `postgres`, and of RabbitMQ's Erlang VM.
fn service_ticks() -> (HashMap<u32, u64>, HashMap<u32, u64>) {
    let (mut postgres, mut rabbitmq) = (HashMap::new(), HashMap::new());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (postgres, rabbitmq);
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        match process_stat(&pid.to_string()) {
            Some((name, ticks)) if name == "postgres" => {
                postgres.insert(pid, ticks);
            }
            Some((name, ticks)) if name.starts_with("beam") => {
                rabbitmq.insert(pid, ticks);
            }
            _ => {}
        }
    }
    (postgres, rabbitmq)
}

/// Ticks the processes of `later` used since `earlier` (new processes count whole).
fn grown(earlier: &HashMap<u32, u64>, later: &HashMap<u32, u64>) -> u64 {
    later
        .iter()
        .map(|(pid, ticks)| ticks.saturating_sub(earlier.get(pid).copied().unwrap_or(0)))
        .sum()
}

/// (busy, total) ticks of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = stat.lines().next() else {
        return (0, 0);
    };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is counted in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

impl CpuSnapshot {
    pub fn take(engine_pid: u32) -> Self {
        let (busy_ticks, total_ticks) = machine_ticks();
        let (postgres, rabbitmq) = service_ticks();
        Self {
            at: Instant::now(),
            engine_ticks: process_ticks(&engine_pid.to_string()),
            bench_ticks: process_ticks("self"),
            postgres,
            rabbitmq,
            busy_ticks,
            total_ticks,
        }
    }

    /// Average use between `self` and `later`.
    pub fn until(&self, later: &CpuSnapshot) -> CpuUse {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let cores = |ticks: u64| ticks as f64 / TICKS / seconds;
        let engine = cores(later.engine_ticks.saturating_sub(self.engine_ticks));
        let bench = cores(later.bench_ticks.saturating_sub(self.bench_ticks));
        let postgres = cores(grown(&self.postgres, &later.postgres));
        let rabbitmq = cores(grown(&self.rabbitmq, &later.rabbitmq));
        let busy = cores(later.busy_ticks.saturating_sub(self.busy_ticks));
        let total = cores(later.total_ticks.saturating_sub(self.total_ticks));
        CpuUse {
            engine_cores: engine,
            bench_cores: bench,
            postgres_cores: postgres,
            rabbitmq_cores: rabbitmq,
            other_cores: (busy - engine - bench - postgres - rabbitmq).max(0.0),
            idle_cores: (total - busy).max(0.0),
        }
    }
}
