//! The public signup wizard: no operator token; a session's later calls carry the resume token
//! its start returned, as `Authorization: Bearer <resume_token>`. Every call is counted against
//! its client address, and a session's calls against the session too, before the body is read.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::{bearer, Authenticated};
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::services::signups::{
    ApproveSignup, ApprovedSignup, FunnelQuery, RejectSignup, SignupDetail, SignupError,
    SignupFunnel, SignupList, SignupQuery, SignupView, StartSignup, StartedSignup, StepSubmission,
    VerifyEmail, VerifyLink,
};

/// The signup routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup/sessions", post(start))
        .route("/signup/sessions/{signup_id}", get(show).delete(abandon))
        .route("/signup/sessions/{signup_id}/step", post(step))
        .route("/signup/sessions/{signup_id}/verify", post(verify))
        .route("/signup/sessions/{signup_id}/verify/resend", post(resend))
        .route("/signup/sessions/{signup_id}/complete", post(complete))
        .route("/signup/verify", post(verify_link))
}

/// The operators' review queue.
pub fn queue_router() -> Router<AppState> {
    Router::new()
        .route("/signups", get(queue))
        .route("/signups/funnel", get(funnel))
        .route("/signups/{signup_id}", get(detail))
        .route("/signups/{signup_id}/approve", post(approve))
        .route("/signups/{signup_id}/reject", post(reject))
}

/// The request id, when it is one a log and the event log can hold: the server's own, or a
/// caller's of at most 128 letters, digits, `-` and `_` (these routes are public).
pub(super) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
}

/// Whether `id` has a session id's form (`su_` and 32 hex digits). Anything else opens nothing,
/// and is refused before it can take a place in the rate limiter.
fn well_formed(id: &str) -> Result<(), ApiError> {
    if is_session_id(id) {
        Ok(())
    } else {
        Err(SignupError::BadToken.into())
    }
}

/// Whether `id` has a session id's form (`su_` and 32 hex digits).
pub(super) fn is_session_id(id: &str) -> bool {
    id.strip_prefix("su_")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Counts the call against the caller's address and, for a session's calls, the session.
fn limit(state: &AppState, parts: &Parts, signup_id: Option<&str>) -> Result<(), ApiError> {
    let address = state.client_address(parts);
    state
        .signup_limiter
        .check(address, signup_id)
        .map_err(|limited| {
            tracing::warn!(by = limited.by, address = ?address, "signup rate limited");
            ApiError::RateLimited {
                detail: format!(
                    "too many signup requests for this {}; retry in {} s",
                    if limited.by == "key" {
                        "session"
                    } else {
                        limited.by
                    },
                    limited.retry_after_secs
                ),
                retry_after_secs: limited.retry_after_secs,
            }
        })
}

/// A call that starts a session: counted against the caller's address before its body is read.
pub struct Counted {
    pub(super) request_id: Option<String>,
}

impl FromRequestParts<AppState> for Counted {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        limit(state, parts, None)?;
        Ok(Self {
            request_id: request_id(&parts.headers),
        })
    }
}

/// A call on one session: its id (well formed), counted against the caller's address and the
/// session, and the resume token it carries; all before its body is read.
pub struct SessionCall {
    signup_id: String,
    token: String,
    request_id: Option<String>,
}

impl FromRequestParts<AppState> for SessionCall {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ApiPath(signup_id) = ApiPath::<String>::from_request_parts(parts, state).await?;
        well_formed(&signup_id)?;
        limit(state, parts, Some(&signup_id))?;
        // A missing or malformed header opens nothing, like a wrong token.
        let token = bearer(&parts.headers)
            .map_err(|_| SignupError::BadToken)?
            .to_owned();
        Ok(Self {
            signup_id,
            token,
            request_id: request_id(&parts.headers),
        })
    }
}

/// Start a signup with the wizard's first step; the answer carries the resume token, shown once.
#[utoipa::path(post, path = "/api/v1/signup/sessions", tag = "signup",
    request_body = StartSignup,
    responses(
        (status = 201, body = StartedSignup),
        (status = 400, description = "malformed_json", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "signup_invite_only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_closed: the product offers no self-serve signup", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: every bad field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many signup requests from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn start(
    State(state): State<AppState>,
    call: Counted,
    ApiJson(req): ApiJson<StartSignup>,
) -> Result<(StatusCode, Json<StartedSignup>), ApiError> {
    let started = state.services.signups.start(&req, call.request_id).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

/// The session: its status, steps with their answers, and progress.
#[utoipa::path(get, path = "/api/v1/signup/sessions/{signup_id}", tag = "signup",
    params(("signup_id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, body = SignupView),
        (status = 401, description = "the resume token does not open this session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_closed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many signup requests; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    call: SessionCall,
) -> Result<Json<SignupView>, ApiError> {
    Ok(Json(
        state
            .services
            .signups
            .get(&call.signup_id, &call.token)
            .await?,
    ))
}

/// Save one step's answers. A step after the current one is refused; going back is allowed.
#[utoipa::path(post, path = "/api/v1/signup/sessions/{signup_id}/step", tag = "signup",
    params(("signup_id" = String, Path, description = "The session's id")),
    request_body = StepSubmission,
    responses(
        (status = 200, body = SignupView),
        (status = 400, description = "malformed_json", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "the resume token does not open this session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_closed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "step_out_of_order, signup_finished (abandoned or expired) or signup_changed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: every bad field, as data.<field>", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many signup requests; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn step(
    State(state): State<AppState>,
    call: SessionCall,
    ApiJson(submission): ApiJson<StepSubmission>,
) -> Result<Json<SignupView>, ApiError> {
    Ok(Json(
        state
            .services
            .signups
            .submit_step(&call.signup_id, &call.token, &submission, call.request_id)
            .await?,
    ))
}

/// Abandon the session; it keeps the furthest step it reached, for the funnel.
#[utoipa::path(delete, path = "/api/v1/signup/sessions/{signup_id}", tag = "signup",
    params(("signup_id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, body = SignupView),
        (status = 401, description = "the resume token does not open this session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_closed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "signup_finished: already abandoned or expired", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many signup requests; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn abandon(
    State(state): State<AppState>,
    call: SessionCall,
) -> Result<Json<SignupView>, ApiError> {
    Ok(Json(
        state
            .services
            .signups
            .abandon(&call.signup_id, &call.token, call.request_id)
            .await?,
    ))
}

/// Verify the session's email with the six-digit code sent to it. A wrong code counts against
/// the code's five tries.
#[utoipa::path(post, path = "/api/v1/signup/sessions/{signup_id}/verify", tag = "signup",
    params(("signup_id" = String, Path, description = "The session's id")),
    request_body = VerifyEmail,
    responses(
        (status = 200, body = SignupView),
        (status = 400, description = "malformed_json", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "the resume token does not open this session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_closed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "code_expired, code_exhausted, already_verified, signup_finished or signup_changed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: code is not six digits, or not the code sent (wrong_code, with the tries left)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many signup requests; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    call: SessionCall,
    ApiJson(req): ApiJson<VerifyEmail>,
) -> Result<Json<SignupView>, ApiError> {
    Ok(Json(
        state
            .services
            .signups
            .verify(&call.signup_id, &call.token, &req, call.request_id)
            .await?,
    ))
}

/// Send a new verification code (the one out stops working when the new one is sent).
#[utoipa::path(post, path = "/api/v1/signup/sessions/{signup_id}/verify/resend", tag = "signup",
    params(("signup_id" = String, Path, description = "The session's id")),
    responses(
        (status = 202, body = SignupView),
        (status = 401, description = "the resume token does not open this session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_closed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "already_verified, too_many_codes, signup_finished or signup_changed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many signup requests; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn resend(
    State(state): State<AppState>,
    call: SessionCall,
) -> Result<(StatusCode, Json<SignupView>), ApiError> {
    let view = state
        .services
        .signups
        .resend_code(&call.signup_id, &call.token, call.request_id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Complete the session: every step answered and the email verified, it goes to review. The
/// resume token is spent.
#[utoipa::path(post, path = "/api/v1/signup/sessions/{signup_id}/complete", tag = "signup",
    params(("signup_id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, body = SignupView),
        (status = 401, description = "the resume token does not open this session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_closed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "signup_incomplete, email_not_verified, signup_finished or signup_changed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many signup requests; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn complete(
    State(state): State<AppState>,
    call: SessionCall,
) -> Result<Json<SignupView>, ApiError> {
    Ok(Json(
        state
            .services
            .signups
            .complete(&call.signup_id, &call.token, call.request_id)
            .await?,
    ))
}

/// Verify a session's email with the token of the link sent to it (the page the link opens
/// posts it here); the link's token is its own authority, no resume token needed.
#[utoipa::path(post, path = "/api/v1/signup/verify", tag = "signup",
    request_body = VerifyLink,
    responses(
        (status = 200, body = SignupView),
        (status = 400, description = "malformed_json", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "the link does not verify this session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_closed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "code_expired, already_verified or signup_finished", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many signup requests from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify_link(
    State(state): State<AppState>,
    call: Counted,
    ApiJson(req): ApiJson<VerifyLink>,
) -> Result<Json<SignupView>, ApiError> {
    well_formed(&req.session_id)?;
    Ok(Json(
        state
            .services
            .signups
            .verify_link(&req.session_id, &req.token, call.request_id)
            .await?,
    ))
}

/// The review queue: signups in a status (default `review`), oldest change first, with their
/// answers, risk score and reasons.
#[utoipa::path(get, path = "/api/v1/signups", tag = "signup", params(SignupQuery),
    responses(
        (status = 200, body = SignupList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: a bad status, limit or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn queue(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<SignupQuery>,
) -> Result<Json<SignupList>, ApiError> {
    Ok(Json(state.services.signups.list(&actor, &q).await?))
}

/// One signup: its answers, risk score and reasons, and its decision.
#[utoipa::path(get, path = "/api/v1/signups/{signup_id}", tag = "signup",
    params(("signup_id" = String, Path, description = "The signup's id")),
    responses(
        (status = 200, body = SignupDetail),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_not_found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn detail(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(signup_id): ApiPath<String>,
) -> Result<Json<SignupDetail>, ApiError> {
    Ok(Json(state.services.signups.show(&actor, &signup_id).await?))
}

/// Approve a signup in review: its customer is made through the onboarding run, with an id
/// derived from the company name (or the one given) and the template's tier (or the one given).
#[utoipa::path(post, path = "/api/v1/signups/{signup_id}/approve", tag = "signup",
    params(("signup_id" = String, Path, description = "The signup's id")),
    request_body = ApproveSignup,
    responses(
        (status = 200, body = ApprovedSignup),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "signup_not_in_review (decided already, or not completed), customer_exists, signup_changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: the customer the answers make breaks a rule (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(signup_id): ApiPath<String>,
    ApiJson(req): ApiJson<ApproveSignup>,
) -> Result<Json<ApprovedSignup>, ApiError> {
    Ok(Json(
        state
            .services
            .signups
            .approve(&actor, &signup_id, &req)
            .await?,
    ))
}

/// Reject a signup in review, with the reason.
#[utoipa::path(post, path = "/api/v1/signups/{signup_id}/reject", tag = "signup",
    params(("signup_id" = String, Path, description = "The signup's id")),
    request_body = RejectSignup,
    responses(
        (status = 200, body = SignupDetail),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "signup_not_in_review or signup_changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: reason", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(signup_id): ApiPath<String>,
    ApiJson(req): ApiJson<RejectSignup>,
) -> Result<Json<SignupDetail>, ApiError> {
    Ok(Json(
        state
            .services
            .signups
            .reject(&actor, &signup_id, &req)
            .await?,
    ))
}

/// The signup funnel: of the sessions started since a time (default 30 days ago), how many
/// reached, completed, abandoned or let expire each step, and the completion rate.
#[utoipa::path(get, path = "/api/v1/signups/funnel", tag = "signup", params(FunnelQuery),
    responses(
        (status = 200, body = SignupFunnel),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "signup_closed: the product has no wizard", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn funnel(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<FunnelQuery>,
) -> Result<Json<SignupFunnel>, ApiError> {
    Ok(Json(state.services.signups.funnel(&actor, &q).await?))
}
