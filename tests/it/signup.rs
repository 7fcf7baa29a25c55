//! Self-serve signup sessions through the `Signups` capability, on both backends: a session
//! starts, its steps are saved in order, it resumes with its token and can be abandoned; every
//! refusal names its field and rule and changes nothing; an idle session expires.

use crate::common;
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::sync::Arc;

use crate::common::{Backend, TestDb};
use onramp::domain::signup::SignupStatus;
use onramp::product::Product;
use onramp::services::signups::{SignupError, Signups, StartSignup, StepSubmission};
use onramp::services::{Clock, ManualClock};
use onramp::store::{SignupRecord, Store};

struct Fixture {
    _db: TestDb,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    signups: Signups,
}

async fn fixture(backend: Backend, product: Product) -> Fixture {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let clock = Arc::new(ManualClock::at(
        Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap(),
    ));
    let signups = Signups::new(
        store.clone(),
        store.clone(),
        Arc::new(product),
        clock.clone(),
        Arc::new(onramp::services::keyring::HashSecret::ephemeral()),
    );
    Fixture {
        _db: db,
        store,
        clock,
        signups,
    }
}

fn start(email: &str, company: &str, template: Option<&str>) -> StartSignup {
    StartSignup {
        email: email.into(),
        company_name: company.into(),
        template: template.map(Into::into),
    }
}

impl Fixture {
    /// Saves `step`'s answers with no request id.
    async fn submit(
        &self,
        signup_id: &str,
        token: &str,
        step_id: &str,
        data: Value,
    ) -> Result<onramp::services::signups::SignupView, SignupError> {
        self.signups
            .submit_step(signup_id, token, &step(step_id, data), None)
            .await
    }
}

fn step(id: &str, data: Value) -> StepSubmission {
    StepSubmission {
        step: id.into(),
        data: data.as_object().unwrap().clone(),
    }
}

/// What a refusal must leave as it was: the session's record and the event log.
async fn state(f: &Fixture, signup_id: &str) -> (Option<SignupRecord>, usize) {
    let record = f.store.signup(signup_id).await.unwrap();
    (record, common::all_events(f.store.as_ref()).await.len())
}

fn fields(e: &SignupError) -> Vec<(String, &'static str)> {
    match e {
        SignupError::Invalid(errors) => errors.iter().map(|e| (e.field.clone(), e.code)).collect(),
        other => panic!("expected a validation refusal, got {other:?}"),
    }
}

async fn a_session_starts_fills_its_steps_in_order_and_resumes(backend: Backend) {
    let f = fixture(backend, Product::builtin()).await;
    let started = f
        .signups
        .start(
            &start(
                " Ann@Example.COM ",
                "  Acme Analytics ",
                Some("professional"),
            ),
            Some("req-1".into()),
        )
        .await
        .unwrap();
    let token = started.resume_token.clone();
    let id = started.signup.signup_id.clone();
    assert!(token.starts_with("onr_su_") && token.len() == 7 + 64);
    assert!(
        !format!("{started:?}").contains(&token[7..]),
        "the token never prints"
    );
    let view = &started.signup;
    assert_eq!(view.status, SignupStatus::InProgress);
    assert_eq!(view.current_step.as_deref(), Some("company"));
    assert_eq!(
        (
            view.progress.done,
            view.progress.total,
            view.progress.percent
        ),
        (1, 3, 33)
    );
    assert_eq!(view.steps[0].answers["company_name"], "Acme Analytics");
    assert_eq!(view.steps[0].answers["template"], "professional");
    assert!(!view.email_verified);
    assert_eq!(
        view.expires_at,
        f.clock.now() + Duration::hours(72),
        "the built-in wizard keeps an idle session 72 hours"
    );

    // Only the token's hash is stored; the event names the email's domain, not the address.
    let stored = f.store.signup(&id).await.unwrap().unwrap();
    assert_ne!(stored.resume_token_hash, token);
    assert!(!stored.resume_token_hash.contains(&token[7..]));
    let events = common::all_events(f.store.as_ref()).await;
    let started_event = events.last().unwrap();
    assert_eq!(started_event.event_type.as_str(), "signup.started");
    assert_eq!(started_event.payload["email_domain"], "example.com");
    assert!(!started_event.payload.to_string().contains("ann@"));

    // A later step before the current one is refused and changes nothing.
    let before = state(&f, &id).await;
    let early = f
        .submit(
            &id,
            &token,
            "contact",
            json!({"contact_name": "Ann", "accept_terms": true}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(early, SignupError::StepOutOfOrder { ref current, .. } if current == "company"),
        "{early:?}"
    );
    assert_eq!(early.code(), "step_out_of_order");
    assert_eq!(state(&f, &id).await, before);

    f.clock.advance(Duration::hours(1));
    let view = f
        .submit(
            &id,
            &token,
            "company",
            json!({"industry": "retail", "country": "US", "timezone": "America/New_York"}),
        )
        .await
        .unwrap();
    assert_eq!(view.current_step.as_deref(), Some("contact"));
    assert_eq!(view.furthest_step, "contact");
    assert_eq!(view.progress.done, 2);
    assert_eq!(
        view.expires_at,
        f.clock.now() + Duration::hours(72),
        "saving a step keeps it alive"
    );

    // Going back to an earlier step is allowed and keeps the furthest step reached.
    let view = f
        .submit(
            &id,
            &token,
            "account",
            json!({"email": "ann@acme.example", "company_name": "Acme Analytics Ltd"}),
        )
        .await
        .unwrap();
    assert_eq!(view.furthest_step, "contact");
    let stored = f.store.signup(&id).await.unwrap().unwrap();
    assert_eq!(stored.email, "ann@acme.example");
    assert_eq!(stored.company_name, "Acme Analytics Ltd");
    assert_eq!(
        stored.template, None,
        "the account step was saved again without a template"
    );

    let view = f
        .submit(
            &id,
            &token,
            "contact",
            json!({"contact_name": "Ann Lee", "accept_terms": true}),
        )
        .await
        .unwrap();
    assert_eq!(view.current_step, None);
    assert_eq!(view.progress.percent, 100);

    // Resuming reads the same session back.
    let resumed = f.signups.get(&id, &token).await.unwrap();
    assert_eq!(resumed.steps[2].answers["contact_name"], "Ann Lee");
    let kinds = common::event_types(f.store.as_ref()).await;
    assert!(kinds.contains("signup.started") && kinds.contains("signup.step_completed"));
}

async fn every_bad_answer_is_named_and_nothing_is_saved(backend: Backend) {
    let f = fixture(backend, Product::builtin()).await;
    let events_before = common::all_events(f.store.as_ref()).await.len();
    let refused = f
        .signups
        .start(&start("not-an-email", "A", Some("gold")), None)
        .await
        .unwrap_err();
    assert_eq!(
        fields(&refused),
        [
            ("email".to_owned(), "invalid_email"),
            ("company_name".to_owned(), "too_short"),
            ("template".to_owned(), "invalid_choice"),
        ]
    );
    assert_eq!(
        common::all_events(f.store.as_ref()).await.len(),
        events_before
    );

    let started = f
        .signups
        .start(&start("ann@example.com", "Acme", None), None)
        .await
        .unwrap();
    let (id, token) = (
        started.signup.signup_id.clone(),
        started.resume_token.clone(),
    );
    let before = state(&f, &id).await;
    let bad = f
        .submit(
            &id,
            &token,
            "company",
            json!({"industry": "mining", "country": "Narnia", "website": 7, "fax": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad),
        [
            ("data.fax".to_owned(), "unknown_field"),
            ("data.industry".to_owned(), "invalid_choice"),
            ("data.country".to_owned(), "invalid_country"),
            ("data.timezone".to_owned(), "required"),
            ("data.website".to_owned(), "invalid_type"),
        ]
    );
    let unknown = f
        .submit(&id, &token, "payment", json!({}))
        .await
        .unwrap_err();
    assert_eq!(fields(&unknown), [("step".to_owned(), "unknown_step")]);
    assert_eq!(state(&f, &id).await, before);

    // A wrong token, another session's token and an unknown id all get the same answer.
    let other = f
        .signups
        .start(&start("bob@example.org", "Beta", None), None)
        .await
        .unwrap();
    let before = state(&f, &id).await;
    for (sid, tok) in [
        (id.as_str(), "onr_su_0000"),
        (id.as_str(), other.resume_token.as_str()),
        ("su_nope", token.as_str()),
        (&"x".repeat(5000), token.as_str()),
    ] {
        let e = f.signups.get(sid, tok).await.unwrap_err();
        assert!(matches!(e, SignupError::BadToken), "{e:?}");
        assert_eq!(e.code(), "unauthorized");
        let e = f
            .submit(sid, tok, "company", json!({"industry": "retail"}))
            .await
            .unwrap_err();
        assert!(matches!(e, SignupError::BadToken));
    }
    assert_eq!(state(&f, &id).await, before);
}

async fn an_abandoned_or_idle_session_takes_no_more_answers(backend: Backend) {
    let f = fixture(backend, Product::builtin()).await;
    let a = f
        .signups
        .start(&start("ann@example.com", "Acme", None), None)
        .await
        .unwrap();
    let view = f
        .signups
        .abandon(&a.signup.signup_id, &a.resume_token, None)
        .await
        .unwrap();
    assert_eq!(view.status, SignupStatus::Abandoned);
    let before = state(&f, &a.signup.signup_id).await;
    for e in [
        f.signups
            .abandon(&a.signup.signup_id, &a.resume_token, None)
            .await
            .unwrap_err(),
        f.submit(&a.signup.signup_id, &a.resume_token, "company", json!({}))
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                SignupError::Finished {
                    status: SignupStatus::Abandoned,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.code(), "signup_finished");
    }
    assert_eq!(state(&f, &a.signup.signup_id).await, before);
    let last = common::all_events(f.store.as_ref()).await;
    assert_eq!(last.last().unwrap().event_type.as_str(), "signup.abandoned");
    assert_eq!(last.last().unwrap().payload["step"], "company");

    let b = f
        .signups
        .start(&start("bob@example.com", "Beta", None), None)
        .await
        .unwrap();
    f.clock.advance(Duration::hours(72));
    let view = f
        .signups
        .get(&b.signup.signup_id, &b.resume_token)
        .await
        .unwrap();
    assert_eq!(view.status, SignupStatus::Expired);
    let e = f
        .submit(
            &b.signup.signup_id,
            &b.resume_token,
            "company",
            json!({"industry": "retail", "country": "US", "timezone": "UTC"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            SignupError::Finished {
                status: SignupStatus::Expired,
                ..
            }
        ),
        "{e:?}"
    );
}

async fn a_product_decides_whether_strangers_may_sign_up(backend: Backend) {
    let closed = fixture(
        backend,
        Product::load(&common::repo_path("examples/growthnav/onramp.toml")).unwrap(),
    )
    .await;
    let e = closed
        .signups
        .start(&start("ann@example.com", "Acme", None), None)
        .await
        .unwrap_err();
    assert!(matches!(e, SignupError::Closed));
    assert_eq!(e.code(), "signup_closed");

    let text = std::fs::read_to_string(common::repo_path("examples/waooaw/onramp.toml"))
        .unwrap()
        .replace("mode = \"review\"", "mode = \"invite\"");
    let invite = fixture(
        backend,
        Product::from_toml(
            &text,
            "invite.toml",
            Some(&common::repo_path("examples/waooaw")),
        )
        .unwrap(),
    )
    .await;
    let e = invite
        .signups
        .start(&start("ann@example.com", "Acme", None), None)
        .await
        .unwrap_err();
    assert!(matches!(e, SignupError::InviteOnly));
    assert!(common::all_events(invite.store.as_ref()).await.is_empty());

    // PolicyCortex's eight steps, in order, with its templates.
    let cortex = fixture(
        backend,
        Product::load(&common::repo_path("examples/policycortex/onramp.toml")).unwrap(),
    )
    .await;
    let s = cortex
        .signups
        .start(
            &start("it@contoso.example", "Contoso", Some("enterprise")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s.signup.progress.total, 8);
    assert_eq!(s.signup.current_step.as_deref(), Some("organization"));
    let organization = cortex
        .submit(
            &s.signup.signup_id,
            &s.resume_token,
            "organization",
            json!({
                "organization_type": "enterprise",
                "industry": "finance",
                "employee_count": "201-1000",
                "cloud_environments": ["azure", "aws"]
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        organization.current_step.as_deref(),
        Some("azure_connection")
    );
    assert_eq!(
        organization.steps[1].answers["cloud_environments"],
        json!(["azure", "aws"])
    );
}

async fn the_public_wizard_answers_over_http_without_an_operator_token(backend: Backend) {
    let db = TestDb::new(backend).await;
    let runner = onramp::services::RunnerOptions::new(db.data_dir());
    let mut options = onramp::interfaces::http::ServeOptions::default();
    options.signup_limits.per_address_per_minute = 8;
    let app = common::TestApp::start_serving(db, Product::builtin(), runner, options).await;
    let client = reqwest::Client::new();
    let url = |path: &str| app.url(&format!("/api/v1/signup/sessions{path}"));

    let r = client
        .post(url(""))
        .json(&json!({"email": "ann@example.com", "company_name": "Acme", "template": "starter"}))
        .send()
        .await
        .unwrap();
    let (status, started) = common::status_and_json(r).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{started}");
    let id = started["signup_id"].as_str().unwrap().to_owned();
    let token = started["resume_token"].as_str().unwrap().to_owned();
    assert_eq!(started["current_step"], "company");
    assert_eq!(started["steps"][1]["fields"][0]["choices"][0], "golf");

    // A malformed id, no token, another token: 401 problems, the same for each.
    let r = client
        .get(url(&format!("/{}", "x".repeat(4000))))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, problem) = common::status_and_json(r).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (reqwest::StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    // No token, another token.
    for auth in [None, Some("Bearer onr_su_00")] {
        let mut req = client.get(url(&format!("/{id}")));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let (status, problem) = common::status_and_json(r).await;
        assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
        assert_eq!(problem["code"], "unauthorized");
    }

    let r = client
        .post(url(&format!("/{id}/step")))
        .bearer_auth(&token)
        .json(&json!({"step": "company", "data": {"industry": "mining"}}))
        .send()
        .await
        .unwrap();
    let (status, problem) = common::status_and_json(r).await;
    assert_eq!(
        status,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "{problem}"
    );
    let named: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["data.industry", "data.country", "data.timezone"]);

    let r = client
        .get(url(&format!("/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, view) = common::status_and_json(r).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(
        view["progress"]["done"], 1,
        "the refused step saved nothing"
    );

    let r = client
        .delete(url(&format!("/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, view) = common::status_and_json(r).await;
    assert_eq!(
        (status, view["status"].as_str()),
        (reqwest::StatusCode::OK, Some("abandoned"))
    );
    let r = client
        .delete(url(&format!("/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, problem) = common::status_and_json(r).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (reqwest::StatusCode::CONFLICT, Some("signup_finished"))
    );

    // The document states the wizard's own rules: each step's fields, the templates.
    let doc = app.openapi().await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["StartSignup"]["properties"]["template"]["anyOf"][0]["enum"],
        json!(["starter", "professional", "enterprise"])
    );
    let steps: Vec<&str> = schemas["StepSubmission"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["properties"]["step"]["const"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["account", "company", "contact"]);
    assert_eq!(
        schemas["StepSubmission"]["oneOf"][1]["properties"]["data"]["required"],
        json!(["industry", "country", "timezone"])
    );

    // One address gets its quota of calls a minute, then 429 with Retry-After.
    let mut limited = None;
    for _ in 0..10 {
        let r = client
            .post(url(""))
            .json(&json!({"email": "x@example.com", "company_name": "Flood"}))
            .send()
            .await
            .unwrap();
        if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the address quota ran out");
    assert!(r.headers().contains_key("retry-after"));
    let (_, problem) = common::status_and_json(r).await;
    assert_eq!(problem["code"], "rate_limited");
}

async fn the_funnel_counts_how_far_sessions_got(backend: Backend) {
    use onramp::services::signups::{FunnelQuery, Issue, VerifyEmail};
    let f = fixture(backend, Product::builtin()).await;
    let cli = onramp::services::Actor::cli();
    let company = json!({"industry": "retail", "country": "DE", "timezone": "Europe/Berlin"});
    // One abandoned at the contact step, one left idle at the company step, one completed.
    let a = f
        .signups
        .start(&start("a@example.org", "A Co", None), None)
        .await
        .unwrap();
    f.submit(
        &a.signup.signup_id,
        &a.resume_token,
        "company",
        company.clone(),
    )
    .await
    .unwrap();
    f.signups
        .abandon(&a.signup.signup_id, &a.resume_token, None)
        .await
        .unwrap();
    let b = f
        .signups
        .start(&start("b@example.org", "B Co", None), None)
        .await
        .unwrap();
    let c = f
        .signups
        .start(&start("c@example.org", "C Co", None), None)
        .await
        .unwrap();
    let (id, token) = (&c.signup.signup_id, &c.resume_token);
    let Issue::Issued(v) = f
        .signups
        .issue_verification(id, "c@example.org")
        .await
        .unwrap()
    else {
        panic!("a code");
    };
    f.signups
        .verify(id, token, &VerifyEmail { code: v.code }, None)
        .await
        .unwrap();
    f.submit(id, token, "company", company).await.unwrap();
    f.submit(
        id,
        token,
        "contact",
        json!({"contact_name": "Cy", "accept_terms": true}),
    )
    .await
    .unwrap();
    f.signups.complete(id, token, None).await.unwrap();
    f.clock.advance(Duration::hours(73));
    let funnel = f
        .signups
        .funnel(&cli, &FunnelQuery::default())
        .await
        .unwrap();
    assert_eq!(
        (
            funnel.started,
            funnel.completed,
            funnel.approved,
            funnel.rejected
        ),
        (3, 1, 0, 0)
    );
    assert!((funnel.completion_rate - 1.0 / 3.0).abs() < 1e-9);
    let steps: Vec<(&str, i64, i64, i64, i64)> = funnel
        .steps
        .iter()
        .map(|s| {
            (
                s.step.as_str(),
                s.reached,
                s.completed,
                s.abandoned,
                s.expired,
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("account", 3, 3, 0, 0),
            ("company", 3, 2, 0, 1),
            ("contact", 2, 1, 1, 0),
        ],
        "b expired at company (idle, not yet recorded by the job)"
    );
    let _ = b;
    // Only the sessions started since the time asked for.
    let later = f
        .signups
        .funnel(
            &cli,
            &FunnelQuery {
                since: Some(f.clock.now()),
            },
        )
        .await
        .unwrap();
    assert_eq!(later.started, 0);
    assert_eq!(later.completion_rate, 0.0);
}

on_both_backends!(
    the_funnel_counts_how_far_sessions_got,
    a_session_starts_fills_its_steps_in_order_and_resumes,
    every_bad_answer_is_named_and_nothing_is_saved,
    an_abandoned_or_idle_session_takes_no_more_answers,
    a_product_decides_whether_strangers_may_sign_up,
    the_public_wizard_answers_over_http_without_an_operator_token,
);
