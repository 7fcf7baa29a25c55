//! The MCP server: tools and resources named as in the GrowthNav seed, for operators' AI agents.
//! `onramp mcp` serves it over stdio; `onramp serve` mounts it as streamable HTTP at `/mcp`,
//! behind the API's bearer tokens. Every call goes through the same services, roles and problem
//! codes as the HTTP API.

mod args;
mod output;
mod resources;
pub mod tools;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use std::sync::Arc;
use std::time::Instant;

use crate::interfaces::problem::Problem;
use crate::services::{Actor, ServiceError, Services};

const INSTRUCTIONS: &str = "Onramp onboards a SaaS product's customers and keeps their registry. \
Check a customer with get_customer before onboarding it (null means it does not exist), find \
customers with list_customers_by_industry or list_customers, onboard with onboard_customer, follow \
a run with get_onboarding_status, check a dataset with query_dataset (`SELECT 1 AS test`), and read \
customer://{customer_id}/config for a customer's resolved configuration. Refusals are results with \
isError set and the API's problem object: `code`, `detail`, and `errors` naming each bad field.";

/// Who the agent is.
#[derive(Clone)]
enum Identity {
    /// Stdio: the operator who started the process, with the role they chose.
    Fixed(Actor),
    /// HTTP: the actor the `/mcp` route authenticated, carried in the request's extensions.
    PerRequest,
}

/// The MCP server over the services.
#[derive(Clone)]
pub struct OnrampMcp {
    services: Services,
    identity: Identity,
}

impl OnrampMcp {
    /// A server that acts as `actor` on every call (stdio).
    pub fn for_actor(services: Services, actor: Actor) -> Self {
        Self {
            services,
            identity: Identity::Fixed(actor),
        }
    }

    /// A server that acts as whoever each HTTP request authenticated as.
    pub fn per_request(services: Services) -> Self {
        Self {
            services,
            identity: Identity::PerRequest,
        }
    }

    fn actor(&self, context: &RequestContext<RoleServer>) -> Result<Actor, ServiceError> {
        match &self.identity {
            Identity::Fixed(actor) => Ok(actor.clone()),
            Identity::PerRequest => context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Actor>())
                .cloned()
                .ok_or(ServiceError::Unauthenticated(
                    "missing Authorization: Bearer <token> header",
                )),
        }
    }

    fn visible_tools(&self, actor: &Actor) -> Vec<Tool> {
        tools::TOOLS
            .iter()
            .filter(|t| actor.role.allows(t.role))
            .map(tools::ToolSpec::tool)
            .collect()
    }
}

/// A problem as a tool result: `isError`, the problem object as structured content.
fn error_result(problem: &Problem) -> CallToolResult {
    CallToolResult::structured_error(serde_json::to_value(problem).unwrap_or_default())
}

impl ServerHandler for OnrampMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("onramp", env!("CARGO_PKG_VERSION"))
                .with_title(format!("Onramp: {} onboarding", self.services.product.name)),
        )
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let actor = self
            .actor(&context)
            .map_err(|e| ErrorData::invalid_request(e.to_string(), None))?;
        Ok(ListToolsResult::with_all_items(self.visible_tools(&actor)))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::find(name).map(tools::ToolSpec::tool)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(spec) = tools::find(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool '{}'", request.name),
                None,
            ));
        };
        let actor = match self.actor(&context) {
            Ok(a) => a,
            Err(e) => return Ok(error_result(&Problem::from(&e)).into()),
        };
        let started = Instant::now();
        let arguments = request.arguments.unwrap_or_default();
        let outcome = tools::call(&self.services, &actor, spec, arguments).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(match outcome {
            Ok(value) => {
                tracing::info!(tool = spec.name, actor = %actor.name, elapsed_ms, "mcp tool call");
                CallToolResult::structured(value)
            }
            Err(problem) => {
                tracing::info!(tool = spec.name, actor = %actor.name, elapsed_ms, code = %problem.code, "mcp tool call refused");
                error_result(&problem)
            }
        }
        .into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let actor = self
            .actor(&context)
            .map_err(|e| ErrorData::invalid_request(e.to_string(), None))?;
        resources::read(&self.services, &actor, &request.uri)
            .await
            .map(Into::into)
    }
}

/// Serves MCP over stdin and stdout until the client closes stdin. Nothing but protocol is
/// written to stdout; logs go to stderr.
pub async fn serve_stdio(services: Services, actor: Actor) -> anyhow::Result<()> {
    tracing::info!(actor = %actor.name, role = %actor.role, product = %services.product.name, "onramp MCP server on stdio");
    let running = OnrampMcp::for_actor(services, actor)
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}

/// The streamable HTTP service mounted at `/mcp`. Stateless: every POST carries its own bearer
/// token, so any `onramp serve` process behind a load balancer can answer any request.
pub fn http_service(
    services: Services,
    allowed_hosts: Vec<String>,
    max_body_bytes: usize,
) -> StreamableHttpService<OnrampMcp, NeverSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(max_body_bytes);
    config = if allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(allowed_hosts)
    };
    StreamableHttpService::new(
        move || Ok(OnrampMcp::per_request(services.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}
