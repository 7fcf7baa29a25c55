//! The integration tests: one binary, one module per area, so a fresh `cargo test` links the
//! crate and its dependencies once. Backend-generic tests run on SQLite and PostgreSQL through
//! `on_both_backends!`, which names them `<module>::sqlite::<test>` and
//! `<module>::postgres::<test>`.

#[macro_use]
mod common;

mod accounts;
mod api;
mod billing;
mod cli;
mod crash;
mod credentials;
mod email;
mod integration_keys;
mod jobs;
mod layout;
mod mcp;
mod onboarding_runs;
mod seed_growthnav;
mod seed_paidsocialnav;
mod seed_policycortex;
mod seed_waooaw;
mod signup;
mod signup_review;
mod store_conformance;
mod tenant_isolation;
mod token_exchange;
