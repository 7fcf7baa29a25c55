use super::*;

fn problems(text: &str) -> Vec<String> {
    match Product::from_toml(text, "test.toml", None) {
        Ok(_) => vec![],
        Err(ProductError::Invalid { problems, .. }) => {
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_builtin_product_has_the_six_seed_industries() {
    let p = Product::builtin();
    let ids: Vec<_> = p.industries.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "golf",
            "medical",
            "restaurant",
            "retail",
            "ecommerce",
            "other"
        ]
    );
    assert_eq!(p.dataset_tables, ["conversions", "daily_metrics"]);
    assert_eq!(p.dataset_id("acme"), "tenant_acme");
    assert_eq!(p.default_tier.as_deref(), Some("starter"));
}

#[test]
fn a_syntax_error_is_reported_with_its_line() {
    let found = problems("[product]\nname = \"X\"\n\n[[industries]\nid = 1\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("line 4:"), "{found:?}");
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let found = problems("[product]\nname = \"X\"\ncolour = \"red\"\n");
    assert!(
        found[0].starts_with("line 3:") && found[0].contains("colour"),
        "{found:?}"
    );
}

#[test]
fn every_semantic_problem_is_reported_with_its_line() {
    let text = r#"[product]
name = "X"
customer_id = { pattern = "[a-z]+" }

[[industries]]
id = "Golf"
name = "Golf"

[attributes.ids]
kind = "set"
format = "phone"

[dataset]
name = "x_{customer_id}"
tables = ["nope"]

[tiers.gold]
tables = []
retention_days = 0

[onboarding]
steps = ["validate", "register", "teleport"]
default_tier = "platinum"
"#;
    let found = problems(text);
    let expect = [
        ("line 3:", "anchored"),
        ("line 6:", "industry id 'Golf'"),
        ("line 10:", "kind 'set'"),
        ("line 11:", "format 'phone'"),
        ("line 15:", "table 'nope'"),
        ("line 19:", "retention_days"),
        ("line 22:", "teleport"),
        ("line 23:", "platinum"),
    ];
    assert_eq!(found.len(), expect.len(), "{found:#?}");
    for ((line, needle), got) in expect.iter().zip(&found) {
        assert!(
            got.starts_with(line) && got.contains(needle),
            "{got} should be {line} {needle}"
        );
    }
}

#[test]
fn attributes_are_checked_field_by_field() {
    let p = Product::builtin();
    let input = serde_json::json!({
        "google_ads_customer_ids": ["123-456-7890", "1234567890"],
        "meta_ad_account_ids": "act_1",
        "colour": "red",
        "country": "us"
    });
    let errors = p
        .check_attributes(input.as_object().unwrap(), false)
        .unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
    assert_eq!(
        fields,
        [
            (
                "attributes.google_ads_customer_ids[1]",
                "invalid_google_ads_customer_id"
            ),
            ("attributes.meta_ad_account_ids", "invalid_type"),
            ("attributes.colour", "unknown_attribute"),
        ]
    );
    let ok = serde_json::json!({"country": "us", "meta_ad_account_ids": ["act_1", "act_1"]});
    let parsed = p.check_attributes(ok.as_object().unwrap(), false).unwrap();
    assert_eq!(parsed["country"], AttributeValue::One("US".into()));
    assert_eq!(
        parsed["meta_ad_account_ids"],
        AttributeValue::List(vec!["act_1".into()])
    );
}

#[test]
fn required_attributes_are_needed_only_on_creation() {
    let text = "[product]\nname = \"X\"\n[[industries]]\nid = \"a\"\nname = \"A\"\n[attributes.region]\nrequired = true\n";
    let p = Product::from_toml(text, "t", None).unwrap();
    let empty = serde_json::Map::new();
    assert_eq!(
        p.check_attributes(&empty, false).unwrap_err()[0].field,
        "attributes.region"
    );
    assert!(p.check_attributes(&empty, true).is_ok());
}

#[test]
fn the_example_products_are_valid() {
    for name in ["growthnav", "paidsocialnav"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name)
            .join("onramp.toml");
        if let Err(e) = Product::load(&path) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn upload_adapters_name_a_defined_table() {
    let base =
        "[product]\nname = \"X\"\n\n[[industries]]\nid = \"other\"\nname = \"Other\"\n\n[tables.t]\ncolumns = [{ name = \"a\", type = \"text\" }]\n";
    let ok = format!("{base}\n[adapters.t-csv]\ntable = \"t\"\n");
    let product = Product::from_toml(&ok, "test.toml", None).unwrap();
    let a = &product.adapters["t-csv"];
    assert_eq!(
        (a.table.as_str(), a.scope.as_str(), a.max_rows),
        ("t", "data:upload", 10_000)
    );

    let bad = format!(
        "{base}\n[adapters.Bad]\ntable = \"nope\"\nformat = \"xlsx\"\nscope = \"upload\"\nmax_rows = 0\n"
    );
    let found = problems(&bad);
    for needle in [
        "adapters.Bad: an adapter name",
        "table 'nope' is not defined",
        "format must be \"csv\"",
        "scope must be area:action",
        "max_rows must be from 1",
    ] {
        assert!(
            found.iter().any(|p| p.contains(needle)),
            "{needle}: {found:#?}"
        );
    }
}

const SIGNUP_BASE: &str = r#"
[product]
name = "Signup"

[[industries]]
id = "retail"
name = "Retail"

[attributes.country]
format = "country"

[attributes.regions]
kind = "list"
format = "text"

[tiers.starter]
tables = []
retention_days = 30
"#;

#[test]
fn a_signup_wizard_is_built_from_its_steps_fields_and_templates() {
    let text = format!(
        r#"{SIGNUP_BASE}
[signup]
mode = "open"

[[signup.templates]]
id = "basic"
name = "Basic"
tier = "starter"

[[signup.steps]]
id = "account"
title = "Account"
fields = [
  {{ name = "email", type = "email", required = true, maps_to = "contact.email" }},
  {{ name = "company_name", type = "text", required = true, min_length = 2, max_length = 80, maps_to = "customer_name" }},
  {{ name = "template", type = "choice", choices = "templates", maps_to = "tier" }},
]

[[signup.steps]]
id = "profile"
title = "Profile"
fields = [
  {{ name = "industry", type = "choice", choices = "industries", required = true, maps_to = "industry" }},
  {{ name = "country", type = "country", maps_to = "attributes.country" }},
  {{ name = "regions", type = "choice", choices = ["eu", "us"], multiple = true, maps_to = "attributes.regions" }},
]
"#
    );
    let p = Product::from_toml(&text, "test.toml", None).unwrap();
    let w = p.signup.expect("a wizard");
    assert!(w.enabled);
    assert_eq!(w.mode, crate::domain::signup::SignupMode::Open);
    assert_eq!(w.session_idle_hours, 72);
    let ids: Vec<&str> = w.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["account", "profile"]);
    assert_eq!(w.template("basic").unwrap().tier, "starter");
    let industry = w.field("industry").unwrap();
    assert!(
        matches!(&industry.kind, crate::domain::signup::FieldKind::Choice { options, multiple: false } if options == &["retail"])
    );
    assert_eq!(w.field("email").unwrap().label, "email");
}

#[test]
fn every_signup_problem_is_named_with_its_line() {
    let text = format!(
        r#"{SIGNUP_BASE}
[signup]
mode = "closed"
session_idle_hours = 0

[[signup.templates]]
id = "basic"
name = "Basic"
tier = "gold"

[[signup.steps]]
id = "account"
title = "Account"
fields = [
  {{ name = "company_name", type = "text", required = true, min_length = 5, max_length = 2 }},
  {{ name = "size", type = "choice" }},
  {{ name = "phone", type = "phone" }},
  {{ name = "company_name", type = "email", maps_to = "contact.email" }},
  {{ name = "terms", type = "boolean", required = true }},
]

[[signup.steps]]
id = "account"
title = ""
fields = [
  {{ name = "vat", type = "text", maps_to = "attributes.vat" }},
  {{ name = "industry", type = "text", maps_to = "industry" }},
  {{ name = "regions", type = "text", maps_to = "attributes.regions" }},
  {{ name = "flag", type = "boolean", choices = ["a"] }},
  {{ name = "template", type = "choice", choices = "templates" }},
]
"#
    );
    let found = problems(&text).join("\n");
    for expected in [
        "signup.mode 'closed' is not one of open, review, invite",
        "signup.session_idle_hours must be from 1 to 720",
        "signup template 'basic': tier 'gold' is not defined under [tiers]",
        "signup field 'company_name': min_length and max_length must be from 1 to 1000, min_length not above max_length",
        "signup field 'size': type \"choice\" needs choices",
        "signup field 'phone': type 'phone' is not one of text, boolean, choice",
        "signup field 'company_name' is defined twice",
        "signup step 'account' is defined twice",
        "signup step 'account' needs a title",
        "signup field 'vat': attribute 'vat' is not defined under [attributes]",
        "signup field 'industry': maps to industry, so it must be a single choice of \"industries\"",
        "signup field 'regions': its type does not fit attribute 'regions' (a list attribute)",
        "signup field 'flag': choices are for type \"choice\"",
        "signup step 'account' (the first) needs a required field 'email' of type \"email\"",
        "signup field 'template' belongs in the first step",
        "field 'terms' must not be required there",
    ] {
        assert!(found.contains(expected), "missing: {expected}\nfound:\n{found}");
    }
    assert!(
        found.lines().all(|l| l.starts_with("line ")),
        "every problem has its line:\n{found}"
    );
}

#[test]
fn the_review_policy_is_checked_with_its_lines() {
    let text = format!(
        r#"{SIGNUP_BASE}
[signup]
mode = "open"

[signup.review]
review_at = 200
reject_at = 0
b2b = true
deny_domains = ["competitor.example", "not a domain"]
allow_domains = ["localhost"]

[signup.review.weights]
free_mail = 5
gut_feeling = 10
no_mx = 5000

[[signup.steps]]
id = "account"
title = "Account"
fields = [
  {{ name = "email", type = "email", required = true }},
  {{ name = "company_name", type = "text", required = true }},
]
"#
    );
    let found = problems(&text).join("\n");
    for expected in [
        "signup.review.reject_at must be from 1 to 1000",
        "signup.review.weights: 'gut_feeling' is not a signal; the signals are disposable_domain, denied_domain, no_mx, dns_error, duplicate_name, free_mail, existing_account",
        "signup.review.weights.no_mx must be from 0 to 1000",
        "signup.review.deny_domains: 'not a domain' is not a domain like example.com",
        "signup.review.allow_domains: 'localhost' is not a domain like example.com",
    ] {
        assert!(found.contains(expected), "missing: {expected}\nfound:\n{found}");
    }
    assert!(found.lines().all(|l| l.starts_with("line ")), "{found}");
    let order = problems(&format!(
        r#"{SIGNUP_BASE}
[signup]
[signup.review]
review_at = 90
reject_at = 80
[[signup.steps]]
id = "account"
title = "Account"
fields = [
  {{ name = "email", type = "email", required = true }},
  {{ name = "company_name", type = "text", required = true }},
]
"#
    ))
    .join("\n");
    assert!(
        order.contains("signup.review.review_at must not be above reject_at"),
        "{order}"
    );
    let fine = Product::from_toml(
        &format!(
            r#"{SIGNUP_BASE}
[signup]
[signup.review]
b2b = true
deny_domains = ["Competitor.Example"]
[signup.review.weights]
free_mail = 0
[[signup.steps]]
id = "account"
title = "Account"
fields = [
  {{ name = "email", type = "email", required = true }},
  {{ name = "company_name", type = "text", required = true }},
]
"#
        ),
        "t",
        None,
    )
    .unwrap();
    let p = fine.signup.unwrap().policy;
    assert!(p.b2b);
    assert!(p.deny_domains.contains("competitor.example"));
    assert_eq!(p.weight(crate::domain::risk::Signal::FreeMail), 0);
    assert_eq!(p.weight(crate::domain::risk::Signal::NoMx), 60);
}

#[test]
fn the_seed_products_carry_their_wizards() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cortex = Product::load(&root.join("examples/policycortex/onramp.toml")).unwrap();
    let w = cortex.signup.unwrap();
    let ids: Vec<&str> = w.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "registration",
            "organization",
            "azure_connection",
            "feature_selection",
            "initial_scan",
            "user_invites",
            "configuration",
            "completion"
        ]
    );
    assert_eq!(w.template("small_business").unwrap().tier, "starter");
    let waooaw = Product::load(&root.join("examples/waooaw/onramp.toml")).unwrap();
    let w = waooaw.signup.unwrap();
    let fields: Vec<&str> = w
        .steps
        .iter()
        .flat_map(|s| &s.fields)
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        fields,
        ["email", "company_name", "industry", "country", "timezone"]
    );
    assert_eq!(w.mode, crate::domain::signup::SignupMode::Review);
    assert!(Product::builtin().signup.is_some_and(|w| w.enabled));
}

fn example(name: &str) -> Product {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("onramp.toml");
    Product::load(&path).unwrap()
}

#[test]
fn policycortex_sells_four_plans_on_three_cycles_with_a_trial() {
    use crate::domain::money::Currency;
    use crate::domain::plan::{ActivateOn, Hard, Limit, Quantity, TrialEnd};
    let p = example("policycortex");
    let c = &p.catalog;
    let ids: Vec<_> = c.plans.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["free", "starter", "professional", "enterprise"]);
    let cycles: Vec<_> = c
        .cycles
        .iter()
        .map(|k| (k.id.as_str(), k.cycle.months, k.cycle.discount_bp))
        .collect();
    assert_eq!(
        cycles,
        [
            ("monthly", 1, 0),
            ("quarterly", 3, 1000),
            ("annual", 12, 1700)
        ]
    );
    let usd = Currency::parse("USD").unwrap();
    let pro = c.plan("professional").unwrap();
    assert_eq!(pro.prices[&usd], 49_900);
    assert_eq!(pro.cycles, ["monthly", "quarterly", "annual"]);
    assert_eq!(pro.soft_threshold_percent, 80);
    assert_eq!(
        pro.limits["api_calls"],
        Limit::Capped {
            value: Quantity::units(100_000),
            hard: Hard::Overage {
                unit_price: [(usd, 10)].into(),
                per: 1
            }
        }
    );
    assert_eq!(pro.limits["users"].value(), Some(Quantity::units(25)));
    assert_eq!(
        c.plan("enterprise").unwrap().limits["resources"],
        Limit::Unlimited
    );
    assert!(c.plan("free").unwrap().is_free());
    assert_eq!(c.plan("free").unwrap().cycles, ["monthly"]);
    let t = c.trial.as_ref().unwrap();
    assert_eq!((t.days, t.min_days, t.max_days), (14, 14, 30));
    assert_eq!((t.max_extensions, t.grace_days), (2, 3));
    assert_eq!(t.activate_on, ActivateOn::OnboardingCompleted);
    assert_eq!(
        t.end,
        TrialEnd::Downgrade {
            plan: "free".into(),
            cycle: "monthly".into()
        }
    );
}

#[test]
fn waooaw_trial_waits_for_credentials_with_daily_tasks_and_a_token_budget() {
    use crate::domain::plan::{ActivateOn, Aggregation, Quantity, Reset, TrialEnd};
    let p = example("waooaw");
    let c = &p.catalog;
    let tasks = c.metric("tasks").unwrap();
    assert_eq!(
        (tasks.aggregation, tasks.reset),
        (Aggregation::Count, Reset::Day)
    );
    let tokens = c.metric("tokens").unwrap();
    assert_eq!(
        (tokens.aggregation, tokens.reset),
        (Aggregation::Sum, Reset::Never)
    );
    let t = c.trial.as_ref().unwrap();
    assert_eq!(t.days, 7);
    assert_eq!(t.activate_on, ActivateOn::CredentialsConfigured);
    assert_eq!(t.reminder_days, 2);
    assert_eq!(t.end, TrialEnd::Expire);
    assert_eq!(t.limits["tasks"].value(), Some(Quantity::units(5)));
    assert_eq!(t.limits["tokens"].value(), Some(Quantity::units(10_000)));
}

#[test]
fn a_product_without_a_catalog_sells_nothing_and_the_builtin_one_has_a_trial() {
    let p = Product::from_toml(
        "[product]\nname = \"X\"\n[[industries]]\nid = \"other\"\nname = \"Other\"\n",
        "x.toml",
        None,
    )
    .unwrap();
    assert!(p.catalog.plans.is_empty() && p.catalog.trial.is_none());
    let b = Product::builtin();
    assert_eq!(
        b.catalog
            .plans
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        ["free", "standard"]
    );
    assert_eq!(b.catalog.trial.as_ref().unwrap().plan, "standard");
}

#[test]
fn every_catalog_problem_is_reported_with_its_line() {
    let text = r#"[product]
name = "X"

[[metrics]]
id = "API"

[[metrics]]
id = "calls"
aggregation = "avg"
reset = "week"

[[metrics]]
id = "calls"

[cycles.monthly]
months = 0

[cycles.annual]
months = 12
discount_percent = 100

[[plans]]
id = "basic"
prices = { usd = 100 }
cycles = ["weekly"]
soft_threshold_percent = 0
[plans.limits]
seats = 3

[[plans]]
id = "pro"
prices = { USD = 100, EUR = 90 }
[plans.limits]
calls = { limit = 10, hard = "overage", unit_price = { EUR = 1 } }

[[plans]]
id = "max"
prices = { USD = 100 }
[plans.limits]
calls = -4

[trial]
plan = "gold"
days = 40
max_days = 30
activate_on = "credentials_configured"
end = "downgrade"
activate_within_days = 0
"#;
    let found = problems(text);
    let expect = [
        "line 5: metrics id 'API' must be lowercase",
        "line 9: metrics.calls.aggregation must be sum, count or max, not 'avg'",
        "line 10: metrics.calls.reset must be day, month or never, not 'week'",
        "line 13: metric 'calls' is defined twice",
        "line 16: cycles.monthly.months must be from 1 to 120",
        "line 20: cycles.annual.discount_percent must be a number from 0 to less than 100",
        "line 23: plans.basic.limits must give metric 'calls' a limit",
        "line 24: plans.basic.prices: 'usd' is not an upper-case currency code",
        "line 25: plans.basic.cycles: 'weekly' is not a cycle (known: annual)",
        "line 26: plans.basic.soft_threshold_percent must be from 1 to 100",
        "line 28: plans.basic.limits.seats: 'seats' is not a metric (known: calls)",
        "line 34: plans.pro.limits.calls.unit_price must price overage in USD",
        "line 37: plans.max.prices must name the same currencies as plan 'pro' (EUR, USD)",
        "line 40: plans.max.limits.calls must be a number of at least 0",
        "line 42: trial.days (40) must lie from trial.min_days (1) to trial.max_days (30)",
        "line 42: trial.end = \"downgrade\" needs end_plan",
        "line 43: trial.plan: 'gold' is not a plan (known: basic, pro, max)",
        "line 46: trial.activate_on = \"credentials_configured\" needs at least one credential type with required = true",
        "line 48: trial.activate_within_days must be from 1 to 365",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
}
