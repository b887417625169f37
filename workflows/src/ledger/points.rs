//! The points ledger (积分账本), double-entry.
//!
//! Every change is an [`Entry`]: postings over [`Account`]s whose amounts sum to zero. A
//! volunteer's stream (`points-<volunteer>`) records the [`PointsEvent`]s of their two accounts
//! (what they may spend, and what is held for a reservation); the counter-accounts (issued,
//! spent, expired) are the same entries seen from the other side, summed by a projection.
//! [`PointsAccount`] is folded from the events; its balances always equal the sums of its
//! postings, and neither may go below zero: [`decide`] refuses what would.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Centipoints;
use crate::DomainError;

/// One account of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// What a volunteer may spend.
    Available(String),
    /// Set aside for a volunteer's reservations until handed over or released.
    Held(String),
    /// Where earned points come from: the centre's issuance for service.
    Issued,
    /// Points spent at the love supermarket.
    Spent,
    /// Points that lapsed at a year end.
    Expired,
}

/// One side of an entry: `amount` added to the account's balance (negative: taken from it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: Account,
    pub amount: Centipoints,
}

/// A balanced set of postings: what one event does to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub postings: Vec<Posting>,
}

impl Entry {
    fn transfer(from: Account, to: Account, amount: Centipoints) -> Entry {
        Entry {
            postings: vec![
                Posting {
                    account: from,
                    amount: -amount,
                },
                Posting {
                    account: to,
                    amount,
                },
            ],
        }
    }

    /// Every entry sums to zero: nothing is created or lost.
    pub fn is_balanced(&self) -> bool {
        self.postings.iter().map(|p| p.amount).sum::<Centipoints>() == 0
    }
}

/// What happened to a volunteer's points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PointsEvent {
    /// Earned for service on an order by the published rule (1 credited hour = 1 point).
    PointsEarned {
        volunteer_id: String,
        order_id: String,
        minutes: u32,
        points: Centipoints,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Taken back with the hours they were earned for (a correction, a rejected check-in).
    PointsReversed {
        volunteer_id: String,
        order_id: String,
        points: Centipoints,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Set aside for a reservation at the love supermarket.
    PointsHeld {
        volunteer_id: String,
        redemption_id: String,
        points: Centipoints,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A reservation cancelled or lapsed: its points are available again.
    PointsReleased {
        volunteer_id: String,
        redemption_id: String,
        points: Centipoints,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The goods were handed over: the held points are spent.
    PointsSpent {
        volunteer_id: String,
        redemption_id: String,
        points: Centipoints,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Year-end expiry: what was available and earned in `year` or before lapses.
    PointsExpired {
        volunteer_id: String,
        year: i32,
        points: Centipoints,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl PointsEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            PointsEvent::PointsEarned { .. } => "PointsEarned",
            PointsEvent::PointsReversed { .. } => "PointsReversed",
            PointsEvent::PointsHeld { .. } => "PointsHeld",
            PointsEvent::PointsReleased { .. } => "PointsReleased",
            PointsEvent::PointsSpent { .. } => "PointsSpent",
            PointsEvent::PointsExpired { .. } => "PointsExpired",
        }
    }

    /// The ledger entry the event records.
    pub fn entry(&self) -> Entry {
        use Account::*;
        match self {
            PointsEvent::PointsEarned {
                volunteer_id,
                points,
                ..
            } => Entry::transfer(Issued, Available(volunteer_id.clone()), *points),
            PointsEvent::PointsReversed {
                volunteer_id,
                points,
                ..
            } => Entry::transfer(Available(volunteer_id.clone()), Issued, *points),
            PointsEvent::PointsHeld {
                volunteer_id,
                points,
                ..
            } => Entry::transfer(
                Available(volunteer_id.clone()),
                Held(volunteer_id.clone()),
                *points,
            ),
            PointsEvent::PointsReleased {
                volunteer_id,
                points,
                ..
            } => Entry::transfer(
                Held(volunteer_id.clone()),
                Available(volunteer_id.clone()),
                *points,
            ),
            PointsEvent::PointsSpent {
                volunteer_id,
                points,
                ..
            } => Entry::transfer(Held(volunteer_id.clone()), Spent, *points),
            PointsEvent::PointsExpired {
                volunteer_id,
                points,
                ..
            } => Entry::transfer(Available(volunteer_id.clone()), Expired, *points),
        }
    }
}

/// A volunteer's points, folded from their stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PointsAccount {
    pub volunteer_id: String,
    /// What they may spend.
    pub available: Centipoints,
    /// Set aside for open reservations, by redemption.
    pub held: BTreeMap<String, Centipoints>,
    /// Points earned per order still credited (a reversal removes it).
    pub earned: BTreeMap<String, Centipoints>,
    /// Earned per calendar year (China Standard Time), net of reversals: later years'
    /// points are safe from an earlier year's expiry.
    pub earned_by_year: BTreeMap<i32, Centipoints>,
    /// Years whose expiry ran.
    pub expired_years: BTreeSet<i32>,
    pub spent_total: Centipoints,
    pub expired_total: Centipoints,
}

impl PointsAccount {
    pub fn held_total(&self) -> Centipoints {
        self.held.values().sum()
    }
}

/// The calendar year of a moment, in China Standard Time.
pub fn year_of(at: OffsetDateTime) -> i32 {
    at.to_offset(crate::calendar::CHINA_STANDARD_TIME).year()
}

/// Folds one event into the account.
pub fn evolve(mut account: PointsAccount, event: &PointsEvent) -> PointsAccount {
    match event {
        PointsEvent::PointsEarned {
            volunteer_id,
            order_id,
            points,
            at,
            ..
        } => {
            account.volunteer_id.clone_from(volunteer_id);
            account.available += points;
            account.earned.insert(order_id.clone(), *points);
            *account.earned_by_year.entry(year_of(*at)).or_default() += points;
        }
        PointsEvent::PointsReversed {
            order_id,
            points,
            at,
            ..
        } => {
            account.available -= points;
            account.earned.remove(order_id);
            *account.earned_by_year.entry(year_of(*at)).or_default() -= points;
        }
        PointsEvent::PointsHeld {
            redemption_id,
            points,
            ..
        } => {
            account.available -= points;
            account.held.insert(redemption_id.clone(), *points);
        }
        PointsEvent::PointsReleased {
            redemption_id,
            points,
            ..
        } => {
            account.held.remove(redemption_id);
            account.available += points;
        }
        PointsEvent::PointsSpent {
            redemption_id,
            points,
            ..
        } => {
            account.held.remove(redemption_id);
            account.spent_total += points;
        }
        PointsEvent::PointsExpired { year, points, .. } => {
            account.available -= points;
            account.expired_years.insert(*year);
            account.expired_total += points;
        }
    }
    account
}

/// The published earning rule: 1 credited hour = 1 point, to the hundredth.
pub fn points_for_minutes(minutes: u32) -> Centipoints {
    Centipoints::from(minutes) * 100 / 60
}

/// What may be asked of a volunteer's points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointsCommand {
    /// Credit service on an order. Hours added by hand earn nothing (`by_hand`).
    Earn {
        order_id: String,
        minutes: u32,
        by_hand: bool,
    },
    /// Take back what an order earned (its hours were corrected away or rejected).
    Reverse {
        order_id: String,
        reason: String,
    },
    Hold {
        redemption_id: String,
        points: Centipoints,
    },
    Release {
        redemption_id: String,
    },
    Spend {
        redemption_id: String,
    },
    /// The year-end job: what is available and was earned in `year` or before lapses. Run
    /// twice, the second run changes nothing.
    Expire {
        year: i32,
    },
}

/// Decides a command against the account, at `at`. `Ok(vec![])` is a command that changes
/// nothing (an idempotent repeat: an order already credited, a year already expired).
pub fn decide(
    account: &PointsAccount,
    volunteer_id: &str,
    command: &PointsCommand,
    at: OffsetDateTime,
) -> Result<Vec<PointsEvent>, DomainError> {
    let volunteer_id = volunteer_id.to_owned();
    let event = match command {
        PointsCommand::Earn {
            order_id,
            minutes,
            by_hand,
        } => {
            let points = points_for_minutes(*minutes);
            if *by_hand || points == 0 || account.earned.contains_key(order_id) {
                return Ok(Vec::new());
            }
            PointsEvent::PointsEarned {
                volunteer_id,
                order_id: order_id.clone(),
                minutes: *minutes,
                points,
                at,
            }
        }
        PointsCommand::Reverse { order_id, reason } => {
            let reason = crate::validate::text("reason", reason, 1, 200)?;
            let Some(&points) = account.earned.get(order_id) else {
                return Ok(Vec::new());
            };
            // What was spent stays spent: only what is still available is taken back.
            let points = points.min(account.available.max(0));
            PointsEvent::PointsReversed {
                volunteer_id,
                order_id: order_id.clone(),
                points,
                reason,
                at,
            }
        }
        PointsCommand::Hold {
            redemption_id,
            points,
        } => {
            if *points <= 0 {
                return Err(DomainError::invalid("points", "兑换所需积分须大于 0"));
            }
            if account.held.contains_key(redemption_id) {
                return Ok(Vec::new());
            }
            if *points > account.available {
                return Err(DomainError::conflict(
                    "points",
                    format!(
                        "积分不足：需要 {}，可用 {}",
                        super::format_points(*points),
                        super::format_points(account.available)
                    ),
                ));
            }
            PointsEvent::PointsHeld {
                volunteer_id,
                redemption_id: redemption_id.clone(),
                points: *points,
                at,
            }
        }
        PointsCommand::Release { redemption_id } => match account.held.get(redemption_id) {
            Some(&points) => PointsEvent::PointsReleased {
                volunteer_id,
                redemption_id: redemption_id.clone(),
                points,
                at,
            },
            None => return Ok(Vec::new()),
        },
        PointsCommand::Spend { redemption_id } => match account.held.get(redemption_id) {
            Some(&points) => PointsEvent::PointsSpent {
                volunteer_id,
                redemption_id: redemption_id.clone(),
                points,
                at,
            },
            None => {
                return Err(DomainError::conflict(
                    "redemption_id",
                    "该兑换没有冻结的积分",
                ))
            }
        },
        PointsCommand::Expire { year } => {
            if account.expired_years.contains(year) {
                return Ok(Vec::new());
            }
            // Points earned after `year` are safe; spending used the oldest first.
            let later: Centipoints = account
                .earned_by_year
                .range(year + 1..)
                .map(|(_, p)| *p)
                .sum();
            let points = (account.available - later.max(0)).max(0);
            PointsEvent::PointsExpired {
                volunteer_id,
                year: *year,
                points,
                at,
            }
        }
    };
    Ok(vec![event])
}
