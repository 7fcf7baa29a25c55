//! Persistence of customer accounts: users, their portal sessions and the login throttle, and
//! the [`AccountStore`] trait each backend implements. Passwords are stored as argon2id hashes,
//! session tokens and emailed links as SHA-256 digests; nothing here can sign anyone in.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::account::{LinkPurpose, UserRole, UserStatus};
use crate::domain::{CustomerId, NewEvent};

/// The one emailed link a user has out (a newer one replaces it).
#[derive(Debug, Clone, PartialEq)]
pub struct UserLink {
    /// SHA-256 of the link's token.
    pub hash: String,
    /// What it lets its holder do.
    pub purpose: LinkPurpose,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A customer's user. Its `Debug` shows a fingerprint of the password hash, never the hash.
#[derive(Clone, PartialEq)]
pub struct UserRecord {
    /// Its id (`usr_` and a time-ordered UUID).
    pub user_id: String,
    /// The customer they belong to.
    pub customer_id: CustomerId,
    /// Their email, as given.
    pub email: String,
    /// The email in lower case: unique across Onramp, what logins find.
    pub email_key: String,
    /// Their name, when given.
    pub name: Option<String>,
    /// What they may do.
    pub role: UserRole,
    /// Invited or active.
    pub status: UserStatus,
    /// The argon2id hash (PHC string) of their password, once they have one.
    pub password_hash: Option<String>,
    /// Whether the password is temporary and must be changed before anything else.
    pub password_change_required: bool,
    /// When a temporary password stops working.
    pub password_expires_at: Option<DateTime<Utc>>,
    /// The link out, if any.
    pub link: Option<UserLink>,
    /// Password resets asked for since `resets_since`.
    pub resets_requested: i64,
    /// When the current reset window began.
    pub resets_since: Option<DateTime<Utc>>,
    /// The signup they came from.
    pub signup_id: Option<String>,
    /// Who invited them (an actor name).
    pub invited_by: Option<String>,
    /// When they were made.
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
    /// When they last signed in.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Bumped by every change.
    pub version: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use sha2::Digest;
        let fingerprint = self
            .password_hash
            .as_ref()
            .map(|h| hex::encode(&sha2::Sha256::digest(h.as_bytes())[..6]));
        f.debug_struct("UserRecord")
            .field("user_id", &self.user_id)
            .field("customer_id", &self.customer_id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("status", &self.status)
            .field("password", &fingerprint)
            .field("password_change_required", &self.password_change_required)
            .field("password_expires_at", &self.password_expires_at)
            .field(
                "link",
                &self.link.as_ref().map(|l| (l.purpose, l.expires_at)),
            )
            .field("resets_requested", &self.resets_requested)
            .field("signup_id", &self.signup_id)
            .field("invited_by", &self.invited_by)
            .field("last_login_at", &self.last_login_at)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A portal session.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalSessionRecord {
    /// SHA-256 of the session token.
    pub token_hash: String,
    /// Whose.
    pub user_id: String,
    /// Their customer.
    pub customer_id: CustomerId,
    /// When it began.
    pub created_at: DateTime<Utc>,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// What a change to a user does to their sessions.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionChange {
    /// Leaves them.
    Keep,
    /// Adds one (a login).
    Start(PortalSessionRecord),
    /// Ends every one but the session with this token hash (a password change).
    EndAllBut(String),
    /// Ends every one (a reset).
    EndAll,
}

/// Whether a login attempt may go on.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginAttempt {
    /// It may, and is counted as a failure until the caller clears the count: the failures in a
    /// row with this one, and the lock they set (for the attempts that come while it runs).
    Allowed {
        /// Failures in a row, this attempt included.
        failures: i64,
        /// The lock this count set, if any.
        locked_until: Option<DateTime<Utc>>,
    },
    /// A lock is on until then; the attempt is not counted.
    Locked(DateTime<Utc>),
}

/// Failed logins in a row for one address.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginThrottle {
    /// How many.
    pub failures: i64,
    /// Until when logins are refused.
    pub locked_until: Option<DateTime<Utc>>,
}

/// Customer accounts.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Saves a new user with its event; [`StoreError::UserEmailTaken`] when their email has an
    /// account already.
    async fn insert_user(&self, user: &UserRecord, event: NewEvent) -> Result<(), StoreError>;

    /// One user by id.
    async fn user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError>;

    /// The user whose lower-case email is `email_key`.
    async fn user_by_email(&self, email_key: &str) -> Result<Option<UserRecord>, StoreError>;

    /// The user whose link has the hash `link_hash`.
    async fn user_by_link(&self, link_hash: &str) -> Result<Option<UserRecord>, StoreError>;

    /// A customer's users, oldest first.
    async fn users_of(&self, customer_id: &CustomerId) -> Result<Vec<UserRecord>, StoreError>;

    /// Saves a changed user, their events and what it does to their sessions, if the stored
    /// user is still at `expected_version`; otherwise [`StoreError::UserChanged`] and nothing
    /// is written.
    async fn update_user(
        &self,
        user: &UserRecord,
        expected_version: i64,
        events: Vec<NewEvent>,
        sessions: SessionChange,
    ) -> Result<(), StoreError>;

    /// Deletes a user still at `expected_version`, with their sessions and its event; an active
    /// owner only while another active owner remains ([`StoreError::LastOwner`]), checked
    /// with the customer's owners locked, so two owners removing each other cannot both win.
    async fn delete_user(
        &self,
        user: &UserRecord,
        expected_version: i64,
        event: NewEvent,
    ) -> Result<(), StoreError>;

    /// Ends every session of `customer_id`'s users and, with `delete_users`, deletes the users
    /// too, with `events`, in one transaction; how many users went.
    async fn offboard_users(
        &self,
        customer_id: &CustomerId,
        delete_users: bool,
        events: Vec<NewEvent>,
    ) -> Result<u64, StoreError>;

    /// The session whose token hash is `token_hash`, if it has not ended by `now`.
    async fn portal_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PortalSessionRecord>, StoreError>;

    /// Ends one session.
    async fn end_portal_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// The failed logins in a row of `key`.
    async fn login_throttle(&self, key: &str) -> Result<Option<LoginThrottle>, StoreError>;

    /// Begins a login attempt for `key` at `now`, one attempt per key at a time: refused while
    /// a lock is on; otherwise counted as a failure before the password is checked (so a burst
    /// of parallel attempts cannot pass the lock), with the lock `lock` gives for the new
    /// count. A success clears the count ([`AccountStore::clear_login_failures`]).
    async fn begin_login_attempt(
        &self,
        key: &str,
        now: DateTime<Utc>,
        lock: &(dyn Fn(i64) -> Option<DateTime<Utc>> + Send + Sync),
    ) -> Result<LoginAttempt, StoreError>;

    /// Appends an event about a user that changes no record (a lockout).
    async fn append_user_event(&self, event: NewEvent) -> Result<(), StoreError>;

    /// Forgets `key`'s failed logins (a successful login or a reset).
    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;

    /// Up to `limit` invitations that lapsed: invited users whose link expired by `now`, or
    /// who were invited before `unsent_before` and never sent a link.
    async fn lapsed_invitations(
        &self,
        now: DateTime<Utc>,
        unsent_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<UserRecord>, StoreError>;

    /// Ends sessions and failed-login records past their time before `now`, at most `limit`
    /// of each; how many went.
    async fn purge_account_leftovers(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, StoreError>;
}
