//! Specifications of hours, points and the love supermarket, and property tests of the
//! ledger's invariants under random interleavings.

use proptest::prelude::*;
use time::macros::datetime;
use time::OffsetDateTime;

use super::hours::{self, HoursCommand, HoursRecord};
use super::points::{self, Account, PointsAccount, PointsCommand, PointsEvent};
use super::shop::{self, Item, ItemCommand, Redemption, RedemptionCommand, RedemptionStatus};
use super::Centipoints;
use crate::validate::Location;
use crate::DomainError;

const V: &str = "v-liuhong";
const NOW: OffsetDateTime = datetime!(2026-06-01 10:00 +8);

fn apply(
    account: PointsAccount,
    command: PointsCommand,
    at: OffsetDateTime,
) -> (PointsAccount, Vec<PointsEvent>) {
    let events = points::decide(&account, V, &command, at).expect("accepted");
    let account = events.iter().fold(account, points::evolve);
    (account, events)
}

#[test]
fn an_hour_of_service_earns_a_point_and_hours_added_by_hand_earn_none() {
    assert_eq!(points::points_for_minutes(60), 100);
    assert_eq!(points::points_for_minutes(90), 150);
    let earn = |order: &str, minutes, by_hand| PointsCommand::Earn {
        order_id: order.into(),
        minutes,
        by_hand,
    };
    let (account, _) = apply(PointsAccount::default(), earn("o1", 90, false), NOW);
    assert_eq!(account.available, 150);
    let (account, events) = apply(account, earn("o2", 600, true), NOW);
    assert!(events.is_empty(), "hours added by hand earn no points");
    // The same order credited again (a retry, a replay) changes nothing.
    let (account, events) = apply(account, earn("o1", 90, false), NOW);
    assert!(events.is_empty());
    assert_eq!(account.available, 150);
    assert_eq!(super::format_points(account.available), "1.50");
}

#[test]
fn redeeming_more_than_the_balance_is_refused_naming_points() {
    let (account, _) = apply(
        PointsAccount::default(),
        PointsCommand::Earn {
            order_id: "o1".into(),
            minutes: 120,
            by_hand: false,
        },
        NOW,
    );
    let hold = PointsCommand::Hold {
        redemption_id: "r1".into(),
        points: 300,
    };
    assert!(matches!(
        points::decide(&account, V, &hold, NOW),
        Err(DomainError::Conflict {
            field: "points",
            ..
        })
    ));
    let negative = PointsCommand::Hold {
        redemption_id: "r1".into(),
        points: -5,
    };
    assert!(matches!(
        points::decide(&account, V, &negative, NOW),
        Err(DomainError::InvalidField {
            field: "points",
            ..
        })
    ));
}

#[test]
fn year_end_expiry_run_twice_changes_nothing_the_second_time() {
    let earn = |order: &str| PointsCommand::Earn {
        order_id: order.into(),
        minutes: 60,
        by_hand: false,
    };
    let (account, _) = apply(
        PointsAccount::default(),
        earn("o2025"),
        datetime!(2025-12-20 10:00 +8),
    );
    // Earned after the year end but before the job ran: safe.
    let (account, _) = apply(account, earn("o2026"), datetime!(2026-01-01 09:00 +8));
    let (account, first) = apply(
        account,
        PointsCommand::Expire { year: 2025 },
        datetime!(2026-01-01 10:00 +8),
    );
    assert!(matches!(
        first[..],
        [PointsEvent::PointsExpired { points: 100, .. }]
    ));
    assert_eq!(account.available, 100);
    let (again, second) = apply(
        account.clone(),
        PointsCommand::Expire { year: 2025 },
        datetime!(2026-01-01 10:05 +8),
    );
    assert!(second.is_empty());
    assert_eq!(again, account);
}

fn item(stock: u32) -> Item {
    let listed = shop::decide_item(
        &Item::default(),
        &ItemCommand::List {
            item_id: "rice-5kg".into(),
            node_id: "chezhanlu".into(),
            name: "大米 5 公斤".into(),
            points: 500,
            stock,
        },
    )
    .unwrap();
    listed.iter().fold(Item::default(), shop::evolve_item)
}

#[test]
fn fifty_redemptions_of_ten_units_exactly_ten_reserve_one() {
    // Appends to the item's stream are checked one after another: the race is this loop.
    let mut stock = item(10);
    let mut won = 0;
    for i in 0..50 {
        let reserve = ItemCommand::Reserve {
            redemption_id: format!("r{i}"),
            quantity: 1,
        };
        match shop::decide_item(&stock, &reserve) {
            Ok(events) => {
                stock = events.iter().fold(stock, shop::evolve_item);
                won += 1;
            }
            Err(DomainError::Conflict { field, .. }) => assert_eq!(field, "quantity"),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((won, stock.stock), (10, 0));
}

#[test]
fn a_negative_or_zero_quantity_is_refused() {
    for quantity in [-1, 0, 21] {
        let reserve = ItemCommand::Reserve {
            redemption_id: "r1".into(),
            quantity,
        };
        assert!(matches!(
            shop::decide_item(&item(5), &reserve),
            Err(DomainError::InvalidField {
                field: "quantity",
                ..
            })
        ));
    }
    let restock = ItemCommand::Restock {
        quantity: -3,
        reason: String::new(),
    };
    assert!(shop::decide_item(&item(5), &restock).is_err());
}

fn reserved(code: &str) -> Redemption {
    let reserve = RedemptionCommand::Reserve {
        redemption_id: "r1".into(),
        volunteer_id: V.into(),
        item: item(3),
        quantity: 2,
        code: code.into(),
        expires_at: NOW + time::Duration::days(7),
    };
    let events = shop::decide_redemption(&Redemption::default(), &reserve, NOW).unwrap();
    assert!(
        matches!(&events[0], shop::RedemptionEvent::RedemptionReserved { points: 1000, code_hash, .. } if !code_hash.contains(code))
    );
    events
        .iter()
        .fold(Redemption::default(), shop::evolve_redemption)
}

#[test]
fn a_one_time_code_is_verified_once_and_a_forged_reused_or_expired_one_is_refused() {
    let r = reserved("48213907");
    let hand_over = |code: &str| RedemptionCommand::HandOver {
        code: code.into(),
        by: "shop-chezhanlu".into(),
    };
    assert!(matches!(
        shop::decide_redemption(&r, &hand_over("48213908"), NOW),
        Err(DomainError::Forbidden(_))
    ));
    let late = NOW + time::Duration::days(8);
    assert!(matches!(
        shop::decide_redemption(&r, &hand_over("48213907"), late),
        Err(DomainError::Conflict { field: "code", .. })
    ));
    let events = shop::decide_redemption(&r, &hand_over("48213907"), NOW).unwrap();
    let done = events.iter().fold(r, shop::evolve_redemption);
    assert_eq!(done.status, RedemptionStatus::HandedOver);
    assert!(matches!(
        shop::decide_redemption(&done, &hand_over("48213907"), NOW),
        Err(DomainError::Conflict { field: "code", .. })
    ));
}

#[test]
fn star_ranks_come_at_the_published_thresholds() {
    let ranks = hours::DEFAULT_RANK_HOURS;
    assert_eq!(hours::rank(99 * 60, &ranks), 0);
    assert_eq!(hours::rank(100 * 60, &ranks), 1);
    assert_eq!(hours::rank(650 * 60, &ranks), 3);
    assert_eq!(hours::rank(5000 * 60, &ranks), 5);
    assert_eq!(hours::rank_name(3), "三星志愿者");
}

#[test]
fn a_far_check_in_waits_for_the_station_head() {
    let order = Location {
        lat: 29.8711,
        lng: 114.2840,
        address: String::new(),
    };
    let near = Location {
        lat: 29.8720,
        ..order.clone()
    };
    let far = Location {
        lat: 29.9000,
        ..order.clone()
    };
    assert_eq!(hours::far_check_in(&order, &near, 500), None);
    let meters = hours::far_check_in(&order, &far, 500).unwrap();
    assert!((3000..3400).contains(&meters), "{meters}");
    let credit = HoursCommand::Credit {
        order_id: "o1".into(),
        minutes: 120,
        far_m: Some(meters),
        station_id: "chezhanlu".into(),
        team_id: "zhidui-chezhanlu".into(),
    };
    let events = hours::decide(&HoursRecord::default(), &credit, "system", NOW).unwrap();
    let record = events.iter().fold(HoursRecord::default(), hours::evolve);
    assert_eq!(record.credited_minutes(), 0, "held until confirmed");
    let confirm = HoursCommand::Confirm {
        order_id: "o1".into(),
    };
    let events = hours::decide(&record, &confirm, "head-dengxiaohu", NOW).unwrap();
    let record = events.iter().fold(record, hours::evolve);
    assert_eq!(record.credited_minutes(), 120);
}

#[test]
fn corrections_need_a_reason_and_a_served_order() {
    let credit = HoursCommand::Credit {
        order_id: "o1".into(),
        minutes: 90,
        far_m: None,
        station_id: "chezhanlu".into(),
        team_id: "zhidui-chezhanlu".into(),
    };
    let record = hours::decide(&HoursRecord::default(), &credit, "system", NOW)
        .unwrap()
        .iter()
        .fold(HoursRecord::default(), hours::evolve);
    let correct = |order: &str, delta, reason: &str| HoursCommand::Correct {
        order_id: order.into(),
        delta_minutes: delta,
        reason: reason.into(),
    };
    assert!(matches!(
        hours::decide(&record, &correct("o1", -30, ""), "admin", NOW),
        Err(DomainError::InvalidField {
            field: "reason",
            ..
        })
    ));
    assert!(matches!(
        hours::decide(&record, &correct("o-not-served", 30, "补录"), "admin", NOW),
        Err(DomainError::Conflict {
            field: "order_id",
            ..
        })
    ));
    assert!(matches!(
        hours::decide(&record, &correct("o1", -200, "多算了"), "admin", NOW),
        Err(DomainError::Conflict {
            field: "minutes",
            ..
        })
    ));
    let fixed = hours::decide(&record, &correct("o1", -30, "签退晚了半小时"), "admin", NOW)
        .unwrap()
        .iter()
        .fold(record, hours::evolve);
    assert_eq!(fixed.credited_minutes(), 60);
    let by_hand = HoursCommand::AddByHand {
        minutes: -10,
        reason: "纸质记录".into(),
    };
    assert!(hours::decide(&fixed, &by_hand, "admin", NOW).is_err());
}

// ---------------------------------------------------------------------------------------------
// Properties: random interleavings of earn / hold / release / spend / reverse / expire
// ---------------------------------------------------------------------------------------------

fn command() -> impl Strategy<Value = PointsCommand> {
    prop_oneof![
        (0u8..6, 0u32..600, any::<bool>()).prop_map(|(o, minutes, by_hand)| PointsCommand::Earn {
            order_id: format!("o{o}"),
            minutes,
            by_hand,
        }),
        (0u8..4).prop_map(|o| PointsCommand::Reverse {
            order_id: format!("o{o}"),
            reason: "更正".into(),
        }),
        (0u8..5, -50i64..800).prop_map(|(r, points)| PointsCommand::Hold {
            redemption_id: format!("r{r}"),
            points,
        }),
        (0u8..5).prop_map(|r| PointsCommand::Release {
            redemption_id: format!("r{r}"),
        }),
        (0u8..5).prop_map(|r| PointsCommand::Spend {
            redemption_id: format!("r{r}"),
        }),
        (2025i32..2028).prop_map(|year| PointsCommand::Expire { year }),
    ]
}

proptest! {
    #[test]
    fn the_ledger_balances_under_any_interleaving(
        steps in proptest::collection::vec((command(), 0i64..900), 1..60)
    ) {
        let mut account = PointsAccount::default();
        let mut at = datetime!(2025-11-01 09:00 +8);
        let mut sums: std::collections::BTreeMap<Account, Centipoints> = Default::default();
        for (command, days) in steps {
            at += time::Duration::hours(days);
            let before = account.clone();
            match points::decide(&account, V, &command, at) {
                Ok(events) => {
                    for event in &events {
                        let entry = event.entry();
                        prop_assert!(entry.is_balanced(), "{entry:?}");
                        for p in &entry.postings {
                            *sums.entry(p.account.clone()).or_default() += p.amount;
                        }
                        account = points::evolve(account, event);
                    }
                }
                // A refusal changes nothing.
                Err(_) => prop_assert_eq!(&account, &before),
            }
            // Each balance is the sum of its postings, and none is negative.
            let available = sums.get(&Account::Available(V.into())).copied().unwrap_or(0);
            let held = sums.get(&Account::Held(V.into())).copied().unwrap_or(0);
            prop_assert_eq!(account.available, available);
            prop_assert_eq!(account.held_total(), held);
            prop_assert!(account.available >= 0, "overspent: {account:?}");
            prop_assert!(account.held.values().all(|&h| h > 0));
            prop_assert_eq!(account.spent_total, sums.get(&Account::Spent).copied().unwrap_or(0));
            prop_assert_eq!(account.expired_total, sums.get(&Account::Expired).copied().unwrap_or(0));
            // Nothing is created or lost: all accounts together sum to zero.
            prop_assert_eq!(sums.values().sum::<Centipoints>(), 0);
        }
    }

    #[test]
    fn stock_never_goes_negative_and_every_unit_is_accounted_for(
        steps in proptest::collection::vec((0u8..4, 0u8..6, -2i64..5), 1..80)
    ) {
        let mut stock = item(5);
        let mut restocked: u64 = 5;
        for (op, r, quantity) in steps {
            let redemption_id = format!("r{r}");
            let command = match op {
                0 => ItemCommand::Reserve { redemption_id, quantity },
                1 => ItemCommand::Release { redemption_id },
                2 => ItemCommand::HandOver { redemption_id },
                _ => ItemCommand::Restock { quantity, reason: String::new() },
            };
            let before = stock.clone();
            match shop::decide_item(&stock, &command) {
                Ok(events) => {
                    for event in &events {
                        if let shop::ItemEvent::ItemRestocked { quantity, .. } = event {
                            restocked += u64::from(*quantity);
                        }
                        stock = shop::evolve_item(stock, event);
                    }
                }
                Err(_) => prop_assert_eq!(&stock, &before),
            }
            let reserved: u64 = stock.reserved.values().map(|&q| u64::from(q)).sum();
            prop_assert_eq!(
                u64::from(stock.stock) + reserved + u64::from(stock.handed_over),
                restocked
            );
        }
    }
}
