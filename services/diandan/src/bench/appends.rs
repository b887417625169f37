//! Scenario 1: durable appends against raw SQLite inserts, and the disk's raw fsync rate.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use diandan_store::bench::{durable_appends, raw_sqlite_inserts, AppendBench};

use super::{micros, ms, Percentiles, Progress};

/// Durable appends with some writers, beside raw SQLite inserts with the same durability.
#[derive(Debug, Clone, Serialize)]
pub struct AppendRow {
    pub writers: usize,
    pub diandan_events_per_sec: f64,
    pub diandan_p50_ms: f64,
    pub diandan_p99_ms: f64,
    pub raw_sqlite_inserts_per_sec: f64,
    pub raw_p50_ms: f64,
    pub raw_p99_ms: f64,
    /// diandan ÷ raw SQLite.
    pub ratio: f64,
    /// diandan events/s ÷ the disk's raw fsyncs/s (> 1: group commit shares fsyncs).
    pub per_fsync: Option<f64>,
}

/// The disk's raw fsync rate: 4 KiB written then `fdatasync`, in a loop, on one file.
#[derive(Debug, Clone, Serialize)]
pub struct FsyncRow {
    pub fsyncs: u64,
    pub seconds: f64,
    pub fsyncs_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Size of the file the fsync probe cycles through, like a WAL that is reset after a
/// checkpoint: blocks are allocated once, then overwritten.
const PROBE_FILE: u64 = 32 << 20;
const BLOCK: usize = 4096;

/// Writes 4 KiB and `fdatasync`s, in a loop, for `window`, on a preallocated file in `dir`.
pub async fn fsync_rate(dir: &Path, window: Duration) -> anyhow::Result<FsyncRow> {
    let progress = Progress::window("raw fsync", window, None, "");
    let dir = dir.to_owned();
    let row = tokio::task::spawn_blocking(move || -> anyhow::Result<FsyncRow> {
        let path = dir.join("fsync-probe.bin");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(PROBE_FILE >> 20) {
            file.write_all(&zeros)?;
        }
        file.sync_all()?;
        let mut block = vec![0u8; BLOCK];
        let blocks = PROBE_FILE / BLOCK as u64;
        let mut latencies = Vec::new();
        let started = Instant::now();
        let deadline = started + window;
        let mut i = 0u64;
        while Instant::now() < deadline {
            block[..8].copy_from_slice(&i.to_le_bytes());
            let sent = Instant::now();
            file.write_all_at(&block, (i % blocks) * BLOCK as u64)?;
            file.sync_data()?;
            latencies.push(micros(sent.elapsed()));
            i += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        drop(file);
        std::fs::remove_file(&path)?;
        let p = Percentiles::of_micros(&mut latencies);
        Ok(FsyncRow {
            fsyncs: p.count,
            seconds,
            fsyncs_per_sec: p.count as f64 / seconds,
            p50_ms: p.p50_ms,
            p99_ms: p.p99_ms,
        })
    })
    .await??;
    progress.finish();
    Ok(row)
}

/// The store's durable appends, then raw SQLite inserts, each for `window`.
pub async fn appends(
    dir: &Path,
    writers: usize,
    window: Duration,
    fsync: Option<&FsyncRow>,
) -> anyhow::Result<AppendRow> {
    let progress = Progress::window(&format!("diandan, {writers} writers"), window, None, "");
    let ours: AppendBench = durable_appends(dir, writers, window, 256).await?;
    progress.finish();
    let progress = Progress::window(&format!("raw SQLite, {writers} writers"), window, None, "");
    let raw_dir = dir.to_owned();
    let raw =
        tokio::task::spawn_blocking(move || raw_sqlite_inserts(&raw_dir, writers, window, 256))
            .await??;
    progress.finish();
    eprintln!("  diandan  {ours}\n  raw      {raw}");
    for file in ["durable-appends.db", "raw-inserts.db"] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("{file}{suffix}")));
        }
    }
    Ok(AppendRow {
        writers,
        diandan_events_per_sec: ours.events_per_sec,
        diandan_p50_ms: ms(ours.p50_latency),
        diandan_p99_ms: ms(ours.p99_latency),
        raw_sqlite_inserts_per_sec: raw.events_per_sec,
        raw_p50_ms: ms(raw.p50_latency),
        raw_p99_ms: ms(raw.p99_latency),
        ratio: ours.events_per_sec / raw.events_per_sec.max(f64::EPSILON),
        per_fsync: fsync.map(|f| ours.events_per_sec / f.fsyncs_per_sec.max(f64::EPSILON)),
    })
}
