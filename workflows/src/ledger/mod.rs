//! 志愿时长、积分与爱心超市: a volunteer's service hours, the points ledger and the love
//! supermarket, as pure domain code (no clock, no randomness, no I/O: the caller brings the
//! time and the one-time codes).
//!
//! - [`hours`]: service hours credited from check-in and check-out, a check-in far from the
//!   order's place held for the station head, corrections only by compensating events with a
//!   reason and an actor, hours added by hand marked as such, star ranks at thresholds.
//! - [`points`]: a double-entry points ledger — every change is a balanced [`points::Entry`]
//!   over [`points::Account`]s; earned by a published rule, held for a reservation, spent,
//!   released, expired at year end.
//! - [`shop`]: the love supermarket (爱心超市) — items with stock, redemptions with one-time
//!   codes that are verified once.
//!
//! Each is its own stream type (`hours-<volunteer>`, `points-<volunteer>`,
//! `shop-item-<item>`, `redemption-<id>`): a redemption is a checked append to the item's
//! stream (no negative stock) and one to the volunteer's points stream (no overspend).

pub mod hours;
pub mod points;
pub mod shop;

/// Points are counted in hundredths (分) so that 90 minutes earn 1.50 points exactly.
pub type Centipoints = i64;

/// `1.50` for 150 centipoints, as staff and volunteers read it.
pub fn format_points(centipoints: Centipoints) -> String {
    let sign = if centipoints < 0 { "-" } else { "" };
    let abs = centipoints.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests;
