//! The portal's side of accounts: login (with the lockout), sessions, changing a password,
//! resetting a forgotten one by an emailed link, and accepting an invitation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::{password, AccountError, Accounts, UserView, MAX_RESETS_PER_DAY, SESSION_PREFIX};
use crate::domain::account::{lockout, login_key, LinkPurpose, UserRole, UserStatus};
use crate::domain::events::{EventBody, UserLockedOut, UserPasswordChanged, UserRef};
use crate::domain::{CustomerId, CustomerStatus, Email as Address, Invalid, NewEvent};
use crate::services::opaque_tokens;
use crate::store::accounts::{LoginAttempt, PortalSessionRecord, SessionChange, UserRecord};

/// A login.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's email.
    pub email: String,
    /// Its password (or the temporary one from the welcome email).
    pub password: String,
}

/// A password change by a signed-in user.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The password now (the temporary one, at first login).
    pub current_password: String,
    /// The new one.
    pub new_password: String,
}

/// A request for a reset link.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The account's email.
    pub email: String,
}

/// A new password, by the reset link's token.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    /// The token from the reset link.
    pub token: String,
    /// The new password.
    pub new_password: String,
}

/// A first password, by an invitation's (or a welcome's) link token.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// The token from the link.
    pub token: String,
    /// The password chosen.
    pub password: String,
}

macro_rules! redacted_debug {
    ($t:ty, $($field:ident),*) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($field), &"[redacted]"))*
                    .finish_non_exhaustive()
            }
        }
    };
}
redacted_debug!(LoginRequest, password);
redacted_debug!(ChangePassword, current_password, new_password);
redacted_debug!(ResetConfirm, token, new_password);
redacted_debug!(AcceptInvitation, token, password);

/// A new portal session.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PortalLogin {
    /// Sent as `Authorization: Bearer` on portal calls; shown this once, stored only hashed.
    pub session_token: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
    /// Whether the password must be changed before anything else works.
    pub password_change_required: bool,
    /// Who signed in.
    pub user: UserView,
}

impl std::fmt::Debug for PortalLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalLogin")
            .field("session_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

/// The customer, as its own users see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortalCustomer {
    /// Its id.
    pub customer_id: String,
    /// Its name.
    pub customer_name: String,
    /// Where it stands.
    pub status: CustomerStatus,
}

/// The signed-in user and their customer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortalMe {
    /// The user.
    pub user: UserView,
    /// Their customer.
    pub customer: PortalCustomer,
}

/// A user signed in to the portal, as a request's session shows them.
#[derive(Clone)]
pub struct PortalPrincipal {
    /// The user.
    pub user_id: String,
    /// Their customer: the only one the session reaches.
    pub customer_id: CustomerId,
    /// Their role now.
    pub role: UserRole,
    /// Whether the password must be changed before anything else.
    pub password_change_required: bool,
    session_hash: String,
}

impl std::fmt::Debug for PortalPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalPrincipal")
            .field("user_id", &self.user_id)
            .field("customer_id", &self.customer_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl PortalPrincipal {
    /// Refuses while the password is temporary: only `/portal/me`, `/portal/password` and
    /// logout work until it is changed.
    pub fn ready(&self) -> Result<(), AccountError> {
        if self.password_change_required {
            Err(AccountError::PasswordChangeRequired)
        } else {
            Ok(())
        }
    }
}

fn user_event(user: &UserRecord, body: EventBody, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        body,
        actor: format!("user:{}", user.user_id),
        customer_id: Some(user.customer_id.clone()),
        occurred_at: at,
        request_id: None,
    }
}

fn password_field(field: &str, value: &str) -> Result<Zeroizing<String>, AccountError> {
    if value.is_empty() {
        return Err(AccountError::Invalid(vec![Invalid::new(
            "required",
            format!("{field} is required"),
        )
        .at(field)]));
    }
    if value.chars().count() > crate::domain::account::MAX_PASSWORD_CHARS {
        return Err(AccountError::Invalid(vec![Invalid::new(
            "too_long",
            format!(
                "{field} has at most {} characters",
                crate::domain::account::MAX_PASSWORD_CHARS
            ),
        )
        .at(field)]));
    }
    Ok(Zeroizing::new(value.to_owned()))
}

/// A link token's digest; a token not of a link's form is refused before any lookup.
fn link_hash(token: &str) -> Result<String, AccountError> {
    if !opaque_tokens::well_formed(token, super::LINK_PREFIX) {
        return Err(invalid_link());
    }
    Ok(opaque_tokens::digest(token))
}

fn invalid_link() -> AccountError {
    AccountError::Invalid(vec![Invalid::new(
        "invalid_or_expired",
        "the link is not valid or has expired; ask for a new one",
    )
    .at("token")])
}

impl Accounts {
    fn check_new_password(
        &self,
        field: &str,
        value: &str,
        email: &str,
    ) -> Result<Zeroizing<String>, AccountError> {
        self.policy()
            .check_password(value, email)
            .map_err(|e| AccountError::Invalid(vec![e.at(field)]))?;
        Ok(Zeroizing::new(value.to_owned()))
    }

    /// `user` with `password` (hashed now) in place of any before it, temporary or not, and
    /// any emailed link void; with its `user.password_changed` event (`how`).
    async fn with_password(
        &self,
        user: &UserRecord,
        password: Zeroizing<String>,
        how: &str,
    ) -> Result<(UserRecord, NewEvent), AccountError> {
        let now = self.clock.now();
        let mut next = user.clone();
        next.password_hash = Some(password::hash(password).await?);
        next.password_change_required = false;
        next.password_expires_at = None;
        next.link = None;
        next.updated_at = now;
        next.version = user.version + 1;
        let event = user_event(
            user,
            EventBody::UserPasswordChanged(UserPasswordChanged {
                user_id: user.user_id.clone(),
                how: how.into(),
            }),
            now,
        );
        Ok((next, event))
    }

    fn session_for(&self, user: &UserRecord) -> (String, PortalSessionRecord) {
        let token = opaque_tokens::mint(SESSION_PREFIX);
        let now = self.clock.now();
        let record = PortalSessionRecord {
            token_hash: opaque_tokens::digest(&token),
            user_id: user.user_id.clone(),
            customer_id: user.customer_id.clone(),
            created_at: now,
            expires_at: now + chrono::Duration::hours(i64::from(self.policy().session_hours)),
        };
        (token, record)
    }

    async fn customer_open(&self, customer_id: &CustomerId) -> Result<(), AccountError> {
        match self.customers.get_customer(customer_id.as_str()).await? {
            Some(c) if !c.status.is_offboarded() => Ok(()),
            _ => Err(AccountError::CustomerClosed(
                customer_id.as_str().to_owned(),
            )),
        }
    }

    /// Signs a user in. A wrong address or password is the same refusal, after the same work;
    /// five in a row lock the address out (for any address, with or without an account) for
    /// 30 s, doubling with each further failure up to an hour.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, req: &LoginRequest) -> Result<PortalLogin, AccountError> {
        let email =
            Address::parse(&req.email).map_err(|e| AccountError::Invalid(vec![e.at("email")]))?;
        let password = password_field("password", &req.password)?;
        let key = login_key(email.as_str());
        let now = self.clock.now();
        let attempt = self.begin_attempt(&key).await?;
        let user = self.store.user_by_email(&key).await?;
        let stored = user
            .as_ref()
            .filter(|u| u.status == UserStatus::Active)
            .and_then(|u| u.password_hash.clone());
        if !password::verify(password, stored).await? {
            if let Some(user) = &user {
                self.record_lockout(user, attempt).await;
            }
            return Err(AccountError::BadCredentials);
        }
        let user = user.ok_or(AccountError::BadCredentials)?;
        self.store.clear_login_failures(&key).await?;
        if user.password_change_required && user.password_expires_at.is_some_and(|at| at <= now) {
            return Err(AccountError::TemporaryPasswordExpired);
        }
        self.customer_open(&user.customer_id).await?;
        // Another request may have changed the user meanwhile (a reset asked for): read again.
        let mut user = user;
        for _ in 0..3 {
            let (token, session) = self.session_for(&user);
            let expires_at = session.expires_at;
            let mut next = user.clone();
            next.last_login_at = Some(now);
            next.updated_at = now;
            next.version = user.version + 1;
            let event = user_event(
                &user,
                EventBody::UserLoggedIn(UserRef {
                    user_id: user.user_id.clone(),
                }),
                now,
            );
            match self
                .store
                .update_user(
                    &next,
                    user.version,
                    vec![event],
                    SessionChange::Start(session),
                )
                .await
            {
                Ok(()) => {
                    return Ok(PortalLogin {
                        session_token: token,
                        expires_at,
                        password_change_required: next.password_change_required,
                        user: UserView::from(&next),
                    })
                }
                Err(crate::store::StoreError::UserChanged(_)) => {
                    user = self
                        .store
                        .user(&user.user_id)
                        .await?
                        .filter(|u| u.status == UserStatus::Active)
                        .ok_or(AccountError::BadCredentials)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AccountError::Changed(user.user_id))
    }

    /// Begins a password check for the address `key`: refused while it is locked out, else
    /// counted as a failure until the caller clears the count; returns the failures in a row
    /// with this one and the lock its failure sets, if any.
    async fn begin_attempt(&self, key: &str) -> Result<(i64, Option<DateTime<Utc>>), AccountError> {
        let now = self.clock.now();
        let lock = move |failures: i64| {
            lockout(failures)
                .map(|d| now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(1)))
        };
        match self.store.begin_login_attempt(key, now, &lock).await? {
            LoginAttempt::Locked(until) => Err(AccountError::LockedOut {
                retry_after_secs: (until - now).num_seconds().max(1) as u64,
            }),
            LoginAttempt::Allowed {
                failures,
                locked_until,
            } => Ok((failures, locked_until)),
        }
    }

    /// Records that a failed attempt locked `user`'s address out, if it did (an event; the
    /// user's record is left as it is, so their own requests are not disturbed).
    async fn record_lockout(&self, user: &UserRecord, attempt: (i64, Option<DateTime<Utc>>)) {
        let (failures, Some(until)) = attempt else {
            return;
        };
        let event = user_event(
            user,
            EventBody::UserLockedOut(UserLockedOut {
                user_id: user.user_id.clone(),
                failures,
                until,
            }),
            self.clock.now(),
        );
        if let Err(e) = self.store.append_user_event(event).await {
            tracing::warn!(user_id = %user.user_id, error = %e, "cannot record the lockout event");
        }
        tracing::warn!(user_id = %user.user_id, failures, "login locked out");
    }

    /// The user a portal session token opens.
    pub async fn authenticate(&self, token: &str) -> Result<PortalPrincipal, AccountError> {
        if !opaque_tokens::well_formed(token, SESSION_PREFIX) {
            return Err(AccountError::BadSession);
        }
        let hash = opaque_tokens::digest(token);
        let session = self
            .store
            .portal_session(&hash, self.clock.now())
            .await?
            .ok_or(AccountError::BadSession)?;
        let user = self
            .store
            .user(&session.user_id)
            .await?
            .filter(|u| u.status == UserStatus::Active && u.customer_id == session.customer_id)
            .ok_or(AccountError::BadSession)?;
        self.customer_open(&user.customer_id)
            .await
            .map_err(|_| AccountError::BadSession)?;
        Ok(PortalPrincipal {
            user_id: user.user_id,
            customer_id: user.customer_id,
            role: user.role,
            password_change_required: user.password_change_required,
            session_hash: hash,
        })
    }

    /// The signed-in user and their customer (works while the password must change).
    pub async fn me(&self, p: &PortalPrincipal) -> Result<PortalMe, AccountError> {
        let user = self
            .store
            .user(&p.user_id)
            .await?
            .ok_or(AccountError::BadSession)?;
        let customer = self
            .customers
            .get_customer(p.customer_id.as_str())
            .await?
            .ok_or(AccountError::BadSession)?;
        Ok(PortalMe {
            user: UserView::from(&user),
            customer: PortalCustomer {
                customer_id: customer.id.as_str().to_owned(),
                customer_name: customer.name.as_str().to_owned(),
                status: customer.status,
            },
        })
    }

    /// Ends this session.
    pub async fn logout(&self, p: &PortalPrincipal) -> Result<(), AccountError> {
        Ok(self.store.end_portal_session(&p.session_hash).await?)
    }

    /// Changes the signed-in user's password (knowing the current one): clears a temporary
    /// password's requirement and ends every other session of theirs.
    #[tracing::instrument(skip_all, fields(user_id = %p.user_id))]
    pub async fn change_password(
        &self,
        p: &PortalPrincipal,
        req: &ChangePassword,
    ) -> Result<UserView, AccountError> {
        let current = password_field("current_password", &req.current_password)?;
        let user = self
            .store
            .user(&p.user_id)
            .await?
            .ok_or(AccountError::BadSession)?;
        let new = self.check_new_password("new_password", &req.new_password, &user.email)?;
        if *new == *current {
            return Err(AccountError::Invalid(vec![Invalid::new(
                "unchanged",
                "the new password must differ from the current one",
            )
            .at("new_password")]));
        }
        // Wrong current passwords count toward the address's lockout, like failed logins: a
        // stolen session cannot guess the password without limit.
        let attempt = self.begin_attempt(&user.email_key).await?;
        if !password::verify(current, user.password_hash.clone()).await? {
            self.record_lockout(&user, attempt).await;
            return Err(AccountError::Invalid(vec![Invalid::new(
                "wrong_password",
                "the current password is wrong",
            )
            .at("current_password")]));
        }
        self.store.clear_login_failures(&user.email_key).await?;
        let (next, event) = self.with_password(&user, new, "changed").await?;
        self.store
            .update_user(
                &next,
                user.version,
                vec![event],
                SessionChange::EndAllBut(p.session_hash.clone()),
            )
            .await?;
        Ok(UserView::from(&next))
    }

    /// Asks for a reset link for `email`. The answer is the same, and as quick, whether or not
    /// the address has an account: only the address's form is checked before it, the rest runs
    /// after it; at most [`MAX_RESETS_PER_DAY`] links a day go to one user, the rest of the
    /// requests are dropped quietly.
    pub async fn request_reset(&self, req: &ResetRequest) -> Result<(), AccountError> {
        let email =
            Address::parse(&req.email).map_err(|e| AccountError::Invalid(vec![e.at("email")]))?;
        let this = self.clone();
        let key = login_key(email.as_str());
        tokio::spawn(async move {
            if let Err(e) = this.reset_requested(&key).await {
                tracing::warn!(error = %e, "a password reset request failed");
            }
        });
        Ok(())
    }

    /// What a reset request does for an account's address.
    async fn reset_requested(&self, key: &str) -> Result<(), AccountError> {
        // Requests for one user at once each count: a lost race reads the user again.
        for _ in 0..5 {
            let Some(user) = self.store.user_by_email(key).await? else {
                return Ok(());
            };
            if user.status != UserStatus::Active {
                return Ok(());
            }
            let now = self.clock.now();
            let mut next = user.clone();
            match user.resets_since {
                Some(since) if now - since < chrono::Duration::days(1) => {
                    if user.resets_requested >= MAX_RESETS_PER_DAY {
                        tracing::warn!(user_id = %user.user_id, "password reset requests over the daily limit");
                        return Ok(());
                    }
                    next.resets_requested = user.resets_requested + 1;
                }
                _ => {
                    next.resets_since = Some(now);
                    next.resets_requested = 1;
                }
            }
            next.updated_at = now;
            next.version = user.version + 1;
            let event = user_event(
                &user,
                EventBody::UserPasswordResetRequested(UserRef {
                    user_id: user.user_id.clone(),
                }),
                now,
            );
            match self
                .store
                .update_user(&next, user.version, vec![event], SessionChange::Keep)
                .await
            {
                Ok(()) => return Ok(()),
                Err(crate::store::StoreError::UserChanged(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AccountError::Changed(key.to_owned()))
    }

    /// The user a link token opens for `purpose`, or the token field's refusal.
    async fn user_by_link(
        &self,
        token: &str,
        purpose: LinkPurpose,
    ) -> Result<UserRecord, AccountError> {
        let hash = link_hash(token)?;
        let now = self.clock.now();
        self.store
            .user_by_link(&hash)
            .await?
            .filter(|u| {
                u.link
                    .as_ref()
                    .is_some_and(|l| l.purpose == purpose && l.expires_at > now)
            })
            .ok_or_else(invalid_link)
    }

    /// Sets a new password by a reset link: the link is spent, every session ends, and the
    /// address's failed logins are forgotten.
    pub async fn confirm_reset(&self, req: &ResetConfirm) -> Result<(), AccountError> {
        let user = self.user_by_link(&req.token, LinkPurpose::Reset).await?;
        let new = self.check_new_password("new_password", &req.new_password, &user.email)?;
        self.customer_open(&user.customer_id).await?;
        let (next, event) = self.with_password(&user, new, "reset").await?;
        self.store
            .update_user(&next, user.version, vec![event], SessionChange::EndAll)
            .await
            .map_err(|e| match e {
                // The link was spent by a concurrent request.
                crate::store::StoreError::UserChanged(_) => invalid_link(),
                other => other.into(),
            })?;
        self.store.clear_login_failures(&user.email_key).await?;
        Ok(())
    }

    /// Sets a first password by an invitation's (or a welcome's) link and signs the user in.
    pub async fn accept(&self, req: &AcceptInvitation) -> Result<PortalLogin, AccountError> {
        self.accept_with(req, true)
            .await?
            .ok_or_else(|| AccountError::Internal("a session was asked for".into()))
    }

    /// Sets a first password by an invitation's (or a welcome's) link, without a session (the
    /// link's page: the person signs in next).
    pub async fn set_first_password(&self, req: &AcceptInvitation) -> Result<(), AccountError> {
        self.accept_with(req, false).await.map(|_| ())
    }

    async fn accept_with(
        &self,
        req: &AcceptInvitation,
        start_session: bool,
    ) -> Result<Option<PortalLogin>, AccountError> {
        let user = self
            .user_by_link(&req.token, LinkPurpose::SetPassword)
            .await?;
        let new = self.check_new_password("password", &req.password, &user.email)?;
        self.customer_open(&user.customer_id).await?;
        let now = self.clock.now();
        let joined = user.status == UserStatus::Invited;
        let (mut next, set) = self.with_password(&user, new, "set").await?;
        next.status = UserStatus::Active;
        next.last_login_at = Some(now);
        let mut events = vec![set];
        if joined {
            events.push(user_event(
                &user,
                EventBody::UserJoined(UserRef {
                    user_id: user.user_id.clone(),
                }),
                now,
            ));
        }
        let (token, session) = self.session_for(&next);
        let expires_at = session.expires_at;
        let sessions = if start_session {
            SessionChange::Start(session)
        } else {
            SessionChange::Keep
        };
        self.store
            .update_user(&next, user.version, events, sessions)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::UserChanged(_) => invalid_link(),
                other => other.into(),
            })?;
        Ok(start_session.then(|| PortalLogin {
            session_token: token,
            expires_at,
            password_change_required: false,
            user: UserView::from(&next),
        }))
    }
}
