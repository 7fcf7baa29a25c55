//! Row types shared by both backends, and their conversion into domain types.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use std::collections::BTreeMap;

use super::{AdminTokenRecord, IdempotencyRecord, StoreError};
use crate::domain::{
    AttributeValue, Contact, Customer, CustomerId, CustomerName, Email, Event, Role, Tags,
};

#[derive(sqlx::FromRow)]
pub(super) struct CustomerRow {
    pub customer_id: String,
    pub customer_name: String,
    pub industry: String,
    pub data_store: String,
    pub status: String,
    pub tags: Json<Vec<String>>,
    pub attributes: Json<BTreeMap<String, serde_json::Value>>,
    pub contact_email: Option<String>,
    pub contact_name: Option<String>,
    pub created_by: Option<String>,
    pub usage_tier: Option<String>,
    pub test_clock_id: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<CustomerRow> for Customer {
    type Error = StoreError;
    fn try_from(r: CustomerRow) -> Result<Self, StoreError> {
        let status = r.status.parse().map_err(|_| {
            StoreError::Corrupt(format!(
                "customer {} has status '{}'",
                r.customer_id, r.status
            ))
        })?;
        let attributes = r
            .attributes
            .0
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    serde_json::Value::String(s) => AttributeValue::One(s),
                    serde_json::Value::Array(items) => AttributeValue::List(
                        items
                            .into_iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect(),
                    ),
                    other => {
                        return Err(StoreError::Corrupt(format!("attribute {k} holds {other}")))
                    }
                };
                Ok((k, value))
            })
            .collect::<Result<_, _>>()?;
        Ok(Customer {
            id: CustomerId::from_trusted(r.customer_id),
            name: CustomerName::from_trusted(r.customer_name),
            industry: r.industry,
            data_store: r.data_store,
            status,
            tags: Tags::from_trusted(r.tags.0),
            attributes,
            contact: Contact {
                email: r.contact_email.map(Email::from_trusted),
                name: r.contact_name,
            },
            created_by: r.created_by,
            usage_tier: r.usage_tier,
            test_clock_id: r.test_clock_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The JSON columns of a customer, ready to bind.
pub(super) struct CustomerJson {
    pub tags: Json<Vec<String>>,
    pub attributes: Json<BTreeMap<String, serde_json::Value>>,
    pub name_folded: String,
}

impl CustomerJson {
    pub fn of(c: &Customer) -> Self {
        Self {
            tags: Json(c.tags.to_strings()),
            attributes: Json(
                c.attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            name_folded: c.name.folded(),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    pub id: i64,
    pub chain: String,
    pub chain_seq: i64,
    pub event_type: String,
    pub actor: String,
    pub customer_id: Option<String>,
    pub payload: String,
    pub occurred_at: String,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Event {
            id: r.id,
            chain: r.chain,
            chain_seq: r.chain_seq,
            event_type: r.event_type,
            actor: r.actor,
            customer_id: r.customer_id,
            payload: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
            payload_text: r.payload,
            occurred_at: r.occurred_at,
            request_id: r.request_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<TokenRow> for AdminTokenRecord {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> Result<Self, StoreError> {
        let role: Role = r
            .role
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("token {} has role '{}'", r.id, r.role)))?;
        Ok(AdminTokenRecord {
            id: r.id,
            name: r.name,
            role,
            secret_hash: r.secret_hash,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct IdempotencyRow {
    pub key: String,
    pub fingerprint: String,
    pub status: i64,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl From<IdempotencyRow> for IdempotencyRecord {
    fn from(r: IdempotencyRow) -> Self {
        IdempotencyRecord {
            key: r.key,
            fingerprint: r.fingerprint,
            status: u16::try_from(r.status).unwrap_or(500),
            body: r.body,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
    pub customer_id: String,
    pub run_id: String,
    pub status: String,
    pub errors: Json<Vec<String>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_expires_ms: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct StepRow {
    pub name: String,
    pub position: i64,
    pub status: String,
    pub attempts: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub completed_seq: Option<i64>,
}

pub(super) fn run_record(r: RunRow, steps: Vec<StepRow>) -> Result<super::RunRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("run {} has {what}", r.run_id));
    let steps = steps
        .into_iter()
        .map(|s| {
            Ok(super::StepRecord {
                status: s.status.parse().map_err(|_| corrupt("a bad step status"))?,
                name: s.name,
                position: s.position,
                attempts: s.attempts,
                started_at: s.started_at,
                finished_at: s.finished_at,
                error: s.error,
                completed_seq: s.completed_seq,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(super::RunRecord {
        status: r.status.parse().map_err(|_| corrupt("a bad status"))?,
        customer_id: r.customer_id,
        run_id: r.run_id,
        errors: r.errors.0,
        started_at: r.started_at,
        finished_at: r.finished_at,
        updated_at: r.updated_at,
        lease_owner: r.lease_owner,
        lease_expires_ms: r.lease_expires_ms,
        steps,
        staged_credentials: vec![],
    })
}

#[derive(sqlx::FromRow)]
pub(super) struct DatasetRow {
    pub customer_id: String,
    pub dataset_id: String,
    pub data_store: String,
    pub tier: Option<String>,
    pub schema_version: i64,
    pub tables: Json<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<DatasetRow> for super::DatasetRecord {
    fn from(r: DatasetRow) -> Self {
        super::DatasetRecord {
            customer_id: r.customer_id,
            dataset_id: r.dataset_id,
            data_store: r.data_store,
            tier: r.tier,
            schema_version: r.schema_version,
            tables: r.tables.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ChecklistRow {
    pub item_id: String,
    pub done_by: String,
    pub done_at: DateTime<Utc>,
}

impl From<ChecklistRow> for super::ChecklistRecord {
    fn from(r: ChecklistRow) -> Self {
        super::ChecklistRecord {
            item_id: r.item_id,
            done_by: r.done_by,
            done_at: r.done_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CredentialRow {
    pub customer_id: String,
    pub credential_type: String,
    pub status: String,
    pub current_version: Option<i64>,
    pub scopes: Option<Json<Vec<String>>>,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub validation_error: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rotate_by: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`CredentialRow`], in order.
pub(super) const CREDENTIAL_COLUMNS: &str =
    "customer_id, credential_type, status, current_version, scopes, \
    last_validated_at, validation_error, expires_at, rotate_by, created_at, updated_at";

impl TryFrom<CredentialRow> for super::credentials::CredentialRecord {
    type Error = StoreError;
    fn try_from(r: CredentialRow) -> Result<Self, StoreError> {
        Ok(Self {
            status: crate::domain::credential::CredentialStatus::parse(&r.status)
                .map_err(|e| StoreError::Corrupt(e.message))?,
            customer_id: r.customer_id,
            credential_type: r.credential_type,
            current_version: r.current_version,
            scopes: r.scopes.map(|j| j.0),
            last_validated_at: r.last_validated_at,
            validation_error: r.validation_error,
            expires_at: r.expires_at,
            rotate_by: r.rotate_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct VersionRow {
    pub customer_id: String,
    pub credential_type: String,
    pub version: i64,
    pub state: String,
    pub fingerprint: String,
    pub master_version: Option<i64>,
    pub wrapped_key: Option<Vec<u8>>,
    pub key_nonce: Option<Vec<u8>>,
    pub ciphertext: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub state_changed_at: DateTime<Utc>,
}

/// The columns of [`VersionRow`], in order.
pub(super) const VERSION_COLUMNS: &str = "customer_id, credential_type, version, state, fingerprint, \
    master_version, wrapped_key, key_nonce, ciphertext, nonce, created_at, created_by, state_changed_at";

impl TryFrom<VersionRow> for super::credentials::VersionRecord {
    type Error = StoreError;
    fn try_from(r: VersionRow) -> Result<Self, StoreError> {
        let sealed = match (
            r.master_version,
            r.wrapped_key,
            r.key_nonce,
            r.ciphertext,
            r.nonce,
        ) {
            (Some(m), Some(wrapped_key), Some(key_nonce), Some(ciphertext), Some(nonce)) => {
                Some(crate::domain::envelope::Sealed {
                    master_version: u32::try_from(m).map_err(|_| {
                        StoreError::Corrupt(format!("master key version {m} is out of range"))
                    })?,
                    wrapped_key,
                    key_nonce,
                    ciphertext,
                    nonce,
                })
            }
            _ => None,
        };
        Ok(Self {
            state: crate::domain::credential::VersionState::parse(&r.state)
                .map_err(|e| StoreError::Corrupt(e.message))?,
            customer_id: r.customer_id,
            credential_type: r.credential_type,
            version: r.version,
            fingerprint: r.fingerprint,
            sealed,
            created_at: r.created_at,
            created_by: r.created_by,
            state_changed_at: r.state_changed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct StagedRow {
    pub credential_type: String,
    pub fingerprint: String,
    pub scopes: Option<Json<Vec<String>>>,
    pub master_version: i64,
    pub wrapped_key: Vec<u8>,
    pub key_nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
}

impl TryFrom<StagedRow> for super::credentials::StagedCredential {
    type Error = StoreError;
    fn try_from(r: StagedRow) -> Result<Self, StoreError> {
        Ok(Self {
            credential_type: r.credential_type,
            fingerprint: r.fingerprint,
            scopes: r.scopes.map(|j| j.0),
            sealed: crate::domain::envelope::Sealed {
                master_version: u32::try_from(r.master_version).map_err(|_| {
                    StoreError::Corrupt(format!(
                        "master key version {} is out of range",
                        r.master_version
                    ))
                })?,
                wrapped_key: r.wrapped_key,
                key_nonce: r.key_nonce,
                ciphertext: r.ciphertext,
                nonce: r.nonce,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct IntegrationKeyRow {
    pub key_id: String,
    pub customer_id: String,
    pub name: String,
    pub scopes: Json<Vec<String>>,
    pub allowed_adapters: Json<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub secret_hash: String,
    pub previous_secret_hash: Option<String>,
    pub previous_valid_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub rotated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The columns of [`IntegrationKeyRow`], in order.
pub(super) const KEY_COLUMNS: &str = "key_id, customer_id, name, scopes, allowed_adapters, expires_at, \
    secret_hash, previous_secret_hash, previous_valid_until, created_at, created_by, rotated_at, revoked_at, last_used_at";

impl From<IntegrationKeyRow> for super::keys::IntegrationKeyRecord {
    fn from(r: IntegrationKeyRow) -> Self {
        Self {
            key_id: r.key_id,
            customer_id: r.customer_id,
            name: r.name,
            scopes: r.scopes.0,
            allowed_adapters: r.allowed_adapters.0,
            expires_at: r.expires_at,
            secret_hash: r.secret_hash,
            previous_secret_hash: r.previous_secret_hash,
            previous_valid_until: r.previous_valid_until,
            created_at: r.created_at,
            created_by: r.created_by,
            rotated_at: r.rotated_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

fn outcome(job: &str, text: &str) -> Result<crate::domain::job::AttemptOutcome, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("job {job} has an attempt outcome '{text}'")))
}

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    pub name: String,
    pub next_run_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_ms: i64,
    pub attempt_id: Option<i64>,
    pub failures: i64,
    pub runs: i64,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
}

impl TryFrom<JobRow> for super::jobs::JobRecord {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        let last_outcome = r
            .last_outcome
            .as_deref()
            .map(|o| outcome(&r.name, o))
            .transpose()?;
        Ok(Self {
            name: r.name,
            next_run_ms: r.next_run_ms,
            lease_owner: r.lease_owner,
            lease_expires_ms: r.lease_expires_ms,
            attempt_id: r.attempt_id,
            failures: r.failures,
            runs: r.runs,
            last_finished_at: r.last_finished_at,
            last_outcome,
            last_error: r.last_error,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct JobAttemptRow {
    pub id: i64,
    pub job: String,
    pub owner: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub detail: Option<String>,
}

impl TryFrom<JobAttemptRow> for super::jobs::JobAttemptRecord {
    type Error = StoreError;
    fn try_from(r: JobAttemptRow) -> Result<Self, StoreError> {
        Ok(Self {
            outcome: outcome(&r.job, &r.outcome)?,
            id: r.id,
            job: r.job,
            owner: r.owner,
            started_at: r.started_at,
            finished_at: r.finished_at,
            detail: r.detail,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SignupRow {
    pub signup_id: String,
    pub email: String,
    pub company_name: String,
    pub name_folded: String,
    pub template: Option<String>,
    pub status: String,
    pub current_step: Option<String>,
    pub furthest_step: String,
    pub answers: Json<super::signups::Answers>,
    pub resume_token_hash: String,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub version: i64,
    pub verify_code_hash: Option<String>,
    pub verify_link_hash: Option<String>,
    pub verify_expires_at: Option<DateTime<Utc>>,
    pub verify_attempts: i64,
    pub codes_requested: i64,
    pub failed_tries: i64,
    pub mailbox_key: String,
    pub risk_score: Option<i64>,
    pub risk_reasons: Option<Json<Vec<crate::domain::risk::Reason>>>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    pub customer_id: Option<String>,
}

/// The columns of [`SignupRow`], in order.
pub(super) const SIGNUP_COLUMNS: &str = "signup_id, email, company_name, name_folded, template, \
    status, current_step, furthest_step, answers, resume_token_hash, verified_at, created_at, \
    updated_at, expires_at, version, verify_code_hash, verify_link_hash, verify_expires_at, \
    verify_attempts, codes_requested, failed_tries, mailbox_key, risk_score, risk_reasons, decided_by, decided_at, \
    decision_note, customer_id";

impl TryFrom<SignupRow> for super::signups::SignupRecord {
    type Error = super::StoreError;

    fn try_from(r: SignupRow) -> Result<Self, Self::Error> {
        let status = crate::domain::signup::SignupStatus::parse(&r.status).ok_or_else(|| {
            super::StoreError::Corrupt(format!(
                "signup '{}' has an unknown status '{}'",
                r.signup_id, r.status
            ))
        })?;
        Ok(Self {
            signup_id: r.signup_id,
            email: r.email,
            mailbox_key: r.mailbox_key,
            company_name: r.company_name,
            name_folded: r.name_folded,
            template: r.template,
            status,
            current_step: r.current_step,
            furthest_step: r.furthest_step,
            answers: r.answers.0,
            resume_token_hash: r.resume_token_hash,
            verified_at: r.verified_at,
            verification: match (r.verify_code_hash, r.verify_link_hash, r.verify_expires_at) {
                (Some(code_hash), Some(link_hash), Some(expires_at)) => {
                    Some(super::signups::Verification {
                        code_hash,
                        link_hash,
                        expires_at,
                        attempts: r.verify_attempts,
                    })
                }
                _ => None,
            },
            codes_requested: r.codes_requested,
            failed_tries: r.failed_tries,
            review: r.risk_score.map(|score| super::signups::RiskReview {
                score: u32::try_from(score).unwrap_or(u32::MAX),
                reasons: r.risk_reasons.map(|j| j.0).unwrap_or_default(),
            }),
            decision: match (r.decided_by, r.decided_at) {
                (Some(by), Some(at)) => Some(super::signups::SignupDecision {
                    by,
                    at,
                    note: r.decision_note,
                    customer_id: r.customer_id.map(CustomerId::from_trusted),
                }),
                _ => None,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            version: r.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EmailRow {
    pub email_id: String,
    pub kind: String,
    pub recipient: String,
    pub customer_id: Option<String>,
    pub signup_id: Option<String>,
    pub event_id: Option<i64>,
    pub status: String,
    pub attempts: i64,
    pub subject: Option<String>,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub user_id: Option<String>,
}

/// The columns of [`EmailRow`], in order.
pub(super) const EMAIL_COLUMNS: &str = "email_id, kind, recipient, customer_id, signup_id, \
    event_id, status, attempts, subject, last_error, message_id, created_at, updated_at, \
    next_attempt_at, sent_at, user_id";

impl TryFrom<EmailRow> for super::emails::EmailRecord {
    type Error = StoreError;

    fn try_from(r: EmailRow) -> Result<Self, Self::Error> {
        use crate::domain::email::{DeliveryStatus, EmailKind};
        let corrupt = |what: &str, value: &str| {
            StoreError::Corrupt(format!(
                "email '{}' has an unknown {what} '{value}'",
                r.email_id
            ))
        };
        let kind = EmailKind::parse(&r.kind).ok_or_else(|| corrupt("kind", &r.kind))?;
        let status =
            DeliveryStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?;
        Ok(Self {
            email_id: r.email_id,
            kind,
            recipient: r.recipient,
            customer_id: r.customer_id.map(CustomerId::from_trusted),
            signup_id: r.signup_id,
            user_id: r.user_id,
            event_id: r.event_id,
            status,
            attempts: r.attempts,
            subject: r.subject,
            last_error: r.last_error,
            message_id: r.message_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            next_attempt_at: r.next_attempt_at,
            sent_at: r.sent_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DomainListRow {
    pub name: String,
    pub source: String,
    pub list_date: Option<String>,
    pub entries: i64,
    pub domains: String,
    pub updated_at: DateTime<Utc>,
}

impl From<DomainListRow> for super::signups::StoredDomainList {
    fn from(r: DomainListRow) -> Self {
        Self {
            name: r.name,
            source: r.source,
            list_date: r.list_date,
            entries: r.entries,
            domains: r.domains,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub user_id: String,
    pub customer_id: String,
    pub email: String,
    pub email_key: String,
    pub name: Option<String>,
    pub role: String,
    pub status: String,
    pub password_hash: Option<String>,
    pub password_change_required: bool,
    pub password_expires_at: Option<DateTime<Utc>>,
    pub link_hash: Option<String>,
    pub link_purpose: Option<String>,
    pub link_expires_at: Option<DateTime<Utc>>,
    pub resets_requested: i64,
    pub resets_since: Option<DateTime<Utc>>,
    pub signup_id: Option<String>,
    pub invited_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub version: i64,
}

/// The columns of [`UserRow`], in order.
pub(super) const USER_COLUMNS: &str = "user_id, customer_id, email, email_key, name, role, \
    status, password_hash, password_change_required, password_expires_at, link_hash, \
    link_purpose, link_expires_at, resets_requested, resets_since, signup_id, invited_by, \
    created_at, updated_at, last_login_at, version";

impl TryFrom<UserRow> for super::accounts::UserRecord {
    type Error = StoreError;

    fn try_from(r: UserRow) -> Result<Self, Self::Error> {
        use crate::domain::account::{LinkPurpose, UserRole, UserStatus};
        let corrupt = |what: &str, value: &str| {
            StoreError::Corrupt(format!(
                "user '{}' has an unknown {what} '{value}'",
                r.user_id
            ))
        };
        let role = UserRole::parse(&r.role).ok_or_else(|| corrupt("role", &r.role))?;
        let status = UserStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?;
        let link = match (r.link_hash, r.link_purpose, r.link_expires_at) {
            (Some(hash), Some(purpose), Some(expires_at)) => Some(super::accounts::UserLink {
                hash,
                purpose: LinkPurpose::parse(&purpose)
                    .ok_or_else(|| corrupt("link purpose", &purpose))?,
                expires_at,
            }),
            _ => None,
        };
        Ok(Self {
            user_id: r.user_id,
            customer_id: CustomerId::from_trusted(r.customer_id),
            email: r.email,
            email_key: r.email_key,
            name: r.name,
            role,
            status,
            password_hash: r.password_hash,
            password_change_required: r.password_change_required,
            password_expires_at: r.password_expires_at,
            link,
            resets_requested: r.resets_requested,
            resets_since: r.resets_since,
            signup_id: r.signup_id,
            invited_by: r.invited_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_login_at: r.last_login_at,
            version: r.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PortalSessionRow {
    pub token_hash: String,
    pub user_id: String,
    pub customer_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<PortalSessionRow> for super::accounts::PortalSessionRecord {
    fn from(r: PortalSessionRow) -> Self {
        Self {
            token_hash: r.token_hash,
            user_id: r.user_id,
            customer_id: CustomerId::from_trusted(r.customer_id),
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TestClockRow {
    pub test_clock_id: String,
    pub name: String,
    pub frozen_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl From<TestClockRow> for super::billing::TestClockRecord {
    fn from(r: TestClockRow) -> Self {
        Self {
            test_clock_id: r.test_clock_id,
            name: r.name,
            frozen_time: r.frozen_time,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// A trial's columns, in the order `insert_trial` binds them.
pub(super) const TRIAL_COLUMNS: &str = "customer_id, trial_id, plan, status, days, extra_days, \
     extensions, activate_on, activated_at, ends_at, reminded_at, ended_at, next_at, \
     test_clock_id, created_at, updated_at, version";

#[derive(sqlx::FromRow)]
pub(super) struct TrialRow {
    pub customer_id: String,
    pub trial_id: String,
    pub plan: String,
    pub status: String,
    pub days: i64,
    pub extra_days: i64,
    pub extensions: i64,
    pub activate_on: String,
    pub activated_at: Option<DateTime<Utc>>,
    pub reminded_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub next_at: Option<DateTime<Utc>>,
    pub test_clock_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl TryFrom<TrialRow> for super::billing::TrialRecord {
    type Error = StoreError;
    fn try_from(r: TrialRow) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("the trial of {} has {what}", r.customer_id));
        let status = crate::domain::trial::TrialStatus::parse(&r.status)
            .ok_or_else(|| corrupt(&format!("status '{}'", r.status)))?;
        let activate_on = crate::domain::plan::ActivateOn::parse(&r.activate_on)
            .ok_or_else(|| corrupt(&format!("activate_on '{}'", r.activate_on)))?;
        let count = |n: i64, what: &str| u32::try_from(n).map_err(|_| corrupt(what));
        Ok(Self {
            trial: crate::domain::trial::Trial {
                status,
                days: count(r.days, "a bad day count")?,
                extra_days: count(r.extra_days, "a bad extra day count")?,
                extensions: count(r.extensions, "a bad extension count")?,
                activated_at: r.activated_at,
            },
            trial_id: r.trial_id,
            plan: r.plan,
            activate_on,
            reminded_at: r.reminded_at,
            ended_at: r.ended_at,
            next_at: r.next_at,
            test_clock_id: r.test_clock_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
            customer_id: r.customer_id,
        })
    }
}

/// A subscription's columns, in the order `insert_subscription` binds them.
pub(super) const SUBSCRIPTION_COLUMNS: &str = "subscription_id, customer_id, plan, cycle, \
     cycle_months, status, anchor, currency, scheduled_kind, scheduled_plan, scheduled_cycle, \
     trial_id, canceled_at, next_at, test_clock_id, created_at, updated_at, version";

#[derive(sqlx::FromRow)]
pub(super) struct SubscriptionRow {
    pub subscription_id: String,
    pub customer_id: String,
    pub plan: String,
    pub cycle: String,
    pub cycle_months: i64,
    pub status: String,
    pub anchor: DateTime<Utc>,
    pub currency: String,
    pub scheduled_kind: Option<String>,
    pub scheduled_plan: Option<String>,
    pub scheduled_cycle: Option<String>,
    pub trial_id: Option<String>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub next_at: Option<DateTime<Utc>>,
    pub test_clock_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl TryFrom<SubscriptionRow> for super::billing::SubscriptionRecord {
    type Error = StoreError;
    fn try_from(r: SubscriptionRow) -> Result<Self, StoreError> {
        use crate::domain::subscription::{ScheduledChange, Subscription, SubscriptionStatus};
        let corrupt = |what: String| {
            StoreError::Corrupt(format!("subscription {} has {what}", r.subscription_id))
        };
        let status = SubscriptionStatus::parse(&r.status)
            .ok_or_else(|| corrupt(format!("status '{}'", r.status)))?;
        let currency = crate::domain::money::Currency::parse(&r.currency)
            .map_err(|_| corrupt(format!("currency '{}'", r.currency)))?;
        let scheduled = match (
            r.scheduled_kind.as_deref(),
            r.scheduled_plan,
            r.scheduled_cycle,
        ) {
            (None, _, _) => None,
            (Some("cancel"), _, _) => Some(ScheduledChange::Cancel),
            (Some("change"), Some(plan), Some(cycle)) => {
                Some(ScheduledChange::Change { plan, cycle })
            }
            (Some(other), _, _) => return Err(corrupt(format!("scheduled change '{other}'"))),
        };
        Ok(Self {
            subscription: Subscription {
                status,
                plan: r.plan,
                cycle: r.cycle,
                cycle_months: u32::try_from(r.cycle_months)
                    .map_err(|_| corrupt("a bad cycle length".into()))?,
                anchor: r.anchor,
                scheduled,
            },
            currency,
            trial_id: r.trial_id,
            canceled_at: r.canceled_at,
            next_at: r.next_at,
            test_clock_id: r.test_clock_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
            customer_id: r.customer_id,
            subscription_id: r.subscription_id,
        })
    }
}
