//! The WAOOAW seed's account creation and verification (runbook steps 1 to 3, with step 14's
//! post-onboarding summary), replayed end to end against `examples/waooaw/onramp.toml` on both
//! backends: people sign up through the public wizard and verify their email with the code
//! the real SMTP server (aiosmtpd) received; the red flags of step 1 (a disposable domain, a
//! domain without MX records, a duplicate company) land in the review queue with their reasons
//! (MX answers from a DNS server in the test); the operator rejects the escalated one and
//! approves the clean one, which becomes a customer with the form's fields; its owner reads the
//! temporary password from WAOOAW's own welcome email, signs in and is made to reset it; the
//! post-onboarding summary follows in WAOOAW's words.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::common::dns::{DnsServer, Zone};
use crate::common::smtp::{Received, SmtpSink};
use crate::common::{self, status_and_json, Backend, TestApp};
use onramp::jobs::Jobs;
use onramp::product::Product;

const PRODUCT: &str = "examples/waooaw/onramp.toml";

struct Waooaw {
    app: TestApp,
    jobs: Jobs,
    sink: SmtpSink,
    _dns: DnsServer,
}

impl Waooaw {
    async fn start(backend: Backend) -> Self {
        let dns = DnsServer::start(&[
            (
                "brightpath.example",
                Zone::Mx(vec!["mx.brightpath.example"]),
            ),
            ("sunrise.example", Zone::Mx(vec!["mx.sunrise.example"])),
            ("mailinator.com", Zone::Mx(vec!["mail.mailinator.com"])),
            ("nomx.example", Zone::NoMx),
        ])
        .await;
        let sink = SmtpSink::start();
        let (smtp, resolver) = (sink.url(), dns.addr.to_string());
        let clock = crate::email::clock();
        let product = Product::load(&common::repo_path(PRODUCT)).unwrap();
        let app = TestApp::start_configured(backend, product, move |s| {
            s.smtp_url = Some(smtp.into());
            s.mail_from = Some("WAOOAW Onboarding <onboarding@waooaw.test>".into());
            s.public_url = Some("https://onboard.waooaw.test".into());
            s.dns_resolver = Some(resolver);
            s.clock = clock as Arc<_>;
        })
        .await;
        let jobs = Jobs::new(app.services.clone(), Duration::from_secs(30));
        jobs.register().await.unwrap();
        Self {
            app,
            jobs,
            sink,
            _dns: dns,
        }
    }

    /// Sends what the events call for; returns every message received so far.
    async fn mail(&self, expected: usize) -> Vec<Received> {
        crate::email::deliver(&self.jobs).await;
        self.sink.wait_for(expected)
    }

    async fn public(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = self.app.client.post(self.app.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        status_and_json(req.send().await.unwrap()).await
    }

    async fn operator(&self, path: &str, body: Value) -> (StatusCode, Value) {
        status_and_json(
            self.app
                .post(path, &self.app.operator, &body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn read(&self, path: &str) -> Value {
        let (status, v) =
            status_and_json(self.app.get(path, &self.app.viewer).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        v
    }

    /// The signup form: email and company, the code from the mail, the profile, completed.
    /// Returns the signup id and the completion's status.
    async fn sign_up(&self, email: &str, company: &str, profile: Value) -> (String, String) {
        let (status, started) = self
            .public(
                "/api/v1/signup/sessions",
                None,
                json!({"email": email, "company_name": company}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{started}");
        let id = started["signup_id"].as_str().unwrap().to_owned();
        let token = started["resume_token"].as_str().unwrap().to_owned();
        let sent = self.sink.received().len();
        let mail = self.mail(sent + 1).await;
        let m = mail
            .iter()
            .rev()
            .find(|m| m.subject == "Verify your email for WAOOAW")
            .expect("the verification message");
        let code = crate::email::code_in(m);
        let session = format!("/api/v1/signup/sessions/{id}");
        let (status, v) = self
            .public(
                &format!("{session}/verify"),
                Some(&token),
                json!({"code": code}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let (status, v) = self
            .public(
                &format!("{session}/step"),
                Some(&token),
                json!({"step": "profile", "data": profile}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let (status, v) = self
            .public(&format!("{session}/complete"), Some(&token), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        (id, v["status"].as_str().unwrap().to_owned())
    }

    async fn signals(&self, id: &str) -> Vec<String> {
        self.read(&format!("/api/v1/signups/{id}")).await["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["signal"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn profile(industry: &str, country: &str, timezone: &str) -> Value {
    json!({"industry": industry, "country": country, "timezone": timezone})
}

/// The temporary password in a message: four groups of four, joined by dashes.
fn temporary_password_in(text: &str) -> String {
    let at = text
        .find("Temporary password:")
        .expect("the temporary password's line");
    text[at..]
        .split_whitespace()
        .find(|w| {
            w.len() == 19
                && w.split('-').count() == 4
                && w.split('-')
                    .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_alphanumeric()))
        })
        .expect("a temporary password")
        .to_owned()
}

async fn waooaw_account_creation_replays(backend: Backend) {
    let w = Waooaw::start(backend).await;

    // An existing customer, for step 2's duplicate check.
    let (status, v) = w
        .app
        .onboard(&json!({
            "customer_id": "sunrise_media",
            "customer_name": "Sunrise Media Pvt Ltd",
            "industry": "marketing",
            "attributes": {"country": "IN", "timezone": "Asia/Kolkata"}
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");

    // Step 1: the red flags. Each signup still waits for an operator (escalated, not dropped),
    // with the flag named.
    let (disposable, status) = w
        .sign_up(
            "deals@mailinator.com",
            "Quick Cash Agency",
            profile("sales", "US", "America/New_York"),
        )
        .await;
    assert_eq!(status, "review");
    assert!(
        w.signals(&disposable)
            .await
            .contains(&"disposable_domain".to_owned()),
        "a disposable domain is a red flag"
    );
    let (no_mx, status) = w
        .sign_up(
            "hello@nomx.example",
            "Nomx Studio",
            profile("education", "GB", "Europe/London"),
        )
        .await;
    assert_eq!(status, "review");
    assert_eq!(w.signals(&no_mx).await, vec!["no_mx"], "no MX records");
    // Step 2's validation: a company name that duplicates a customer's, folded.
    let (duplicate, status) = w
        .sign_up(
            "ravi@sunrise.example",
            "SUNRISE MEDIA PVT. LTD.",
            profile("marketing", "IN", "Asia/Kolkata"),
        )
        .await;
    assert_eq!(status, "review");
    assert_eq!(w.signals(&duplicate).await, vec!["duplicate_name"]);
    let detail = w.read(&format!("/api/v1/signups/{duplicate}")).await;
    assert!(
        detail["reasons"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("Sunrise Media Pvt Ltd"),
        "the reason names the customer it duplicates: {detail}"
    );

    // The security team's answer to the escalation: rejected, with the reason on record.
    let (status, v) = w
        .operator(
            &format!("/api/v1/signups/{disposable}/reject"),
            json!({"reason": "escalated to security: disposable email domain"}),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::OK, Some("rejected")),
        "{v}"
    );

    // Step 2: a clean signup (email, company name, industry, country, time zone), verified.
    let (clean, status) = w
        .sign_up(
            "Ann@BrightPath.example",
            "BrightPath Marketing Ltd",
            profile("marketing", "IN", "Asia/Kolkata"),
        )
        .await;
    assert_eq!(status, "review");
    assert!(w.signals(&clean).await.is_empty(), "no red flags");
    let queue = w.read("/api/v1/signups?status=review").await;
    let waiting: Vec<&str> = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signup_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        waiting,
        [no_mx.as_str(), duplicate.as_str(), clean.as_str()]
    );

    // The operator creates the account: the customer with the form's fields, on the trial tier.
    let (status, approved) = w
        .operator(&format!("/api/v1/signups/{clean}/approve"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["onboarding"]["is_success"], true, "{approved}");
    let customer_id = approved["signup"]["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(customer_id, "brightpath_marketing_ltd");
    let customer = w.read(&format!("/api/v1/customers/{customer_id}")).await;
    assert_eq!(customer["customer_name"], "BrightPath Marketing Ltd");
    assert_eq!(customer["industry"], "marketing");
    assert_eq!(customer["attributes"]["country"], "IN");
    assert_eq!(customer["attributes"]["timezone"], "Asia/Kolkata");
    assert_eq!(customer["contact"]["email"], "Ann@brightpath.example");
    assert_eq!(customer["usage_tier"], "trial");
    assert_eq!(customer["status"], "active");

    // Step 3: WAOOAW's welcome email, with the portal link and a temporary password.
    let sent = w.sink.received().len();
    let mail = w.mail(sent + 2).await;
    let welcome = mail
        .iter()
        .find(|m| m.subject == "Welcome to WAOOAW, BrightPath Marketing Ltd: your account is ready")
        .expect("the welcome email");
    assert_eq!(welcome.rcpt_tos, vec!["Ann@brightpath.example"]);
    let text = welcome.text();
    for line in [
        "https://app.waooaw.com/portal",
        "https://app.waooaw.com/onboarding-call",
        "success@waooaw.com",
        "choose your own password when you first sign in",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let temporary = temporary_password_in(text);

    // The first login forces the reset; then the customer can sign in (step 12's first check).
    let (status, session) = w
        .public(
            "/api/v1/portal/login",
            None,
            json!({"email": "ann@brightpath.example", "password": temporary}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["password_change_required"], true);
    let token = session["session_token"].as_str().unwrap().to_owned();
    let (status, v) = w
        .public(
            "/api/v1/portal/password",
            Some(&token),
            json!({"current_password": temporary, "new_password": "Bright path to launch day"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = w
        .public(
            "/api/v1/portal/login",
            None,
            json!({"email": "ann@brightpath.example", "password": "Bright path to launch day"}),
        )
        .await;
    assert_eq!(
        (status, v["password_change_required"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );
    assert_eq!(v["user"]["role"], "owner");

    // Step 14: the post-onboarding summary, in WAOOAW's words.
    let summary = mail
        .iter()
        .find(|m| m.subject == "Thank you for onboarding with WAOOAW, BrightPath Marketing Ltd")
        .expect("the post-onboarding summary");
    let text = summary.text();
    assert!(
        text.contains("Approvals") && text.contains("7 days to explore"),
        "{text}"
    );
    assert!(
        text.contains("Account:   brightpath_marketing_ltd"),
        "{text}"
    );

    // Every decision is on record with its actor.
    let types = common::event_types(w.app.services.store.as_ref()).await;
    for t in [
        "signup.completed",
        "signup.rejected",
        "signup.approved",
        "customer.registered",
        "customer.activated",
        "user.created",
        "user.password_changed",
    ] {
        assert!(types.contains(t), "{t} in {types:?}");
    }
}

on_both_backends!(waooaw_account_creation_replays, waooaw_trial_replays);

/// Runbook steps 4 to 8 and the trial's week, on a test clock: the 7-day trial is created
/// `pending` (no usage allowed) and starts only when the platform credential is configured
/// (10:00 PST on 12 February, so it expires at 10:00 PST on the 19th); 5 agent tasks a day, the
/// 6th refused and the next day allowed again; 10,000 tokens in all; the day-5 check-in as the
/// reminder two days before the end; then expiry, after which nothing is allowed.
async fn waooaw_trial_replays(backend: Backend) {
    let product = Product::load(&common::repo_path(PRODUCT)).unwrap();
    let sink = SmtpSink::start();
    let smtp_url = sink.url();
    let app = TestApp::start_configured(backend, product, move |s| {
        s.smtp_url = Some(smtp_url.into());
        s.mail_from = Some(crate::email::FROM.into());
    })
    .await;
    let jobs = Jobs::new(app.services.clone(), Duration::from_secs(30));
    jobs.register().await.unwrap();
    let op = app.operator.clone();
    let send = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (app, op) = (&app, op.clone());
        async move {
            let mut req = app.client.request(method, app.url(&path)).bearer_auth(op);
            if let Some(b) = body {
                req = req.json(&b);
            }
            status_and_json(req.send().await.unwrap()).await
        }
    };
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let (_, clock) = send(
        post.clone(),
        "/api/v1/test-clocks".into(),
        Some(json!({"frozen_time": "2026-02-12T17:00:00Z", "name": "waooaw onboarding call"})),
    )
    .await;
    let clock_id = clock["test_clock_id"].as_str().unwrap().to_owned();
    let advance = |to: &'static str| {
        let path = format!("/api/v1/test-clocks/{clock_id}/advance");
        let send = &send;
        let post = post.clone();
        async move {
            let (status, moved) = send(post, path, Some(json!({"to": to}))).await;
            assert_eq!(status, 200, "{moved}");
            moved
        }
    };
    let (status, created) = app
        .onboard(&json!({
            "customer_id": "brightpath", "customer_name": "BrightPath Tutoring", "industry": "education",
            "attributes": {"country": "US", "timezone": "America/Los_Angeles"}, "test_clock_id": clock_id,
            "contact": {"email": "ann@brightpath.example"},
        }))
        .await;
    assert_eq!(status, 201, "{created}");

    // Step 4: the trial subscription, pending until credentials are set up.
    let (status, trial) = send(
        post.clone(),
        "/api/v1/customers/brightpath/trial".into(),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{trial}");
    assert_eq!(trial["status"], "pending");
    assert_eq!(trial["limits"], json!({"tasks": 5, "tokens": 10000}));
    let check = |metric: &'static str, amount: i64| {
        let send = &send;
        let post = post.clone();
        async move {
            let (status, e) = send(
                post,
                "/api/v1/entitlements/check".into(),
                Some(json!({"customer_id": "brightpath", "metric": metric, "amount": amount})),
            )
            .await;
            assert_eq!(status, 200, "{e}");
            e
        }
    };
    let e = check("tasks", 1).await;
    assert_eq!(
        (e["allowed"].as_bool(), e["source"].as_str()),
        (Some(false), Some("none")),
        "the trial clock starts on activation"
    );

    // Steps 6-8: the platform credential is configured at 10:00 PST; the trial starts then.
    advance("2026-02-12T18:00:00Z").await;
    let r = app
        .client
        .put(app.url("/api/v1/customers/brightpath/credentials/platform_token"))
        .bearer_auth(&op)
        .json(&json!({"value": "EAAG-brightpath-page-token"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    jobs.run_now("outbox.trial_activations").await.unwrap();
    let (_, trial) = send(
        get.clone(),
        "/api/v1/customers/brightpath/trial".into(),
        None,
    )
    .await;
    assert_eq!(trial["status"], "active", "{trial}");
    assert_eq!(trial["activated_at"], "2026-02-12T18:00:00Z");
    assert_eq!(
        trial["ends_at"], "2026-02-19T18:00:00Z",
        "expires 2026-02-19 10:00 AM PST"
    );
    assert_eq!(
        trial["next"],
        json!({"at": "2026-02-17T18:00:00Z", "work": "remind"})
    );

    // Five tasks a day: the sixth is refused, the next day they are allowed again.
    advance("2026-02-13T20:00:00Z").await;
    let tasks: Vec<Value> = (0..5)
        .map(|i| json!({"event_id": format!("task-13-{i}"), "metric": "tasks", "value": 1, "customer_id": "brightpath"}))
        .collect();
    let (_, r) = send(
        post.clone(),
        "/api/v1/usage".into(),
        Some(json!({"events": tasks})),
    )
    .await;
    assert_eq!(r["accepted"], 5, "{r}");
    let e = check("tasks", 1).await;
    assert_eq!(
        (
            e["allowed"].as_bool(),
            e["used"].as_i64(),
            e["remaining"].as_i64()
        ),
        (Some(false), Some(5), Some(0)),
        "{e}"
    );
    assert_eq!(e["period_start"], "2026-02-13T00:00:00Z");
    advance("2026-02-14T09:00:00Z").await;
    let e = check("tasks", 1).await;
    assert_eq!(
        (e["allowed"].as_bool(), e["used"].as_i64()),
        (Some(true), Some(0))
    );
    assert_eq!(check("tasks", 5).await["allowed"], true);
    assert_eq!(
        check("tasks", 6).await["allowed"],
        false,
        "six tasks at once are past the day's five"
    );

    // 10,000 tokens for the whole trial.
    let (_, r) = send(post.clone(), "/api/v1/usage".into(), Some(json!({"events": [
        {"event_id": "tok-1", "metric": "tokens", "value": 6000, "customer_id": "brightpath", "timestamp": "2026-02-13T21:00:00Z"},
        {"event_id": "tok-2", "metric": "tokens", "value": 3000, "customer_id": "brightpath"},
    ]}))).await;
    assert_eq!(r["accepted"], 2, "{r}");
    assert_eq!(check("tokens", 2000).await["allowed"], false);
    let e = check("tokens", 1000).await;
    assert_eq!(
        (
            e["allowed"].as_bool(),
            e["remaining"].as_i64(),
            e["period_end"].as_str()
        ),
        (Some(true), Some(1000), None)
    );

    // Day 5: the check-in reminder, two days before the end.
    let moved = advance("2026-02-17T19:00:00Z").await;
    assert_eq!(moved["work_done"], 1);
    let (_, trial) = send(
        get.clone(),
        "/api/v1/customers/brightpath/trial".into(),
        None,
    )
    .await;
    assert_eq!(trial["reminded_at"], "2026-02-17T18:00:00Z");
    // The reminder's email, in WAOOAW's words, leaves through a real SMTP server, once.
    crate::email::deliver(&jobs).await;
    crate::email::deliver(&jobs).await;
    let reminders: Vec<_> = sink
        .received()
        .into_iter()
        .filter(|m| m.subject.contains("trial"))
        .collect();
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    let m = &reminders[0];
    assert_eq!(m.rcpt_tos, ["ann@brightpath.example"]);
    assert_eq!(
        m.subject,
        "Day 5 check-in: your WAOOAW trial ends in 2 days"
    );
    assert!(
        m.text().contains("BrightPath Tutoring")
            && m.text().contains("ends at 2026-02-19T18:00:00Z"),
        "{}",
        m.text()
    );
    assert!(m
        .html
        .as_deref()
        .unwrap()
        .contains("<strong>BrightPath Tutoring</strong>"));

    // The trial expires at 10:00 PST on the 19th; then nothing is allowed.
    advance("2026-02-20T00:00:00Z").await;
    let (_, trial) = send(
        get.clone(),
        "/api/v1/customers/brightpath/trial".into(),
        None,
    )
    .await;
    assert_eq!(
        (trial["status"].as_str(), trial["ended_at"].as_str()),
        (Some("expired"), Some("2026-02-19T18:00:00Z"))
    );
    let e = check("tasks", 1).await;
    assert_eq!(
        (e["allowed"].as_bool(), e["source"].as_str()),
        (Some(false), Some("none"))
    );
    let (_, events) = send(
        get.clone(),
        "/api/v1/customers/brightpath/audit".into(),
        None,
    )
    .await;
    let trail: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .filter(|t| t.starts_with("trial.") || t.starts_with("usage."))
        .collect();
    assert_eq!(
        trail,
        [
            "trial.started",
            "trial.activated",
            "usage.soft_limit_reached",
            "usage.limit_reached",
            "usage.soft_limit_reached",
            "trial.ending_soon",
            "trial.expired",
            "trial.ended"
        ]
    );
}
