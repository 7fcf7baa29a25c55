//! The product's account rules (`[accounts]`): how a signup's owner gets in (a temporary
//! password or a set-password link in the welcome email), the shortest password accepted, how
//! long a portal session lasts and how long a temporary password works.

use serde::Deserialize;
use toml::Spanned;

use super::parse::Checker;
use crate::domain::account::{AccountPolicy, WelcomeStyle};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccounts {
    welcome: Option<Spanned<String>>,
    min_password_length: Option<Spanned<i64>>,
    session_hours: Option<Spanned<i64>>,
    temporary_password_days: Option<Spanned<i64>>,
}

/// Reads `[accounts]`, every rule checked.
pub(super) fn policy(c: &mut Checker<'_>, raw: &Spanned<RawAccounts>) -> AccountPolicy {
    let r = raw.get_ref();
    let mut p = AccountPolicy::default();
    if let Some(w) = &r.welcome {
        match w.get_ref().as_str() {
            "temporary_password" => p.welcome = WelcomeStyle::TemporaryPassword,
            "set_password_link" => p.welcome = WelcomeStyle::SetPasswordLink,
            other => c.at(
                w,
                format!(
                    "accounts.welcome must be temporary_password or set_password_link, not '{other}'"
                ),
            ),
        }
    }
    let mut number =
        |v: &Option<Spanned<i64>>, name: &str, range: std::ops::RangeInclusive<i64>| {
            let n = v.as_ref()?;
            if range.contains(n.get_ref()) {
                Some(*n.get_ref())
            } else {
                c.at(
                    n,
                    format!(
                        "accounts.{name} must be from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        };
    if let Some(n) = number(&r.min_password_length, "min_password_length", 8..=64) {
        p.min_password_length = n as usize;
    }
    if let Some(n) = number(&r.session_hours, "session_hours", 1..=720) {
        p.session_hours = n as u32;
    }
    if let Some(n) = number(
        &r.temporary_password_days,
        "temporary_password_days",
        1..=30,
    ) {
        p.temporary_password_days = n as u32;
    }
    p
}
