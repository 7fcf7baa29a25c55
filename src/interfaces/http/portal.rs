//! The customer portal's account routes: login, the session's user, password change, reset by
//! emailed link and accepting an invitation (public, counted against the client address), and
//! a customer's users (`/customers/{id}/users`), managed by operators with an admin token or by
//! the customer's own owners and admins with a portal session
//! (`Authorization: Bearer onr_ps_...`), which reaches its own customer only.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use super::auth::{bearer, Authenticated};
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiPath};
use super::AppState;
use crate::services::accounts::{
    AcceptInvitation, AccountError, Caller, ChangePassword, InviteUser, LoginRequest, PortalLogin,
    PortalMe, PortalPrincipal, ResetConfirm, ResetRequest, UserList, UserView,
};
use crate::services::Actor;

/// The portal's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/login", post(login))
        .route("/portal/logout", post(logout))
        .route("/portal/me", get(me))
        .route("/portal/password", post(change_password))
        .route("/portal/password-reset", post(request_reset))
        .route("/portal/password-reset/confirm", post(confirm_reset))
        .route("/portal/invitations/accept", post(accept))
        .route("/customers/{customer_id}/users", get(list).post(invite))
        .route("/customers/{customer_id}/users/{user_id}", delete(remove))
}

/// A public portal call, counted against the caller's address before its body is read.
pub struct PortalCounted;

impl FromRequestParts<AppState> for PortalCounted {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let address = state.client_address(parts);
        state
            .portal_limiter
            .check(address, None)
            .map_err(|limited| {
                tracing::warn!(address = ?address, "portal rate limited");
                ApiError::RateLimited {
                    detail: format!(
                        "too many portal requests from this address; retry in {} s",
                        limited.retry_after_secs
                    ),
                    retry_after_secs: limited.retry_after_secs,
                }
            })?;
        Ok(Self)
    }
}

/// A request with a portal session.
pub struct PortalSession(pub PortalPrincipal);

impl FromRequestParts<AppState> for PortalSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).map_err(|_| AccountError::BadSession)?;
        Ok(Self(state.services.accounts.authenticate(token).await?))
    }
}

/// An operator (admin token) or a customer's user (portal session), by the token's prefix.
pub enum Manager {
    /// An admin token.
    Operator(Actor),
    /// A portal session.
    User(PortalPrincipal),
}

impl Manager {
    fn caller(&self) -> Caller<'_> {
        match self {
            Manager::Operator(a) => Caller::Operator(a),
            Manager::User(p) => Caller::User(p),
        }
    }
}

impl FromRequestParts<AppState> for Manager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if bearer(&parts.headers)?.starts_with("onr_ps_") {
            let PortalSession(p) = PortalSession::from_request_parts(parts, state).await?;
            Ok(Manager::User(p))
        } else {
            let Authenticated(a) = Authenticated::from_request_parts(parts, state).await?;
            Ok(Manager::Operator(a))
        }
    }
}

/// Sign in with an email and a password. After a temporary password the answer says
/// `password_change_required`, and the session works only for `/portal/me`,
/// `/portal/password` and `/portal/logout` until the password is changed.
#[utoipa::path(post, path = "/api/v1/portal/login", tag = "portal",
    request_body = LoginRequest,
    responses(
        (status = 200, body = PortalLogin),
        (status = 401, description = "invalid_credentials (the email or the password is wrong; which, is not said) or temporary_password_expired", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "customer_offboarded", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: a malformed email, an empty or overlong password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "login_locked (five failed logins in a row lock the address, 30 s doubling to an hour) or rate_limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    _: PortalCounted,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<PortalLogin>, ApiError> {
    Ok(Json(state.services.accounts.login(&req).await?))
}

/// End this portal session.
#[utoipa::path(post, path = "/api/v1/portal/logout", tag = "portal",
    responses(
        (status = 204, description = "the session has ended"),
        (status = 401, description = "no session opens with the token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    PortalSession(p): PortalSession,
) -> Result<StatusCode, ApiError> {
    state.services.accounts.logout(&p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user and their customer.
#[utoipa::path(get, path = "/api/v1/portal/me", tag = "portal",
    responses(
        (status = 200, body = PortalMe),
        (status = 401, description = "no session opens with the token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn me(
    State(state): State<AppState>,
    PortalSession(p): PortalSession,
) -> Result<Json<PortalMe>, ApiError> {
    Ok(Json(state.services.accounts.me(&p).await?))
}

/// Change the password, knowing the current one (the temporary one at first login). Every
/// other session of the user ends.
#[utoipa::path(post, path = "/api/v1/portal/password", tag = "portal",
    request_body = ChangePassword,
    responses(
        (status = 200, body = UserView),
        (status = 401, description = "no session opens with the token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: current_password wrong, new_password too short, too long, guessable or unchanged", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn change_password(
    State(state): State<AppState>,
    PortalSession(p): PortalSession,
    ApiJson(req): ApiJson<ChangePassword>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        state.services.accounts.change_password(&p, &req).await?,
    ))
}

/// Ask for a password reset link by email. Always 202, whether or not the address has an
/// account; a user gets at most five links a day.
#[utoipa::path(post, path = "/api/v1/portal/password-reset", tag = "portal",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "if the address has an account, a reset link is on its way"),
        (status = 422, description = "validation_failed: a malformed email", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn request_reset(
    State(state): State<AppState>,
    _: PortalCounted,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    state.services.accounts.request_reset(&req).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Choose a new password with a reset link's token. The link is spent and every session of the
/// user ends.
#[utoipa::path(post, path = "/api/v1/portal/password-reset/confirm", tag = "portal",
    request_body = ResetConfirm,
    responses(
        (status = 204, description = "the password is changed"),
        (status = 422, description = "validation_failed: token invalid or expired, new_password breaks a rule", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn confirm_reset(
    State(state): State<AppState>,
    _: PortalCounted,
    ApiJson(req): ApiJson<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    state.services.accounts.confirm_reset(&req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation (or a welcome link) by choosing a password; the answer is a session.
#[utoipa::path(post, path = "/api/v1/portal/invitations/accept", tag = "portal",
    request_body = AcceptInvitation,
    responses(
        (status = 200, body = PortalLogin),
        (status = 403, description = "customer_offboarded", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: token invalid or expired, password breaks a rule", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn accept(
    State(state): State<AppState>,
    _: PortalCounted,
    ApiJson(req): ApiJson<AcceptInvitation>,
) -> Result<Json<PortalLogin>, ApiError> {
    Ok(Json(state.services.accounts.accept(&req).await?))
}

/// A customer's users: operators (any role), or the customer's own users.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/users", tag = "portal",
    params(("customer_id" = String, Path, description = "The customer")),
    responses(
        (status = 200, body = UserList),
        (status = 401, description = "no token opens this", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "password_change_required", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found (another customer's reads the same)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    who: Manager,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<UserList>, ApiError> {
    Ok(Json(
        state
            .services
            .accounts
            .list(who.caller(), &customer_id)
            .await?,
    ))
}

/// Invite a user: operators (operator role) or the customer's owners and admins (an admin
/// cannot invite an owner). The invitation email carries a link to choose a password.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/users", tag = "portal",
    params(("customer_id" = String, Path, description = "The customer")),
    request_body = InviteUser,
    responses(
        (status = 201, body = UserView),
        (status = 401, description = "no token opens this", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (the role cannot invite this role), password_change_required or customer_offboarded", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "user_exists (the email has an account) or user_limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: email, role or name", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn invite(
    State(state): State<AppState>,
    who: Manager,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<InviteUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state
        .services
        .accounts
        .invite(who.caller(), &customer_id, &req)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Remove a user and end their sessions: operators (operator role), owners, and admins (not an
/// owner). The last owner stays.
#[utoipa::path(delete, path = "/api/v1/customers/{customer_id}/users/{user_id}", tag = "portal",
    params(
        ("customer_id" = String, Path, description = "The customer"),
        ("user_id" = String, Path, description = "The user"),
    ),
    responses(
        (status = 204, description = "the user is gone"),
        (status = 401, description = "no token opens this", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden or password_change_required", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found or user_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "last_owner or user_changed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    who: Manager,
    ApiPath((customer_id, user_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .accounts
        .remove(who.caller(), &customer_id, &user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
