//! The product file: one SaaS product's onboarding, as typed configuration.
//!
//! A product file is TOML (see `examples/`). [`Product::load`] parses and validates it, and a
//! bad file is refused with every problem and the line it is on. When no file is given, the
//! built-in generic product ([`Product::builtin`]) serves.

mod accounts;
mod catalog;
pub mod email;
mod parse;
mod signup;

use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::domain::{AttributeFormat, AttributeValue, CustomerIdRule, FieldError, Invalid};

/// The built-in product file, used when none is given.
pub const BUILTIN_TOML: &str = include_str!("builtin.toml");

/// How failed steps are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per step, the first included.
    pub max_attempts: u32,
    /// The first backoff, doubled on each retry.
    pub base_ms: u64,
    /// The longest backoff.
    pub max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_ms: 50,
            max_ms: 2_000,
        }
    }
}

/// Bounds on a dataset query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// How long a query may run.
    pub timeout_ms: u64,
    /// How many rows it may return; more are cut off and the result marked truncated.
    pub max_rows: u64,
    /// How many bytes of values it may return; rows past the bound are cut off and the result
    /// marked truncated, and a single value larger than it refuses the query.
    pub max_bytes: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout_ms: 5_000,
            max_rows: 10_000,
            max_bytes: 8 * 1024 * 1024,
        }
    }
}

/// One problem in a product file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// What is wrong and what the rule is.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why a product file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// The file could not be read.
    #[error("cannot read product file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but breaks one or more rules.
    #[error("product file {source_name} is invalid:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file's path, or `built-in`.
        source_name: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

/// An industry customers are classified by.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Industry {
    /// Stable id (`golf`).
    pub id: String,
    /// Display name (`Golf`).
    pub name: String,
    /// What belongs in it.
    pub description: String,
}

/// Whether an attribute holds one value or a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeKind {
    /// One string.
    String,
    /// A list of strings.
    List,
}

/// A product-defined customer field.
#[derive(Debug, Clone)]
pub struct AttributeDef {
    /// One value or a list.
    pub kind: AttributeKind,
    /// The rule each value follows.
    pub format: AttributeFormat,
    /// Whether onboarding needs it.
    pub required: bool,
    /// The most values a list may hold.
    pub max_items: usize,
    /// What the field is for.
    pub description: String,
}

/// Where tenant datasets live.
#[derive(Debug, Clone, Serialize)]
pub struct DataStore {
    /// `registry` (the registry's own backend: files beside `onramp.db`, or schemas in its
    /// PostgreSQL database), `sqlite://DIR` (relative to the data dir) or a `postgres://` URL.
    pub url: String,
}

/// A column of a dataset table.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Portable type: text, integer, real, numeric, boolean, date, timestamp or json.
    #[serde(rename = "type")]
    pub column_type: String,
}

/// A provisioning template.
#[derive(Debug, Clone, Serialize)]
pub struct Tier {
    /// Tables the tier provisions.
    pub tables: Vec<String>,
    /// How long data is kept.
    pub retention_days: u32,
}

/// A manual onboarding checklist item.
#[derive(Debug, Clone, Serialize)]
pub struct ChecklistItem {
    /// Stable id (`welcome_call`).
    pub id: String,
    /// What to do.
    pub title: String,
}

/// Where legacy tenants (the PaidSocialNav `tenants.yaml`) are read from.
#[derive(Debug, Clone)]
pub struct Legacy {
    /// The YAML file, resolved against the product file's folder.
    pub tenants_file: PathBuf,
    /// The industry given to imported tenants that name none.
    pub industry: String,
    /// YAML field name to attribute name.
    pub fields: BTreeMap<String, String>,
}

/// A validated product.
#[derive(Debug, Clone)]
pub struct Product {
    /// Product name (`GrowthNav`).
    pub name: String,
    /// Where the product came from: a path, or `built-in`.
    pub source: String,
    /// The customer id rule.
    pub customer_id: CustomerIdRule,
    /// Industries, in file order.
    pub industries: Vec<Industry>,
    /// Attributes by name.
    pub attributes: BTreeMap<String, AttributeDef>,
    /// Data stores by name; `default` always exists.
    pub data_stores: BTreeMap<String, DataStore>,
    /// Dataset name template, with `{customer_id}`.
    pub dataset_name: String,
    /// Tables every dataset gets.
    pub dataset_tables: Vec<String>,
    /// Table definitions by name.
    pub tables: BTreeMap<String, Vec<Column>>,
    /// Tiers by name.
    pub tiers: BTreeMap<String, Tier>,
    /// The tier a customer gets when none is asked for.
    pub default_tier: Option<String>,
    /// Onboarding steps, in order.
    pub steps: Vec<String>,
    /// Manual checklist items.
    pub checklist: Vec<ChecklistItem>,
    /// How failed steps are retried.
    pub retry: RetryPolicy,
    /// Bounds on dataset queries.
    pub query: QueryLimits,
    /// Legacy tenants file, when the product has one.
    pub legacy: Option<Legacy>,
    /// Credential types the vault stores, by name.
    pub credentials: BTreeMap<String, CredentialType>,
    /// Upload adapters: how a customer's own token loads files into its dataset's tables.
    pub adapters: BTreeMap<String, Adapter>,
    /// The self-serve signup wizard (`[signup]`); none means customers arrive only through
    /// operators.
    pub signup: Option<crate::domain::signup::Wizard>,
    /// The email templates in force: the shipped defaults and the product's `[email]`
    /// overrides.
    pub email: email::MailTemplates,
    /// The account rules (`[accounts]`): welcome style, password length, session length.
    pub accounts: crate::domain::account::AccountPolicy,
    /// What the product sells (`[[metrics]]`, `[cycles]`, `[[plans]]`, `[trial]`); empty when
    /// it sells nothing through Onramp.
    pub catalog: crate::domain::plan::Catalog,
}

/// An upload adapter (seed 003's `generic-shipment-csv`): a CSV file into one table of the
/// customer's dataset, for tokens with its scope and the adapter in their key's
/// `allowed_adapters`.
#[derive(Debug, Clone, Serialize)]
pub struct Adapter {
    /// Its name, as keys list it.
    pub name: String,
    /// The dataset table it loads.
    pub table: String,
    /// For people.
    pub description: String,
    /// The scope a token needs (default `data:upload`).
    pub scope: String,
    /// The most rows one upload may carry (default 10,000).
    pub max_rows: usize,
}

/// A kind of credential the vault keeps per customer, and its rules.
#[derive(Debug, Clone)]
pub struct CredentialType {
    /// The type's name (`meta_access_token`).
    pub name: String,
    /// What it is.
    pub description: String,
    /// The rule the value follows, when there is one.
    pub pattern: Option<regex::Regex>,
    /// Whether every customer needs one.
    pub required: bool,
    /// Days after a write by which the value should be rotated.
    pub rotation_days: Option<u32>,
    /// Scopes the credential must have.
    pub required_scopes: Vec<String>,
    /// Scopes the credential must not have (an exchange key's `withdraw`).
    pub forbidden_scopes: Vec<String>,
    /// The provider's endpoint that says whether the value works.
    pub check: Option<CredentialCheck>,
}

/// How a credential is checked live: a GET to `url` with the value in `header`.
#[derive(Debug, Clone)]
pub struct CredentialCheck {
    /// The provider's check endpoint.
    pub url: url::Url,
    /// The header that carries the value (default `authorization`).
    pub header: String,
    /// Text before the value in the header (`Bearer ` for `authorization`).
    pub prefix: String,
    /// JSON pointer to the granted scopes in the response (a list, or one space- or
    /// comma-separated string).
    pub scopes_pointer: Option<String>,
    /// JSON pointer to when the credential expires (RFC 3339 or Unix seconds).
    pub expires_at_pointer: Option<String>,
    /// How long to wait for the provider.
    pub timeout_ms: u64,
}

impl Product {
    /// The built-in generic product.
    pub fn builtin() -> Self {
        Self::from_toml(BUILTIN_TOML, "built-in", None).expect("the built-in product is valid")
    }

    /// Reads and validates a product file.
    pub fn load(path: &Path) -> Result<Self, ProductError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProductError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string(), path.parent())
    }

    /// Validates product TOML; relative paths in it resolve against `base_dir`.
    pub fn from_toml(
        text: &str,
        source_name: &str,
        base_dir: Option<&Path>,
    ) -> Result<Self, ProductError> {
        parse::parse(text, source_name, base_dir).map_err(|problems| ProductError::Invalid {
            source_name: source_name.to_owned(),
            problems,
        })
    }

    /// The industry with this id.
    pub fn industry(&self, id: &str) -> Option<&Industry> {
        self.industries.iter().find(|i| i.id == id)
    }

    /// Checks an industry id.
    pub fn check_industry(&self, id: &str) -> Result<(), Invalid> {
        if self.industry(id).is_some() {
            return Ok(());
        }
        Err(Invalid::new(
            "unknown_industry",
            format!(
                "unknown industry '{id}': expected one of {}",
                self.industry_ids().join(", ")
            ),
        ))
    }

    /// Checks a data store name.
    pub fn check_data_store(&self, name: &str) -> Result<(), Invalid> {
        if self.data_stores.contains_key(name) {
            return Ok(());
        }
        let known: Vec<_> = self.data_stores.keys().map(String::as_str).collect();
        Err(Invalid::new(
            "unknown_data_store",
            format!(
                "unknown data store '{name}': expected one of {}",
                known.join(", ")
            ),
        ))
    }

    /// Checks a tier name.
    pub fn check_tier(&self, name: &str) -> Result<(), Invalid> {
        if self.tiers.contains_key(name) {
            return Ok(());
        }
        let known: Vec<_> = self.tiers.keys().map(String::as_str).collect();
        Err(Invalid::new(
            "unknown_tier",
            format!(
                "unknown usage tier '{name}': expected one of {}",
                if known.is_empty() {
                    "(this product has no tiers)".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ))
    }

    /// The dataset id for a customer, from the product's template.
    pub fn dataset_id(&self, customer_id: &str) -> String {
        self.dataset_name.replace("{customer_id}", customer_id)
    }

    /// The tables a customer on `tier` gets: the dataset's own, then the tier's, once each.
    pub fn tables_for_tier(&self, tier: Option<&str>) -> Vec<(String, Vec<Column>)> {
        let tier_tables = tier
            .and_then(|t| self.tiers.get(t))
            .map(|t| t.tables.as_slice())
            .unwrap_or_default();
        let mut names: Vec<&String> = Vec::new();
        for name in self.dataset_tables.iter().chain(tier_tables) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
            .into_iter()
            .filter_map(|n| self.tables.get(n).map(|cols| (n.clone(), cols.clone())))
            .collect()
    }

    /// Whether the product provisions datasets at all.
    pub fn provisions_datasets(&self) -> bool {
        self.steps.iter().any(|s| s == "provision_dataset")
    }

    fn industry_ids(&self) -> Vec<&str> {
        self.industries.iter().map(|i| i.id.as_str()).collect()
    }

    /// Checks a whole attributes object, reporting every bad field under `attributes.`.
    /// With `partial`, required attributes may be absent (an update changes only what it names).
    pub fn check_attributes(
        &self,
        input: &serde_json::Map<String, serde_json::Value>,
        partial: bool,
    ) -> Result<BTreeMap<String, AttributeValue>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut out = BTreeMap::new();
        for (name, value) in input {
            let field = format!("attributes.{name}");
            let Some(def) = self.attributes.get(name) else {
                let known: Vec<_> = self.attributes.keys().map(String::as_str).collect();
                errors.push(
                    Invalid::new(
                        "unknown_attribute",
                        format!(
                            "unknown attribute '{name}': this product defines {}",
                            if known.is_empty() {
                                "no attributes".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    )
                    .at(field),
                );
                continue;
            };
            match self.check_attribute(&field, def, value) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !partial {
            for (name, def) in &self.attributes {
                if def.required && !input.contains_key(name) {
                    errors.push(
                        Invalid::new("required", format!("attribute '{name}' is required"))
                            .at(format!("attributes.{name}")),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    fn check_attribute(
        &self,
        field: &str,
        def: &AttributeDef,
        value: &serde_json::Value,
    ) -> Result<AttributeValue, Vec<FieldError>> {
        use serde_json::Value;
        match (def.kind, value) {
            (AttributeKind::String, Value::String(s)) => def
                .format
                .parse(s)
                .map(AttributeValue::One)
                .map_err(|e| vec![e.at(field)]),
            (AttributeKind::List, Value::Array(items)) => {
                let mut errors = Vec::new();
                let mut values: Vec<String> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{field}[{i}]");
                    match item {
                        Value::String(s) => match def.format.parse(s) {
                            Ok(v) if !values.contains(&v) => values.push(v),
                            Ok(_) => {}
                            Err(e) => errors.push(e.at(at)),
                        },
                        _ => errors.push(Invalid::new("invalid_type", "must be a string").at(at)),
                    }
                }
                if items.len() > def.max_items {
                    errors.push(
                        Invalid::new("too_many", format!("at most {} values", def.max_items))
                            .at(field),
                    );
                }
                if errors.is_empty() {
                    Ok(AttributeValue::List(values))
                } else {
                    Err(errors)
                }
            }
            (AttributeKind::String, _) => {
                Err(vec![
                    Invalid::new("invalid_type", "must be a string").at(field)
                ])
            }
            (AttributeKind::List, _) => Err(vec![Invalid::new(
                "invalid_type",
                "must be a list of strings",
            )
            .at(field)]),
        }
    }
}

/// Compiles a product regex that must match whole values.
fn anchored_regex(pattern: &str) -> Result<Regex, String> {
    if !pattern.starts_with('^') || !pattern.ends_with('$') {
        return Err(format!(
            "pattern '{pattern}' must be anchored: start with ^ and end with $"
        ));
    }
    Regex::new(pattern)
        .map_err(|e| format!("pattern '{pattern}' is not a valid regular expression: {e}"))
}

#[cfg(test)]
mod tests;
