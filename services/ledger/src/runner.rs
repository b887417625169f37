//! The ledger's process manager: it tails the log and keeps the ledger in step with what
//! happened.
//!
//! - A volunteer checked out of an order → their hours are credited (`HoursCredited`), held
//!   for the station head when the check-in was farther than the radius from the order's place.
//! - A volunteer's hours changed (credited, confirmed, rejected, corrected) → the points the
//!   order earned are reconciled with the published rule: nothing for hours waiting or
//!   rejected, a reversal and a new earning for a correction.
//! - A redemption handed over or cancelled → its stock and points are settled.
//! - A reservation's code lapsed → it is cancelled; a reservation interrupted before its
//!   redemption was recorded → undone.
//! - A year ended → the year-end expiry job runs once, recorded in `ledger-year-end-<year>`.
//!
//! Every step is a command with an id derived from what caused it, decided against the
//! stream's state: replaying the log (a restart, a lost checkpoint) writes nothing twice. The
//! checkpoint lives in `ledger.db` beside the read model.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use rusqlite::Connection;
use time::OffsetDateTime;

use diandan_runtime::commands::decode_order_event;
use diandan_runtime::projections::ledger as read;
use diandan_runtime::{App, AppError, RequestContext, Result};
use diandan_store::{Direction, ExpectedRevision, RecordedEvent};
use diandan_workflows::ledger::hours::{self, HoursCommand, HoursEvent, HoursRecord};
use diandan_workflows::ledger::points::{self, PointsAccount, PointsCommand};
use diandan_workflows::ledger::shop::Redemption;
use diandan_workflows::order::{self, OrderChange, OrderState};
use diandan_workflows::validate::Location;

use crate::streams::{execute, load, Loaded};

/// How far from the order's place a check-in may be before its hours wait for the station
/// head (`DIANDAN_CHECKIN_RADIUS_M`, meters).
pub fn radius_m() -> u32 {
    std::env::var("DIANDAN_CHECKIN_RADIUS_M")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(hours::DEFAULT_RADIUS_M)
}

/// How often the runner looks for lapsed codes and interrupted reservations when idle.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// A reservation not recorded this long after its first step was interrupted.
const ORPHAN_AFTER_MS: i64 = 10 * 60 * 1000;

/// Where the runner stands in the log.
#[derive(Clone)]
pub struct Checkpoint {
    conn: Arc<Mutex<Connection>>,
}

impl Checkpoint {
    pub fn open(path: &Path) -> Result<Checkpoint> {
        diandan_runtime::sqlite_file::initialize(path, || {
            let conn = diandan_runtime::sqlite_file::open(path)?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS ledger_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 0), position INTEGER NOT NULL);
                 INSERT OR IGNORE INTO ledger_checkpoint (id, position) VALUES (0, 0);",
            )?;
            Ok(Checkpoint {
                conn: Arc::new(Mutex::new(conn)),
            })
        })
    }

    fn get(&self) -> Result<u64> {
        let conn = self.conn.lock().expect("checkpoint poisoned");
        Ok(conn.query_row("SELECT position FROM ledger_checkpoint", [], |r| r.get(0))?)
    }

    /// Runs `f` on the blocking pool: the checkpoint's file is synced on every move, and a
    /// sync must not hold up the async workers (HTTP requests wait on them).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Checkpoint) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let checkpoint = self.clone();
        tokio::task::spawn_blocking(move || f(&checkpoint))
            .await
            .map_err(|e| AppError::Storage(format!("ledger checkpoint: {e}")))?
    }

    /// Moves the checkpoint on to `position` (never back): the runner then starts after it.
    pub fn set(&self, position: u64) -> Result<()> {
        let conn = self.conn.lock().expect("checkpoint poisoned");
        conn.execute(
            "UPDATE ledger_checkpoint SET position = MAX(position, ?1)",
            [position],
        )?;
        Ok(())
    }
}

fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Runs the ledger until `shutdown` resolves.
pub async fn run(
    app: App,
    checkpoint: Checkpoint,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    // The last year whose year-end run is recorded, and when the job last looked.
    let mut year_checked = None;
    let mut year_looked: Option<std::time::Instant> = None;
    let mut swept: Option<std::time::Instant> = None;
    loop {
        if (&mut shutdown).now_or_never().is_some() {
            return;
        }
        // Paused while the demo replays history (its service is credited once it is in); a
        // shutdown meanwhile is not kept waiting.
        let hold = futures::select! {
            _ = shutdown => return,
            hold = app.timer_hold.clone().read_owned().fuse() => hold,
        };
        let worked = match round(&app, &checkpoint).await {
            Ok(worked) => worked,
            Err(e) => {
                tracing::warn!(error = %e, "ledger round failed; retrying");
                false
            }
        };
        if !worked {
            // Lapsed codes and interrupted reservations are minutes-scale: looked for every few
            // seconds, not on every idle round.
            if swept.is_none_or(|t| t.elapsed() > SWEEP_EVERY) {
                swept = Some(std::time::Instant::now());
                if let Err(e) = sweep(&app).await {
                    tracing::warn!(error = %e, "ledger sweep failed; retrying");
                }
            }
            // Caught up with the log: the year-end job of the year that ended, once.
            let year = points::year_of(app.clock.now()) - 1;
            let due = year_looked.is_none_or(|t| t.elapsed() > Duration::from_secs(60));
            if year_checked != Some(year) && due {
                year_looked = Some(std::time::Instant::now());
                match year_end(&app, year).await {
                    Ok(Some(_)) => year_checked = Some(year),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, year, "year-end expiry failed; retrying"),
                }
            }
        }
        drop(hold);
        if !worked {
            futures::select! {
                _ = shutdown => return,
                _ = tokio::time::sleep(Duration::from_millis(200)).fuse() => {}
            }
        }
    }
}

/// One batch of the log. True if there was any.
pub async fn round(app: &App, checkpoint: &Checkpoint) -> Result<bool> {
    let from = checkpoint.blocking(Checkpoint::get).await? + 1;
    let events = app.store.read_all(from, 256).await?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(false);
    };
    for event in &events {
        handle(app, event).await?;
    }
    checkpoint.blocking(move |c| c.set(last)).await?;
    Ok(true)
}

/// Catches the ledger up with the whole log now (tests, the demo): returns when the runner
/// has nothing left to do.
pub async fn catch_up(app: &App, checkpoint: &Checkpoint) -> Result<()> {
    while round(app, checkpoint).await? {}
    Ok(())
}

async fn handle(app: &App, event: &RecordedEvent) -> Result<()> {
    if let Some(order_id) = event.stream.strip_prefix("order-") {
        if event.event_type == "VolunteerCheckedOut" {
            credit(app, order_id, event).await?;
        }
    } else if let Some(volunteer) = event.stream.strip_prefix("hours-") {
        let decoded: HoursEvent = serde_json::from_slice(&event.data)
            .map_err(|e| AppError::Storage(format!("event {} payload: {e}", event.position)))?;
        let (order_id, at) = match &decoded {
            HoursEvent::HoursCredited { order_id, at, .. } => (order_id, *at),
            HoursEvent::HoursConfirmed { order_id, .. }
            | HoursEvent::HoursRejected { order_id, .. }
            | HoursEvent::HoursCorrected { order_id, .. } => {
                (order_id, at_ms(event.recorded_at_ms))
            }
            HoursEvent::HoursAddedByHand { .. } => return Ok(()),
        };
        reconcile_points(app, volunteer, order_id, at, event.revision).await?;
    } else if let Some(id) = event.stream.strip_prefix("redemption-") {
        if event.event_type != "RedemptionReserved" {
            let redemption = load::<Redemption>(app, id).await?;
            crate::shop::settle(app, &redemption.state).await?;
        }
    }
    Ok(())
}

/// The service a check-out ends, as the ledger credits it.
struct Service {
    volunteer_id: String,
    /// The order, or `<order>~<round>` for a rework round.
    key: String,
    minutes: u32,
    far_m: Option<u32>,
    station_id: String,
    team_id: String,
    at: OffsetDateTime,
}

/// Reads the order up to the check-out: who served, for which team, how long, from where.
async fn service_of(app: &App, order_id: &str, checkout: &RecordedEvent) -> Result<Service> {
    let stream = order::stream_name(order_id);
    let events = app
        .store
        .read_stream(
            &stream,
            0,
            Direction::Forward,
            checkout.revision as usize + 1,
        )
        .await?;
    let mut state = OrderState::default();
    let mut check_ins: Vec<(String, Location)> = Vec::new();
    for recorded in events.iter().take_while(|e| e.revision < checkout.revision) {
        let event = decode_order_event(recorded)?;
        if let OrderChange::VolunteerCheckedIn {
            volunteer_id,
            location,
            precise,
        } = &event.change
        {
            // The exact place while it is kept; the coarse one after (see `retention`).
            let location = app.precise_location(location, precise).await?;
            check_ins.push((volunteer_id.clone(), location));
        }
        state = order::evolve(state, &event);
    }
    let event = decode_order_event(checkout)?;
    let OrderChange::VolunteerCheckedOut {
        volunteer_id,
        service_minutes,
        ..
    } = event.change
    else {
        return Err(AppError::Storage(format!(
            "event {} is not a check-out",
            checkout.position
        )));
    };
    let check_in = check_ins
        .iter()
        .rev()
        .find(|(v, _)| *v == volunteer_id)
        .map(|(_, l)| l);
    let far_m = match (&state.location, check_in) {
        (Some(place), Some(check_in)) => hours::far_check_in(place, check_in, radius_m()),
        _ => None,
    };
    let team_id = state
        .claims
        .get(&volunteer_id)
        .map(|s| s.team_id.clone())
        .or_else(|| state.accepted_by.as_ref().map(|(_, t)| t.clone()))
        .unwrap_or_default();
    let key = if state.reworks > 0 {
        format!("{order_id}~{}", state.reworks)
    } else {
        order_id.to_owned()
    };
    Ok(Service {
        volunteer_id,
        key,
        minutes: service_minutes,
        far_m,
        station_id: state.station_id,
        team_id,
        at: event.at,
    })
}

async fn credit(app: &App, order_id: &str, checkout: &RecordedEvent) -> Result<()> {
    let service = service_of(app, order_id, checkout).await?;
    if service.minutes == 0 {
        return Ok(());
    }
    let ctx = RequestContext::system(format!("ledger/credit/{order_id}/{}", checkout.revision));
    let command = HoursCommand::Credit {
        order_id: service.key,
        minutes: service.minutes,
        far_m: service.far_m,
        station_id: service.station_id,
        team_id: service.team_id,
    };
    execute::<HoursRecord>(app, &ctx, &service.volunteer_id, |l| {
        Ok(hours::decide(&l.state, &command, "system", service.at)?)
    })
    .await?;
    Ok(())
}

/// The points an order earned, brought in line with its credited hours.
async fn reconcile_points(
    app: &App,
    volunteer: &str,
    order_id: &str,
    at: OffsetDateTime,
    hours_revision: u64,
) -> Result<()> {
    let record: Loaded<HoursRecord> = load(app, volunteer).await?;
    let minutes = record
        .state
        .service_minutes(order_id)
        .map_or(0, |m| u32::try_from(m.max(0)).unwrap_or(u32::MAX));
    let rejected = record
        .state
        .services
        .get(order_id)
        .is_some_and(|s| s.rejected);
    let ctx = RequestContext::system(format!(
        "ledger/points/{volunteer}/{order_id}/{hours_revision}"
    ));
    execute::<PointsAccount>(app, &ctx, volunteer, |l| {
        let current = l.state.earned.get(order_id).copied();
        let wanted = points::points_for_minutes(minutes);
        if current.unwrap_or(0) == wanted {
            return Ok(Vec::new());
        }
        let mut account = l.state.clone();
        let mut events = Vec::new();
        if current.is_some() {
            let reason = if rejected {
                "签到位置被驳回"
            } else {
                "时长更正"
            };
            let reverse = PointsCommand::Reverse {
                order_id: order_id.to_owned(),
                reason: reason.into(),
            };
            for event in points::decide(&account, volunteer, &reverse, at)? {
                account = points::evolve(account, &event);
                events.push(event);
            }
        }
        let earn = PointsCommand::Earn {
            order_id: order_id.to_owned(),
            minutes,
            by_hand: false,
        };
        events.extend(points::decide(&account, volunteer, &earn, at)?);
        Ok(events)
    })
    .await?;
    Ok(())
}

/// Cancels reservations whose code lapsed and undoes interrupted ones.
pub async fn sweep(app: &App) -> Result<()> {
    let now_ms = (app.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
    let lapsed = app
        .read
        .query(move |c| read::lapsed_redemptions(c, now_ms, 100))
        .await?;
    for id in lapsed {
        let ctx = RequestContext::system(format!("ledger/lapse/{id}"));
        if let Err(e) = crate::shop::cancel(app, &ctx, &id, "兑换码已过期，自动取消").await
        {
            tracing::warn!(error = %e, redemption = %id, "lapsed redemption not cancelled");
        }
    }
    let orphans = app
        .read
        .query(move |c| read::orphaned_holds(c, now_ms - ORPHAN_AFTER_MS))
        .await?;
    for (id, volunteer, item) in orphans {
        crate::shop::undo_orphan(app, &id, volunteer.as_deref(), item.as_deref()).await?;
    }
    Ok(())
}

/// What a year-end run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct YearEnd {
    pub year: i32,
    /// Volunteers whose points lapsed.
    pub volunteers: u32,
    /// Points that lapsed, in hundredths.
    pub centipoints: i64,
}

/// The year-end job (积分年底清零): points earned in `year` or before and still available
/// lapse. Each volunteer's expiry is idempotent (a year expires once per account), and the run
/// is recorded in `ledger-year-end-<year>`; run again, it changes nothing. With no points
/// anywhere yet there is nothing to run: `None`, and nothing is written.
pub async fn year_end(app: &App, year: i32) -> Result<Option<YearEnd>> {
    let stream = format!("ledger-year-end-{year}");
    if let Some(recorded) = app
        .store
        .read_stream(&stream, 0, Direction::Forward, 1)
        .await?
        .first()
    {
        return serde_json::from_slice(&recorded.data)
            .map(Some)
            .map_err(|e| AppError::Storage(format!("{stream}: {e}")));
    }
    // The read model must have seen every points stream there is.
    let head = app.store.head_position().await?;
    app.read.wait_for(head, Duration::from_secs(30)).await;
    let holders = app.read.query(read::point_holders).await?;
    if holders.is_empty() {
        return Ok(None);
    }
    let mut report = YearEnd {
        year,
        ..YearEnd::default()
    };
    let now = app.clock.now();
    for volunteer in holders {
        let ctx = RequestContext::system(format!("ledger/year-end/{year}/{volunteer}"));
        let mut lapsed = 0;
        let written = execute::<PointsAccount>(app, &ctx, &volunteer, |l| {
            let events =
                points::decide(&l.state, &volunteer, &PointsCommand::Expire { year }, now)?;
            // Nothing to lapse: nothing written (the year stays open for a later earning).
            let events: Vec<_> = events
                .into_iter()
                .filter(|e| !matches!(e, points::PointsEvent::PointsExpired { points: 0, .. }))
                .collect();
            lapsed = events
                .iter()
                .map(|e| match e {
                    points::PointsEvent::PointsExpired { points, .. } => *points,
                    _ => 0,
                })
                .sum();
            Ok(events)
        })
        .await?;
        if !written.duplicate {
            report.volunteers += 1;
            report.centipoints += lapsed;
        }
    }
    let ctx = RequestContext::system(format!("ledger/year-end/{year}"));
    let metadata = diandan_runtime::commands::EventMetadata::new(ctx.command_meta(now));
    let request = diandan_store::AppendRequest {
        stream: stream.clone(),
        expected: ExpectedRevision::NoStream,
        command_id: ctx.command_id.clone(),
        events: vec![diandan_runtime::commands::new_event(
            "YearEndExpiryRan",
            &report,
            &metadata,
        )],
    };
    match app.store.append(request).await {
        Ok(_) | Err(diandan_store::StoreError::WrongExpectedRevision { .. }) => Ok(Some(report)),
        Err(e) => Err(e.into()),
    }
}
