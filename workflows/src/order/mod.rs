//! The dispatched-order workflow (点单 → 审单 → 派单 → 接单 → 服务 → 办结 → 评单 → 归档).
//!
//! One order is one stream of [`OrderEvent`]s. [`decide`] turns a [`Command`] and the current
//! [`OrderState`] into new events or a [`DomainError`](crate::DomainError); [`evolve`] folds an
//! event into the state. Both are pure: the caller loads, decides, appends with the expected
//! revision, and retries on conflict — so "first valid accept wins" is one checked append.
//!
//! The transition table, in one place ([`Status::allows`]):
//!
//! | from | command | to |
//! |---|---|---|
//! | new | place (resident, or staff on behalf: 制单) | placed |
//! | placed | triage accept / reject (station head) | triaged / rejected |
//! | triaged, dispatched | dispatch (station head) | dispatched |
//! | dispatched | accept (volunteer of the assigned team) | accepted |
//! | dispatched, accepted | decline / return (退单) | triaged |
//! | accepted | check in (签到) | in_service |
//! | in_service | check out (签退) | served |
//! | served | complete (办结) | completed |
//! | completed | review (requester) | reviewed |
//! | reviewed | close (station head) | closed |
//! | placed, triaged, dispatched | cancel (requester) | cancelled |

mod command;
mod decide;
mod event;
mod state;
#[cfg(test)]
mod tests;
mod timers;

pub use command::{Action, Command, TimerPhase};
pub use decide::decide;
pub use event::{Assignee, OrderChange, OrderEvent, TeamKind};
pub use state::{evolve, ActiveDeadline, OrderState, Status};
pub use timers::schedule_clocks;

/// The stream an order's events live in.
pub fn stream_name(order_id: &str) -> String {
    format!("order-{order_id}")
}
