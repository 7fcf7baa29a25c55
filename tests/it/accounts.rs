//! Customer accounts against a real SMTP server (aiosmtpd), on both backends: a person signs
//! up, reads the code from the mail, verifies, is approved, reads the temporary password from
//! the welcome mail, logs in and is made to change it; invitations by link with roles, and a
//! session that reaches its own customer only; the lockout after failed logins; a password
//! reset by link. Every refusal names its field and rule and changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::smtp::{Received, SmtpSink};
use crate::common::{self, status_and_json, Backend, TestApp};
use crate::email::{call, clock, code_in, deliver, mailing, mailing_serving, start, stored_text};

const GOOD: &str = "a long and varied passphrase";

/// The users of `customer_id` as stored, and the event log: what a refusal must leave alone.
async fn accounts_snapshot(app: &TestApp, customer_id: &str) -> (Vec<String>, common::Snapshot) {
    let users = app
        .services
        .store
        .users_of(&common::cid(customer_id))
        .await
        .unwrap()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    (users, app.snapshot().await)
}

async fn post_json(
    app: &TestApp,
    path: &str,
    body: Value,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let r = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let headers = r.headers().clone();
    let (status, v) = status_and_json(r).await;
    (status, v, headers)
}

async fn login(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    let (s, v, _) = post_json(
        app,
        "/api/v1/portal/login",
        json!({"email": email, "password": password}),
    )
    .await;
    (s, v)
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    status_and_json(app.get(path, token).send().await.unwrap()).await
}

/// How many `event_type` events the log holds, once it holds at least `at_least` (a reset
/// request's work runs after its answer).
async fn events_reach(app: &TestApp, event_type: &str, at_least: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let n = common::all_events(app.services.store.as_ref())
            .await
            .iter()
            .filter(|e| e.event_type == event_type)
            .count();
        if n >= at_least || std::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The temporary password in a welcome message.
fn temporary_password_in(m: &Received) -> String {
    let text = m.text();
    let at = text
        .find("Your temporary password is:")
        .expect("the temporary password's line");
    text[at..]
        .split_whitespace()
        .find(|w| w.len() == 19 && w.matches('-').count() == 3)
        .expect("a temporary password")
        .to_owned()
}

/// The token of the link under `path` in a message.
fn link_token(m: &Received, path: &str) -> String {
    let text = m.text();
    let prefix = format!("https://onboard.example.com{path}?token=");
    let at = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("a {path} link in {text}"));
    text[at + prefix.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn by_subject<'a>(mail: &'a [Received], subject: &str) -> &'a Received {
    mail.iter()
        .rev()
        .find(|m| m.subject == subject)
        .unwrap_or_else(|| {
            panic!(
                "a message '{subject}' among {:?}",
                mail.iter().map(|m| &m.subject).collect::<Vec<_>>()
            )
        })
}

async fn signup_to_first_login(backend: Backend) {
    let sink = SmtpSink::start();
    let clock = clock();
    let (app, jobs) = mailing(backend, &sink, &clock).await;

    // Sign up, with the code from the mail.
    let (id, token) = start(&app, "Ann@Acme-Analytics.com", "Acme Analytics").await;
    deliver(&jobs).await;
    let code = code_in(&sink.wait_for(1)[0]);
    let (status, v) = call(
        &app,
        &format!("/api/v1/signup/sessions/{id}/verify"),
        &token,
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let step = format!("/api/v1/signup/sessions/{id}/step");
    for data in [
        json!({"step": "company", "data": {"industry": "ecommerce", "country": "DE", "timezone": "Europe/Berlin"}}),
        json!({"step": "contact", "data": {"contact_name": "Ann Lee", "accept_terms": true}}),
    ] {
        let (status, v) = call(&app, &step, &token, Some(data)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let (status, v) = call(
        &app,
        &format!("/api/v1/signup/sessions/{id}/complete"),
        &token,
        None,
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::OK, Some("review")),
        "{v}"
    );

    // Meanwhile another customer invited the same address; nobody accepted it.
    let (status, _) = app
        .onboard(
            &json!({"customer_id": "globex", "customer_name": "Globex", "industry": "ecommerce"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, v) = status_and_json(
        app.post(
            "/api/v1/customers/globex/users",
            &app.operator,
            &json!({"email": "ann@acme-analytics.com", "role": "member"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");

    // An operator approves: the customer and its owner, from the verified email (which takes
    // the address over from the invitation no one accepted).
    let (status, v) = status_and_json(
        app.post(
            &format!("/api/v1/signups/{id}/approve"),
            &app.operator,
            &json!({}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let customer_id = v["signup"]["customer_id"].as_str().unwrap().to_owned();
    assert!(
        app.services
            .store
            .users_of(&common::cid("globex"))
            .await
            .unwrap()
            .is_empty(),
        "the unaccepted invitation gave way"
    );
    let (status, users) = get(
        &app,
        &format!("/api/v1/customers/{customer_id}/users"),
        &app.viewer,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{users}");
    let owner = &users["items"][0];
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            owner["email"].as_str(),
            owner["role"].as_str(),
            owner["status"].as_str()
        ),
        (
            Some("Ann@acme-analytics.com"),
            Some("owner"),
            Some("active")
        )
    );
    assert_eq!(owner["signup_id"], id.as_str());

    // The welcome mail carries a temporary password.
    deliver(&jobs).await;
    let mail = sink.wait_for(3);
    let welcome = by_subject(&mail, "Welcome to Onramp, Acme Analytics");
    assert_eq!(welcome.rcpt_tos, vec!["Ann@acme-analytics.com"]);
    let temporary = temporary_password_in(welcome);
    assert!(welcome.html.as_deref().unwrap().contains(&temporary));

    // A wrong password: refused, the same answer as an unknown address.
    let (status, wrong) = login(&app, "ann@acme-analytics.com", "not the password").await;
    assert_eq!(
        (status, wrong["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials")),
        "{wrong}"
    );
    let (status, unknown) = login(&app, "nobody@acme-analytics.com", "not the password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown["detail"], wrong["detail"]);
    // A malformed login names its field.
    let (status, v) = login(&app, "not-an-address", "x").await;
    assert_eq!(
        (status, v["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email")),
        "{v}"
    );

    // The temporary password signs in, and must be changed before anything else.
    let (status, session) = login(&app, "ANN@acme-analytics.com", &temporary).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["password_change_required"], true);
    let st = session["session_token"].as_str().unwrap().to_owned();
    assert!(st.starts_with("onr_ps_"));
    let (status, v) = get(&app, &format!("/api/v1/customers/{customer_id}/users"), &st).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("password_change_required")),
        "{v}"
    );
    let (status, me) = get(&app, "/api/v1/portal/me", &st).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["customer"]["customer_id"], customer_id.as_str());
    assert_eq!(me["user"]["password_change_required"], true);

    // A weak new password is refused, naming the field and the rule; nothing changes.
    let before = accounts_snapshot(&app, &customer_id).await;
    for (new, rule) in [
        ("short", "too_short"),
        (temporary.as_str(), "unchanged"),
        ("ann@acme-analytics.com", "guessable"),
    ] {
        let (status, v) = call(
            &app,
            "/api/v1/portal/password",
            &st,
            Some(json!({"current_password": temporary, "new_password": new})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(
            (
                v["errors"][0]["field"].as_str(),
                v["errors"][0]["code"].as_str()
            ),
            (Some("new_password"), Some(rule)),
            "{v}"
        );
    }
    let (status, v) = call(
        &app,
        "/api/v1/portal/password",
        &st,
        Some(json!({"current_password": "wrong wrong wrong", "new_password": GOOD})),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("current_password")),
        "{v}"
    );
    assert_eq!(accounts_snapshot(&app, &customer_id).await, before);

    let (status, v) = call(
        &app,
        "/api/v1/portal/password",
        &st,
        Some(json!({"current_password": temporary, "new_password": GOOD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["password_change_required"], false);
    let (status, v) = get(&app, &format!("/api/v1/customers/{customer_id}/users"), &st).await;
    assert_eq!(status, StatusCode::OK, "the same session works now: {v}");

    // The temporary password is spent; the new one signs in.
    let (status, _) = login(&app, "ann@acme-analytics.com", &temporary).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = login(&app, "ann@acme-analytics.com", GOOD).await;
    assert_eq!(
        (status, v["password_change_required"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );

    // A second welcome is not sent again (the user chose a password), and nothing stored
    // holds the temporary password or a hash's secret.
    let stored = stored_text(&app).await;
    assert!(
        !stored.contains(&temporary),
        "the temporary password is stored nowhere"
    );
    let types = common::event_types(app.services.store.as_ref()).await;
    for t in ["user.created", "user.logged_in", "user.password_changed"] {
        assert!(types.contains(t), "{t} in {types:?}");
    }
    let user = app
        .services
        .store
        .user_by_email("ann@acme-analytics.com")
        .await
        .unwrap()
        .unwrap();
    assert!(user.password_hash.unwrap().starts_with("$argon2id$"));

    // A later signup with the same email is flagged as an existing account, and its approval
    // is refused: the email cannot own a second customer.
    let sent = sink.received().len();
    let (id2, token2) = start(&app, "ann@acme-analytics.com", "Another Co").await;
    deliver(&jobs).await;
    let mail = sink.wait_for(sent + 1);
    let code2 = code_in(by_subject(&mail, "Verify your email for Onramp"));
    call(
        &app,
        &format!("/api/v1/signup/sessions/{id2}/verify"),
        &token2,
        Some(json!({"code": code2})),
    )
    .await;
    let step2 = format!("/api/v1/signup/sessions/{id2}/step");
    call(&app, &step2, &token2, Some(json!({"step": "company", "data": {"industry": "ecommerce", "country": "DE", "timezone": "Europe/Berlin"}}))).await;
    call(
        &app,
        &step2,
        &token2,
        Some(json!({"step": "contact", "data": {"contact_name": "Ann Lee", "accept_terms": true}})),
    )
    .await;
    let (status, v) = call(
        &app,
        &format!("/api/v1/signup/sessions/{id2}/complete"),
        &token2,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, detail) = get(&app, &format!("/api/v1/signups/{id2}"), &app.viewer).await;
    let signals: Vec<&str> = detail["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["signal"].as_str().unwrap())
        .collect();
    assert!(signals.contains(&"existing_account"), "{detail}");
    let before = app.snapshot().await;
    let (status, v) = status_and_json(
        app.post(
            &format!("/api/v1/signups/{id2}/approve"),
            &app.operator,
            &json!({}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("email_in_use")),
        "{v}"
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused approval changes nothing"
    );

    // Deleting the customer's data erases its messages and its signup's from the delivery log.
    let (_, log) = get(&app, &format!("/api/v1/emails?signup_id={id}"), &app.viewer).await;
    assert!(!log["items"].as_array().unwrap().is_empty());
    let (status, v) = app
        .offboard(
            &customer_id,
            &json!({"delete_data": true, "confirm": customer_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    deliver(&jobs).await;
    for query in [
        format!("signup_id={id}"),
        format!("customer_id={customer_id}"),
    ] {
        let (_, log) = get(&app, &format!("/api/v1/emails?{query}"), &app.viewer).await;
        assert_eq!(log["items"], json!([]), "{query}");
    }
}

/// Accepts the invitation in `m` with `password`; returns the session token.
async fn accept(app: &TestApp, m: &Received, password: &str) -> String {
    let token = link_token(m, "/portal/invitation");
    let (status, v, _) = post_json(
        app,
        "/api/v1/portal/invitations/accept",
        json!({"token": token, "password": password}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["status"], "active");
    v["session_token"].as_str().unwrap().to_owned()
}

async fn invitations_roles_and_isolation(backend: Backend) {
    let sink = SmtpSink::start();
    let clock = clock();
    let (app, jobs) = mailing(backend, &sink, &clock).await;
    for (id, name) in [("acme", "Acme"), ("globex", "Globex")] {
        let (status, v) = app
            .onboard(&json!({"customer_id": id, "customer_name": name, "industry": "ecommerce"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
    let invite = |token: String, customer: &'static str, body: Value| {
        let app = &app;
        async move {
            status_and_json(
                app.post(
                    &format!("/api/v1/customers/{customer}/users"),
                    &token,
                    &body,
                )
                .send()
                .await
                .unwrap(),
            )
            .await
        }
    };

    // Bad invitations: every bad field named, nothing changed; a viewer may not invite.
    let before = accounts_snapshot(&app, "acme").await;
    let (status, v) = invite(
        app.operator.clone(),
        "acme",
        json!({"email": "nope", "role": "king"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "role"]);
    let (status, _) = invite(
        app.viewer.clone(),
        "acme",
        json!({"email": "a@acme.example", "role": "member"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, v) = invite(
        app.operator.clone(),
        "nobody",
        json!({"email": "a@acme.example", "role": "member"}),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("customer_not_found"))
    );
    assert_eq!(accounts_snapshot(&app, "acme").await, before);

    // The operator invites Acme's owner, who accepts by the link and invites an admin, who
    // invites a member.
    let (status, v) = invite(
        app.operator.clone(),
        "acme",
        json!({"email": "olga@acme.example", "role": "owner", "name": "Olga"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        (
            v["status"].as_str(),
            v["invited_by"].as_str().map(|s| s.starts_with("token:"))
        ),
        (Some("invited"), Some(true))
    );
    deliver(&jobs).await;
    let m = sink.wait_for(1)[0].clone();
    assert_eq!(m.subject, "You are invited to Acme on Onramp");
    assert!(m.text().contains("as owner"), "{}", m.text());
    // The link opens a page with a form; a scanner fetching it changes nothing.
    let page = app
        .client
        .get(app.url(&format!(
            "/portal/invitation?token={}",
            link_token(&m, "/portal/invitation")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("name=\"password\""));
    // An invited user cannot sign in before accepting.
    let (status, _) = login(&app, "olga@acme.example", GOOD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A weak password is refused by the accept call, the link still good after.
    let (status, v, _) = post_json(
        &app,
        "/api/v1/portal/invitations/accept",
        json!({"token": link_token(&m, "/portal/invitation"), "password": "short"}),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password")),
        "{v}"
    );
    let owner = accept(&app, &m, GOOD).await;
    // The link is spent.
    let (status, v, _) = post_json(
        &app,
        "/api/v1/portal/invitations/accept",
        json!({"token": link_token(&m, "/portal/invitation"), "password": GOOD}),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_or_expired")),
        "{v}"
    );

    let (status, v) = invite(
        owner.clone(),
        "acme",
        json!({"email": "adam@acme.example", "role": "admin"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    deliver(&jobs).await;
    let admin = accept(
        &app,
        by_subject(&sink.wait_for(2), "You are invited to Acme on Onramp"),
        GOOD,
    )
    .await;
    let (status, v) = invite(
        admin.clone(),
        "acme",
        json!({"email": "owen@acme.example", "role": "owner"}),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "an admin cannot make an owner: {v}"
    );
    let (status, member_view) = invite(
        admin.clone(),
        "acme",
        json!({"email": "mia@acme.example", "role": "member"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{member_view}");
    deliver(&jobs).await;
    let member = accept(&app, &sink.wait_for(3)[2], GOOD).await;
    let (status, _) = invite(
        member.clone(),
        "acme",
        json!({"email": "max@acme.example", "role": "member"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a member invites no one");
    // An email with an account cannot be invited again, anywhere.
    let (status, v) = invite(
        app.operator.clone(),
        "globex",
        json!({"email": "MIA@acme.example", "role": "member"}),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("user_exists")),
        "{v}"
    );

    // A session reaches its own customer only: another's reads as not found, for every verb.
    let (status, v) = invite(
        app.operator.clone(),
        "globex",
        json!({"email": "gail@globex.example", "role": "owner"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let gail = v["user_id"].as_str().unwrap().to_owned();
    let before = accounts_snapshot(&app, "globex").await;
    for token in [&owner, &admin, &member] {
        let (status, v) = get(&app, "/api/v1/customers/globex/users", token).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("customer_not_found")),
            "{v}"
        );
        let (status, _) = invite(
            token.clone(),
            "globex",
            json!({"email": "x@globex.example", "role": "member"}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let r = app
            .client
            .delete(app.url(&format!("/api/v1/customers/globex/users/{gail}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // Nor do portal sessions open the operator routes.
        let (status, _) = get(&app, "/api/v1/customers/acme", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(accounts_snapshot(&app, "globex").await, before);

    // The member sees the users; the last owner cannot go; an admin removes the member, whose
    // session ends.
    let (status, v) = get(&app, "/api/v1/customers/acme/users", &member).await;
    assert_eq!(
        (status, v["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(3)),
        "{v}"
    );
    let owner_id = v["items"][0]["user_id"].as_str().unwrap().to_owned();
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/customers/acme/users/{owner_id}")))
        .bearer_auth(&app.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "last_owner");
    let r = app
        .client
        .delete(app.url(&format!(
            "/api/v1/customers/acme/users/{}",
            member_view["user_id"].as_str().unwrap()
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _) = get(&app, "/api/v1/portal/me", &member).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a removed user's session ends"
    );
    // Logging out ends a session.
    let r = app
        .client
        .post(app.url("/api/v1/portal/logout"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _) = get(&app, "/api/v1/portal/me", &admin).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let types = common::event_types(app.services.store.as_ref()).await;
    for t in ["user.invited", "user.joined", "user.removed"] {
        assert!(types.contains(t), "{t} in {types:?}");
    }
    let stored = stored_text(&app).await;
    assert!(
        !stored.contains(&link_token(&m, "/portal/invitation")),
        "the link's token is stored nowhere"
    );

    // Offboarding ends the customer's sessions, and making it active again revives none.
    let (status, session) = login(&app, "olga@acme.example", GOOD).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let olga = session["session_token"].as_str().unwrap().to_owned();
    let (status, v) = status_and_json(
        app.post(
            "/api/v1/customers/acme/offboard",
            &app.operator,
            &json!({"delete_data": false}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, _) = get(&app, "/api/v1/portal/me", &olga).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = login(&app, "olga@acme.example", GOOD).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("customer_offboarded")),
        "{v}"
    );
    let (status, v) = status_and_json(
        app.patch(
            "/api/v1/customers/acme",
            &app.operator,
            &json!({"status": "active"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, _) = get(&app, "/api/v1/portal/me", &olga).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an ended session stays ended"
    );
    let (status, _) = login(&app, "olga@acme.example", GOOD).await;
    assert_eq!(status, StatusCode::OK);
    // Offboarding with the data deletes the users: their addresses are free again.
    let (status, v) = status_and_json(
        app.post(
            "/api/v1/customers/acme/offboard",
            &app.operator,
            &json!({"delete_data": true, "confirm": "acme"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(app
        .services
        .store
        .users_of(&common::cid("acme"))
        .await
        .unwrap()
        .is_empty());
    assert!(app
        .services
        .store
        .user_by_email("olga@acme.example")
        .await
        .unwrap()
        .is_none());

    // An invitation nobody accepts lapses with its link (a week) and frees the address.
    let (status, _) = invite(
        app.operator.clone(),
        "globex",
        json!({"email": "late@globex.example", "role": "member"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    deliver(&jobs).await;
    clock.advance(chrono::Duration::days(8));
    jobs.run_now("accounts.purge").await.unwrap();
    assert!(app
        .services
        .store
        .user_by_email("late@globex.example")
        .await
        .unwrap()
        .is_none());

    // A customer sends at most 50 invitations a day (the lapsed one above was 8 days ago).
    for i in 0..50 {
        let (status, v) = invite(
            app.operator.clone(),
            "globex",
            json!({"email": format!("p{i}@globex.example"), "role": "member"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{i}: {v}");
    }
    let before = accounts_snapshot(&app, "globex").await;
    let (status, v) = invite(
        app.operator.clone(),
        "globex",
        json!({"email": "one-more@globex.example", "role": "member"}),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("invitation_limit")),
        "{v}"
    );
    assert_eq!(accounts_snapshot(&app, "globex").await, before);
}

async fn lockout_and_reset(backend: Backend) {
    let sink = SmtpSink::start();
    let clock = clock();
    // The per-address limit is the HTTP layer's (tested on its own below); this test is about
    // the lockout and the reset, and makes more calls than that limit lets through a minute.
    let mut options = onramp::interfaces::http::ServeOptions::default();
    options.portal_limits.per_address_per_minute = 0;
    let (app, jobs) = mailing_serving(backend, &sink, &clock, options).await;
    let (status, _) = app
        .onboard(&json!({"customer_id": "acme", "customer_name": "Acme", "industry": "ecommerce"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = status_and_json(
        app.post(
            "/api/v1/customers/acme/users",
            &app.operator,
            &json!({"email": "olga@acme.example", "role": "owner"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    deliver(&jobs).await;
    let session = accept(&app, &sink.wait_for(1)[0], GOOD).await;

    // Five failures in a row lock the address out, even for the right password, and say when
    // to come back; an address without an account is locked out alike.
    for email in ["olga@acme.example", "ghost@acme.example"] {
        for _ in 0..5 {
            let (status, _) = login(&app, email, "wrong password here").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let (status, v, headers) = post_json(
            &app,
            "/api/v1/portal/login",
            json!({"email": email, "password": GOOD}),
        )
        .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("login_locked")),
            "{v}"
        );
        assert_eq!(headers["retry-after"], "30");
    }
    let types = common::event_types(app.services.store.as_ref()).await;
    assert!(types.contains("user.locked_out"), "{types:?}");
    // The lock lifts with time; the next failure doubles it.
    clock.advance(chrono::Duration::seconds(31));
    let (status, _) = login(&app, "olga@acme.example", "wrong password here").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, _, headers) = post_json(
        &app,
        "/api/v1/portal/login",
        json!({"email": "olga@acme.example", "password": GOOD}),
    )
    .await;
    assert_eq!(headers["retry-after"], "60");
    clock.advance(chrono::Duration::seconds(61));
    let (status, v) = login(&app, "olga@acme.example", GOOD).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // A success forgets the failures.
    let (status, _) = login(&app, "olga@acme.example", "wrong password here").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = login(&app, "olga@acme.example", GOOD).await;
    assert_eq!(status, StatusCode::OK);

    // A reset: always 202; a link goes only to an account's address.
    let sent = sink.received().len();
    for email in ["ghost@acme.example", "olga@acme.example"] {
        let (status, v, _) = post_json(
            &app,
            "/api/v1/portal/password-reset",
            json!({"email": email}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    }
    let (status, v, _) = post_json(
        &app,
        "/api/v1/portal/password-reset",
        json!({"email": "not an address"}),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email"))
    );
    assert_eq!(
        events_reach(&app, "user.password_reset_requested", 1).await,
        1
    );
    deliver(&jobs).await;
    let mail = sink.wait_for(sent + 1);
    assert_eq!(mail.len(), sent + 1, "one reset message, to the account");
    let reset = by_subject(&mail, "Reset your Onramp password");
    assert_eq!(reset.rcpt_tos, vec!["olga@acme.example"]);
    let token = link_token(reset, "/portal/reset");

    // A bad new password or a bad token: named, nothing changed.
    let before = accounts_snapshot(&app, "acme").await;
    for (body, field) in [
        (
            json!({"token": token, "new_password": "short"}),
            "new_password",
        ),
        (
            json!({"token": "onr_ul_nope", "new_password": "another fine passphrase"}),
            "token",
        ),
        (
            json!({"token": format!("onr_ul_{}", "0".repeat(64)), "new_password": "another fine passphrase"}),
            "token",
        ),
    ] {
        let (status, v, _) = post_json(&app, "/api/v1/portal/password-reset/confirm", body).await;
        assert_eq!(
            (status, v["errors"][0]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{v}"
        );
    }
    assert_eq!(accounts_snapshot(&app, "acme").await, before);

    let (status, v, _) = post_json(
        &app,
        "/api/v1/portal/password-reset/confirm",
        json!({"token": token, "new_password": "another fine passphrase"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    let (status, _) = get(&app, "/api/v1/portal/me", &session).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a reset ends every session"
    );
    let (status, v, _) = post_json(
        &app,
        "/api/v1/portal/password-reset/confirm",
        json!({"token": token, "new_password": "yet another passphrase"}),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_or_expired")),
        "a link works once: {v}"
    );
    let (status, _) = login(&app, "olga@acme.example", GOOD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = login(&app, "olga@acme.example", "another fine passphrase").await;
    assert_eq!(status, StatusCode::OK);

    // A link expires after an hour; at most five a day go out.
    for _ in 0..6 {
        let (status, _, _) = post_json(
            &app,
            "/api/v1/portal/password-reset",
            json!({"email": "olga@acme.example"}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "over the limit too");
    }
    assert_eq!(
        events_reach(&app, "user.password_reset_requested", 6).await,
        5,
        "the first request and four more today"
    );
    deliver(&jobs).await;
    let newest = sink.wait_for(sent + 2);
    let late = link_token(
        by_subject(&newest, "Reset your Onramp password"),
        "/portal/reset",
    );
    clock.advance(chrono::Duration::minutes(61));
    let (status, v, _) = post_json(
        &app,
        "/api/v1/portal/password-reset/confirm",
        json!({"token": late, "new_password": "yet another passphrase"}),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_or_expired")),
        "{v}"
    );
}

on_both_backends!(
    signup_to_first_login,
    invitations_roles_and_isolation,
    lockout_and_reset,
);

/// The portal's public routes count every call against the client address, before the body is
/// read or a password hashed: past the limit, 429 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_calls_are_limited_per_address() {
    let mut options = onramp::interfaces::http::ServeOptions::default();
    options.portal_limits.per_address_per_minute = 3;
    let db = common::TestDb::new(Backend::Sqlite).await;
    let runner = onramp::services::RunnerOptions::new(db.data_dir());
    let app =
        TestApp::start_serving(db, onramp::product::Product::builtin(), runner, options).await;
    for _ in 0..3 {
        let (status, _) = login(&app, "a@acme.example", "whatever it is").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for path in ["/api/v1/portal/login", "/api/v1/portal/password-reset"] {
        let (status, v, headers) = post_json(&app, path, json!({"email": "a@acme.example"})).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
            "{v}"
        );
        assert!(headers.contains_key("retry-after"));
    }
}

/// Behind a trusted proxy each client has its own quota, named by `X-Forwarded-For`; a client
/// talking to Onramp directly cannot choose its quota with the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client_the_limit_counts() {
    let attempt = |app: &TestApp, client: &str| {
        app.client
            .post(app.url("/api/v1/portal/password-reset"))
            .header("x-forwarded-for", client)
            .json(&json!({"email": "a@acme.example"}))
            .send()
    };
    for (trusted, separate) in [("127.0.0.1", true), ("10.0.0.0/8", false)] {
        let mut options = onramp::interfaces::http::ServeOptions::default();
        options.portal_limits.per_address_per_minute = 2;
        options.trusted_proxies =
            onramp::interfaces::http::limits::TrustedProxies::parse(trusted).unwrap();
        let db = common::TestDb::new(Backend::Sqlite).await;
        let runner = onramp::services::RunnerOptions::new(db.data_dir());
        let app =
            TestApp::start_serving(db, onramp::product::Product::builtin(), runner, options).await;
        for _ in 0..2 {
            assert_eq!(
                attempt(&app, "203.0.113.1").await.unwrap().status(),
                StatusCode::ACCEPTED
            );
        }
        assert_eq!(
            attempt(&app, "203.0.113.1").await.unwrap().status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        let other = attempt(&app, "203.0.113.2").await.unwrap().status();
        if separate {
            assert_eq!(
                other,
                StatusCode::ACCEPTED,
                "another client behind the proxy"
            );
        } else {
            assert_eq!(
                other,
                StatusCode::TOO_MANY_REQUESTS,
                "an untrusted peer's header is ignored"
            );
        }
    }
}
