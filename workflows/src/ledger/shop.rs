//! 爱心超市: the love supermarket — goods with stock at a centre or station, and redemptions
//! verified by a one-time code.
//!
//! An item's stream (`shop-item-<id>`) holds its stock: listed, restocked, a unit reserved for
//! a redemption, released again, handed over. A reservation is one checked append there, so
//! of 50 volunteers redeeming the last 10 units exactly 10 get one, and stock never goes below
//! zero. A redemption's stream (`redemption-<id>`) holds its life: reserved with the hash of
//! its one-time code and an expiry, handed over once on the right code, or cancelled/lapsed.
//! The code itself is the caller's (random, shown once to the volunteer, e.g. as a QR code);
//! only its hash is recorded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::Centipoints;
use crate::validate::{self, MAX_SHORT_TEXT_CHARS};
use crate::DomainError;

/// The most units one redemption may take.
pub const MAX_QUANTITY: u32 = 20;

/// The highest price of one unit, in hundredths of a point (10,000 points).
pub const MAX_PRICE: i64 = 1_000_000;

/// The most units an item may be listed or restocked with at once.
pub const MAX_STOCK: i64 = 100_000;

/// How long a redemption's one-time code stays valid.
pub const CODE_LIFETIME: time::Duration = time::Duration::days(7);

/// The longest one-time code a shop may type in.
pub const MAX_CODE_CHARS: usize = 32;

/// What happened to an item's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ItemEvent {
    ItemListed {
        item_id: String,
        /// The centre or station whose supermarket it is in.
        node_id: String,
        name: String,
        /// The price of one unit.
        points: Centipoints,
        stock: u32,
    },
    ItemRestocked {
        quantity: u32,
        reason: String,
    },
    StockReserved {
        redemption_id: String,
        quantity: u32,
    },
    StockReleased {
        redemption_id: String,
        quantity: u32,
    },
    StockHandedOver {
        redemption_id: String,
        quantity: u32,
    },
}

impl ItemEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            ItemEvent::ItemListed { .. } => "ItemListed",
            ItemEvent::ItemRestocked { .. } => "ItemRestocked",
            ItemEvent::StockReserved { .. } => "StockReserved",
            ItemEvent::StockReleased { .. } => "StockReleased",
            ItemEvent::StockHandedOver { .. } => "StockHandedOver",
        }
    }
}

/// An item, folded from its stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Item {
    pub item_id: String,
    pub node_id: String,
    pub name: String,
    pub points: Centipoints,
    /// Units on the shelf, not reserved.
    pub stock: u32,
    /// Units set aside, by redemption.
    pub reserved: BTreeMap<String, u32>,
    pub handed_over: u32,
}

impl Item {
    pub fn exists(&self) -> bool {
        !self.item_id.is_empty()
    }
}

pub fn evolve_item(mut item: Item, event: &ItemEvent) -> Item {
    match event {
        ItemEvent::ItemListed {
            item_id,
            node_id,
            name,
            points,
            stock,
        } => {
            item.item_id.clone_from(item_id);
            item.node_id.clone_from(node_id);
            item.name.clone_from(name);
            item.points = *points;
            item.stock = *stock;
        }
        ItemEvent::ItemRestocked { quantity, .. } => item.stock += quantity,
        ItemEvent::StockReserved {
            redemption_id,
            quantity,
        } => {
            item.stock -= quantity;
            item.reserved.insert(redemption_id.clone(), *quantity);
        }
        ItemEvent::StockReleased {
            redemption_id,
            quantity,
        } => {
            item.reserved.remove(redemption_id);
            item.stock += quantity;
        }
        ItemEvent::StockHandedOver {
            redemption_id,
            quantity,
        } => {
            item.reserved.remove(redemption_id);
            item.handed_over += quantity;
        }
    }
    item
}

/// What may be asked of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemCommand {
    List {
        item_id: String,
        node_id: String,
        name: String,
        points: Centipoints,
        stock: u32,
    },
    Restock {
        quantity: i64,
        reason: String,
    },
    Reserve {
        redemption_id: String,
        quantity: i64,
    },
    Release {
        redemption_id: String,
    },
    HandOver {
        redemption_id: String,
    },
}

pub fn decide_item(item: &Item, command: &ItemCommand) -> Result<Vec<ItemEvent>, DomainError> {
    let listed = || {
        if item.exists() {
            Ok(())
        } else {
            Err(DomainError::NotFound)
        }
    };
    let event = match command {
        ItemCommand::List {
            item_id,
            node_id,
            name,
            points,
            stock,
        } => {
            if item.exists() {
                return Err(DomainError::conflict("item_id", "该商品编号已被使用"));
            }
            validate::id("item_id", item_id)?;
            validate::id("node_id", node_id)?;
            if *points <= 0 || *points > MAX_PRICE {
                return Err(DomainError::invalid(
                    "centipoints",
                    format!("单价须为 1 到 {MAX_PRICE}（单位 0.01 积分）"),
                ));
            }
            if i64::from(*stock) > MAX_STOCK {
                return Err(DomainError::invalid(
                    "stock",
                    format!("库存须为 0 到 {MAX_STOCK}"),
                ));
            }
            ItemEvent::ItemListed {
                item_id: item_id.clone(),
                node_id: node_id.clone(),
                name: validate::text("name", name, 1, MAX_SHORT_TEXT_CHARS)?,
                points: *points,
                stock: *stock,
            }
        }
        ItemCommand::Restock { quantity, reason } => {
            listed()?;
            let quantity = quantity_of(*quantity, MAX_STOCK as u32)?;
            ItemEvent::ItemRestocked {
                quantity,
                reason: validate::text("reason", reason, 0, MAX_SHORT_TEXT_CHARS)?,
            }
        }
        ItemCommand::Reserve {
            redemption_id,
            quantity,
        } => {
            listed()?;
            let quantity = quantity_of(*quantity, MAX_QUANTITY)?;
            if item.reserved.contains_key(redemption_id) {
                return Ok(Vec::new());
            }
            if quantity > item.stock {
                return Err(DomainError::conflict(
                    "quantity",
                    format!("库存不足：剩余 {} 件", item.stock),
                ));
            }
            ItemEvent::StockReserved {
                redemption_id: redemption_id.clone(),
                quantity,
            }
        }
        ItemCommand::Release { redemption_id } => match item.reserved.get(redemption_id) {
            Some(&quantity) => ItemEvent::StockReleased {
                redemption_id: redemption_id.clone(),
                quantity,
            },
            None => return Ok(Vec::new()),
        },
        ItemCommand::HandOver { redemption_id } => match item.reserved.get(redemption_id) {
            Some(&quantity) => ItemEvent::StockHandedOver {
                redemption_id: redemption_id.clone(),
                quantity,
            },
            None => return Ok(Vec::new()),
        },
    };
    Ok(vec![event])
}

pub fn quantity_of(quantity: i64, most: u32) -> Result<u32, DomainError> {
    match u32::try_from(quantity) {
        Ok(q) if (1..=most).contains(&q) => Ok(q),
        _ => Err(DomainError::invalid(
            "quantity",
            format!("数量须为 1 到 {most} 的整数"),
        )),
    }
}

/// Where a redemption stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedemptionStatus {
    #[default]
    New,
    Reserved,
    HandedOver,
    Cancelled,
}

/// What happened to one redemption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RedemptionEvent {
    RedemptionReserved {
        redemption_id: String,
        volunteer_id: String,
        item_id: String,
        quantity: u32,
        points: Centipoints,
        /// SHA-256 of `redemption_id:code`, hex: the code itself is never recorded.
        code_hash: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    RedemptionHandedOver {
        by: String,
    },
    /// Cancelled by the volunteer or the shop, or lapsed (`by` is then the system).
    RedemptionCancelled {
        by: String,
        reason: String,
    },
}

impl RedemptionEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            RedemptionEvent::RedemptionReserved { .. } => "RedemptionReserved",
            RedemptionEvent::RedemptionHandedOver { .. } => "RedemptionHandedOver",
            RedemptionEvent::RedemptionCancelled { .. } => "RedemptionCancelled",
        }
    }
}

/// A redemption, folded from its stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Redemption {
    pub status: RedemptionStatus,
    pub redemption_id: String,
    pub volunteer_id: String,
    pub item_id: String,
    pub quantity: u32,
    pub points: Centipoints,
    pub code_hash: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

pub fn evolve_redemption(mut r: Redemption, event: &RedemptionEvent) -> Redemption {
    match event {
        RedemptionEvent::RedemptionReserved {
            redemption_id,
            volunteer_id,
            item_id,
            quantity,
            points,
            code_hash,
            expires_at,
        } => {
            r.status = RedemptionStatus::Reserved;
            r.redemption_id.clone_from(redemption_id);
            r.volunteer_id.clone_from(volunteer_id);
            r.item_id.clone_from(item_id);
            r.quantity = *quantity;
            r.points = *points;
            r.code_hash.clone_from(code_hash);
            r.expires_at = Some(*expires_at);
        }
        RedemptionEvent::RedemptionHandedOver { .. } => r.status = RedemptionStatus::HandedOver,
        RedemptionEvent::RedemptionCancelled { .. } => r.status = RedemptionStatus::Cancelled,
    }
    r
}

/// The recorded hash of a one-time code.
pub fn code_hash(redemption_id: &str, code: &str) -> String {
    let digest = Sha256::digest(format!("{redemption_id}:{code}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What may be asked of a redemption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedemptionCommand {
    Reserve {
        redemption_id: String,
        volunteer_id: String,
        item: Item,
        quantity: u32,
        /// The one-time code the caller drew; only its hash is kept.
        code: String,
        expires_at: OffsetDateTime,
    },
    /// The shop verifies the code and hands the goods over.
    HandOver {
        code: String,
        by: String,
    },
    Cancel {
        by: String,
        reason: String,
    },
}

pub fn decide_redemption(
    r: &Redemption,
    command: &RedemptionCommand,
    at: OffsetDateTime,
) -> Result<Vec<RedemptionEvent>, DomainError> {
    let event = match command {
        RedemptionCommand::Reserve {
            redemption_id,
            volunteer_id,
            item,
            quantity,
            code,
            expires_at,
        } => {
            if r.status != RedemptionStatus::New {
                return Err(DomainError::conflict("redemption_id", "该兑换编号已被使用"));
            }
            validate::id("redemption_id", redemption_id)?;
            if code.len() < 6 {
                return Err(DomainError::invalid("code", "兑换码至少 6 位"));
            }
            if *expires_at <= at {
                return Err(DomainError::invalid("expires_at", "兑换码的有效期须在将来"));
            }
            RedemptionEvent::RedemptionReserved {
                redemption_id: redemption_id.clone(),
                volunteer_id: volunteer_id.clone(),
                item_id: item.item_id.clone(),
                quantity: *quantity,
                points: item.points * Centipoints::from(*quantity),
                code_hash: code_hash(redemption_id, code),
                expires_at: *expires_at,
            }
        }
        RedemptionCommand::HandOver { code, by } => {
            if code.trim().is_empty() || code.chars().count() > MAX_CODE_CHARS {
                return Err(DomainError::invalid(
                    "code",
                    format!("请填写兑换码（至多 {MAX_CODE_CHARS} 位）"),
                ));
            }
            match r.status {
                RedemptionStatus::New => return Err(DomainError::NotFound),
                RedemptionStatus::HandedOver => {
                    return Err(DomainError::conflict("code", "兑换码已使用，物品已领取"))
                }
                RedemptionStatus::Cancelled => {
                    return Err(DomainError::conflict("code", "该兑换已取消或过期"))
                }
                RedemptionStatus::Reserved => {}
            }
            if r.expires_at.is_some_and(|e| at > e) {
                return Err(DomainError::conflict("code", "兑换码已过期"));
            }
            if code_hash(&r.redemption_id, code) != r.code_hash {
                return Err(DomainError::Forbidden("兑换码无效".into()));
            }
            RedemptionEvent::RedemptionHandedOver { by: by.clone() }
        }
        RedemptionCommand::Cancel { by, reason } => {
            if r.status != RedemptionStatus::Reserved {
                return Err(DomainError::conflict(
                    "redemption_id",
                    "只有待领取的兑换可以取消",
                ));
            }
            RedemptionEvent::RedemptionCancelled {
                by: by.clone(),
                reason: validate::text("reason", reason, 1, MAX_SHORT_TEXT_CHARS)?,
            }
        }
    };
    Ok(vec![event])
}
