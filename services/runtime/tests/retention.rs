//! The location retention job in process, on a real store on disk, with a clock the test sets:
//! a check-in's place is coarse as written and exact while its period is kept; 181 days later
//! the job records `LocationsCoarsened` and destroys the period's key — the exact place is gone
//! (only the coarse one reads back), no file holds it, and running the job again does nothing.

use std::sync::Arc;

use time::macros::datetime;

use diandan_runtime::auth::TokenSigner;
use diandan_runtime::clock::Clock;
use diandan_runtime::retention;
use diandan_runtime::App;
use diandan_store::{Direction, EventStore, SqliteStore};
use diandan_workflows::validate::Location;
use diandan_workflows::Registry;

fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).ok()?;
            bytes
                .windows(needle.len())
                .any(|w| w == needle)
                .then(|| path.display().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_places_are_read_while_kept_and_gone_after_the_retention_period() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(SqliteStore::open(dir.path().join("events.db")).unwrap());
    let mut app = App::open(
        store.clone(),
        dir.path(),
        TokenSigner::new(b"test".to_vec()),
        false,
        Registry::builtin(),
    )
    .unwrap();
    let (clock, now) = Clock::settable(datetime!(2026-06-01 02:00 UTC));
    app.clock = clock;

    let mut place = Location {
        lat: 29.87654,
        lng: 114.29876,
        address: String::new(),
    };
    let precise = app.seal_location(&mut place).await.unwrap();
    assert_eq!((place.lat, place.lng), (29.88, 114.3), "written coarse");
    assert!(!precise.contains("29.87654"));
    let exact = app.precise_location(&place, &precise).await.unwrap();
    assert_eq!(
        (exact.lat, exact.lng),
        (29.87654, 114.29876),
        "exact while kept"
    );
    assert!(
        app.coarsen_locations().await.unwrap().is_empty(),
        "nothing due yet"
    );

    // Past the default retention (180 days after the period's day ended).
    *now.lock().unwrap() = datetime!(2026-11-29 02:00 UTC);
    let destroyed = app.coarsen_locations().await.unwrap();
    assert_eq!(destroyed.len(), 1, "{destroyed:?}");
    let back = app.precise_location(&place, &precise).await.unwrap();
    assert_eq!(
        (back.lat, back.lng),
        (29.88, 114.3),
        "only the coarse place is left"
    );
    let recorded = store
        .read_stream(retention::STREAM, 0, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].event_type, "LocationsCoarsened");
    assert!(String::from_utf8_lossy(&recorded[0].data).contains(&destroyed[0]));

    // Again: nothing due, nothing written.
    assert!(app.coarsen_locations().await.unwrap().is_empty());
    assert_eq!(store.head_position().await.unwrap(), recorded[0].position);
    for needle in ["29.87654", "114.29876"] {
        assert!(
            files_holding(dir.path(), needle.as_bytes()).is_empty(),
            "{needle}"
        );
    }
}
