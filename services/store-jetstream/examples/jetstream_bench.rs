//! Appends through the JetStream store against raw JetStream publishes, on a server you run:
//!
//! ```sh
//! nats-server -js -c sync-always.conf     # jetstream { sync_interval: always }
//! cargo run --release -p diandan-store-jetstream --example jetstream_bench -- nats://127.0.0.1:4222 [seconds] [event bytes]
//! ```
//!
//! Starts nothing itself; creates two streams with fresh names per row and deletes them. The
//! store and raw sides take turns within each row (see `diandan_store_jetstream::bench`).

use std::time::Duration;

use diandan_store_jetstream::bench::appends_vs_raw_publish;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: jetstream_bench nats://host:port[,nats://host:port…] [seconds per side, default 5] [event bytes, default 256]");
        std::process::exit(2);
    };
    let seconds: u64 = args.next().map_or(5, |s| s.parse().expect("seconds"));
    let event_size: usize = args.next().map_or(256, |s| s.parse().expect("event bytes"));
    println!("{url}: one {event_size}-byte event per append, {seconds} s per side");
    println!("| writers | store appends/s | raw publishes/s | store / raw |");
    println!("|--------:|----------------:|----------------:|------------:|");
    for writers in [1, 16, 64] {
        let (store, raw) =
            appends_vs_raw_publish(&url, writers, Duration::from_secs(seconds), event_size).await;
        println!(
            "| {writers:>7} | {store:>15.0} | {raw:>15.0} | {:>11.2} |",
            store / raw.max(f64::EPSILON)
        );
    }
}
