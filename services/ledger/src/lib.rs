//! The ledger service (志愿时长、积分与爱心超市): a volunteer's service hours, their points
//! and the love supermarket, event-sourced in streams of their own.
//!
//! - [`streams`]: the four stream types (`hours-`, `points-`, `shop-item-`, `redemption-`)
//!   and running a command against one (checked append, re-decided on a lost race).
//! - [`runner`]: the process manager that credits hours from check-outs, reconciles points
//!   with credited hours, settles and lapses redemptions, and runs the year-end expiry.
//! - [`shop`]: a redemption across its three streams.
//! - [`service`]: the gRPC `LedgerService` (and through the gateway, HTTP).
//!
//! The rules themselves are pure domain code in `diandan_workflows::ledger`.

pub mod runner;
pub mod service;
pub mod shop;
pub mod streams;

pub use service::Ledger;
