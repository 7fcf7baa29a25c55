//! Transactional email against a real SMTP server (aiosmtpd), on both backends: a signup reads
//! its verification code from the mail it receives, verifies and completes; a transient refusal
//! is retried and a permanent one recorded; a message that no longer applies is skipped; without
//! SMTP messages wait and `/health` says so; the secrets in a message are stored nowhere.

use chrono::{TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::common::smtp::{Received, SmtpSink};
use crate::common::{self, status_and_json, Backend, TestApp};
use onramp::jobs::Jobs;
use onramp::product::Product;
use onramp::services::ManualClock;

pub(crate) const FROM: &str = "Onramp Onboarding <onboarding@onramp.test>";

pub(crate) fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(
        Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap(),
    ))
}

/// A server that sends its email to `sink`, on `clock`, with its jobs.
pub(crate) async fn mailing(
    backend: Backend,
    sink: &SmtpSink,
    clock: &Arc<ManualClock>,
) -> (TestApp, Jobs) {
    mailing_serving(backend, sink, clock, Default::default()).await
}

/// [`mailing`], with the server's own options.
pub(crate) async fn mailing_serving(
    backend: Backend,
    sink: &SmtpSink,
    clock: &Arc<ManualClock>,
    options: onramp::interfaces::http::ServeOptions,
) -> (TestApp, Jobs) {
    let url = sink.url();
    let clock = clock.clone();
    let app = TestApp::start_configured_serving(backend, Product::builtin(), options, move |s| {
        s.smtp_url = Some(url.into());
        s.mail_from = Some(FROM.into());
        s.public_url = Some("https://onboard.example.com/".into());
        s.clock = clock;
    })
    .await;
    let jobs = Jobs::new(app.services.clone(), Duration::from_secs(30));
    jobs.register().await.unwrap();
    (app, jobs)
}

/// Queues what the new events call for and sends what is due; returns the delivery job's
/// account of it.
pub(crate) async fn deliver(jobs: &Jobs) -> String {
    jobs.run_now("outbox.email").await.unwrap();
    jobs.run_now("email.deliver").await.unwrap().detail
}

pub(crate) async fn start(app: &TestApp, email: &str, company: &str) -> (String, String) {
    let r = app
        .client
        .post(app.url("/api/v1/signup/sessions"))
        .json(&json!({"email": email, "company_name": company}))
        .send()
        .await
        .unwrap();
    let (status, v) = status_and_json(r).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    (
        v["signup_id"].as_str().unwrap().to_owned(),
        v["resume_token"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn call(
    app: &TestApp,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.post(app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    status_and_json(req.send().await.unwrap()).await
}

/// The six-digit code in a verification message.
pub(crate) fn code_in(m: &Received) -> String {
    let text = m.text();
    let at = text
        .find("Your verification code is:")
        .expect("the code's line");
    text[at..]
        .split_whitespace()
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .expect("a six-digit code")
        .to_owned()
}

/// The verification link's token in a message.
fn link_token_in(m: &Received) -> (String, String) {
    let text = m.text();
    let at = text
        .find("https://onboard.example.com/signup/verify?session=")
        .expect("the verification link, under the public URL");
    let url = url::Url::parse(text[at..].split_whitespace().next().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    (q["session"].clone(), q["token"].clone())
}

/// Every place a secret could be stored: the event log and the delivery log.
pub(crate) async fn stored_text(app: &TestApp) -> String {
    let events: Vec<String> = common::all_events(app.services.store.as_ref())
        .await
        .into_iter()
        .map(|e| e.payload_text)
        .collect();
    let (_, log) = status_and_json(
        app.get("/api/v1/emails?limit=500", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    format!("{} {log}", events.join(" "))
}

async fn a_signup_reads_its_code_from_the_mail_verifies_and_completes(backend: Backend) {
    let sink = SmtpSink::start();
    let clock = clock();
    let (app, jobs) = mailing(backend, &sink, &clock).await;
    let (id, token) = start(&app, "Ann@Acme-Analytics.com", "Acme Analytics").await;
    assert_eq!(
        deliver(&jobs).await,
        "sent 1, retrying 0, failed 0, skipped 0"
    );
    let mail = sink.wait_for(1);
    let m = &mail[0];
    assert_eq!(m.rcpt_tos, vec!["Ann@acme-analytics.com"]);
    assert_eq!(m.from, FROM);
    assert_eq!(m.subject, "Verify your email for Onramp");
    assert_eq!(m.content_type, "multipart/alternative");
    assert!(m.message_id.starts_with("<em_") && m.message_id.ends_with("@onramp.test>"));
    let code = code_in(m);
    let (link_session, link_token) = link_token_in(m);
    assert_eq!(link_session, id);
    assert!(
        m.html.as_deref().unwrap().contains(&code),
        "the HTML part too"
    );
    assert!(
        !m.text().contains("Acme Analytics"),
        "the signup's own text stays out of a message anyone can have sent"
    );

    // A wrong code is named and counted; nothing else changes.
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let before = app.services.store.signup(&id).await.unwrap().unwrap();
    let (status, v) = call(
        &app,
        &format!("/api/v1/signup/sessions/{id}/verify"),
        &token,
        Some(json!({"code": wrong})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "code");
    assert_eq!(v["errors"][0]["code"], "wrong_code");
    assert!(
        v["detail"].as_str().unwrap().contains("4 tries left"),
        "{v}"
    );
    let after = app.services.store.signup(&id).await.unwrap().unwrap();
    assert_eq!(after.verification.as_ref().unwrap().attempts, 1);
    assert_eq!(
        (after.answers.clone(), after.status, after.verified_at),
        (before.answers.clone(), before.status, before.verified_at)
    );
    // Not six digits: refused before it is tried.
    let (status, v) = call(
        &app,
        &format!("/api/v1/signup/sessions/{id}/verify"),
        &token,
        Some(json!({"code": "12ab56"})),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("format"))
    );

    // The session cannot complete before it is verified.
    let complete = format!("/api/v1/signup/sessions/{id}/complete");
    let (status, v) = call(&app, &complete, &token, None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("signup_incomplete")),
        "{v}"
    );

    let (status, v) = call(
        &app,
        &format!("/api/v1/signup/sessions/{id}/verify"),
        &token,
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["email_verified"], true);
    // The link of a verified session verifies nothing more.
    let (status, v) = status_and_json(
        app.client
            .post(app.url("/api/v1/signup/verify"))
            .json(&json!({"session_id": link_session, "token": link_token}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a used verification's link is spent: {v}"
    );

    let step = format!("/api/v1/signup/sessions/{id}/step");
    let (status, v) = call(
        &app,
        &step,
        &token,
        Some(json!({"step": "company", "data": {"industry": "ecommerce", "country": "DE", "timezone": "Europe/Berlin"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = call(&app, &complete, &token, None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("signup_incomplete")),
        "{v}"
    );
    assert!(v["detail"].as_str().unwrap().contains("'contact'"), "{v}");
    let (status, _) = call(
        &app,
        &step,
        &token,
        Some(json!({"step": "contact", "data": {"contact_name": "Ann Lee", "accept_terms": true}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = call(&app, &complete, &token, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "review");

    // The resume token is spent: every call with it is refused.
    let (status, v) = status_and_json(
        app.client
            .get(app.url(&format!("/api/v1/signup/sessions/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("signup_finished")),
        "{v}"
    );
    let (status, _) = call(&app, &complete, &token, None).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The receipt follows.
    assert_eq!(
        deliver(&jobs).await,
        "sent 1, retrying 0, failed 0, skipped 0"
    );
    let mail = sink.wait_for(2);
    assert_eq!(
        mail[1].subject,
        "We received Acme Analytics's signup for Onramp"
    );

    // The delivery log shows both, for operators; the code and the link are stored nowhere.
    let (status, log) = status_and_json(
        app.get(&format!("/api/v1/emails?signup_id={id}"), &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let kinds: Vec<(&str, &str, i64)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
                e["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("signup_received", "sent", 1),
            ("signup_verification", "sent", 1)
        ]
    );
    assert_eq!(log["items"][1]["message_id"], m.message_id.as_str());
    let stored = stored_text(&app).await;
    assert!(!stored.contains(&code), "the code is stored nowhere");
    assert!(
        !stored.contains(&link_token),
        "the link's token is stored nowhere"
    );
    let types = common::event_types(app.services.store.as_ref()).await;
    for t in [
        "signup.started",
        "signup.email_verified",
        "signup.completed",
    ] {
        assert!(types.contains(t), "{t} in {types:?}");
    }
    // Operators only: the log is not public.
    let r = app
        .client
        .get(app.url("/api/v1/emails"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn failures_are_retried_or_recorded_and_stale_messages_skipped(backend: Backend) {
    let sink = SmtpSink::start_with(&["--fail-first", "1", "--refuse-domain", "refused.example"]);
    let clock = clock();
    let (app, jobs) = mailing(backend, &sink, &clock).await;
    let log = |filter: String| {
        let app = &app;
        async move {
            let (_, v) = status_and_json(
                app.get(&format!("/api/v1/emails?{filter}"), &app.viewer)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            v["items"][0].clone()
        }
    };

    // A transient refusal (451) is tried again after its backoff.
    let (ann, _) = start(&app, "ann@good.example", "Good Co").await;
    assert_eq!(
        deliver(&jobs).await,
        "sent 0, retrying 1, failed 0, skipped 0"
    );
    let e = log(format!("signup_id={ann}")).await;
    assert_eq!(
        (e["status"].as_str(), e["attempts"].as_i64()),
        (Some("queued"), Some(1)),
        "{e}"
    );
    assert!(e["last_error"].as_str().unwrap().contains("451"), "{e}");
    assert_eq!(e["next_attempt_at"], "2026-12-03T09:00:30Z");
    assert_eq!(
        deliver(&jobs).await,
        "sent 0, retrying 0, failed 0, skipped 0",
        "not before its time"
    );
    clock.advance(chrono::Duration::seconds(30));
    assert_eq!(
        deliver(&jobs).await,
        "sent 1, retrying 0, failed 0, skipped 0"
    );
    let e = log(format!("signup_id={ann}")).await;
    assert_eq!(
        (
            e["status"].as_str(),
            e["attempts"].as_i64(),
            &e["last_error"]
        ),
        (Some("sent"), Some(2), &Value::Null)
    );
    assert_eq!(sink.wait_for(1)[0].rcpt_tos, vec!["ann@good.example"]);

    // A permanent refusal (550) is recorded failed at once.
    let (bob, _) = start(&app, "bob@refused.example", "Refused Co").await;
    assert_eq!(
        deliver(&jobs).await,
        "sent 0, retrying 0, failed 1, skipped 0"
    );
    let e = log(format!("signup_id={bob}")).await;
    assert_eq!(
        (e["status"].as_str(), e["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );
    assert!(e["last_error"].as_str().unwrap().contains("550"), "{e}");
    let (_, failed) = status_and_json(
        app.get("/api/v1/emails?status=failed", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);

    // An address changed before its first message left: the old one is skipped, the new one
    // gets its own code.
    let (cy, token) = start(&app, "cy@old.example", "Cy Co").await;
    jobs.run_now("outbox.email").await.unwrap();
    let (status, v) = call(
        &app,
        &format!("/api/v1/signup/sessions/{cy}/step"),
        &token,
        Some(json!({"step": "account", "data": {"email": "cy@new.example", "company_name": "Cy Co"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        deliver(&jobs).await,
        "sent 1, retrying 0, failed 0, skipped 1"
    );
    let mail = sink.wait_for(2);
    assert_eq!(mail[1].rcpt_tos, vec!["cy@new.example"]);
    let (_, skipped) = status_and_json(
        app.get(
            &format!("/api/v1/emails?signup_id={cy}&status=skipped"),
            &app.viewer,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(skipped["items"][0]["recipient"], "cy@old.example");
    assert!(
        skipped["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("newer code"),
        "{skipped}"
    );

    // Codes asked for faster than they leave: only the newest is sent.
    let (dee, token) = start(&app, "dee@good.example", "Dee Co").await;
    let resend = format!("/api/v1/signup/sessions/{dee}/verify/resend");
    assert_eq!(
        call(&app, &resend, &token, None).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        call(&app, &resend, &token, None).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        deliver(&jobs).await,
        "sent 1, retrying 0, failed 0, skipped 2"
    );
    let mail = sink.wait_for(3);
    assert_eq!(mail[2].rcpt_tos, vec!["dee@good.example"]);
    let (_, skipped) = status_and_json(
        app.get(
            &format!("/api/v1/emails?signup_id={dee}&status=skipped"),
            &app.viewer,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert!(
        skipped["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("newer code"),
        "{skipped}"
    );

    // Bad filters are named.
    let (status, v) = status_and_json(
        app.get(
            "/api/v1/emails?status=lost&limit=0&signup_id=x%27",
            &app.viewer,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, vec!["limit", "signup_id", "status"], "{v}");
}

async fn codes_expire_run_out_and_are_sent_again(backend: Backend) {
    let sink = SmtpSink::start();
    let clock = clock();
    let (app, jobs) = mailing(backend, &sink, &clock).await;
    let (id, token) = start(&app, "dee@example.org", "Dee Co").await;
    deliver(&jobs).await;
    let first = code_in(&sink.wait_for(1)[0]);
    let verify = format!("/api/v1/signup/sessions/{id}/verify");
    let resend = format!("/api/v1/signup/sessions/{id}/verify/resend");

    // Past 30 minutes the code has expired; a new one is asked for and the old one is dead.
    clock.advance(chrono::Duration::minutes(30));
    let (status, v) = call(&app, &verify, &token, Some(json!({"code": first}))).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("code_expired")),
        "{v}"
    );
    let (status, _) = call(&app, &resend, &token, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    deliver(&jobs).await;
    let second = code_in(&sink.wait_for(2)[1]);
    if second != first {
        let (status, v) = call(&app, &verify, &token, Some(json!({"code": first}))).await;
        assert_eq!(
            (status, v["errors"][0]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("wrong_code")),
            "{v}"
        );
    }

    // Five wrong tries spend a code; even the right one is refused after.
    let wrong = if second == "999999" {
        "999998"
    } else {
        "999999"
    };
    let tried = if second != first { 1 } else { 0 };
    for n in tried..4 {
        let (status, v) = call(&app, &verify, &token, Some(json!({"code": wrong}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "try {n}: {v}");
    }
    let (status, v) = call(&app, &verify, &token, Some(json!({"code": wrong}))).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("code_exhausted")),
        "{v}"
    );
    let before = app.services.store.signup(&id).await.unwrap().unwrap();
    let (status, v) = call(&app, &verify, &token, Some(json!({"code": second}))).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("code_exhausted")),
        "{v}"
    );
    assert_eq!(
        app.services.store.signup(&id).await.unwrap().unwrap(),
        before,
        "a refused code changes nothing"
    );

    // A third code, verified by its link this time (no resume token needed).
    call(&app, &resend, &token, None).await;
    deliver(&jobs).await;
    let (session, link) = link_token_in(&sink.wait_for(3)[2]);
    let verify_link = |session: String, link: String| {
        let app = &app;
        async move {
            status_and_json(
                app.client
                    .post(app.url("/api/v1/signup/verify"))
                    .json(&json!({"session_id": session, "token": link}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (status, _) = verify_link(session.clone(), format!("{link}0")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a wrong link token opens nothing"
    );
    // The page the link opens verifies nothing by itself (a mail scanner may fetch it); its
    // form does.
    let page = app
        .client
        .get(app.url(&format!("/signup/verify?session={session}&token={link}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("name=\"token\" value=\"{link}\"")),
        "{html}"
    );
    assert!(app
        .services
        .store
        .signup(&session)
        .await
        .unwrap()
        .unwrap()
        .verified_at
        .is_none());
    let done = app
        .client
        .post(app.url("/signup/verify"))
        .form(&[("session", session.as_str()), ("token", link.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done
        .text()
        .await
        .unwrap()
        .contains("Your email is verified"));
    assert!(app
        .services
        .store
        .signup(&session)
        .await
        .unwrap()
        .unwrap()
        .verified_at
        .is_some());
    let again = app
        .client
        .post(app.url("/signup/verify"))
        .form(&[("session", session.as_str()), ("token", link.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "a spent link");
    let bad = app
        .client
        .get(app.url("/signup/verify?session=x&token=%3Cscript%3E"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(!bad.text().await.unwrap().contains("<script>"));
    let (status, v) = call(&app, &resend, &token, None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_verified"))
    );

    // A session asks for at most ten codes (start, new addresses, resends).
    let (id, token) = start(&app, "eve@example.org", "Eve Co").await;
    let resend = format!("/api/v1/signup/sessions/{id}/verify/resend");
    for _ in 1..10 {
        let (status, _) = call(&app, &resend, &token, None).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (status, v) = call(&app, &resend, &token, None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_codes")),
        "{v}"
    );
    let (status, v) = call(
        &app,
        &format!("/api/v1/signup/sessions/{id}/step"),
        &token,
        Some(json!({"step": "account", "data": {"email": "eve@elsewhere.example", "company_name": "Eve Co"}})),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_codes")),
        "{v}"
    );
}

async fn an_onboarded_customer_gets_its_summary(backend: Backend) {
    let sink = SmtpSink::start();
    let clock = clock();
    let (app, jobs) = mailing(backend, &sink, &clock).await;
    let (status, v) = app
        .onboard(&json!({
            "customer_id": "acme_corp",
            "customer_name": "Acme <Corporation>",
            "industry": "ecommerce",
            "contact": {"email": "john@acme.example"},
            "usage_tier": "enterprise"
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // One without a contact email gets none.
    let (status, _) = app
        .onboard(
            &json!({"customer_id": "quiet", "customer_name": "Quiet", "industry": "ecommerce"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        deliver(&jobs).await,
        "sent 1, retrying 0, failed 0, skipped 0"
    );
    let m = &sink.wait_for(1)[0];
    assert_eq!(m.rcpt_tos, vec!["john@acme.example"]);
    assert_eq!(m.subject, "Acme <Corporation> is set up on Onramp");
    let text = m.text();
    assert!(text.contains("Customer id: acme_corp"), "{text}");
    assert!(text.contains("Plan tier:   enterprise"), "{text}");
    assert!(
        text.contains("  - register") && text.contains("  - verify_dataset"),
        "the steps that ran: {text}"
    );
    let html = m.html.as_deref().unwrap();
    assert!(
        html.contains("Acme &lt;Corporation&gt;"),
        "the HTML part escapes: {html}"
    );
    let (_, log) = status_and_json(
        app.get("/api/v1/emails?customer_id=acme_corp", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(log["items"][0]["kind"], "onboarding_summary");
    assert_eq!(log["items"][0]["status"], "sent");
}

async fn an_address_is_limited_across_sessions(backend: Backend) {
    let sink = SmtpSink::start();
    let clock = clock();
    let (app, jobs) = mailing(backend, &sink, &clock).await;
    // Wrong codes count for the address, whatever the session: ten a day.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(start(&app, "gus@example.org", "Gus Co").await);
    }
    deliver(&jobs).await;
    let mail = sink.wait_for(3);
    let code_for = |id: &str| {
        let (s, _) = link_token_in(mail.iter().find(|m| m.text().contains(id)).unwrap());
        assert_eq!(s, id);
        code_in(mail.iter().find(|m| m.text().contains(id)).unwrap())
    };
    let (third, third_token) = sessions[2].clone();
    let right = code_for(&third);
    for (id, token) in &sessions[..2] {
        let wrong = if code_for(id) == "111111" {
            "222222"
        } else {
            "111111"
        };
        for _ in 0..5 {
            let (status, _) = call(
                &app,
                &format!("/api/v1/signup/sessions/{id}/verify"),
                token,
                Some(json!({"code": wrong})),
            )
            .await;
            assert!(status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::CONFLICT);
        }
    }
    let (status, v) = call(
        &app,
        &format!("/api/v1/signup/sessions/{third}/verify"),
        &third_token,
        Some(json!({"code": right})),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("address_limited")),
        "even the right code waits a day: {v}"
    );
    clock.advance(chrono::Duration::hours(25));
    let (_, token) = start(&app, "gus@example.org", "Gus Co").await;
    assert!(!token.is_empty(), "a day later the address may try again");

    // Codes sent to one address: twenty a day, whatever the sessions.
    for n in 0..20 {
        let r = app
            .client
            .post(app.url("/api/v1/signup/sessions"))
            .json(&json!({"email": "hal@example.org", "company_name": "Hal Co"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "start {n}");
    }
    let before = app.snapshot().await;
    let r = app
        .client
        .post(app.url("/api/v1/signup/sessions"))
        .json(&json!({"email": "HAL@EXAMPLE.ORG", "company_name": "Hal Co"}))
        .send()
        .await
        .unwrap();
    let (status, v) = status_and_json(r).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("address_limited")),
        "{v}"
    );
    assert_eq!(app.snapshot().await, before, "the refusal changes nothing");
}

async fn without_smtp_email_waits_and_health_says_so(backend: Backend) {
    let app = TestApp::start(backend).await;
    let jobs = Jobs::new(app.services.clone(), Duration::from_secs(30));
    jobs.register().await.unwrap();
    start(&app, "fay@example.org", "Fay Co").await;
    jobs.run_now("outbox.email").await.unwrap();
    assert_eq!(
        jobs.run_now("email.deliver").await.unwrap().detail,
        "email is not configured (ONRAMP_SMTP_URL); 1 message(s) wait"
    );
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    let (status, v) = status_and_json(r).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "unconfigured email does not degrade the server: {v}"
    );
    assert_eq!(v["checks"]["email"]["status"], "not_configured");
    assert!(v["checks"]["email"]["detail"]
        .as_str()
        .unwrap()
        .contains("1 message(s) queued"));
    let (_, log) =
        status_and_json(app.get("/api/v1/emails", &app.viewer).send().await.unwrap()).await;
    assert_eq!(log["items"][0]["status"], "queued");
    assert_eq!(log["items"][0]["attempts"], 0);
}

#[tokio::test]
async fn the_cli_sends_a_test_message_and_reads_the_log() {
    use crate::common::cli::onramp_env;
    let db = common::TestDb::new(Backend::Sqlite).await;
    let sink = SmtpSink::start_with(&[
        "--refuse-domain",
        "refused.example",
        "--auth",
        "mailer:s3cret-pw",
    ]);
    let url = format!("smtp://mailer:s3cret-pw@127.0.0.1:{}", sink.port);
    let env = [
        ("ONRAMP_SMTP_URL", url.as_str()),
        ("ONRAMP_MAIL_FROM", FROM),
    ];
    let mut printed = Vec::new();
    let mut onramp_env =
        |db: &common::TestDb, p: Option<&str>, args: &[&str], env: &[(&str, &str)]| {
            let run = onramp_env(db, p, args, env);
            printed.push(format!("{}{}", run.stdout, run.stderr));
            run
        };
    let run = onramp_env(&db, None, &["email", "test", "ops@example.com"], &env).ok();
    assert!(
        run.stdout
            .starts_with("sent a test message to ops@example.com through smtp://mailer@127.0.0.1:"),
        "{}",
        run.stdout
    );
    let m = &sink.wait_for(1)[0];
    assert_eq!(m.subject, "Onramp: a test message from Onramp");
    assert!(run.stdout.contains(&m.message_id), "{}", run.stdout);
    // A refusal is said, with the server's answer, and exits 1; the password never prints.
    let run = onramp_env(&db, None, &["email", "test", "ops@refused.example"], &env);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("550"), "{}", run.stderr);
    // A bad address is refused before anything is sent.
    let run = onramp_env(&db, None, &["email", "test", "not-an-address"], &env);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("address:"), "{}", run.stderr);
    // A wrong password is the server's refusal.
    let wrong = format!("smtp://mailer:wrong-pw@127.0.0.1:{}", sink.port);
    let run = onramp_env(
        &db,
        None,
        &["email", "test", "ops@example.com"],
        &[
            ("ONRAMP_SMTP_URL", wrong.as_str()),
            ("ONRAMP_MAIL_FROM", FROM),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("535"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong-pw"), "{}", run.stderr);
    // Without SMTP: exit 5, naming the setting.
    let run = onramp_env(&db, None, &["email", "test", "ops@example.com"], &[]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("ONRAMP_SMTP_URL"), "{}", run.stderr);
    // A broken URL stops the start, without echoing it.
    let run = onramp_env(
        &db,
        None,
        &["email", "log"],
        &[
            ("ONRAMP_SMTP_URL", "smtp://mailer:s3cret-pw@h?tls=maybe"),
            ("ONRAMP_MAIL_FROM", FROM),
        ],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("tls is starttls"), "{}", run.stderr);
    let log = onramp_env(&db, None, &["email", "log", "--format", "json"], &env).ok();
    let items = log.json();
    let statuses: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["failed", "failed", "sent"]);
    for out in &printed {
        assert!(
            !out.contains("s3cret-pw"),
            "the SMTP password never prints: {out}"
        );
    }
}

/// A customer offboarded before its message leaves gets none; one whose data was deleted
/// leaves no address in the delivery log.
async fn offboarded_customers_get_no_mail_and_deleted_ones_leave_no_address(backend: Backend) {
    let sink = SmtpSink::start();
    let clock = clock();
    let (app, jobs) = mailing(backend, &sink, &clock).await;
    for id in ["gone", "erased"] {
        let (status, v) = app
            .onboard(&json!({
                "customer_id": id, "customer_name": format!("Customer {id}"), "industry": "ecommerce",
                "contact": {"email": format!("owner@{id}.example")},
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
    // Queued, not yet sent.
    jobs.run_now("outbox.email").await.unwrap();
    for (id, body) in [
        ("gone", json!({"delete_data": false})),
        ("erased", json!({"delete_data": true, "confirm": "erased"})),
    ] {
        let (status, v) = app.offboard(id, &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    assert_eq!(
        deliver(&jobs).await,
        "sent 0, retrying 0, failed 0, skipped 1"
    );
    assert!(sink.received().is_empty());
    let log = |query: &'static str| {
        let app = &app;
        async move {
            let path = format!("/api/v1/emails?{query}");
            status_and_json(app.get(&path, &app.viewer).send().await.unwrap())
                .await
                .1
        }
    };
    let gone = log("customer_id=gone").await["items"].clone();
    assert_eq!(gone.as_array().map(Vec::len), Some(1));
    assert_eq!(
        (gone[0]["status"].as_str(), gone[0]["last_error"].as_str()),
        (Some("skipped"), Some("the customer is offboarded"))
    );
    assert_eq!(log("customer_id=erased").await["items"], json!([]));
    let all = log("limit=500").await;
    assert!(
        !all.to_string().contains("owner@erased.example"),
        "the deleted customer's address is not in the delivery log: {all}"
    );
}

on_both_backends!(
    offboarded_customers_get_no_mail_and_deleted_ones_leave_no_address,
    a_signup_reads_its_code_from_the_mail_verifies_and_completes,
    failures_are_retried_or_recorded_and_stale_messages_skipped,
    codes_expire_run_out_and_are_sent_again,
    an_onboarded_customer_gets_its_summary,
    an_address_is_limited_across_sessions,
    without_smtp_email_waits_and_health_says_so,
);
