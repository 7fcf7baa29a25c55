//! The risk review of a completed signup and the operators' review queue, on both backends,
//! with MX lookups answered by an in-process DNS server: a clean signup in `open` mode becomes
//! an active customer with its dataset; disposable, denied, no-MX, duplicate, free-mail and
//! known-address signups land in review or rejection with their reasons; operators approve and
//! reject, every decision an event with its actor, and every refusal changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::dns::{DnsServer, Zone};
use crate::common::{self, status_and_json, Backend, TestApp};
use onramp::product::Product;
use onramp::services::signups::{Issue, StartSignup, StepSubmission, VerifyEmail};

/// The built-in product in `mode`, selling to businesses, with a deny list.
fn product(mode: &str) -> Product {
    let text = std::fs::read_to_string(common::repo_path("src/product/builtin.toml")).unwrap();
    let text = text.replacen(
        "mode = \"review\"\nsession_idle_hours = 72\n",
        &format!(
            "mode = \"{mode}\"\nsession_idle_hours = 72\n\n[signup.review]\nb2b = true\ndeny_domains = [\"blocked.example\"]\n"
        ),
        1,
    );
    Product::from_toml(&text, "test", None).unwrap()
}

async fn dns() -> DnsServer {
    DnsServer::start(&[
        (
            "good.example",
            Zone::Mx(vec!["mx1.good.example", "mx2.good.example"]),
        ),
        ("acme.example", Zone::Mx(vec!["mx.acme.example"])),
        ("nomx.example", Zone::NoMx),
        ("broken.example", Zone::Fail),
        ("mailinator.com", Zone::Mx(vec!["mail.mailinator.com"])),
        ("gmail.com", Zone::Mx(vec!["gmail-smtp-in.l.google.com"])),
        ("blocked.example", Zone::Mx(vec!["mx.blocked.example"])),
    ])
    .await
}

async fn app(backend: Backend, mode: &str, dns: &DnsServer) -> TestApp {
    let resolver = dns.addr.to_string();
    TestApp::start_configured(backend, product(mode), move |s| {
        s.dns_resolver = Some(resolver);
    })
    .await
}

/// Signs up through the capability (the code taken as the email would carry it), fills every
/// step and completes; returns the signup id and the completion's view.
async fn sign_up(app: &TestApp, email: &str, company: &str) -> (String, Value) {
    let s = &app.services.signups;
    let started = s
        .start(
            &StartSignup {
                email: email.into(),
                company_name: company.into(),
                template: Some("starter".into()),
            },
            None,
        )
        .await
        .unwrap();
    let id = started.signup.signup_id.clone();
    let token = started.resume_token;
    let recipient = app.services.store.signup(&id).await.unwrap().unwrap().email;
    let Issue::Issued(v) = s.issue_verification(&id, &recipient).await.unwrap() else {
        panic!("a code is issued");
    };
    s.verify(&id, &token, &VerifyEmail { code: v.code }, None)
        .await
        .unwrap();
    for (step, data) in [
        (
            "company",
            json!({"industry": "ecommerce", "country": "DE", "timezone": "Europe/Berlin", "website": "https://good.example"}),
        ),
        (
            "contact",
            json!({"contact_name": "Ann Lee", "accept_terms": true}),
        ),
    ] {
        s.submit_step(
            &id,
            &token,
            &StepSubmission {
                step: step.into(),
                data: data.as_object().unwrap().clone(),
            },
            None,
        )
        .await
        .unwrap();
    }
    let view = s.complete(&id, &token, None).await.unwrap();
    (id, serde_json::to_value(view).unwrap())
}

async fn detail(app: &TestApp, id: &str) -> Value {
    let (status, v) = status_and_json(
        app.get(&format!("/api/v1/signups/{id}"), &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

fn signals(v: &Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["signal"].as_str().unwrap().to_owned())
        .collect()
}

async fn open_mode_approves_the_clean_and_holds_back_the_risky(backend: Backend) {
    let dns = dns().await;
    let app = app(backend, "open", &dns).await;

    // Clean: approved by the policy, and a customer with its dataset.
    let (id, view) = sign_up(&app, "ann@good.example", "Good Analytics GmbH").await;
    assert_eq!(view["status"], "approved", "{view}");
    let d = detail(&app, &id).await;
    assert_eq!(
        (d["score"].as_u64(), d["reasons"].as_array().unwrap().len()),
        (Some(0), 0)
    );
    assert_eq!(d["decided_by"], "onramp");
    assert_eq!(d["customer_id"], "good_analytics_gmbh");
    let (status, c) = status_and_json(
        app.get("/api/v1/customers/good_analytics_gmbh", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "active");
    assert_eq!(c["customer_name"], "Good Analytics GmbH");
    assert_eq!(c["industry"], "ecommerce");
    assert_eq!(c["usage_tier"], "starter");
    assert_eq!(c["contact"]["email"], "ann@good.example");
    assert_eq!(c["contact"]["name"], "Ann Lee");
    assert_eq!(c["attributes"]["country"], "DE");
    assert_eq!(c["attributes"]["timezone"], "Europe/Berlin");
    let (_, run) = status_and_json(
        app.get(
            "/api/v1/customers/good_analytics_gmbh/onboarding",
            &app.viewer,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(run["run"]["is_success"], true, "{run}");
    assert!(run["run"]["dataset_id"].as_str().is_some(), "{run}");
    let types = common::event_types(app.services.store.as_ref()).await;
    assert!(types.contains("signup.approved") && types.contains("customer.registered"));

    // Each risk lands where its weight puts it, with its reason.
    for (email, company, status, expected) in [
        (
            "x@mailinator.com",
            "Throwaway Ltd",
            "rejected",
            vec!["disposable_domain"],
        ),
        (
            "x@sub.mailinator.com",
            "Throwaway Two",
            "rejected",
            vec!["disposable_domain", "no_mx"],
        ),
        (
            "x@blocked.example",
            "Blocked Co",
            "rejected",
            vec!["denied_domain"],
        ),
        ("x@nomx.example", "No Mail Co", "review", vec!["no_mx"]),
        ("x@gone.example", "Gone Co", "review", vec!["no_mx"]),
        (
            "x@broken.example",
            "Broken Co",
            "approved",
            vec!["dns_error"],
        ),
        ("bob@gmail.com", "Bob's Bikes", "review", vec!["free_mail"]),
        (
            "eve@acme.example",
            "GOOD  analytics, Inc.",
            "review",
            vec!["duplicate_name"],
        ),
        (
            "ann@good.example",
            "Another Venture",
            "review",
            vec!["existing_account"],
        ),
    ] {
        let (id, view) = sign_up(&app, email, company).await;
        assert_eq!(view["status"], status, "{email}: {view}");
        let d = detail(&app, &id).await;
        assert_eq!(signals(&d), expected, "{email}: {d}");
        let total: u64 = d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["weight"].as_u64().unwrap())
            .sum();
        assert_eq!(d["score"].as_u64(), Some(total), "{d}");
        if status == "rejected" {
            assert_eq!(d["decided_by"], "onramp");
            assert!(d["customer_id"].is_null());
        }
    }
    let gone = &app
        .services
        .signups
        .list(
            &onramp::services::Actor::cli(),
            &onramp::services::signups::SignupQuery::default(),
        )
        .await
        .unwrap()
        .items;
    let gone = gone.iter().find(|s| s.company_name == "Gone Co").unwrap();
    assert!(
        gone.reasons[0].detail.contains("does not exist"),
        "{:?}",
        gone.reasons
    );
    let dup = gone_detail(&app, "GOOD  analytics, Inc.").await;
    assert!(
        dup.contains("customer good_analytics_gmbh ('Good Analytics GmbH')"),
        "{dup}"
    );
    // The MX answers are kept: good.example was looked up once for two signups.
    let before = dns.queries();
    sign_up(&app, "carl@good.example", "Carl Consulting").await;
    assert_eq!(
        dns.queries(),
        before,
        "a cached answer asks the server nothing"
    );
}

async fn gone_detail(app: &TestApp, company: &str) -> String {
    let list = app
        .services
        .signups
        .list(
            &onramp::services::Actor::cli(),
            &onramp::services::signups::SignupQuery::default(),
        )
        .await
        .unwrap();
    let s = list
        .items
        .iter()
        .find(|s| s.company_name == company)
        .unwrap();
    s.reasons[0].detail.clone()
}

async fn operators_approve_and_reject_from_the_queue(backend: Backend) {
    let dns = dns().await;
    let app = app(backend, "review", &dns).await;
    let (a, view) = sign_up(&app, "ann@good.example", "Good Analytics").await;
    assert_eq!(
        view["status"], "review",
        "review mode queues even a clean signup"
    );
    let (b, _) = sign_up(&app, "bob@acme.example", "Acme Widgets").await;

    let (status, q) = status_and_json(
        app.get("/api/v1/signups", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    let ids: Vec<&str> = q["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signup_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str()], "oldest first");
    assert_eq!(q["items"][0]["answers"]["company"]["country"], "DE");

    // Refusals change nothing.
    let before = app.snapshot().await;
    let approve = |id: &str, token: &str, body: Value| {
        app.post(&format!("/api/v1/signups/{id}/approve"), token, &body)
    };
    let (status, v) =
        status_and_json(approve(&a, &app.viewer, json!({})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = status_and_json(
        approve(
            "su_0123456789abcdef0123456789abcdef",
            &app.operator,
            json!({}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("signup_not_found"))
    );
    let (status, v) = status_and_json(
        approve(&a, &app.operator, json!({"customer_id": "Not An Id!"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "customer_id", "{v}");
    let (status, v) = status_and_json(
        app.post(
            &format!("/api/v1/signups/{b}/reject"),
            &app.operator,
            &json!({"reason": "  "}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "reason");
    assert_eq!(app.snapshot().await, before, "refusals change nothing");

    // Approve: the customer, its id from the name, the template's tier.
    let (status, v) =
        status_and_json(approve(&a, &app.operator, json!({})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["signup"]["status"], "approved");
    assert_eq!(v["signup"]["customer_id"], "good_analytics");
    assert_eq!(v["onboarding"]["is_success"], true);
    assert!(v["signup"]["decided_by"]
        .as_str()
        .unwrap()
        .starts_with("token:"));
    // A second approval, or a rejection now, is refused and changes nothing.
    let before = app.snapshot().await;
    let (status, v) =
        status_and_json(approve(&a, &app.operator, json!({})).send().await.unwrap()).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("signup_not_in_review")),
        "{v}"
    );
    let (status, _) = status_and_json(
        app.post(
            &format!("/api/v1/signups/{a}/reject"),
            &app.operator,
            &json!({"reason": "changed my mind"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(app.snapshot().await, before);

    // Reject with a reason; approving it after is refused.
    let (status, v) = status_and_json(
        app.post(
            &format!("/api/v1/signups/{b}/reject"),
            &app.operator,
            &json!({"reason": "not a fit for the beta"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "rejected");
    assert_eq!(v["rejection_reason"], "not a fit for the beta");
    let (status, v) =
        status_and_json(approve(&b, &app.operator, json!({})).send().await.unwrap()).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("signup_not_in_review"))
    );

    // A second "Good Analytics" gets a unique id; an explicit id and tier are taken as given.
    let (c, _) = sign_up(&app, "cy@acme.example", "Good Analytics").await;
    let d = detail(&app, &c).await;
    assert_eq!(signals(&d), vec!["duplicate_name"]);
    let (status, v) =
        status_and_json(approve(&c, &app.operator, json!({})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["signup"]["customer_id"], "good_analytics_2");
    let (e, _) = sign_up(&app, "dee@acme.example", "Dee Data").await;
    let (status, v) = status_and_json(
        approve(
            &e,
            &app.operator,
            json!({"customer_id": "dee", "usage_tier": "enterprise"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["onboarding"]["customer_id"], "dee");

    // An approval that stopped after its claim continues with the claimed id; a claimed
    // signup cannot be rejected meanwhile; a claimed id another customer took is released.
    let (f, _) = sign_up(&app, "fay@acme.example", "Fay Foods").await;
    let claim = |id: &str, customer: &str| {
        let store = app.services.store.clone();
        let (id, customer) = (id.to_owned(), customer.to_owned());
        async move {
            let r = store.signup(&id).await.unwrap().unwrap();
            let mut claimed = r.clone();
            claimed.decision = Some(onramp::store::signups::SignupDecision {
                by: "token:earlier".into(),
                at: r.updated_at,
                note: None,
                customer_id: Some(common::cid(&customer)),
            });
            claimed.version = r.version + 1;
            store
                .update_signup(&claimed, r.version, vec![])
                .await
                .unwrap();
        }
    };
    claim(&f, "fay_claimed").await;
    let (status, v) = status_and_json(
        app.post(
            &format!("/api/v1/signups/{f}/reject"),
            &app.operator,
            &json!({"reason": "late"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("approval_in_progress")),
        "{v}"
    );
    let (status, v) =
        status_and_json(approve(&f, &app.operator, json!({})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["signup"]["customer_id"], "fay_claimed",
        "the stopped approval continues"
    );
    let (g, _) = sign_up(&app, "gil@acme.example", "Gil Goods").await;
    claim(&g, "dee").await;
    let (status, v) =
        status_and_json(approve(&g, &app.operator, json!({})).send().await.unwrap()).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("customer_exists")),
        "{v}"
    );
    let (status, v) =
        status_and_json(approve(&g, &app.operator, json!({})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "the claim was released: {v}");
    assert_eq!(v["signup"]["customer_id"], "gil_goods");

    // The queue by status; the events name their actors.
    for (status, n) in [("review", 0), ("approved", 5), ("rejected", 1)] {
        let (_, q) = status_and_json(
            app.get(&format!("/api/v1/signups?status={status}"), &app.viewer)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(q["items"].as_array().unwrap().len(), n, "{status}: {q}");
    }
    let (status, v) = status_and_json(
        app.get("/api/v1/signups?status=lost&limit=0", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (status, funnel) = status_and_json(
        app.get("/api/v1/signups/funnel", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{funnel}");
    assert_eq!(
        (funnel["started"].as_i64(), funnel["completed"].as_i64()),
        (Some(6), Some(6))
    );
    assert_eq!(funnel["steps"][2]["completed"], 6, "{funnel}");
    let events = common::all_events(app.services.store.as_ref()).await;
    let decided: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.event_type == "signup.approved" || e.event_type == "signup.rejected")
        .map(|e| (e.event_type.as_str(), e.payload["by"].as_str().unwrap()))
        .collect();
    assert_eq!(
        decided,
        vec![
            ("signup.approved", "operator"),
            ("signup.rejected", "operator"),
            ("signup.approved", "operator"),
            ("signup.approved", "operator"),
            ("signup.approved", "operator"),
            ("signup.approved", "operator")
        ]
    );
    assert!(events
        .iter()
        .filter(|e| e.event_type == "signup.rejected")
        .all(|e| e.actor.starts_with("token:")));
}

async fn the_queue_answers_over_mcp_and_the_cli(backend: Backend) {
    use crate::common::cli::onramp;
    use onramp::domain::Role;
    use onramp::interfaces::mcp::tools;
    use onramp::services::Actor;
    let dns = dns().await;
    let app = app(backend, "review", &dns).await;
    let (a, _) = sign_up(&app, "ann@good.example", "Good Analytics").await;
    let (b, _) = sign_up(&app, "bob@acme.example", "Acme Widgets").await;
    let as_role = |role| Actor {
        name: "mcp:test".into(),
        role,
        request_id: None,
    };
    let call = |role, name: &str, args: Value| {
        let services = app.services.clone();
        let name = name.to_owned();
        async move {
            tools::call(
                &services,
                &as_role(role),
                tools::find(&name).unwrap(),
                args.as_object().unwrap().clone(),
            )
            .await
        }
    };
    let listed = call(Role::Viewer, "list_signups", json!({})).await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
    let got = call(Role::Viewer, "get_signup", json!({"signup_id": a}))
        .await
        .unwrap();
    assert_eq!(got["company_name"], "Good Analytics");
    let before = app.snapshot().await;
    let refused = call(
        Role::Viewer,
        "reject_signup",
        json!({"signup_id": b, "reason": "no"}),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code, "forbidden");
    let refused = call(
        Role::Operator,
        "reject_signup",
        json!({"signup_id": b, "reason": ""}),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.errors.as_ref().unwrap()[0].field, "reason");
    let refused = call(
        Role::Operator,
        "get_signup",
        json!({"signup_id": "su_nope"}),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code, "signup_not_found");
    assert_eq!(app.snapshot().await, before);
    let rejected = call(
        Role::Operator,
        "reject_signup",
        json!({"signup_id": b, "reason": "duplicate of an existing account"}),
    )
    .await
    .unwrap();
    assert_eq!(rejected["status"], "rejected");

    // The CLI: list, approve, approve again (exit 5), the queue after.
    let listed = onramp(&app.db, None, &["signups", "list", "--format", "json"]).ok();
    assert_eq!(
        listed.json().as_array().unwrap().len(),
        1,
        "{}",
        listed.stdout
    );
    let approved = onramp(&app.db, None, &["signups", "approve", &a]).ok();
    assert!(
        approved
            .stdout
            .contains("is approved: customer good_analytics"),
        "{}",
        approved.stdout
    );
    let again = onramp(&app.db, None, &["signups", "approve", &a]);
    assert_eq!(again.code, 5, "{}", again.stderr);
    assert!(
        again.stderr.contains("only a signup in review"),
        "{}",
        again.stderr
    );
    let shown = onramp(&app.db, None, &["signups", "show", &a]).ok().json();
    assert_eq!(shown["customer_id"], "good_analytics");
    assert!(shown["decided_by"].as_str().unwrap().starts_with("cli:"));

    // The disposable list, refreshed from a file: refused whole when a line is bad.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "fresh-trash.example\nnot a domain\n").unwrap();
    let run = onramp(
        &app.db,
        None,
        &["signup", "domains", "update", bad.to_str().unwrap()],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    let good = dir.path().join("list.conf");
    std::fs::write(
        &good,
        "# list-date: 2026-12-01\nfresh-trash.example\nMAILINATOR.com\n",
    )
    .unwrap();
    let run = onramp(
        &app.db,
        None,
        &["signup", "domains", "update", good.to_str().unwrap()],
    )
    .ok();
    assert!(
        run.stdout
            .contains("now holds 2 domains (list of 2026-12-01)"),
        "{}",
        run.stdout
    );
    let stored = app
        .services
        .store
        .domain_list("disposable")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.domains, "fresh-trash.example\nmailinator.com");
    assert!(common::event_types(app.services.store.as_ref())
        .await
        .contains("signup.domain_list_updated"));
}

async fn a_refreshed_list_is_read_by_the_review(backend: Backend) {
    let dns = DnsServer::start(&[(
        "fresh-trash.example",
        Zone::Mx(vec!["mx.fresh-trash.example"]),
    )])
    .await;
    let app = app(backend, "open", &dns).await;
    app.services
        .signups
        .update_disposable_list(
            &onramp::services::Actor::cli(),
            "test.conf",
            "# list-date: 2026-12-01\nfresh-trash.example\n",
        )
        .await
        .unwrap();
    let (id, view) = sign_up(&app, "x@fresh-trash.example", "Fresh Co").await;
    assert_eq!(view["status"], "rejected", "{view}");
    let d = detail(&app, &id).await;
    assert_eq!(signals(&d), vec!["disposable_domain"]);
    assert!(
        d["reasons"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("list of 2026-12-01"),
        "{d}"
    );
    // The shipped list is replaced, not added to.
    let (_, view) = sign_up(&app, "x@mailinator.com", "Other Co").await;
    assert_eq!(
        view["status"], "review",
        "no MX for mailinator.com here, no longer disposable: {view}"
    );
    // A viewer may not replace it.
    let viewer = onramp::services::Actor {
        name: "token:v".into(),
        role: onramp::domain::Role::Viewer,
        request_id: None,
    };
    let refused = app
        .services
        .signups
        .update_disposable_list(&viewer, "x", "a.example\n")
        .await;
    assert!(refused.is_err());
}

on_both_backends!(
    open_mode_approves_the_clean_and_holds_back_the_risky,
    operators_approve_and_reject_from_the_queue,
    the_queue_answers_over_mcp_and_the_cli,
    a_refreshed_list_is_read_by_the_review,
);
