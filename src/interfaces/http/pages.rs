//! The few pages the public routes need before the portal exists: the page a verification
//! email's link opens (a form that posts the link's token, so a mail scanner that fetches the
//! link verifies nothing) and its answer, and the pages an invitation's (or welcome's) link and
//! a password reset link open to choose a password. Compiled templates (`templates/`), no
//! JavaScript.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::portal::PortalCounted;
use super::signup::Counted;
use super::AppState;
use crate::services::ServiceError;

/// The pages' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup/verify", get(verify_page).post(verify_submit))
        .route(
            "/portal/invitation",
            get(invitation_page).post(invitation_submit),
        )
        .route("/portal/reset", get(reset_page).post(reset_submit))
}

#[derive(Template)]
#[template(path = "portal_password.html")]
struct PasswordPage<'a> {
    product: &'a str,
    title: &'a str,
    intro: &'a str,
    action: &'a str,
    button: &'a str,
    token: &'a str,
    min_length: usize,
    error: String,
}

#[derive(Template)]
#[template(path = "portal_password_done.html")]
struct PasswordDonePage<'a> {
    product: &'a str,
    ok: bool,
    reason: String,
}

/// A password link's parameter.
#[derive(Deserialize)]
pub struct TokenParam {
    token: String,
}

/// A password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    token: String,
    password: String,
    confirm: String,
}

/// Whether a password link's token has a link's form.
fn link_token(token: &str) -> bool {
    crate::services::opaque_tokens::well_formed(token, crate::services::accounts::LINK_PREFIX)
}

#[derive(Clone, Copy)]
enum PasswordLink {
    Invitation,
    Reset,
}

impl PasswordLink {
    fn page<'a>(
        self,
        product: &'a str,
        token: &'a str,
        min_length: usize,
        error: String,
    ) -> PasswordPage<'a> {
        let (title, intro, action, button) = match self {
            PasswordLink::Invitation => (
                "Choose your password",
                "Choose the password you will sign in with.",
                "/portal/invitation",
                "Set my password",
            ),
            PasswordLink::Reset => (
                "Reset your password",
                "Choose a new password. Every place you are signed in will be signed out.",
                "/portal/reset",
                "Reset my password",
            ),
        };
        PasswordPage {
            product,
            title,
            intro,
            action,
            button,
            token,
            min_length,
            error,
        }
    }
}

fn not_a_link(product: &str) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        PasswordDonePage {
            product,
            ok: false,
            reason: "This link is not one Onramp sent.".into(),
        }
        .render(),
    )
}

fn password_page(state: &AppState, link: PasswordLink, token: &str) -> Response {
    let product = &state.services.product.name;
    if !link_token(token) {
        return not_a_link(product);
    }
    let min = state.services.product.accounts.min_password_length;
    html(
        StatusCode::OK,
        link.page(product, token, min, String::new()).render(),
    )
}

async fn password_submit(state: &AppState, link: PasswordLink, form: PasswordForm) -> Response {
    let product = &state.services.product.name;
    if !link_token(&form.token) {
        return not_a_link(product);
    }
    let min = state.services.product.accounts.min_password_length;
    if form.password != form.confirm {
        let page = link.page(
            product,
            &form.token,
            min,
            "The two passwords differ.".into(),
        );
        return html(StatusCode::UNPROCESSABLE_ENTITY, page.render());
    }
    let accounts = &state.services.accounts;
    let done = match link {
        PasswordLink::Invitation => {
            accounts
                .set_first_password(&crate::services::accounts::AcceptInvitation {
                    token: form.token.clone(),
                    password: form.password.clone(),
                })
                .await
        }
        PasswordLink::Reset => {
            accounts
                .confirm_reset(&crate::services::accounts::ResetConfirm {
                    token: form.token.clone(),
                    new_password: form.password.clone(),
                })
                .await
        }
    };
    match done {
        Ok(()) => html(
            StatusCode::OK,
            PasswordDonePage {
                product,
                ok: true,
                reason: String::new(),
            }
            .render(),
        ),
        Err(e) => {
            let e = ServiceError::from(e);
            let status = crate::interfaces::problem::Problem::from(&e).status_code();
            let fields = e.invalid_fields().unwrap_or_default();
            // A password that breaks a rule: the form again, saying which.
            if let Some(rule) = fields.iter().find(|f| f.field != "token") {
                let page = link.page(product, &form.token, min, format!("{}.", rule.message));
                return html(status, page.render());
            }
            let reason = if fields.iter().any(|f| f.field == "token") {
                "This link is not valid any more: it was used, replaced by a newer one, or has expired. Ask for a new one.".to_owned()
            } else if e.kind().is_public() {
                e.to_string()
            } else {
                "Something went wrong; try again.".into()
            };
            html(
                status,
                PasswordDonePage {
                    product,
                    ok: false,
                    reason,
                }
                .render(),
            )
        }
    }
}

async fn invitation_page(
    State(state): State<AppState>,
    _: PortalCounted,
    Query(p): Query<TokenParam>,
) -> Response {
    password_page(&state, PasswordLink::Invitation, &p.token)
}

async fn invitation_submit(
    State(state): State<AppState>,
    _: PortalCounted,
    Form(form): Form<PasswordForm>,
) -> Response {
    password_submit(&state, PasswordLink::Invitation, form).await
}

async fn reset_page(
    State(state): State<AppState>,
    _: PortalCounted,
    Query(p): Query<TokenParam>,
) -> Response {
    password_page(&state, PasswordLink::Reset, &p.token)
}

async fn reset_submit(
    State(state): State<AppState>,
    _: PortalCounted,
    Form(form): Form<PasswordForm>,
) -> Response {
    password_submit(&state, PasswordLink::Reset, form).await
}

#[derive(Template)]
#[template(path = "signup_verify.html")]
struct VerifyPage<'a> {
    product: &'a str,
    session: &'a str,
    token: &'a str,
}

#[derive(Template)]
#[template(path = "signup_verified.html")]
struct VerifiedPage<'a> {
    product: &'a str,
    ok: bool,
    reason: String,
}

/// The link's parameters.
#[derive(Deserialize)]
pub struct LinkParams {
    session: String,
    token: String,
}

fn html(status: StatusCode, page: Result<String, askama::Error>) -> Response {
    match page {
        // A page may carry a link's token: never cached, never framed.
        Ok(body) => (
            status,
            [
                (axum::http::header::CACHE_CONTROL, "no-store"),
                (
                    axum::http::header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
                ),
            ],
            Html(body),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render a page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Whether the link's parameters have their forms (a session id, a token of at most 128
/// characters).
fn well_formed(p: &LinkParams) -> bool {
    super::signup::is_session_id(&p.session)
        && p.token.len() <= 128
        && p.token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

async fn verify_page(
    State(state): State<AppState>,
    _call: Counted,
    Query(p): Query<LinkParams>,
) -> Response {
    let product = &state.services.product.name;
    if !well_formed(&p) {
        return html(
            StatusCode::BAD_REQUEST,
            VerifiedPage {
                product,
                ok: false,
                reason: "the link is not one Onramp sent".into(),
            }
            .render(),
        );
    }
    html(
        StatusCode::OK,
        VerifyPage {
            product,
            session: &p.session,
            token: &p.token,
        }
        .render(),
    )
}

async fn verify_submit(
    State(state): State<AppState>,
    call: Counted,
    Form(p): Form<LinkParams>,
) -> Response {
    let product = &state.services.product.name;
    if !well_formed(&p) {
        return html(
            StatusCode::BAD_REQUEST,
            VerifiedPage {
                product,
                ok: false,
                reason: "the link is not one Onramp sent".into(),
            }
            .render(),
        );
    }
    match state
        .services
        .signups
        .verify_link(&p.session, &p.token, call.request_id)
        .await
    {
        Ok(_) => html(
            StatusCode::OK,
            VerifiedPage {
                product,
                ok: true,
                reason: String::new(),
            }
            .render(),
        ),
        Err(e) => {
            let e = ServiceError::from(e);
            let status = crate::interfaces::problem::Problem::from(&e).status_code();
            let reason = if e.kind().is_public() {
                e.to_string()
            } else {
                "something went wrong; try again".into()
            };
            html(
                status,
                VerifiedPage {
                    product,
                    ok: false,
                    reason,
                }
                .render(),
            )
        }
    }
}
