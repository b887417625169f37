//! Specifications of the dispatch rules, one rule at a time.
//!
//! The map: 咸安 centre → 温泉所 institute → two stations, 车站路社区 (where the orders are placed)
//! and 永安社区 (a sibling, never in 车站路's lineage). *Given* which teams are registered where,
//! with which skills, load and hours, *when* an order is dispatched, *then* these teams are
//! suggested in this order, at this level, for this reason.

use time::macros::{datetime, time};

use super::*;

const CENTRE: &str = "xianan";
const INSTITUTE: &str = "wenquan";
const STATION: &str = "chezhanlu";
const SIBLING: &str = "yongan";

/// 车站路社区, where the orders are placed.
const CHEZHANLU: GeoPoint = GeoPoint {
    lat: 29.8711,
    lng: 114.2840,
};

/// Monday 10:00, within every team's hours.
const MONDAY_MORNING: OffsetDateTime = datetime!(2026-11-02 10:00 +8);
/// Sunday 10:00.
const SUNDAY_MORNING: OffsetDateTime = datetime!(2026-11-08 10:00 +8);

/// `km` north of 车站路 (one degree of latitude is about 111.2 km).
fn north(km: f64) -> GeoPoint {
    GeoPoint {
        lat: CHEZHANLU.lat + km / 111.195,
        lng: CHEZHANLU.lng,
    }
}

fn node(id: &str, name: &str, level: OrgLevel, parent: Option<&str>) -> OrgNode {
    OrgNode {
        id: id.into(),
        name: name.into(),
        level,
        parent_id: parent.map(Into::into),
        location: Some(CHEZHANLU),
    }
}

/// The tree, without teams.
fn given_the_tree() -> DispatchIndex {
    let mut index = DispatchIndex::new();
    index
        .add_node(node(
            CENTRE,
            "咸安区新时代文明实践中心",
            OrgLevel::Centre,
            None,
        ))
        .unwrap();
    index
        .add_node(node(INSTITUTE, "温泉所", OrgLevel::Institute, Some(CENTRE)))
        .unwrap();
    index
        .add_node(node(
            STATION,
            "车站路社区",
            OrgLevel::Station,
            Some(INSTITUTE),
        ))
        .unwrap();
    index
        .add_node(node(
            SIBLING,
            "永安社区",
            OrgLevel::Station,
            Some(INSTITUTE),
        ))
        .unwrap();
    index
}

/// A team at `node_id` with these skills, 1 km north of 车站路, idle, capacity 5, always open.
fn team(id: &str, node_id: &str, skills: &[Category]) -> TeamProfile {
    TeamProfile {
        team_id: id.into(),
        name: format!("{id}队"),
        kind: TeamKind::Team,
        node_id: node_id.into(),
        skills: skills.to_vec(),
        location: Some(north(1.0)),
        capacity: 5,
        open_load: 0,
        recent_assignments: 0,
        availability: Vec::new(),
    }
}

fn given_teams(teams: Vec<TeamProfile>) -> DispatchIndex {
    let mut index = given_the_tree();
    for t in teams {
        index.add_team(t).unwrap();
    }
    index
}

/// A 卫生环保 order placed at 车站路 on Monday morning.
fn order() -> DispatchRequest {
    DispatchRequest {
        category: Category::HealthEnvironment,
        station_id: STATION.into(),
        location: Some(CHEZHANLU),
        urgent: false,
        at: MONDAY_MORNING,
    }
}

fn ranked_ids(suggestions: &Suggestions) -> Vec<&str> {
    suggestions
        .ranked
        .iter()
        .map(|s| s.team_id.as_str())
        .collect()
}

const HEALTH: &[Category] = &[Category::HealthEnvironment];

#[test]
fn the_reason_says_skill_distance_load_and_fairness() {
    let mut station_team = team("chezhanlu-health", STATION, HEALTH);
    station_team.location = Some(north(0.8));
    station_team.open_load = 2;
    station_team.recent_assignments = 1;
    let index = given_teams(vec![station_team]);

    let suggestions = index.suggest(&order()).unwrap();

    assert_eq!(suggestions.level, OrgLevel::Station);
    assert!(suggestions.passed_over.is_empty());
    assert_eq!(
        suggestions.top().reason,
        "技能匹配：卫生环保；距离 0.8 公里；当前负载 2/5；近 7 天已派 1 单"
    );
    assert_eq!(
        suggestions.top().assignee(),
        Assignee {
            team_id: "chezhanlu-health".into(),
            kind: TeamKind::Team,
            node_id: STATION.into(),
            level: OrgLevel::Station,
        }
    );
}

#[test]
fn a_team_without_the_skill_is_never_suggested() {
    let index = given_teams(vec![
        team("chezhanlu-repair", STATION, &[Category::Repair]),
        team("chezhanlu-health", STATION, HEALTH),
    ]);
    let suggestions = index.suggest(&order()).unwrap();
    assert_eq!(ranked_ids(&suggestions), ["chezhanlu-health"]);
}

#[test]
fn a_team_outside_the_lineage_is_never_suggested() {
    // Given the best-placed 卫生环保 team is at the sibling station 永安, and the only other at
    // the centre, then the order goes up to the centre, not sideways.
    let mut sibling = team("yongan-health", SIBLING, HEALTH);
    sibling.location = Some(CHEZHANLU);
    let index = given_teams(vec![sibling, team("centre-corps", CENTRE, Category::ALL)]);

    let suggestions = index.suggest(&order()).unwrap();

    assert_eq!(ranked_ids(&suggestions), ["centre-corps"]);
    assert_eq!(suggestions.level, OrgLevel::Centre);
    assert_eq!(
        index.lineage(STATION).unwrap(),
        [STATION, INSTITUTE, CENTRE],
        "the station's ancestors path"
    );
}

#[test]
fn the_station_level_is_preferred_even_when_a_higher_team_scores_better() {
    let mut station = team("chezhanlu-health", STATION, HEALTH);
    station.location = Some(north(9.0));
    station.open_load = 4;
    station.recent_assignments = 6;
    let mut institute = team("audit-bureau", INSTITUTE, HEALTH);
    institute.location = Some(CHEZHANLU);
    let index = given_teams(vec![station, institute]);

    let suggestions = index.suggest(&order()).unwrap();

    assert_eq!(suggestions.level, OrgLevel::Station);
    assert_eq!(ranked_ids(&suggestions), ["chezhanlu-health"]);
}

#[test]
fn a_full_station_escalates_to_the_institute_and_says_why() {
    let mut full = team("chezhanlu-health", STATION, HEALTH);
    full.open_load = 5;
    let mut bureau = team("audit-bureau", INSTITUTE, HEALTH);
    bureau.kind = TeamKind::HelperUnit;
    bureau.location = Some(north(2.0));
    let index = given_teams(vec![
        full,
        team("chezhanlu-repair", STATION, &[Category::Repair]),
        bureau,
        team("centre-corps", CENTRE, Category::ALL),
    ]);

    let suggestions = index.suggest(&order()).unwrap();

    assert_eq!(suggestions.level, OrgLevel::Institute);
    assert_eq!(suggestions.node_id, INSTITUTE);
    assert_eq!(
        ranked_ids(&suggestions),
        ["audit-bureau"],
        "the centre is not reached"
    );
    assert_eq!(
        suggestions.passed_over,
        [LevelReport {
            node_id: STATION.into(),
            node_name: "车站路社区".into(),
            level: OrgLevel::Station,
            teams: 2,
            lacking_skill: 1,
            over_capacity: 1,
            unavailable: 0,
        }]
    );
    assert_eq!(
        suggestions.top().reason,
        "站级「车站路社区」无可派队伍（共 2 支：1 支无「卫生环保」技能，1 支已满负荷），上报所级「温泉所」；\
         技能匹配：卫生环保；距离 2.0 公里；当前负载 0/5；近 7 天已派 0 单"
    );
    assert_eq!(suggestions.top().assignee().kind, TeamKind::HelperUnit);
}

#[test]
fn escalation_climbs_to_the_centre_when_station_and_institute_cannot() {
    let index = given_teams(vec![
        team("chezhanlu-repair", STATION, &[Category::Repair]),
        team("centre-corps", CENTRE, Category::ALL),
    ]);
    let suggestions = index.suggest(&order()).unwrap();
    assert_eq!(suggestions.level, OrgLevel::Centre);
    let levels: Vec<OrgLevel> = suggestions.passed_over.iter().map(|r| r.level).collect();
    assert_eq!(levels, [OrgLevel::Station, OrgLevel::Institute]);
    assert!(
        suggestions.top().reason.starts_with(
            "站级「车站路社区」无可派队伍（共 1 支：1 支无「卫生环保」技能）；\
             所级「温泉所」没有队伍，上报中心级「咸安区新时代文明实践中心」；"
        ),
        "{}",
        suggestions.top().reason
    );
}

#[test]
fn a_team_outside_its_service_hours_is_skipped_until_they_come_round() {
    let mut weekdays_only = team("chezhanlu-health", STATION, HEALTH);
    weekdays_only.availability = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
    ]
    .into_iter()
    .map(|weekday| AvailabilityWindow {
        weekday,
        start: time!(8:00),
        end: time!(18:00),
    })
    .collect();
    let index = given_teams(vec![weekdays_only, team("audit-bureau", INSTITUTE, HEALTH)]);

    let on_monday = index.suggest(&order()).unwrap();
    assert_eq!(ranked_ids(&on_monday), ["chezhanlu-health"]);

    let on_sunday = index
        .suggest(&DispatchRequest {
            at: SUNDAY_MORNING,
            ..order()
        })
        .unwrap();
    assert_eq!(ranked_ids(&on_sunday), ["audit-bureau"]);
    assert_eq!(on_sunday.passed_over[0].unavailable, 1);
    assert!(on_sunday.top().reason.contains("1 支当前不在服务时间"));

    let monday_evening_utc = datetime!(2026-11-02 10:30 UTC); // 18:30 in Beijing
    let after_hours = index
        .suggest(&DispatchRequest {
            at: monday_evening_utc,
            ..order()
        })
        .unwrap();
    assert_eq!(
        ranked_ids(&after_hours),
        ["audit-bureau"],
        "windows are read in Beijing time"
    );
}

#[test]
fn nearer_ranks_first_all_else_equal() {
    let mut far = team("far", STATION, HEALTH);
    far.location = Some(north(6.0));
    let mut near = team("near", STATION, HEALTH);
    near.location = Some(north(0.5));
    let index = given_teams(vec![far, near]);
    assert_eq!(
        ranked_ids(&index.suggest(&order()).unwrap()),
        ["near", "far"]
    );
}

#[test]
fn less_loaded_ranks_first_all_else_equal() {
    let mut busy = team("busy", STATION, HEALTH);
    busy.open_load = 4;
    let mut idle = team("idle", STATION, HEALTH);
    idle.open_load = 1;
    let index = given_teams(vec![busy, idle]);
    assert_eq!(
        ranked_ids(&index.suggest(&order()).unwrap()),
        ["idle", "busy"]
    );
}

#[test]
fn fewer_recent_assignments_rank_first_all_else_equal() {
    let mut often = team("often", STATION, HEALTH);
    often.recent_assignments = 5;
    let rarely = team("rarely", STATION, HEALTH);
    let index = given_teams(vec![often, rarely]);
    assert_eq!(
        ranked_ids(&index.suggest(&order()).unwrap()),
        ["rarely", "often"]
    );
}

#[test]
fn urgent_orders_go_to_the_nearest_team() {
    // Given a team 0.5 km away with 4 of 5 orders open and an idle one 8 km away.
    let mut near_busy = team("near-busy", STATION, HEALTH);
    near_busy.location = Some(north(0.5));
    near_busy.open_load = 4;
    let mut far_idle = team("far-idle", STATION, HEALTH);
    far_idle.location = Some(north(8.0));
    let index = given_teams(vec![near_busy, far_idle]);

    // When the order is ordinary, then spreading the load wins.
    assert_eq!(
        ranked_ids(&index.suggest(&order()).unwrap()),
        ["far-idle", "near-busy"]
    );
    // When it is urgent, then distance wins, and the reason says so.
    let urgent = index
        .suggest(&DispatchRequest {
            urgent: true,
            ..order()
        })
        .unwrap();
    assert_eq!(ranked_ids(&urgent), ["near-busy", "far-idle"]);
    assert!(urgent.top().reason.ends_with("；紧急单就近优先"));
}

#[test]
fn a_team_without_coordinates_stands_at_its_node() {
    let mut at_node = team("at-node", STATION, HEALTH);
    at_node.location = None;
    let index = given_teams(vec![at_node]);
    let top = index.suggest(&order()).unwrap().top().clone();
    assert_eq!(top.distance_km, Some(0.0));
    assert!(top.reason.contains("距离 0.0 公里"));
}

#[test]
fn ties_are_broken_by_team_id_so_rankings_are_reproducible() {
    let index = given_teams(vec![
        team("b-team", STATION, HEALTH),
        team("a-team", STATION, HEALTH),
    ]);
    assert_eq!(
        ranked_ids(&index.suggest(&order()).unwrap()),
        ["a-team", "b-team"]
    );
}

#[test]
fn no_team_anywhere_in_the_lineage_is_an_error_that_says_why() {
    let mut full = team("chezhanlu-health", STATION, HEALTH);
    full.open_load = 5;
    let index = given_teams(vec![full, team("yongan-health", SIBLING, HEALTH)]);

    let error = index.suggest(&order()).unwrap_err();

    assert_eq!(
        error.to_string(),
        "没有可派的队伍：站级「车站路社区」无可派队伍（共 1 支：1 支已满负荷）；\
         所级「温泉所」没有队伍；中心级「咸安区新时代文明实践中心」没有队伍"
    );
    assert!(
        matches!(error, DispatchError::NoCandidate { passed_over, .. } if passed_over.len() == 3)
    );
}

#[test]
fn an_unknown_station_is_an_error() {
    let index = given_the_tree();
    let error = index
        .suggest(&DispatchRequest {
            station_id: "atlantis".into(),
            ..order()
        })
        .unwrap_err();
    assert_eq!(error, DispatchError::UnknownNode("atlantis".into()));
}

#[test]
fn automatic_assignment_takes_the_top_and_counting_it_rotates_the_work() {
    let mut index = given_teams(vec![
        team("a-team", STATION, HEALTH),
        team("b-team", STATION, HEALTH),
    ]);
    let first = index.auto_assign(&order()).unwrap();
    assert_eq!(first.team_id, "a-team");
    index.record_dispatch(&first.team_id).unwrap();

    let second = index.auto_assign(&order()).unwrap();
    assert_eq!(
        second.team_id, "b-team",
        "a-team now has one more open and recent order"
    );

    index.set_workload("a-team", 5, 9).unwrap();
    index.record_release("b-team").unwrap();
    assert_eq!(index.team("a-team").unwrap().open_load, 5);
    assert_eq!(index.team("b-team").unwrap().open_load, 0);
}

#[test]
fn a_point_dispatches_through_its_station() {
    let mut index = given_teams(vec![team("chezhanlu-health", STATION, HEALTH)]);
    index
        .add_node(node(
            "chezhanlu-point-1",
            "永福巷服务点",
            OrgLevel::Point,
            Some(STATION),
        ))
        .unwrap();
    let suggestions = index
        .suggest(&DispatchRequest {
            station_id: "chezhanlu-point-1".into(),
            ..order()
        })
        .unwrap();
    assert_eq!(suggestions.level, OrgLevel::Station);
    assert_eq!(
        suggestions.passed_over[0].reason_zh(Category::HealthEnvironment),
        "点级「永福巷服务点」没有队伍"
    );
}

#[test]
fn a_team_that_moves_is_found_at_its_new_node_only() {
    let mut index = given_teams(vec![team("mobile", SIBLING, HEALTH)]);
    assert!(index.suggest(&order()).is_err());
    index.add_team(team("mobile", STATION, HEALTH)).unwrap();
    assert_eq!(ranked_ids(&index.suggest(&order()).unwrap()), ["mobile"]);
}

#[test]
fn suggestions_are_capped() {
    let teams = (0..30)
        .map(|i| team(&format!("team-{i:02}"), STATION, HEALTH))
        .collect();
    let index = given_teams(teams).with_weights(DispatchWeights {
        max_suggestions: 3,
        ..DispatchWeights::default()
    });
    assert_eq!(index.suggest(&order()).unwrap().ranked.len(), 3);
}

#[test]
fn a_published_wish_is_shown_to_skilled_volunteers_of_the_lineage() {
    let mut index = given_teams(vec![
        team("chezhanlu-health", STATION, HEALTH),
        team("chezhanlu-repair", STATION, &[Category::Repair]),
        team("yongan-health", SIBLING, HEALTH),
        team("centre-corps", CENTRE, &[Category::Culture]),
    ]);
    let ids = |teams: &[&str]| teams.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    index
        .add_volunteer("v-health", &ids(&["chezhanlu-health"]), &[])
        .unwrap();
    index
        .add_volunteer("v-handy-but-green", &ids(&["chezhanlu-repair"]), HEALTH)
        .unwrap();
    index
        .add_volunteer("v-repair-only", &ids(&["chezhanlu-repair"]), &[])
        .unwrap();
    index
        .add_volunteer("v-sibling", &ids(&["yongan-health"]), HEALTH)
        .unwrap();
    index
        .add_volunteer("v-centre", &ids(&["centre-corps", "chezhanlu-health"]), &[])
        .unwrap();
    let rules = [Eligibility::CategorySkill, Eligibility::StationLineage];

    let audience = index
        .claim_audience(Category::HealthEnvironment, STATION, &rules)
        .unwrap();

    assert_eq!(audience, ["v-centre", "v-handy-but-green", "v-health"]);

    // When v-centre leaves 车站路's team, then they no longer qualify (their centre team is culture).
    index
        .add_volunteer("v-centre", &ids(&["centre-corps"]), &[])
        .unwrap();
    let audience = index
        .claim_audience(Category::HealthEnvironment, STATION, &rules)
        .unwrap();
    assert_eq!(audience, ["v-handy-but-green", "v-health"]);
}

#[test]
fn the_index_refuses_entries_that_do_not_fit_the_tree() {
    let mut index = given_the_tree();
    assert_eq!(
        index.add_node(node("orphan", "孤站", OrgLevel::Station, Some("nowhere"))),
        Err(IndexError::UnknownNode("nowhere".into()))
    );
    assert!(matches!(
        index.add_node(node("skip", "跳级站", OrgLevel::Station, Some(CENTRE))),
        Err(IndexError::WrongParent { .. })
    ));
    assert!(matches!(
        index.add_node(node("second-root", "二号所", OrgLevel::Institute, None)),
        Err(IndexError::WrongParent { .. })
    ));
    assert_eq!(
        index.add_team(team("t", "nowhere", HEALTH)),
        Err(IndexError::UnknownNode("nowhere".into()))
    );
    let mut backwards = team("t", STATION, HEALTH);
    backwards.availability = vec![AvailabilityWindow {
        weekday: Weekday::Monday,
        start: time!(18:00),
        end: time!(8:00),
    }];
    assert!(matches!(
        index.add_team(backwards),
        Err(IndexError::EmptyWindow { .. })
    ));
    assert_eq!(
        index.add_volunteer("v", &["ghost-team".to_string()], &[]),
        Err(IndexError::UnknownTeam("ghost-team".into()))
    );
}

#[test]
fn haversine_matches_known_distances() {
    let beijing = GeoPoint {
        lat: 39.9042,
        lng: 116.4074,
    };
    let shanghai = GeoPoint {
        lat: 31.2304,
        lng: 121.4737,
    };
    let km = haversine_km(beijing, shanghai);
    assert!((km - 1067.0).abs() < 5.0, "{km}");
    assert_eq!(haversine_km(beijing, beijing), 0.0);
    assert!((haversine_km(CHEZHANLU, north(1.0)) - 1.0).abs() < 0.01);
}
