//! Onramp: a self-hosted customer onboarding and tenant lifecycle platform.
//!
//! The crate is laid out by layer, each depending only on those before it:
//! [`domain`] (pure rules), [`product`] (the product file), [`store`] (persistence, SQL only
//! here), [`services`] (use cases), [`jobs`] (background work) and [`interfaces`] (HTTP API,
//! MCP and CLI).
//!
//! Every capability takes the same shape across the layers; integration keys are the worked
//! example: domain rules (`domain::integration_key`), tables (one migration per backend), a
//! store trait (`store::keys`) whose portable SQL is written once (`store::sql`), a service type
//! that owns its dependencies and its error enum (`services::keys::IntegrationKeys`,
//! `KeyError` with `kind()` and `code()`), events in the catalog (`domain::events`), background
//! work as a job (`jobs`), and thin routes, MCP tools and CLI commands that parse input, call
//! the service and map its error by kind in one place per interface.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod domain;
pub mod interfaces;
pub mod jobs;
pub mod product;
pub mod services;
pub mod store;
