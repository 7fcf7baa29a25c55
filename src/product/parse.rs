//! Product file parsing: TOML into raw structures that keep their positions, then every rule
//! checked, so `onramp product check` can report all problems at once with their lines.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

use super::{
    anchored_regex, Adapter, AttributeDef, AttributeKind, ChecklistItem, Column, CredentialCheck,
    CredentialType, DataStore, Industry, Legacy, Problem, Product, QueryLimits, RetryPolicy, Tier,
};
use crate::domain::run::{check_steps, DEFAULT_STEPS};
use crate::domain::{
    values::DEFAULT_CUSTOMER_ID_PATTERN, AttributeFormat, CustomerIdRule, OPERATOR_CHAIN,
};

const COLUMN_TYPES: &[&str] = &[
    "text",
    "integer",
    "real",
    "numeric",
    "boolean",
    "date",
    "timestamp",
    "json",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    product: Spanned<RawProduct>,
    #[serde(default)]
    industries: Vec<Spanned<RawIndustry>>,
    #[serde(default)]
    attributes: BTreeMap<String, Spanned<RawAttribute>>,
    #[serde(default)]
    data_stores: BTreeMap<String, Spanned<RawDataStore>>,
    dataset: Option<Spanned<RawDataset>>,
    #[serde(default)]
    tables: BTreeMap<String, Spanned<RawTable>>,
    #[serde(default)]
    tiers: BTreeMap<String, Spanned<RawTier>>,
    onboarding: Option<Spanned<RawOnboarding>>,
    legacy: Option<Spanned<RawLegacy>>,
    #[serde(default)]
    credentials: BTreeMap<String, Spanned<RawCredential>>,
    #[serde(default)]
    adapters: BTreeMap<String, Spanned<RawAdapter>>,
    signup: Option<Spanned<super::signup::RawSignup>>,
    email: Option<Spanned<super::email::RawEmail>>,
    accounts: Option<Spanned<super::accounts::RawAccounts>>,
    #[serde(default)]
    metrics: Vec<Spanned<super::catalog::RawMetric>>,
    #[serde(default)]
    cycles: BTreeMap<String, Spanned<super::catalog::RawCycle>>,
    #[serde(default)]
    plans: Vec<Spanned<super::catalog::RawPlan>>,
    trial: Option<Spanned<super::catalog::RawTrial>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdapter {
    table: Spanned<String>,
    #[serde(default)]
    description: String,
    format: Option<Spanned<String>>,
    scope: Option<Spanned<String>>,
    max_rows: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    #[serde(default)]
    description: String,
    pattern: Option<Spanned<String>>,
    #[serde(default)]
    required: bool,
    rotation_days: Option<Spanned<i64>>,
    #[serde(default)]
    required_scopes: Vec<String>,
    #[serde(default)]
    forbidden_scopes: Vec<String>,
    check: Option<Spanned<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    url: Spanned<String>,
    header: Option<Spanned<String>>,
    prefix: Option<String>,
    scopes_pointer: Option<Spanned<String>>,
    expires_at_pointer: Option<Spanned<String>>,
    timeout_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduct {
    name: Spanned<String>,
    customer_id: Option<RawIdRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdRule {
    pattern: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndustry {
    id: Spanned<String>,
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttribute {
    kind: Option<Spanned<String>>,
    format: Option<Spanned<String>>,
    pattern: Option<Spanned<String>>,
    #[serde(default)]
    required: bool,
    max_items: Option<usize>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataStore {
    url: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    name: Spanned<String>,
    tables: Spanned<Vec<String>>,
    query_timeout_ms: Option<Spanned<i64>>,
    query_max_rows: Option<Spanned<i64>>,
    query_max_bytes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    columns: Vec<Spanned<RawColumn>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    #[serde(rename = "type")]
    column_type: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    tables: Spanned<Vec<String>>,
    retention_days: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnboarding {
    steps: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    checklist: Vec<Spanned<RawChecklistItem>>,
    default_tier: Option<Spanned<String>>,
    max_attempts: Option<Spanned<i64>>,
    backoff_base_ms: Option<Spanned<i64>>,
    backoff_max_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecklistItem {
    id: String,
    title: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLegacy {
    tenants_file: Spanned<String>,
    industry: Option<Spanned<String>>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

/// Collects problems with the line each one is on.
pub(super) struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    pub(super) fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        let line = self.line(spanned.span().start);
        self.problems.push(Problem {
            line: Some(line),
            message: message.into(),
        });
    }

    pub(super) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    fn nowhere(&mut self, message: impl Into<String>) {
        self.problems.push(Problem {
            line: None,
            message: message.into(),
        });
    }
}

pub(super) fn is_identifier(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub(super) fn parse(
    text: &str,
    source_name: &str,
    base_dir: Option<&Path>,
) -> Result<Product, Vec<Problem>> {
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };
    let raw: Raw = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.span().map(|s| c.line(s.start));
            return Err(vec![Problem {
                line,
                message: e.message().trim().to_owned(),
            }]);
        }
    };

    let name = raw.product.get_ref().name.get_ref().trim().to_owned();
    if name.is_empty() {
        c.at(
            &raw.product.get_ref().name,
            "product.name must not be empty",
        );
    }

    let customer_id = match &raw.product.get_ref().customer_id {
        None => CustomerIdRule::default(),
        Some(rule) => match anchored_regex(rule.pattern.get_ref()) {
            Ok(re) if re.is_match(OPERATOR_CHAIN) => {
                c.at(
                    &rule.pattern,
                    format!("customer_id.pattern must not accept '{OPERATOR_CHAIN}'"),
                );
                CustomerIdRule::default()
            }
            Ok(_) => CustomerIdRule::new(rule.pattern.get_ref()).expect("pattern compiled above"),
            Err(msg) => {
                c.at(&rule.pattern, format!("customer_id.{msg}"));
                CustomerIdRule::new(DEFAULT_CUSTOMER_ID_PATTERN).expect("default compiles")
            }
        },
    };

    let mut industries = Vec::new();
    for raw_industry in &raw.industries {
        let ri = raw_industry.get_ref();
        let id = ri.id.get_ref();
        if !is_identifier(id) {
            c.at(&ri.id, format!("industry id '{id}' must be lowercase letters, digits and '_', starting with a letter"));
        } else if industries.iter().any(|i: &Industry| &i.id == id) {
            c.at(&ri.id, format!("industry '{id}' is defined twice"));
        }
        if ri.name.trim().is_empty() {
            c.at(raw_industry, format!("industry '{id}' needs a name"));
        }
        industries.push(Industry {
            id: id.clone(),
            name: ri.name.trim().to_owned(),
            description: ri.description.trim().to_owned(),
        });
    }
    if industries.is_empty() {
        c.nowhere("at least one [[industries]] entry is required");
    }

    let mut attributes = BTreeMap::new();
    for (attr_name, spanned) in &raw.attributes {
        let ra = spanned.get_ref();
        if !is_identifier(attr_name) {
            c.at(
                spanned,
                format!("attribute name '{attr_name}' must be lowercase letters, digits and '_'"),
            );
        }
        let kind = match ra.kind.as_ref().map(|k| k.get_ref().as_str()) {
            None | Some("string") => AttributeKind::String,
            Some("list") => AttributeKind::List,
            Some(other) => {
                c.at(
                    ra.kind.as_ref().unwrap(),
                    format!("attributes.{attr_name}.kind '{other}' must be 'string' or 'list'"),
                );
                AttributeKind::String
            }
        };
        let format = match (&ra.format, &ra.pattern) {
            (Some(_), Some(p)) => {
                c.at(
                    p,
                    format!("attributes.{attr_name}: give either format or pattern, not both"),
                );
                AttributeFormat::Text
            }
            (Some(f), None) => AttributeFormat::builtin(f.get_ref()).unwrap_or_else(|| {
                c.at(
                    f,
                    format!(
                        "attributes.{attr_name}.format '{}' is not a built-in format ({})",
                        f.get_ref(),
                        crate::domain::attribute::BUILTIN_FORMATS.join(", ")
                    ),
                );
                AttributeFormat::Text
            }),
            (None, Some(p)) => match anchored_regex(p.get_ref()) {
                Ok(re) => AttributeFormat::Pattern(re),
                Err(msg) => {
                    c.at(p, format!("attributes.{attr_name}.{msg}"));
                    AttributeFormat::Text
                }
            },
            (None, None) => AttributeFormat::Text,
        };
        if ra.max_items == Some(0) {
            c.at(
                spanned,
                format!("attributes.{attr_name}.max_items must be at least 1"),
            );
        }
        attributes.insert(
            attr_name.clone(),
            AttributeDef {
                kind,
                format,
                required: ra.required,
                max_items: ra.max_items.unwrap_or(50),
                description: ra.description.clone(),
            },
        );
    }

    let mut data_stores = BTreeMap::new();
    for (store_name, spanned) in &raw.data_stores {
        let url = spanned.get_ref().url.get_ref();
        if !is_identifier(store_name) {
            c.at(
                spanned,
                format!("data store name '{store_name}' must be lowercase letters, digits and '_'"),
            );
        }
        let scheme_ok = url == "registry"
            || (url.starts_with("sqlite://") && url.len() > "sqlite://".len())
            || url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "postgres" | "postgresql"));
        if !scheme_ok {
            c.at(
                &spanned.get_ref().url,
                format!(
                    "data_stores.{store_name}.url '{url}' must be 'registry' (beside the registry), \
                     sqlite://DIR or a postgres:// URL"
                ),
            );
        }
        data_stores.insert(store_name.clone(), DataStore { url: url.clone() });
    }
    if data_stores.is_empty() {
        data_stores.insert(
            "default".to_owned(),
            DataStore {
                url: "registry".to_owned(),
            },
        );
    } else if !data_stores.contains_key("default") {
        c.nowhere("[data_stores.default] is required when data stores are listed: it serves customers that name none");
    }

    let mut tables = BTreeMap::new();
    for (table_name, spanned) in &raw.tables {
        if !is_identifier(table_name) {
            c.at(
                spanned,
                format!("table name '{table_name}' must be lowercase letters, digits and '_'"),
            );
        }
        let mut columns: Vec<Column> = Vec::new();
        for col in &spanned.get_ref().columns {
            let rc = col.get_ref();
            if !is_identifier(&rc.name) {
                c.at(col, format!("tables.{table_name}: column name '{}' must be lowercase letters, digits and '_'", rc.name));
            } else if columns.iter().any(|x| x.name == rc.name) {
                c.at(
                    col,
                    format!("tables.{table_name}: column '{}' is defined twice", rc.name),
                );
            }
            if !COLUMN_TYPES.contains(&rc.column_type.as_str()) {
                c.at(
                    col,
                    format!(
                        "tables.{table_name}.{}: type '{}' must be one of {}",
                        rc.name,
                        rc.column_type,
                        COLUMN_TYPES.join(", ")
                    ),
                );
            }
            columns.push(Column {
                name: rc.name.clone(),
                column_type: rc.column_type.clone(),
            });
        }
        if columns.is_empty() {
            c.at(
                spanned,
                format!("tables.{table_name} needs at least one column"),
            );
        }
        tables.insert(table_name.clone(), columns);
    }

    let check_table_list = |c: &mut Checker<'_>, what: &str, list: &Spanned<Vec<String>>| {
        for t in list.get_ref() {
            if !tables.contains_key(t) {
                c.at(
                    list,
                    format!("{what} names table '{t}', which no [tables.{t}] defines"),
                );
            }
        }
    };

    let mut query = QueryLimits::default();
    let (dataset_name, dataset_tables) = match &raw.dataset {
        Some(ds) => {
            let d = ds.get_ref();
            if let Some(t) = &d.query_timeout_ms {
                match u64::try_from(*t.get_ref()) {
                    Ok(ms @ 1..=600_000) => query.timeout_ms = ms,
                    _ => c.at(t, "dataset.query_timeout_ms must be from 1 to 600000"),
                }
            }
            if let Some(r) = &d.query_max_rows {
                match u64::try_from(*r.get_ref()) {
                    Ok(n @ 1..=1_000_000) => query.max_rows = n,
                    _ => c.at(r, "dataset.query_max_rows must be from 1 to 1000000"),
                }
            }
            if let Some(b) = &d.query_max_bytes {
                match u64::try_from(*b.get_ref()) {
                    Ok(n @ 1024..=268_435_456) => query.max_bytes = n,
                    _ => c.at(
                        b,
                        "dataset.query_max_bytes must be from 1024 to 268435456 (256 MiB)",
                    ),
                }
            }
            let template = d.name.get_ref();
            let rest = template.replace("{customer_id}", "x");
            if !template.contains("{customer_id}") {
                c.at(&d.name, "dataset.name must contain {customer_id}");
            } else if !rest
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            {
                c.at(&d.name, format!("dataset.name '{template}' may hold only lowercase letters, digits, '_' and {{customer_id}}"));
            }
            check_table_list(&mut c, "dataset.tables", &d.tables);
            (template.clone(), d.tables.get_ref().clone())
        }
        None => {
            let product_prefix: String = name
                .to_ascii_lowercase()
                .chars()
                .filter(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                .collect();
            (
                format!(
                    "{}_{{customer_id}}",
                    if product_prefix.is_empty() {
                        "tenant"
                    } else {
                        &product_prefix
                    }
                ),
                Vec::new(),
            )
        }
    };

    let mut tiers = BTreeMap::new();
    for (tier_name, spanned) in &raw.tiers {
        let rt = spanned.get_ref();
        if !is_identifier(tier_name) {
            c.at(
                spanned,
                format!("tier name '{tier_name}' must be lowercase letters, digits and '_'"),
            );
        }
        check_table_list(&mut c, &format!("tiers.{tier_name}.tables"), &rt.tables);
        let days = *rt.retention_days.get_ref();
        if !(1..=36_500).contains(&days) {
            c.at(
                &rt.retention_days,
                format!("tiers.{tier_name}.retention_days must be from 1 to 36500"),
            );
        }
        tiers.insert(
            tier_name.clone(),
            Tier {
                tables: rt.tables.get_ref().clone(),
                retention_days: days.clamp(1, 36_500) as u32,
            },
        );
    }

    let mut steps: Vec<String> = DEFAULT_STEPS.iter().map(|s| s.to_string()).collect();
    let mut checklist = Vec::new();
    let mut default_tier = None;
    let mut retry = RetryPolicy::default();
    if let Some(ob) = &raw.onboarding {
        let ob = ob.get_ref();
        if let Some(list) = &ob.steps {
            steps = list.get_ref().clone();
            for problem in check_steps(list.get_ref()) {
                c.at(list, problem);
            }
        }
        let mut bounded =
            |field: &Option<Spanned<i64>>, name: &str, range: std::ops::RangeInclusive<i64>| {
                let value = field.as_ref()?;
                if range.contains(value.get_ref()) {
                    Some(*value.get_ref() as u64)
                } else {
                    c.at(
                        value,
                        format!(
                            "onboarding.{name} must be from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    );
                    None
                }
            };
        if let Some(n) = bounded(&ob.max_attempts, "max_attempts", 1..=100) {
            retry.max_attempts = n as u32;
        }
        if let Some(ms) = bounded(&ob.backoff_base_ms, "backoff_base_ms", 0..=60_000) {
            retry.base_ms = ms;
        }
        if let Some(ms) = bounded(&ob.backoff_max_ms, "backoff_max_ms", 0..=600_000) {
            retry.max_ms = ms;
        }
        for item in &ob.checklist {
            let ri = item.get_ref();
            if !is_identifier(&ri.id) {
                c.at(
                    item,
                    format!(
                        "checklist id '{}' must be lowercase letters, digits and '_'",
                        ri.id
                    ),
                );
            } else if checklist.iter().any(|x: &ChecklistItem| x.id == ri.id) {
                c.at(item, format!("checklist item '{}' is listed twice", ri.id));
            }
            if ri.title.trim().is_empty() {
                c.at(item, format!("checklist item '{}' needs a title", ri.id));
            }
            checklist.push(ChecklistItem {
                id: ri.id.clone(),
                title: ri.title.trim().to_owned(),
            });
        }
        if let Some(t) = &ob.default_tier {
            if !tiers.contains_key(t.get_ref()) {
                c.at(
                    t,
                    format!(
                        "onboarding.default_tier '{}' is not a tier defined under [tiers]",
                        t.get_ref()
                    ),
                );
            }
            default_tier = Some(t.get_ref().clone());
        }
    }

    let legacy = raw.legacy.as_ref().map(|spanned| {
        let rl = spanned.get_ref();
        let file = Path::new(rl.tenants_file.get_ref());
        let tenants_file = match base_dir {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_owned(),
        };
        if !tenants_file.is_file() {
            c.at(&rl.tenants_file, format!("legacy.tenants_file '{}' does not exist", tenants_file.display()));
        }
        let industry = match &rl.industry {
            Some(i) => {
                if !industries.iter().any(|x| &x.id == i.get_ref()) {
                    c.at(i, format!("legacy.industry '{}' is not one of the product's industries", i.get_ref()));
                }
                i.get_ref().clone()
            }
            None => {
                if !industries.iter().any(|x| x.id == "other") {
                    c.at(spanned, "legacy.industry is required when the product has no 'other' industry");
                }
                "other".to_owned()
            }
        };
        for (yaml_field, attr) in &rl.fields {
            if !attributes.contains_key(attr) {
                c.at(spanned, format!("legacy.fields.{yaml_field} maps to attribute '{attr}', which is not defined"));
            }
        }
        Legacy {
            tenants_file,
            industry,
            fields: rl.fields.clone(),
        }
    });

    let mut credentials = BTreeMap::new();
    for (name, spanned) in &raw.credentials {
        let rc = spanned.get_ref();
        if !is_identifier(name) {
            c.at(spanned, format!("credentials.{name}: a credential type must be lowercase letters, digits and '_'"));
        }
        let pattern = rc
            .pattern
            .as_ref()
            .and_then(|p| match anchored_regex(p.get_ref()) {
                Ok(r) => Some(r),
                Err(msg) => {
                    c.at(p, format!("credentials.{name}.{msg}"));
                    None
                }
            });
        let rotation_days = match &rc.rotation_days {
            Some(d) if !(1..=3650).contains(d.get_ref()) => {
                c.at(
                    d,
                    format!("credentials.{name}.rotation_days must be from 1 to 3650"),
                );
                None
            }
            Some(d) => Some(*d.get_ref() as u32),
            None => None,
        };
        for scope in rc
            .required_scopes
            .iter()
            .filter(|s| rc.forbidden_scopes.contains(s))
        {
            c.at(
                spanned,
                format!("credentials.{name}: scope '{scope}' is both required and forbidden"),
            );
        }
        let check = rc.check.as_ref().and_then(|spanned_check| {
            let rk = spanned_check.get_ref();
            let url = match url::Url::parse(rk.url.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => u,
                _ => {
                    c.at(&rk.url, format!("credentials.{name}.check.url must be an http or https URL"));
                    return None;
                }
            };
            let header = rk.header.as_ref().map_or("authorization".to_owned(), |h| h.get_ref().to_ascii_lowercase());
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                if let Some(h) = &rk.header {
                    c.at(h, format!("credentials.{name}.check.header is not a valid header name"));
                }
            }
            let pointer = |p: &Option<Spanned<String>>, field: &str, c: &mut Checker| {
                let p = p.as_ref()?;
                if p.get_ref().is_empty() || p.get_ref().starts_with('/') {
                    Some(p.get_ref().clone())
                } else {
                    c.at(p, format!("credentials.{name}.check.{field} must be a JSON pointer such as /data/scopes"));
                    None
                }
            };
            let scopes_pointer = pointer(&rk.scopes_pointer, "scopes_pointer", &mut c);
            let expires_at_pointer = pointer(&rk.expires_at_pointer, "expires_at_pointer", &mut c);
            let timeout_ms = match &rk.timeout_ms {
                Some(t) if !(1..=60_000).contains(t.get_ref()) => {
                    c.at(t, format!("credentials.{name}.check.timeout_ms must be from 1 to 60000"));
                    5_000
                }
                Some(t) => *t.get_ref() as u64,
                None => 5_000,
            };
            let prefix = rk.prefix.clone().unwrap_or_else(|| {
                if header == "authorization" { "Bearer ".to_owned() } else { String::new() }
            });
            Some(CredentialCheck { url, header, prefix, scopes_pointer, expires_at_pointer, timeout_ms })
        });
        credentials.insert(
            name.clone(),
            CredentialType {
                name: name.clone(),
                description: rc.description.trim().to_owned(),
                pattern,
                required: rc.required,
                rotation_days,
                required_scopes: rc.required_scopes.clone(),
                forbidden_scopes: rc.forbidden_scopes.clone(),
                check,
            },
        );
    }

    let mut adapters = BTreeMap::new();
    for (name, spanned) in &raw.adapters {
        let ra = spanned.get_ref();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            c.at(spanned, format!("adapters.{name}: an adapter name is 1 to 64 lowercase letters, digits, '-' and '_'"));
        }
        let table = ra.table.get_ref();
        if !tables.contains_key(table) {
            c.at(
                &ra.table,
                format!("adapters.{name}.table '{table}' is not defined under [tables]"),
            );
        }
        if let Some(f) = &ra.format {
            if f.get_ref() != "csv" {
                c.at(f, format!("adapters.{name}.format must be \"csv\""));
            }
        }
        let scope = ra
            .scope
            .as_ref()
            .map_or("data:upload".to_owned(), |s| s.get_ref().clone());
        let scope_ok = scope.split_once(':').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && format!("{a}{b}")
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c == b'_')
        });
        if !scope_ok {
            if let Some(s) = &ra.scope {
                c.at(s, format!("adapters.{name}.scope must be area:action in lowercase letters and '_' (ship:upload)"));
            }
        }
        let max_rows = match &ra.max_rows {
            Some(m) if !(1..=1_000_000).contains(m.get_ref()) => {
                c.at(
                    m,
                    format!("adapters.{name}.max_rows must be from 1 to 1000000"),
                );
                10_000
            }
            Some(m) => *m.get_ref() as usize,
            None => 10_000,
        };
        adapters.insert(
            name.clone(),
            Adapter {
                name: name.clone(),
                table: table.clone(),
                description: ra.description.trim().to_owned(),
                scope,
                max_rows,
            },
        );
    }

    // A product with credential types stores the ones an onboarding request carries.
    let steps_listed = raw
        .onboarding
        .as_ref()
        .is_some_and(|o| o.get_ref().steps.is_some());
    if !steps_listed && !credentials.is_empty() {
        let at = steps
            .iter()
            .position(|s| s == "register")
            .map_or(steps.len(), |i| i + 1);
        steps.insert(at, "store_credentials".to_owned());
    }

    let signup = raw.signup.as_ref().map(|rs| {
        super::signup::wizard(
            &mut c,
            rs,
            &super::signup::Context {
                industries: &industries,
                attributes: &attributes,
                tiers: &tiers,
            },
        )
    });

    let email = match &raw.email {
        Some(e) => super::email::templates(&mut c, e, base_dir),
        None => super::email::MailTemplates::default(),
    };

    let accounts = raw
        .accounts
        .as_ref()
        .map(|a| super::accounts::policy(&mut c, a))
        .unwrap_or_default();

    let catalog = super::catalog::catalog(
        &mut c,
        &super::catalog::RawCatalog {
            metrics: &raw.metrics,
            cycles: &raw.cycles,
            plans: &raw.plans,
            trial: raw.trial.as_ref(),
            required_credentials: credentials.values().filter(|t| t.required).count(),
        },
    );

    if !c.problems.is_empty() {
        c.problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        return Err(c.problems);
    }
    Ok(Product {
        name,
        source: source_name.to_owned(),
        customer_id,
        industries,
        attributes,
        data_stores,
        dataset_name,
        dataset_tables,
        tables,
        tiers,
        default_tier,
        steps,
        checklist,
        retry,
        query,
        legacy,
        credentials,
        adapters,
        signup,
        email,
        accounts,
        catalog,
    })
}
