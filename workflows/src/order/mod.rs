//! The order aggregate every workflow runs on: one order (点单, 心愿, 活动) is one stream of
//! [`OrderEvent`]s.
//!
//! [`decide`] turns a [`Command`] and the current [`OrderState`] into new events or a
//! [`DomainError`](crate::DomainError); [`evolve`] folds an event into the state. Both are pure
//! and both read the order's workflow table ([`engine`](crate::engine)): `decide` finds the
//! row for the status, the command and its outcome; `evolve` moves the status to the row's
//! target. The caller loads, decides, appends with the expected revision, and retries on
//! conflict — so "first valid accept wins" and "the N-th claim fills it" are one checked
//! append each.
//!
//! The tables themselves are in [`dispatched`](crate::dispatched) and [`claim`](crate::claim),
//! rendered in the README.

mod command;
pub(crate) mod decide;
mod event;
mod state;
#[cfg(test)]
mod tests;
mod timers;

pub use command::{Action, Command, TimerPhase};
pub use decide::{decide, MAX_SEATS};
pub use event::{Assignee, Clocks, OrderChange, OrderEvent, TeamKind, FILL};
pub use state::{evolve, ActiveDeadline, OrderState, Seat, Status};
pub use timers::schedule_clocks;

/// The stream an order's events live in.
pub fn stream_name(order_id: &str) -> String {
    format!("order-{order_id}")
}
