//! What each role may see of an order, and the API shape of an order.
//!
//! - a resident: their own orders, with their own number;
//! - a volunteer: orders offered to one of their teams, or accepted by them; the resident's
//!   number only while they hold the accepted order (accepted → served), never before or after;
//! - a station head: orders in their subtree, with the number (they call residents back);
//! - an auditor: orders in their subtree, number masked.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use diandan_proto::v1 as pb;
use diandan_workflows::order::{OrderState, Status};
use diandan_workflows::permissions::{self, ContactAccess, Scope};

use crate::pii;
use crate::{App, AppError, RequestContext, Result};

/// How much of the contact number a viewer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneAccess {
    Full,
    Masked,
}

pub fn rfc3339(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

/// The order as the API shows it, with the number masked.
pub fn order_view(state: &OrderState, revision: u64) -> pb::OrderView {
    let assignee = state.assignee.as_ref();
    pb::OrderView {
        order_id: state.order_id.clone(),
        status: state.status.as_str().to_owned(),
        category: state
            .category
            .map(|c| c.code().to_owned())
            .unwrap_or_default(),
        description: state.description.clone(),
        location: state.location.as_ref().map(|l| pb::Location {
            lat: l.lat,
            lng: l.lng,
            address: l.address.clone(),
        }),
        station_id: state.station_id.clone(),
        requester_id: state.requester_id.clone(),
        contact_phone: state.contact_phone_masked.clone(),
        wanted_time: rfc3339(state.wanted_time),
        placed_at: rfc3339(state.placed_at),
        assignee_id: assignee.map(|a| a.team_id.clone()).unwrap_or_default(),
        dispatch_level: assignee
            .map(|a| a.level.as_str().to_owned())
            .unwrap_or_default(),
        accepted_by: state
            .accepted_by
            .as_ref()
            .map(|(v, _)| v.clone())
            .unwrap_or_default(),
        checked_in_at: rfc3339(state.checked_in_at),
        checked_out_at: rfc3339(state.checked_out_at),
        service_minutes: state.service_minutes,
        completion_note: state.completion_note.clone(),
        rating: state.rating.unwrap_or(0),
        review_comment: state.review_comment.clone(),
        reject_reason: state.reject_reason.clone(),
        cancel_reason: state.cancel_reason.clone(),
        revision,
        updated_at: rfc3339(state.updated_at),
        dispatched_at: rfc3339(state.dispatched_at),
        accepted_at: rfc3339(state.accepted_at),
        completed_at: rfc3339(state.completed_at),
        deadlines: state
            .deadlines
            .iter()
            .map(|(name, d)| pb::DeadlineView {
                name: name.clone(),
                // The label is the definition's: `App::label_deadlines` fills it in.
                label: name.clone(),
                limit: d.timer.limit.clone(),
                started_at: rfc3339(Some(d.timer.started_at)),
                warn_at: rfc3339(Some(d.timer.warn_at)),
                due_at: rfc3339(Some(d.timer.due_at)),
                light: match (d.warned, d.overdue) {
                    (_, true) => "red",
                    (true, false) => "yellow",
                    _ => "green",
                }
                .to_owned(),
                extension_requested_until: rfc3339(d.extension_requested),
                // Filled in with the calendar by `App::label_deadlines`.
                minutes_left: 0,
                working_time: false,
            })
            .collect(),
        workflow: state
            .workflow
            .as_ref()
            .map(|w| w.name.clone())
            .unwrap_or_default(),
        required_volunteers: state.required_volunteers,
        claims: state
            .claims
            .iter()
            .map(|(volunteer_id, seat)| pb::ClaimSeat {
                volunteer_id: volunteer_id.clone(),
                team_id: seat.team_id.clone(),
                claimed_at: rfc3339(Some(seat.claimed_at)),
                checked_in_at: rfc3339(seat.checked_in_at),
                checked_out_at: rfc3339(seat.checked_out_at),
                service_minutes: seat.service_minutes,
            })
            .collect(),
        followers: state.followers.clone(),
        merged_into: state.merged_into.clone().unwrap_or_default(),
        reworks: state.reworks,
        follow_up_note: state.follow_up_note.clone(),
        activity: state.activity,
    }
}

/// 联系电话 — the one rule for how much of the resident's number a caller sees, for a caller
/// already known to be allowed to see the order (every view — one order, lists, the queue —
/// goes through it). The role's column comes from the permission table
/// ([`permissions::contact_access`]):
///
/// | caller | sees |
/// |---|---|
/// | the requesting resident | full (their own number) |
/// | the volunteer holding the accepted order, accepted → served | full |
/// | any other volunteer (offered the order, or after serving) | masked |
/// | staff of the order's subtree (站长, 所, 中心) | full (they call residents back) |
/// | an auditor | masked |
/// | the system | full |
pub fn phone_access(ctx: &RequestContext, state: &OrderState) -> PhoneAccess {
    let full = match permissions::contact_access(ctx.role()) {
        ContactAccess::OwnOrders => state.requester_id == ctx.claims.sub,
        ContactAccess::WhileServing => {
            let holds = state
                .accepted_by
                .as_ref()
                .is_some_and(|(v, _)| *v == ctx.claims.sub)
                && matches!(
                    state.status,
                    Status::Accepted | Status::InService | Status::Served
                );
            // A claimant, once every seat is taken (claiming and withdrawing again and again
            // does not collect numbers from open wishes), until it is done.
            let claims =
                state.claims.contains_key(&ctx.claims.sub) && state.status == Status::Claimed;
            holds || claims
        }
        ContactAccess::Full => true,
        ContactAccess::Masked => false,
    };
    if full {
        PhoneAccess::Full
    } else {
        PhoneAccess::Masked
    }
}

impl App {
    /// May this caller see this order at all (by the scope the permission table gave them),
    /// and how much of the number? An order outside the scope is as good as absent (404).
    pub async fn order_access(
        &self,
        ctx: &RequestContext,
        state: &OrderState,
    ) -> Result<PhoneAccess> {
        let not_found = || AppError::NotFound("订单不存在".into());
        let visible = match ctx.scope {
            Scope::Own => state.is_requester(&ctx.claims.sub),
            Scope::Team => self.team_holds(ctx, state).await?,
            Scope::Subtree => self
                .directory
                .require_scope(ctx, &state.station_id)
                .await
                .is_ok(),
            Scope::All => true,
            Scope::Public => false,
        };
        if visible {
            Ok(phone_access(ctx, state))
        } else {
            Err(not_found())
        }
    }

    /// Is this order the field caller's: held by them, offered to one of their teams, or
    /// assigned to a team they lead (队长)?
    pub async fn team_holds(&self, ctx: &RequestContext, state: &OrderState) -> Result<bool> {
        self.field_reach(ctx, state, false).await
    }

    /// [`team_holds`](Self::team_holds), or — for commands, `offered_since` — dispatched to one
    /// of the caller's teams whatever happened since (a late accept is told it lost, 409).
    pub(crate) async fn field_reach(
        &self,
        ctx: &RequestContext,
        state: &OrderState,
        offered_since: bool,
    ) -> Result<bool> {
        let holds = state
            .accepted_by
            .as_ref()
            .is_some_and(|(v, _)| *v == ctx.claims.sub);
        // Cheapest first: holding or claiming it is in the order itself; leading its team
        // needs the volunteer's record.
        if holds || state.claims.contains_key(&ctx.claims.sub) {
            return Ok(true);
        }
        let leads = match &state.assignee {
            Some(a) => self
                .directory
                .led_teams(&ctx.claims.sub)
                .await?
                .contains(&a.team_id),
            None => false,
        };
        if leads {
            return Ok(true);
        }
        Ok(match (&state.assignee, state.status) {
            (Some(a), status) if status == Status::Dispatched || offered_since => self
                .directory
                .volunteer(&ctx.claims.sub)
                .await?
                .is_some_and(|v| v.team_ids.contains(&a.team_id)),
            // A published wish is shown to the volunteers of the station's lineage (and stays
            // visible to them once full, so a late claim is told so).
            (_, Status::Published | Status::Claimed) => {
                self.in_lineage(&ctx.claims.sub, state).await?
            }
            _ => false,
        })
    }

    /// Does one of the volunteer's teams belong to the order's station or a node above it?
    pub async fn in_lineage(&self, volunteer_id: &str, state: &OrderState) -> Result<bool> {
        let Some(volunteer) = self.directory.volunteer(volunteer_id).await? else {
            return Ok(false);
        };
        let lineage = self.directory.lineage(&state.station_id).await?;
        for team_id in &volunteer.team_ids {
            if let Some(team) = self.directory.team(team_id).await? {
                if lineage.iter().any(|n| n.id == team.node_id) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Shows the full numbers in `views` (orders of `states`, all visible to `ctx`) that
    /// [`phone_access`] grants.
    /// Names each running deadline as the order's workflow definition labels it (e.g. 派单)
    /// and says how long is left, in working time where the limit counts working time.
    pub fn label_deadlines(&self, view: &mut pb::OrderView, state: &OrderState) {
        let Ok(definition) = self.definition_for(state) else {
            return;
        };
        let calendar = self.workflows.calendar_for(definition);
        let now = self.clock.now();
        for deadline in &mut view.deadlines {
            if let Some(d) = definition.deadline(&deadline.name) {
                deadline.label = d.label.clone();
            }
            let Some(running) = state.deadlines.get(&deadline.name) else {
                continue;
            };
            let due = running.timer.due_at;
            let working = diandan_workflows::calendar::TimeLimit::parse(&running.timer.limit)
                .is_some_and(|l| l.is_working());
            let between = |from, to| match (working, calendar) {
                (true, Some(c)) => c.working_time_between(from, to),
                _ => to - from,
            };
            let left = if now <= due {
                between(now, due)
            } else {
                -between(due, now)
            };
            deadline.minutes_left = left.whole_minutes();
            deadline.working_time = working && calendar.is_some();
        }
    }

    /// Shows full numbers where the caller may see them — recorded first in the access log
    /// ([`crate::access`]), for `purpose`.
    pub async fn reveal_phones(
        &self,
        ctx: &RequestContext,
        views: &mut [pb::OrderView],
        states: &[OrderState],
        purpose: &str,
    ) -> Result<()> {
        let granted: Vec<String> = states
            .iter()
            .filter(|s| phone_access(ctx, s) == PhoneAccess::Full)
            .map(|s| s.order_id.clone())
            .collect();
        let mut phones = self.vault.get_many(granted).await?;
        let shown: Vec<String> = phones.keys().cloned().collect();
        self.record_contact_reads(ctx, &shown, purpose).await?;
        for view in views {
            if let Some(phone) = phones.remove(&view.order_id) {
                view.contact_phone = phone;
            }
        }
        Ok(())
    }
    /// The order as this caller may see it.
    pub async fn visible_order(
        &self,
        ctx: &RequestContext,
        state: &OrderState,
        revision: u64,
    ) -> Result<pb::OrderView> {
        let access = self.order_access(ctx, state).await?;
        let mut view = order_view(state, revision);
        self.label_deadlines(&mut view, state);
        self.open_personal_data(std::slice::from_mut(&mut view))
            .await?;
        if access == PhoneAccess::Full {
            if let Some(phone) = self.vault.get(&state.order_id).await? {
                self.record_contact_reads(
                    ctx,
                    std::slice::from_ref(&state.order_id),
                    crate::access::purpose::ORDER,
                )
                .await?;
                view.contact_phone = phone;
            }
        }
        Ok(view)
    }
}

impl App {
    /// Opens the sealed personal data of views (the address, the masked number) with their
    /// residents' keys; a forgotten resident's shows as [`pii::ERASED`].
    pub async fn open_personal_data(&self, views: &mut [pb::OrderView]) -> Result<()> {
        let mut residents: Vec<String> = views
            .iter()
            .filter(|v| {
                pii::is_sealed(&v.contact_phone)
                    || v.location
                        .as_ref()
                        .is_some_and(|l| pii::is_sealed(&l.address))
            })
            .map(|v| v.requester_id.clone())
            .collect();
        if residents.is_empty() {
            return Ok(());
        }
        residents.sort();
        residents.dedup();
        let keys = self.vault.resident_keys(residents).await?;
        for view in views {
            let resident = view.requester_id.as_str();
            let key = keys.get(resident);
            if let Some(location) = &mut view.location {
                location.address = pii::show(key, resident, pii::field::ADDRESS, &location.address);
            }
            view.contact_phone =
                pii::show(key, resident, pii::field::PHONE_MASKED, &view.contact_phone);
        }
        Ok(())
    }

    /// The masked number of an order, opened (`None` once its resident was forgotten).
    pub async fn opened_mask(&self, state: &OrderState) -> Result<Option<String>> {
        let resident = &state.requester_id;
        let keys = self.vault.resident_keys(vec![resident.clone()]).await?;
        Ok(pii::open(
            keys.get(resident),
            resident,
            pii::field::PHONE_MASKED,
            &state.contact_phone_masked,
        ))
    }

    /// Opens the sealed fields of placements in an order's history, as its views do; the
    /// sealed exact places of check-ins and check-outs are left out (the coarse ones stay).
    pub async fn open_history(&self, events: &mut [pb::EventEnvelope]) -> Result<()> {
        for event in events.iter_mut().filter(|e| {
            matches!(
                e.event_type.as_str(),
                "VolunteerCheckedIn" | "VolunteerCheckedOut"
            )
        }) {
            if let Ok(mut data) = serde_json::from_str::<serde_json::Value>(&event.payload_json) {
                if let Some(fields) = data.as_object_mut() {
                    fields.remove("precise");
                }
                event.payload_json = data.to_string();
            }
        }
        for event in events.iter_mut().filter(|e| e.event_type == "OrderPlaced") {
            let Ok(mut data) = serde_json::from_str::<serde_json::Value>(&event.payload_json)
            else {
                continue;
            };
            let resident = data["requester_id"].as_str().unwrap_or_default().to_owned();
            let keys = self.vault.resident_keys(vec![resident.clone()]).await?;
            let key = keys.get(&resident);
            for (pointer, field) in [
                ("/location/address", pii::field::ADDRESS),
                ("/contact_phone_masked", pii::field::PHONE_MASKED),
            ] {
                if let Some(value) = data.pointer_mut(pointer) {
                    if let Some(text) = value.as_str() {
                        *value = pii::show(key, &resident, field, text).into();
                    }
                }
            }
            event.payload_json = data.to_string();
        }
        Ok(())
    }
}

/// A required location from the API.
pub fn location_from(
    field: &'static str,
    location: Option<pb::Location>,
) -> Result<diandan_workflows::validate::Location> {
    let l = location.ok_or_else(|| AppError::invalid(field, "须提供位置（lat、lng）"))?;
    Ok(diandan_workflows::validate::Location {
        lat: l.lat,
        lng: l.lng,
        address: l.address,
    })
}

/// An optional RFC 3339 time from the API (empty: none).
pub fn time_from(field: &'static str, value: &str) -> Result<Option<OffsetDateTime>> {
    if value.is_empty() {
        return Ok(None);
    }
    OffsetDateTime::parse(value, &Rfc3339)
        .map(Some)
        .map_err(|_| {
            AppError::invalid(
                field,
                "时间格式须为 RFC 3339，例如 2026-11-22T09:00:00+08:00",
            )
        })
}

/// A stored event as auditors see it.
pub fn envelope(event: &diandan_store::RecordedEvent) -> Result<pb::EventEnvelope> {
    let meta = crate::commands::EventMetadata::decode(event)?;
    let recorded_at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(event.recorded_at_ms) * 1_000_000)
            .ok();
    Ok(pb::EventEnvelope {
        event_id: event.event_id.to_string(),
        stream: event.stream.clone(),
        revision: event.revision,
        position: event.position,
        event_type: event.event_type.clone(),
        schema_version: meta.schema_version,
        recorded_at: rfc3339(recorded_at),
        actor: Some(pb::Actor {
            id: meta.command.actor.id.clone(),
            role: meta.command.actor.role.as_str().to_owned(),
        }),
        command_id: meta.command.command_id,
        correlation_id: meta.command.correlation_id,
        causation_id: meta.command.causation_id.unwrap_or_default(),
        traceparent: meta.traceparent.unwrap_or_default(),
        payload_json: String::from_utf8_lossy(&event.data).into_owned(),
    })
}
