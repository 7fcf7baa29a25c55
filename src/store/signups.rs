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
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it expires if left untouched.
    pub expires_at: DateTime<Utc>,
    /// Bumped by every change; a change names the version it read.
    pub version: i64,
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
