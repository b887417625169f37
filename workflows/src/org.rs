//! Levels of the organisation tree: 中心 centre → 所 institute → 站 station → 点 point.

use serde::{Deserialize, Serialize};

/// A node's level. Dispatch climbs station → institute → centre (层层派单).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgLevel {
    /// 新时代文明实践中心 (district/county).
    Centre,
    /// 新时代文明实践所 (township/street).
    Institute,
    /// 新时代文明实践站 (village/community).
    Station,
    /// 新时代文明实践点 (sub-station).
    Point,
}

impl OrgLevel {
    pub const ALL: [OrgLevel; 4] = [
        OrgLevel::Centre,
        OrgLevel::Institute,
        OrgLevel::Station,
        OrgLevel::Point,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrgLevel::Centre => "centre",
            OrgLevel::Institute => "institute",
            OrgLevel::Station => "station",
            OrgLevel::Point => "point",
        }
    }

    pub fn parse(s: &str) -> Option<OrgLevel> {
        Some(match s {
            "centre" => OrgLevel::Centre,
            "institute" => OrgLevel::Institute,
            "station" => OrgLevel::Station,
            "point" => OrgLevel::Point,
            _ => return None,
        })
    }

    /// The level a child of this level must have, if it may have children.
    pub fn child(self) -> Option<OrgLevel> {
        match self {
            OrgLevel::Centre => Some(OrgLevel::Institute),
            OrgLevel::Institute => Some(OrgLevel::Station),
            OrgLevel::Station => Some(OrgLevel::Point),
            OrgLevel::Point => None,
        }
    }
}
