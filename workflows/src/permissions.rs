//! 权限表 — who may call what, and over what: the one permission table.
//!
//! Every gRPC method is an [`Operation`]; every HTTP route calls exactly one. [`grant`] says,
//! for an operation and a role, over which [`Scope`] the role may call it — or that it may not
//! at all. The services ask it (`App::authorize`) before anything else and check the scope
//! against the resource the request names; no service checks a role by hand. The same table
//! says how a role acts inside a workflow ([`workflow_role`]), how much of a resident's phone
//! number it sees ([`contact_access`]), which roles it may grant ([`may_grant`]) and where its
//! account may be bound ([`binds_to`]). The role × endpoint test (`tests/permissions.rs`) is
//! generated from it, and `diandan permissions` prints it.

use crate::{OrgLevel, Role};

/// Over what a role may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Anyone, signed in or not (signing in itself).
    Public,
    /// The caller's own account, or the orders they placed.
    Own,
    /// Orders offered to or held by the caller's teams (a team leader: also held by members).
    Team,
    /// The caller's org node and everything below it.
    Subtree,
    /// Everything there is (the org tree and teams for any signed-in user; the system).
    All,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Public => "public",
            Scope::Own => "own",
            Scope::Team => "team",
            Scope::Subtree => "subtree",
            Scope::All => "all",
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Scope::Public => "无需登录",
            Scope::Own => "本人",
            Scope::Team => "本队",
            Scope::Subtree => "辖区",
            Scope::All => "全部",
        }
    }
}

macro_rules! operations {
    ($($op:ident = $service:literal / $method:literal : $zh:literal,)*) => {
        /// One API operation: one gRPC method, and the HTTP route that calls it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($op,)*
        }

        impl Operation {
            pub const ALL: &'static [Operation] = &[$(Operation::$op,)*];

            /// The gRPC path: `/diandan.v1.OrderService/PlaceOrder`.
            pub fn rpc(self) -> &'static str {
                match self {
                    $(Operation::$op => concat!("/diandan.v1.", $service, "/", $method),)*
                }
            }

            /// The gRPC method name: `PlaceOrder`.
            pub fn method(self) -> &'static str {
                match self {
                    $(Operation::$op => $method,)*
                }
            }

            /// What users call it.
            pub fn name_zh(self) -> &'static str {
                match self {
                    $(Operation::$op => $zh,)*
                }
            }
        }
    };
}

operations! {
    DevLogin = "IdentityService" / "DevLogin": "开发登录",
    Login = "IdentityService" / "Login": "账号密码登录",
    WechatLogin = "IdentityService" / "WechatLogin": "微信登录",
    RefreshSession = "IdentityService" / "RefreshSession": "刷新登录",
    Logout = "IdentityService" / "Logout": "退出登录",
    ChangePassword = "IdentityService" / "ChangePassword": "修改密码",
    BindPhone = "IdentityService" / "BindPhone": "绑定手机号",
    CreateAccount = "AccountService" / "CreateAccount": "开通账号",
    ResetPassword = "AccountService" / "ResetPassword": "重置密码",
    ForgetResident = "AccountService" / "ForgetResident": "删除居民个人信息",
    PlaceOrder = "OrderService" / "PlaceOrder": "点单",
    CancelOrder = "OrderService" / "CancelOrder": "取消订单",
    GetOrder = "OrderService" / "GetOrder": "查看订单",
    ListMyOrders = "OrderService" / "ListMyOrders": "订单列表",
    GetOrderHistory = "OrderService" / "GetOrderHistory": "订单历史",
    TriageOrder = "DispatchService" / "TriageOrder": "审单",
    DispatchOrder = "DispatchService" / "DispatchOrder": "派单",
    StationQueue = "DispatchService" / "StationQueue": "待办队列",
    WatchQueue = "DispatchService" / "WatchQueue": "待办推送",
    SuggestTeams = "DispatchService" / "SuggestTeams": "推荐队伍",
    DecideExtension = "DispatchService" / "DecideExtension": "审批延期",
    MergeOrder = "DispatchService" / "MergeOrder": "合并订单",
    ReworkOrder = "DispatchService" / "ReworkOrder": "返工",
    FollowUpOrder = "DispatchService" / "FollowUpOrder": "回访",
    AcceptOrder = "VolunteerService" / "AcceptOrder": "接单",
    DeclineOrder = "VolunteerService" / "DeclineOrder": "退单",
    CheckIn = "VolunteerService" / "CheckIn": "签到",
    CheckOut = "VolunteerService" / "CheckOut": "签退",
    CompleteOrder = "VolunteerService" / "CompleteOrder": "办结",
    RequestExtension = "VolunteerService" / "RequestExtension": "申请延期",
    ClaimOrder = "VolunteerService" / "ClaimOrder": "认领",
    UnclaimOrder = "VolunteerService" / "UnclaimOrder": "放弃认领",
    ListClaimableOrders = "VolunteerService" / "ListClaimableOrders": "可认领列表",
    ReviewOrder = "ReviewService" / "ReviewOrder": "评单",
    CloseOrder = "ReviewService" / "CloseOrder": "归档",
    StationStats = "StatsService" / "StationStats": "统计",
    SearchOrders = "AuditService" / "SearchOrders": "审计查询",
    ExportOrders = "AuditService" / "ExportOrders": "审计导出",
    GetCheckpoint = "AuditService" / "GetCheckpoint": "查看检查点",
    SignCheckpoint = "AuditService" / "SignCheckpoint": "签署检查点",
    GetConsistencyProof = "AuditService" / "GetConsistencyProof": "一致性证明",
    ExportOrderProof = "AuditService" / "ExportOrderProof": "导出可验证记录",
    ListContactReads = "AuditService" / "ListContactReads": "查阅记录",
    RegisterOrgNode = "OrganizationService" / "RegisterOrgNode": "设立组织节点",
    RegisterTeam = "OrganizationService" / "RegisterTeam": "登记队伍",
    RegisterVolunteer = "OrganizationService" / "RegisterVolunteer": "登记志愿者",
    GetOrgTree = "OrganizationService" / "GetOrgTree": "查看组织架构",
    ListTeams = "OrganizationService" / "ListTeams": "查看队伍",
    ListVolunteers = "OrganizationService" / "ListVolunteers": "查看志愿者",
    UpdateVolunteer = "OrganizationService" / "UpdateVolunteer": "修改志愿者",
    SetVolunteerActive = "OrganizationService" / "SetVolunteerActive": "停用/启用志愿者",
    ImportVolunteers = "OrganizationService" / "ImportVolunteers": "批量导入志愿者",
    GetVolunteerRecord = "LedgerService" / "GetVolunteerRecord": "查看志愿时长与积分",
    ListRankings = "LedgerService" / "ListRankings": "评优排行",
    ListPendingHours = "LedgerService" / "ListPendingHours": "待确认时长",
    ReviewHours = "LedgerService" / "ReviewHours": "确认时长",
    AdjustHours = "LedgerService" / "AdjustHours": "更正时长",
    ListShopItems = "LedgerService" / "ListShopItems": "查看爱心超市",
    AddShopItem = "LedgerService" / "AddShopItem": "上架商品",
    RestockShopItem = "LedgerService" / "RestockShopItem": "补货",
    ReserveShopItem = "LedgerService" / "ReserveShopItem": "积分兑换",
    GetRedemption = "LedgerService" / "GetRedemption": "查看兑换",
    HandOverRedemption = "LedgerService" / "HandOverRedemption": "核销兑换",
    CancelRedemption = "LedgerService" / "CancelRedemption": "取消兑换",
}

impl Operation {
    /// The operation behind a gRPC path, if there is one.
    pub fn from_rpc(path: &str) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|op| op.rpc() == path)
    }

    /// Does it change anything? (An auditor never gets one that does.)
    pub fn writes(self) -> bool {
        !matches!(
            self,
            Operation::GetOrder
                | Operation::ListMyOrders
                | Operation::GetOrderHistory
                | Operation::StationQueue
                | Operation::WatchQueue
                | Operation::SuggestTeams
                | Operation::StationStats
                | Operation::GetOrgTree
                | Operation::ListTeams
                | Operation::SearchOrders
                | Operation::ExportOrders
                | Operation::GetCheckpoint
                | Operation::SignCheckpoint
                | Operation::GetConsistencyProof
                | Operation::ExportOrderProof
                | Operation::ListContactReads
                | Operation::ListVolunteers
                | Operation::ListClaimableOrders
                | Operation::GetVolunteerRecord
                | Operation::ListRankings
                | Operation::ListPendingHours
                | Operation::ListShopItems
                | Operation::GetRedemption
        )
    }
}

/// Staff who run a subtree (站长, 所, 中心): the same powers, each over their own node.
const STAFF: [Role; 3] = [Role::StationHead, Role::InstituteAdmin, Role::CentreAdmin];

/// Volunteers in the field: a team leader does what a member does.
const FIELD: [Role; 2] = [Role::Volunteer, Role::TeamLeader];

/// THE permission table: over what `role` may call `op`, or `None` (refused, 403).
pub fn grant(op: Operation, role: Role) -> Option<Scope> {
    use Operation::*;
    use Role::*;
    use Scope::*;
    let staff = STAFF.contains(&role);
    let field = FIELD.contains(&role);
    let signed_in = role != System;
    match op {
        // Signing in: the credential is the request itself.
        DevLogin | Login | WechatLogin | RefreshSession | Logout => Some(Public),
        ChangePassword if signed_in => Some(Own),
        BindPhone if role == Resident || field => Some(Own),
        CreateAccount | ResetPassword if staff => Some(Subtree),
        CreateAccount | ResetPassword if role == System => Some(All),
        // 删除个人信息 (PIPL): the centre's admin answers for the whole district's residents
        // (and the operator's command line, as the system).
        ForgetResident if role == CentreAdmin || role == System => Some(All),

        // 点单 and the resident's side of an order; staff place on a resident's behalf (制单).
        PlaceOrder | CancelOrder if role == Resident => Some(Own),
        PlaceOrder | CancelOrder if staff => Some(Subtree),
        ReviewOrder if role == Resident => Some(Own),
        // An activity a station organised is reviewed by its station (the workflow's table
        // says where a head may review: open claims only).
        ReviewOrder if staff => Some(Subtree),

        // Reading orders: each sees their own part.
        GetOrder | ListMyOrders | GetOrderHistory => match role {
            Resident => Some(Own),
            Volunteer | TeamLeader => Some(Team),
            StationHead | InstituteAdmin | CentreAdmin | Auditor => Some(Subtree),
            System => Some(All),
        },

        // 审单, 派单, 归档: the staff of the order's subtree (and the system's timers).
        // 合并, 返工, 回访 too; an open claim is completed by its organiser (its table says so).
        TriageOrder | DispatchOrder | DecideExtension | CloseOrder | StationQueue | WatchQueue
        | SuggestTeams | MergeOrder | ReworkOrder | FollowUpOrder | CompleteOrder
            if staff =>
        {
            Some(Subtree)
        }
        DispatchOrder | CloseOrder if role == System => Some(All),
        StationStats if staff || role == Auditor => Some(Subtree),
        StationStats if role == System => Some(All),
        // 审计: read-only search and export of finished orders (no contact data in them).
        SearchOrders | ExportOrders if staff || role == Auditor => Some(Subtree),
        // The log's checkpoints and proofs hold no data, only sizes and hashes; signing one
        // states what the log holds and changes nothing in it. An order's verifiable export
        // reads like its history.
        GetCheckpoint | SignCheckpoint | GetConsistencyProof
            if staff || role == Auditor || role == System =>
        {
            Some(All)
        }
        ExportOrderProof | ListContactReads if staff || role == Auditor => Some(Subtree),

        // 接单 … 办结: volunteers of the team the order is offered to.
        // 认领 and 放弃认领: volunteers eligible for a published wish or activity.
        AcceptOrder | DeclineOrder | CheckIn | CheckOut | CompleteOrder | RequestExtension
        | ClaimOrder | UnclaimOrder | ListClaimableOrders
            if field =>
        {
            Some(Team)
        }

        // The directory: staff register within their subtree; everyone reads it.
        RegisterOrgNode | RegisterTeam | RegisterVolunteer | UpdateVolunteer
        | SetVolunteerActive | ImportVolunteers
            if staff =>
        {
            Some(Subtree)
        }
        RegisterOrgNode | RegisterTeam | RegisterVolunteer | UpdateVolunteer
        | SetVolunteerActive | ImportVolunteers
            if role == System =>
        {
            Some(All)
        }
        ListVolunteers if staff || role == Auditor => Some(Subtree),
        GetOrgTree | ListTeams => Some(All),

        // 志愿时长与积分: a volunteer reads their own record; staff and auditors read those of
        // their subtree's volunteers, and rank them (评优).
        GetVolunteerRecord if field => Some(Own),
        GetVolunteerRecord | ListRankings if staff || role == Auditor => Some(Subtree),
        // Far check-ins, corrections and hours added by hand: the staff over the volunteer.
        ListPendingHours | ReviewHours | AdjustHours if staff => Some(Subtree),
        // 爱心超市: volunteers redeem at their teams' stations and above; staff keep the shelves
        // and hand goods over against the one-time code.
        ListShopItems | ReserveShopItem | GetRedemption | CancelRedemption if field => Some(Own),
        ListShopItems | AddShopItem | RestockShopItem | GetRedemption | HandOverRedemption
        | CancelRedemption
            if staff =>
        {
            Some(Subtree)
        }

        _ => None,
    }
}

/// The role a workflow definition knows a caller by (definitions name `resident`,
/// `volunteer`, `station_head` and `system`): a team leader serves as a volunteer, an
/// institute or centre admin acts as the head of their subtree.
pub fn workflow_role(role: Role) -> Role {
    match role {
        Role::TeamLeader => Role::Volunteer,
        Role::InstituteAdmin | Role::CentreAdmin => Role::StationHead,
        other => other,
    }
}

/// How much of a resident's phone number a role sees on an order it may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactAccess {
    /// The full number on their own orders (a resident).
    OwnOrders,
    /// The full number while they hold the order, accepted → served (a volunteer).
    WhileServing,
    /// Always the full number (staff call residents back; the system sends reminders).
    Full,
    /// Never more than the mask (an auditor).
    Masked,
}

pub fn contact_access(role: Role) -> ContactAccess {
    match role {
        Role::Resident => ContactAccess::OwnOrders,
        Role::Volunteer | Role::TeamLeader => ContactAccess::WhileServing,
        Role::StationHead | Role::InstituteAdmin | Role::CentreAdmin | Role::System => {
            ContactAccess::Full
        }
        Role::Auditor => ContactAccess::Masked,
    }
}

/// Seniority, for granting: nobody grants a role at or above their own.
fn rank(role: Role) -> u8 {
    match role {
        Role::Resident => 0,
        Role::Volunteer => 1,
        Role::TeamLeader => 2,
        Role::Auditor => 3,
        Role::StationHead => 4,
        Role::InstituteAdmin => 5,
        Role::CentreAdmin => 6,
        Role::System => 7,
    }
}

/// May `creator` create (or reset the password of) an account with the role `granted`?
/// Only below their own role: a centre admin opens institute admins, an institute admin
/// station heads, a station head team leaders and volunteers. Residents sign themselves up.
pub fn may_grant(creator: Role, granted: Role) -> bool {
    grant(Operation::CreateAccount, creator).is_some()
        && granted != Role::Resident
        && granted != Role::System
        && rank(granted) < rank(creator)
}

/// The org levels an account of this role is bound to (staff act on that node's subtree);
/// empty: not bound to a node.
pub fn binds_to(role: Role) -> &'static [OrgLevel] {
    match role {
        Role::StationHead => &[OrgLevel::Station, OrgLevel::Point],
        Role::InstituteAdmin => &[OrgLevel::Institute],
        Role::CentreAdmin => &[OrgLevel::Centre],
        Role::Auditor => &OrgLevel::ALL,
        Role::Resident | Role::Volunteer | Role::TeamLeader | Role::System => &[],
    }
}

/// The table as Markdown (`diandan permissions`, and the README's copy, held equal by a test).
pub fn markdown() -> String {
    let mut out = String::from("| 操作 | gRPC |");
    for role in Role::ALL {
        out.push_str(&format!(" {} |", role.as_str()));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(Role::ALL.len()));
    out.push('\n');
    for op in Operation::ALL {
        out.push_str(&format!("| {} | `{}` |", op.name_zh(), op.method()));
        for role in Role::ALL {
            let cell = grant(*op, role).map_or("—", Scope::as_str);
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_path_names_one_operation() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_rpc(op.rpc()), Some(*op));
        }
        assert_eq!(Operation::from_rpc("/diandan.v1.OrderService/Nope"), None);
    }

    #[test]
    fn auditors_never_write_and_the_system_never_signs_in() {
        // Beyond signing in and their own password, an auditor changes nothing.
        for op in Operation::ALL {
            let own_sign_in = matches!(grant(*op, Role::Auditor), Some(Scope::Public | Scope::Own));
            if op.writes() && !own_sign_in {
                assert_eq!(grant(*op, Role::Auditor), None, "{op:?}");
            }
        }
        assert_eq!(grant(Operation::ChangePassword, Role::System), None);
    }

    #[test]
    fn nobody_grants_their_own_role_or_above() {
        for creator in Role::ALL {
            for granted in Role::ALL {
                if may_grant(creator, granted) {
                    assert!(rank(granted) < rank(creator), "{creator:?} → {granted:?}");
                }
            }
        }
        assert!(may_grant(Role::CentreAdmin, Role::InstituteAdmin));
        assert!(may_grant(Role::InstituteAdmin, Role::StationHead));
        assert!(may_grant(Role::StationHead, Role::TeamLeader));
        assert!(may_grant(Role::StationHead, Role::Volunteer));
        assert!(!may_grant(Role::StationHead, Role::StationHead));
        assert!(!may_grant(Role::StationHead, Role::InstituteAdmin));
        assert!(!may_grant(Role::Auditor, Role::Volunteer));
        assert!(!may_grant(Role::TeamLeader, Role::Volunteer));
    }

    #[test]
    fn the_readme_shows_this_table() {
        let readme = include_str!("../../README.md");
        let begin = readme
            .find("<!-- permissions:begin")
            .and_then(|i| readme[i..].find('\n').map(|j| i + j + 1))
            .expect("README has the permission table");
        let end = readme.find("<!-- permissions:end -->").expect("table end");
        assert_eq!(
            readme[begin..end].trim(),
            markdown().trim(),
            "README.md's permission table is stale: paste `cargo run -q -- permissions`"
        );
    }

    #[test]
    fn staff_roles_bind_to_their_level() {
        assert_eq!(binds_to(Role::CentreAdmin), &[OrgLevel::Centre]);
        assert!(binds_to(Role::Volunteer).is_empty());
        for role in Role::ALL {
            let staff = grant(Operation::TriageOrder, role) == Some(Scope::Subtree);
            assert_eq!(staff, STAFF.contains(&role), "{role:?}");
            if staff {
                assert!(!binds_to(role).is_empty());
            }
        }
    }
}
