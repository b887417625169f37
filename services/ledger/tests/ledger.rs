//! The ledger in process, on a real store on disk, with a clock the test sets: the year-end
//! expiry run twice (the second run writes nothing), a lapsed one-time code refused and the
//! reservation cancelled by the runner (points and stock back), an interrupted reservation
//! undone, the runner replaying the whole log writing nothing twice, and the read model
//! rebuilt from the log equal to the live one.

use std::sync::Arc;
use std::time::Duration;

use time::macros::datetime;

use diandan_ledger::runner::{self, Checkpoint};
use diandan_ledger::shop;
use diandan_ledger::streams::{execute, load};
use diandan_runtime::auth::{Claims, TokenSigner};
use diandan_runtime::clock::Clock;
use diandan_runtime::{App, AppError, RequestContext};
use diandan_store::sqlite::SqliteStore;
use diandan_store::EventStore;
use diandan_workflows::ledger::hours::{self, HoursCommand, HoursRecord};
use diandan_workflows::ledger::points::{self, PointsAccount, PointsCommand};
use diandan_workflows::ledger::shop::{self as domain, Item, ItemCommand, RedemptionStatus};
use diandan_workflows::permissions::Scope;
use diandan_workflows::{DomainError, Registry, Role};

fn volunteer(id: &str, command: &str) -> RequestContext {
    RequestContext {
        claims: Claims {
            sub: id.into(),
            role: Role::Volunteer,
            node: None,
            acc: None,
            exp: i64::MAX,
        },
        scope: Scope::Own,
        command_id: command.into(),
        correlation_id: command.into(),
    }
}

/// Service credited as the runner credits a check-out.
async fn credit(app: &App, volunteer: &str, order: &str, minutes: u32, at: time::OffsetDateTime) {
    let ctx = RequestContext::system(format!("test/credit/{order}"));
    let command = HoursCommand::Credit {
        order_id: order.into(),
        minutes,
        far_m: None,
        station_id: "s1".into(),
        team_id: "t1".into(),
    };
    execute::<HoursRecord>(app, &ctx, volunteer, |l| {
        Ok(hours::decide(&l.state, &command, "system", at)?)
    })
    .await
    .unwrap();
}

async fn account(app: &App, volunteer: &str) -> PointsAccount {
    load::<PointsAccount>(app, volunteer).await.unwrap().state
}

async fn item(app: &App) -> Item {
    load::<Item>(app, "soap").await.unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn year_end_once_lapsed_codes_orphans_and_replays() {
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
    let (clock, now) = Clock::settable(datetime!(2025-12-15 02:00 UTC));
    app.clock = clock;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let follower = {
        let mut rx = stop_rx.clone();
        tokio::spawn(app.read.clone().follow_owned(store.clone(), async move {
            let _ = rx.wait_for(|s| *s).await;
        }))
    };
    let checkpoint = Checkpoint::open(&dir.path().join("ledger.db")).unwrap();
    let settle = async |app: &App, checkpoint: &Checkpoint| {
        runner::catch_up(app, checkpoint).await.unwrap();
        let head = app.store.head_position().await.unwrap();
        app.read.wait_for(head, Duration::from_secs(10)).await;
    };

    // v1 served 90 minutes in December 2025, v2 an hour in January 2026.
    credit(&app, "v1", "o-2025", 90, datetime!(2025-12-15 03:00 UTC)).await;
    credit(&app, "v2", "o-2026", 60, datetime!(2026-01-10 03:00 UTC)).await;
    settle(&app, &checkpoint).await;
    assert_eq!(account(&app, "v1").await.available, 150);
    assert_eq!(account(&app, "v2").await.available, 100);

    // The year 2025 ends: v1's points lapse, v2's (earned in 2026) stay.
    *now.lock().unwrap() = datetime!(2026-01-02 02:00 UTC);
    let first = runner::year_end(&app, 2025).await.unwrap().expect("a run");
    assert_eq!((first.volunteers, first.centipoints), (1, 150));
    assert_eq!(account(&app, "v1").await.available, 0);
    assert_eq!(account(&app, "v1").await.expired_total, 150);
    assert_eq!(account(&app, "v2").await.available, 100);
    settle(&app, &checkpoint).await;
    // Run again — as recorded, and once more for v1 under a new command id: nothing written.
    let head = app.store.head_position().await.unwrap();
    let second = runner::year_end(&app, 2025)
        .await
        .unwrap()
        .expect("the recorded run");
    assert_eq!(second, first);
    let again = execute::<PointsAccount>(
        &app,
        &RequestContext::system("test/expire-again"),
        "v1",
        |l| {
            Ok(points::decide(
                &l.state,
                "v1",
                &PointsCommand::Expire { year: 2025 },
                datetime!(2026-01-02 03:00 UTC),
            )?)
        },
    )
    .await
    .unwrap();
    assert!(again.duplicate);
    assert_eq!(
        app.store.head_position().await.unwrap(),
        head,
        "nothing written"
    );
    assert_eq!(account(&app, "v1").await.expired_total, 150);

    // The love supermarket: v2 reserves a bar of soap; the code lapses before the shop sees it.
    let ctx = RequestContext::system("test/list");
    let list = ItemCommand::List {
        item_id: "soap".into(),
        node_id: "s1".into(),
        name: "洗衣皂".into(),
        points: 50,
        stock: 2,
    };
    execute::<Item>(&app, &ctx, "soap", |l| {
        Ok(domain::decide_item(&l.state, &list)?)
    })
    .await
    .unwrap();
    let soap = item(&app).await;
    let redemption = shop::reserve(&app, &volunteer("v2", "test/reserve"), &soap, 1)
        .await
        .unwrap();
    assert_eq!(redemption.status, RedemptionStatus::Reserved);
    assert_eq!(account(&app, "v2").await.available, 50);
    assert_eq!(item(&app).await.stock, 1);
    // The same reservation sent again: the same redemption, nothing more held.
    let resent = shop::reserve(&app, &volunteer("v2", "test/reserve"), &soap, 1)
        .await
        .unwrap();
    assert_eq!(resent.redemption_id, redemption.redemption_id);
    assert_eq!(account(&app, "v2").await.available, 50);

    let code = shop::code_of(&app, &redemption.redemption_id);
    *now.lock().unwrap() =
        datetime!(2026-01-02 02:00 UTC) + shop::CODE_LIFETIME + time::Duration::hours(1);
    let head = app.store.head_position().await.unwrap();
    let lapsed = shop::hand_over(
        &app,
        &RequestContext::system("test/hand-over"),
        &redemption.redemption_id,
        &code,
    )
    .await;
    assert!(
        matches!(
            lapsed,
            Err(AppError::Domain(DomainError::Conflict {
                field: "code",
                ..
            }))
        ),
        "{lapsed:?}"
    );
    assert_eq!(
        app.store.head_position().await.unwrap(),
        head,
        "refused: nothing written"
    );
    // The runner cancels it: the points and the unit come back.
    settle(&app, &checkpoint).await;
    runner::sweep(&app).await.unwrap();
    settle(&app, &checkpoint).await;
    let cancelled = load::<domain::Redemption>(&app, &redemption.redemption_id)
        .await
        .unwrap()
        .state;
    assert_eq!(cancelled.status, RedemptionStatus::Cancelled);
    assert_eq!(account(&app, "v2").await.available, 100);
    assert_eq!(account(&app, "v2").await.held_total(), 0);
    assert_eq!(item(&app).await.stock, 2);

    // A reservation interrupted after holding points and stock, before its redemption was
    // recorded: undone by the runner once it is old.
    let orphan = "R-INTERRUPTED";
    let hold = PointsCommand::Hold {
        redemption_id: orphan.into(),
        points: 50,
    };
    execute::<PointsAccount>(&app, &volunteer("v2", "test/orphan/hold"), "v2", |l| {
        Ok(points::decide(
            &l.state,
            "v2",
            &hold,
            datetime!(2026-01-02 02:00 UTC),
        )?)
    })
    .await
    .unwrap();
    let reserve = ItemCommand::Reserve {
        redemption_id: orphan.into(),
        quantity: 1,
    };
    execute::<Item>(&app, &volunteer("v2", "test/orphan/stock"), "soap", |l| {
        Ok(domain::decide_item(&l.state, &reserve)?)
    })
    .await
    .unwrap();
    settle(&app, &checkpoint).await;
    *now.lock().unwrap() = time::OffsetDateTime::now_utc();
    runner::sweep(&app).await.unwrap();
    assert_eq!(
        account(&app, "v2").await.held_total(),
        50,
        "not yet: it may still finish"
    );
    *now.lock().unwrap() = time::OffsetDateTime::now_utc() + time::Duration::minutes(11);
    runner::sweep(&app).await.unwrap();
    assert_eq!(account(&app, "v2").await.available, 100);
    assert_eq!(account(&app, "v2").await.held_total(), 0);
    assert_eq!(item(&app).await.stock, 2);
    assert!(item(&app).await.reserved.is_empty());

    // A reservation refused for want of stock gives its hold back; sent again after a restock,
    // it stays refused (it must not go on without points held).
    let list = ItemCommand::List {
        item_id: "rare".into(),
        node_id: "s1".into(),
        name: "纪念册".into(),
        points: 10,
        stock: 0,
    };
    execute::<Item>(
        &app,
        &RequestContext::system("test/list-rare"),
        "rare",
        |l| Ok(domain::decide_item(&l.state, &list)?),
    )
    .await
    .unwrap();
    let rare = load::<Item>(&app, "rare").await.unwrap().state;
    let refused = shop::reserve(&app, &volunteer("v2", "test/rare"), &rare, 1).await;
    assert!(
        matches!(
            refused,
            Err(AppError::Domain(DomainError::Conflict {
                field: "quantity",
                ..
            }))
        ),
        "{refused:?}"
    );
    assert_eq!(account(&app, "v2").await.available, 100);
    let restock = ItemCommand::Restock {
        quantity: 1,
        reason: "到货".into(),
    };
    execute::<Item>(
        &app,
        &RequestContext::system("test/restock-rare"),
        "rare",
        |l| Ok(domain::decide_item(&l.state, &restock)?),
    )
    .await
    .unwrap();
    let rare = load::<Item>(&app, "rare").await.unwrap().state;
    let resent = shop::reserve(&app, &volunteer("v2", "test/rare"), &rare, 1).await;
    assert!(
        matches!(resent, Err(AppError::Conflict { .. })),
        "{resent:?}"
    );
    assert_eq!(account(&app, "v2").await.available, 100);
    assert_eq!(account(&app, "v2").await.held_total(), 0);
    assert_eq!(load::<Item>(&app, "rare").await.unwrap().state.stock, 1);

    // The runner replaying the whole log from position 0 writes nothing.
    settle(&app, &checkpoint).await;
    let head = app.store.head_position().await.unwrap();
    let fresh = Checkpoint::open(&dir.path().join("replay.db")).unwrap();
    runner::catch_up(&app, &fresh).await.unwrap();
    assert_eq!(
        app.store.head_position().await.unwrap(),
        head,
        "a replay writes nothing"
    );

    // The read model rebuilt from the log equals the live one.
    app.read.wait_for(head, Duration::from_secs(10)).await;
    let rebuilt = diandan_runtime::projections::rebuild(
        store.as_ref(),
        &dir.path().join("rebuilt.db"),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(rebuilt.dump().unwrap(), app.read.dump().unwrap());

    let _ = stop_tx.send(true);
    follower.await.unwrap();
}

/// A ledger stream is folded once per process and then only from where it was left: a load
/// through the cache equals the stream folded whole, and a process whose cache holds an old
/// fold still sees what another process appended since (the store is read from the cached
/// revision on, never trusted past it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_ledger_streams_stay_as_fresh_as_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(SqliteStore::open(dir.path().join("events.db")).unwrap());
    let open = |sub: &str| {
        App::open(
            store.clone(),
            &dir.path().join(sub),
            TokenSigner::new(b"test".to_vec()),
            false,
            Registry::builtin(),
        )
        .unwrap()
    };
    let (one, other) = (open("one"), open("other"));
    let at = datetime!(2026-03-02 03:00 UTC);
    credit(&one, "v1", "o-1", 60, at).await;
    credit(&one, "v1", "o-2", 30, at).await;
    let seen = load::<HoursRecord>(&other, "v1").await.unwrap();
    assert_eq!(seen.revision, Some(1));
    assert_eq!(other.other_streams.len(), 1, "kept after its first load");

    // The first process goes on; the second's kept fold is two services old.
    credit(&one, "v1", "o-3", 45, at).await;
    credit(&one, "v1", "o-4", 15, at).await;
    let cached = load::<HoursRecord>(&other, "v1").await.unwrap();
    let whole = load::<HoursRecord>(&open("fresh"), "v1").await.unwrap();
    assert_eq!(
        cached.revision,
        Some(3),
        "what the other process appended is seen"
    );
    assert_eq!(cached.state, whole.state);

    // A command decided through the stale cache is decided on the current stream: a resent
    // credit finds its events instead of crediting twice.
    credit(&other, "v1", "o-4", 15, at).await;
    let after = load::<HoursRecord>(&open("fresh-2"), "v1").await.unwrap();
    assert_eq!(after.revision, Some(3), "nothing credited twice");
}
