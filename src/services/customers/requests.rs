//! What callers send to the registry and what it answers, and the checks requests share.

use super::*;

/// The most customers one page may hold.
pub const MAX_PAGE: u32 = 1000;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 50;

/// A customer's contact, as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// Primary contact email.
    pub email: Option<String>,
    /// Primary contact name.
    pub name: Option<String>,
}

/// An optional nested object, refusing the array form serde would otherwise accept for a
/// struct (`[null, null]` for `{"email": null, "name": null}`).
pub(super) fn object_only<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)? {
        None => Ok(None),
        Some(map) => serde_json::from_value(serde_json::Value::Object(map))
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// A request to onboard a customer: the GrowthNav `OnboardingRequest`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardRequest {
    /// Unique id, by the product's pattern (`acme_corp`).
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Display name (`Acme Corporation`).
    #[serde(default)]
    pub customer_name: Option<String>,
    /// One of the product's industries (`GET /api/v1/industries`).
    #[serde(default)]
    pub industry: Option<String>,
    /// Where the dataset lives; the product's `default` store when absent.
    #[serde(default)]
    pub data_store: Option<String>,
    /// Classification tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Product-defined fields, such as `google_ads_customer_ids` and `meta_ad_account_ids`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Primary contact.
    #[serde(default, deserialize_with = "object_only")]
    pub contact: Option<ContactInput>,
    /// Who asked for this onboarding.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Product tier; the product's default tier when absent.
    #[serde(default)]
    pub usage_tier: Option<String>,
    /// Credentials to keep in the vault, by the product's credential types
    /// (`{"meta_access_token": "EAAG..."}`); stored by the run's `store_credentials` step and
    /// never returned.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub credentials: std::collections::BTreeMap<String, crate::services::credentials::SecretInput>,
    /// A test clock (`POST /api/v1/test-clocks`) whose time the customer's billing follows
    /// (trials, renewals); refused in production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_clock_id: Option<String>,
}

/// A change to a customer: only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// New display name.
    pub customer_name: Option<String>,
    /// New tags, replacing the old ones.
    pub tags: Option<Vec<String>>,
    /// Attributes to set; an attribute set to null is removed.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// New contact, replacing the old one.
    #[serde(default, deserialize_with = "object_only")]
    pub contact: Option<ContactInput>,
    /// New usage tier.
    pub usage_tier: Option<String>,
    /// New status, through the status machine.
    pub status: Option<String>,
}

/// A request to offboard a customer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OffboardRequest {
    /// Remove the customer's data too, leaving a `deleted` tombstone. Needs `confirm`.
    #[serde(default)]
    pub delete_data: bool,
    /// Must equal the customer id when `delete_data` is true.
    pub confirm: Option<String>,
    /// Why, for the audit log.
    pub reason: Option<String>,
    /// Export the dataset (tables as JSON Lines, and a manifest with row counts and SHA-256
    /// checksums) before deleting it.
    #[serde(default)]
    pub export: bool,
}

/// What offboarding did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OffboardResult {
    /// The customer after offboarding.
    pub customer: CustomerView,
    /// Whether data was removed.
    pub data_deleted: bool,
    /// What was removed, when and by whom (also recorded as an event), when data was removed.
    pub receipt: Option<crate::services::datasets::DeletionReceipt>,
}

/// Filters for listing customers.
#[derive(Debug, Clone, Default, Deserialize, IntoParams, JsonSchema)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A status (`pending`, `active`, `paused`, `churned`, `inactive`, `deleted`, `failed`),
    /// several separated by commas, or `all`. Default: `active`.
    pub status: Option<String>,
    /// Only this industry.
    pub industry: Option<String>,
    /// Only customers with this tag.
    pub tag: Option<String>,
    /// Only names containing this text, in any case.
    pub q: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// An onboarding's answer, and whether it is the replay of an earlier request.
#[derive(Debug, Clone)]
pub struct Onboarded {
    /// The answer.
    pub response: OnboardResponse,
    /// True when an `Idempotency-Key` matched an earlier request.
    pub replayed: bool,
}

pub(super) fn check_idempotency_key(key: &str) -> Result<(), CustomerError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
        .at("Idempotency-Key")
        .into());
    }
    Ok(())
}

pub(super) fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match crate::domain::text::display_text(field, value?, max, false) {
        Ok(v) if v.is_empty() => None,
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(e.at(field));
            None
        }
    }
}

pub(super) fn parse_contact(input: Option<&ContactInput>, errors: &mut Vec<FieldError>) -> Contact {
    let Some(input) = input else {
        return Contact::default();
    };
    let email = match input
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(e) => Email::parse(e)
            .map_err(|x| errors.push(x.at("contact.email")))
            .ok(),
        None => None,
    };
    Contact {
        email,
        name: optional_text("contact.name", input.name.as_deref(), 200, errors),
    }
}

pub(super) fn collect<T>(
    result: Result<T, Invalid>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    result.map_err(|e| errors.push(e.at(field))).ok()
}

pub(super) fn required(
    field: &str,
    value: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value {
        Some(v) => Some(v.to_owned()),
        None => {
            errors.push(Invalid::new("required", format!("{field} is required")).at(field));
            None
        }
    }
}
