//! Durable-append throughput of `SqliteStore` against plain SQLite inserts.
//!
//! ```text
//! cargo run --release -p diandan-store --example append_bench -- [SECONDS] [EVENT_BYTES] [WRITERS,...] [both|store|raw]
//! ```
//! Defaults: 3 seconds, 256-byte events, 1,16,256 writers, both benches. Files go to a temporary directory
//! on the same file system as the system temp dir (set `TMPDIR` to measure another disk).

use std::time::Duration;

use diandan_store::bench;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = args.first().map_or(Ok(3.0), |s| s.parse())?;
    let event_size: usize = args.get(1).map_or(Ok(256), |s| s.parse())?;
    let writers: Vec<usize> = match args.get(2) {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![1, 16, 256],
    };
    let which = args.get(3).map_or("both", String::as_str);
    let duration = Duration::from_secs_f64(seconds);
    let dir = tempfile::tempdir()?;
    println!(
        "{event_size}-byte events, {seconds}s per run, in {}",
        dir.path().display()
    );
    for &count in &writers {
        let mut store = None;
        if which != "raw" {
            let result = bench::durable_appends(dir.path(), count, duration, event_size).await?;
            println!("SqliteStore  {result}");
            store = Some(result);
        }
        if which == "store" {
            continue;
        }
        let path = dir.path().to_owned();
        let raw = tokio::task::spawn_blocking(move || {
            bench::raw_sqlite_inserts(&path, count, duration, event_size)
        })
        .await??;
        println!("raw SQLite   {raw}");
        if let Some(store) = store {
            println!(
                "             ratio {:.1}x",
                store.events_per_sec / raw.events_per_sec.max(f64::EPSILON)
            );
        }
    }
    Ok(())
}
