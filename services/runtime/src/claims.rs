//! 认领: who may claim a published wish or activity, and the list of those a volunteer may.
//!
//! The claim policy of the order's definition names the rules
//! ([`Eligibility`]): the team claimed for belongs to the order's station or a node above it
//! (the station lineage), and the team or the volunteer has the order's category as a skill.
//! The directory (the event streams, not a read model) decides, so a claim is never judged on
//! a stale copy.

use diandan_proto::v1 as pb;
use diandan_workflows::definition::Eligibility;
use diandan_workflows::order::OrderState;

use crate::directory::Volunteer;
use crate::projections::{list_orders, OrderFilter, OrderScope, Statuses};
use crate::queries::{distinct, page_size, OrderPage};
use crate::{App, AppError, RequestContext, Result};

impl App {
    /// Refuses a claim of `order` for `team_id` by `volunteer` that the policy does not allow.
    pub async fn require_claim_eligible(
        &self,
        volunteer: &Volunteer,
        team_id: &str,
        order: &OrderState,
    ) -> Result<()> {
        let definition = self.definition_for(order)?;
        let Some(policy) = definition.claim() else {
            return Err(AppError::Conflict {
                field: Some("order_id"),
                message: "该订单由站点派单，不能认领，请用接单".into(),
            });
        };
        let team = self
            .directory
            .team(team_id)
            .await?
            .ok_or_else(|| AppError::missing("team_id", format!("队伍「{team_id}」不存在")))?;
        if policy.eligibility.contains(&Eligibility::StationLineage) {
            let lineage = self.directory.lineage(&order.station_id).await?;
            if !lineage.iter().any(|n| n.id == team.node_id) {
                return Err(AppError::Forbidden(format!(
                    "队伍「{}」不属于该订单所在实践站或其上级，不能认领",
                    team.name
                )));
            }
        }
        if policy.eligibility.contains(&Eligibility::CategorySkill) {
            if let Some(category) = order.category {
                if !team.skills.contains(&category) && !volunteer.skills.contains(&category) {
                    return Err(AppError::Forbidden(format!(
                        "你和队伍「{}」都没有「{}」技能，不能认领",
                        team.name,
                        category.name_zh()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Published wishes and activities this volunteer may claim, newest first.
    pub async fn claimable_orders(
        &self,
        ctx: &RequestContext,
        limit: u32,
        min_position: u64,
    ) -> Result<OrderPage> {
        let position = self.catch_up(min_position).await?;
        let volunteer = self
            .directory
            .volunteer(&ctx.claims.sub)
            .await?
            .filter(|v| v.active);
        let Some(volunteer) = volunteer else {
            return Ok(OrderPage {
                orders: Vec::new(),
                position,
            });
        };
        let mut paths = Vec::new();
        for team_id in &volunteer.team_ids {
            if let Some(team) = self.directory.team(team_id).await? {
                paths.push(self.directory.path(&team.node_id).await?);
            }
        }
        // A branch of the list's SQL per subtree: teams at one node, or at a node below
        // another team's, add none.
        let every = distinct(paths);
        let paths: Vec<String> = every
            .iter()
            .filter(|p| !every.iter().any(|q| q != *p && p.starts_with(q.as_str())))
            .cloned()
            .collect();
        let wanted = page_size(limit)? as usize;
        // Some published orders are already claimed by the caller or need a skill they lack:
        // read more than asked and keep the first `wanted` they may claim.
        let filter = OrderFilter {
            scope: OrderScope::Claimable(paths),
            statuses: Statuses::Any,
            limit: diandan_workflows::validate::MAX_PAGE_SIZE,
            oldest_first: false,
        };
        let rows = self.read.query(move |c| list_orders(c, &filter)).await?;
        let mut orders: Vec<pb::OrderView> = Vec::new();
        for (state, revision) in rows {
            if orders.len() == wanted {
                break;
            }
            if state.claims.contains_key(&volunteer.id) {
                continue;
            }
            let mut eligible = false;
            for team_id in &volunteer.team_ids {
                if self
                    .require_claim_eligible(&volunteer, team_id, &state)
                    .await
                    .is_ok()
                {
                    eligible = true;
                    break;
                }
            }
            if eligible {
                let mut view = crate::views::order_view(&state, revision);
                self.label_deadlines(&mut view, &state);
                orders.push(view);
            }
        }
        self.open_personal_data(&mut orders).await?;
        Ok(OrderPage { orders, position })
    }
}

impl App {
    /// 合并: closes `order_id` as a duplicate of `into`; its requesters follow `into`.
    ///
    /// Two streams, two checked appends, the survivor's first: `DuplicateMerged` is decided
    /// under the survivor's revision (a survivor closed, cancelled or merged meanwhile refuses
    /// it), then the duplicate's `OrderMerged` under its own. An interruption between the two
    /// leaves the requesters following the survivor and the duplicate open; resending the merge
    /// (with any key) finishes it, and a requester already following is not added again.
    pub async fn merge_orders(
        &self,
        ctx: &RequestContext,
        order_id: &str,
        into: &str,
        reason: String,
        expected_revision: Option<u64>,
    ) -> Result<crate::commands::Outcome> {
        diandan_workflows::validate::id("order_id", order_id)?;
        diandan_workflows::validate::id("into", into)?;
        if order_id == into {
            // Well formed, but an order cannot duplicate itself: a conflict, not a bad request.
            return Err(AppError::Conflict {
                field: Some("into"),
                message: "不能把订单合并到它自己".into(),
            });
        }
        let duplicate = self.order_in_scope(ctx, order_id).await?;
        let survivor = match self.order_in_scope(ctx, into).await {
            Ok(state) => state,
            Err(AppError::NotFound(_)) => {
                return Err(AppError::missing(
                    "into",
                    format!("要并入的订单「{into}」不存在"),
                ))
            }
            Err(other) => return Err(other),
        };
        if duplicate.merged_into.is_none() {
            diandan_workflows::dispatched::check_merge_target(&duplicate, &survivor)?;
            let requester_ids: Vec<String> = std::iter::once(&duplicate.requester_id)
                .chain(&duplicate.followers)
                .filter(|who| !survivor.is_requester(who))
                .cloned()
                .collect();
            if !requester_ids.is_empty() {
                let absorb = RequestContext {
                    command_id: format!("{}:absorb", ctx.command_id),
                    ..ctx.clone()
                };
                let action = diandan_workflows::order::Action::AbsorbDuplicate {
                    order_id: order_id.to_owned(),
                    requester_ids,
                };
                self.execute(&absorb, into, action, None).await?;
            }
        }
        let action = diandan_workflows::order::Action::Merge {
            into: into.to_owned(),
            reason,
        };
        let outcome = self
            .execute(ctx, order_id, action, expected_revision)
            .await?;
        if outcome.state.merged_into.as_deref() != Some(into) {
            return Err(AppError::Conflict {
                field: Some("into"),
                message: "该订单已并入另一订单".into(),
            });
        }
        Ok(outcome)
    }
}
