//! Customer accounts: the people of a customer who sign in to the portal. A signup's verified
//! email becomes its customer's `owner`; owners and admins (and operators) invite more users
//! with roles `owner`, `admin` or `member`. Passwords are argon2id hashes; the welcome email
//! carries a temporary password that must be changed at first login, or a link to choose one
//! (the product's `[accounts] welcome`); invitations and password resets are emailed links.
//! Every secret (temporary password, link token) is made when its message is sent, by
//! [`Accounts::issue`], and lives in that message only: never in the registry (only hashes), a
//! log or an event. A session reaches its own customer only.
//!
//! The capability is [`Accounts`]; it refuses with an [`AccountError`].

mod password;
mod portal;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::{invalid_fields_message, Actor, Clock, ErrorKind, Forbidden};
use crate::domain::account::{
    login_key, AccountPolicy, LinkPurpose, UserRole, UserStatus, WelcomeStyle,
};
use crate::domain::events::{EventBody, UserCreated, UserInvited, UserRemoved};
use crate::domain::{Customer, CustomerId, Email as Address, FieldError, Invalid, NewEvent, Role};
use crate::product::Product;
use crate::store::accounts::{AccountStore, SessionChange, UserLink, UserRecord};
use crate::store::{CustomerStore, EventFilter, EventStore, StoreError};

pub use portal::{
    AcceptInvitation, ChangePassword, LoginRequest, PortalCustomer, PortalLogin, PortalMe,
    PortalPrincipal, ResetConfirm, ResetRequest,
};

/// The most users a customer has.
pub const MAX_USERS: usize = 200;
/// The most password resets a user may ask for in a day (the rest are ignored, silently).
pub const MAX_RESETS_PER_DAY: i64 = 5;
/// The most invitations a customer sends in a day (removing an invited user gives none back).
pub const MAX_INVITATIONS_PER_DAY: usize = 50;

/// A portal session token's prefix.
pub const SESSION_PREFIX: &str = "onr_ps_";
/// An account link token's prefix (invitation, welcome, reset).
pub const LINK_PREFIX: &str = "onr_ul_";

/// A temporary password: four groups of four from letters and digits no one confuses
/// (about 91 bits).
fn temporary_password() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    let mut s = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
    }
    Zeroizing::new(s)
}

/// A user as operators and their own customer see them (never a hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Their id.
    pub user_id: String,
    /// Their customer.
    pub customer_id: String,
    /// Their email.
    pub email: String,
    /// Their name, when given.
    pub name: Option<String>,
    /// `owner`, `admin` or `member`.
    pub role: UserRole,
    /// `invited` (no password yet) or `active`.
    pub status: UserStatus,
    /// Whether they must change a temporary password before anything else.
    pub password_change_required: bool,
    /// Who invited them.
    pub invited_by: Option<String>,
    /// The signup they came from.
    pub signup_id: Option<String>,
    /// When they were made.
    pub created_at: DateTime<Utc>,
    /// When they last signed in.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            user_id: u.user_id.clone(),
            customer_id: u.customer_id.as_str().to_owned(),
            email: u.email.clone(),
            name: u.name.clone(),
            role: u.role,
            status: u.status,
            password_change_required: u.password_change_required,
            invited_by: u.invited_by.clone(),
            signup_id: u.signup_id.clone(),
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

/// A customer's users.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    /// Oldest first.
    pub items: Vec<UserView>,
}

/// An invitation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteUser {
    /// Where the invitation goes; their login.
    pub email: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
    /// Their name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Who is managing a customer's users: an operator, or one of the customer's own users.
#[derive(Clone, Copy)]
pub enum Caller<'a> {
    /// An operator (admin token or CLI).
    Operator(&'a Actor),
    /// A user signed in to the portal.
    User(&'a PortalPrincipal),
}

impl Caller<'_> {
    fn name(&self) -> String {
        match self {
            Caller::Operator(a) => a.name.clone(),
            Caller::User(p) => format!("user:{}", p.user_id),
        }
    }

    fn request_id(&self) -> Option<String> {
        match self {
            Caller::Operator(a) => a.request_id.clone(),
            Caller::User(_) => None,
        }
    }
}

/// A message's secret, made as it is sent, or why the message no longer applies.
pub enum AccountIssue {
    /// Send it.
    Issued(AccountSecret),
    /// Skip it, for this reason.
    Skip(String),
}

/// What a welcome, invitation or reset message carries.
pub struct AccountSecret {
    /// Where it goes (the user's email now).
    pub recipient: String,
    /// The customer's name.
    pub customer_name: String,
    /// The user's role.
    pub role: UserRole,
    /// A temporary password (a welcome by temporary password).
    pub temporary_password: Option<Zeroizing<String>>,
    /// A link token (invitation, welcome by link, reset).
    pub link_token: Option<Zeroizing<String>>,
    /// When the password or link stops working.
    pub expires_at: DateTime<Utc>,
}

/// Which message an account event calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountMessage {
    /// A signup's owner: a temporary password or a set-password link.
    Welcome,
    /// An invitation: a set-password link.
    Invitation,
    /// A reset: a reset link.
    PasswordReset,
}

/// Why an account operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// The operator's role does not allow this.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The user's role does not allow this.
    #[error("a {role} cannot {action}")]
    RoleTooLow {
        /// Their role.
        role: UserRole,
        /// What they tried.
        action: &'static str,
    },
    /// The email or the password is wrong (which, is not said).
    #[error("the email or the password is wrong")]
    BadCredentials,
    /// The temporary password was right but has expired.
    #[error("the temporary password has expired; ask for a password reset (POST /api/v1/portal/password-reset)")]
    TemporaryPasswordExpired,
    /// Too many failed logins in a row for this address.
    #[error("too many failed logins for this address; try again in {retry_after_secs} s or reset the password")]
    LockedOut {
        /// Seconds until logins are taken again.
        retry_after_secs: u64,
    },
    /// No session opens with the token sent.
    #[error("the session token is missing, unknown or expired; log in again")]
    BadSession,
    /// The session's password is temporary.
    #[error("the password must be changed first (POST /api/v1/portal/password)")]
    PasswordChangeRequired,
    /// The customer's account is closed.
    #[error("customer '{0}' is offboarded; its users cannot sign in")]
    CustomerClosed(String),
    /// No such customer (or not one the caller may see).
    #[error("customer '{0}' not found")]
    CustomerNotFound(String),
    /// No such user in this customer.
    #[error("user '{0}' not found")]
    UserNotFound(String),
    /// The email belongs to an account already.
    #[error("'{0}' already has an account")]
    EmailTaken(String),
    /// The last owner cannot go.
    #[error("user '{0}' is the customer's last owner; make another owner first")]
    LastOwner(String),
    /// The customer has as many users as it may.
    #[error("customer '{0}' has {MAX_USERS} users, the most it may have")]
    TooManyUsers(String),
    /// Another request changed the user first.
    #[error("user '{0}' changed while this request was saving; retry")]
    Changed(String),
    /// Too many passwords are being checked at once.
    #[error("too many sign-ins at once; retry in a second")]
    Busy,
    /// The customer invited as many people as it may today.
    #[error("customer '{0}' has sent {MAX_INVITATIONS_PER_DAY} invitations in the last day, the most it may; retry tomorrow")]
    TooManyInvitations(String),
    /// Something that should not fail did.
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UserChanged(id) => AccountError::Changed(id),
            StoreError::UserEmailTaken(email) => AccountError::EmailTaken(email),
            StoreError::LastOwner(id) => AccountError::LastOwner(id),
            other => AccountError::Store(other),
        }
    }
}

impl AccountError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        use AccountError as A;
        match self {
            A::Invalid(_) => ErrorKind::Invalid,
            A::Forbidden(_) | A::RoleTooLow { .. } | A::PasswordChangeRequired => {
                ErrorKind::Forbidden
            }
            A::BadCredentials | A::TemporaryPasswordExpired | A::BadSession => {
                ErrorKind::Unauthenticated
            }
            A::LockedOut { .. } | A::Busy | A::TooManyInvitations(_) => ErrorKind::Limited,
            A::CustomerClosed(_) => ErrorKind::Forbidden,
            A::CustomerNotFound(_) | A::UserNotFound(_) => ErrorKind::NotFound,
            A::EmailTaken(_) | A::LastOwner(_) | A::TooManyUsers(_) | A::Changed(_) => {
                ErrorKind::Conflict
            }
            A::Internal(_) => ErrorKind::Internal,
            A::Store(e) => super::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        use AccountError as A;
        match self {
            A::Invalid(_) => "validation_failed",
            A::Forbidden(_) | A::RoleTooLow { .. } => "forbidden",
            A::BadCredentials => "invalid_credentials",
            A::TemporaryPasswordExpired => "temporary_password_expired",
            A::LockedOut { .. } => "login_locked",
            A::Busy => "busy",
            A::TooManyInvitations(_) => "invitation_limit",
            A::BadSession => "unauthorized",
            A::PasswordChangeRequired => "password_change_required",
            A::CustomerClosed(_) => "customer_offboarded",
            A::CustomerNotFound(_) => "customer_not_found",
            A::UserNotFound(_) => "user_not_found",
            A::EmailTaken(_) => "user_exists",
            A::LastOwner(_) => "last_owner",
            A::TooManyUsers(_) => "user_limit",
            A::Changed(_) => "user_changed",
            A::Internal(_) => "internal_error",
            A::Store(e) => super::store_code(e),
        }
    }

    /// Seconds until a limited caller may try again.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AccountError::LockedOut { retry_after_secs } => Some(*retry_after_secs),
            AccountError::Busy => Some(1),
            AccountError::TooManyInvitations(_) => Some(3600),
            _ => None,
        }
    }
}

/// The accounts capability.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    customers: Arc<dyn CustomerStore>,
    events: Arc<dyn EventStore>,
    product: Arc<Product>,
    clock: Arc<dyn Clock>,
}

impl Accounts {
    /// The capability over its store, the customers its users belong to, the event log (which
    /// counts a customer's invitations), the product (its account rules) and the clock.
    pub fn new(
        store: Arc<dyn AccountStore>,
        customers: Arc<dyn CustomerStore>,
        events: Arc<dyn EventStore>,
        product: Arc<Product>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            customers,
            events,
            product,
            clock,
        }
    }

    fn policy(&self) -> &AccountPolicy {
        &self.product.accounts
    }

    fn event(
        &self,
        customer_id: &CustomerId,
        body: EventBody,
        actor: String,
        request_id: Option<String>,
    ) -> NewEvent {
        NewEvent {
            body,
            actor,
            customer_id: Some(customer_id.clone()),
            occurred_at: self.clock.now(),
            request_id,
        }
    }

    /// The customer `customer_id` names, as `caller` may see it: operators see any, a user only
    /// their own (another's reads as not found).
    async fn customer_for(
        &self,
        caller: Caller<'_>,
        customer_id: &str,
    ) -> Result<Customer, AccountError> {
        let not_found = || AccountError::CustomerNotFound(customer_id.to_owned());
        if let Caller::User(p) = caller {
            p.ready()?;
            if p.customer_id.as_str() != customer_id {
                return Err(not_found());
            }
        }
        let id =
            CustomerId::parse(customer_id, &self.product.customer_id).map_err(|_| not_found())?;
        match self.customers.get_customer(id.as_str()).await? {
            Some(c) if c.status != crate::domain::CustomerStatus::Deleted => Ok(c),
            _ => Err(not_found()),
        }
    }

    /// A customer's users (operators with any role; the customer's own users).
    pub async fn list(
        &self,
        caller: Caller<'_>,
        customer_id: &str,
    ) -> Result<UserList, AccountError> {
        if let Caller::Operator(a) = caller {
            a.may(Role::Viewer)?;
        }
        let customer = self.customer_for(caller, customer_id).await?;
        let users = self.store.users_of(&customer.id).await?;
        let mut items: Vec<UserView> = users.iter().map(UserView::from).collect();
        // A customer's own users see who of them invited whom; an operator's identity (its
        // token, its login) stays with the operators.
        if let Caller::User(_) = caller {
            for u in &mut items {
                if u.invited_by
                    .as_ref()
                    .is_some_and(|by| !by.starts_with("user:"))
                {
                    u.invited_by = Some("operator".into());
                }
            }
        }
        Ok(UserList { items })
    }

    /// Invites a user to a customer: operators (operator role), and the customer's owners and
    /// admins (an admin cannot invite an owner). The invitation email carries a link to choose
    /// a password.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn invite(
        &self,
        caller: Caller<'_>,
        customer_id: &str,
        req: &InviteUser,
    ) -> Result<UserView, AccountError> {
        if let Caller::Operator(a) = caller {
            a.may(Role::Operator)?;
        }
        let customer = self.customer_for(caller, customer_id).await?;
        let mut errors = Vec::new();
        let email = Address::parse(&req.email)
            .map_err(|e| errors.push(e.at("email")))
            .ok();
        let role = UserRole::parse(&req.role).or_else(|| {
            errors.push(
                Invalid::new("unknown_role", "role must be one of owner, admin, member").at("role"),
            );
            None
        });
        let name = match &req.name {
            None => None,
            Some(n) => crate::domain::text::display_text("name", n, 200, false)
                .map_err(|e| errors.push(e.at("name")))
                .ok()
                .filter(|n| !n.is_empty()),
        };
        let (Some(email), Some(role), true) = (email, role, errors.is_empty()) else {
            return Err(AccountError::Invalid(errors));
        };
        if let Caller::User(p) = caller {
            if !p.role.manages(role) {
                return Err(AccountError::RoleTooLow {
                    role: p.role,
                    action: if p.role == UserRole::Member {
                        "invite users"
                    } else {
                        "invite an owner"
                    },
                });
            }
        }
        if customer.status.is_offboarded() {
            return Err(AccountError::CustomerClosed(
                customer.id.as_str().to_owned(),
            ));
        }
        if self.store.users_of(&customer.id).await?.len() >= MAX_USERS {
            return Err(AccountError::TooManyUsers(customer.id.as_str().to_owned()));
        }
        let now = self.clock.now();
        let sent_today = self
            .events
            .list_events(&EventFilter {
                customer_id: Some(customer.id.as_str().to_owned()),
                event_type: Some("user.invited".into()),
                since: Some(now - chrono::Duration::days(1)),
                limit: MAX_INVITATIONS_PER_DAY as u32,
                ..Default::default()
            })
            .await?
            .len();
        if sent_today >= MAX_INVITATIONS_PER_DAY {
            return Err(AccountError::TooManyInvitations(
                customer.id.as_str().to_owned(),
            ));
        }
        let user = UserRecord {
            user_id: format!("usr_{}", uuid::Uuid::now_v7().simple()),
            customer_id: customer.id.clone(),
            email: email.as_str().to_owned(),
            email_key: login_key(email.as_str()),
            name,
            role,
            status: UserStatus::Invited,
            password_hash: None,
            password_change_required: false,
            password_expires_at: None,
            link: None,
            resets_requested: 0,
            resets_since: None,
            signup_id: None,
            invited_by: Some(caller.name()),
            created_at: now,
            updated_at: now,
            last_login_at: None,
            version: 1,
        };
        let event = self.event(
            &customer.id,
            EventBody::UserInvited(UserInvited {
                user_id: user.user_id.clone(),
                role,
            }),
            caller.name(),
            caller.request_id(),
        );
        self.store.insert_user(&user, event).await?;
        tracing::info!(user_id = %user.user_id, %role, "user invited");
        Ok(UserView::from(&user))
    }

    /// Removes a user and ends their sessions: operators (operator role), owners, and admins
    /// (not an owner). The last owner stays.
    pub async fn remove(
        &self,
        caller: Caller<'_>,
        customer_id: &str,
        user_id: &str,
    ) -> Result<(), AccountError> {
        if let Caller::Operator(a) = caller {
            a.may(Role::Operator)?;
        }
        let customer = self.customer_for(caller, customer_id).await?;
        let users = self.store.users_of(&customer.id).await?;
        let user = users
            .iter()
            .find(|u| u.user_id == user_id)
            .ok_or_else(|| AccountError::UserNotFound(user_id.to_owned()))?;
        if let Caller::User(p) = caller {
            if !p.role.manages(user.role) {
                return Err(AccountError::RoleTooLow {
                    role: p.role,
                    action: "remove this user",
                });
            }
        }
        let owners = users
            .iter()
            .filter(|u| u.role == UserRole::Owner && u.status == UserStatus::Active)
            .count();
        if user.role == UserRole::Owner && user.status == UserStatus::Active && owners <= 1 {
            return Err(AccountError::LastOwner(user.user_id.clone()));
        }
        let event = self.event(
            &customer.id,
            EventBody::UserRemoved(UserRemoved {
                user_id: user.user_id.clone(),
                role: user.role,
            }),
            caller.name(),
            caller.request_id(),
        );
        self.store.delete_user(user, user.version, event).await?;
        Ok(())
    }

    /// A customer's offboarding: every session of its users ends (a customer made active
    /// again does not revive them); with its data deleted, its users go too (each removal an
    /// event), so their addresses, names and password hashes are gone with the rest.
    pub async fn offboard(
        &self,
        actor: &Actor,
        customer_id: &CustomerId,
        delete_users: bool,
    ) -> Result<u64, AccountError> {
        let events = if delete_users {
            self.store
                .users_of(customer_id)
                .await?
                .iter()
                .map(|u| {
                    self.event(
                        customer_id,
                        EventBody::UserRemoved(UserRemoved {
                            user_id: u.user_id.clone(),
                            role: u.role,
                        }),
                        actor.name.clone(),
                        actor.request_id.clone(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(self
            .store
            .offboard_users(customer_id, delete_users, events)
            .await?)
    }

    /// Whether `email` belongs to an account (the signup review's `existing_account`).
    pub async fn email_taken(&self, email: &str) -> Result<bool, AccountError> {
        Ok(self.store.user_by_email(&login_key(email)).await?.is_some())
    }

    /// Whether `email` is an active user of a customer other than `customer_id` (any customer
    /// when none is given yet), so an approval cannot make it an owner. An invitation nobody
    /// accepted does not block: the verified owner takes the address over.
    pub async fn owner_blocked(
        &self,
        email: &str,
        customer_id: Option<&str>,
    ) -> Result<bool, AccountError> {
        Ok(self
            .store
            .user_by_email(&login_key(email))
            .await?
            .is_some_and(|u| {
                u.status == UserStatus::Active && Some(u.customer_id.as_str()) != customer_id
            }))
    }

    /// Makes the owner of a customer a signup's approval created, from the signup's verified
    /// email; the welcome email follows. Safe to repeat: an owner made already is returned.
    pub async fn add_signup_owner(
        &self,
        actor: &Actor,
        customer_id: &CustomerId,
        email: &str,
        signup_id: &str,
    ) -> Result<UserView, AccountError> {
        let key = login_key(email);
        if let Some(existing) = self.store.user_by_email(&key).await? {
            if existing.customer_id == *customer_id {
                return Ok(UserView::from(&existing));
            }
            if existing.status != UserStatus::Invited {
                return Err(AccountError::EmailTaken(key));
            }
            // The verified owner of a new customer takes the address over from an invitation
            // elsewhere that was never accepted.
            let event = self.event(
                &existing.customer_id,
                EventBody::UserRemoved(UserRemoved {
                    user_id: existing.user_id.clone(),
                    role: existing.role,
                }),
                actor.name.clone(),
                actor.request_id.clone(),
            );
            self.store
                .delete_user(&existing, existing.version, event)
                .await?;
        }
        let now = self.clock.now();
        let user = UserRecord {
            user_id: format!("usr_{}", uuid::Uuid::now_v7().simple()),
            customer_id: customer_id.clone(),
            email: email.to_owned(),
            email_key: key,
            name: None,
            role: UserRole::Owner,
            status: UserStatus::Active,
            password_hash: None,
            password_change_required: false,
            password_expires_at: None,
            link: None,
            resets_requested: 0,
            resets_since: None,
            signup_id: Some(signup_id.to_owned()),
            invited_by: None,
            created_at: now,
            updated_at: now,
            last_login_at: None,
            version: 1,
        };
        let event = self.event(
            customer_id,
            EventBody::UserCreated(UserCreated {
                user_id: user.user_id.clone(),
                role: UserRole::Owner,
                signup_id: Some(signup_id.to_owned()),
            }),
            actor.name.clone(),
            actor.request_id.clone(),
        );
        match self.store.insert_user(&user, event).await {
            Ok(()) => Ok(UserView::from(&user)),
            // A concurrent approval of the same signup made them first.
            Err(StoreError::UserEmailTaken(key)) => match self.store.user_by_email(&key).await? {
                Some(u) if u.customer_id == *customer_id => Ok(UserView::from(&u)),
                _ => Err(AccountError::EmailTaken(key)),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Where a user's messages go, and their customer: `None` once they are gone.
    pub async fn contact(
        &self,
        user_id: &str,
    ) -> Result<Option<(String, CustomerId)>, AccountError> {
        Ok(self
            .store
            .user(user_id)
            .await?
            .map(|u| (u.email, u.customer_id)))
    }

    /// Makes the secret of `message` for `user_id` as it is sent (a new one each attempt,
    /// replacing the last): a temporary password or a link, saved hashed. A message that no
    /// longer applies (the user is gone, joined, or signed in meanwhile) is skipped.
    pub async fn issue(
        &self,
        user_id: &str,
        message: AccountMessage,
    ) -> Result<AccountIssue, AccountError> {
        let Some(user) = self.store.user(user_id).await? else {
            return Ok(AccountIssue::Skip("the user no longer exists".into()));
        };
        let Some(customer) = self
            .customers
            .get_customer(user.customer_id.as_str())
            .await?
        else {
            return Ok(AccountIssue::Skip("the customer no longer exists".into()));
        };
        if customer.status.is_offboarded() {
            return Ok(AccountIssue::Skip("the customer is offboarded".into()));
        }
        let now = self.clock.now();
        let mut next = user.clone();
        next.updated_at = now;
        next.version = user.version + 1;
        let mut temporary = None;
        let mut link_token = None;
        let expires_at;
        let purpose = match message {
            AccountMessage::Welcome => {
                let signed_in = user.last_login_at.is_some()
                    || (user.password_hash.is_some() && !user.password_change_required);
                if signed_in || user.status != UserStatus::Active {
                    return Ok(AccountIssue::Skip(
                        "the user has chosen a password already".into(),
                    ));
                }
                match self.policy().welcome {
                    WelcomeStyle::TemporaryPassword => None,
                    WelcomeStyle::SetPasswordLink => Some(LinkPurpose::SetPassword),
                }
            }
            AccountMessage::Invitation => {
                if user.status != UserStatus::Invited {
                    return Ok(AccountIssue::Skip("the user has joined already".into()));
                }
                Some(LinkPurpose::SetPassword)
            }
            AccountMessage::PasswordReset => {
                if user.status != UserStatus::Active {
                    return Ok(AccountIssue::Skip("the user has not joined yet".into()));
                }
                Some(LinkPurpose::Reset)
            }
        };
        match purpose {
            None => {
                let password = temporary_password();
                expires_at =
                    now + chrono::Duration::days(i64::from(self.policy().temporary_password_days));
                next.password_hash = Some(password::hash(password.clone()).await?);
                next.password_change_required = true;
                next.password_expires_at = Some(expires_at);
                next.link = None;
                temporary = Some(password);
            }
            Some(purpose) => {
                let token = Zeroizing::new(super::opaque_tokens::mint(LINK_PREFIX));
                expires_at = now + purpose.ttl();
                next.link = Some(UserLink {
                    hash: super::opaque_tokens::digest(&token),
                    purpose,
                    expires_at,
                });
                link_token = Some(token);
            }
        }
        self.store
            .update_user(&next, user.version, Vec::new(), SessionChange::Keep)
            .await?;
        Ok(AccountIssue::Issued(AccountSecret {
            recipient: user.email,
            customer_name: customer.name.as_str().to_owned(),
            role: user.role,
            temporary_password: temporary,
            link_token,
            expires_at,
        }))
    }

    /// Ends sessions and failed-login records past their time, and removes invitations that
    /// lapsed (their link expired unaccepted, or none was sent in two weeks), each removal an
    /// event: an address is never held by an invitation no one took up. At most `limit` of each.
    pub async fn purge(&self, limit: i64) -> Result<u64, AccountError> {
        let now = self.clock.now();
        let mut gone = self.store.purge_account_leftovers(now, limit).await?;
        let lapsed = self
            .store
            .lapsed_invitations(now, now - chrono::Duration::days(14), limit)
            .await?;
        for user in lapsed {
            let event = self.event(
                &user.customer_id,
                EventBody::UserRemoved(UserRemoved {
                    user_id: user.user_id.clone(),
                    role: user.role,
                }),
                "onramp".into(),
                None,
            );
            match self.store.delete_user(&user, user.version, event).await {
                Ok(()) => gone += 1,
                // Accepted or changed meanwhile: it stays.
                Err(StoreError::UserChanged(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_errors_keep_their_public_kinds_and_codes_through_service_error() {
        use ErrorKind as K;
        crate::services::error::assert_classified([
            (
                AccountError::BadCredentials,
                K::Unauthenticated,
                "invalid_credentials",
            ),
            (
                AccountError::LockedOut {
                    retry_after_secs: 30,
                },
                K::Limited,
                "login_locked",
            ),
            (
                AccountError::PasswordChangeRequired,
                K::Forbidden,
                "password_change_required",
            ),
            (
                AccountError::from(StoreError::UserEmailTaken("a@b.co".into())),
                K::Conflict,
                "user_exists",
            ),
            (
                AccountError::from(StoreError::UserChanged("usr_1".into())),
                K::Conflict,
                "user_changed",
            ),
            (
                AccountError::LastOwner("usr_1".into()),
                K::Conflict,
                "last_owner",
            ),
        ]);
    }

    #[test]
    fn temporary_passwords_are_grouped_and_unambiguous() {
        let p = temporary_password();
        assert_eq!(p.len(), 19);
        assert_eq!(p.matches('-').count(), 3);
        assert!(!p.contains(['0', 'O', '1', 'l', 'I']));
        assert_ne!(*p, *temporary_password());
    }
}
