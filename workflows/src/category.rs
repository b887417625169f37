//! Service categories a resident can order from (the thematic volunteer organisations of
//! DOMAIN.md: policy talks, culture, health & environment, aid to the needy, …).

use serde::{Deserialize, Serialize};

macro_rules! categories {
    ($($variant:ident = $code:literal, $zh:literal;)*) => {
        /// A service category, written as its snake_case code on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Category { $($variant,)* }

        impl Category {
            /// Every category, in display order.
            pub const ALL: &'static [Category] = &[$(Category::$variant,)*];

            /// The wire code, e.g. `health_environment`.
            pub fn code(self) -> &'static str {
                match self { $(Category::$variant => $code,)* }
            }

            /// The name residents see, e.g. 卫生环保.
            pub fn name_zh(self) -> &'static str {
                match self { $(Category::$variant => $zh,)* }
            }

            /// Parses a wire code.
            pub fn parse(code: &str) -> Option<Category> {
                match code { $($code => Some(Category::$variant),)* _ => None }
            }
        }
    };
}

categories! {
    PolicyTalk = "policy_talk", "理论政策宣讲";
    Culture = "culture", "文艺文化服务";
    HealthEnvironment = "health_environment", "卫生环保";
    Aid = "aid", "扶贫帮困";
    ElderlyCare = "elderly_care", "关爱老人";
    ChildCare = "child_care", "关爱儿童";
    LegalAid = "legal_aid", "法律服务";
    Repair = "repair", "便民维修";
    Medical = "medical", "医疗健康";
    Education = "education", "助学辅导";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_serde() {
        for &c in Category::ALL {
            assert_eq!(Category::parse(c.code()), Some(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.code())
            );
        }
        assert_eq!(Category::parse("astrology"), None);
    }
}
