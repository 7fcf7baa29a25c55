//! The live check of a credential against its provider's endpoint.

use super::*;

/// Outcome of asking the provider.
struct CheckOutcome {
    status: CredentialStatus,
    error: Option<String>,
    scopes: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
    reached: bool,
}

pub(super) fn scope_problems(t: &CredentialType, scopes: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for f in t.forbidden_scopes.iter().filter(|f| scopes.contains(f)) {
        problems.push(format!("has the forbidden scope '{f}'"));
    }
    for r in t.required_scopes.iter().filter(|r| !scopes.contains(r)) {
        problems.push(format!("lacks the required scope '{r}'"));
    }
    problems
}

fn pointer_scopes(body: &serde_json::Value, pointer: &str) -> Option<Vec<String>> {
    match body.pointer(pointer)? {
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
        ),
        serde_json::Value::String(s) => Some(
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

fn pointer_time(body: &serde_json::Value, pointer: &str) -> Option<DateTime<Utc>> {
    match body.pointer(pointer)? {
        serde_json::Value::Number(n) => n.as_i64().and_then(|s| DateTime::from_timestamp(s, 0)),
        serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

impl Vault {
    async fn ask_provider(
        &self,
        t: &CredentialType,
        check: &CredentialCheck,
        value: &str,
    ) -> CheckOutcome {
        let unreachable = |why: String| CheckOutcome {
            status: CredentialStatus::Unvalidated,
            error: Some(why),
            scopes: None,
            expires_at: None,
            reached: false,
        };
        let header = format!("{}{}", check.prefix, value);
        let response = self
            .http
            .get(check.url.clone())
            .header(check.header.as_str(), header)
            .timeout(std::time::Duration::from_millis(check.timeout_ms))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("the provider did not answer within {} ms", check.timeout_ms)
                } else {
                    "the provider could not be reached".to_owned()
                };
                return unreachable(why);
            }
        };
        let status = response.status();
        if status.is_server_error() {
            return unreachable(format!("the provider failed (HTTP {})", status.as_u16()));
        }
        if !status.is_success() {
            return CheckOutcome {
                status: CredentialStatus::Invalid,
                error: Some(format!(
                    "the provider refused the credential (HTTP {})",
                    status.as_u16()
                )),
                scopes: None,
                expires_at: None,
                reached: true,
            };
        }
        let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        let scopes = check
            .scopes_pointer
            .as_deref()
            .and_then(|p| pointer_scopes(&body, p));
        let expires_at = check
            .expires_at_pointer
            .as_deref()
            .and_then(|p| pointer_time(&body, p));
        let mut problems = Vec::new();
        if check.scopes_pointer.is_some() {
            match &scopes {
                Some(s) => problems.extend(scope_problems(t, s)),
                None => problems.push("the provider did not report its scopes".to_owned()),
            }
        }
        let now = self.clock.now();
        let (status, error) = if expires_at.is_some_and(|e| e <= now) {
            (
                CredentialStatus::Expired,
                Some("the provider says the credential has expired".to_owned()),
            )
        } else if problems.is_empty() {
            (CredentialStatus::Active, None)
        } else {
            (
                CredentialStatus::Invalid,
                Some(format!("the credential {}", problems.join(" and "))),
            )
        };
        CheckOutcome {
            status,
            error,
            scopes,
            expires_at,
            reached: true,
        }
    }

    /// Asks the provider's check endpoint whether the current value works, and records the
    /// outcome, the scopes it reports and when.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn validate(
        &self,
        actor: &Actor,
        customer_id: &str,
        credential_type: &str,
    ) -> Result<CredentialView, VaultError> {
        actor.may(Role::Operator)?;
        let customer = &self.live_customer(customer_id).await?.id;
        let t = self.credential_type(credential_type)?;
        let Some(check) = &t.check else {
            return Err(Invalid::new(
                "no_check_configured",
                format!("the product configures no check endpoint for {credential_type} credentials ([credentials.{credential_type}.check])"),
            )
            .at("credential_type")
            .into());
        };
        let (mut record, versions) = self.load_credential(customer, credential_type).await?;
        let v = Self::current_version(&record, &versions)?;
        let plain = self.open_version(v)?;
        let value = Zeroizing::new(
            String::from_utf8(plain.to_vec())
                .map_err(|_| VaultError::Unreadable(credential_type.to_owned()))?,
        );
        let outcome = self.ask_provider(t, check, &value).await;
        let now = self.clock.now();
        if outcome.reached {
            record.status = outcome.status;
            record.last_validated_at = Some(now);
            if outcome.scopes.is_some() {
                record.scopes = outcome.scopes.clone();
            }
            record.expires_at = outcome.expires_at.or(record.expires_at);
        }
        record.validation_error = outcome.error.clone();
        record.updated_at = now;
        let event = self.credential_event(
            actor,
            customer_id,
            EventBody::CredentialValidated(CredentialValidated {
                credential_type: credential_type.to_owned(),
                version: v.version,
                reached_provider: outcome.reached,
                status: record.status,
                scopes: outcome.scopes.clone(),
                error: outcome.error.clone(),
            }),
            now,
        );
        self.store
            .save_credential(&record, None, &[], vec![event])
            .await?;
        Ok(self.view(&record, &versions))
    }
}
