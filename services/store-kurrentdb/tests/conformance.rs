//! The conformance suite against a real KurrentDB server. There is none on a machine without
//! one, so every test here is ignored; to run them, start a server and point
//! `DIANDAN_KURRENTDB_URL` at it:
//!
//! ```sh
//! docker run --rm -d -p 2113:2113 docker.kurrent.io/kurrent-latest/kurrentdb:latest --insecure
//! DIANDAN_KURRENTDB_URL='kurrentdb://127.0.0.1:2113?tls=false' \
//!     cargo test -p diandan-store-kurrentdb --test conformance -- --ignored
//! ```
//!
//! Every check uses streams of its own, so the tests can share one database, run side by side
//! and run again on a database that already holds events.

use diandan_store::conformance;
use diandan_store_kurrentdb::KurrentDbStore;

const URL_VARIABLE: &str = "DIANDAN_KURRENTDB_URL";

async fn store() -> KurrentDbStore {
    let url = std::env::var(URL_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{URL_VARIABLE} is not set: point it at a KurrentDB server, \
             e.g. kurrentdb://127.0.0.1:2113?tls=false"
        )
    });
    KurrentDbStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connecting to KurrentDB at {URL_VARIABLE}: {e}"))
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "needs a KurrentDB server: set DIANDAN_KURRENTDB_URL (e.g. kurrentdb://127.0.0.1:2113?tls=false) and run with --ignored"]
        async fn $check() {
            conformance::$check(&store().await).await;
        }
    )*};
}

conformance_tests!(
    append_and_read_back,
    events_carry_their_hash_chain,
    rejects_malformed_appends,
    no_stream_conflicts_with_existing_stream,
    exact_conflicts_with_other_revision,
    any_appends_wherever_the_stream_is,
    concurrent_exact_appends_one_wins,
    idempotent_append,
    idempotent_append_under_concurrency,
    failed_append_writes_nothing,
    read_stream_directions_and_limits,
    global_log_order,
    subscription_catches_up_then_goes_live,
    subscription_resumes_from_checkpoint,
    subscription_follows_concurrent_appends,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a KurrentDB server: set DIANDAN_KURRENTDB_URL (e.g. kurrentdb://127.0.0.1:2113?tls=false) and run with --ignored"]
async fn all_checks_share_one_store() {
    conformance::run_all(&store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a KurrentDB server: set DIANDAN_KURRENTDB_URL (e.g. kurrentdb://127.0.0.1:2113?tls=false) and run with --ignored"]
async fn checks_run_side_by_side_on_one_store() {
    let store = store().await;
    futures::join!(
        conformance::run_all(&store),
        conformance::run_all(&store),
        conformance::subscription_follows_concurrent_appends(&store),
    );
}
