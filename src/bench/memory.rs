//! Memory: the engine child's resident set (`VmRSS` in `/proc/<pid>/status`), sampled
//! every 100 ms, idle after start, idle after the first sync of N customers, and at its
//! peak under the fixed end-to-end load.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::e2e::{step, LoadStep, SIMULATORS};
use super::engine::{mib, ConnectorLimits, EngineSettings, RssSampler};
use super::rig::{RigOptions, SyncRig};
use crate::config::Settings;

/// How long the engine is left alone before an idle reading; the reading is the
/// highest sample of the last second of it.
const IDLE: Duration = Duration::from_secs(3);

pub struct MemoryOptions {
    pub customers: usize,
    pub workers: usize,
    pub seconds: u64,
    pub rate: f64,
    pub limits: ConnectorLimits,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub engine: EngineSettings,
    pub simulators: &'static str,
    pub customers: usize,
    pub idle_after_start_mib: f64,
    pub idle_after_first_sync_mib: f64,
    pub peak_under_load_mib: f64,
    pub idle_after_load_mib: f64,
    pub load: LoadStep,
    pub samples: usize,
    /// Idle at most 40 MB (all three idle readings).
    pub idle_goal_met: bool,
    /// Peak at most 150 MB under the load.
    pub peak_goal_met: bool,
}

const MB: f64 = 1_000_000.0 / (1024.0 * 1024.0);

pub async fn run(settings: &Settings, options: &MemoryOptions) -> anyhow::Result<MemoryReport> {
    let rig = SyncRig::start(
        settings,
        RigOptions {
            name: "memory",
            customers: options.customers,
            workers: options.workers,
            poll_interval_secs: 0,
            limits: options.limits,
            webhook_base: None,
        },
    )
    .await?;
    let result = measure(&rig, options).await;
    rig.stop().await?;
    result
}

async fn idle(sampler: &RssSampler) -> f64 {
    tokio::time::sleep(IDLE).await;
    let now = Instant::now();
    mib(sampler.peak(now - Duration::from_secs(1), now))
}

async fn measure(rig: &SyncRig, options: &MemoryOptions) -> anyhow::Result<MemoryReport> {
    println!("{}", rig.engine.settings.line());
    let sampler = RssSampler::start(rig.engine.pid);
    let idle_after_start = idle(&sampler).await;
    rig.link_all(Duration::from_secs(600)).await?;
    let idle_after_first_sync = idle(&sampler).await;
    let mut serial = 0;
    let length = Duration::from_secs(options.seconds.max(1));
    let started = Instant::now();
    let (load, _) = step(rig, &sampler, options.rate, length, &mut serial).await?;
    let peak = mib(sampler.peak(started, Instant::now()));
    // The load's echoes are still being handled when its last change has arrived.
    rig.settle(Duration::from_secs(1), Duration::from_secs(120))
        .await?;
    let idle_after_load = idle(&sampler).await;
    // The goals are in MB (10^6 bytes); the figures in MiB.
    let limit = |megabytes: f64| megabytes * MB;
    Ok(MemoryReport {
        engine: rig.engine.settings.clone(),
        simulators: SIMULATORS,
        customers: rig.records.len(),
        idle_after_start_mib: idle_after_start,
        idle_after_first_sync_mib: idle_after_first_sync,
        peak_under_load_mib: peak,
        idle_after_load_mib: idle_after_load,
        load,
        samples: sampler.count(),
        idle_goal_met: [idle_after_start, idle_after_first_sync, idle_after_load]
            .iter()
            .all(|&idle| idle <= limit(40.0)),
        peak_goal_met: peak <= limit(150.0),
    })
}
