//! The product file's `[signup]` section: the self-serve wizard, checked like every other
//! section so `onramp product check` reports each problem with its line.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

use super::parse::{is_identifier, Checker};
use super::{AttributeDef, AttributeKind, Industry, Tier};
use crate::domain::attribute::BUILTIN_FORMATS;
use crate::domain::risk::{RiskPolicy, Signal};
use crate::domain::signup::{
    FieldKind, FieldTarget, SignupField, SignupMode, SignupStep, SignupTemplate, Wizard,
};
use crate::domain::AttributeFormat;

/// The longest text a field may allow.
const MAX_TEXT: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSignup {
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    mode: Option<Spanned<String>>,
    session_idle_hours: Option<Spanned<i64>>,
    #[serde(default)]
    templates: Vec<Spanned<RawTemplate>>,
    #[serde(default)]
    steps: Vec<Spanned<RawStep>>,
    review: Option<Spanned<RawReview>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReview {
    review_at: Option<Spanned<i64>>,
    reject_at: Option<Spanned<i64>>,
    #[serde(default)]
    b2b: bool,
    #[serde(default)]
    weights: BTreeMap<String, Spanned<i64>>,
    #[serde(default)]
    allow_domains: Vec<Spanned<String>>,
    #[serde(default)]
    deny_domains: Vec<Spanned<String>>,
}

/// The highest weight or threshold a policy may name.
const MAX_WEIGHT: i64 = 1000;

/// Reads `[signup.review]`: thresholds, weights by signal, B2B, allow and deny lists.
fn policy(c: &mut Checker<'_>, raw: &Spanned<RawReview>) -> RiskPolicy {
    let rr = raw.get_ref();
    let mut p = RiskPolicy::default();
    let mut number = |v: &Option<Spanned<i64>>, name: &str, default: u32| match v {
        None => default,
        Some(n) if (1..=MAX_WEIGHT).contains(n.get_ref()) => *n.get_ref() as u32,
        Some(n) => {
            c.at(
                n,
                format!("signup.review.{name} must be from 1 to {MAX_WEIGHT}"),
            );
            default
        }
    };
    p.review_at = number(&rr.review_at, "review_at", p.review_at);
    p.reject_at = number(&rr.reject_at, "reject_at", p.reject_at);
    if p.review_at > p.reject_at {
        c.at(raw, "signup.review.review_at must not be above reject_at");
    }
    p.b2b = rr.b2b;
    for (name, w) in &rr.weights {
        let Some(signal) = Signal::parse(name) else {
            c.at(
                w,
                format!(
                    "signup.review.weights: '{name}' is not a signal; the signals are {}",
                    Signal::ALL.map(|s| s.as_str()).join(", ")
                ),
            );
            continue;
        };
        if !(0..=MAX_WEIGHT).contains(w.get_ref()) {
            c.at(
                w,
                format!("signup.review.weights.{name} must be from 0 to {MAX_WEIGHT}"),
            );
            continue;
        }
        p.weights.insert(signal, *w.get_ref() as u32);
    }
    let mut domains = |list: &[Spanned<String>], name: &str| {
        let mut out = std::collections::BTreeSet::new();
        for d in list {
            let domain = d.get_ref().trim().to_ascii_lowercase();
            let ok = domain.contains('.')
                && domain.len() <= 253
                && domain.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if ok {
                out.insert(domain);
            } else {
                c.at(
                    d,
                    format!(
                        "signup.review.{name}: '{}' is not a domain like example.com",
                        d.get_ref()
                    ),
                );
            }
        }
        out
    };
    p.allow_domains = domains(&rr.allow_domains, "allow_domains");
    p.deny_domains = domains(&rr.deny_domains, "deny_domains");
    p
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    id: Spanned<String>,
    #[serde(default)]
    name: String,
    tier: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    fields: Vec<Spanned<RawField>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawChoices {
    /// `"industries"` or `"templates"`: the product's own list.
    Source(String),
    /// The choices themselves.
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: Spanned<String>,
    #[serde(default)]
    label: String,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    required: bool,
    choices: Option<Spanned<RawChoices>>,
    #[serde(default)]
    multiple: bool,
    min_length: Option<Spanned<i64>>,
    max_length: Option<Spanned<i64>>,
    maps_to: Option<Spanned<String>>,
}

/// What the rest of the product offers the wizard to refer to.
pub(super) struct Context<'a> {
    pub industries: &'a [Industry],
    pub attributes: &'a BTreeMap<String, AttributeDef>,
    pub tiers: &'a BTreeMap<String, Tier>,
}

/// Checks `[signup]` against the rest of the product and builds the wizard.
pub(super) fn wizard(c: &mut Checker<'_>, raw: &Spanned<RawSignup>, cx: &Context<'_>) -> Wizard {
    let rs = raw.get_ref();
    let mode = match &rs.mode {
        None => SignupMode::Review,
        Some(m) => SignupMode::parse(m.get_ref()).unwrap_or_else(|| {
            c.at(
                m,
                format!(
                    "signup.mode '{}' is not one of open, review, invite",
                    m.get_ref()
                ),
            );
            SignupMode::Review
        }),
    };
    let session_idle_hours = match &rs.session_idle_hours {
        None => 72,
        Some(h) if (1..=720).contains(h.get_ref()) => *h.get_ref() as u32,
        Some(h) => {
            c.at(h, "signup.session_idle_hours must be from 1 to 720");
            72
        }
    };

    let mut templates: Vec<SignupTemplate> = Vec::new();
    for spanned in &rs.templates {
        let rt = spanned.get_ref();
        let id = rt.id.get_ref();
        if !is_identifier(id) {
            c.at(&rt.id, format!("signup template id '{id}' must be lowercase letters, digits and '_', starting with a letter"));
        } else if templates.iter().any(|t| &t.id == id) {
            c.at(&rt.id, format!("signup template '{id}' is defined twice"));
        }
        if rt.name.trim().is_empty() {
            c.at(spanned, format!("signup template '{id}' needs a name"));
        }
        let tier = rt.tier.get_ref();
        if !cx.tiers.contains_key(tier) {
            c.at(
                &rt.tier,
                format!("signup template '{id}': tier '{tier}' is not defined under [tiers]"),
            );
        }
        templates.push(SignupTemplate {
            id: id.clone(),
            name: rt.name.trim().to_owned(),
            tier: tier.clone(),
        });
    }

    let mut steps: Vec<SignupStep> = Vec::new();
    let mut targets: Vec<FieldTarget> = Vec::new();
    for spanned in &rs.steps {
        let rstep = spanned.get_ref();
        let id = rstep.id.get_ref();
        if !is_identifier(id) {
            c.at(&rstep.id, format!("signup step id '{id}' must be lowercase letters, digits and '_', starting with a letter"));
        } else if steps.iter().any(|s| &s.id == id) {
            c.at(&rstep.id, format!("signup step '{id}' is defined twice"));
        }
        if rstep.title.trim().is_empty() {
            c.at(spanned, format!("signup step '{id}' needs a title"));
        }
        if rstep.fields.is_empty() {
            c.at(
                spanned,
                format!("signup step '{id}' needs at least one field"),
            );
        }
        let mut fields = Vec::new();
        for rf in &rstep.fields {
            let Some(field) = field(c, id, rf, &templates, cx) else {
                continue;
            };
            let seen = steps.iter().flat_map(|s| &s.fields).chain(&fields);
            if seen.clone().any(|f: &SignupField| f.name == field.name) {
                c.at(
                    &rf.get_ref().name,
                    format!("signup field '{}' is defined twice", field.name),
                );
            }
            if let Some(target) = &field.maps_to {
                if targets.contains(target) {
                    let at = rf.get_ref().maps_to.as_ref().expect("a target was named");
                    c.at(
                        at,
                        format!(
                            "signup field '{}': another field maps to {}",
                            field.name,
                            at.get_ref()
                        ),
                    );
                }
                targets.push(target.clone());
            }
            fields.push(field);
        }
        steps.push(SignupStep {
            id: id.clone(),
            title: rstep.title.trim().to_owned(),
            fields,
        });
    }

    // A session starts with the first step: it takes the email and the company's name.
    match steps.first() {
        None => c.at(raw, "signup needs at least one [[signup.steps]]"),
        Some(first) => {
            let has = |name: &str, type_name: &str| {
                first
                    .fields
                    .iter()
                    .any(|f| f.name == name && f.required && f.kind.type_name() == type_name)
            };
            if !has("email", "email") {
                c.at(raw, format!("signup step '{}' (the first) needs a required field 'email' of type \"email\"", first.id));
            }
            if !has("company_name", "text") {
                c.at(raw, format!("signup step '{}' (the first) needs a required field 'company_name' of type \"text\"", first.id));
            }
            for f in &first.fields {
                if f.required && !matches!(f.name.as_str(), "email" | "company_name" | "template") {
                    c.at(raw, format!("signup step '{}' (the first) is what a session starts with, which sends only email, company_name and template: field '{}' must not be required there", first.id, f.name));
                }
            }
            let template_elsewhere = steps
                .iter()
                .skip(1)
                .flat_map(|s| &s.fields)
                .any(|f| f.name == "template");
            if template_elsewhere {
                c.at(
                    raw,
                    "signup field 'template' belongs in the first step, which a session starts with",
                );
            }
        }
    }
    let policy = rs
        .review
        .as_ref()
        .map_or_else(RiskPolicy::default, |r| policy(c, r));
    Wizard {
        enabled: rs.enabled,
        mode,
        session_idle_hours,
        steps,
        templates,
        policy,
    }
}

/// Checks one field; `None` when its type is unusable (the problem is recorded).
fn field(
    c: &mut Checker<'_>,
    step: &str,
    spanned: &Spanned<RawField>,
    templates: &[SignupTemplate],
    cx: &Context<'_>,
) -> Option<SignupField> {
    let rf = spanned.get_ref();
    let name = rf.name.get_ref();
    let at = format!("signup field '{name}'");
    if !is_identifier(name) {
        c.at(
            &rf.name,
            format!("{at} (step '{step}'): a field name is lowercase letters, digits and '_', starting with a letter"),
        );
    }
    let type_name = rf.kind.get_ref().as_str();
    let text_bounds = rf.min_length.is_some() || rf.max_length.is_some();
    if text_bounds && type_name != "text" {
        c.at(
            spanned,
            format!("{at}: min_length and max_length are for type \"text\""),
        );
    }
    if rf.choices.is_some() && type_name != "choice" {
        c.at(spanned, format!("{at}: choices are for type \"choice\""));
    }
    if rf.multiple && type_name != "choice" {
        c.at(spanned, format!("{at}: multiple is for type \"choice\""));
    }
    let kind = match type_name {
        "text" => {
            let min = rf.min_length.as_ref().map_or(1, |m| *m.get_ref());
            let max = rf.max_length.as_ref().map_or(200, |m| *m.get_ref());
            if !(1..=MAX_TEXT).contains(&min) || !(1..=MAX_TEXT).contains(&max) || min > max {
                c.at(spanned, format!("{at}: min_length and max_length must be from 1 to {MAX_TEXT}, min_length not above max_length"));
            }
            FieldKind::Text {
                min: min.clamp(1, MAX_TEXT) as usize,
                max: max.clamp(1, MAX_TEXT) as usize,
            }
        }
        "boolean" => FieldKind::Boolean,
        "choice" => {
            let options = match rf.choices.as_ref().map(|ch| (ch, ch.get_ref())) {
                None => {
                    c.at(spanned, format!("{at}: type \"choice\" needs choices (a list, \"industries\" or \"templates\")"));
                    vec![]
                }
                Some((_, RawChoices::Source(s))) if s == "industries" => {
                    cx.industries.iter().map(|i| i.id.clone()).collect()
                }
                Some((ch, RawChoices::Source(s))) if s == "templates" => {
                    if templates.is_empty() {
                        c.at(
                            ch,
                            format!("{at}: choices = \"templates\" needs [[signup.templates]]"),
                        );
                    }
                    templates.iter().map(|t| t.id.clone()).collect()
                }
                Some((ch, RawChoices::Source(s))) => {
                    c.at(
                        ch,
                        format!(
                            "{at}: choices '{s}' is not a list, \"industries\" or \"templates\""
                        ),
                    );
                    vec![]
                }
                Some((ch, RawChoices::List(list))) => {
                    let mut options: Vec<String> = Vec::new();
                    for o in list {
                        if o.trim().is_empty() || o.len() > 100 {
                            c.at(ch, format!("{at}: a choice is 1 to 100 characters"));
                        } else if options.contains(o) {
                            c.at(ch, format!("{at}: choice '{o}' is listed twice"));
                        }
                        options.push(o.clone());
                    }
                    if options.is_empty() {
                        c.at(ch, format!("{at}: choices must not be empty"));
                    }
                    options
                }
            };
            FieldKind::Choice {
                options,
                multiple: rf.multiple,
            }
        }
        other => match AttributeFormat::builtin(other) {
            Some(format) if other != "text" => FieldKind::Format {
                name: other.to_owned(),
                format,
            },
            _ => {
                c.at(
                    &rf.kind,
                    format!(
                        "{at}: type '{other}' is not one of text, boolean, choice, {}",
                        BUILTIN_FORMATS
                            .iter()
                            .filter(|f| **f != "text")
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                return None;
            }
        },
    };
    let maps_to = rf.maps_to.as_ref().and_then(|m| {
        let target = FieldTarget::parse(m.get_ref());
        let problem = match &target {
            None => Some(format!("{at}: maps_to '{}' is not customer_name, industry, contact.email, contact.name, tier, users.invite or attributes.<name>", m.get_ref())),
            Some(t) => target_problem(t, &kind, rf, cx).map(|p| format!("{at}: {p}")),
        };
        match problem {
            Some(p) => {
                c.at(m, p);
                None
            }
            None => target,
        }
    });
    Some(SignupField {
        name: name.clone(),
        label: if rf.label.trim().is_empty() {
            name.replace('_', " ")
        } else {
            rf.label.trim().to_owned()
        },
        kind,
        required: rf.required,
        maps_to,
    })
}

/// Why a field cannot feed `target`, if it cannot.
fn target_problem(
    target: &FieldTarget,
    kind: &FieldKind,
    rf: &RawField,
    cx: &Context<'_>,
) -> Option<String> {
    let choices_from = |source: &str| {
        matches!(
            kind,
            FieldKind::Choice {
                multiple: false,
                ..
            }
        ) && matches!(rf.choices.as_ref().map(|c| c.get_ref()), Some(RawChoices::Source(s)) if s == source)
    };
    match target {
        FieldTarget::CustomerName | FieldTarget::ContactName => {
            (!matches!(kind, FieldKind::Text { .. }))
                .then(|| "maps to a name, so its type must be \"text\"".to_owned())
        }
        FieldTarget::Invitations => (!matches!(kind, FieldKind::Text { .. })).then(|| {
            "maps to users.invite, so its type must be \"text\" (addresses separated by commas)"
                .to_owned()
        }),
        FieldTarget::ContactEmail => (kind.type_name() != "email")
            .then(|| "maps to contact.email, so its type must be \"email\"".to_owned()),
        FieldTarget::Industry => (!choices_from("industries")).then(|| {
            "maps to industry, so it must be a single choice of \"industries\"".to_owned()
        }),
        FieldTarget::Tier => (!choices_from("templates"))
            .then(|| "maps to tier, so it must be a single choice of \"templates\"".to_owned()),
        FieldTarget::Attribute(name) => match cx.attributes.get(name) {
            None => Some(format!(
                "attribute '{name}' is not defined under [attributes]"
            )),
            Some(def) => {
                let fits = match kind {
                    FieldKind::Text { .. } => true,
                    FieldKind::Format { name, .. } => {
                        AttributeFormat::builtin(name).is_some_and(|f| f.same_rule(&def.format))
                    }
                    FieldKind::Choice { multiple, .. } => {
                        *multiple == (def.kind == AttributeKind::List)
                    }
                    FieldKind::Boolean => false,
                };
                let list_mismatch = def.kind == AttributeKind::List
                    && !matches!(kind, FieldKind::Choice { multiple: true, .. });
                (!fits || list_mismatch).then(|| {
                    format!(
                        "its type does not fit attribute '{name}' (a {} attribute)",
                        match def.kind {
                            AttributeKind::List => "list",
                            AttributeKind::String => "single-value",
                        }
                    )
                })
            }
        },
    }
}
