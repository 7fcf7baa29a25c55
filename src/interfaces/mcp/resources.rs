//! The MCP resources: `industries://list`, `plans://list`, and per customer `customer://{customer_id}/config`
//! (its resolved configuration) and `customer://{customer_id}/onboarding` (its latest run and
//! checklist). Each is JSON.

use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use rmcp::ErrorData;
use serde_json::json;

use crate::interfaces::problem::Problem;
use crate::services::{Actor, ErrorKind, ServiceError, Services};

const JSON: &str = "application/json";

/// The fixed resources.
pub fn list() -> Vec<Resource> {
    vec![
        Resource::new("industries://list", "industries")
            .with_title("Industries")
            .with_description("The product's industries: id, name and what belongs in each.")
            .with_mime_type(JSON),
        Resource::new("plans://list", "plans")
            .with_title("Plans")
            .with_description(
                "The product's plans (prices per currency and cycle, limits per metric, null for \
                 unlimited), its metrics and its trial's rules.",
            )
            .with_mime_type(JSON),
    ]
}

/// The per-customer resources.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("customer://{customer_id}/config", "customer-config")
            .with_title("Customer configuration")
            .with_description(
                "A customer's resolved configuration: dataset id, data store, tier, tables with \
                 their schema version, attributes and checklist state.",
            )
            .with_mime_type(JSON),
        ResourceTemplate::new("customer://{customer_id}/onboarding", "customer-onboarding")
            .with_title("Customer onboarding")
            .with_description("A customer's latest onboarding run, every step, and its checklist.")
            .with_mime_type(JSON),
    ]
}

fn not_found(uri: &str, detail: String, problem: Option<&Problem>) -> ErrorData {
    ErrorData::resource_not_found(detail, Some(json!({"uri": uri, "problem": problem})))
}

fn refused(uri: &str, e: &ServiceError) -> ErrorData {
    let problem = Problem::from(e);
    match e {
        _ if e.kind() == ErrorKind::NotFound => {
            not_found(uri, problem.detail.clone(), Some(&problem))
        }
        _ if problem.status >= 500 => {
            ErrorData::internal_error(problem.detail.clone(), Some(json!({"problem": problem})))
        }
        _ => ErrorData::invalid_params(problem.detail.clone(), Some(json!({"problem": problem}))),
    }
}

/// Reads one resource.
pub async fn read(
    services: &Services,
    actor: &Actor,
    uri: &str,
) -> Result<ReadResourceResult, ErrorData> {
    let value = if uri == "industries://list" {
        json!({"items": services.product.industries})
    } else if uri == "plans://list" {
        to_value(uri, services.billing.plans(actor))?
    } else if let Some(rest) = uri.strip_prefix("customer://") {
        match rest.rsplit_once('/') {
            Some((id, "config")) if !id.is_empty() => services
                .customers
                .config(actor, id)
                .await
                .map_err(|e| refused(uri, &e.into()))
                .and_then(|c| to_value(uri, c))?,
            Some((id, "onboarding")) if !id.is_empty() => services
                .onboarding
                .status(actor, id)
                .await
                .map_err(|e| refused(uri, &e.into()))
                .and_then(|c| to_value(uri, c))?,
            _ => {
                return Err(not_found(
                    uri,
                    format!("no resource '{uri}': customer resources are customer://{{customer_id}}/config and customer://{{customer_id}}/onboarding"),
                    None,
                ))
            }
        }
    } else {
        return Err(not_found(
            uri,
            format!("no resource '{uri}': see resources/list and resources/templates/list"),
            None,
        ));
    };
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    Ok(ReadResourceResult::new(vec![ResourceContents::text(
        text, uri,
    )
    .with_mime_type(JSON)]))
}

fn to_value<T: serde::Serialize>(uri: &str, v: T) -> Result<serde_json::Value, ErrorData> {
    serde_json::to_value(v).map_err(|e| {
        tracing::error!(error = %e, uri, "cannot serialize a resource");
        ErrorData::internal_error("an internal error occurred; it has been logged", None)
    })
}
