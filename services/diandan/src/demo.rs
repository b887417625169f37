//! `diandan up --demo`: a living district — 咸安区's centre with institutes, stations, teams,
//! helper units, volunteers — and orders in every state, entered through the real gRPC API.

use diandan_proto::Upstreams;
use time::OffsetDateTime;

use diandan_proto::v1 as pb;
use diandan_proto::CommandResponse as _;
use diandan_runtime::auth::{Claims, TokenSigner, TOKEN_LIFETIME};
use diandan_workflows::Role;

use crate::client::{drive_order, Cast, Client, OrderSpec, Stage};

/// Mints a token (the seeder runs beside the server and holds its signer).
pub fn token(signer: &TokenSigner, sub: &str, role: Role, node: Option<&str>) -> String {
    signer.issue(&Claims {
        sub: sub.to_owned(),
        role,
        node: node.map(str::to_owned),
        acc: None,
        exp: (OffsetDateTime::now_utc() + TOKEN_LIFETIME).unix_timestamp(),
    })
}

/// The demo's staff accounts: (username, name, role, node, password). Printed at start so a
/// newcomer can sign in at once; demo data only — never reuse these passwords.
/// The love supermarkets' shelves (爱心超市): (item, node, name, price in hundredths of a
/// point, stock).
pub const SHOP: &[(&str, &str, &str, i64, i64)] = &[
    ("lm-rice", "xianan", "大米 5kg", 3000, 40),
    ("lm-oil", "xianan", "食用油 1.8L", 2500, 30),
    ("lm-towel", "xianan", "毛巾", 500, 100),
    ("lm-notebook", "yongan", "笔记本", 400, 50),
    ("lm-soap", "chezhanlu", "洗衣皂", 300, 60),
    ("lm-umbrella", "chezhanlu", "雨伞", 1500, 10),
];

pub const DEMO_ACCOUNTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "admin.xianan",
        "咸安区中心管理员",
        "centre_admin",
        "xianan",
        "xianan-demo-2026",
    ),
    (
        "admin.yongan",
        "永安街道文明实践所管理员",
        "institute_admin",
        "yongan",
        "yongan-demo-2026",
    ),
    (
        "deng.xiaohu",
        "邓小虎（车站路社区站长）",
        "station_head",
        "chezhanlu",
        "chezhanlu-demo-2026",
    ),
    (
        "audit.xianan",
        "区审计员",
        "auditor",
        "xianan",
        "audit-demo-2026",
    ),
];

/// (id, name, level, parent, lat, lng)
const NODES: &[(&str, &str, &str, &str, f64, f64)] = &[
    (
        "xianan",
        "咸安区新时代文明实践中心",
        "centre",
        "",
        29.8527,
        114.2986,
    ),
    (
        "wenquan",
        "温泉街道新时代文明实践所",
        "institute",
        "xianan",
        29.8416,
        114.3203,
    ),
    (
        "yongan",
        "永安街道新时代文明实践所",
        "institute",
        "xianan",
        29.8669,
        114.2874,
    ),
    (
        "fushan",
        "浮山街道新时代文明实践所",
        "institute",
        "xianan",
        29.8180,
        114.3330,
    ),
    (
        "maqiao",
        "马桥镇新时代文明实践所",
        "institute",
        "xianan",
        29.7710,
        114.3890,
    ),
    (
        "chezhanlu",
        "车站路社区新时代文明实践站",
        "station",
        "yongan",
        29.8702,
        114.2851,
    ),
    (
        "meiyuan",
        "梅园社区新时代文明实践站",
        "station",
        "wenquan",
        29.8431,
        114.3182,
    ),
    (
        "nanchanglu",
        "南昌路社区新时代文明实践站",
        "station",
        "wenquan",
        29.8390,
        114.3251,
    ),
    (
        "xianghe",
        "祥和苑社区新时代文明实践站",
        "station",
        "fushan",
        29.8166,
        114.3302,
    ),
    (
        "gaoqiao",
        "高桥村新时代文明实践站",
        "station",
        "maqiao",
        29.7745,
        114.3921,
    ),
    (
        "yongfu-lane",
        "永福巷新时代文明实践点",
        "point",
        "chezhanlu",
        29.8711,
        114.2840,
    ),
];

/// (id, name, kind, node, skills)
const TEAMS: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "zongdui",
        "咸安区新时代文明实践总队",
        "team",
        "xianan",
        &["policy_talk", "culture", "aid", "education"],
    ),
    (
        "xuanjiang",
        "理论政策宣讲团",
        "team",
        "xianan",
        &["policy_talk"],
    ),
    (
        "audit-bureau",
        "区审计局志愿服务队",
        "helper_unit",
        "xianan",
        &["repair", "health_environment"],
    ),
    (
        "hospital",
        "区人民医院党员志愿队",
        "helper_unit",
        "xianan",
        &["medical", "elderly_care"],
    ),
    (
        "fendui-yongan",
        "永安街道文明实践分队",
        "team",
        "yongan",
        &["health_environment", "elderly_care", "repair"],
    ),
    (
        "fendui-wenquan",
        "温泉街道文明实践分队",
        "team",
        "wenquan",
        &["culture", "child_care", "education"],
    ),
    (
        "zhidui-chezhanlu",
        "车站路社区文明实践支队",
        "team",
        "chezhanlu",
        &["health_environment", "elderly_care", "repair", "aid"],
    ),
    (
        "zhidui-meiyuan",
        "梅园社区文明实践支队",
        "team",
        "meiyuan",
        &["elderly_care", "child_care", "legal_aid"],
    ),
    (
        "xiangmei",
        "“向美而行”小分队",
        "team",
        "xianghe",
        &["health_environment", "culture"],
    ),
    (
        "zhidui-gaoqiao",
        "高桥村文明实践支队",
        "team",
        "gaoqiao",
        &["aid", "repair", "policy_talk"],
    ),
];

/// (team, volunteer): team leaders (队长), each a member of the team they lead.
const TEAM_LEADERS: &[(&str, &str)] = &[
    ("zhidui-chezhanlu", "v-wangsen"),
    ("zhidui-meiyuan", "v-chenjing"),
    ("zhidui-gaoqiao", "v-heping"),
];

/// (id, name, teams)
const VOLUNTEERS: &[(&str, &str, &[&str])] = &[
    ("v-wangsen", "王森", &["zhidui-chezhanlu", "fendui-yongan"]),
    ("v-liuhong", "刘红", &["zhidui-chezhanlu"]),
    ("v-chenjing", "陈静", &["zhidui-meiyuan", "fendui-wenquan"]),
    ("v-zhaolei", "赵磊", &["audit-bureau"]),
    ("v-sunli", "孙丽", &["audit-bureau"]),
    ("v-zhoujie", "周杰", &["xuanjiang", "zongdui"]),
    ("v-wufang", "吴芳", &["hospital"]),
    ("v-zhengqiang", "郑强", &["xiangmei"]),
    ("v-heping", "何平", &["zhidui-gaoqiao"]),
    ("v-huangmin", "黄敏", &["fendui-wenquan", "zongdui"]),
];

/// (station, head id, team, volunteer, category, description, address, rating, comment)
type DemoOrder = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u32,
    &'static str,
);

const ORDERS: &[DemoOrder] = &[
    (
        "chezhanlu",
        "head-dengxiaohu",
        "audit-bureau",
        "v-zhaolei",
        "health_environment",
        "永福巷一下雨就积水，希望疏通排水管网、增加排水口。",
        "永福巷 12 号",
        5,
        "排水修好了，非常满意！",
    ),
    (
        "chezhanlu",
        "head-dengxiaohu",
        "zhidui-chezhanlu",
        "v-wangsen",
        "elderly_care",
        "独居老人需要每周上门探访、帮忙买菜。",
        "车站路 38 号 2 单元",
        5,
        "志愿者很耐心",
    ),
    (
        "chezhanlu",
        "head-dengxiaohu",
        "zhidui-chezhanlu",
        "v-liuhong",
        "repair",
        "楼道灯坏了三个月，晚上上下楼不安全。",
        "车站路 41 号",
        4,
        "修好了，谢谢",
    ),
    (
        "meiyuan",
        "head-meiyuan",
        "zhidui-meiyuan",
        "v-chenjing",
        "legal_aid",
        "想咨询赡养纠纷的法律问题。",
        "梅园小区 6 栋",
        3,
        "解答了一部分",
    ),
    (
        "meiyuan",
        "head-meiyuan",
        "fendui-wenquan",
        "v-huangmin",
        "child_care",
        "暑假希望有志愿者辅导孩子作业。",
        "梅园小区 2 栋",
        5,
        "孩子很喜欢",
    ),
    (
        "nanchanglu",
        "head-nanchanglu",
        "fendui-wenquan",
        "v-chenjing",
        "culture",
        "社区想办一场广场舞培训。",
        "南昌路社区广场",
        4,
        "很热闹",
    ),
    (
        "xianghe",
        "head-xianghe",
        "xiangmei",
        "v-zhengqiang",
        "health_environment",
        "小区楼栋间杂物堆放，需要清理。",
        "祥和苑 3 栋",
        5,
        "环境变好了",
    ),
    (
        "gaoqiao",
        "head-gaoqiao",
        "zhidui-gaoqiao",
        "v-heping",
        "aid",
        "困难户家中屋顶漏雨，需要帮忙修补。",
        "高桥村四组",
        2,
        "修了但还在漏",
    ),
    (
        "gaoqiao",
        "head-gaoqiao",
        "xuanjiang",
        "v-zhoujie",
        "policy_talk",
        "村民想了解新农合医保报销政策。",
        "高桥村村委会",
        5,
        "讲得很清楚",
    ),
    (
        "chezhanlu",
        "head-dengxiaohu",
        "hospital",
        "v-wufang",
        "medical",
        "希望组织一次老年人免费量血压。",
        "车站路社区活动室",
        4,
        "很方便",
    ),
];

/// Seeds the demo district unless the store already holds events. Returns how many orders it placed.
pub async fn seed(upstreams: Upstreams, signer: &TokenSigner) -> anyhow::Result<usize> {
    let system = Client::new(
        upstreams.clone(),
        token(signer, "demo-seeder", Role::System, None),
    );
    for (id, name, level, parent, lat, lng) in NODES {
        let node = pb::RegisterOrgNodeRequest {
            id: (*id).into(),
            name: (*name).into(),
            level: (*level).into(),
            parent_id: (*parent).into(),
            location: Some(pb::Location {
                lat: *lat,
                lng: *lng,
                address: String::new(),
            }),
        };
        system
            .organization()
            .register_org_node(system.request(node, None))
            .await?;
    }
    for (id, name, kind, node, skills) in TEAMS {
        let team = pb::RegisterTeamRequest {
            id: (*id).into(),
            name: (*name).into(),
            kind: (*kind).into(),
            node_id: (*node).into(),
            skills: skills.iter().map(|s| (*s).into()).collect(),
            leader_id: TEAM_LEADERS
                .iter()
                .find(|(team, _)| team == id)
                .map(|(_, leader)| (*leader).into())
                .unwrap_or_default(),
        };
        system
            .organization()
            .register_team(system.request(team, None))
            .await?;
    }
    for (id, name, teams) in VOLUNTEERS {
        let volunteer = pb::RegisterVolunteerRequest {
            id: (*id).into(),
            name: (*name).into(),
            team_ids: teams.iter().map(|t| (*t).into()).collect(),
            skills: Vec::new(),
            phone: String::new(),
        };
        system
            .organization()
            .register_volunteer(system.request(volunteer, None))
            .await?;
    }
    for (username, name, role, node, password) in DEMO_ACCOUNTS {
        let account = pb::CreateAccountRequest {
            username: (*username).into(),
            display_name: (*name).into(),
            role: (*role).into(),
            node_id: (*node).into(),
            password: (*password).into(),
        };
        system
            .accounts()
            .create_account(system.request(account, None))
            .await?;
    }

    // The love supermarkets, stocked by the centre's admin.
    let centre = Client::new(
        upstreams.clone(),
        token(signer, "admin-xianan", Role::CentreAdmin, Some("xianan")),
    );
    for (item_id, node_id, name, centipoints, stock) in SHOP {
        let item = pb::AddShopItemRequest {
            item_id: (*item_id).into(),
            node_id: (*node_id).into(),
            name: (*name).into(),
            centipoints: *centipoints,
            stock: *stock,
        };
        centre
            .ledger()
            .add_shop_item(centre.request(item, None))
            .await?;
    }

    // Every order in the table, at every stage of the loop, plus rejected and cancelled ones.
    let stages = [
        Stage::Placed,
        Stage::Triaged,
        Stage::Dispatched,
        Stage::Accepted,
        Stage::InService,
        Stage::Served,
        Stage::Completed,
        Stage::Reviewed,
        Stage::Closed,
        Stage::Closed,
        Stage::Closed,
    ];
    let mut placed = 0;
    for (round, stage) in stages.iter().enumerate() {
        for (i, o) in ORDERS.iter().enumerate() {
            let (station, head, team, volunteer, category, description, address, rating, comment) =
                *o;
            let node = NODES
                .iter()
                .find(|n| n.0 == station)
                .expect("demo station exists");
            let resident = format!("r-{:03}", i + 1);
            let cast = Cast {
                resident: Client::new(
                    upstreams.clone(),
                    token(signer, &resident, Role::Resident, None),
                ),
                head: Client::new(
                    upstreams.clone(),
                    token(signer, head, Role::StationHead, Some(station)),
                ),
                volunteer: Client::new(
                    upstreams.clone(),
                    token(signer, volunteer, Role::Volunteer, None),
                ),
                team_id: team.into(),
                station_id: station.into(),
            };
            let spec = OrderSpec {
                category: category.into(),
                description: description.into(),
                lat: node.4 + (round as f64) * 0.0003,
                lng: node.5 - (i as f64) * 0.0002,
                address: address.into(),
                phone: format!("139{:08}", round * 100 + i),
                rating: rating.min(5),
                comment: comment.into(),
            };
            drive_order(&cast, &spec, *stage).await?;
            placed += 1;
        }
    }
    // A rejected and a cancelled order, for completeness.
    let head = Client::new(
        upstreams.clone(),
        token(
            signer,
            "head-dengxiaohu",
            Role::StationHead,
            Some("chezhanlu"),
        ),
    );
    let resident = Client::new(
        upstreams.clone(),
        token(signer, "r-099", Role::Resident, None),
    );
    for (description, cancel) in [
        ("请帮我代购香烟。", false),
        ("家里水管漏水，已自行修好。", true),
    ] {
        let place = pb::PlaceOrderRequest {
            station_id: "chezhanlu".into(),
            category: "repair".into(),
            description: description.into(),
            location: Some(pb::Location {
                lat: 29.8702,
                lng: 114.2851,
                address: "车站路 9 号".into(),
            }),
            contact_phone: "13900000999".into(),
            ..Default::default()
        };
        let ack = resident
            .orders()
            .place_order(resident.request(place, None))
            .await?
            .into_inner()
            .into_ack();
        if cancel {
            let m = pb::CancelOrderRequest {
                order_id: ack.order_id,
                reason: "问题已自行解决".into(),
                ..Default::default()
            };
            resident
                .orders()
                .cancel_order(resident.request(m, None))
                .await?;
        } else {
            let m = pb::TriageOrderRequest {
                order_id: ack.order_id,
                accept: false,
                reason: "不属于志愿服务范围".into(),
                ..Default::default()
            };
            head.dispatch().triage_order(head.request(m, None)).await?;
        }
        placed += 1;
    }
    Ok(placed)
}
