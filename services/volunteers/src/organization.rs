//! 组织: the organisation directory as a gRPC service of its own — org nodes, teams and helper
//! units, volunteers: registering them and reading the tree.

use tonic::{Request, Response, Status};

use diandan_proto::v1 as pb;
use diandan_proto::v1::organization_service_server::OrganizationService;
use diandan_runtime::views::location_from;
use diandan_runtime::{App, AppError};
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
        pb::organization_service_server::OrganizationServiceServer::new(self)
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
        let position = self.app.directory.register(&ctx, event).await?;
        // The number follows the accepted registration, and only the one it was made with (a
        // retry with another number changes nothing).
        if let Some(phone) = &phone {
            let registered = self.app.directory.volunteer(&req.id).await?;
            let masked = validate::mask_phone(phone);
            if registered.is_some_and(|v| v.phone_masked.as_deref() == Some(masked.as_str()))
                && !self.app.vault.put_volunteer_phone(&req.id, phone).await?
            {
                tracing::warn!(volunteer = %req.id, "volunteer number already kept");
            }
        }
        Ok(Response::new(pb::RegisterVolunteerResponse {
            id: req.id,
            position,
        }))
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
