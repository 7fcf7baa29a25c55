//! Onramp: a self-hosted customer onboarding and tenant lifecycle platform.
//!
//! The crate is laid out by layer, each depending only on those before it:
//! [`domain`] (pure rules), [`product`] (the product file), [`store`] (persistence, SQL only
//! here), [`services`] (use cases), [`jobs`] (background work) and [`interfaces`] (HTTP API,
//! MCP and CLI).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod domain;
pub mod interfaces;
pub mod jobs;
pub mod product;
pub mod services;
pub mod store;
