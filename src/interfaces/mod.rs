//! The interfaces: thin layers that parse input, call a service and render the answer.
//! None of them touches the store.

pub mod cli;
pub mod http;
pub mod mcp;
pub mod problem;
