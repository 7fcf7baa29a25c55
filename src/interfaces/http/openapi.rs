//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{billing, credentials, customers, keys, meta, onboarding, portal, signup, tenant};

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Onramp API", description = "Customer onboarding and tenant lifecycle"),
    paths(
        customers::onboard, customers::list, customers::show, customers::update, customers::offboard,
        customers::customer_audit, onboarding::status, onboarding::retry, onboarding::check,
        onboarding::query, onboarding::config, credentials::store, credentials::list,
        credentials::versions, credentials::change_version, credentials::validate,
        credentials::revoke, credentials::value, credentials::due, keys::issue, keys::list,
        keys::rotate, keys::revoke, tenant::exchange, tenant::me, tenant::rotate_own_key, tenant::upload, meta::industries, meta::audit,
        meta::health, meta::emails, signup::start, signup::show, signup::step, signup::abandon,
        signup::verify, signup::resend, signup::complete, signup::verify_link, signup::queue,
        signup::detail, signup::approve, signup::reject, signup::funnel, portal::login,
        portal::logout, portal::me, portal::change_password, portal::request_reset,
        portal::confirm_reset, portal::accept, portal::list, portal::invite, portal::remove,
        billing::plans, billing::create_test_clock, billing::test_clocks, billing::test_clock,
        billing::advance_test_clock, billing::start_trial, billing::trial, billing::activate_trial,
        billing::extend_trial, billing::convert_trial, billing::subscribe, billing::subscription,
        billing::preview_change, billing::change_subscription, billing::cancel_subscription, billing::unschedule_subscription,
        billing::record_usage, billing::record_my_usage, billing::usage, billing::check_entitlement,
        billing::my_entitlement,
    ),
    components(schemas(crate::domain::FieldError, crate::domain::CustomerStatus)),
    modifiers(&BearerAuth),
    tags(
        (name = "customers", description = "The customer registry"),
        (name = "onboarding", description = "Onboarding runs, checklists, datasets"),
        (name = "credentials", description = "The credentials vault"),
        (name = "integration keys", description = "Customers' machine keys"),
        (name = "audit", description = "The hash-chained event log"),
        (name = "product", description = "The product's configuration"),
        (name = "operations", description = "Health"),
        (name = "signup", description = "The public self-serve signup wizard"),
        (name = "billing", description = "Plans, trials, subscriptions, usage and entitlements"),
        (name = "portal", description = "Customer accounts: login, passwords, invitations, users"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An admin token from `onramp admin token create`"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document as served: the handlers' annotations with the product's rules and the
/// server's shared responses and bounds written in.
pub fn document(product: &crate::product::Product) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    super::openapi_rules::apply(&mut doc, product);
    doc
}
