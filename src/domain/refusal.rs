//! How the domain says no: a rule that a value broke, and the field it broke it in.

use serde::Serialize;

/// A value broke a rule. `code` is stable and machine-readable; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Stable identifier of the rule, such as `invalid_format` or `too_long`.
    pub code: &'static str,
    /// A sentence naming the rule, for people.
    pub message: String,
}

impl Invalid {
    /// A refusal with its rule code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Attaches the refusal to the field (a JSON path such as `attributes.ids[0]`) it came from.
    pub fn at(self, field: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            code: self.code,
            message: self.message,
        }
    }
}

/// A refusal attached to the field that caused it; the unit of every validation error list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as a path into the request (`attributes.google_ads_customer_ids[0]`).
    pub field: String,
    /// Stable rule code.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// What the rule is, for people.
    pub message: String,
}
