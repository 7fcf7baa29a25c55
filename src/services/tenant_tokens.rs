//! Token exchange (seed 003's `/api/auth/token/integration`): an integration key buys a
//! short-lived HS256 JWT naming the customer, the key and its scopes. Tenant routes accept only
//! such tokens, signed with a key derived from `KEY_HASH_SECRET`; any other algorithm (`none`
//! included), key, issuer or an expired token is refused.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::keys::{IntegrationKeys, KeyError};
use super::Actor;
use crate::domain::{CustomerStatus, Role};

/// How long an access token lives.
pub const TOKEN_TTL_SECONDS: i64 = 900;
const ISSUER: &str = "onramp";
const SIGNING_LABEL: &str = "onramp/tenant-jwt/v1";

/// The answer to a token exchange.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenGrant {
    /// The JWT, for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// Its scopes, space-separated.
    pub scope: String,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenGrant([redacted], scope: {})", self.scope)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    key_id: String,
    scope: String,
    adapters: Vec<String>,
    /// Which of the key's secrets bought the token (see `keys::secret_tag`).
    #[serde(default)]
    kv: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// A customer acting through an access token.
#[derive(Debug, Clone)]
pub struct TenantPrincipal {
    /// The customer.
    pub customer_id: String,
    /// The integration key the token came from.
    pub key_id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its adapters.
    pub adapters: Vec<String>,
    /// Which of the key's secrets the token came from.
    pub key_version: String,
}

impl TenantPrincipal {
    /// The actor the event log names for this token.
    pub fn actor(&self) -> Actor {
        Actor {
            name: format!("key:{}", self.key_id),
            role: Role::Viewer,
            request_id: None,
        }
    }
}

/// The customer as its own token sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeView {
    /// The customer.
    pub customer_id: String,
    /// Its name.
    pub customer_name: String,
    /// Its status.
    pub status: CustomerStatus,
    /// The key behind the token.
    pub key_id: String,
    /// The token's scopes.
    pub scopes: Vec<String>,
    /// The token's adapters.
    pub allowed_adapters: Vec<String>,
}

impl IntegrationKeys {
    fn signing_key(&self) -> zeroize::Zeroizing<Vec<u8>> {
        self.hash.derive(SIGNING_LABEL)
    }

    /// Exchanges an integration key for an access token.
    #[tracing::instrument(skip_all, level = "debug")]
    pub async fn exchange(&self, presented: &str) -> Result<TokenGrant, KeyError> {
        let key = self.verify(presented).await?;
        let customer = self.customer(&key.customer_id).await?;
        if matches!(
            customer.status,
            CustomerStatus::Deleted | CustomerStatus::Inactive
        ) {
            return Err(KeyError::BadKey);
        }
        let now = self.clock.now().timestamp();
        let scope = key.scopes.join(" ");
        let claims = Claims {
            iss: ISSUER.into(),
            sub: key.customer_id.clone(),
            key_id: key.key_id.clone(),
            scope: scope.clone(),
            adapters: key.allowed_adapters.clone(),
            kv: key.secret_tag.clone(),
            iat: now,
            exp: now + TOKEN_TTL_SECONDS,
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.signing_key()),
        )
        .map_err(|e| KeyError::Internal(format!("cannot sign a token: {e}")))?;
        tracing::info!(customer_id = %key.customer_id, key_id = %key.key_id, "integration key exchanged for a token");
        Ok(TokenGrant {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: TOKEN_TTL_SECONDS,
            scope,
        })
    }

    /// Checks an access token: HS256 only, our key, our issuer, not expired.
    pub fn authenticate(&self, token: &str) -> Result<TenantPrincipal, KeyError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        let data = decode::<Claims>(
            token,
            &DecodingKey::from_secret(&self.signing_key()),
            &validation,
        )
        .map_err(|_| KeyError::BadToken)?;
        let c = data.claims;
        Ok(TenantPrincipal {
            customer_id: c.sub,
            key_id: c.key_id,
            scopes: c.scope.split_whitespace().map(str::to_owned).collect(),
            adapters: c.adapters,
            key_version: c.kv,
        })
    }

    /// The customer behind a token.
    #[tracing::instrument(skip_all, level = "debug")]
    pub async fn me(&self, p: &TenantPrincipal) -> Result<MeView, KeyError> {
        let c = self.customer(&p.customer_id).await?;
        Ok(MeView {
            customer_id: c.id.to_string(),
            customer_name: c.name.as_str().to_owned(),
            status: c.status,
            key_id: p.key_id.clone(),
            scopes: p.scopes.clone(),
            allowed_adapters: p.adapters.clone(),
        })
    }
}
