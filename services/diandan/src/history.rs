//! `diandan up --demo`'s year of history: 咸安区's thirteen towns and streets, a few dozen
//! stations, their teams and helper units, a few hundred volunteers, and ~20,000 orders over
//! the last twelve months — placed, triaged, dispatched, accepted, served, completed, reviewed
//! and archived through the real service handlers (token checks, rules, decide, append), each
//! command stamped at its simulated time ([`diandan_runtime::clock::at`]), in office hours,
//! with realistic delays: dispatch within hours, completion within days; some rejected,
//! cancelled, declined and re-dispatched, extended, or overdue (their deadlines' timers fire
//! at their own simulated time), ratings mostly 4–5 with a few low ones.
//!
//! The timer runner is paused while history is replayed (`App::timer_hold`), so the present's
//! timers never fire on the past. Deterministic: the same seed gives the same year.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use time::{Duration, OffsetDateTime, UtcOffset, Weekday};
use tonic::Request;

use diandan_proto::v1 as pb;
use diandan_proto::v1::dispatch_service_server::DispatchService;
use diandan_proto::v1::order_service_server::OrderService;
use diandan_proto::v1::review_service_server::ReviewService;
use diandan_proto::v1::volunteer_service_server::VolunteerService;
use diandan_proto::CommandResponse;
use diandan_runtime::clock;
use diandan_runtime::{App, RequestContext};
use diandan_workflows::directory::DirectoryEvent;
use diandan_workflows::order::TeamKind;
use diandan_workflows::validate::Location;
use diandan_workflows::{Category, OrgLevel, Role};

use crate::demo::token;

/// Orders replayed by default (`--demo-history`).
pub const DEFAULT_ORDERS: usize = 20_000;

/// Orders replayed at once.
const CONCURRENCY: usize = 96;

const CST: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+8 is a valid offset"),
};

/// SplitMix64: a small deterministic generator (the demo must be the same on every machine).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// 0..n
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// lo..=hi minutes
    fn minutes(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The towns and streets of 咸安区 beyond the four the showcase registers: (id, name, lat, lng).
const MORE_INSTITUTES: &[(&str, &str, f64, f64)] = &[
    ("xiangyanghu", "向阳湖镇新时代文明实践所", 29.9465, 114.2352),
    ("guanbuqiao", "官埠桥镇新时代文明实践所", 29.9101, 114.2618),
    ("henggouqiao", "横沟桥镇新时代文明实践所", 29.9764, 114.3569),
    ("heshengqiao", "贺胜桥镇新时代文明实践所", 30.0302, 114.3693),
    (
        "shuangxiqiao",
        "双溪桥镇新时代文明实践所",
        29.7842,
        114.4131,
    ),
    ("tingsiqiao", "汀泗桥镇新时代文明实践所", 29.8103, 114.1786),
    ("guihua", "桂花镇新时代文明实践所", 29.7288, 114.3101),
    ("gaoqiao-town", "高桥镇新时代文明实践所", 29.7616, 114.5046),
    ("damu", "大幕乡新时代文明实践所", 29.8349, 114.5512),
];

/// Village and community names, three per new institute.
const PLACES: &[&str] = &[
    "金桥",
    "旗鼓",
    "东湖",
    "官埠",
    "宝塔",
    "新桥",
    "横沟",
    "大屋",
    "白岩",
    "贺胜",
    "桂家畈",
    "宋家",
    "双溪",
    "杨堡",
    "南川",
    "汀泗",
    "洪港",
    "程益",
    "桂花",
    "刘家桥",
    "南川村",
    "高桥",
    "白水畈",
    "王英",
    "大幕",
    "东源",
    "西山",
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "邓", "冯", "韩", "曹", "彭",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "文", "华", "红梅", "志强", "海燕", "晓东",
    "春梅",
];

/// Helper units (帮扶单位) of the district's departments: (id, name, skills).
const HELPER_UNITS: &[(&str, &str, &[Category])] = &[
    (
        "edu-bureau",
        "区教育局志愿服务队",
        &[Category::Education, Category::ChildCare],
    ),
    (
        "health-bureau",
        "区卫健局党员志愿队",
        &[Category::Medical, Category::ElderlyCare],
    ),
    (
        "justice-bureau",
        "区司法局法律服务队",
        &[Category::LegalAid, Category::PolicyTalk],
    ),
    (
        "housing-bureau",
        "区住建局便民维修队",
        &[Category::Repair, Category::HealthEnvironment],
    ),
    (
        "power-company",
        "国网咸安供电公司共产党员服务队",
        &[Category::Repair, Category::Aid],
    ),
    (
        "culture-centre",
        "区文化馆文艺志愿队",
        &[Category::Culture, Category::PolicyTalk],
    ),
];

/// What residents ask for, by category.
fn requests(category: Category) -> &'static [&'static str] {
    match category {
        Category::PolicyTalk => &[
            "想了解城乡居民医保缴费政策。",
            "希望有人讲讲养老保险新规定。",
            "村里想办一场惠农政策宣讲。",
        ],
        Category::Culture => &[
            "社区想组织一次广场舞培训。",
            "希望给老年人办书法兴趣班。",
            "想在重阳节办一场文艺演出。",
        ],
        Category::HealthEnvironment => &[
            "楼道杂物堆积，需要清理。",
            "小区下水道堵塞，有异味。",
            "河边垃圾多，希望组织清理。",
        ],
        Category::Aid => &[
            "困难户家中屋顶漏雨，需要修补。",
            "低保户冬天缺少棉被。",
            "残疾人家庭需要帮忙采购生活用品。",
        ],
        Category::ElderlyCare => &[
            "独居老人需要每周上门探访。",
            "老人行动不便，需要陪同就医。",
            "希望有人帮老人代买药品。",
        ],
        Category::ChildCare => &[
            "留守儿童周末需要作业辅导。",
            "暑假希望开办儿童托管班。",
            "孩子心理有困扰，想找人聊聊。",
        ],
        Category::LegalAid => &[
            "想咨询赡养纠纷的法律问题。",
            "拖欠工资，不知道怎么维权。",
            "邻里土地边界纠纷需要调解。",
        ],
        Category::Repair => &[
            "楼道灯坏了，晚上不安全。",
            "家里水管漏水，需要维修。",
            "电线老化，担心安全隐患。",
        ],
        Category::Medical => &[
            "希望组织老年人免费量血压。",
            "想请医生讲讲糖尿病饮食。",
            "卧床老人需要上门换药指导。",
        ],
        Category::Education => &[
            "想学用智能手机视频通话。",
            "希望开设防诈骗知识讲座。",
            "孩子需要英语学习辅导。",
        ],
    }
}

const GOOD_COMMENTS: &[&str] = &[
    "非常满意，谢谢志愿者！",
    "服务很及时",
    "志愿者很耐心",
    "解决了大问题",
    "点赞",
    "很专业",
];
const LOW_COMMENTS: &[&str] = &[
    "来得太晚了",
    "问题没有完全解决",
    "态度一般",
    "还需要再来一次",
];

/// A station of the replayed district.
#[derive(Clone)]
struct Station {
    id: String,
    lat: f64,
    lng: f64,
}

/// Who can serve what.
#[derive(Default)]
struct District {
    stations: Vec<Station>,
    /// team id → its members.
    members: HashMap<String, Vec<String>>,
    /// station id → the categories its own team serves.
    skills: HashMap<String, Vec<Category>>,
    /// node id → its head's id.
    heads: HashMap<String, String>,
}

fn system_ctx(id: &str) -> RequestContext {
    RequestContext::system(format!("demo-history/{id}"))
}

/// Registers the rest of 咸安区 (towns, stations, teams, helper units, volunteers).
async fn register_district(app: &App, rng: &mut Rng) -> anyhow::Result<District> {
    let mut district = District::default();
    let register = |event: DirectoryEvent| async move {
        let id = event.stream();
        app.directory.register(&system_ctx(&id), event).await
    };
    // The showcase's own stations and teams first (already registered).
    for (id, team, members, skills, lat, lng) in [
        (
            "chezhanlu",
            "zhidui-chezhanlu",
            &["v-wangsen", "v-liuhong"][..],
            &[
                Category::HealthEnvironment,
                Category::ElderlyCare,
                Category::Repair,
                Category::Aid,
            ][..],
            29.8711,
            114.2840,
        ),
        (
            "meiyuan",
            "zhidui-meiyuan",
            &["v-chenjing"][..],
            &[
                Category::ElderlyCare,
                Category::ChildCare,
                Category::LegalAid,
            ][..],
            29.8380,
            114.3180,
        ),
        (
            "xianghe",
            "xiangmei",
            &["v-zhengqiang"][..],
            &[Category::HealthEnvironment, Category::Culture][..],
            29.8602,
            114.3391,
        ),
        (
            "gaoqiao",
            "zhidui-gaoqiao",
            &["v-heping"][..],
            &[Category::Aid, Category::Repair, Category::PolicyTalk][..],
            29.7702,
            114.4951,
        ),
    ] {
        district.stations.push(Station {
            id: id.into(),
            lat,
            lng,
        });
        district.members.insert(
            team.into(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
        district.skills.insert(id.into(), skills.to_vec());
    }
    for (team, members) in [
        ("audit-bureau", &["v-zhaolei", "v-sunli"][..]),
        ("xuanjiang", &["v-zhoujie"][..]),
        ("zongdui", &["v-zhoujie", "v-huangmin"][..]),
        ("hospital", &["v-wufang"][..]),
        ("fendui-yongan", &["v-wangsen"][..]),
        ("fendui-wenquan", &["v-chenjing", "v-huangmin"][..]),
    ] {
        district.members.insert(
            team.into(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
    }
    let mut volunteer_no = 0usize;
    let mut new_volunteers = |team: &str, n: usize, rng: &mut Rng| {
        (0..n)
            .map(|_| {
                volunteer_no += 1;
                let name = format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN));
                (format!("v-{volunteer_no:04}"), name, team.to_owned())
            })
            .collect::<Vec<_>>()
    };
    let mut volunteers = Vec::new();
    let mut places = PLACES.iter();
    for (institute, name, lat, lng) in MORE_INSTITUTES {
        register(DirectoryEvent::OrgNodeRegistered {
            id: (*institute).into(),
            name: (*name).into(),
            level: OrgLevel::Institute,
            parent_id: Some("xianan".into()),
            location: Some(Location {
                lat: *lat,
                lng: *lng,
                address: String::new(),
            }),
        })
        .await?;
        let fendui = format!("fendui-{institute}");
        register(DirectoryEvent::TeamRegistered {
            id: fendui.clone(),
            name: format!("{}文明实践分队", name.trim_end_matches("新时代文明实践所")),
            kind: TeamKind::Team,
            node_id: (*institute).into(),
            skills: vec![
                Category::PolicyTalk,
                Category::Culture,
                Category::Aid,
                Category::ElderlyCare,
            ],
            leader_id: None,
        })
        .await?;
        volunteers.extend(new_volunteers(&fendui, 6, rng));
        for k in 0..3 {
            let place = places.next().copied().unwrap_or("新村");
            let village = k > 0;
            let station = format!("{institute}-{}", k + 1);
            let (slat, slng) = (lat + (k as f64 - 1.0) * 0.012, lng + 0.01 * k as f64);
            register(DirectoryEvent::OrgNodeRegistered {
                id: station.clone(),
                name: format!(
                    "{place}{}新时代文明实践站",
                    if village { "村" } else { "社区" }
                ),
                level: OrgLevel::Station,
                parent_id: Some((*institute).into()),
                location: Some(Location {
                    lat: slat,
                    lng: slng,
                    address: String::new(),
                }),
            })
            .await?;
            let mut skills: Vec<Category> = Category::ALL.to_vec();
            // Each station's team serves four categories (a different four per station).
            let start = rng.below(skills.len());
            skills.rotate_left(start);
            skills.truncate(4);
            let zhidui = format!("zhidui-{station}");
            register(DirectoryEvent::TeamRegistered {
                id: zhidui.clone(),
                name: format!("{place}{}文明实践支队", if village { "村" } else { "社区" }),
                kind: TeamKind::Team,
                node_id: station.clone(),
                skills: skills.clone(),
                leader_id: None,
            })
            .await?;
            volunteers.extend(new_volunteers(&zhidui, 8, rng));
            district.stations.push(Station {
                id: station.clone(),
                lat: slat,
                lng: slng,
            });
            district.skills.insert(station.clone(), skills);
            district
                .heads
                .insert(station.clone(), format!("head-{station}"));
        }
    }
    for (id, name, skills) in HELPER_UNITS {
        register(DirectoryEvent::TeamRegistered {
            id: (*id).into(),
            name: (*name).into(),
            kind: TeamKind::HelperUnit,
            node_id: "xianan".into(),
            skills: skills.to_vec(),
            leader_id: None,
        })
        .await?;
        volunteers.extend(new_volunteers(id, 10, rng));
    }
    for (id, name, team) in volunteers {
        register(DirectoryEvent::VolunteerRegistered {
            id: id.clone(),
            name,
            team_ids: vec![team.clone()],
            skills: Vec::new(),
            phone_masked: None,
        })
        .await?;
        district.members.entry(team).or_default().push(id);
    }
    for (station, head) in [
        ("chezhanlu", "head-dengxiaohu"),
        ("meiyuan", "head-meiyuan"),
        ("xianghe", "head-xianghe"),
        ("gaoqiao", "head-gaoqiao"),
    ] {
        district.heads.insert(station.into(), head.into());
    }
    Ok(district)
}

/// `t` moved on by `minutes` of office time (Monday–Friday, 8:30–12:00 and 14:00–17:30 CST).
fn office(t: OffsetDateTime, minutes: i64) -> OffsetDateTime {
    let mut t = t.to_offset(CST);
    let mut left = minutes;
    loop {
        let day_start = t.replace_time(time::macros::time!(8:30));
        let noon = t.replace_time(time::macros::time!(12:00));
        let afternoon = t.replace_time(time::macros::time!(14:00));
        let day_end = t.replace_time(time::macros::time!(17:30));
        let weekend = matches!(t.weekday(), Weekday::Saturday | Weekday::Sunday);
        if weekend || t >= day_end {
            t = (t + Duration::days(1)).replace_time(time::macros::time!(8:30));
            continue;
        }
        if t < day_start {
            t = day_start;
        }
        if t >= noon && t < afternoon {
            t = afternoon;
        }
        let block_end = if t < noon { noon } else { day_end };
        let room = (block_end - t).whole_minutes();
        if left <= room {
            return t + Duration::minutes(left);
        }
        left -= room;
        t = block_end;
    }
}

/// What happens to one order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Normal,
    Rejected,
    Cancelled,
    Declined,
    Extended,
    Overdue,
    Unreviewed,
    /// A neighbour reports the same thing; the head merges it at triage (合并).
    Duplicate,
    /// Reviewed with two stars, followed up (回访) and reworked (返工), reviewed again.
    Reworked,
    /// A resident's micro-wish, claimed by one volunteer (认领微心愿).
    Wish,
    /// A station's activity recruiting several volunteers (活动招募).
    Activity,
}

/// Micro-wishes residents make (认领微心愿), by what they need.
const WISHES: &[&str] = &[
    "微心愿：想要一副老花镜，方便看报纸。",
    "微心愿：希望有人陪我去医院复查。",
    "微心愿：孩子想要一套课外读物。",
    "微心愿：想学会用智能手机视频通话。",
    "微心愿：家里的轮椅需要修理。",
];

/// Activities stations organise (活动招募).
const ACTIVITIES: &[&str] = &[
    "周六上午小区环境大扫除，清理楼道杂物",
    "社区义诊：量血压、测血糖，需要志愿者引导",
    "清理小广告、规范非机动车停放",
    "文明实践宣讲进小区，需要志愿者布置场地",
    "重阳节慰问独居老人，分组上门",
];

struct Replay {
    app: App,
    orders: diandan_orders::Orders,
    dispatch: diandan_dispatch::Dispatch,
    volunteers: diandan_volunteers::Volunteers,
    reviews: diandan_reviews::Reviews,
    district: Arc<District>,
    now: OffsetDateTime,
    refused: AtomicU64,
}

fn request<T>(message: T, bearer: &str, key: String) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = format!("Bearer {bearer}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    if let Ok(value) = key.parse() {
        request.metadata_mut().insert("idempotency-key", value);
    }
    request
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Replay {
    /// The suggestions for an order, or `None` when the rules found no team at any level (each
    /// one at its capacity of open orders at that moment of the replay): the order then waits
    /// for dispatch, as such orders do, and the step counts as refused.
    fn suggested(
        &self,
        order: &str,
        answer: Result<tonic::Response<pb::SuggestTeamsResponse>, tonic::Status>,
    ) -> Option<pb::SuggestTeamsResponse> {
        match answer {
            Ok(response) => Some(response.into_inner()),
            Err(status) => {
                tracing::debug!(order, error = %status.message(), "no team to suggest");
                self.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Runs `step` at `at`, first firing the order's timers that came due before it; false
    /// when the step lies in the future (the order stays where it is, as open orders do).
    async fn at<F, T>(&self, order: &str, at: OffsetDateTime, last: &mut u64, step: F) -> bool
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
        T: CommandResponse,
    {
        if at > self.now {
            return false;
        }
        // The timers table must know this order's deadlines before they can fire.
        self.app
            .read
            .wait_for(*last, std::time::Duration::from_secs(5))
            .await;
        if let Ok(fired) = self.app.fire_due_timers_of(order, ms(at)).await {
            *last = (*last).max(fired);
        }
        match clock::at(at, step).await {
            Ok(response) => {
                *last = (*last).max(response.into_inner().into_ack().position);
                true
            }
            Err(status) => {
                tracing::debug!(order, error = %status.message(), "history step refused");
                self.refused.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    async fn replay(&self, i: usize, seed: u64) -> anyhow::Result<()> {
        let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let district = &self.district;
        let station = rng.pick(&district.stations).clone();
        let category = *rng.pick(&district.skills[&station.id]);
        let head_id = district
            .heads
            .get(&station.id)
            .cloned()
            .unwrap_or_else(|| "head-history".into());
        let signer = &self.app.signer;
        let head = token(signer, &head_id, Role::StationHead, Some(&station.id));
        let resident_id = format!("r-{}-{:02}", station.id, rng.below(60));
        let resident = token(signer, &resident_id, Role::Resident, None);
        let fate = match rng.below(100) {
            0..=2 => Fate::Rejected,
            3..=5 => Fate::Cancelled,
            6..=13 => Fate::Declined,
            14..=16 => Fate::Extended,
            17..=20 => Fate::Overdue,
            21..=28 => Fate::Unreviewed,
            29..=30 => Fate::Duplicate,
            31..=32 => Fate::Reworked,
            33..=37 => Fate::Wish,
            38..=40 => Fate::Activity,
            _ => Fate::Normal,
        };
        // Placed on a day of the last year (more in recent months), in office hours mostly.
        let days_back = {
            let a = rng.below(365) as i64;
            let b = rng.below(365) as i64;
            a.min(b.max(a / 2))
        };
        let day = (self.now.to_offset(CST) - Duration::days(days_back + 1))
            .replace_time(time::macros::time!(8:00));
        let placed = office(day, rng.minutes(0, 7 * 60));
        let key = |step: &str| format!("history/{seed}/{i}/{step}");
        let location = pb::Location {
            lat: station.lat + (rng.below(100) as f64 - 50.0) * 0.0001,
            lng: station.lng + (rng.below(100) as f64 - 50.0) * 0.0001,
            address: format!("{}号", rng.below(200) + 1),
        };
        let place = pb::PlaceOrderRequest {
            station_id: station.id.clone(),
            category: category.code().into(),
            description: (*rng.pick(requests(category))).into(),
            location: Some(location.clone()),
            contact_phone: format!("13{:09}", rng.next() % 1_000_000_000),
            ..Default::default()
        };
        if placed > self.now {
            return Ok(());
        }
        if matches!(fate, Fate::Wish | Fate::Activity) {
            let claim = Claim {
                activity: fate == Fate::Activity,
                head: &head,
                resident: &resident,
                placed,
                place,
                seed,
                i,
            };
            return self.replay_claim(&mut rng, claim).await;
        }
        let duplicate = (fate == Fate::Duplicate).then(|| {
            let mut same = place.clone();
            same.description = format!("{}（邻居也反映了）", same.description);
            same.contact_phone = format!("13{:09}", rng.next() % 1_000_000_000);
            same
        });
        let ack = clock::at(
            placed,
            self.orders
                .place_order(request(place, &resident, key("place"))),
        )
        .await?
        .into_inner()
        .into_ack();
        let order = ack.order_id;
        let mut last = ack.position;
        let triaged = office(placed, rng.minutes(10, 240));
        if let Some(same) = duplicate {
            let neighbour_id = format!("r-{}-{:02}", station.id, 60 + rng.below(40));
            let neighbour = token(signer, &neighbour_id, Role::Resident, None);
            let at = office(placed, rng.minutes(1, 8));
            if at < triaged && at <= self.now {
                let ack = clock::at(
                    at,
                    self.orders
                        .place_order(request(same, &neighbour, key("duplicate"))),
                )
                .await?
                .into_inner()
                .into_ack();
                last = last.max(ack.position);
                let merge = pb::MergeOrderRequest {
                    order_id: ack.order_id.clone(),
                    into: order.clone(),
                    reason: "同一问题，合并办理".into(),
                    ..Default::default()
                };
                self.at(
                    &ack.order_id,
                    triaged - Duration::minutes(1),
                    &mut last,
                    self.dispatch
                        .merge_order(request(merge, &head, key("merge"))),
                )
                .await;
            }
        }
        if fate == Fate::Cancelled {
            let cancel = pb::CancelOrderRequest {
                order_id: order.clone(),
                reason: "问题已自行解决".into(),
                ..Default::default()
            };
            let at = office(placed, rng.minutes(5, 120));
            self.at(
                &order,
                at,
                &mut last,
                self.orders
                    .cancel_order(request(cancel, &resident, key("cancel"))),
            )
            .await;
            return Ok(());
        }
        let triage = pb::TriageOrderRequest {
            order_id: order.clone(),
            accept: fate != Fate::Rejected,
            reason: if fate == Fate::Rejected {
                "不属于志愿服务范围，已转相关部门".into()
            } else {
                String::new()
            },
            ..Default::default()
        };
        if !self
            .at(
                &order,
                triaged,
                &mut last,
                self.dispatch
                    .triage_order(request(triage, &head, key("triage"))),
            )
            .await
            || fate == Fate::Rejected
        {
            return Ok(());
        }
        let mut t = office(triaged, rng.minutes(5, 180));
        let mut rounds = if fate == Fate::Declined { 2 } else { 1 };
        let mut excluded: Vec<String> = Vec::new();
        let (team, volunteer) = loop {
            // 派单 from the rules' suggestions, as a head does from the board.
            let suggested = clock::at(
                t,
                self.dispatch.suggest_teams(request(
                    pb::SuggestTeamsRequest {
                        order_id: order.clone(),
                    },
                    &head,
                    key("suggest"),
                )),
            )
            .await;
            let Some(suggestions) = self.suggested(&order, suggested) else {
                return Ok(());
            };
            let mut pick = suggestions
                .suggestions
                .iter()
                .find(|s| {
                    !excluded.contains(&s.team_id) && district.members.contains_key(&s.team_id)
                })
                .map(|s| (s.team_id.clone(), s.reason.clone()));
            if pick.is_none() && !excluded.is_empty() {
                // The station's own team declined and it has no other: the rules look up the
                // tree, leaving out the team that declined (as the board's 改派 does).
                let state = self.app.load_order(&order).await?.state;
                if let Ok(up) = self
                    .app
                    .suggest_teams_excluding(&state, excluded.clone())
                    .await
                {
                    pick = up
                        .ranked
                        .iter()
                        .find(|s| district.members.contains_key(&s.team_id))
                        .map(|s| (s.team_id.clone(), format!("原队伍退单，改派：{}", s.reason)));
                }
            }
            let Some((team, reason)) = pick else {
                return Ok(());
            };
            let dispatch = pb::DispatchOrderRequest {
                order_id: order.clone(),
                team_id: team.clone(),
                reason,
                ..Default::default()
            };
            if !self
                .at(
                    &order,
                    t,
                    &mut last,
                    self.dispatch.dispatch_order(request(
                        dispatch,
                        &head,
                        key(&format!("dispatch-{rounds}")),
                    )),
                )
                .await
            {
                return Ok(());
            }
            let volunteer = rng.pick(&district.members[&team]).clone();
            t = office(t, rng.minutes(15, 300));
            if rounds > 1 {
                let decline = pb::DeclineOrderRequest {
                    order_id: order.clone(),
                    team_id: team.clone(),
                    reason: "队员近期都有任务，人手不足".into(),
                    ..Default::default()
                };
                let token = token(signer, &volunteer, Role::Volunteer, None);
                if !self
                    .at(
                        &order,
                        t,
                        &mut last,
                        self.volunteers
                            .decline_order(request(decline, &token, key("decline"))),
                    )
                    .await
                {
                    return Ok(());
                }
                excluded.push(team);
                rounds -= 1;
                t = office(t, rng.minutes(10, 120));
                continue;
            }
            break (team, volunteer);
        };
        let token = token(signer, &volunteer, Role::Volunteer, None);
        let accept = pb::AcceptOrderRequest {
            order_id: order.clone(),
            team_id: team.clone(),
            ..Default::default()
        };
        if !self
            .at(
                &order,
                t,
                &mut last,
                self.volunteers
                    .accept_order(request(accept, &token, key("accept"))),
            )
            .await
        {
            return Ok(());
        }
        let accepted = t;
        if fate == Fate::Extended {
            let until = office(accepted, 9 * 7 * 60);
            let ask = pb::RequestExtensionRequest {
                order_id: order.clone(),
                deadline: "complete".into(),
                until: diandan_runtime::views::rfc3339(Some(until)),
                reason: "需要等待配件到货".into(),
                ..Default::default()
            };
            let asked = office(accepted, rng.minutes(60, 600));
            if self
                .at(
                    &order,
                    asked,
                    &mut last,
                    self.volunteers
                        .request_extension(request(ask, &token, key("extension"))),
                )
                .await
            {
                let decide = pb::DecideExtensionRequest {
                    order_id: order.clone(),
                    deadline: "complete".into(),
                    approve: true,
                    reason: "同意，请按时办结".into(),
                    ..Default::default()
                };
                self.at(
                    &order,
                    office(asked, rng.minutes(20, 240)),
                    &mut last,
                    self.dispatch
                        .decide_extension(request(decide, &head, key("decision"))),
                )
                .await;
            }
        }
        // Office days until the visit: longer for the slow ones.
        let visit_after = match fate {
            Fate::Extended => rng.minutes(5 * 420, 7 * 420),
            Fate::Overdue => rng.minutes(6 * 420, 9 * 420),
            _ => rng.minutes(60, 2 * 420),
        };
        let checked_in = office(accepted, visit_after);
        // Now and then a volunteer checks in from the road, a kilometre off: the station head
        // confirms or rejects those hours (待确认时长).
        let mut from = location.clone();
        if rng.below(40) == 0 {
            from.lat += 0.009;
        }
        let check_in = pb::CheckInRequest {
            order_id: order.clone(),
            location: Some(from),
            ..Default::default()
        };
        if !self
            .at(
                &order,
                checked_in,
                &mut last,
                self.volunteers
                    .check_in(request(check_in, &token, key("check-in"))),
            )
            .await
        {
            return Ok(());
        }
        let checked_out = checked_in + Duration::minutes(rng.minutes(30, 180));
        let check_out = pb::CheckOutRequest {
            order_id: order.clone(),
            location: Some(location.clone()),
            ..Default::default()
        };
        if !self
            .at(
                &order,
                checked_out,
                &mut last,
                self.volunteers
                    .check_out(request(check_out, &token, key("check-out"))),
            )
            .await
        {
            return Ok(());
        }
        let completed = checked_out + Duration::minutes(rng.minutes(5, 60));
        let complete = pb::CompleteOrderRequest {
            order_id: order.clone(),
            note: "已上门服务，居民确认问题解决。".into(),
            ..Default::default()
        };
        if !self
            .at(
                &order,
                completed,
                &mut last,
                self.volunteers
                    .complete_order(request(complete, &token, key("complete"))),
            )
            .await
        {
            return Ok(());
        }
        if fate != Fate::Unreviewed {
            let rating = match rng.below(100) {
                _ if fate == Fate::Reworked => 2,
                0..=64 => 5,
                65..=86 => 4,
                87..=93 => 3,
                94..=97 => 2,
                _ => 1,
            };
            let comment = if rating >= 4 {
                rng.pick(GOOD_COMMENTS)
            } else {
                rng.pick(LOW_COMMENTS)
            };
            let review = pb::ReviewOrderRequest {
                order_id: order.clone(),
                rating,
                comment: (*comment).into(),
                ..Default::default()
            };
            let reviewed = completed + Duration::minutes(rng.minutes(30, 3 * 24 * 60));
            if !self
                .at(
                    &order,
                    reviewed,
                    &mut last,
                    self.reviews
                        .review_order(request(review, &resident, key("review"))),
                )
                .await
            {
                return Ok(());
            }
            let mut reviewed = reviewed;
            if fate == Fate::Reworked {
                let round = Round {
                    order: &order,
                    team: &team,
                    volunteer: &token,
                    head: &head,
                    resident: &resident,
                    location: &location,
                    seed,
                    i,
                };
                match self.rework(&mut rng, round, reviewed, &mut last).await {
                    Some(again) => reviewed = again,
                    None => return Ok(()),
                }
            }
            let close = pb::CloseOrderRequest {
                order_id: order.clone(),
                ..Default::default()
            };
            self.at(
                &order,
                office(reviewed, rng.minutes(30, 2 * 420)),
                &mut last,
                self.reviews
                    .close_order(request(close, &head, key("close"))),
            )
            .await;
        }
        // Whatever is left to the timers (默认好评, 归档) happens in its own time.
        let settled = (completed + Duration::days(14)).min(self.now);
        self.app
            .read
            .wait_for(last, std::time::Duration::from_secs(5))
            .await;
        let _ = self.app.fire_due_timers_of(&order, ms(settled)).await;
        Ok(())
    }
}

/// An open claim to replay.
struct Claim<'a> {
    activity: bool,
    head: &'a str,
    resident: &'a str,
    placed: OffsetDateTime,
    place: pb::PlaceOrderRequest,
    seed: u64,
    i: usize,
}

/// A reworked order's second round.
struct Round<'a> {
    order: &'a str,
    team: &'a str,
    volunteer: &'a str,
    head: &'a str,
    resident: &'a str,
    location: &'a pb::Location,
    seed: u64,
    i: usize,
}

impl Replay {
    /// 回访 and 返工 after a two-star review: the same team serves again and the resident
    /// reviews again; returns when, or `None` when a step lies in the future.
    async fn rework(
        &self,
        rng: &mut Rng,
        r: Round<'_>,
        reviewed: OffsetDateTime,
        last: &mut u64,
    ) -> Option<OffsetDateTime> {
        let key = |step: &str| format!("history/{}/{}/{step}", r.seed, r.i);
        let order = r.order.to_owned();
        let followed = office(reviewed, rng.minutes(30, 420));
        let follow_up = pb::FollowUpOrderRequest {
            order_id: order.clone(),
            note: "电话回访：问题未彻底解决，安排返工".into(),
            ..Default::default()
        };
        let rework = pb::ReworkOrderRequest {
            order_id: order.clone(),
            team_id: r.team.to_owned(),
            reason: "居民反映问题仍在，请重新处理".into(),
            ..Default::default()
        };
        let at = office(followed, rng.minutes(10, 120));
        let accepted = office(at, rng.minutes(30, 300));
        let checked_in = office(accepted, rng.minutes(60, 420));
        let checked_out = checked_in + Duration::minutes(rng.minutes(30, 120));
        let completed = checked_out + Duration::minutes(rng.minutes(5, 60));
        let again = completed + Duration::minutes(rng.minutes(60, 2 * 24 * 60));
        let location = Some(r.location.clone());
        let v = r.volunteer;
        let ok = self
            .at(
                &order,
                followed,
                last,
                self.dispatch
                    .follow_up_order(request(follow_up, r.head, key("follow-up"))),
            )
            .await
            && self
                .at(
                    &order,
                    at,
                    last,
                    self.dispatch
                        .rework_order(request(rework, r.head, key("rework"))),
                )
                .await
            && self
                .at(
                    &order,
                    accepted,
                    last,
                    self.volunteers.accept_order(request(
                        pb::AcceptOrderRequest {
                            order_id: order.clone(),
                            team_id: r.team.to_owned(),
                            ..Default::default()
                        },
                        v,
                        key("accept-2"),
                    )),
                )
                .await
            && self
                .at(
                    &order,
                    checked_in,
                    last,
                    self.volunteers.check_in(request(
                        pb::CheckInRequest {
                            order_id: order.clone(),
                            location: location.clone(),
                            ..Default::default()
                        },
                        v,
                        key("check-in-2"),
                    )),
                )
                .await
            && self
                .at(
                    &order,
                    checked_out,
                    last,
                    self.volunteers.check_out(request(
                        pb::CheckOutRequest {
                            order_id: order.clone(),
                            location,
                            ..Default::default()
                        },
                        v,
                        key("check-out-2"),
                    )),
                )
                .await
            && self
                .at(
                    &order,
                    completed,
                    last,
                    self.volunteers.complete_order(request(
                        pb::CompleteOrderRequest {
                            order_id: order.clone(),
                            note: "返工完成，居民现场确认。".into(),
                            ..Default::default()
                        },
                        v,
                        key("complete-2"),
                    )),
                )
                .await
            && self
                .at(
                    &order,
                    again,
                    last,
                    self.reviews.review_order(request(
                        pb::ReviewOrderRequest {
                            order_id: order.clone(),
                            rating: 5,
                            comment: "返工后解决了，谢谢".into(),
                            ..Default::default()
                        },
                        r.resident,
                        key("review-2"),
                    )),
                )
                .await;
        ok.then_some(again)
    }

    /// A micro-wish (one volunteer) or an activity (several): published, claimed by members
    /// of the teams the rules find for it, each serving on their own, completed by the
    /// station, reviewed by the resident (or the station, for its activity), archived.
    async fn replay_claim(&self, rng: &mut Rng, c: Claim<'_>) -> anyhow::Result<()> {
        let key = |step: &str| format!("history/{}/{}/{step}", c.seed, c.i);
        let mut place = c.place;
        place.workflow = diandan_workflows::claim::WORKFLOW.into();
        let (placer, reviewer) = if c.activity {
            place.description = (*rng.pick(ACTIVITIES)).into();
            place.required_volunteers = Some(3 + rng.below(6) as u32);
            (c.head, c.head)
        } else {
            place.description = (*rng.pick(WISHES)).into();
            (c.resident, c.resident)
        };
        let seats = place.required_volunteers.unwrap_or(1) as usize;
        let location = place.location.clone();
        let ack = clock::at(
            c.placed,
            self.orders
                .place_order(request(place, placer, key("place"))),
        )
        .await?
        .into_inner()
        .into_ack();
        let order = ack.order_id;
        let mut last = ack.position;
        let published = office(c.placed, rng.minutes(10, 240));
        let triage = pb::TriageOrderRequest {
            order_id: order.clone(),
            accept: true,
            ..Default::default()
        };
        if !self
            .at(
                &order,
                published,
                &mut last,
                self.dispatch
                    .triage_order(request(triage, c.head, key("publish"))),
            )
            .await
        {
            return Ok(());
        }
        // Who may claim: members of the teams the dispatch rules find (skill, lineage).
        let suggested = clock::at(
            published,
            self.dispatch.suggest_teams(request(
                pb::SuggestTeamsRequest {
                    order_id: order.clone(),
                },
                c.head,
                key("suggest"),
            )),
        )
        .await;
        let Some(suggestions) = self.suggested(&order, suggested) else {
            return Ok(());
        };
        let Some(team) = suggestions
            .suggestions
            .iter()
            .map(|s| s.team_id.clone())
            .find(|t| self.district.members.contains_key(t))
        else {
            return Ok(());
        };
        let members = &self.district.members[&team];
        let start = rng.below(members.len());
        let mut claimants = Vec::new();
        let mut t = published;
        for k in 0..seats.min(members.len()) {
            let volunteer = members[(start + k) % members.len()].clone();
            let token = token(&self.app.signer, &volunteer, Role::Volunteer, None);
            t = office(t, rng.minutes(10, 400));
            let claim = pb::ClaimOrderRequest {
                order_id: order.clone(),
                team_id: team.clone(),
                ..Default::default()
            };
            if self
                .at(
                    &order,
                    t,
                    &mut last,
                    self.volunteers
                        .claim_order(request(claim, &token, key(&format!("claim-{k}")))),
                )
                .await
            {
                claimants.push(token);
            }
        }
        // The day of service: everyone checks in and out on their own.
        let day = office(t, rng.minutes(420, 3 * 420));
        let mut done = day;
        for (k, token) in claimants.iter().enumerate() {
            let arrived = day + Duration::minutes(rng.minutes(0, 20));
            let left = arrived + Duration::minutes(rng.minutes(60, 180));
            let check_in = pb::CheckInRequest {
                order_id: order.clone(),
                location: location.clone(),
                ..Default::default()
            };
            let check_out = pb::CheckOutRequest {
                order_id: order.clone(),
                location: location.clone(),
                ..Default::default()
            };
            if self
                .at(
                    &order,
                    arrived,
                    &mut last,
                    self.volunteers.check_in(request(
                        check_in,
                        token,
                        key(&format!("check-in-{k}")),
                    )),
                )
                .await
                && self
                    .at(
                        &order,
                        left,
                        &mut last,
                        self.volunteers.check_out(request(
                            check_out,
                            token,
                            key(&format!("check-out-{k}")),
                        )),
                    )
                    .await
            {
                done = done.max(left);
            }
        }
        let completed = done + Duration::minutes(rng.minutes(10, 90));
        let complete = pb::CompleteOrderRequest {
            order_id: order.clone(),
            note: if c.activity {
                "活动顺利完成，志愿者按时签到签退。"
            } else {
                "心愿已完成。"
            }
            .into(),
            ..Default::default()
        };
        let reviewed = completed + Duration::minutes(rng.minutes(60, 2 * 24 * 60));
        let review = pb::ReviewOrderRequest {
            order_id: order.clone(),
            rating: 4 + rng.below(2) as u32,
            comment: (*rng.pick(GOOD_COMMENTS)).into(),
            ..Default::default()
        };
        let close = pb::CloseOrderRequest {
            order_id: order.clone(),
            ..Default::default()
        };
        let _ = self
            .at(
                &order,
                completed,
                &mut last,
                self.volunteers
                    .complete_order(request(complete, c.head, key("complete"))),
            )
            .await
            && self
                .at(
                    &order,
                    reviewed,
                    &mut last,
                    self.reviews
                        .review_order(request(review, reviewer, key("review"))),
                )
                .await
            && self
                .at(
                    &order,
                    office(reviewed, rng.minutes(30, 420)),
                    &mut last,
                    self.reviews
                        .close_order(request(close, c.head, key("close"))),
                )
                .await;
        let settled = (completed + Duration::days(14)).min(self.now);
        self.app
            .read
            .wait_for(last, std::time::Duration::from_secs(5))
            .await;
        let _ = self.app.fire_due_timers_of(&order, ms(settled)).await;
        Ok(())
    }
}

/// Replays `orders` orders of history; returns how many were placed.
pub async fn seed(app: &App, orders: usize) -> anyhow::Result<usize> {
    if orders == 0 {
        return Ok(0);
    }
    // The present's timers wait until the past is written.
    let _hold = app.timer_hold.clone().write_owned().await;
    let mut rng = Rng(2026);
    let district = Arc::new(register_district(app, &mut rng).await?);
    let replay = Arc::new(Replay {
        app: app.clone(),
        orders: diandan_orders::Orders::new(app.clone()),
        dispatch: diandan_dispatch::Dispatch::new(app.clone()),
        volunteers: diandan_volunteers::Volunteers::new(app.clone()),
        reviews: diandan_reviews::Reviews::new(app.clone()),
        district,
        now: app.clock.now(),
        refused: AtomicU64::new(0),
    });
    let bar = indicatif::ProgressBar::new(orders as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "  演示历史 (a year of history) [{bar:40}] {pos}/{len} 单 {per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let failed = AtomicU64::new(0);
    futures::stream::iter(0..orders)
        .for_each_concurrent(CONCURRENCY, |i| {
            let replay = replay.clone();
            let bar = &bar;
            let failed = &failed;
            async move {
                if let Err(e) = replay.replay(i, 2026).await {
                    tracing::warn!(error = %e, "a history order could not be replayed");
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                bar.inc(1);
            }
        })
        .await;
    bar.finish_and_clear();
    tracing::info!(
        orders,
        seconds = started.elapsed().as_secs_f64(),
        failed = failed.load(Ordering::Relaxed),
        refused_steps = replay.refused.load(Ordering::Relaxed),
        "demo history replayed"
    );
    Ok(orders - failed.load(Ordering::Relaxed) as usize)
}

/// After the history: once the ledger has credited its service, the volunteers with the most
/// points redeem at the love supermarket — most of them collect at the shop, some still hold a
/// code to show. Returns how many redeemed.
pub async fn seed_redemptions(app: &App) -> anyhow::Result<usize> {
    use diandan_runtime::projections::ledger as read;
    // The ledger's process manager credits the year's check-outs behind the replay: wait until
    // the count of credited services stops moving.
    let mut last = u64::MAX;
    for _ in 0..600 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = app.read.query(read::credited_services).await?;
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    let richest = app.read.query(|c| read::richest(c, 40)).await?;
    let towel =
        diandan_ledger::streams::load::<diandan_workflows::ledger::shop::Item>(app, "lm-towel")
            .await?
            .state;
    if !towel.exists() {
        return Ok(0);
    }
    let shop = RequestContext::system("demo/shop".to_owned());
    let now = app.clock.now();
    let mut redeemed = 0;
    for (i, (volunteer, _)) in richest.iter().enumerate() {
        let ctx = RequestContext {
            claims: diandan_runtime::auth::Claims {
                sub: volunteer.clone(),
                role: Role::Volunteer,
                node: None,
                acc: None,
                exp: i64::MAX,
            },
            scope: diandan_workflows::permissions::Scope::Own,
            command_id: format!("demo/redeem/{volunteer}"),
            correlation_id: format!("demo/redeem/{volunteer}"),
        };
        // Three in four redeemed over the past months and collected their towel a day later;
        // the rest reserved today and still have a code to show.
        let collected = i % 4 != 3;
        let reserved_at = if collected {
            now - Duration::days(2 + (i as i64 * 37) % 240)
        } else {
            now
        };
        let Ok(redemption) = clock::at(
            reserved_at,
            diandan_ledger::shop::reserve(app, &ctx, &towel, 1),
        )
        .await
        else {
            continue;
        };
        redeemed += 1;
        if collected {
            let code = diandan_ledger::shop::code_of(app, &redemption.redemption_id);
            let ctx = RequestContext {
                command_id: format!("demo/hand-over/{}", redemption.redemption_id),
                ..shop.clone()
            };
            let handed =
                diandan_ledger::shop::hand_over(app, &ctx, &redemption.redemption_id, &code);
            clock::at(reserved_at + Duration::days(1), handed).await?;
        }
    }
    Ok(redeemed)
}
