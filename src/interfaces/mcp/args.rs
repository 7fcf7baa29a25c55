//! Tool arguments: checked against the tool's input schema (unknown and missing fields), then
//! deserialized with the path of any bad value, so a refusal names the field and the rule the
//! way the HTTP API's validation errors do.

use rmcp::model::JsonObject;
use serde::de::DeserializeOwned;

use crate::domain::{FieldError, Invalid};

/// Parses `arguments` into `T`, or lists every field that is unknown, missing or of the wrong
/// type.
pub fn parse<T: DeserializeOwned>(
    schema: &JsonObject,
    arguments: JsonObject,
) -> Result<T, Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Some(field) =
        crate::domain::text::nul_path(&serde_json::Value::Object(arguments.clone()))
    {
        return Err(vec![Invalid::new(
            "nul_character",
            "must not contain a NUL character",
        )
        .at(field)]);
    }
    let properties = schema.get("properties").and_then(|p| p.as_object());
    for key in arguments.keys() {
        if !properties.is_some_and(|p| p.contains_key(key)) {
            let mut allowed: Vec<&str> = properties
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            allowed.sort_unstable();
            errors.push(
                Invalid::new(
                    "unknown_field",
                    format!(
                        "unknown argument '{key}'; this tool takes {}",
                        if allowed.is_empty() {
                            "no arguments".to_owned()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                )
                .at(key.clone()),
            );
        }
    }
    let required = schema
        .get("required")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str());
    for field in required {
        if arguments.get(field).is_none_or(|v| v.is_null()) {
            errors.push(Invalid::new("required", format!("{field} is required")).at(field));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    deserialize(arguments)
}

fn deserialize<T: DeserializeOwned>(arguments: JsonObject) -> Result<T, Vec<FieldError>> {
    serde_path_to_error::deserialize(serde_json::Value::Object(arguments)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        vec![Invalid::new("invalid_type", e.into_inner().to_string()).at(field)]
    })
}

/// Parses arguments whose schema is `A`'s fields and `B`'s fields side by side (a tool's own
/// arguments next to a service request): each part is deserialized on its own, so a bad value's
/// path is named in either.
pub fn parse_pair<A, B>(
    schema: &JsonObject,
    arguments: JsonObject,
) -> Result<(A, B), Vec<FieldError>>
where
    A: DeserializeOwned + schemars::JsonSchema + std::any::Any,
    B: DeserializeOwned,
{
    let whole: JsonObject = parse(schema, arguments)?;
    let own_schema = rmcp::handler::server::common::schema_for_type::<A>();
    let own_keys = own_schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let (own, rest): (JsonObject, JsonObject) =
        whole.into_iter().partition(|(k, _)| own_keys.contains(k));
    let a = deserialize(own);
    let b = deserialize(rest);
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(a.err().into_iter().chain(b.err()).flatten().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Args {
        customer_id: String,
        tags: Option<Vec<String>>,
        limit: Option<u32>,
    }

    fn schema() -> JsonObject {
        rmcp::handler::server::common::schema_for_type::<Args>()
            .as_ref()
            .clone()
    }

    fn obj(v: serde_json::Value) -> JsonObject {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn accepts_good_arguments() {
        let a: Args = parse(&schema(), obj(json!({"customer_id": "acme", "limit": 3}))).unwrap();
        assert_eq!(a.customer_id, "acme");
        assert_eq!(a.limit, Some(3));
    }

    #[test]
    fn names_unknown_and_missing_fields_together() {
        let errors = parse::<Args>(&schema(), obj(json!({"customer": "acme"}))).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            fields,
            vec![("customer", "unknown_field"), ("customer_id", "required")]
        );
        assert!(errors[0].message.contains("customer_id, limit, tags"));
    }

    #[test]
    fn names_the_path_of_a_value_of_the_wrong_type() {
        let errors = parse::<Args>(
            &schema(),
            obj(json!({"customer_id": "acme", "tags": ["a", 5]})),
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "tags[1]");
        assert_eq!(errors[0].code, "invalid_type");
        assert!(errors[0].message.contains("expected a string"));
    }

    #[test]
    fn a_null_required_field_is_missing() {
        let errors = parse::<Args>(&schema(), obj(json!({"customer_id": null}))).unwrap_err();
        assert_eq!(errors[0].field, "customer_id");
        assert_eq!(errors[0].code, "required");
    }
}
