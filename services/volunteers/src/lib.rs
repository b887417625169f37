//! The volunteers service (接单, 服务): what a volunteer does with an order — accept or
//! decline it for their team, check in, check out, complete, ask for more time. Served beside
//! it: the organisation directory ([`organization`]) and sign-in ([`Identity`]), which issues
//! tokens for the people that directory knows.

pub mod organization;
pub mod roster;

pub use organization::Organization;

use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use diandan_proto::v1 as pb;
use diandan_proto::v1::identity_service_server::IdentityService;
use diandan_proto::v1::volunteer_service_server::VolunteerService;
use diandan_runtime::auth::{Claims, TOKEN_LIFETIME};
use diandan_runtime::views::{location_from, rfc3339};
use diandan_runtime::{App, AppError, RequestContext};
use diandan_workflows::order::Action;
use diandan_workflows::permissions::{self, Operation, Scope};
use diandan_workflows::{validate, Role};

pub struct Volunteers {
    app: App,
}

impl Volunteers {
    pub fn new(app: App) -> Volunteers {
        Volunteers { app }
    }

    pub fn into_server(self) -> pb::volunteer_service_server::VolunteerServiceServer<Volunteers> {
        pb::volunteer_service_server::VolunteerServiceServer::new(self)
    }

    /// Volunteers act only for teams they belong to (their scope is `Team`).
    async fn require_member(&self, ctx: &RequestContext, team_id: &str) -> Result<(), AppError> {
        if ctx.scope == Scope::All {
            return Ok(());
        }
        let volunteer = match ctx.scope {
            Scope::Team => self.app.directory.volunteer(&ctx.claims.sub).await?,
            _ => None,
        };
        if volunteer.as_ref().is_some_and(|v| !v.active) {
            return Err(AppError::Forbidden(
                "你的志愿者身份已停用，请联系站点".into(),
            ));
        }
        if volunteer.is_some_and(|v| v.team_ids.iter().any(|t| t == team_id)) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "你不是队伍「{team_id}」的成员"
            )))
        }
    }

    /// 派给队员: only the leader of the team names who serves, and only one of its members.
    async fn require_assignable(
        &self,
        ctx: &RequestContext,
        team_id: &str,
        member: &str,
    ) -> Result<(), AppError> {
        validate::id("volunteer_id", member)?;
        let directory = &self.app.directory;
        if ctx.scope != Scope::All
            && !directory
                .led_teams(&ctx.claims.sub)
                .await?
                .iter()
                .any(|t| t == team_id)
        {
            return Err(AppError::Forbidden(format!(
                "只有队伍「{team_id}」的队长可以指派队员"
            )));
        }
        let volunteer = directory.volunteer(member).await?.ok_or_else(|| {
            AppError::missing("volunteer_id", format!("志愿者「{member}」未登记"))
        })?;
        if !volunteer.active {
            return Err(AppError::Conflict {
                field: Some("volunteer_id"),
                message: format!("志愿者「{member}」已停用"),
            });
        }
        if volunteer.team_ids.iter().any(|t| t == team_id) {
            Ok(())
        } else {
            Err(AppError::Conflict {
                field: Some("volunteer_id"),
                message: format!("「{member}」不是队伍「{team_id}」的成员"),
            })
        }
    }

    async fn order_command<R: diandan_proto::CommandResponse>(
        &self,
        ctx: &RequestContext,
        order_id: &str,
        action: Action,
        expected_revision: Option<u64>,
    ) -> Result<Response<R>, Status> {
        let outcome = self
            .app
            .execute(ctx, order_id, action, expected_revision)
            .await?;
        Ok(Response::new(outcome.reply(order_id)))
    }
}

#[tonic::async_trait]
impl VolunteerService for Volunteers {
    async fn accept_order(
        &self,
        request: Request<pb::AcceptOrderRequest>,
    ) -> Result<Response<pb::AcceptOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::AcceptOrder)?;
        let req = request.into_inner();
        self.require_member(&ctx, &req.team_id).await?;
        let member = Some(req.volunteer_id).filter(|v| !v.is_empty() && *v != ctx.claims.sub);
        if let Some(member) = &member {
            self.require_assignable(&ctx, &req.team_id, member).await?;
        }
        let action = Action::Accept {
            team_id: req.team_id,
            member,
        };
        self.order_command(&ctx, &req.order_id, action, req.expected_revision)
            .await
    }

    async fn decline_order(
        &self,
        request: Request<pb::DeclineOrderRequest>,
    ) -> Result<Response<pb::DeclineOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::DeclineOrder)?;
        let req = request.into_inner();
        self.require_member(&ctx, &req.team_id).await?;
        let action = Action::Decline {
            team_id: req.team_id,
            reason: req.reason,
        };
        self.order_command(&ctx, &req.order_id, action, req.expected_revision)
            .await
    }

    async fn check_in(
        &self,
        request: Request<pb::CheckInRequest>,
    ) -> Result<Response<pb::CheckInResponse>, Status> {
        let ctx = self.app.authorize(request.metadata(), Operation::CheckIn)?;
        let req = request.into_inner();
        let action = Action::CheckIn {
            location: location_from("location", req.location)?,
        };
        self.order_command(&ctx, &req.order_id, action, req.expected_revision)
            .await
    }

    async fn check_out(
        &self,
        request: Request<pb::CheckOutRequest>,
    ) -> Result<Response<pb::CheckOutResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::CheckOut)?;
        let req = request.into_inner();
        let action = Action::CheckOut {
            location: location_from("location", req.location)?,
        };
        self.order_command(&ctx, &req.order_id, action, req.expected_revision)
            .await
    }

    async fn claim_order(
        &self,
        request: Request<pb::ClaimOrderRequest>,
    ) -> Result<Response<pb::ClaimOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ClaimOrder)?;
        let req = request.into_inner();
        validate::id("order_id", &req.order_id).map_err(AppError::from)?;
        validate::id("team_id", &req.team_id).map_err(AppError::from)?;
        self.require_member(&ctx, &req.team_id).await?;
        let loaded = self.app.load_order(&req.order_id).await?;
        if loaded.revision.is_none() || !self.app.team_holds(&ctx, &loaded.state).await? {
            return Err(AppError::NotFound("订单不存在".into()).into());
        }
        if let Some(volunteer) = self.app.directory.volunteer(&ctx.claims.sub).await? {
            self.app
                .require_claim_eligible(&volunteer, &req.team_id, &loaded.state)
                .await?;
        }
        let action = Action::Claim {
            team_id: req.team_id,
        };
        self.order_command(&ctx, &req.order_id, action, req.expected_revision)
            .await
    }

    async fn unclaim_order(
        &self,
        request: Request<pb::UnclaimOrderRequest>,
    ) -> Result<Response<pb::UnclaimOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::UnclaimOrder)?;
        let req = request.into_inner();
        let action = Action::Unclaim { reason: req.reason };
        self.order_command(&ctx, &req.order_id, action, req.expected_revision)
            .await
    }

    async fn list_claimable_orders(
        &self,
        request: Request<pb::ListClaimableOrdersRequest>,
    ) -> Result<Response<pb::ListClaimableOrdersResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ListClaimableOrders)?;
        let req = request.into_inner();
        let page = self
            .app
            .claimable_orders(&ctx, req.limit, req.min_position)
            .await?;
        Ok(Response::new(pb::ListClaimableOrdersResponse {
            orders: page.orders,
            position: page.position,
        }))
    }

    async fn request_extension(
        &self,
        request: Request<pb::RequestExtensionRequest>,
    ) -> Result<Response<pb::RequestExtensionResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::RequestExtension)?;
        let req = request.into_inner();
        let until = diandan_runtime::views::time_from("until", &req.until)?
            .ok_or_else(|| AppError::invalid("until", "须填写延期后的时限"))?;
        let action = Action::RequestExtension {
            deadline: req.deadline,
            until,
            reason: req.reason,
        };
        self.order_command(&ctx, &req.order_id, action, req.expected_revision)
            .await
    }

    async fn complete_order(
        &self,
        request: Request<pb::CompleteOrderRequest>,
    ) -> Result<Response<pb::CompleteOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::CompleteOrder)?;
        let req = request.into_inner();
        let action = Action::Complete {
            note: req.note,
            photos: req.photos,
        };
        self.order_command(&ctx, &req.order_id, action, req.expected_revision)
            .await
    }
}

/// Sign-in. Only the development login exists: it trusts the caller's claimed identity, so it
/// is off unless the server was started with dev login enabled.
pub struct Identity {
    app: App,
}

impl Identity {
    pub fn new(app: App) -> Identity {
        Identity { app }
    }

    pub fn into_server(self) -> pb::identity_service_server::IdentityServiceServer<Identity> {
        pb::identity_service_server::IdentityServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl IdentityService for Identity {
    async fn dev_login(
        &self,
        request: Request<pb::DevLoginRequest>,
    ) -> Result<Response<pb::DevLoginResponse>, Status> {
        if !self.app.dev_login {
            return Err(Status::permission_denied("开发登录未启用"));
        }
        let req = request.into_inner();
        let role = Role::parse(&req.role)
            .filter(|r| *r != Role::System)
            .ok_or_else(|| {
                AppError::invalid(
                    "role",
                    "须为 resident、volunteer、team_leader、station_head、institute_admin、centre_admin 或 auditor",
                )
            })?;
        validate::id("user_id", &req.user_id).map_err(AppError::from)?;
        if !req.org_node.is_empty() {
            validate::id("org_node", &req.org_node).map_err(AppError::from)?;
        }
        let directory = &self.app.directory;
        let node = if !permissions::binds_to(role).is_empty() {
            validate::id("org_node", &req.org_node).map_err(AppError::from)?;
            if directory.node(&req.org_node).await?.is_none() {
                return Err(AppError::missing(
                    "org_node",
                    format!("组织节点「{}」不存在", req.org_node),
                )
                .into());
            }
            Some(req.org_node)
        } else if permissions::workflow_role(role) == Role::Volunteer {
            if directory.volunteer(&req.user_id).await?.is_none() {
                return Err(AppError::missing(
                    "user_id",
                    format!("志愿者「{}」未登记", req.user_id),
                )
                .into());
            }
            if role == Role::TeamLeader && directory.led_teams(&req.user_id).await?.is_empty() {
                return Err(AppError::Conflict {
                    field: Some("role"),
                    message: format!("志愿者「{}」不是任何队伍的队长", req.user_id),
                }
                .into());
            }
            None
        } else {
            None
        };
        let expires = OffsetDateTime::now_utc() + TOKEN_LIFETIME;
        let token = self.app.signer.issue(&Claims {
            sub: req.user_id,
            role,
            node,
            acc: None,
            exp: expires.unix_timestamp(),
        });
        Ok(Response::new(pb::DevLoginResponse {
            token,
            expires_at: rfc3339(Some(expires)),
        }))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let address = client_address(&request);
        let req = request.into_inner();
        let issued = self
            .app
            .password_login(&req.username, &req.password, &address)
            .await?;
        Ok(Response::new(pb::LoginResponse {
            session: Some(session(issued)),
        }))
    }

    async fn wechat_login(
        &self,
        request: Request<pb::WechatLoginRequest>,
    ) -> Result<Response<pb::WechatLoginResponse>, Status> {
        let req = request.into_inner();
        let wechat =
            self.app.wechat.as_ref().ok_or_else(|| {
                Status::unavailable("微信登录未配置（需要小程序的 appid 和 secret）")
            })?;
        let found = wechat
            .code_to_session(&req.code)
            .await
            .map_err(wechat_status)?;
        let (issued, created) = self
            .app
            .wechat_login(&found.openid, found.unionid.as_deref())
            .await?;
        Ok(Response::new(pb::WechatLoginResponse {
            session: Some(session(issued)),
            created,
        }))
    }

    async fn refresh_session(
        &self,
        request: Request<pb::RefreshSessionRequest>,
    ) -> Result<Response<pb::RefreshSessionResponse>, Status> {
        let req = request.into_inner();
        let issued = self.app.refresh_session(&req.refresh_token).await?;
        Ok(Response::new(pb::RefreshSessionResponse {
            session: Some(session(issued)),
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let req = request.into_inner();
        self.app.logout(&req.refresh_token).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn bind_phone(
        &self,
        request: Request<pb::BindPhoneRequest>,
    ) -> Result<Response<pb::BindPhoneResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::BindPhone)?;
        let req = request.into_inner();
        let wechat =
            self.app.wechat.as_ref().ok_or_else(|| {
                Status::unavailable("微信登录未配置（需要小程序的 appid 和 secret）")
            })?;
        let number = wechat
            .phone_number(&req.code)
            .await
            .map_err(wechat_status)?;
        let (phone_masked, volunteer) =
            self.app.bind_phone(&ctx, &number.pure_phone_number).await?;
        Ok(Response::new(pb::BindPhoneResponse {
            phone_masked,
            volunteer_id: volunteer.unwrap_or_default(),
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ChangePassword)?;
        let req = request.into_inner();
        self.app
            .change_password(&ctx, &req.old_password, &req.new_password)
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }
}

/// A WeChat error as a gRPC status naming the `code` field.
fn wechat_status(e: diandan_runtime::wechat::WechatError) -> Status {
    use diandan_runtime::wechat::WechatError;
    let code = match e {
        WechatError::MalformedCode(_) => tonic::Code::InvalidArgument,
        WechatError::InvalidCode | WechatError::CodeUsed => tonic::Code::Unauthenticated,
        WechatError::RateLimited => tonic::Code::ResourceExhausted,
        _ => tonic::Code::Unavailable,
    };
    if matches!(
        e,
        WechatError::Rejected { .. } | WechatError::Unavailable(_)
    ) {
        tracing::warn!(error = %e, "WeChat call failed");
    }
    let mut status = Status::new(code, e.message_zh());
    if let Ok(field) = "code".parse() {
        status.metadata_mut().insert("x-diandan-field", field);
    }
    status
}

/// Where a sign-in comes from (for the per-address lockout): the address the HTTP gateway
/// saw, else the gRPC peer.
fn client_address<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(diandan_runtime::context::CLIENT_ADDRESS)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.remote_addr().map(|a| a.ip().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn session(issued: diandan_runtime::accounts::Issued) -> pb::Session {
    let account = issued.account;
    pb::Session {
        access_token: issued.access_token,
        token_type: "Bearer".into(),
        expires_in: issued.expires_in,
        refresh_token: issued.refresh_token,
        account_id: account.account_id.clone(),
        role: issued.role.as_str().to_owned(),
        node_id: account.node_id.clone().unwrap_or_default(),
        must_change_password: account.must_change_password,
    }
}

/// 账号管理: staff accounts.
pub struct Accounts {
    app: App,
}

impl Accounts {
    pub fn new(app: App) -> Accounts {
        Accounts { app }
    }

    pub fn into_server(self) -> pb::account_service_server::AccountServiceServer<Accounts> {
        pb::account_service_server::AccountServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl pb::account_service_server::AccountService for Accounts {
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CreateAccountResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::CreateAccount)?;
        let req = request.into_inner();
        // Password accounts are staff accounts, bound to a node; volunteers and team leaders
        // are registered in the directory and sign in with WeChat.
        let role = Role::parse(&req.role)
            .filter(|r| !permissions::binds_to(*r).is_empty())
            .ok_or_else(|| {
                AppError::invalid(
                    "role",
                    "须为 station_head、institute_admin、centre_admin 或 auditor",
                )
            })?;
        let account_id = self
            .app
            .create_staff_account(
                &ctx,
                &req.username,
                &req.display_name,
                role,
                &req.node_id,
                &req.password,
            )
            .await?;
        Ok(Response::new(pb::CreateAccountResponse { account_id }))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ResetPassword)?;
        let req = request.into_inner();
        validate::id("account_id", &req.account_id).map_err(AppError::from)?;
        self.app
            .reset_password(&ctx, &req.account_id, &req.new_password)
            .await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn forget_resident(
        &self,
        request: Request<pb::ForgetResidentRequest>,
    ) -> Result<Response<pb::ForgetResidentResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ForgetResident)?;
        let req = request.into_inner();
        let (at, position) = self
            .app
            .forget_resident(&ctx, &req.resident_id, &req.reason)
            .await?;
        Ok(Response::new(pb::ForgetResidentResponse {
            forgotten_at: diandan_runtime::views::rfc3339(Some(at)),
            position,
        }))
    }
}
