//! The rules the server enforces, written into the OpenAPI document, so that every request the
//! document calls valid is one the server accepts and every answer it can give is listed.
//!
//! The annotations on the handlers describe shapes; what depends on the product (customer id
//! pattern, industries, tiers, data stores, credential types, attribute formats, checklist items,
//! adapters) and what every route shares (the problem responses, the text rules, bounds on query
//! parameters and headers) is added here, to the document as JSON, once per server.

use serde_json::{json, Map, Value};

use crate::domain::attribute::AttributeFormat;
use crate::domain::email::DeliveryStatus;
use crate::domain::signup::{FieldKind, SignupField, SignupStatus, SignupStep};
use crate::domain::values::MAX_CUSTOMER_ID_LEN;
use crate::product::{AttributeKind, Product};

/// Characters free text must not hold (controls, bidirectional controls, invisible ones).
const BAD_TEXT: &str = "\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u180b-\\u180f\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0";

/// Free text shown to operators: some visible character, none of [`BAD_TEXT`].
fn text(max: usize) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": max,
        "pattern": format!("^[^{BAD_TEXT}]*[^\\s{BAD_TEXT}][^{BAD_TEXT}]*$"),
    })
}

/// Optional free text: [`text`], or empty (taken as not given), or null.
fn optional_text(max: usize) -> Value {
    json!({ "anyOf": [text(max), { "type": "string", "maxLength": 0 }, { "type": "null" }] })
}

/// `schema`, or null (an optional field sent as null counts as not given).
fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

/// Any string without a NUL.
fn no_nul() -> Value {
    json!({ "type": "string", "pattern": "^[^\\u0000]*$" })
}

fn enumeration<'a>(values: impl IntoIterator<Item = &'a str>) -> Value {
    let values: Vec<&str> = values.into_iter().collect();
    if values.is_empty() {
        // Nothing is valid; say so rather than describe any string.
        json!({ "type": "string", "enum": [] , "description": "the product defines none" })
    } else {
        json!({ "type": "string", "enum": values })
    }
}

const EMAIL: &str = "^[a-z0-9]{1,16}([._+-][a-z0-9]{1,16}){0,2}@([a-z0-9]{1,20}(-[a-z0-9]{1,20})?\\.){1,4}[a-z]{2,24}$";
const TAG: &str = "^[a-z0-9][a-z0-9_.:-]{0,63}$";
const SCOPE: &str = "^[a-z_]+:[a-z_*]+$";

fn attribute_value(format: &AttributeFormat) -> Value {
    match format {
        AttributeFormat::Text => text(1000),
        AttributeFormat::GoogleAdsCustomerId => {
            json!({ "type": "string", "pattern": "^[0-9]{3}-[0-9]{3}-[0-9]{4}$" })
        }
        AttributeFormat::MetaAdAccountId => {
            json!({ "type": "string", "pattern": "^act_[0-9]{1,20}$" })
        }
        AttributeFormat::Email => json!({ "type": "string", "maxLength": 254, "pattern": EMAIL }),
        AttributeFormat::Country => {
            enumeration(isocountry::CountryCode::iter().map(|c| c.alpha2()))
        }
        AttributeFormat::Timezone => enumeration(chrono_tz::TZ_VARIANTS.iter().map(|t| t.name())),
        AttributeFormat::Url => json!({
            "type": "string",
            "pattern": "^https?://[a-z0-9]+(-[a-z0-9]+)*(\\.[a-z0-9]+(-[a-z0-9]+)*)*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]*)*$",
        }),
        AttributeFormat::Pattern(re) => json!({ "type": "string", "pattern": re.as_str() }),
    }
}

/// The product's attributes as an object schema; `required` lists the required ones.
fn attributes(product: &Product, with_required: bool, nullable: bool) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, def) in &product.attributes {
        let one = attribute_value(&def.format);
        let mut schema = match def.kind {
            AttributeKind::String => one,
            AttributeKind::List => json!({
                "type": "array",
                "items": one,
                "minItems": usize::from(def.required),
                "maxItems": def.max_items,
            }),
        };
        if nullable {
            schema = json!({ "oneOf": [schema, { "type": "null" }] });
        }
        if !def.description.is_empty() {
            schema["description"] = json!(def.description);
        }
        properties.insert(name.clone(), schema);
        if def.required && with_required {
            required.push(name.clone());
        }
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn customer_id(product: &Product) -> Value {
    json!({
        "type": "string",
        "pattern": product.customer_id.pattern(),
        "maxLength": MAX_CUSTOMER_ID_LEN,
    })
}

/// The schema of a parameter, by its name and place.
fn parameter(product: &Product, name: &str, place: &str, path: &str) -> Option<Value> {
    let statuses: Vec<&str> = crate::domain::status::ALL_STATUSES
        .iter()
        .map(|s| s.as_str())
        .collect();
    Some(match (name, place) {
        ("customer_id", "path") => customer_id(product),
        ("industry", _) => enumeration(product.industries.iter().map(|i| i.id.as_str())),
        ("status", "query") if !path.ends_with("/emails") && !path.ends_with("/signups") => {
            let one = format!("({})", statuses.join("|"));
            json!({ "type": "string", "pattern": format!("^(all|{one}(,{one})*)$") })
        }
        ("tag", _) => json!({ "type": "string", "pattern": TAG }),
        ("customer_id", "query") if path.ends_with("/emails") => customer_id(product),
        ("status", "query") if path.ends_with("/emails") => {
            enumeration(DeliveryStatus::ALL.iter().map(|s| s.as_str()))
        }
        ("status", "query") if path.ends_with("/signups") => {
            enumeration(SignupStatus::ALL.iter().map(|s| s.as_str()))
        }
        ("limit", _) if path.ends_with("/emails") || path.ends_with("/signups") => {
            json!({ "type": "integer", "minimum": 1, "maximum": 500 })
        }
        ("cursor", _) if path.ends_with("/signups") => {
            json!({ "type": "string", "pattern": "^[0-9]{1,16}\\.su_[0-9a-f]{32}$" })
        }
        ("signup_id", "query") => json!({ "type": "string", "pattern": "^su_[0-9a-f]{32}$" }),
        ("cursor", _) if path.ends_with("/emails") => {
            json!({ "type": "string", "pattern": "^em_[0-9a-f]{32}$" })
        }
        ("limit", _) => json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
        ("plan", "query") => enumeration(product.catalog.plans.iter().map(|p| p.id.as_str())),
        ("cycle", "query") => enumeration(product.catalog.cycles.iter().map(|c| c.id.as_str())),
        ("within_days", _) => json!({ "type": "integer", "minimum": 0, "maximum": 3650 }),
        ("cursor", _) if path.ends_with("/audit") => {
            json!({ "type": "string", "pattern": "^[0-9]{1,18}$" })
        }
        ("cursor", _) => json!({
            "type": "string",
            "minLength": 2,
            "maxLength": 400,
            "pattern": "^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?$",
        }),
        ("since" | "until", "query") => json!({
            "type": "string",
            "format": "date-time",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$",
        }),
        ("destroy", "query") => enumeration(["true", "false"]),
        ("credential_type", _) => enumeration(product.credentials.keys().map(String::as_str)),
        ("action", "path") => enumeration(["disable", "enable", "destroy"]),
        ("version", "path") => json!({ "type": "integer", "minimum": 1, "maximum": i64::MAX }),
        ("item", "path") => enumeration(product.checklist.iter().map(|c| c.id.as_str())),
        ("adapter", "path") => enumeration(product.adapters.keys().map(String::as_str)),
        ("Idempotency-Key", "header") => {
            json!({ "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$" })
        }
        ("If-Match", "header") => {
            json!({ "type": "string", "pattern": "^(\\*|(W/)?\"?-?[0-9]{1,18}\"?)$" })
        }
        (_, "path" | "query") => no_nul(),
        _ => return None,
    })
}

/// Problem responses every route can give, beside those its annotation lists.
fn shared_responses(op: &Map<String, Value>, public: bool) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![
        ("400", "Malformed request (path not UTF-8, body not JSON)"),
        (
            "422",
            "A parameter or field breaks its rule (named in `errors`)",
        ),
        ("500", "Internal error (logged; no details)"),
        ("503", "A store is busy or unreachable; retry"),
    ];
    if !public {
        out.push(("401", "No token, or not a valid one"));
    }
    if op.contains_key("requestBody") {
        out.push(("413", "Body too large"));
        out.push(("415", "Body not sent as the documented content type"));
    }
    out
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": {
            "schema": { "$ref": "#/components/schemas/Problem" }
        } },
    })
}

fn patch_request_bodies(doc: &mut Value, product: &Product) {
    let schemas = &mut doc["components"]["schemas"];
    let industries = enumeration(product.industries.iter().map(|i| i.id.as_str()));
    let tiers = enumeration(product.tiers.keys().map(String::as_str));
    let stores = enumeration(product.data_stores.keys().map(String::as_str));
    let tags =
        json!({ "type": "array", "items": { "type": "string", "pattern": TAG }, "maxItems": 32 });
    let credentials = {
        let mut properties = Map::new();
        for (name, credential) in &product.credentials {
            let value = match &credential.pattern {
                Some(re) => json!({ "type": "string", "maxLength": 4096, "pattern": re.as_str() }),
                None => text(4096),
            };
            properties.insert(name.clone(), value);
        }
        json!({ "type": "object", "properties": properties, "additionalProperties": false })
    };
    let contact = json!({
        "type": "object",
        "properties": {
            "email": json!({ "anyOf": [
                { "type": "string", "maxLength": 254, "pattern": EMAIL },
                { "type": "string", "maxLength": 0 },
                { "type": "null" },
            ] }),
            "name": optional_text(200),
        },
        "additionalProperties": false,
    });
    // The dataset name holds the id and must stay a valid identifier (63 bytes).
    let room = 63usize.saturating_sub(product.dataset_name.replace("{customer_id}", "").len());
    let mut new_id = customer_id(product);
    new_id["maxLength"] = json!(room.min(MAX_CUSTOMER_ID_LEN));
    schemas["OnboardRequest"] = json!({
        "type": "object",
        "description": schemas["OnboardRequest"]["description"],
        "properties": {
            "customer_id": new_id,
            "customer_name": text(200),
            "industry": industries,
            "data_store": nullable(stores),
            "tags": tags,
            "attributes": attributes(product, true, false),
            "contact": nullable(contact.clone()),
            "created_by": optional_text(200),
            "usage_tier": nullable(tiers.clone()),
            "credentials": credentials,
            "test_clock_id": nullable(json!({ "type": "string", "pattern": TEST_CLOCK_ID })),
        },
        "required": ["customer_id", "customer_name", "industry"],
        "additionalProperties": false,
    });
    let transitions: Vec<&str> = ["active", "paused", "churned"].into();
    schemas["UpdateRequest"] = json!({
        "type": "object",
        "description": schemas["UpdateRequest"]["description"],
        "properties": {
            "customer_name": nullable(text(200)),
            "tags": nullable(tags),
            "attributes": nullable(attributes(product, false, true)),
            "contact": nullable(contact),
            "usage_tier": nullable(tiers.clone()),
            "status": nullable(enumeration(transitions)),
        },
        "additionalProperties": false,
    });
    schemas["IssueKeyRequest"] = json!({
        "type": "object",
        "description": schemas["IssueKeyRequest"]["description"],
        "properties": {
            "name": text(100),
            "scopes": { "type": "array", "items": { "type": "string", "pattern": SCOPE }, "maxItems": 50 },
            "allowed_adapters": { "type": "array", "items": enumeration(product.adapters.keys().map(String::as_str)), "maxItems": 50 },
            "expires_at": { "type": ["string", "null"], "format": "date-time" },
        },
        "required": ["name"],
        "additionalProperties": false,
    });
    schemas["RotateKeyRequest"] = json!({
        "type": "object",
        "description": schemas["RotateKeyRequest"]["description"],
        "properties": {
            "grace_seconds": { "type": "integer", "minimum": 0, "maximum": 604_800 },
        },
        "additionalProperties": false,
    });
    schemas["OffboardRequest"] = json!({
        "type": "object",
        "description": schemas["OffboardRequest"]["description"],
        "properties": {
            "delete_data": { "type": "boolean" },
            "confirm": nullable(no_nul()),
            "reason": optional_text(1000),
            "export": { "type": "boolean" },
        },
        "additionalProperties": false,
        // An export is taken only when the data is deleted.
        "if": { "properties": { "export": { "const": true } }, "required": ["export"] },
        "then": { "properties": { "delete_data": { "const": true } }, "required": ["delete_data"] },
    });
    schemas["ApproveSignup"] = json!({
        "type": "object",
        "description": schemas["ApproveSignup"]["description"],
        "properties": {
            "customer_id": nullable(new_id.clone()),
            "usage_tier": nullable(tiers.clone()),
        },
        "additionalProperties": false,
    });
    schemas["RejectSignup"] = json!({
        "type": "object",
        "description": schemas["RejectSignup"]["description"],
        "properties": { "reason": text(500) },
        "required": ["reason"],
        "additionalProperties": false,
    });
    schemas["VerifyEmail"]["properties"]["code"] =
        json!({ "type": "string", "pattern": "^\\s*[0-9]{6}\\s*$" });
    schemas["VerifyLink"]["properties"]["session_id"] =
        json!({ "type": "string", "pattern": "^su_[0-9a-f]{32}$" });
    schemas["VerifyLink"]["properties"]["token"] = no_nul();
    account_request_bodies(schemas, product);
    schemas["QueryRequest"]["properties"]["sql"]["minLength"] = json!(1);
    schemas["QueryRequest"]["properties"]["sql"]["maxLength"] =
        json!(crate::domain::query::MAX_QUERY_BYTES);
    signup_request_bodies(schemas, product);
    billing_request_bodies(schemas, product);
}

/// A test clock's id.
const TEST_CLOCK_ID: &str = "^tc_[0-9a-f]{32}$";

/// An RFC 3339 time from the year 2000 to 2199, as test clocks take (as a pattern: a schema's
/// `date-time` format cannot bound the year).
fn clock_time() -> Value {
    json!({
        "type": "string",
        "pattern": "^2[01][0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$",
    })
}

/// Trials' and test clocks' bodies, with the product's trial rules (its plans, its days).
fn billing_request_bodies(schemas: &mut Value, product: &Product) {
    let catalog = &product.catalog;
    let plans = enumeration(catalog.plans.iter().map(|p| p.id.as_str()));
    let (min_days, max_days, max_extension_days) =
        catalog.trial.as_ref().map_or((1, 365, 365), |t| {
            (t.min_days, t.max_days, t.max_extension_days)
        });
    schemas["StartTrial"] = json!({
        "type": "object",
        "description": schemas["StartTrial"]["description"],
        "properties": {
            "plan": nullable(plans.clone()),
            "days": nullable(json!({ "type": "integer", "minimum": min_days, "maximum": max_days })),
        },
        "additionalProperties": false,
    });
    schemas["ExtendTrial"] = json!({
        "type": "object",
        "description": schemas["ExtendTrial"]["description"],
        "properties": {
            "days": { "type": "integer", "minimum": 1, "maximum": max_extension_days },
            "reason": text(500),
        },
        "required": ["days", "reason"],
        "additionalProperties": false,
    });
    let cycles = enumeration(catalog.cycles.iter().map(|c| c.id.as_str()));
    let mut currencies: Vec<String> = catalog
        .plans
        .iter()
        .flat_map(|p| p.prices.keys().map(|c| c.to_string()))
        .collect();
    currencies.sort();
    currencies.dedup();
    let currency = enumeration(currencies.iter().map(String::as_str));
    let when = json!({ "type": "string", "enum": ["now", "period_end"] });
    // A product that sells no plans still has a body to describe: any plan id, all refused.
    let plan_required = if catalog.plans.is_empty() {
        json!({ "type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$", "description": "the product sells no plans" })
    } else {
        plans.clone()
    };
    schemas["NewSubscription"] = json!({
        "type": "object",
        "description": schemas["NewSubscription"]["description"],
        "properties": {
            "plan": plan_required,
            "cycle": cycles.clone(),
            "currency": nullable(currency),
        },
        "required": ["plan", "cycle"],
        "additionalProperties": false,
    });
    schemas["ChangeSubscription"] = json!({
        "type": "object",
        "description": schemas["ChangeSubscription"]["description"],
        "properties": {
            "plan": nullable(plans.clone()),
            "cycle": nullable(cycles),
            "when": when.clone(),
        },
        "required": ["when"],
        "additionalProperties": false,
    });
    schemas["CancelSubscription"] = json!({
        "type": "object",
        "description": schemas["CancelSubscription"]["description"],
        "properties": { "when": when },
        "required": ["when"],
        "additionalProperties": false,
    });
    let metric = if catalog.metrics.is_empty() {
        json!({ "type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$", "description": "the product meters nothing" })
    } else {
        enumeration(catalog.metrics.iter().map(|m| m.id.as_str()))
    };
    let amount = json!({ "type": "number", "minimum": 0, "maximum": 9_000_000_000_000u64 });
    schemas["UsageBatch"] = json!({
        "type": "object",
        "description": schemas["UsageBatch"]["description"],
        "properties": {
            "events": {
                "type": "array",
                "minItems": 1,
                "maxItems": crate::services::billing::MAX_BATCH,
                // Each event is answered on its own (a bad one is refused in the 200's
                // results, naming its field), so an event's fields are only typed here.
                "items": {
                    "type": "object",
                    "properties": {
                        "event_id": nullable(no_nul()),
                        "metric": nullable(no_nul()),
                        "value": { "type": ["number", "null"] },
                        "timestamp": nullable(no_nul()),
                        "customer_id": nullable(no_nul()),
                    },
                    "additionalProperties": false,
                },
            },
        },
        "required": ["events"],
        "additionalProperties": false,
    });
    schemas["EntitlementCheck"] = json!({
        "type": "object",
        "description": schemas["EntitlementCheck"]["description"],
        "properties": {
            "customer_id": customer_id(product),
            "metric": metric,
            "amount": nullable(amount),
        },
        "required": ["customer_id", "metric"],
        "additionalProperties": false,
    });
    schemas["NewTestClock"] = json!({
        "type": "object",
        "description": schemas["NewTestClock"]["description"],
        "properties": { "frozen_time": clock_time(), "name": text(100) },
        "required": ["frozen_time", "name"],
        "additionalProperties": false,
    });
    schemas["AdvanceTestClock"] = json!({
        "type": "object",
        "description": schemas["AdvanceTestClock"]["description"],
        "properties": { "to": clock_time() },
        "required": ["to"],
        "additionalProperties": false,
    });
}

/// The portal's bodies: addresses, roles, link tokens and the password rules a schema can state
/// (a new password's other rules, such as not being the account's email, it cannot).
fn account_request_bodies(schemas: &mut Value, product: &Product) {
    use crate::domain::account::{UserRole, MAX_PASSWORD_CHARS};
    let email = json!({ "type": "string", "maxLength": 254, "pattern": EMAIL });
    let password = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_PASSWORD_CHARS,
        "pattern": "^[^\\u0000]*$",
    });
    let new_password = json!({
        "type": "string",
        "minLength": product.accounts.min_password_length,
        "maxLength": MAX_PASSWORD_CHARS,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
    });
    let token = json!({ "type": "string", "pattern": "^onr_ul_[0-9a-f]{64}$" });
    let object = |schemas: &Value, name: &str, properties: Value, required: &[&str]| {
        json!({
            "type": "object",
            "description": schemas[name]["description"],
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    };
    schemas["InviteUser"] = object(
        schemas,
        "InviteUser",
        json!({
            "email": email,
            "role": enumeration(UserRole::ALL.iter().map(|r| r.as_str())),
            "name": optional_text(200),
        }),
        &["email", "role"],
    );
    schemas["LoginRequest"] = object(
        schemas,
        "LoginRequest",
        json!({ "email": email, "password": password }),
        &["email", "password"],
    );
    schemas["ResetRequest"] = object(
        schemas,
        "ResetRequest",
        json!({ "email": email }),
        &["email"],
    );
    schemas["ChangePassword"] = object(
        schemas,
        "ChangePassword",
        json!({ "current_password": password, "new_password": new_password }),
        &["current_password", "new_password"],
    );
    schemas["ResetConfirm"] = object(
        schemas,
        "ResetConfirm",
        json!({ "token": token, "new_password": new_password }),
        &["token", "new_password"],
    );
    schemas["AcceptInvitation"] = object(
        schemas,
        "AcceptInvitation",
        json!({ "token": token, "password": new_password }),
        &["token", "password"],
    );
}

/// One wizard field's answer.
fn signup_answer(field: &SignupField) -> Value {
    let schema = match &field.kind {
        FieldKind::Text { min, max } => {
            let mut t = text(*max);
            t["minLength"] = json!(min);
            t
        }
        FieldKind::Format { format, .. } => attribute_value(format),
        FieldKind::Choice {
            options,
            multiple: false,
        } => enumeration(options.iter().map(String::as_str)),
        FieldKind::Choice {
            options,
            multiple: true,
        } => json!({
            "type": "array",
            "items": enumeration(options.iter().map(String::as_str)),
            "uniqueItems": true,
            "minItems": usize::from(field.required),
        }),
        FieldKind::Boolean => json!({ "type": "boolean" }),
    };
    if field.required {
        schema
    } else {
        nullable(schema)
    }
}

/// The answers one step takes: its fields, the required ones required, no others.
fn signup_step_data(step: &SignupStep, only: Option<&[&str]>) -> (Map<String, Value>, Vec<String>) {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in &step.fields {
        if only.is_some_and(|names| !names.contains(&field.name.as_str())) {
            continue;
        }
        properties.insert(field.name.clone(), signup_answer(field));
        if field.required {
            required.push(field.name.clone());
        }
    }
    (properties, required)
}

/// The signup requests, from the product's wizard: what a session starts with (its first step's
/// email, company name and template) and, for each step, the answers it takes. Without a wizard
/// every request is refused with 404 `signup_closed`, so only the shape is stated.
fn signup_request_bodies(schemas: &mut Value, product: &Product) {
    match product.signup.as_ref().filter(|w| w.enabled) {
        None => {
            let answer = json!({ "anyOf": [
                no_nul(), { "type": "boolean" }, { "type": "null" },
                { "type": "array", "items": no_nul() },
            ] });
            schemas["StartSignup"] = json!({
                "type": "object",
                "description": schemas["StartSignup"]["description"],
                "properties": { "email": no_nul(), "company_name": no_nul(), "template": nullable(no_nul()) },
                "required": ["email", "company_name"],
                "additionalProperties": false,
            });
            schemas["StepSubmission"] = json!({
                "type": "object",
                "description": schemas["StepSubmission"]["description"],
                "properties": {
                    "step": no_nul(),
                    "data": {
                        "type": "object",
                        "propertyNames": { "type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$" },
                        "additionalProperties": answer,
                    },
                },
                "required": ["step", "data"],
                "additionalProperties": false,
            });
        }
        Some(wizard) => {
            let (properties, required) = signup_step_data(
                &wizard.steps[0],
                Some(&["email", "company_name", "template"]),
            );
            schemas["StartSignup"] = json!({
                "type": "object",
                "description": schemas["StartSignup"]["description"],
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            });
            let steps: Vec<Value> = wizard
                .steps
                .iter()
                .map(|step| {
                    let (properties, required) = signup_step_data(step, None);
                    json!({
                        "type": "object",
                        "properties": {
                            "step": { "const": step.id },
                            "data": {
                                "type": "object",
                                "properties": properties,
                                "required": required,
                                "additionalProperties": false,
                            },
                        },
                        "required": ["step", "data"],
                        "additionalProperties": false,
                    })
                })
                .collect();
            schemas["StepSubmission"] = json!({
                "description": schemas["StepSubmission"]["description"],
                "oneOf": steps,
            });
        }
    }
}

/// The document, with the product's and the server's rules written in.
pub fn apply(doc: &mut Value, product: &Product) {
    let paths: Vec<String> = doc["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for path in paths {
        let public = path == "/health";
        let Some(ops) = doc["paths"][&path].as_object_mut() else {
            continue;
        };
        for (_, op) in ops.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for p in params.iter_mut() {
                    let name = p["name"].as_str().unwrap_or_default().to_owned();
                    let place = p["in"].as_str().unwrap_or_default().to_owned();
                    if let Some(schema) = parameter(product, &name, &place, &path) {
                        p["schema"] = if place == "query" {
                            // A parameter given with no value counts as not given.
                            json!({ "anyOf": [schema, { "type": "string", "maxLength": 0 }] })
                        } else {
                            schema
                        };
                    }
                }
            }
            for (status, description) in shared_responses(op, public) {
                let responses = op
                    .entry("responses")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("responses are an object");
                if !responses.contains_key(status) {
                    responses.insert(status.to_owned(), problem_response(description));
                }
            }
        }
    }
    patch_request_bodies(doc, product);
}
