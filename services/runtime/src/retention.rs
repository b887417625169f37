//! 位置保留期 — volunteers' check-in and check-out coordinates (location traces are sensitive
//! personal information under PIPL) are kept exactly only for a configurable period.
//!
//! When a check-in or check-out is written, its coordinates are rounded to
//! [`COARSE_DECIMALS`] decimals (about 1 km) in the event, and the exact ones sealed
//! ([`crate::pii`]) with the key of the retention *period* they fall in. The system reads the
//! exact place while it is kept (the ledger's far-check-in test). A recorded job destroys each
//! period's key once the period ended `DIANDAN_LOCATION_RETENTION` ago (default 180 days; e.g.
//! `90d`, `12h`, `30s`), recording `LocationsCoarsened` in the stream `retention-locations`
//! first: from then on only the coarse place is left anywhere, and the log still verifies.

use std::time::Duration;

use diandan_store::{AppendRequest, ExpectedRevision};
use diandan_workflows::validate::Location;
use serde::Serialize;
use time::OffsetDateTime;

use crate::commands::{new_event, EventMetadata};
use crate::pii;
use crate::{App, RequestContext, Result};

/// Decimals kept in the clear: 2 ≈ 1.1 km of latitude.
pub const COARSE_DECIMALS: i32 = 2;

/// The stream the job records in.
pub const STREAM: &str = "retention-locations";

/// Default retention of exact coordinates.
const DEFAULT_RETENTION: Duration = Duration::from_secs(180 * 24 * 3600);

/// How long exact coordinates are kept (`DIANDAN_LOCATION_RETENTION`).
pub fn retention() -> Duration {
    std::env::var("DIANDAN_LOCATION_RETENTION")
        .ok()
        .and_then(|text| parse_duration(&text))
        .unwrap_or(DEFAULT_RETENTION)
}

/// `90d`, `12h`, `30m`, `45s` — at most 100 years.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)]
        .into_iter()
        .find_map(|(suffix, unit)| Some((text.strip_suffix(suffix)?, unit)))?;
    let seconds = number.parse::<u64>().ok()?.checked_mul(unit)?;
    (seconds <= MAX_RETENTION_S).then(|| Duration::from_secs(seconds))
}

/// The longest retention accepted (100 years).
const MAX_RETENTION_S: u64 = 100 * 366 * 86_400;

/// Refuses a `DIANDAN_LOCATION_RETENTION` that does not parse, at start rather than at the
/// first check-in (a typo must not silently keep locations for the default period).
pub fn check_config() -> std::result::Result<(), String> {
    match std::env::var("DIANDAN_LOCATION_RETENTION") {
        Ok(text) if parse_duration(&text).is_none() => Err(format!(
            "DIANDAN_LOCATION_RETENTION={text:?}: expected a number and a unit, e.g. 180d, 12h, 30m or 45s (at most 100 years)"
        )),
        _ => Ok(()),
    }
}

/// How long one key's period lasts: a day, or less for a short retention (at least a second).
pub fn period(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(86_400))
}

/// The key id of the period `at` falls in, and when that period ends (Unix ms).
pub fn period_of(at: OffsetDateTime, period: Duration) -> (String, i64) {
    let length = period.as_millis().max(1) as i64;
    let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    let start = ms.div_euclid(length) * length;
    (format!("locations-{start}-{length}"), start + length)
}

/// `value` rounded to the coarse precision.
pub fn coarse(value: f64) -> f64 {
    let scale = 10f64.powi(COARSE_DECIMALS);
    (value * scale).round() / scale
}

/// The job's record.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
enum RetentionEvent<'a> {
    LocationsCoarsened {
        key_id: &'a str,
        period_end_ms: i64,
        retention_s: u64,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl App {
    /// Coarsens a check-in's or check-out's location in place and returns its exact
    /// coordinates sealed with the key of the current period.
    pub async fn seal_location(&self, location: &mut Location) -> Result<String> {
        let (key_id, end_ms) = period_of(self.clock.now(), period(retention()));
        let key = self.vault.retention_key(&key_id, end_ms).await?;
        // The address a client may send with it (a reverse-geocoded street) is as exact as the
        // coordinates: sealed with them, and cleared.
        let exact = format!("{},{}\n{}", location.lat, location.lng, location.address);
        location.lat = coarse(location.lat);
        location.lng = coarse(location.lng);
        location.address.clear();
        Ok(format!(
            "{key_id}|{}",
            pii::seal(&key, &key_id, "location", &exact)
        ))
    }

    /// The exact location while its period's key is kept, else the coarse one as written.
    pub async fn precise_location(&self, coarse: &Location, precise: &str) -> Result<Location> {
        let Some((key_id, sealed)) = precise.split_once('|') else {
            return Ok(coarse.clone());
        };
        let key = self.vault.retention_key_live(key_id).await?;
        let exact = pii::open(key.as_ref(), key_id, "location", sealed).and_then(|text| {
            let (point, address) = text.split_once('\n').unwrap_or((text.as_str(), ""));
            let (lat, lng) = point.split_once(',')?;
            Some((
                lat.parse::<f64>().ok()?,
                lng.parse::<f64>().ok()?,
                address.to_owned(),
            ))
        });
        Ok(match exact {
            Some((lat, lng, address)) => Location { lat, lng, address },
            None => coarse.clone(),
        })
    }

    /// The job: records and destroys every key whose period ended longer ago than the
    /// retention. Returns the keys destroyed.
    pub async fn coarsen_locations(&self) -> Result<Vec<String>> {
        let retention = retention();
        let now = self.clock.now();
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let due = self
            .vault
            .retention_keys_due(now_ms - retention.as_millis() as i64)
            .await?;
        for (key_id, period_end_ms) in &due {
            let ctx = RequestContext::system(format!("retention/{key_id}"));
            let metadata = EventMetadata::new(ctx.command_meta(now));
            let event = RetentionEvent::LocationsCoarsened {
                key_id,
                period_end_ms: *period_end_ms,
                retention_s: retention.as_secs(),
                at: now,
            };
            // Recorded first (a retry of the same key is the same command), then destroyed.
            self.store
                .append(AppendRequest {
                    stream: STREAM.into(),
                    expected: ExpectedRevision::Any,
                    command_id: ctx.command_id.clone(),
                    events: vec![new_event("LocationsCoarsened", &event, &metadata)],
                })
                .await?;
            self.vault.erase_retention_key(key_id, now_ms).await?;
            tracing::info!(key = %key_id, "exact check-in locations of a period coarsened");
        }
        Ok(due.into_iter().map(|(key_id, _)| key_id).collect())
    }

    /// Runs the job every quarter period (at most hourly) until `stop` resolves.
    pub async fn run_retention(&self, stop: impl std::future::Future<Output = ()>) {
        let every = period(retention()).min(Duration::from_secs(3600));
        tokio::pin!(stop);
        loop {
            if let Err(error) = self.coarsen_locations().await {
                tracing::error!(%error, "the location retention job failed; retrying");
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn durations_periods_and_coarse_coordinates() {
        assert_eq!(
            parse_duration("90d"),
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("90天"), None);
        assert_eq!(parse_duration("99999999999d"), None);
        assert_eq!(
            period(Duration::from_secs(180 * 86_400)),
            Duration::from_secs(86_400)
        );
        assert_eq!(period(Duration::from_secs(2)), Duration::from_secs(1));
        let (id, end) = period_of(datetime!(2026-12-01 04:00:00.5 UTC), Duration::from_secs(1));
        assert_eq!(
            end - 1000,
            id.split('-').nth(1).unwrap().parse::<i64>().unwrap()
        );
        assert_eq!(coarse(29.87654), 29.88);
        assert_eq!(coarse(114.29876), 114.3);
    }
}
