//! The event catalog: every event Onramp appends, each a Rust type with a versioned payload.
//!
//! An event's type (`customer.registered`) and payload version name its shape; the payload
//! serialises to the JSON object the event log stores, with its fields in the order declared
//! here. The catalog is what the outbox's consumers (webhooks, emails, analytics) read: they
//! decode a stored event with [`EventBody::decode`] rather than picking at JSON. Every type is
//! at version 1; a change to a payload's shape becomes a new version of its type, and the old
//! one keeps decoding, since stored events never change (their hash chain covers them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::credential::CredentialStatus;
use super::customer::CustomerView;
use super::dataset::DeletionReceipt;
use super::{CustomerStatus, Role};

macro_rules! catalog {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident($payload:ident) = $name:literal, v $version:literal;
    )*) => {
        /// Every event type, by its dotted name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl EventType {
            /// Every event type, in catalog order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The dotted name stored in the event log, such as `customer.registered`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }

            /// The version of the payload's shape.
            pub fn version(self) -> u16 {
                match self {
                    $(EventType::$variant => $version,)*
                }
            }

            /// When the event is appended, in a sentence.
            pub fn description(self) -> String {
                let lines: &[&str] = match self {
                    $(EventType::$variant => &[$($doc),*],)*
                };
                lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
            }

            /// The type a stored name stands for.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(EventType::$variant),)*
                    _ => None,
                }
            }
        }

        /// An event's payload, typed by its event type.
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventBody {
            $( $(#[doc = $doc])* $variant($payload), )*
        }

        impl EventBody {
            /// The event's type.
            pub fn event_type(&self) -> EventType {
                match self {
                    $(EventBody::$variant(_) => EventType::$variant,)*
                }
            }

            /// The payload as the event log stores it.
            pub fn to_json(&self) -> serde_json::Value {
                let value = match self {
                    $(EventBody::$variant(p) => serde_json::to_value(p),)*
                };
                // Payloads are plain data (strings, numbers, lists, maps with string keys).
                value.expect("event payloads always serialise")
            }

            /// Decodes a stored event's payload by its type.
            pub fn decode(event_type: &str, payload: &str) -> Result<Self, DecodeError> {
                let Some(t) = EventType::parse(event_type) else {
                    return Err(DecodeError::UnknownType(event_type.to_owned()));
                };
                let bad = |e: serde_json::Error| DecodeError::Payload {
                    event_type: t.as_str(),
                    reason: e.to_string(),
                };
                Ok(match t {
                    $(EventType::$variant => EventBody::$variant(serde_json::from_str(payload).map_err(bad)?),)*
                })
            }
        }
    };
}

/// Why a stored event does not decode into the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The type is not in the catalog.
    #[error("'{0}' is not an event type of the catalog")]
    UnknownType(String),
    /// The payload does not have its type's shape.
    #[error("the payload of a {event_type} event does not match its type: {reason}")]
    Payload {
        /// The event type.
        event_type: &'static str,
        /// What did not match.
        reason: String,
    },
}

catalog! {
    /// A customer was registered and its onboarding run created.
    CustomerRegistered(CustomerRegistered) = "customer.registered", v 1;
    /// Fields of a customer's record changed (more than its status alone).
    CustomerUpdated(CustomerChanged) = "customer.updated", v 1;
    /// An operator changed a customer's status and nothing else.
    CustomerStatusChanged(CustomerChanged) = "customer.status_changed", v 1;
    /// A customer was offboarded: made inactive, or deleted with its data.
    CustomerOffboarded(CustomerOffboarded) = "customer.offboarded", v 1;
    /// A customer's onboarding run succeeded and the customer became active.
    CustomerActivated(RunFinished) = "customer.activated", v 1;
    /// A customer's onboarding run failed and was rolled back.
    CustomerOnboardingFailed(OnboardingFailed) = "customer.onboarding_failed", v 1;
    /// A failed onboarding was started over as a new run.
    OnboardingRetried(OnboardingRetried) = "onboarding.retried", v 1;
    /// A manual checklist item was marked done.
    ChecklistCompleted(ChecklistCompleted) = "checklist.completed", v 1;
    /// A customer's dataset was created for its tier.
    DatasetProvisioned(DatasetChanged) = "dataset.provisioned", v 1;
    /// A customer's dataset was changed to match its tier or schema.
    DatasetUpdated(DatasetChanged) = "dataset.updated", v 1;
    /// A customer's dataset was dropped (rollback or deletion).
    DatasetDropped(DatasetDropped) = "dataset.dropped", v 1;
    /// A file was uploaded into a customer's dataset.
    DatasetUploaded(DatasetUploaded) = "dataset.uploaded", v 1;
    /// Someone started signing up (operator chain; the email's domain only).
    SignupStarted(SignupStarted) = "signup.started", v 1;
    /// A signup step's answers were saved.
    SignupStepCompleted(SignupStepRef) = "signup.step_completed", v 1;
    /// A signup was given up by the person signing up.
    SignupAbandoned(SignupStepRef) = "signup.abandoned", v 1;
    /// A signup was left idle past the product's limit and expired.
    SignupExpired(SignupStepRef) = "signup.expired", v 1;
    /// A signup asked for a verification code: a new address, or the person asked again.
    SignupVerificationRequested(SignupVerificationRequested) = "signup.verification_requested", v 1;
    /// A signup's email was verified, by its code or its link.
    SignupEmailVerified(SignupEmailVerified) = "signup.email_verified", v 1;
    /// A signup was completed and went to its review.
    SignupCompleted(SignupCompleted) = "signup.completed", v 1;
    /// A signup was approved, by the product's policy or an operator.
    SignupApproved(SignupDecided) = "signup.approved", v 1;
    /// A signup was rejected, by the product's policy or an operator.
    SignupRejected(SignupDecided) = "signup.rejected", v 1;
    /// A domain list of the risk review was replaced (operator chain).
    DomainListUpdated(DomainListUpdated) = "signup.domain_list_updated", v 1;
    /// Legacy tenants were imported into the registry (operator chain).
    LegacyImported(LegacyImported) = "legacy.imported", v 1;
    /// An admin API token was created (operator chain).
    AdminTokenCreated(AdminTokenCreated) = "admin_token.created", v 1;
    /// An integration key was issued to a customer.
    IntegrationKeyIssued(IntegrationKeyIssued) = "integration_key.issued", v 1;
    /// An integration key's secret was rotated.
    IntegrationKeyRotated(IntegrationKeyRotated) = "integration_key.rotated", v 1;
    /// An integration key was revoked.
    IntegrationKeyRevoked(IntegrationKeyRevoked) = "integration_key.revoked", v 1;
    /// Every integration key of a customer was revoked at once.
    IntegrationKeysRevoked(IntegrationKeysRevoked) = "integration_keys.revoked", v 1;
    /// A credential value was stored as a new version.
    CredentialStored(CredentialStored) = "credential.stored", v 1;
    /// A credential's value was read through the API or CLI.
    CredentialRead(CredentialVersionRef) = "credential.read", v 1;
    /// A credential was checked against its provider.
    CredentialValidated(CredentialValidated) = "credential.validated", v 1;
    /// A credential version was enabled.
    CredentialVersionEnabled(CredentialVersionRef) = "credential.version_enabled", v 1;
    /// A credential version was disabled.
    CredentialVersionDisabled(CredentialVersionRef) = "credential.version_disabled", v 1;
    /// A credential version was destroyed: its sealed value is gone.
    CredentialVersionDestroyed(CredentialVersionRef) = "credential.version_destroyed", v 1;
    /// A credential was revoked (its versions disabled, or destroyed).
    CredentialRevoked(CredentialRevoked) = "credential.revoked", v 1;
    /// Every credential of a customer was destroyed (offboarding with its data).
    CredentialsDestroyed(CredentialsDestroyed) = "credentials.destroyed", v 1;
    /// The vault's data keys were rewrapped onto the current master key (operator chain).
    VaultRewrapped(VaultRewrapped) = "vault.rewrapped", v 1;
    /// A customer's user was made without an invitation (a signup's owner).
    UserCreated(UserCreated) = "user.created", v 1;
    /// A user was invited to a customer.
    UserInvited(UserInvited) = "user.invited", v 1;
    /// An invited user chose a password and joined.
    UserJoined(UserRef) = "user.joined", v 1;
    /// A user signed in to the portal.
    UserLoggedIn(UserRef) = "user.logged_in", v 1;
    /// Repeated failed logins locked a user's address out for a while.
    UserLockedOut(UserLockedOut) = "user.locked_out", v 1;
    /// A user asked for a password reset link.
    UserPasswordResetRequested(UserRef) = "user.password_reset_requested", v 1;
    /// A user's password was changed, reset or first set.
    UserPasswordChanged(UserPasswordChanged) = "user.password_changed", v 1;
    /// A user was removed from a customer.
    UserRemoved(UserRemoved) = "user.removed", v 1;
    /// A test clock was made (operator chain).
    TestClockCreated(TestClockChanged) = "test_clock.created", v 1;
    /// A test clock was moved forward (operator chain).
    TestClockAdvanced(TestClockChanged) = "test_clock.advanced", v 1;
    /// A trial was started for a customer (pending, or active at once).
    TrialStarted(TrialChanged) = "trial.started", v 1;
    /// A trial's clock started.
    TrialActivated(TrialChanged) = "trial.activated", v 1;
    /// A trial was given more days.
    TrialExtended(TrialChanged) = "trial.extended", v 1;
    /// A trial ends in the product's reminder days.
    TrialEndingSoon(TrialChanged) = "trial.ending_soon", v 1;
    /// A trial's days ran out; its grace, if any, begins.
    TrialExpired(TrialChanged) = "trial.expired", v 1;
    /// A trial's grace ran out and the product's end behaviour was applied.
    TrialEnded(TrialChanged) = "trial.ended", v 1;
    /// A trial became a subscription.
    TrialConverted(TrialChanged) = "trial.converted", v 1;
    /// A customer was subscribed to a plan (its first period's charge in `lines`).
    SubscriptionCreated(SubscriptionState) = "subscription.created", v 1;
    /// A subscription's plan or cycle changed at once (the proration in `lines`).
    SubscriptionChanged(SubscriptionState) = "subscription.changed", v 1;
    /// A change of plan or cycle was scheduled for the period's end.
    SubscriptionChangeScheduled(SubscriptionState) = "subscription.change_scheduled", v 1;
    /// A cancellation was scheduled for the period's end.
    SubscriptionCancelScheduled(SubscriptionState) = "subscription.cancel_scheduled", v 1;
    /// What was scheduled for the period's end (a change or a cancellation) was withdrawn.
    SubscriptionUnscheduled(SubscriptionState) = "subscription.unscheduled", v 1;
    /// A subscription ended (at once, or at the period's end as scheduled).
    SubscriptionCanceled(SubscriptionState) = "subscription.canceled", v 1;
    /// A subscription's period ended and the next began (what was scheduled applied; the new
    /// period's charge in `lines`).
    SubscriptionRenewed(SubscriptionState) = "subscription.renewed", v 1;
    /// A metric's usage in a period passed its plan's soft threshold (once a period).
    UsageSoftLimitReached(UsageThreshold) = "usage.soft_limit_reached", v 1;
    /// A metric's usage in a period reached its limit (once a period).
    UsageLimitReached(UsageThreshold) = "usage.limit_reached", v 1;
}

/// `usage.soft_limit_reached` and `usage.limit_reached`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageThreshold {
    /// The metric.
    pub metric: String,
    /// The period's start.
    pub period_start: DateTime<Utc>,
    /// The limit.
    pub limit: serde_json::Value,
    /// The usage when it was reached.
    pub used: serde_json::Value,
    /// The soft threshold, in percent of the limit.
    pub soft_threshold_percent: u32,
    /// What happens past the limit: `block` or `overage`.
    pub hard: String,
}

/// One line of what a change or a period costs, in the subscription's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChargeLine {
    /// What it is for.
    pub description: String,
    /// Minor units; negative for a credit.
    pub amount: i64,
    /// The span it covers.
    pub from: DateTime<Utc>,
    /// Its end.
    pub to: DateTime<Utc>,
}

/// The `subscription.*` events: the subscription as it stands after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionState {
    /// The subscription.
    pub subscription_id: String,
    /// Its plan.
    pub plan: String,
    /// Its cycle.
    pub cycle: String,
    /// Its status.
    pub status: crate::domain::subscription::SubscriptionStatus,
    /// Its currency.
    pub currency: String,
    /// The customer's time of the change (a test clock's, for a customer on one).
    pub at: DateTime<Utc>,
    /// When its current period ends.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub period_end: Option<DateTime<Utc>>,
    /// The plan before a change.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from_plan: Option<String>,
    /// The cycle before a change.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from_cycle: Option<String>,
    /// What waits for the period's end.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scheduled: Option<crate::domain::subscription::ScheduledChange>,
    /// What the change costs or credits, line by line.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub lines: Vec<ChargeLine>,
    /// The lines' total.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total: Option<i64>,
    /// The trial it converted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trial_id: Option<String>,
}

/// `test_clock.created` and `test_clock.advanced`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestClockChanged {
    /// The clock.
    pub test_clock_id: String,
    /// The time it shows now.
    pub frozen_time: DateTime<Utc>,
    /// The time it showed before an advance.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from: Option<DateTime<Utc>>,
}

/// The `trial.*` events: the trial as it stands after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialChanged {
    /// The trial.
    pub trial_id: String,
    /// Its plan.
    pub plan: String,
    /// Its status now.
    pub status: crate::domain::trial::TrialStatus,
    /// The customer's time of the change (a test clock's, for a customer on one).
    pub at: DateTime<Utc>,
    /// When it ends, once its clock has started.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Its days, extensions included.
    pub days: u32,
    /// Extensions granted.
    pub extensions: u32,
    /// Days this change added (an extension).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub days_added: Option<u32>,
    /// Why (an extension's reason, what activated it, the end behaviour applied).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

/// `user.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCreated {
    /// The user.
    pub user_id: String,
    /// Their role.
    pub role: crate::domain::account::UserRole,
    /// The signup they came from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signup_id: Option<String>,
}

/// `user.invited`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInvited {
    /// The user.
    pub user_id: String,
    /// The role they are invited to.
    pub role: crate::domain::account::UserRole,
}

/// `user.joined`, `user.logged_in` and `user.password_reset_requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRef {
    /// The user.
    pub user_id: String,
}

/// `user.locked_out`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserLockedOut {
    /// The user.
    pub user_id: String,
    /// Failed logins in a row.
    pub failures: i64,
    /// When logins are taken again.
    pub until: DateTime<Utc>,
}

/// `user.password_changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserPasswordChanged {
    /// The user.
    pub user_id: String,
    /// How: `changed` (knowing the old one), `reset` (by an emailed link) or `set` (the first,
    /// by an invitation or welcome link).
    pub how: String,
}

/// `user.removed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRemoved {
    /// The user.
    pub user_id: String,
    /// The role they had.
    pub role: crate::domain::account::UserRole,
}

/// `customer.registered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRegistered {
    /// The record as registered.
    pub customer: CustomerView,
    /// The onboarding run started for it (absent from the earliest registrations, made before
    /// runs existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run's steps, in order.
    pub steps: Vec<String>,
}

/// `customer.updated` and `customer.status_changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerChanged {
    /// Each changed field of the customer's view, as `{"from": .., "to": ..}`, in the view's
    /// field order.
    pub changes: serde_json::Map<String, serde_json::Value>,
    /// The record's version after the change.
    pub version: i64,
}

/// `customer.offboarded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerOffboarded {
    /// The status before.
    pub from_status: CustomerStatus,
    /// The status after: `inactive` or `deleted`.
    pub to_status: CustomerStatus,
    /// Whether the data was deleted.
    pub delete_data: bool,
    /// The operator's reason, if given.
    pub reason: Option<String>,
    /// The record's version after the change.
    pub version: i64,
    /// What deleting the data removed.
    pub receipt: Option<DeletionReceipt>,
}

/// `customer.activated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFinished {
    /// The run.
    pub run_id: String,
    /// The record's version after the change.
    pub version: i64,
}

/// `customer.onboarding_failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnboardingFailed {
    /// The run.
    pub run_id: String,
    /// Why it failed, one sentence per failed step.
    pub errors: Vec<String>,
    /// The record's version after the change.
    pub version: i64,
}

/// `onboarding.retried`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnboardingRetried {
    /// The new run.
    pub run_id: String,
    /// The run that failed.
    pub previous_run_id: String,
    /// The record's version after the change.
    pub version: i64,
}

/// `checklist.completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistCompleted {
    /// The checklist item's id.
    pub item: String,
}

/// `dataset.provisioned` and `dataset.updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetChanged {
    /// The dataset.
    pub dataset_id: String,
    /// The data store it lives on.
    pub data_store: String,
    /// The tier it was provisioned for.
    pub tier: Option<String>,
    /// Its tables.
    pub tables: Vec<String>,
    /// Its schema version.
    pub schema_version: i64,
}

/// `dataset.dropped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetDropped {
    /// The dataset.
    pub dataset_id: String,
    /// Why it was dropped.
    pub reason: String,
    /// Whether the registry held a record of it (a run cut off mid-provisioning leaves none;
    /// absent from the earliest drops, which were all recorded).
    #[serde(default = "recorded")]
    pub was_recorded: bool,
}

fn recorded() -> bool {
    true
}

/// `dataset.uploaded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetUploaded {
    /// The product's upload adapter.
    pub adapter: String,
    /// The table loaded.
    pub table: String,
    /// Rows loaded.
    pub rows_loaded: u64,
    /// The file's size.
    pub bytes: u64,
    /// The file's SHA-256, hex.
    pub sha256: String,
}

/// `signup.started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignupStarted {
    /// The signup.
    pub signup_id: String,
    /// The domain of the email it started with (never the address).
    pub email_domain: String,
    /// The template chosen, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub template: Option<String>,
}

/// `signup.step_completed`, `signup.abandoned` and `signup.expired`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignupStepRef {
    /// The signup.
    pub signup_id: String,
    /// The step saved, or the step it was at when abandoned.
    pub step: String,
}

/// `signup.verification_requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignupVerificationRequested {
    /// The signup.
    pub signup_id: String,
    /// Why: `email_changed` or `resend`.
    pub reason: String,
}

/// `signup.email_verified`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignupEmailVerified {
    /// The signup.
    pub signup_id: String,
    /// How: `code` or `link`.
    pub method: String,
}

/// `signup.completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignupCompleted {
    /// The signup.
    pub signup_id: String,
    /// Where the completion left it (`review` while an operator decides).
    pub status: crate::domain::signup::SignupStatus,
    /// The risk review's score.
    #[serde(default)]
    pub score: u32,
    /// The signals the review found (their names).
    #[serde(default)]
    pub signals: Vec<crate::domain::risk::Signal>,
}

/// `signup.approved` and `signup.rejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignupDecided {
    /// The signup.
    pub signup_id: String,
    /// The risk review's score.
    pub score: u32,
    /// `policy` (the product's review policy) or `operator`.
    pub by: String,
    /// The reason given for a rejection.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// The customer an approval made.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub customer_id: Option<String>,
}

/// `signup.domain_list_updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainListUpdated {
    /// Which list (`disposable`).
    pub list: String,
    /// The file it came from.
    pub source: String,
    /// The date the list says it is of.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub list_date: Option<String>,
    /// How many domains it holds.
    pub entries: i64,
}

/// `legacy.imported`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyImported {
    /// The legacy tenants file.
    pub file: String,
    /// Customers created.
    pub created: u64,
    /// Tenants already in the registry.
    pub skipped: u64,
    /// Tenants refused.
    pub refused: u64,
}

/// `admin_token.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminTokenCreated {
    /// The token's public id.
    pub token_id: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// `integration_key.issued`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationKeyIssued {
    /// The key.
    #[serde(flatten)]
    pub key: KeyRef,
    /// When it expires, if it does.
    pub expires_at: Option<DateTime<Utc>>,
}

/// `integration_key.rotated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationKeyRotated {
    /// The key.
    #[serde(flatten)]
    pub key: KeyRef,
    /// How long the previous secret keeps working.
    pub grace_seconds: u32,
}

/// `integration_key.revoked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationKeyRevoked {
    /// The key.
    #[serde(flatten)]
    pub key: KeyRef,
}

/// An integration key as its events name it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRef {
    /// The public key id.
    pub key_id: String,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// The upload adapters it may use.
    pub allowed_adapters: Vec<String>,
}

/// `integration_keys.revoked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationKeysRevoked {
    /// Why.
    pub reason: String,
}

/// `credential.stored`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialStored {
    /// The credential type.
    pub credential_type: String,
    /// The new version.
    pub version: i64,
    /// The value's fingerprint (never the value).
    pub fingerprint: String,
    /// The scopes stated with it.
    pub scopes: Option<Vec<String>>,
}

/// `credential.read` and `credential.version_*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialVersionRef {
    /// The credential type.
    pub credential_type: String,
    /// The version.
    pub version: i64,
}

/// `credential.validated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialValidated {
    /// The credential type.
    pub credential_type: String,
    /// The version checked.
    pub version: i64,
    /// Whether the provider answered.
    pub reached_provider: bool,
    /// The credential's status after the check.
    pub status: CredentialStatus,
    /// The scopes the provider reported.
    pub scopes: Option<Vec<String>>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// `credential.revoked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialRevoked {
    /// The credential type.
    pub credential_type: String,
    /// Whether the versions were destroyed rather than disabled.
    pub destroyed: bool,
    /// The versions changed.
    pub versions: Vec<i64>,
}

/// `credentials.destroyed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialsDestroyed {
    /// The credential types destroyed.
    pub credential_types: Vec<String>,
    /// Why.
    pub reason: String,
}

/// `vault.rewrapped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaultRewrapped {
    /// The master key version the data keys now sit under.
    pub master_key_version: u32,
    /// How many data keys were rewrapped.
    pub rewrapped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for t in EventType::ALL {
            assert!(seen.insert(t.as_str()), "{} twice", t.as_str());
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
            assert!(!t.description().is_empty());
            assert_eq!(t.version(), 1);
        }
        assert_eq!(EventType::parse("customer.nope"), None);
    }

    /// The JSON the event log held before the catalog, byte for byte, decodes and encodes again
    /// to itself: key order included.
    #[test]
    fn payloads_keep_the_stored_json() {
        let stored = [
            (
                "integration_key.issued",
                r#"{"key_id":"0123456789abcdef","name":"ci","scopes":["upload"],"allowed_adapters":[],"expires_at":null}"#,
            ),
            (
                "integration_key.rotated",
                r#"{"key_id":"0123456789abcdef","name":"ci","scopes":["upload"],"allowed_adapters":["ads"],"grace_seconds":60}"#,
            ),
            (
                "credential.validated",
                r#"{"credential_type":"api_key","version":2,"reached_provider":true,"status":"active","scopes":null,"error":null}"#,
            ),
            (
                "customer.status_changed",
                r#"{"changes":{"status":{"from":"active","to":"suspended"}},"version":3}"#,
            ),
            (
                "customer.offboarded",
                r#"{"from_status":"active","to_status":"inactive","delete_data":false,"reason":null,"version":4,"receipt":null}"#,
            ),
            (
                "dataset.provisioned",
                r#"{"dataset_id":"acme_data","data_store":"main","tier":"basic","tables":["a","b"],"schema_version":1}"#,
            ),
            (
                "vault.rewrapped",
                r#"{"master_key_version":2,"rewrapped":17}"#,
            ),
        ];
        for (t, json) in stored {
            let body = EventBody::decode(t, json).unwrap();
            assert_eq!(body.event_type().as_str(), t);
            assert_eq!(body.to_json().to_string(), json);
        }
    }

    /// Payloads of the first releases, before fields were added, still decode.
    #[test]
    fn the_earliest_shapes_decode() {
        let dropped =
            EventBody::decode("dataset.dropped", r#"{"dataset_id":"d","reason":"r"}"#).unwrap();
        let EventBody::DatasetDropped(d) = dropped else {
            panic!("{dropped:?}")
        };
        assert!(d.was_recorded);
        let registered = r#"{"customer":{"customer_id":"acme","customer_name":"Acme","industry":null,"data_store":null,"dataset_id":null,"status":"active","tags":[],"attributes":{},"contact":{"email":null,"name":null},"created_by":null,"usage_tier":null,"version":1,"created_at":null,"updated_at":null,"source":"registry"},"steps":[]}"#;
        let body = EventBody::decode("customer.registered", registered).unwrap();
        assert_eq!(body.to_json().to_string(), registered);
    }

    #[test]
    fn refuses_what_is_not_in_the_catalog() {
        assert_eq!(
            EventBody::decode("customer.nope", "{}"),
            Err(DecodeError::UnknownType("customer.nope".into()))
        );
        let e = EventBody::decode("checklist.completed", r#"{"item": 3}"#).unwrap_err();
        assert!(e.to_string().contains("checklist.completed"), "{e}");
    }
}
