//! The request contract: what every request field and parameter must be, declared in the
//! OpenAPI document from this one table. The services enforce the same rules — the values come
//! from the domain (`diandan_workflows`: its id rule, text limits and enums), so the document,
//! the gateway and the services cannot disagree about them.
//!
//! The protobuf messages give the document its shapes (utoipa); proto3 has no notion of
//! required fields or enums-as-strings, so this table adds them: `required`, `enum`, lengths,
//! patterns and ranges, and `additionalProperties: false` (bodies refuse unknown fields).

use serde_json::{json, Map, Value};

use diandan_workflows::account::PASSWORD_CHARS;
use diandan_workflows::ledger::hours::MAX_MINUTES;
use diandan_workflows::ledger::shop::{self, MAX_CODE_CHARS, MAX_PRICE, MAX_STOCK};
use diandan_workflows::order::{Status, TeamKind};
use diandan_workflows::permissions::binds_to;
use diandan_workflows::validate::{
    MAX_DESCRIPTION_CHARS, MAX_ID_CHARS, MAX_NOTE_CHARS, MAX_PAGE_SIZE, MAX_PHOTOS,
    MAX_SHORT_TEXT_CHARS,
};
use diandan_workflows::{Category, OrgLevel, Role};

use crate::input::HEADER_LIMITS;

/// An id: 1–64 ASCII letters, digits, `-`, `_`.
fn id() -> Value {
    json!({"type": "string", "pattern": format!("^[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}$")})
}

/// An id, or empty for none.
fn optional_id() -> Value {
    json!({"type": "string", "pattern": format!("^[A-Za-z0-9_-]{{0,{MAX_ID_CHARS}}}$")})
}

/// An id the path gives: the body's copy is ignored.
fn ignored(what: &str) -> Value {
    let mut id = optional_id();
    id["description"] = json!(format!("忽略：{what}由路径中的编号指定"));
    id
}

/// The service an hours command names: an order, or `<order>~<round>` for a rework round.
const SERVICE_KEY_BODY: &str = "[A-Za-z0-9_-]{1,64}(~[0-9]{1,4})?";

fn service_key() -> Value {
    json!({"type": "string", "pattern": format!("^{SERVICE_KEY_BODY}$")})
}

/// Text of `min..=max` characters (after trimming; required text must not be blank).
fn text(min: usize, max: usize) -> Value {
    if min == 0 {
        json!({"type": "string", "maxLength": max})
    } else {
        // Blank text is refused like empty text: at least one non-space character.
        json!({"type": "string", "minLength": min, "maxLength": max, "pattern": "\\S"})
    }
}

fn one_of<'a>(values: impl IntoIterator<Item = &'a str>) -> Value {
    json!({"type": "string", "enum": values.into_iter().collect::<Vec<_>>()})
}

fn categories() -> Value {
    one_of(Category::ALL.iter().map(|c| c.code()))
}

/// An RFC 3339 time, or empty for none.
fn optional_time() -> Value {
    json!({"anyOf": [{"type": "string", "maxLength": 0}, {"type": "string", "format": "date-time"}]})
}

/// A `YYYY-MM-DD` day, or empty for none.
fn optional_day() -> Value {
    json!({"anyOf": [{"type": "string", "maxLength": 0}, {"type": "string", "format": "date"}]})
}

fn location() -> Value {
    json!({"$ref": "#/components/schemas/Location"})
}

fn revision() -> Value {
    json!({"type": ["integer", "null"], "format": "int64", "minimum": 0})
}

/// A staff username (`account::username`).
fn username() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9.-]{3,32}$"})
}

/// A password of at least `min` characters (`account::PASSWORD_CHARS`); not blank.
fn password(min: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": *PASSWORD_CHARS.end(), "pattern": "\\S"})
}

/// A refresh token: `<session id>.<secret>`, both lowercase hex.
fn refresh_token() -> Value {
    json!({"type": "string", "pattern": "^[0-9a-f]{32}\\.[0-9a-f]{64}$"})
}

/// A deadline's name, as the order's workflow definition calls it (e.g. `complete`).
fn deadline() -> Value {
    let mut name = id();
    name["description"] = json!("时限名称，见工作流定义（如 complete、sign_for）");
    name
}

/// A command on one order (the path names it): its own fields, plus the body's ignored
/// `order_id` and the optional `expected_revision` every command has.
fn command(
    schema: &'static str,
    required: &'static [&'static str],
    mut fields: Vec<(&'static str, Value)>,
    condition: Option<Value>,
) -> Body {
    let mut order_id = optional_id();
    order_id["description"] = json!("忽略：订单由路径中的编号指定");
    fields.insert(0, ("order_id", order_id));
    fields.push(("expected_revision", revision()));
    Body {
        schema,
        required,
        fields,
        condition,
    }
}

/// One request schema's contract: its required fields and each constrained field.
struct Body {
    schema: &'static str,
    required: &'static [&'static str],
    fields: Vec<(&'static str, Value)>,
    /// A JSON Schema condition (`if`/`then`/`else`) between fields, when there is one.
    condition: Option<Value>,
}

fn bodies() -> Vec<Body> {
    let reason = || text(0, MAX_SHORT_TEXT_CHARS);
    let reason_required = || text(1, MAX_SHORT_TEXT_CHARS);
    vec![
        Body {
            schema: "DevLoginRequest",
            required: &["role", "user_id"],
            fields: vec![
                (
                    "role",
                    one_of(
                        Role::ALL
                            .into_iter()
                            .filter(|r| *r != Role::System)
                            .map(Role::as_str),
                    ),
                ),
                ("user_id", id()),
                ("org_node", optional_id()),
            ],
            // Staff act for an org node (the roles the permission table binds to one).
            condition: Some(json!({
                "if": {"properties": {"role": {"enum": Role::ALL
                    .into_iter()
                    .filter(|r| !binds_to(*r).is_empty())
                    .map(Role::as_str)
                    .collect::<Vec<_>>()}}},
                "then": {"required": ["org_node"], "properties": {"org_node": id()}}
            })),
        },
        Body {
            schema: "LoginRequest",
            required: &["username", "password"],
            fields: vec![("username", username()), ("password", password(1))],
            condition: None,
        },
        Body {
            schema: "WechatLoginRequest",
            required: &["code"],
            fields: vec![(
                "code",
                json!({"type": "string", "minLength": 1, "maxLength": 128}),
            )],
            condition: None,
        },
        Body {
            schema: "BindPhoneRequest",
            required: &["code"],
            fields: vec![(
                "code",
                json!({"type": "string", "minLength": 1, "maxLength": 128}),
            )],
            condition: None,
        },
        Body {
            schema: "RefreshSessionRequest",
            required: &["refresh_token"],
            fields: vec![("refresh_token", refresh_token())],
            condition: None,
        },
        Body {
            schema: "LogoutRequest",
            required: &["refresh_token"],
            fields: vec![("refresh_token", refresh_token())],
            condition: None,
        },
        Body {
            schema: "ChangePasswordRequest",
            required: &["old_password", "new_password"],
            fields: vec![
                ("old_password", password(1)),
                ("new_password", password(*PASSWORD_CHARS.start())),
            ],
            condition: None,
        },
        Body {
            schema: "CreateAccountRequest",
            required: &["username", "display_name", "role", "node_id", "password"],
            fields: vec![
                ("username", username()),
                ("display_name", text(1, MAX_SHORT_TEXT_CHARS)),
                (
                    "role",
                    one_of(
                        Role::ALL
                            .into_iter()
                            .filter(|r| !binds_to(*r).is_empty())
                            .map(Role::as_str),
                    ),
                ),
                ("node_id", id()),
                ("password", password(*PASSWORD_CHARS.start())),
            ],
            condition: None,
        },
        Body {
            schema: "ResetPasswordRequest",
            required: &["new_password"],
            fields: vec![
                ("account_id", {
                    let mut id = optional_id();
                    id["description"] = json!("忽略：账号由路径中的编号指定");
                    id
                }),
                ("new_password", password(*PASSWORD_CHARS.start())),
            ],
            condition: None,
        },
        Body {
            schema: "PlaceOrderRequest",
            required: &[
                "station_id",
                "category",
                "description",
                "location",
                "contact_phone",
            ],
            fields: vec![
                ("order_id", optional_id()),
                ("station_id", id()),
                ("category", categories()),
                ("description", text(1, MAX_DESCRIPTION_CHARS)),
                ("location", location()),
                (
                    "contact_phone",
                    json!({"type": "string", "pattern": "^1[0-9]{10}$"}),
                ),
                ("wanted_time", optional_time()),
                ("on_behalf_of", optional_id()),
                (
                    "workflow",
                    one_of(
                        std::iter::once("")
                            .chain(diandan_workflows::engine::tables().map(|t| t.workflow)),
                    ),
                ),
                (
                    "required_volunteers",
                    // null: the workflow's own number (one for a dispatched order).
                    json!({"type": ["integer", "null"], "format": "int32", "minimum": 1,
                           "maximum": diandan_workflows::order::MAX_SEATS}),
                ),
            ],
            // Only an open claim recruits several; a dispatched order is served by one.
            condition: Some(json!({
                "if": {"required": ["workflow"], "properties": {"workflow": {"const": "open-claim"}}},
                "then": {},
                "else": {"properties": {"required_volunteers": {"maximum": 1}}}
            })),
        },
        command("CancelOrderRequest", &[], vec![("reason", reason())], None),
        command(
            "TriageOrderRequest",
            &["accept"],
            vec![("accept", json!({"type": "boolean"})), ("reason", reason())],
            // A rejection says why.
            Some(json!({
                "if": {"properties": {"accept": {"const": false}}},
                "then": {"required": ["reason"], "properties": {"reason": reason_required()}}
            })),
        ),
        command(
            "DispatchOrderRequest",
            &[],
            vec![
                ("team_id", optional_id()),
                ("reason", reason()),
                ("auto", json!({"type": "boolean"})),
            ],
            // A team, unless the rules pick one.
            Some(json!({
                "if": {"required": ["auto"], "properties": {"auto": {"const": true}}},
                "else": {"required": ["team_id"], "properties": {"team_id": id()}}
            })),
        ),
        command(
            "AcceptOrderRequest",
            &["team_id"],
            vec![("team_id", id()), ("volunteer_id", optional_id())],
            None,
        ),
        command(
            "DeclineOrderRequest",
            &["team_id"],
            vec![("team_id", id()), ("reason", reason())],
            None,
        ),
        command(
            "CheckInRequest",
            &["location"],
            vec![("location", location())],
            None,
        ),
        command(
            "CheckOutRequest",
            &["location"],
            vec![("location", location())],
            None,
        ),
        command(
            "CompleteOrderRequest",
            &["note"],
            vec![
                ("note", text(1, MAX_NOTE_CHARS)),
                (
                    "photos",
                    json!({"type": "array", "maxItems": MAX_PHOTOS, "items": text(1, MAX_SHORT_TEXT_CHARS)}),
                ),
            ],
            None,
        ),
        command(
            "RequestExtensionRequest",
            &["deadline", "until", "reason"],
            vec![
                ("deadline", deadline()),
                ("until", json!({"type": "string", "format": "date-time"})),
                ("reason", reason_required()),
            ],
            None,
        ),
        command(
            "DecideExtensionRequest",
            &["deadline", "approve"],
            vec![
                ("deadline", deadline()),
                ("approve", json!({"type": "boolean"})),
                ("reason", reason()),
            ],
            None,
        ),
        command(
            "ReviewOrderRequest",
            &["rating"],
            vec![
                (
                    "rating",
                    json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 5}),
                ),
                ("comment", reason()),
            ],
            None,
        ),
        command("CloseOrderRequest", &[], vec![], None),
        command(
            "ClaimOrderRequest",
            &["team_id"],
            vec![("team_id", id())],
            None,
        ),
        command("UnclaimOrderRequest", &[], vec![("reason", reason())], None),
        command(
            "MergeOrderRequest",
            &["into"],
            vec![("into", id()), ("reason", reason())],
            None,
        ),
        command(
            "ReworkOrderRequest",
            &["team_id", "reason"],
            vec![("team_id", id()), ("reason", reason_required())],
            None,
        ),
        command(
            "FollowUpOrderRequest",
            &["note"],
            vec![("note", text(1, MAX_SHORT_TEXT_CHARS))],
            None,
        ),
        Body {
            schema: "RegisterOrgNodeRequest",
            required: &["id", "name", "level"],
            fields: vec![
                ("id", id()),
                ("name", text(1, MAX_SHORT_TEXT_CHARS)),
                ("level", one_of(OrgLevel::ALL.map(OrgLevel::as_str))),
                ("parent_id", optional_id()),
            ],
            // A centre is the root; every other node has a parent.
            condition: Some(json!({
                "if": {"properties": {"level": {"const": "centre"}}},
                "then": {"properties": {"parent_id": {"maxLength": 0}}},
                "else": {"required": ["parent_id"], "properties": {"parent_id": id()}}
            })),
        },
        Body {
            schema: "RegisterTeamRequest",
            required: &["id", "name", "kind", "node_id", "skills"],
            fields: vec![
                ("id", id()),
                ("name", text(1, MAX_SHORT_TEXT_CHARS)),
                ("kind", one_of(TeamKind::ALL.map(TeamKind::as_str))),
                ("node_id", id()),
                (
                    "skills",
                    json!({"type": "array", "minItems": 1, "items": categories()}),
                ),
                ("leader_id", optional_id()),
            ],
            condition: None,
        },
        Body {
            schema: "RegisterVolunteerRequest",
            required: &["id", "name"],
            fields: vec![
                ("id", id()),
                ("name", text(1, MAX_SHORT_TEXT_CHARS)),
                ("team_ids", json!({"type": "array", "items": id()})),
                ("skills", json!({"type": "array", "items": categories()})),
                (
                    "phone",
                    json!({"type": "string", "pattern": "^(1[0-9]{10})?$"}),
                ),
            ],
            condition: None,
        },
        Body {
            schema: "UpdateVolunteerRequest",
            required: &["name", "team_ids"],
            fields: vec![
                ("id", {
                    let mut id = optional_id();
                    id["description"] = json!("忽略：志愿者由路径中的编号指定");
                    id
                }),
                ("name", text(1, MAX_SHORT_TEXT_CHARS)),
                (
                    "team_ids",
                    json!({"type": "array", "items": id(), "minItems": 1}),
                ),
                ("skills", json!({"type": "array", "items": categories()})),
            ],
            condition: None,
        },
        Body {
            schema: "SetVolunteerActiveRequest",
            required: &["active"],
            fields: vec![
                ("id", {
                    let mut id = optional_id();
                    id["description"] = json!("忽略：志愿者由路径中的编号指定");
                    id
                }),
                ("active", json!({"type": "boolean"})),
                ("reason", text(0, MAX_SHORT_TEXT_CHARS)),
            ],
            // Deactivating says why.
            condition: Some(json!({
                "if": {"properties": {"active": {"const": false}}},
                "then": {"required": ["reason"], "properties": {"reason": text(1, MAX_SHORT_TEXT_CHARS)}}
            })),
        },
        // 志愿时长、积分与爱心超市 (the path names the volunteer, item or redemption).
        // 删除居民个人信息 (the path names the resident).
        Body {
            schema: "ForgetResidentRequest",
            required: &[],
            fields: vec![("resident_id", ignored("居民")), ("reason", reason())],
            condition: None,
        },
        Body {
            schema: "ReviewHoursRequest",
            required: &["order_id", "decision"],
            fields: vec![
                ("volunteer_id", ignored("志愿者")),
                ("order_id", service_key()),
                ("decision", one_of(["confirm", "reject"])),
                ("reason", reason()),
            ],
            // Rejecting says why.
            condition: Some(json!({
                "if": {"properties": {"decision": {"const": "reject"}}},
                "then": {"required": ["reason"], "properties": {"reason": reason_required()}}
            })),
        },
        Body {
            schema: "AdjustHoursRequest",
            required: &["minutes", "reason"],
            fields: vec![
                ("volunteer_id", ignored("志愿者")),
                ("order_id", {
                    let mut key = service_key();
                    key["pattern"] = json!(format!("^({})?$", SERVICE_KEY_BODY));
                    key["description"] = json!("更正的订单；留空为补录（手工添加的时长）");
                    key
                }),
                (
                    "minutes",
                    json!({"type": "integer", "format": "int64", "minimum": -MAX_MINUTES,
                           "maximum": MAX_MINUTES, "not": {"const": 0}}),
                ),
                ("reason", reason_required()),
            ],
            // Hours added by hand are positive.
            condition: Some(json!({
                "if": {"required": ["order_id"], "properties": {"order_id": {"minLength": 1}}},
                "then": {},
                "else": {"properties": {"minutes": {"minimum": 1}}}
            })),
        },
        Body {
            schema: "AddShopItemRequest",
            required: &["item_id", "node_id", "name", "centipoints"],
            fields: vec![
                ("item_id", id()),
                ("node_id", id()),
                ("name", reason_required()),
                (
                    "centipoints",
                    json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_PRICE}),
                ),
                (
                    "stock",
                    json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_STOCK}),
                ),
            ],
            condition: None,
        },
        Body {
            schema: "RestockShopItemRequest",
            required: &["quantity"],
            fields: vec![
                ("item_id", ignored("商品")),
                (
                    "quantity",
                    json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_STOCK}),
                ),
                ("reason", reason()),
            ],
            condition: None,
        },
        Body {
            schema: "ReserveShopItemRequest",
            required: &["quantity"],
            fields: vec![
                ("item_id", ignored("商品")),
                (
                    "quantity",
                    json!({"type": "integer", "format": "int64", "minimum": 1,
                           "maximum": shop::MAX_QUANTITY}),
                ),
            ],
            condition: None,
        },
        Body {
            schema: "HandOverRedemptionRequest",
            required: &["code"],
            fields: vec![
                ("redemption_id", ignored("兑换")),
                ("code", text(1, MAX_CODE_CHARS)),
            ],
            condition: None,
        },
        Body {
            schema: "CancelRedemptionRequest",
            required: &["reason"],
            fields: vec![
                ("redemption_id", ignored("兑换")),
                ("reason", reason_required()),
            ],
            condition: None,
        },
        Body {
            schema: "Location",
            required: &["lat", "lng"],
            fields: vec![
                // diandan serves mainland China (`validate::Location`).
                (
                    "lat",
                    json!({"type": "number", "format": "double", "minimum": 3.8, "maximum": 53.6}),
                ),
                (
                    "lng",
                    json!({"type": "number", "format": "double", "minimum": 73.4, "maximum": 135.1}),
                ),
                ("address", text(0, MAX_SHORT_TEXT_CHARS)),
            ],
            condition: None,
        },
    ]
}

/// Examples of the main requests (the demo district's ids), shown in the document.
fn examples() -> Vec<(&'static str, Value)> {
    vec![
        (
            "LoginRequest",
            json!({"username": "deng.xiaohu", "password": "xianan-2026"}),
        ),
        (
            "DevLoginRequest",
            json!({"role": "station_head", "user_id": "head-dengxiaohu", "org_node": "chezhanlu"}),
        ),
        (
            "PlaceOrderRequest",
            json!({
                "station_id": "chezhanlu",
                "category": "health_environment",
                "description": "永福巷一下雨就积水，希望疏通排水管网。",
                "location": {"lat": 29.8711, "lng": 114.2840, "address": "永福巷 12 号"},
                "contact_phone": "13812345678"
            }),
        ),
        ("TriageOrderRequest", json!({"accept": true})),
        (
            "DispatchOrderRequest",
            json!({"team_id": "audit-bureau", "reason": "需要管网施工力量"}),
        ),
        ("AcceptOrderRequest", json!({"team_id": "audit-bureau"})),
        (
            "CheckInRequest",
            json!({"location": {"lat": 29.8711, "lng": 114.2840}}),
        ),
        (
            "CompleteOrderRequest",
            json!({"note": "铺设管网，增加排水口 2 个"}),
        ),
        (
            "ReviewOrderRequest",
            json!({"rating": 5, "comment": "巷子的变化很满意"}),
        ),
    ]
}

/// Query parameters a request must carry.
const REQUIRED_PARAMETERS: [&str; 1] = ["from_size"];

/// Constraints of query, path and header parameters, by name.
fn parameter(name: &str) -> Option<Value> {
    Some(match name {
        "id" => id(),
        "node_id" => optional_id(),
        "status" => {
            let mut statuses: Vec<&str> = Status::ALL
                .iter()
                .filter(|s| **s != Status::New)
                .map(|s| s.as_str())
                .collect();
            statuses.push(""); // empty: every status
            one_of(statuses)
        }
        "limit" => {
            json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": MAX_PAGE_SIZE})
        }
        "min_position" => json!({"type": "integer", "format": "int64", "minimum": 0}),
        // The audit trail: a held checkpoint's size (at least 1), a newer one's (0: newest).
        "from_size" => json!({"type": "integer", "format": "int64", "minimum": 1}),
        "to_size" | "tree_size" => json!({"type": "integer", "format": "int64", "minimum": 0}),
        "from_day" | "to_day" => optional_day(),
        "category" => {
            let mut codes: Vec<&str> = Category::ALL.iter().map(|c| c.code()).collect();
            codes.push(""); // empty: any category
            one_of(codes)
        }
        "volunteer_id" => optional_id(),
        "min_rating" | "max_rating" => {
            json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 5})
        }
        "after" => {
            json!({"type": "string", "pattern": format!("^(-?[0-9]{{1,19}}\\.[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}})?$")})
        }
        "format" => one_of(["csv", "json", ""]),
        "by" => one_of(["volunteer", "team", ""]),
        "Idempotency-Key" => {
            let max = HEADER_LIMITS
                .iter()
                .find(|(h, _)| *h == "idempotency-key")
                .map_or(128, |(_, max)| *max);
            json!({"type": "string", "pattern": format!("^[!-~]{{1,{max}}}$")})
        }
        _ => return None,
    })
}

/// Applies the contract to a generated document.
pub fn apply(document: &mut Value) {
    let schemas = &mut document["components"]["schemas"];
    for body in bodies() {
        let Some(schema) = schemas.get_mut(body.schema) else {
            panic!(
                "the contract names schema {} that the document lacks",
                body.schema
            );
        };
        let properties = schema["properties"]
            .as_object_mut()
            .unwrap_or_else(|| panic!("{} has no properties", body.schema));
        for (field, constraint) in body.fields {
            let property = properties.get_mut(field).unwrap_or_else(|| {
                panic!(
                    "the contract names {}.{field}, which does not exist",
                    body.schema
                )
            });
            merge(property, constraint);
        }
        schema["required"] = json!(body.required);
        schema["additionalProperties"] = json!(false);
        if let Some(Value::Object(mut condition)) = body.condition {
            // A branch only adds rules; saying so keeps validators that carry the parent's
            // `additionalProperties: false` into subschemas (Redocly's) from misreading it.
            for branch in ["then", "else"] {
                if let Some(b) = condition.get_mut(branch) {
                    b["additionalProperties"] = json!(true);
                }
            }
            schema
                .as_object_mut()
                .expect("a schema object")
                .extend(condition);
        }
    }
    for (schema, example) in examples() {
        schemas[schema]["examples"] = json!([example]);
    }
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for p in parameters {
                let name = p["name"].as_str().unwrap_or_default().to_owned();
                if let Some(constraint) = parameter(&name) {
                    // Declared parameters are plain values, never null.
                    p["schema"] = constraint;
                }
                if REQUIRED_PARAMETERS.contains(&name.as_str()) {
                    p["required"] = json!(true);
                }
            }
        }
    }
}

/// Keeps a property's description; the constraint replaces its type and adds the rest.
fn merge(property: &mut Value, constraint: Value) {
    let description = property.get("description").cloned();
    let mut merged = Map::new();
    if let Some(d) = description {
        merged.insert("description".into(), d);
    }
    if let Value::Object(c) = constraint {
        merged.extend(c);
    }
    *property = Value::Object(merged);
}
