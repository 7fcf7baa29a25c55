//! The few pages the public routes need before the portal exists: the page a verification
//! email's link opens (a form that posts the link's token, so a mail scanner that fetches the
//! link verifies nothing) and its answer. Compiled templates (`templates/`), no JavaScript.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::signup::Counted;
use super::AppState;
use crate::services::ServiceError;

/// The pages' routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/signup/verify", get(verify_page).post(verify_submit))
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
        Ok(body) => (status, Html(body)).into_response(),
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
