//! Persistence of self-serve signups: the session record and the [`SignupStore`] trait each
//! backend implements.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use super::StoreError;
use crate::domain::risk::Reason;
use crate::domain::signup::SignupStatus;
use crate::domain::{CustomerId, NewEvent};

/// The answers of a signup, by step and then by field.
pub type Answers = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

/// One signup session.
#[derive(Debug, Clone, PartialEq)]
pub struct SignupRecord {
    /// Its id.
    pub signup_id: String,
    /// The email it started with, in canonical form.
    pub email: String,
    /// The email's mailbox key (`text::mailbox_key`), for the per-address limits.
    pub mailbox_key: String,
    /// The company's name as given.
    pub company_name: String,
    /// The name folded for duplicate checks (`text::fold_name`).
    pub name_folded: String,
    /// The template chosen, if any.
    pub template: Option<String>,
    /// Where it stands.
    pub status: SignupStatus,
    /// The next step to fill; none once every step has answers.
    pub current_step: Option<String>,
    /// The furthest step reached, for the funnel.
    pub furthest_step: String,
    /// The answers so far.
    pub answers: Answers,
    /// SHA-256 of the resume token, hex.
    pub resume_token_hash: String,
    /// When its email was verified.
    pub verified_at: Option<DateTime<Utc>>,
    /// The code and link last sent to verify its email, while one is out.
    pub verification: Option<Verification>,
    /// How many verification codes the session has asked for (its start, new addresses and
    /// resends), for the cap.
    pub codes_requested: i64,
    /// Wrong codes tried in all (never reset), for the per-address limit.
    pub failed_tries: i64,
    /// The risk review made when it completed.
    pub review: Option<RiskReview>,
    /// The decision, once made: by whom, when, why (a rejection's reason), and the customer an
    /// approval made.
    pub decision: Option<SignupDecision>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it expires if left untouched.
    pub expires_at: DateTime<Utc>,
    /// Bumped by every change; a change names the version it read.
    pub version: i64,
}

/// The email verification a signup has out: what its code and link hash to, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// HMAC of the one-time code under `KEY_HASH_SECRET`, hex (a six-digit code is too small a
    /// space for a plain hash).
    pub code_hash: String,
    /// SHA-256 of the link's token, hex.
    pub link_hash: String,
    /// When the code and the link stop working.
    pub expires_at: DateTime<Utc>,
    /// Wrong codes tried against it.
    pub attempts: i64,
}

/// The risk review of a completed signup.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskReview {
    /// The sum of the reasons' weights.
    pub score: u32,
    /// The signals found.
    pub reasons: Vec<Reason>,
}

/// How a signup was decided.
#[derive(Debug, Clone, PartialEq)]
pub struct SignupDecision {
    /// `onramp` for the product's policy, or the operator.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The reason given for a rejection.
    pub note: Option<String>,
    /// The customer an approval made (once it exists).
    pub customer_id: Option<CustomerId>,
}

/// A company name found near a signup's: a customer's or another live signup's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameMatch {
    /// `customer` or `signup`.
    pub kind: &'static str,
    /// The customer's or signup's id.
    pub id: String,
    /// Its name as given.
    pub name: String,
}

/// A domain list kept in the registry (`disposable`): every server reads the same one.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDomainList {
    /// Which list.
    pub name: String,
    /// Where it came from (the file an operator loaded).
    pub source: String,
    /// The date the list says it is of, if it says.
    pub list_date: Option<String>,
    /// How many domains.
    pub entries: i64,
    /// The domains, one per line.
    pub domains: String,
    /// When it was stored.
    pub updated_at: DateTime<Utc>,
}

/// Signups that reached the same step and ended the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelCount {
    /// The furthest step they reached.
    pub furthest_step: String,
    /// Where they stand.
    pub status: SignupStatus,
    /// Whether every step has answers.
    pub all_answered: bool,
    /// How many.
    pub signups: i64,
}

/// Which signups to list: by status, oldest change first, after a cursor.
#[derive(Debug, Clone)]
pub struct SignupFilter {
    /// Only these statuses (stored ones; `expired` also finds idle sessions not yet recorded).
    pub status: Option<SignupStatus>,
    /// Only those after this (updated_at, signup_id) key.
    pub after: Option<(DateTime<Utc>, String)>,
    /// How many at most.
    pub limit: i64,
}

/// Signup sessions.
#[async_trait]
pub trait SignupStore: Send + Sync {
    /// Saves a new signup with its event.
    async fn insert_signup(&self, signup: &SignupRecord, event: NewEvent)
        -> Result<(), StoreError>;

    /// One signup by id.
    async fn signup(&self, signup_id: &str) -> Result<Option<SignupRecord>, StoreError>;

    /// Up to `limit` sessions still in progress whose `expires_at` is at or before `now`, the
    /// longest idle first.
    async fn idle_signups(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<SignupRecord>, StoreError>;

    /// Saves a changed signup with its events if the stored one is still at `expected_version`;
    /// otherwise [`StoreError::SignupChanged`] and nothing is written.
    async fn update_signup(
        &self,
        signup: &SignupRecord,
        expected_version: i64,
        events: Vec<NewEvent>,
    ) -> Result<(), StoreError>;

    /// Company names whose folded form starts with `prefix`: customers' (not deleted) and live
    /// signups' (in progress and not idle past `now`, or in review) other than `except`, at most
    /// `limit`.
    async fn names_starting(
        &self,
        prefix: &str,
        now: DateTime<Utc>,
        except: &str,
        limit: i64,
    ) -> Result<Vec<NameMatch>, StoreError>;

    /// The verification codes asked for and the wrong codes tried by the sessions of the
    /// mailbox `mailbox_key` changed since `since`.
    async fn address_activity(
        &self,
        mailbox_key: &str,
        since: DateTime<Utc>,
    ) -> Result<(i64, i64), StoreError>;

    /// Whether a customer (not deleted) has `email` as its contact, in any case.
    async fn contact_email_taken(&self, email: &str) -> Result<bool, StoreError>;

    /// The stored domain list called `name`.
    async fn domain_list(&self, name: &str) -> Result<Option<StoredDomainList>, StoreError>;

    /// Stores (or replaces) a domain list with its event.
    async fn save_domain_list(
        &self,
        list: &StoredDomainList,
        event: NewEvent,
    ) -> Result<(), StoreError>;

    /// The funnel's raw counts of signups started since `since`: by furthest step, status (an
    /// idle session in progress counts as `expired`) and whether every step has answers.
    async fn funnel_counts(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<FunnelCount>, StoreError>;

    /// Signups by `filter`, oldest change first.
    async fn signups(&self, filter: &SignupFilter) -> Result<Vec<SignupRecord>, StoreError>;

    /// Deletes up to `limit` signups that ended without a customer (abandoned, expired or
    /// rejected) and last changed at or before `before`, with their delivery log rows; how many
    /// signups went.
    async fn purge_signups(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError>;
}
