//! Tool results as the MCP specification wants them: `structuredContent` is always a JSON
//! object, described by the tool's declared `outputSchema`.
//!
//! The schemas come from the same `utoipa` descriptions that `/openapi.json` publishes, so a
//! tool and the matching API route promise one shape. OpenAPI 3.1 schemas are JSON Schema
//! 2020-12; only their references move, from `#/components/schemas/X` to `#/$defs/X`, with the
//! referenced definitions carried inside each tool's schema.

use std::sync::Arc;

use rmcp::model::JsonObject;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// The JSON Schema of `T` with every definition it refers to under `$defs`.
fn schema_of<T: ToSchema>() -> (Value, Map<String, Value>) {
    let mut dependencies = Vec::new();
    T::schemas(&mut dependencies);
    let mut defs = Map::new();
    for (name, schema) in dependencies {
        let mut schema = serde_json::to_value(schema).expect("schemas serialise");
        move_refs(&mut schema);
        defs.insert(name, schema);
    }
    let mut root = serde_json::to_value(T::schema()).expect("schemas serialise");
    move_refs(&mut root);
    (root, defs)
}

fn move_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/components/schemas/") {
                    *r = format!("#/$defs/{name}");
                }
            }
            map.values_mut().for_each(move_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(move_refs),
        _ => {}
    }
}

fn finish(mut root: Value, defs: Map<String, Value>) -> Arc<JsonObject> {
    if !defs.is_empty() {
        root["$defs"] = Value::Object(defs);
    }
    match root {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("tool output schemas are objects"),
    }
}

/// A result that is a `T` object itself.
pub fn object<T: ToSchema>() -> Arc<JsonObject> {
    let (root, defs) = schema_of::<T>();
    finish(root, defs)
}

/// A list of `T`, as `{"items": [...]}`.
pub fn items<T: ToSchema>() -> Arc<JsonObject> {
    let (item, defs) = schema_of::<T>();
    finish(
        json!({
            "type": "object",
            "properties": { "items": { "type": "array", "items": item } },
            "required": ["items"],
        }),
        defs,
    )
}

/// A `T` that may be missing, as `{"<key>": T | null}`.
pub fn optional<T: ToSchema>(key: &str) -> Arc<JsonObject> {
    let (inner, defs) = schema_of::<T>();
    finish(
        json!({
            "type": "object",
            "properties": { key: { "oneOf": [inner, { "type": "null" }] } },
            "required": [key],
        }),
        defs,
    )
}
