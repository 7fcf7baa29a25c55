//! The vault's requests and answers: values travel only inside `SecretString`s that never
//! print.

use super::*;

/// A secret in a request: never printed, serialized only as its fingerprint.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretInput(pub SecretString);

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for SecretInput {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fingerprint(self.0.expose_secret().as_bytes()))
    }
}

impl JsonSchema for SecretInput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretInput".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// A credential value to store.
#[derive(Debug, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCredential {
    /// The secret value. Stored encrypted; never returned by this call or any listing.
    #[schema(value_type = String)]
    #[schemars(with = "String")]
    pub value: SecretString,
    /// The scopes the credential was granted, when known (checked against the type's required
    /// and forbidden scopes).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// A stored credential, without its value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CredentialView {
    /// The customer.
    pub customer_id: String,
    /// The credential type.
    pub credential_type: String,
    /// `{product}-{customer_id}-{type}`.
    pub display_name: String,
    /// `unvalidated`, `active`, `invalid`, `expired` or `revoked`.
    pub status: CredentialStatus,
    /// The version reads return (the newest enabled one); null when none is enabled.
    pub current_version: Option<i64>,
    /// The current version's fingerprint: tells values apart without showing them.
    pub fingerprint: Option<String>,
    /// Scopes declared at write time or reported by the last check.
    pub scopes: Option<Vec<String>>,
    /// When the provider last accepted or refused it.
    pub last_validated_at: Option<DateTime<Utc>>,
    /// Why the last check did not pass.
    pub validation_error: Option<String>,
    /// When the provider says it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it should be rotated (the type's rotation period after the last write).
    pub rotate_by: Option<DateTime<Utc>>,
    /// First write.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A customer's credentials, and the required types it lacks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CredentialList {
    /// Stored credentials, by type.
    pub items: Vec<CredentialView>,
    /// Types the product requires that have no readable version.
    pub missing_required: Vec<String>,
}

/// One version of a credential, without its value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    /// 1, 2, ...
    pub version: i64,
    /// `enabled`, `disabled` or `destroyed`.
    pub state: VersionState,
    /// Whether reads return this version.
    pub current: bool,
    /// Its fingerprint.
    pub fingerprint: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Who wrote it.
    pub created_by: String,
    /// When its state last changed.
    pub state_changed_at: DateTime<Utc>,
}

/// A credential's value, for the admin who asked for it.
#[derive(Serialize, ToSchema)]
pub struct CredentialValue {
    /// The customer.
    pub customer_id: String,
    /// The credential type.
    pub credential_type: String,
    /// The version read.
    pub version: i64,
    /// The secret.
    #[schema(value_type = String)]
    #[serde(serialize_with = "expose")]
    pub value: SecretString,
}

fn expose<S: serde::Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.expose_secret())
}

impl std::fmt::Debug for CredentialValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CredentialValue({}/{} v{}, [redacted])",
            self.customer_id, self.credential_type, self.version
        )
    }
}

/// What can be done to one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionAction {
    /// Make it unreadable, keeping it.
    Disable,
    /// Make it readable again.
    Enable,
    /// Erase its value for good.
    Destroy,
}

impl std::str::FromStr for VersionAction {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "disable" => Ok(Self::Disable),
            "enable" => Ok(Self::Enable),
            "destroy" => Ok(Self::Destroy),
            _ => Err(Invalid::new(
                "unknown_action",
                format!("unknown action '{s}': expected disable, enable or destroy"),
            )),
        }
    }
}
