//! Persistence of self-serve signups: the session record and the [`SignupStore`] trait each
//! backend implements.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use super::StoreError;
use crate::domain::signup::SignupStatus;
use crate::domain::NewEvent;

/// The answers of a signup, by step and then by field.
pub type Answers = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

/// One signup session.
#[derive(Debug, Clone, PartialEq)]
pub struct SignupRecord {
    /// Its id.
    pub signup_id: String,
    /// The email it started with, in canonical form.
    pub email: String,
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
}
