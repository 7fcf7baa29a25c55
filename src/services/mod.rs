//! The use cases: onboarding and managing customers, the audit log, admin tokens and legacy
//! tenants. Interfaces (HTTP, CLI) call these and nothing below them. Every mutation checks the
//! actor's role here, so every interface enforces the same rules.

pub mod audit;
pub mod clock;
pub mod customers;
mod error;
pub mod legacy;
pub mod tokens;
pub mod views;

use std::sync::Arc;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::ServiceError;

use crate::domain::Role;
use crate::product::Product;
use crate::store::Store;

/// Who is acting, with what role, in which request.
#[derive(Debug, Clone)]
pub struct Actor {
    /// How the event log names the actor: `token:<id>` or `cli:<user>`.
    pub name: String,
    /// What the actor may do.
    pub role: Role,
    /// The request being served, for the event log.
    pub request_id: Option<String>,
}

impl Actor {
    /// The local operator at the CLI, who owns the data dir and so has every right.
    pub fn cli() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
        Self {
            name: format!("cli:{user}"),
            role: Role::Admin,
            request_id: None,
        }
    }

    /// Refuses unless the actor's role includes `required`.
    pub fn require(&self, required: Role) -> Result<(), ServiceError> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden {
                required,
                actual: self.role,
            })
        }
    }
}

/// Everything the use cases need, cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// The registry.
    pub store: Arc<dyn Store>,
    /// The product being onboarded to.
    pub product: Arc<Product>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    legacy: Arc<legacy::LegacyTenants>,
}

impl Services {
    /// Wires the services over a store and a product, loading the product's legacy tenants.
    pub fn new(
        store: Arc<dyn Store>,
        product: Product,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServiceError> {
        let legacy = legacy::LegacyTenants::load(&product)?;
        Ok(Self {
            store,
            product: Arc::new(product),
            clock,
            legacy: Arc::new(legacy),
        })
    }
}
