//! The four orders (四单) as pure domain code: no tokio, no network, no disk.
//!
//! A resident places an order (点单), a station head triages (审单) and dispatches it (派单), a
//! volunteer accepts (接单), serves (签到/签退) and completes it (办结), and the resident
//! reviews it (评单). Everything here is a value and a pure function:
//!
//! - [`account`]: accounts (staff passwords, WeChat sign-in) and sign-in sessions with
//!   rotating refresh tokens.
//! - [`actor`]: who acts ([`Actor`], [`Role`]) and the envelope every command carries.
//! - [`category`]: the service categories residents order from.
//! - [`org`]: levels of the organisation tree (centre → institute → station → point).
//! - [`permissions`]: the permission table — role × operation → scope, and what follows.
//! - [`order`]: the order aggregate every workflow runs on — [`order::Command`],
//!   [`order::OrderEvent`], [`order::OrderState`], [`order::decide`] and [`order::evolve`].
//! - [`engine`]: transition tables as data, read by decide, evolve, definitions, docs and tests;
//!   one per workflow: [`dispatched`] (点单派单) and [`claim`] (认领微心愿 / 活动招募).
//! - [`directory`]: events that register org nodes, teams, helper units and volunteers.
//! - [`validate`]: field checks shared by commands, each naming the field it rejects.
//! - [`definition`]: declarative, versioned workflow definitions read from TOML
//!   (`workflows/definitions/`), checked with file:line errors, kept in a [`Registry`].
//! - [`calendar`]: working-time arithmetic for time limits (工作日, holidays, 调休).
//! - [`dispatch_rules`]: which teams to suggest for an order and why (层层派单).
//! - [`ledger`]: volunteer hours, the double-entry points ledger and the love supermarket.
//!
//! A rejected command is a [`DomainError`]; failing to store its events is somebody else's error.

pub mod account;
pub mod actor;
pub mod calendar;
pub mod category;
pub mod claim;
pub mod definition;
pub mod directory;
pub mod dispatch_rules;
pub mod dispatched;
pub mod engine;
pub mod ledger;
pub mod order;
pub mod org;
pub mod permissions;
pub mod validate;

pub use actor::{Actor, CommandMeta, Role};
pub use calendar::Calendar;
pub use category::Category;
pub use definition::{Definition, Registry};
pub use org::OrgLevel;

/// Why the domain refused a command. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// A field of the command is invalid. Fix the named field and resend.
    #[error("{field}: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    /// The actor may not do this to this order. Do not retry.
    #[error("{0}")]
    Forbidden(String),
    /// The order is not in a state where this command applies. Reload and decide again.
    #[error("订单当前状态为「{status}」，不能{action}")]
    IllegalTransition {
        action: &'static str,
        status: &'static str,
    },
    /// The command is well formed but conflicts with the order's current state in one field
    /// (a deadline that is not running, the team the order is already dispatched to). Reload
    /// and decide again.
    #[error("{field}: {message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    /// 已被接单: another volunteer accepted the order first (the losing side of an accept
    /// race). Do not retry; pick another order.
    #[error("已被接单：该订单已由其他志愿者接下")]
    AlreadyAccepted,
    /// 已满员: every seat of an open-claim order is taken (the losing side of a claim race).
    /// Do not retry; pick another.
    #[error("已满员：该订单的认领名额已满")]
    Full,
    /// The order does not exist.
    #[error("订单不存在")]
    NotFound,
}

impl DomainError {
    pub(crate) fn conflict(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::InvalidField {
            field,
            message: message.into(),
        }
    }
}
