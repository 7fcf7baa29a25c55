//! Operator roles: what an admin token may do.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::Invalid;

/// The role an admin token carries. Ordered: each role may do everything the ones below it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads only.
    Viewer,
    /// Reads, onboards, updates and offboards customers.
    Operator,
    /// Everything, including managing admin tokens.
    Admin,
}

impl Role {
    /// The lowercase name used in the API, the CLI and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes the `required` one.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(Invalid::new(
                "unknown_role",
                format!("unknown role '{s}': expected admin, operator or viewer"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_roles_include_lower_ones() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin));
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert_eq!("root".parse::<Role>().unwrap_err().code, "unknown_role");
    }
}
