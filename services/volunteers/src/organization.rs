//! 组织: the organisation directory as a gRPC service of its own — org nodes, teams and helper
//! units, volunteers: registering them and reading the tree.

use tonic::{Request, Response, Status};

use diandan_proto::v1 as pb;
use diandan_proto::v1::organization_service_server::OrganizationService;
use diandan_runtime::views::location_from;
use diandan_runtime::{App, AppError, RequestContext};

use crate::roster;
use diandan_workflows::directory::validate_team_ids;
use diandan_workflows::directory::DirectoryEvent;
use diandan_workflows::order::TeamKind;
use diandan_workflows::permissions::Operation;
use diandan_workflows::{validate, Category, OrgLevel};

/// The organisation directory service.
pub struct Organization {
    app: App,
}

impl Organization {
    pub fn new(app: App) -> Organization {
        Organization { app }
    }

    pub fn into_server(
        self,
    ) -> pb::organization_service_server::OrganizationServiceServer<Organization> {
        // A roster sheet may be up to 5 MB (tonic's default limit is 4 MB).
        pb::organization_service_server::OrganizationServiceServer::new(self)
            .max_decoding_message_size(roster::MAX_SHEET_BYTES + 64 * 1024)
    }
}

impl Organization {
    /// Registers one volunteer; their number goes to the contact vault after the registration
    /// is accepted, and only the number it was made with (a retry with another changes
    /// nothing).
    async fn register_one(
        &self,
        ctx: &RequestContext,
        req: pb::RegisterVolunteerRequest,
    ) -> Result<u64, Status> {
        let phone = Some(req.phone).filter(|p| !p.is_empty());
        if let Some(phone) = &phone {
            validate::phone("phone", phone).map_err(AppError::from)?;
            if self
                .app
                .vault
                .volunteer_by_phone(phone)
                .await?
                .is_some_and(|v| v != req.id)
            {
                return Err(AppError::Conflict {
                    field: Some("phone"),
                    message: "该手机号已登记为其他志愿者".into(),
                }
                .into());
            }
            self.app.vault.ready().await?;
        }
        let event = DirectoryEvent::VolunteerRegistered {
            id: req.id.clone(),
            name: req.name,
            team_ids: req.team_ids,
            skills: skills(&req.skills)?,
            phone_masked: phone.as_deref().map(validate::mask_phone),
        };
        let position = self.app.directory.register(ctx, event).await?;
        if let Some(phone) = &phone {
            let registered = self.app.directory.volunteer(&req.id).await?;
            let masked = validate::mask_phone(phone);
            if registered.is_some_and(|v| v.phone_masked.as_deref() == Some(masked.as_str()))
                && !self.app.vault.put_volunteer_phone(&req.id, phone).await?
            {
                tracing::warn!(volunteer = %req.id, "volunteer number already kept");
            }
        }
        Ok(position)
    }

    /// Checks every row of a roster against the rules and the directory; returns the
    /// registrations, or every refused row (at most [`roster::MAX_REPORTED_ERRORS`]).
    async fn check_rows(
        &self,
        ctx: &RequestContext,
        rows: &[roster::RosterRow],
    ) -> Result<(Vec<pb::RegisterVolunteerRequest>, Vec<pb::ImportRowError>), Status> {
        let mut errors = Vec::new();
        let mut checked = Vec::new();
        let mut ids = std::collections::HashMap::new();
        let mut phones = std::collections::HashMap::new();
        for row in rows {
            let mut row_errors = Vec::new();
            let mut refuse = |field: &str, message: String| {
                row_errors.push(pb::ImportRowError {
                    row: row.row,
                    field: roster::header_of(field).to_owned(),
                    message,
                })
            };
            if let Err(e) = validate::id("id", &row.id) {
                refuse("id", e.to_string());
            } else if let Some(first) = ids.insert(row.id.clone(), row.row) {
                refuse("id", format!("与第 {first} 行的编号重复"));
            } else if self.app.directory.volunteer(&row.id).await?.is_some() {
                refuse("id", format!("编号「{}」已被登记", row.id));
            }
            if row.name.is_empty() || row.name.chars().count() > validate::MAX_SHORT_TEXT_CHARS {
                refuse("name", "姓名不能为空，且不超过 200 字".into());
            }
            if !row.phone.is_empty() {
                if validate::phone("phone", &row.phone).is_err() {
                    refuse("phone", format!("「{}」不是 11 位手机号", row.phone));
                } else if let Some(first) = phones.insert(row.phone.clone(), row.row) {
                    refuse("phone", format!("与第 {first} 行的手机号重复"));
                } else if self
                    .app
                    .vault
                    .volunteer_by_phone(&row.phone)
                    .await?
                    .is_some()
                {
                    refuse("phone", "该手机号已登记为其他志愿者".into());
                }
            }
            // Each team is looked up only when the list itself is acceptable (a cell of
            // thousands of ids is refused as a whole).
            let listed = if row.team_ids.is_empty() {
                refuse("team_ids", "至少填写一支服务队（队伍编号）".into());
                &[][..]
            } else if let Err(e) = validate_team_ids(&row.team_ids) {
                refuse("team_ids", e.to_string());
                &[][..]
            } else {
                &row.team_ids[..]
            };
            for team_id in listed {
                match self.app.directory.team(team_id).await? {
                    None => refuse("team_ids", format!("服务队「{team_id}」不存在")),
                    Some(team) => {
                        if self
                            .app
                            .directory
                            .require_scope(ctx, &team.node_id)
                            .await
                            .is_err()
                        {
                            refuse("team_ids", format!("服务队「{team_id}」不在你负责的范围内"));
                        }
                    }
                }
            }
            let mut codes = Vec::new();
            for skill in &row.skills {
                match roster::parse_skill(skill) {
                    Some(c) => codes.push(c.code().to_owned()),
                    None => refuse("skills", format!("未知的服务类别「{skill}」")),
                }
            }
            if row_errors.is_empty() {
                checked.push(pb::RegisterVolunteerRequest {
                    id: row.id.clone(),
                    name: row.name.clone(),
                    team_ids: row.team_ids.clone(),
                    skills: codes,
                    phone: row.phone.clone(),
                });
            }
            errors.extend(row_errors);
        }
        errors.truncate(roster::MAX_REPORTED_ERRORS);
        Ok((checked, errors))
    }
}

fn skills(values: &[String]) -> Result<Vec<Category>, AppError> {
    values
        .iter()
        .map(|s| {
            Category::parse(s)
                .ok_or_else(|| AppError::invalid("skills", format!("未知的服务类别「{s}」")))
        })
        .collect()
}

fn optional(value: String) -> Option<String> {
    Some(value).filter(|v| !v.is_empty())
}

#[tonic::async_trait]
impl OrganizationService for Organization {
    async fn register_org_node(
        &self,
        request: Request<pb::RegisterOrgNodeRequest>,
    ) -> Result<Response<pb::RegisterOrgNodeResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::RegisterOrgNode)?;
        let req = request.into_inner();
        let level = OrgLevel::parse(&req.level).ok_or_else(|| {
            AppError::invalid("level", "须为 centre、institute、station 或 point")
        })?;
        let location = match req.location {
            Some(l) => Some(location_from("location", Some(l))?),
            None => None,
        };
        let event = DirectoryEvent::OrgNodeRegistered {
            id: req.id.clone(),
            name: req.name,
            level,
            parent_id: optional(req.parent_id),
            location,
        };
        let position = self.app.directory.register(&ctx, event).await?;
        Ok(Response::new(pb::RegisterOrgNodeResponse {
            id: req.id,
            position,
        }))
    }

    async fn register_team(
        &self,
        request: Request<pb::RegisterTeamRequest>,
    ) -> Result<Response<pb::RegisterTeamResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::RegisterTeam)?;
        let req = request.into_inner();
        let kind = TeamKind::parse(&req.kind)
            .ok_or_else(|| AppError::invalid("kind", "须为 team 或 helper_unit"))?;
        let event = DirectoryEvent::TeamRegistered {
            id: req.id.clone(),
            name: req.name,
            kind,
            node_id: req.node_id,
            skills: skills(&req.skills)?,
            leader_id: optional(req.leader_id),
        };
        let position = self.app.directory.register(&ctx, event).await?;
        Ok(Response::new(pb::RegisterTeamResponse {
            id: req.id,
            position,
        }))
    }

    async fn register_volunteer(
        &self,
        request: Request<pb::RegisterVolunteerRequest>,
    ) -> Result<Response<pb::RegisterVolunteerResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::RegisterVolunteer)?;
        let req = request.into_inner();
        let id = req.id.clone();
        let position = self.register_one(&ctx, req).await?;
        Ok(Response::new(pb::RegisterVolunteerResponse {
            id,
            position,
        }))
    }

    async fn list_volunteers(
        &self,
        request: Request<pb::ListVolunteersRequest>,
    ) -> Result<Response<pb::ListVolunteersResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ListVolunteers)?;
        let req = request.into_inner();
        let list = self
            .app
            .volunteers(&ctx, &req.node_id, req.include_inactive, req.min_position)
            .await?;
        Ok(Response::new(list))
    }

    async fn update_volunteer(
        &self,
        request: Request<pb::UpdateVolunteerRequest>,
    ) -> Result<Response<pb::UpdateVolunteerResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::UpdateVolunteer)?;
        let req = request.into_inner();
        let event = DirectoryEvent::VolunteerUpdated {
            id: req.id,
            name: req.name,
            team_ids: req.team_ids,
            skills: skills(&req.skills)?,
        };
        let position = self.app.directory.change_volunteer(&ctx, event).await?;
        Ok(Response::new(pb::UpdateVolunteerResponse { position }))
    }

    async fn set_volunteer_active(
        &self,
        request: Request<pb::SetVolunteerActiveRequest>,
    ) -> Result<Response<pb::SetVolunteerActiveResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::SetVolunteerActive)?;
        let req = request.into_inner();
        let active = req
            .active
            .ok_or_else(|| AppError::invalid("active", "须指明启用（true）或停用（false）"))?;
        validate::text("reason", &req.reason, 0, validate::MAX_SHORT_TEXT_CHARS)
            .map_err(AppError::from)?;
        let event = if active {
            DirectoryEvent::VolunteerReactivated { id: req.id }
        } else {
            DirectoryEvent::VolunteerDeactivated {
                id: req.id,
                reason: req.reason,
            }
        };
        let position = self.app.directory.change_volunteer(&ctx, event).await?;
        Ok(Response::new(pb::SetVolunteerActiveResponse { position }))
    }

    async fn import_volunteers(
        &self,
        request: Request<pb::ImportVolunteersRequest>,
    ) -> Result<Response<pb::ImportVolunteersResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ImportVolunteers)?;
        let req = request.into_inner();
        let rows =
            roster::read(&req.format, &req.sheet).map_err(|e| AppError::invalid("sheet", e.0))?;
        let (checked, errors) = self.check_rows(&ctx, &rows).await?;
        let mut response = pb::ImportVolunteersResponse {
            rows: rows.len() as u32,
            ..Default::default()
        };
        if !errors.is_empty() || req.dry_run {
            response.errors = errors;
            return Ok(Response::new(response));
        }
        // Every row passed: register them, each under a command id of this import's, so a
        // retry of the same import (same Idempotency-Key) is answered, never applied twice.
        for volunteer in checked {
            let mut row_ctx = ctx.clone();
            row_ctx.command_id = format!("{}/{}", ctx.command_id, volunteer.id);
            response.position = self.register_one(&row_ctx, volunteer).await?;
            response.imported += 1;
        }
        Ok(Response::new(response))
    }

    async fn get_org_tree(
        &self,
        request: Request<pb::GetOrgTreeRequest>,
    ) -> Result<Response<pb::GetOrgTreeResponse>, Status> {
        self.app
            .authorize(request.metadata(), Operation::GetOrgTree)?;
        let req = request.into_inner();
        let tree = self.app.org_tree(&req.node_id, req.min_position).await?;
        Ok(Response::new(tree))
    }

    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        self.app
            .authorize(request.metadata(), Operation::ListTeams)?;
        let req = request.into_inner();
        let teams = self.app.teams(&req.node_id, req.min_position).await?;
        Ok(Response::new(teams))
    }
}
