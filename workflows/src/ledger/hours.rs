//! 志愿服务时长: a volunteer's service hours.
//!
//! Hours are credited from an order's check-in and check-out (dispatched orders and claims
//! alike). A check-in farther than the configured radius from the order's place is held
//! (`flagged`) until the station head confirms or rejects it. Nothing is edited: a correction
//! is a compensating event with a reason and an actor; hours an administrator adds by hand are
//! marked as such (and earn no points). Star ranks (星级) are reached at configurable
//! thresholds of credited hours.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::dispatch_rules::{haversine_km, GeoPoint};
use crate::validate::{self, Location, MAX_SHORT_TEXT_CHARS};
use crate::DomainError;

/// The published star ranks: 一星 at 100 hours … 五星 at 1500.
pub const DEFAULT_RANK_HOURS: [u32; 5] = [100, 300, 600, 1000, 1500];

/// How far from the order's place a check-in may be before it is held for the station head.
pub const DEFAULT_RADIUS_M: u32 = 500;

/// The star rank (0 = none yet, 1–5) for `minutes` of credited service.
pub fn rank(minutes: u64, thresholds_hours: &[u32]) -> u8 {
    let hours = minutes / 60;
    thresholds_hours
        .iter()
        .take_while(|&&t| hours >= u64::from(t))
        .count()
        .min(u8::MAX as usize) as u8
}

/// The rank's name, e.g. 三星志愿者.
pub fn rank_name(rank: u8) -> &'static str {
    match rank {
        0 => "志愿者",
        1 => "一星志愿者",
        2 => "二星志愿者",
        3 => "三星志愿者",
        4 => "四星志愿者",
        _ => "五星志愿者",
    }
}

/// Meters between the order's place and a check-in, when it exceeds `radius_m`.
pub fn far_check_in(order: &Location, check_in: &Location, radius_m: u32) -> Option<u32> {
    let km = haversine_km(
        GeoPoint {
            lat: order.lat,
            lng: order.lng,
        },
        GeoPoint {
            lat: check_in.lat,
            lng: check_in.lng,
        },
    );
    let meters = (km * 1000.0).round();
    (meters > f64::from(radius_m)).then_some(meters.min(f64::from(u32::MAX)) as u32)
}

/// What happened to a volunteer's hours (`hours-<volunteer>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum HoursEvent {
    /// Service on an order, from check-in to check-out. `far_m`: the check-in was that far from
    /// the order's place, so the hours wait for the station head.
    HoursCredited {
        order_id: String,
        minutes: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        far_m: Option<u32>,
        /// The order's station and the team served for (rankings, the station head's list).
        #[serde(default)]
        station_id: String,
        #[serde(default)]
        team_id: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The station head accepts a far check-in's hours.
    HoursConfirmed { order_id: String, by: String },
    /// The station head rejects a far check-in's hours.
    HoursRejected {
        order_id: String,
        by: String,
        reason: String,
    },
    /// A compensating correction of an order's credited minutes (negative: fewer).
    HoursCorrected {
        order_id: String,
        delta_minutes: i64,
        by: String,
        reason: String,
    },
    /// Hours an administrator added by hand (e.g. a paper record): marked, and earning no points.
    HoursAddedByHand {
        minutes: u32,
        by: String,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl HoursEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            HoursEvent::HoursCredited { .. } => "HoursCredited",
            HoursEvent::HoursConfirmed { .. } => "HoursConfirmed",
            HoursEvent::HoursRejected { .. } => "HoursRejected",
            HoursEvent::HoursCorrected { .. } => "HoursCorrected",
            HoursEvent::HoursAddedByHand { .. } => "HoursAddedByHand",
        }
    }
}

/// One order's service as credited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub minutes: i64,
    /// Waiting for the station head (a far check-in).
    pub pending: bool,
    pub rejected: bool,
}

/// A volunteer's hours, folded from their stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HoursRecord {
    pub services: BTreeMap<String, Service>,
    pub by_hand_minutes: i64,
}

impl HoursRecord {
    /// Minutes that count: confirmed service, corrections, and hours added by hand.
    pub fn credited_minutes(&self) -> i64 {
        self.services
            .values()
            .filter(|s| !s.pending && !s.rejected)
            .map(|s| s.minutes)
            .sum::<i64>()
            + self.by_hand_minutes
    }

    /// Minutes that earned points: service only, not hours added by hand.
    pub fn service_minutes(&self, order_id: &str) -> Option<i64> {
        self.services
            .get(order_id)
            .filter(|s| !s.pending && !s.rejected)
            .map(|s| s.minutes)
    }
}

pub fn evolve(mut record: HoursRecord, event: &HoursEvent) -> HoursRecord {
    match event {
        HoursEvent::HoursCredited {
            order_id,
            minutes,
            far_m,
            ..
        } => {
            record.services.insert(
                order_id.clone(),
                Service {
                    minutes: i64::from(*minutes),
                    pending: far_m.is_some(),
                    rejected: false,
                },
            );
        }
        HoursEvent::HoursConfirmed { order_id, .. } => {
            if let Some(s) = record.services.get_mut(order_id) {
                s.pending = false;
            }
        }
        HoursEvent::HoursRejected { order_id, .. } => {
            if let Some(s) = record.services.get_mut(order_id) {
                s.pending = false;
                s.rejected = true;
            }
        }
        HoursEvent::HoursCorrected {
            order_id,
            delta_minutes,
            ..
        } => {
            if let Some(s) = record.services.get_mut(order_id) {
                s.minutes += delta_minutes;
            }
        }
        HoursEvent::HoursAddedByHand { minutes, .. } => {
            record.by_hand_minutes += i64::from(*minutes);
        }
    }
    record
}

/// What may be asked of a volunteer's hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoursCommand {
    Credit {
        order_id: String,
        minutes: u32,
        far_m: Option<u32>,
        station_id: String,
        team_id: String,
    },
    Confirm {
        order_id: String,
    },
    Reject {
        order_id: String,
        reason: String,
    },
    Correct {
        order_id: String,
        delta_minutes: i64,
        reason: String,
    },
    AddByHand {
        minutes: i64,
        reason: String,
    },
}

/// The longest a correction or a hand entry may be: a day of service.
pub const MAX_MINUTES: i64 = 24 * 60;

/// Decides a command by `actor` at `at`. Who may (the station head, an administrator) is the
/// caller's permission check; this checks the facts.
pub fn decide(
    record: &HoursRecord,
    command: &HoursCommand,
    actor: &str,
    at: OffsetDateTime,
) -> Result<Vec<HoursEvent>, DomainError> {
    let by = actor.to_owned();
    let served = |order_id: &str| {
        record.services.get(order_id).ok_or_else(|| {
            DomainError::conflict("order_id", "该志愿者没有服务过这个订单，不能计算时长")
        })
    };
    let event = match command {
        HoursCommand::Credit {
            order_id,
            minutes,
            far_m,
            station_id,
            team_id,
        } => {
            if record.services.contains_key(order_id) {
                return Ok(Vec::new());
            }
            HoursEvent::HoursCredited {
                order_id: order_id.clone(),
                minutes: *minutes,
                far_m: *far_m,
                station_id: station_id.clone(),
                team_id: team_id.clone(),
                at,
            }
        }
        HoursCommand::Confirm { order_id } => {
            if !served(order_id)?.pending {
                return Err(DomainError::conflict("order_id", "该时长无需确认"));
            }
            HoursEvent::HoursConfirmed {
                order_id: order_id.clone(),
                by,
            }
        }
        HoursCommand::Reject { order_id, reason } => {
            if !served(order_id)?.pending {
                return Err(DomainError::conflict("order_id", "该时长无需确认"));
            }
            HoursEvent::HoursRejected {
                order_id: order_id.clone(),
                by,
                reason: validate::text("reason", reason, 1, MAX_SHORT_TEXT_CHARS)?,
            }
        }
        HoursCommand::Correct {
            order_id,
            delta_minutes,
            reason,
        } => {
            let reason = validate::text("reason", reason, 1, MAX_SHORT_TEXT_CHARS)?;
            let service = served(order_id)?;
            if *delta_minutes == 0 || delta_minutes.abs() > MAX_MINUTES {
                return Err(DomainError::invalid(
                    "minutes",
                    format!("更正的分钟数须非零，且绝对值不超过 {MAX_MINUTES}"),
                ));
            }
            if service.minutes + delta_minutes < 0 {
                return Err(DomainError::conflict(
                    "minutes",
                    format!("更正后的时长不能小于 0（现为 {} 分钟）", service.minutes),
                ));
            }
            HoursEvent::HoursCorrected {
                order_id: order_id.clone(),
                delta_minutes: *delta_minutes,
                by,
                reason,
            }
        }
        HoursCommand::AddByHand { minutes, reason } => {
            let reason = validate::text("reason", reason, 1, MAX_SHORT_TEXT_CHARS)?;
            let minutes = match u32::try_from(*minutes) {
                Ok(m) if m >= 1 && i64::from(m) <= MAX_MINUTES => m,
                _ => {
                    return Err(DomainError::invalid(
                        "minutes",
                        format!("补录的分钟数须为 1 到 {MAX_MINUTES}"),
                    ))
                }
            };
            HoursEvent::HoursAddedByHand {
                minutes,
                by,
                reason,
                at,
            }
        }
    };
    Ok(vec![event])
}
