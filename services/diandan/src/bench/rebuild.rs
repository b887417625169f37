//! Scenario 3: rebuilding the read model from the log, against reading (and decoding) the same
//! events.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use diandan_runtime::commands::{decode_order_event, EventMetadata};
use diandan_store::{EventStore, SqliteStore};

use super::Progress;

/// One store rebuilt.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildRow {
    pub store: String,
    pub events: u64,
    pub rebuild_seconds: f64,
    pub rebuild_events_per_sec: f64,
    /// Baseline: `read_all` in the rebuild's batches (`projections::REBUILD_BATCH`), nothing else.
    pub read_all_events_per_sec: f64,
    /// `read_all` plus decoding every event's payload and metadata from JSON.
    pub read_decode_events_per_sec: f64,
    /// Rebuild ÷ `read_all`.
    pub ratio: f64,
}

/// Opens the store of a data dir (blocking file I/O, so off the runtime).
pub async fn open(data_dir: &Path) -> anyhow::Result<Arc<SqliteStore>> {
    let path = data_dir.join("events.db");
    Ok(Arc::new(
        tokio::task::spawn_blocking(move || SqliteStore::open(path)).await??,
    ))
}

/// Drops a store off the runtime: that joins its writer thread.
pub async fn close(store: Arc<SqliteStore>) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || drop(store)).await?;
    Ok(())
}

/// Reads the whole log; `decode` also parses every payload and metadata document.
async fn read_everything(store: &SqliteStore, decode: bool) -> anyhow::Result<u64> {
    let head = store.head_position().await?;
    let (mut from, mut seen) = (1, 0u64);
    loop {
        let batch = store
            .read_all(from, diandan_runtime::projections::REBUILD_BATCH)
            .await?;
        let Some(last) = batch.last() else { break };
        from = last.position + 1;
        seen += batch.len() as u64;
        if decode {
            for event in &batch {
                black_box(EventMetadata::decode(event)?);
                if event.stream.starts_with("order-") {
                    black_box(decode_order_event(event)?);
                } else {
                    black_box(serde_json::from_slice::<serde_json::Value>(&event.data)?);
                }
            }
        }
        black_box(&batch);
        if last.position >= head {
            break;
        }
    }
    Ok(seen)
}

/// Measures `read_all`, `read_all` + decode and `projections::rebuild` over the store in
/// `data_dir`; the rebuilt read model is left at the returned path in `scratch`.
pub async fn measure(
    label: &str,
    data_dir: &Path,
    scratch: &Path,
) -> anyhow::Result<(RebuildRow, PathBuf)> {
    let store = open(data_dir).await?;
    let events = store.head_position().await?;
    // Warm the page cache, so each of the three reads the same way.
    read_everything(&store, false).await?;

    let started = Instant::now();
    let read = read_everything(&store, false).await?;
    let read_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    read_everything(&store, true).await?;
    let decode_secs = started.elapsed().as_secs_f64();

    let fresh = scratch.join(format!("rebuild-{}.db", label.replace(' ', "-")));
    let bar = Progress::items(&format!("rebuild, {label}"), events, "events");
    let started = Instant::now();
    let read_model = diandan_runtime::projections::rebuild(store.as_ref(), &fresh, |done, _| {
        bar.set_position(done)
    })
    .await?;
    let rebuild_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    drop(read_model);
    close(store).await?;

    let row = RebuildRow {
        store: label.to_owned(),
        events: read,
        rebuild_seconds: rebuild_secs,
        rebuild_events_per_sec: read as f64 / rebuild_secs,
        read_all_events_per_sec: read as f64 / read_secs,
        read_decode_events_per_sec: read as f64 / decode_secs,
        ratio: read_secs / rebuild_secs,
    };
    eprintln!(
        "  {label}: {} events; rebuild {:.0} events/s ({:.2} s), read_all {:.0} events/s, read_all + decode {:.0} events/s",
        row.events,
        row.rebuild_events_per_sec,
        row.rebuild_seconds,
        row.read_all_events_per_sec,
        row.read_decode_events_per_sec
    );
    Ok((row, fresh))
}
