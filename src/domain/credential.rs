//! Stored credentials: the status of a customer's credential of one type, and the state of each
//! of its versions.

use serde::{Deserialize, Serialize};

use super::Invalid;

/// Whether a credential works, as far as Onramp knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    /// Written, not checked yet.
    Unvalidated,
    /// The provider accepted it with the scopes it needs.
    Active,
    /// The provider refused it, or its scopes are wrong.
    Invalid,
    /// The provider says it has expired.
    Expired,
    /// Revoked: no version can be read.
    Revoked,
}

impl CredentialStatus {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unvalidated => "unvalidated",
            Self::Active => "active",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        [
            Self::Unvalidated,
            Self::Active,
            Self::Invalid,
            Self::Expired,
            Self::Revoked,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| Invalid::new("unknown_status", format!("unknown credential status '{s}'")))
    }
}

/// Whether a version can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// Readable; the newest enabled version is the current one.
    Enabled,
    /// Kept, but not readable until enabled again.
    Disabled,
    /// Its value is gone for good.
    Destroyed,
}

impl VersionState {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Destroyed => "destroyed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        [Self::Enabled, Self::Disabled, Self::Destroyed]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| Invalid::new("unknown_state", format!("unknown version state '{s}'")))
    }

    /// Whether a version may move from this state to `to`.
    pub fn can_become(self, to: VersionState) -> bool {
        !matches!(self, VersionState::Destroyed) && self != to
    }
}

/// A short digest that tells two values apart without revealing either: `sha256:` and the first
/// 16 hex digits of the value's SHA-256.
pub fn fingerprint(value: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(value);
    format!("sha256:{}", &hex::encode(digest)[..16])
}

/// The seed's secret name for a credential: `{product}-{customer_id}-{type}`.
pub fn display_name(product: &str, customer_id: &str, credential_type: &str) -> String {
    format!(
        "{}-{customer_id}-{credential_type}",
        product.to_ascii_lowercase().replace(' ', "-")
    )
}
