//! The self-serve signup wizard as a product defines it: who may sign up (its mode), the ordered
//! steps and their typed fields, the templates a signup may choose, and the check of one step's
//! answers. Pure rules: the product file builds a [`Wizard`]; the signup capability asks it.

use serde::Serialize;
use std::collections::BTreeMap;

use super::text::display_text;
use super::{AttributeFormat, FieldError, Invalid};

/// Who may sign up, and what happens when they finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignupMode {
    /// Anyone; a signup whose risk review passes is approved by itself.
    Open,
    /// Anyone; every finished signup waits for an operator's decision.
    Review,
    /// Closed to the public: only people an operator invited.
    Invite,
}

impl SignupMode {
    /// Every mode, as the product file names them.
    pub const ALL: [SignupMode; 3] = [Self::Open, Self::Review, Self::Invite];

    /// Its product-file name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Review => "review",
            Self::Invite => "invite",
        }
    }

    /// The mode a product file names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Where a signup stands.
///
/// ```text
/// in_progress ──▶ review ──▶ approved
///    │    │         └──────▶ rejected
///    │    ├──▶ approved / rejected (decided by policy at completion)
///    │    └──▶ abandoned (by the person)
///    └──▶ expired (idle past the product's session_idle_hours)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignupStatus {
    /// Steps are being filled.
    InProgress,
    /// Finished, waiting for an operator's decision.
    Review,
    /// Approved: it becomes (or became) a customer.
    Approved,
    /// Rejected.
    Rejected,
    /// Given up by the person signing up.
    Abandoned,
    /// Left idle past the product's limit.
    Expired,
}

/// A status change the signup machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signup cannot go from {from} to {to}")]
pub struct InvalidSignupTransition {
    /// The status it is in.
    pub from: SignupStatus,
    /// The status asked for.
    pub to: SignupStatus,
}

impl SignupStatus {
    /// Every status.
    pub const ALL: [SignupStatus; 6] = [
        Self::InProgress,
        Self::Review,
        Self::Approved,
        Self::Rejected,
        Self::Abandoned,
        Self::Expired,
    ];

    /// Its name in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Review => "review",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Abandoned => "abandoned",
            Self::Expired => "expired",
        }
    }

    /// The status a stored or requested name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Approved | Self::Rejected | Self::Abandoned | Self::Expired
        )
    }

    /// The statuses it may move to.
    pub fn next_allowed(self) -> &'static [SignupStatus] {
        use SignupStatus::*;
        match self {
            InProgress => &[Review, Approved, Rejected, Abandoned, Expired],
            Review => &[Approved, Rejected],
            Approved | Rejected | Abandoned | Expired => &[],
        }
    }

    /// Moves to `to`, if the machine allows it.
    pub fn transition(self, to: SignupStatus) -> Result<SignupStatus, InvalidSignupTransition> {
        if self.next_allowed().contains(&to) {
            Ok(to)
        } else {
            Err(InvalidSignupTransition { from: self, to })
        }
    }
}

impl std::fmt::Display for SignupStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one field takes.
#[derive(Debug, Clone)]
pub enum FieldKind {
    /// Text of `min` to `max` characters, without control characters.
    Text {
        /// The fewest characters.
        min: usize,
        /// The most characters.
        max: usize,
    },
    /// A value in one of the attribute formats (email, country, timezone, url...).
    Format {
        /// The format's product-file name.
        name: String,
        /// The rule.
        format: AttributeFormat,
    },
    /// One of the listed choices, or several when `multiple`.
    Choice {
        /// The choices, in the order offered.
        options: Vec<String>,
        /// Whether a list of distinct choices is taken.
        multiple: bool,
    },
    /// Yes or no (an acceptance, a switch).
    Boolean,
}

impl FieldKind {
    /// The type's product-file name.
    pub fn type_name(&self) -> &str {
        match self {
            Self::Text { .. } => "text",
            Self::Format { name, .. } => name,
            Self::Choice { .. } => "choice",
            Self::Boolean => "boolean",
        }
    }
}

/// Where an answer goes when its signup becomes a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldTarget {
    /// The customer's name.
    CustomerName,
    /// The customer's industry.
    Industry,
    /// The customer's contact email (and its owner user's).
    ContactEmail,
    /// The customer's contact name.
    ContactName,
    /// The customer's tier, through the template chosen.
    Tier,
    /// A product attribute of the customer.
    Attribute(String),
    /// People to invite as the customer's members once it is made: a text field of email
    /// addresses separated by commas.
    Invitations,
}

/// The most people one signup invites.
pub const MAX_INVITATIONS: usize = 20;

impl FieldTarget {
    /// The target a product file names: `customer_name`, `industry`, `contact.email`,
    /// `contact.name`, `tier`, `users.invite` or `attributes.<name>`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "customer_name" => Self::CustomerName,
            "users.invite" => Self::Invitations,
            "industry" => Self::Industry,
            "contact.email" => Self::ContactEmail,
            "contact.name" => Self::ContactName,
            "tier" => Self::Tier,
            _ => Self::Attribute(s.strip_prefix("attributes.")?.to_owned()),
        })
    }
}

/// One field of a step.
#[derive(Debug, Clone)]
pub struct SignupField {
    /// Its name in a step's `data`; unique across the wizard.
    pub name: String,
    /// What a person is asked.
    pub label: String,
    /// What it takes.
    pub kind: FieldKind,
    /// Whether the step needs it.
    pub required: bool,
    /// Where the answer goes when the signup becomes a customer.
    pub maps_to: Option<FieldTarget>,
}

impl SignupField {
    /// Checks one answer, returning it in its canonical form (trimmed text, the canonical form
    /// of a format, a choice or list of choices, a boolean).
    pub fn check(&self, value: &serde_json::Value) -> Result<serde_json::Value, Invalid> {
        use serde_json::Value;
        match (&self.kind, value) {
            (FieldKind::Boolean, Value::Bool(b)) => Ok(Value::Bool(*b)),
            (FieldKind::Boolean, _) => Err(Invalid::new("invalid_type", "must be true or false")),
            (FieldKind::Choice { options, multiple }, value) => {
                let one = |v: &Value| -> Result<String, Invalid> {
                    let s = v.as_str().unwrap_or_default();
                    if options.iter().any(|o| o == s) {
                        Ok(s.to_owned())
                    } else {
                        Err(Invalid::new(
                            "invalid_choice",
                            format!("must be one of: {}", options.join(", ")),
                        ))
                    }
                };
                match (multiple, value) {
                    (false, Value::String(_)) => one(value).map(Value::String),
                    (true, Value::Array(items)) => {
                        let mut chosen: Vec<String> = Vec::with_capacity(items.len());
                        for item in items {
                            let c = one(item)?;
                            if chosen.contains(&c) {
                                return Err(Invalid::new(
                                    "duplicate",
                                    format!("'{c}' is chosen twice"),
                                ));
                            }
                            chosen.push(c);
                        }
                        if self.required && chosen.is_empty() {
                            return Err(Invalid::new("required", "choose at least one"));
                        }
                        Ok(Value::from(chosen))
                    }
                    (false, _) => Err(Invalid::new("invalid_type", "must be a string")),
                    (true, _) => Err(Invalid::new("invalid_type", "must be a list of choices")),
                }
            }
            (FieldKind::Text { min, max }, Value::String(s)) => {
                let text = display_text("the value", s, *max, true)?;
                if text.chars().count() < *min {
                    return Err(Invalid::new(
                        "too_short",
                        format!("must be at least {min} characters"),
                    ));
                }
                if self.maps_to == Some(FieldTarget::Invitations) {
                    return invitations(&text).map(|list| Value::String(list.join(", ")));
                }
                Ok(Value::String(text))
            }
            (FieldKind::Format { format, .. }, Value::String(s)) => {
                format.parse(s.trim()).map(Value::String)
            }
            (_, _) => Err(Invalid::new("invalid_type", "must be a string")),
        }
    }
}

/// The addresses of an invitations answer: separated by commas (or semicolons, or spaces),
/// each a valid email, each once (in any case), at most [`MAX_INVITATIONS`].
pub fn invitations(text: &str) -> Result<Vec<String>, Invalid> {
    let mut out: Vec<String> = Vec::new();
    for item in text
        .split([',', ';', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let email = super::Email::parse(item).map_err(|_| {
            Invalid::new(
                "invalid_email",
                format!(
                    "'{}' is not an email address; separate addresses with commas",
                    super::text::shorten(item, 64)
                ),
            )
        })?;
        if out.iter().any(|e| e.eq_ignore_ascii_case(email.as_str())) {
            continue;
        }
        out.push(email.as_str().to_owned());
        if out.len() > MAX_INVITATIONS {
            return Err(Invalid::new(
                "too_many",
                format!("at most {MAX_INVITATIONS} people can be invited here"),
            ));
        }
    }
    Ok(out)
}

/// How many unknown fields a refusal names one by one.
const MAX_UNKNOWN_NAMED: usize = 10;

/// One step of the wizard.
#[derive(Debug, Clone)]
pub struct SignupStep {
    /// Its id (`organization`).
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its fields, in order.
    pub fields: Vec<SignupField>,
}

impl SignupStep {
    /// Checks one step's answers: every field the step has and no other, each by its kind.
    /// Returns the canonical answers, or every bad field (named `data.<field>`).
    pub fn check(
        &self,
        data: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<BTreeMap<String, serde_json::Value>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut answers = BTreeMap::new();
        let unknown: Vec<&String> = data
            .keys()
            .filter(|name| !self.fields.iter().any(|f| &f.name == *name))
            .collect();
        let known: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
        // A body of many made-up names is answered with a few of them, not one error each.
        for name in unknown.iter().take(MAX_UNKNOWN_NAMED) {
            errors.push(
                Invalid::new(
                    "unknown_field",
                    format!(
                        "step '{}' has no field '{}'; its fields are {}",
                        self.id,
                        super::text::shorten(name, 64),
                        known.join(", ")
                    ),
                )
                .at(format!("data.{}", super::text::shorten(name, 64))),
            );
        }
        if unknown.len() > MAX_UNKNOWN_NAMED {
            errors.push(
                Invalid::new(
                    "unknown_field",
                    format!(
                        "{} more fields step '{}' does not have",
                        unknown.len() - MAX_UNKNOWN_NAMED,
                        self.id
                    ),
                )
                .at("data"),
            );
        }
        for field in &self.fields {
            match data.get(&field.name) {
                None | Some(serde_json::Value::Null) => {
                    if field.required {
                        errors.push(
                            Invalid::new("required", format!("{} is required", field.name))
                                .at(format!("data.{}", field.name)),
                        );
                    }
                }
                Some(value) => match field.check(value) {
                    Ok(v) => {
                        answers.insert(field.name.clone(), v);
                    }
                    Err(e) => errors.push(e.at(format!("data.{}", field.name))),
                },
            }
        }
        if errors.is_empty() {
            Ok(answers)
        } else {
            Err(errors)
        }
    }
}

/// A starting point a signup may choose, and the tier it gives the customer.
#[derive(Debug, Clone, Serialize)]
pub struct SignupTemplate {
    /// Its id (`professional`).
    pub id: String,
    /// Its display name (`Professional`).
    pub name: String,
    /// The product tier a customer made from it gets.
    pub tier: String,
}

/// The product's signup wizard.
#[derive(Debug, Clone)]
pub struct Wizard {
    /// Whether the public signup routes answer at all.
    pub enabled: bool,
    /// Who may sign up and how a finished signup is decided.
    pub mode: SignupMode,
    /// How long a session may sit untouched before it expires.
    pub session_idle_hours: u32,
    /// The steps, in order; the first takes `email` and `company_name`.
    pub steps: Vec<SignupStep>,
    /// Templates a signup may choose.
    pub templates: Vec<SignupTemplate>,
    /// How a completed signup's risk review is decided (`[signup.review]`).
    pub policy: crate::domain::risk::RiskPolicy,
}

impl Wizard {
    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&SignupStep> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The field with this name, in whichever step has it.
    pub fn field(&self, name: &str) -> Option<&SignupField> {
        self.steps
            .iter()
            .flat_map(|s| &s.fields)
            .find(|f| f.name == name)
    }

    /// The template with this id.
    pub fn template(&self, id: &str) -> Option<&SignupTemplate> {
        self.templates.iter().find(|t| t.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step() -> SignupStep {
        SignupStep {
            id: "organization".into(),
            title: "Your organization".into(),
            fields: vec![
                SignupField {
                    name: "company_name".into(),
                    label: "Company".into(),
                    kind: FieldKind::Text { min: 2, max: 20 },
                    required: true,
                    maps_to: Some(FieldTarget::CustomerName),
                },
                SignupField {
                    name: "country".into(),
                    label: "Country".into(),
                    kind: FieldKind::Format {
                        name: "country".into(),
                        format: AttributeFormat::builtin("country").unwrap(),
                    },
                    required: false,
                    maps_to: None,
                },
                SignupField {
                    name: "features".into(),
                    label: "Features".into(),
                    kind: FieldKind::Choice {
                        options: vec!["scan".into(), "report".into()],
                        multiple: true,
                    },
                    required: true,
                    maps_to: None,
                },
                SignupField {
                    name: "terms".into(),
                    label: "I accept".into(),
                    kind: FieldKind::Boolean,
                    required: false,
                    maps_to: None,
                },
            ],
        }
    }

    fn data(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_step_takes_its_fields_in_their_canonical_form() {
        let answers = step()
            .check(&data(json!({
                "company_name": "  Acme Ltd ",
                "country": "US",
                "features": ["report", "scan"],
                "terms": true
            })))
            .unwrap();
        assert_eq!(answers["company_name"], "Acme Ltd");
        assert_eq!(answers["features"], json!(["report", "scan"]));
        assert_eq!(answers["terms"], true);
        let minimal = step()
            .check(&data(json!({"company_name": "Acme", "features": ["scan"]})))
            .unwrap();
        assert!(!minimal.contains_key("country"));
    }

    #[test]
    fn a_step_names_every_bad_field_and_the_rule() {
        let errors = step()
            .check(&data(json!({
                "company_name": "A",
                "country": "Narnia",
                "features": ["scan", "scan"],
                "terms": "yes",
                "extra": 1
            })))
            .unwrap_err();
        let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            found,
            [
                ("data.extra", "unknown_field"),
                ("data.company_name", "too_short"),
                ("data.country", "invalid_country"),
                ("data.features", "duplicate"),
                ("data.terms", "invalid_type"),
            ]
        );
        let missing = step().check(&data(json!({}))).unwrap_err();
        let fields: Vec<&str> = missing.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["data.company_name", "data.features"]);
        let none_chosen = step()
            .check(&data(json!({"company_name": "Acme", "features": []})))
            .unwrap_err();
        assert_eq!(none_chosen[0].code, "required");
    }

    #[test]
    fn a_signup_moves_only_where_its_machine_allows() {
        use SignupStatus::*;
        for from in SignupStatus::ALL {
            for to in SignupStatus::ALL {
                let allowed = from.next_allowed().contains(&to);
                assert_eq!(from.transition(to).is_ok(), allowed, "{from} -> {to}");
            }
            assert_eq!(SignupStatus::parse(from.as_str()), Some(from));
            assert_eq!(from.is_final(), from.next_allowed().is_empty());
        }
        assert!(InProgress.transition(Review).is_ok());
        assert!(Review.transition(Abandoned).is_err());
        assert!(Abandoned.transition(InProgress).is_err());
    }

    #[test]
    fn a_flood_of_made_up_fields_is_answered_briefly() {
        let mut flood = serde_json::Map::new();
        for i in 0..5000 {
            flood.insert(format!("f{i:05}{}", "x".repeat(100)), json!(1));
        }
        flood.insert("company_name".into(), json!("Acme"));
        flood.insert("features".into(), json!(["scan"]));
        let errors = step().check(&flood).unwrap_err();
        assert_eq!(errors.len(), MAX_UNKNOWN_NAMED + 1);
        assert!(errors.iter().all(|e| e.field.len() <= 5 + 64 + 3));
        assert_eq!(errors.last().unwrap().field, "data");
        assert!(errors
            .last()
            .unwrap()
            .message
            .starts_with("4990 more fields"));
    }

    #[test]
    fn modes_and_targets_parse_from_their_product_file_names() {
        for mode in SignupMode::ALL {
            assert_eq!(SignupMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(SignupMode::parse("closed"), None);
        assert_eq!(
            FieldTarget::parse("attributes.country"),
            Some(FieldTarget::Attribute("country".into()))
        );
        assert_eq!(
            FieldTarget::parse("contact.email"),
            Some(FieldTarget::ContactEmail)
        );
        assert_eq!(FieldTarget::parse("phone"), None);
    }
}
