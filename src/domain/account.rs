//! Customer accounts: the people of a customer who sign in to the portal, their roles, the
//! rules a password must meet, and how long repeated failed logins lock an address out. Pure
//! rules; hashing, sessions and links are the accounts capability's.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

use super::Invalid;

/// What a user may do within their customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// Uses the product.
    Member,
    /// Also manages the customer's users (but not its owners).
    Admin,
    /// Everything, including other owners.
    Owner,
}

impl UserRole {
    /// Every role, least first.
    pub const ALL: [UserRole; 3] = [Self::Member, Self::Admin, Self::Owner];

    /// Its name in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// The role a stored or requested name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a user with this role may invite or remove a user with role `other`: owners
    /// manage anyone, admins manage admins and members, members manage no one.
    pub fn manages(self, other: UserRole) -> bool {
        match self {
            Self::Owner => true,
            Self::Admin => other != Self::Owner,
            Self::Member => false,
        }
    }
}

impl std::fmt::Display for UserRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a user's account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Invited; has not set a password yet.
    Invited,
    /// Signs in.
    Active,
}

impl UserStatus {
    /// Every status.
    pub const ALL: [UserStatus; 2] = [Self::Invited, Self::Active];

    /// Its name in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Active => "active",
        }
    }

    /// The status a stored name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for UserStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an emailed one-time link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Choose a first password: an invitation, or a welcome by link.
    SetPassword,
    /// Choose a new password after forgetting the old one.
    Reset,
}

impl LinkPurpose {
    /// Its name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SetPassword => "set_password",
            Self::Reset => "reset",
        }
    }

    /// The purpose a stored name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::SetPassword, Self::Reset]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// How long a link stays good: a week to accept, an hour to reset.
    pub fn ttl(self) -> chrono::Duration {
        match self {
            Self::SetPassword => chrono::Duration::days(7),
            Self::Reset => chrono::Duration::hours(1),
        }
    }
}

/// How a new owner from a signup gets in: the product's `[accounts] welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WelcomeStyle {
    /// The welcome email carries a temporary password, changed at first login.
    TemporaryPassword,
    /// The welcome email carries a link to choose a password.
    SetPasswordLink,
}

impl WelcomeStyle {
    /// Its name in the product file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TemporaryPassword => "temporary_password",
            Self::SetPasswordLink => "set_password_link",
        }
    }
}

/// The product's account rules (`[accounts]`).
#[derive(Debug, Clone, Serialize)]
pub struct AccountPolicy {
    /// How a signup's owner gets in.
    pub welcome: WelcomeStyle,
    /// The shortest password accepted, in characters.
    pub min_password_length: usize,
    /// How long a portal session lasts.
    pub session_hours: u32,
    /// How long a temporary password works before it must be replaced by a reset.
    pub temporary_password_days: u32,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        Self {
            welcome: WelcomeStyle::TemporaryPassword,
            min_password_length: 12,
            session_hours: 12,
            temporary_password_days: 7,
        }
    }
}

/// The longest password accepted, in characters (hashing cost does not depend on it, but the
/// request's memory does; a schema can state characters, not bytes).
pub const MAX_PASSWORD_CHARS: usize = 128;

impl AccountPolicy {
    /// Checks a new password for the account `email`: long enough, not too long, not the email
    /// or its name, not one character over and over, no control characters.
    pub fn check_password(&self, password: &str, email: &str) -> Result<(), Invalid> {
        let chars = password.chars().count();
        if chars < self.min_password_length {
            return Err(Invalid::new(
                "too_short",
                format!(
                    "a password has at least {} characters",
                    self.min_password_length
                ),
            ));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(Invalid::new(
                "too_long",
                format!("a password has at most {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        if password.chars().any(char::is_control) {
            return Err(Invalid::new(
                "control_character",
                "a password has no control characters",
            ));
        }
        let lower = password.to_lowercase();
        let email = email.trim().to_lowercase();
        let local = email.split('@').next().unwrap_or_default();
        if lower == email || (!local.is_empty() && lower == local) {
            return Err(Invalid::new(
                "guessable",
                "a password is not the account's email address",
            ));
        }
        let mut distinct: Vec<char> = password.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 4 {
            return Err(Invalid::new(
                "guessable",
                "a password has at least 4 different characters",
            ));
        }
        Ok(())
    }
}

/// Failed logins in a row an address gets before it is locked out.
pub const FAILURES_BEFORE_LOCKOUT: i64 = 5;

/// How long an address is locked out after `failures` failed logins in a row: not at all
/// below [`FAILURES_BEFORE_LOCKOUT`], then 30 s doubling with each further failure, at most an
/// hour.
pub fn lockout(failures: i64) -> Option<Duration> {
    if failures < FAILURES_BEFORE_LOCKOUT {
        return None;
    }
    let doublings = u32::try_from(failures - FAILURES_BEFORE_LOCKOUT)
        .unwrap_or(u32::MAX)
        .min(12);
    Some(Duration::from_secs((30u64 << doublings).min(3600)))
}

/// The key a login address is found and throttled by: the whole address with its ASCII letters
/// in lower case. Only ASCII is folded: Unicode case folding maps other characters onto ASCII
/// ones (the Kelvin sign onto `k`), which would let one address stand for another's.
pub fn login_key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_manage_everyone_admins_all_but_owners_members_no_one() {
        use UserRole::*;
        assert!(Owner.manages(Owner));
        assert!(Admin.manages(Admin) && Admin.manages(Member) && !Admin.manages(Owner));
        assert!(UserRole::ALL.iter().all(|r| !Member.manages(*r)));
        for r in UserRole::ALL {
            assert_eq!(UserRole::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn passwords_are_long_varied_and_not_the_email() {
        let p = AccountPolicy::default();
        assert_eq!(
            p.check_password("short", "a@b.co").unwrap_err().code,
            "too_short"
        );
        assert_eq!(
            p.check_password("aaaaaaaaaaaaaaaa", "a@b.co")
                .unwrap_err()
                .code,
            "guessable"
        );
        assert_eq!(
            p.check_password("Jane.Doe@Example.com", "jane.doe@example.com")
                .unwrap_err()
                .code,
            "guessable"
        );
        assert_eq!(
            p.check_password(&"ab1-".repeat(65), "a@b.co")
                .unwrap_err()
                .code,
            "too_long"
        );
        assert_eq!(
            p.check_password("correct horse\u{7}battery", "a@b.co")
                .unwrap_err()
                .code,
            "control_character"
        );
        assert!(p
            .check_password("correct horse battery staple", "a@b.co")
            .is_ok());
        // Characters, not bytes, count toward the minimum.
        assert_eq!(
            p.check_password("ñandú-pingü", "a@b.co").unwrap_err().code,
            "too_short"
        );
        assert!(p.check_password("ñandú-pingüé", "a@b.co").is_ok());
    }

    #[test]
    fn login_keys_fold_ascii_only() {
        assert_eq!(login_key(" Ann@Example.COM "), "ann@example.com");
        assert_ne!(
            login_key("\u{212A}im@example.com"),
            login_key("kim@example.com")
        );
    }

    #[test]
    fn lockouts_start_at_five_failures_double_and_stop_at_an_hour() {
        assert_eq!(lockout(4), None);
        assert_eq!(lockout(5), Some(Duration::from_secs(30)));
        assert_eq!(lockout(6), Some(Duration::from_secs(60)));
        assert_eq!(lockout(11), Some(Duration::from_secs(1920)));
        assert_eq!(lockout(12), Some(Duration::from_secs(3600)));
        assert_eq!(lockout(i64::MAX), Some(Duration::from_secs(3600)));
    }
}
