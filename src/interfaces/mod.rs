//! The interfaces: thin layers that parse input, call a service and render the answer.
//! None of them touches the store.

/// Turns every capability's own error into an interface's error type through the
/// [`crate::services::ServiceError`] it converts to, so each interface keeps one mapping (HTTP
/// status, exit code) by kind. A new capability adds its error here once.
macro_rules! from_capability_errors {
    ($target:ty, $wrap:path) => {
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::tokens::TokenError);
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::audit::AuditError);
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::keys::KeyError);
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::credentials::VaultError);
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::datasets::DataError);
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::onboarding::RunError);
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::customers::CustomerError);
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::signups::SignupError);
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::email::EmailError);
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::accounts::AccountError);
        $crate::interfaces::from_capability_errors!(@one $target, $wrap, crate::services::billing::BillingError);
    };
    (@one $target:ty, $wrap:path, $error:ty) => {
        impl From<$error> for $target {
            fn from(e: $error) -> Self {
                $wrap(e.into())
            }
        }
    };
}
pub(crate) use from_capability_errors;

pub mod cli;
pub mod http;
pub mod mcp;
pub mod problem;
