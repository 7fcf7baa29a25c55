//! The MCP tools, named as in the GrowthNav seed: each with a typed input (its JSON Schema is
//! generated from the struct below, field descriptions included), truthful hints, the role it
//! needs, and a structured JSON result. A refusal is the API's problem object.

use std::sync::Arc;

use axum::http::StatusCode;
use rmcp::handler::server::common::schema_for_input;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{args, output};
use crate::domain::Role;
use crate::interfaces::problem::Problem;
use crate::services::accounts::{Caller, InviteUser, UserList, UserView};
use crate::services::billing::{
    AdvanceTestClock, CancelSubscription, ChangePreview, ChangeSubscription, Entitlement,
    EntitlementCheck, ExtendTrial, NewSubscription, PreviewQuery, Sender, StartTrial,
    SubscriptionView, TestClockView, TrialView, UsageBatch, UsageResults, UsageView,
};
use crate::services::credentials::PutCredential;
use crate::services::credentials::{CredentialList, CredentialView};
use crate::services::customers::CustomerError;
use crate::services::customers::OffboardResult;
use crate::services::customers::{ListQuery, OffboardRequest, OnboardRequest, UpdateRequest};
use crate::services::onboarding::OnboardingStatus;
use crate::services::signups::{
    ApproveSignup, ApprovedSignup, RejectSignup, SignupDetail, SignupList, SignupQuery,
};
use crate::services::views::{CustomerList, CustomerView, OnboardResponse, OnboardingResult};
use crate::services::{Actor, ServiceError, Services};
use crate::store::datasets::QueryResult;

/// One customer, by id.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CustomerIdArgs {
    /// The customer's id, such as `acme_corp`.
    pub customer_id: String,
}

/// One industry.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct IndustryArgs {
    /// An industry id of the product, such as `golf` or `ecommerce` (the `industries://list`
    /// resource lists them).
    pub industry: String,
}

/// The onboarding's own arguments, beside the request.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct IdempotencyArgs {
    /// Makes a retried call safe: the same key and arguments return the first result instead of
    /// onboarding twice.
    pub idempotency_key: Option<String>,
}

/// A customer to onboard: the GrowthNav `OnboardingRequest`.
#[derive(JsonSchema)]
pub struct OnboardArgs {
    #[serde(flatten)]
    _own: IdempotencyArgs,
    #[serde(flatten)]
    _request: OnboardRequest,
}

/// Which customer to change, and the version it must still be at.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateTarget {
    /// The customer's id.
    pub customer_id: String,
    /// Refuse (`version_mismatch`) unless the customer is still at this version, the `version`
    /// last read.
    pub expected_version: Option<i64>,
}

/// A change to a customer: only the fields present change.
#[derive(JsonSchema)]
pub struct UpdateArgs {
    #[serde(flatten)]
    _target: UpdateTarget,
    #[serde(flatten)]
    _changes: UpdateRequest,
}

/// A customer to offboard.
#[derive(JsonSchema)]
pub struct OffboardArgs {
    #[serde(flatten)]
    _target: CustomerIdArgs,
    #[serde(flatten)]
    _request: OffboardRequest,
}

/// A read-only statement to run in a customer's dataset.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct QueryArgs {
    /// The customer's id.
    pub customer_id: String,
    /// Exactly one read-only SQL statement, such as `SELECT 1 AS test`. It sees only this
    /// customer's dataset, runs at most the product's time limit and returns at most its row
    /// limit.
    pub sql: String,
}

/// A manual checklist item to mark done.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChecklistArgs {
    /// The customer's id.
    pub customer_id: String,
    /// The checklist item's id, as `get_onboarding_status` lists it.
    pub item: String,
}

/// A credential to store: the value is write-only.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct StoreCredentialArgs {
    /// The customer's id.
    pub customer_id: String,
    /// The credential type, one of the product's (such as `meta_access_token`).
    #[serde(rename = "type")]
    pub credential_type: String,
}

/// A credential to store.
#[derive(JsonSchema)]
pub struct StoreCredentialSchema {
    #[serde(flatten)]
    _target: StoreCredentialArgs,
    #[serde(flatten)]
    _value: PutCredential,
}

/// Arguments naming a signup.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupIdArgs {
    /// The signup's id (`su_` and 32 hex digits).
    pub signup_id: String,
}

/// Arguments of `list_signups`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupListArgs {
    /// review (default), approved, rejected, in_progress, abandoned or expired.
    #[serde(default)]
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Arguments of `approve_signup`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveSignupArgs {
    /// The signup's id.
    pub signup_id: String,
    /// The customer id to give (default: derived from the company name).
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The tier to give (default: the template's).
    #[serde(default)]
    pub usage_tier: Option<String>,
}

/// Arguments of `reject_signup`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectSignupArgs {
    /// The signup's id.
    pub signup_id: String,
    /// Why, for the record (1 to 500 characters).
    pub reason: String,
}

/// Arguments of `invite_user`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteUserArgs {
    /// The customer.
    pub customer_id: String,
    /// Where the invitation goes; the user's login.
    pub email: String,
    /// owner, admin or member.
    pub role: String,
    /// The user's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A trial to start.
#[derive(JsonSchema)]
pub struct StartTrialSchema {
    #[serde(flatten)]
    _target: CustomerIdArgs,
    #[serde(flatten)]
    _trial: StartTrial,
}

/// An extension.
#[derive(JsonSchema)]
pub struct ExtendTrialSchema {
    #[serde(flatten)]
    _target: CustomerIdArgs,
    #[serde(flatten)]
    _extension: ExtendTrial,
}

/// A subscription to make.
#[derive(JsonSchema)]
pub struct SubscribeSchema {
    #[serde(flatten)]
    _target: CustomerIdArgs,
    #[serde(flatten)]
    _subscription: NewSubscription,
}

/// A change of plan or cycle.
#[derive(JsonSchema)]
pub struct ChangeSubscriptionSchema {
    #[serde(flatten)]
    _target: CustomerIdArgs,
    #[serde(flatten)]
    _change: ChangeSubscription,
}

/// A cancellation.
#[derive(JsonSchema)]
pub struct CancelSubscriptionSchema {
    #[serde(flatten)]
    _target: CustomerIdArgs,
    #[serde(flatten)]
    _cancel: CancelSubscription,
}

/// Arguments of `preview_subscription_change`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewArgs {
    /// The customer.
    pub customer_id: String,
    /// The plan a change would go to (the current one when absent).
    #[serde(default)]
    pub plan: Option<String>,
    /// The cycle (the current one when absent).
    #[serde(default)]
    pub cycle: Option<String>,
}

/// A test clock, by id.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TestClockArgs {
    /// The clock's id (`tc_` and 32 hex digits).
    pub test_clock_id: String,
}

/// An advance of a test clock.
#[derive(JsonSchema)]
pub struct AdvanceSchema {
    #[serde(flatten)]
    _target: TestClockArgs,
    #[serde(flatten)]
    _advance: AdvanceTestClock,
}

/// What a tool is, whom it is for, and how it behaves.
pub struct ToolSpec {
    /// The tool's name.
    pub name: &'static str,
    /// A title for people.
    pub title: &'static str,
    /// What it does, for the agent.
    pub description: &'static str,
    /// The least role that may call it.
    pub role: Role,
    /// It changes nothing.
    pub read_only: bool,
    /// It may remove or overwrite data.
    pub destructive: bool,
    /// Calling it again with the same arguments changes nothing more.
    pub idempotent: bool,
    schema: fn() -> Result<Arc<JsonObject>, String>,
    output: fn() -> Arc<JsonObject>,
}

impl ToolSpec {
    /// The input schema.
    pub fn input_schema(&self) -> Arc<JsonObject> {
        (self.schema)().unwrap_or_else(|e| panic!("input schema of {}: {e}", self.name))
    }

    /// The output schema: what `structuredContent` holds when the call succeeds.
    pub fn output_schema(&self) -> Arc<JsonObject> {
        (self.output)()
    }

    /// The MCP description of the tool.
    pub fn tool(&self) -> Tool {
        Tool::new(self.name, self.description, self.input_schema())
            .with_raw_output_schema(self.output_schema())
            .with_title(self.title)
            .with_annotations(
                ToolAnnotations::with_title(self.title)
                    .read_only(self.read_only)
                    .destructive(self.destructive)
                    .idempotent(self.idempotent)
                    .open_world(false),
            )
    }
}

/// Every tool, in the order they are listed.
pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "get_customer",
        title: "Get a customer",
        description: "A customer's registry record (id, name, industry, status, tags, attributes, \
                      dataset). Returns null, not an error, when no such customer exists.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<CustomerIdArgs>,
        output: || output::optional::<CustomerView>("customer"),
    },
    ToolSpec {
        name: "list_customers_by_industry",
        title: "List customers by industry",
        description: "Every customer in an industry that has not been deleted, whatever its \
                      status, ordered by id.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<IndustryArgs>,
        output: output::items::<CustomerView>,
    },
    ToolSpec {
        name: "list_customers",
        title: "List customers",
        description: "A page of customers, filtered by status (default active), industry, tag \
                      or name. Pass next_cursor back as cursor for the next page.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<ListQuery>,
        output: output::object::<CustomerList>,
    },
    ToolSpec {
        name: "get_onboarding_status",
        title: "Get onboarding status",
        description: "A customer's latest onboarding run (status, every step with its attempts, \
                      times and error) and its checklist of automatic and manual items.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<CustomerIdArgs>,
        output: output::object::<OnboardingStatus>,
    },
    ToolSpec {
        name: "query_dataset",
        title: "Query a customer's dataset",
        description: "Runs one read-only SQL statement inside the customer's own dataset and \
                      returns columns, rows, row_count and truncated. Writes, other datasets and \
                      the registry are refused. `SELECT 1 AS test` checks the dataset answers.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<QueryArgs>,
        output: output::object::<QueryResult>,
    },
    ToolSpec {
        name: "list_credentials",
        title: "List a customer's credentials",
        description:
            "A customer's stored credentials: type, status, current version, fingerprint, \
                      scopes, last validation and rotation deadline, and the required types it \
                      lacks. Never a value.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<CustomerIdArgs>,
        output: output::object::<CredentialList>,
    },
    ToolSpec {
        name: "store_credential",
        title: "Store a credential",
        description: "Stores a new version of a customer's credential, encrypted at rest, checked \
                      against the type's format and scopes. Write-only: nothing ever returns the \
                      value; the result is its metadata.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: false,
        schema: schema_for_input::<StoreCredentialSchema>,
        output: output::object::<CredentialView>,
    },
    ToolSpec {
        name: "onboard_customer",
        title: "Onboard a customer",
        description: "Validates and registers a customer, provisions and verifies its dataset, \
                      and activates it. Returns the customer and the onboarding run (run_id, \
                      status, is_success, dataset_id, duration_seconds, errors, steps).",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: false,
        schema: schema_for_input::<OnboardArgs>,
        output: output::object::<OnboardResponse>,
    },
    ToolSpec {
        name: "update_customer",
        title: "Update a customer",
        description: "Changes a customer's name, tags, attributes, contact, tier or status \
                      (through the status machine). Only the fields given change; an attribute \
                      set to null is removed.",
        role: Role::Operator,
        read_only: false,
        destructive: true,
        idempotent: true,
        schema: schema_for_input::<UpdateArgs>,
        output: output::object::<CustomerView>,
    },
    ToolSpec {
        name: "retry_onboarding",
        title: "Retry an onboarding",
        description: "Resumes a stuck onboarding run, or starts a new run for a customer whose \
                      onboarding failed. Refused when the onboarding succeeded.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: false,
        schema: schema_for_input::<CustomerIdArgs>,
        output: output::object::<OnboardingResult>,
    },
    ToolSpec {
        name: "complete_checklist_item",
        title: "Complete a checklist item",
        description: "Marks one of the product's manual onboarding checklist items done for a \
                      customer, recording who and when.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<ChecklistArgs>,
        output: output::object::<OnboardingStatus>,
    },
    ToolSpec {
        name: "offboard_customer",
        title: "Offboard a customer",
        description: "Marks a customer inactive and keeps its data; with delete_data (and \
                      confirm equal to the customer id) exports the dataset if asked, drops it, \
                      leaves a deleted tombstone and returns a deletion receipt.",
        role: Role::Operator,
        read_only: false,
        destructive: true,
        idempotent: false,
        schema: schema_for_input::<OffboardArgs>,
        output: output::object::<OffboardResult>,
    },
    ToolSpec {
        name: "list_signups",
        title: "List signups",
        description: "The signup review queue: signups in a status (review by default), oldest \
                      change first, each with its answers, risk score and reasons.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<SignupListArgs>,
        output: output::object::<SignupList>,
    },
    ToolSpec {
        name: "get_signup",
        title: "Get a signup",
        description: "One signup: its answers, risk score and reasons (each signal with its \
                      weight and what was seen), and its decision.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<SignupIdArgs>,
        output: output::object::<SignupDetail>,
    },
    ToolSpec {
        name: "approve_signup",
        title: "Approve a signup",
        description: "Approves a signup in review: its customer is made through the onboarding \
                      run, with an id derived from the company name (or the one given) and the \
                      template's tier (or the one given). Refused for a signup not in review.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: false,
        schema: schema_for_input::<ApproveSignupArgs>,
        output: output::object::<ApprovedSignup>,
    },
    ToolSpec {
        name: "reject_signup",
        title: "Reject a signup",
        description: "Rejects a signup in review, recording the reason; the decision is final.",
        role: Role::Operator,
        read_only: false,
        destructive: true,
        idempotent: false,
        schema: schema_for_input::<RejectSignupArgs>,
        output: output::object::<SignupDetail>,
    },
    ToolSpec {
        name: "list_users",
        title: "List a customer's users",
        description: "A customer's portal users, oldest first: email, role (owner, admin, \
                      member), status (invited, active), whether a temporary password must \
                      still be changed, and the last login.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<CustomerIdArgs>,
        output: output::object::<UserList>,
    },
    ToolSpec {
        name: "invite_user",
        title: "Invite a user",
        description: "Invites a person to a customer's portal with a role; the invitation email \
                      carries a link to choose a password. Refused for an email that already \
                      has an account.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: false,
        schema: schema_for_input::<InviteUserArgs>,
        output: output::object::<UserView>,
    },
    ToolSpec {
        name: "get_trial",
        title: "Get a customer's trial",
        description: "A customer's trial: status (pending, active, extended, converted, \
                      expired), when it ends, its grace, the next work its clock brings, its \
                      limits, the extensions left and the actions available.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<CustomerIdArgs>,
        output: output::object::<TrialView>,
    },
    ToolSpec {
        name: "start_trial",
        title: "Start a trial",
        description: "Starts a customer's one trial on a plan (the product's trial plan by \
                      default) for its days; pending until the product's activate_on happens, \
                      or active at once when it already has.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: false,
        schema: schema_for_input::<StartTrialSchema>,
        output: output::object::<TrialView>,
    },
    ToolSpec {
        name: "extend_trial",
        title: "Extend a trial",
        description: "Gives a trial more days with a reason; refused past the product's \
                      max_extensions.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: false,
        schema: schema_for_input::<ExtendTrialSchema>,
        output: output::object::<TrialView>,
    },
    ToolSpec {
        name: "get_subscription",
        title: "Get a customer's subscription",
        description: "A customer's live subscription: plan, cycle, status, price per period, \
                      current period, renewal, pending change and the actions available.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<CustomerIdArgs>,
        output: output::object::<SubscriptionView>,
    },
    ToolSpec {
        name: "subscribe_customer",
        title: "Subscribe a customer",
        description: "Subscribes a customer to a plan on one of its cycles, billed from now; a \
                      trial it has running is converted.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: false,
        schema: schema_for_input::<SubscribeSchema>,
        output: output::object::<SubscriptionView>,
    },
    ToolSpec {
        name: "preview_subscription_change",
        title: "Preview a change of plan",
        description: "The proration lines and total a change of plan or cycle made now would \
                      give (the unused time credited at the old price, the rest charged at the \
                      new one, to the second), without making it.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<PreviewArgs>,
        output: output::object::<ChangePreview>,
    },
    ToolSpec {
        name: "change_subscription",
        title: "Change a subscription",
        description: "Changes a subscription's plan or cycle now (prorated) or at the period's \
                      end (scheduled, replacing what was scheduled).",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: false,
        schema: schema_for_input::<ChangeSubscriptionSchema>,
        output: output::object::<SubscriptionView>,
    },
    ToolSpec {
        name: "cancel_subscription",
        title: "Cancel a subscription",
        description: "Cancels a subscription now, or at the end of its period.",
        role: Role::Operator,
        read_only: false,
        destructive: true,
        idempotent: false,
        schema: schema_for_input::<CancelSubscriptionSchema>,
        output: output::object::<SubscriptionView>,
    },
    ToolSpec {
        name: "unschedule_subscription",
        title: "Withdraw a scheduled subscription change",
        description: "Withdraws what was scheduled for a subscription's period end (a change or \
                      a cancellation); an error when nothing is scheduled.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: false,
        schema: schema_for_input::<CustomerIdArgs>,
        output: output::object::<SubscriptionView>,
    },
    ToolSpec {
        name: "get_usage",
        title: "Get a customer's usage",
        description: "A customer's usage in each metric's current period: used, events, limit, \
                      whether the soft threshold is passed, overage and its price.",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<CustomerIdArgs>,
        output: output::object::<UsageView>,
    },
    ToolSpec {
        name: "check_entitlement",
        title: "Check an entitlement",
        description: "Whether a customer may use `amount` (default 1) more of a metric now, with \
                      its limit, use, what remains and where the limit comes from (plan or trial).",
        role: Role::Viewer,
        read_only: true,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<EntitlementCheck>,
        output: output::object::<Entitlement>,
    },
    ToolSpec {
        name: "record_usage",
        title: "Record usage",
        description: "Records 1 to 1,000 usage events, each naming its customer_id; each is \
                      answered accepted, duplicate (its event_id was recorded with the same \
                      content) or refused with the field and rule (event_id_reused when its id \
                      was recorded with other content). Sending an event again is safe.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<UsageBatch>,
        output: output::object::<UsageResults>,
    },
    ToolSpec {
        name: "advance_test_clock",
        title: "Advance a test clock",
        description: "Moves a test clock forward (never back; not in production), doing every \
                      piece of its customers' billing work that falls due on the way, earliest \
                      first.",
        role: Role::Operator,
        read_only: false,
        destructive: false,
        idempotent: true,
        schema: schema_for_input::<AdvanceSchema>,
        output: output::object::<TestClockView>,
    },
];

/// The tool named `name`.
pub fn find(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

fn json<T: serde::Serialize>(value: T) -> Result<Value, Box<Problem>> {
    serde_json::to_value(value).map_err(|e| {
        tracing::error!(error = %e, "cannot serialize a tool result");
        Box::new(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; it has been logged",
            None,
        ))
    })
}

fn service<T: serde::Serialize, E: Into<ServiceError>>(
    result: Result<T, E>,
) -> Result<Value, Box<Problem>> {
    match result {
        Ok(v) => json(v),
        Err(e) => Err(Box::new(Problem::from(&e.into()))),
    }
}

/// Calls a tool as `actor`: checks the role and the arguments, then the service.
pub async fn call(
    services: &Services,
    actor: &Actor,
    spec: &ToolSpec,
    arguments: JsonObject,
) -> Result<Value, Box<Problem>> {
    actor
        .require(spec.role)
        .map_err(|e| Box::new(Problem::from(&e)))?;
    let schema = spec.input_schema();
    let refuse = |errors| Box::new(Problem::from(&ServiceError::Invalid(errors)));
    macro_rules! parse {
        ($a:ty, $b:ty) => {
            args::parse_pair::<$a, $b>(&schema, arguments).map_err(refuse)?
        };
        ($t:ty) => {
            args::parse::<$t>(&schema, arguments).map_err(refuse)?
        };
    }
    match spec.name {
        "get_customer" => {
            let a = parse!(CustomerIdArgs);
            match services.customers.get(actor, &a.customer_id).await {
                Ok(customer) => json(serde_json::json!({ "customer": customer })),
                Err(CustomerError::NotFound(_)) => Ok(serde_json::json!({ "customer": null })),
                Err(e) => Err(Box::new(Problem::from(&ServiceError::from(e)))),
            }
        }
        "list_customers_by_industry" => {
            let a = parse!(IndustryArgs);
            service(
                services
                    .customers
                    .in_industry(actor, &a.industry)
                    .await
                    .map(|items| serde_json::json!({ "items": items })),
            )
        }
        "list_customers" => {
            let q = parse!(ListQuery);
            service(services.customers.list(actor, &q).await)
        }
        "get_onboarding_status" => {
            let a = parse!(CustomerIdArgs);
            service(services.onboarding.status(actor, &a.customer_id).await)
        }
        "query_dataset" => {
            let a = parse!(QueryArgs);
            service(services.datasets.query(actor, &a.customer_id, &a.sql).await)
        }
        "onboard_customer" => {
            let (own, request) = parse!(IdempotencyArgs, OnboardRequest);
            service(
                services
                    .customers
                    .onboard(actor, &request, own.idempotency_key.as_deref())
                    .await
                    .map(|done| done.response),
            )
        }
        "update_customer" => {
            let (target, changes) = parse!(UpdateTarget, UpdateRequest);
            service(
                services
                    .customers
                    .update(
                        actor,
                        &target.customer_id,
                        &changes,
                        target.expected_version,
                    )
                    .await,
            )
        }
        "list_credentials" => {
            let a = parse!(CustomerIdArgs);
            service(services.vault.list(actor, &a.customer_id).await)
        }
        "store_credential" => {
            let (target, value) = parse!(StoreCredentialArgs, PutCredential);
            service(
                services
                    .vault
                    .put(actor, &target.customer_id, &target.credential_type, &value)
                    .await,
            )
        }
        "retry_onboarding" => {
            let a = parse!(CustomerIdArgs);
            service(services.onboarding.retry(actor, &a.customer_id).await)
        }
        "complete_checklist_item" => {
            let a = parse!(ChecklistArgs);
            service(
                services
                    .onboarding
                    .mark_checklist(actor, &a.customer_id, &a.item)
                    .await,
            )
        }
        "offboard_customer" => {
            let (target, request) = parse!(CustomerIdArgs, OffboardRequest);
            service(
                services
                    .customers
                    .offboard(actor, &target.customer_id, &request, None)
                    .await,
            )
        }
        "list_signups" => {
            let a = parse!(SignupListArgs);
            let q = SignupQuery {
                status: a.status,
                limit: a.limit,
                cursor: a.cursor,
            };
            service(services.signups.list(actor, &q).await)
        }
        "get_signup" => {
            let a = parse!(SignupIdArgs);
            service(services.signups.show(actor, &a.signup_id).await)
        }
        "approve_signup" => {
            let a = parse!(ApproveSignupArgs);
            let req = ApproveSignup {
                customer_id: a.customer_id,
                usage_tier: a.usage_tier,
            };
            service(services.signups.approve(actor, &a.signup_id, &req).await)
        }
        "reject_signup" => {
            let a = parse!(RejectSignupArgs);
            let req = RejectSignup { reason: a.reason };
            service(services.signups.reject(actor, &a.signup_id, &req).await)
        }
        "list_users" => {
            let a = parse!(CustomerIdArgs);
            service(
                services
                    .accounts
                    .list(Caller::Operator(actor), &a.customer_id)
                    .await,
            )
        }
        "invite_user" => {
            let a = parse!(InviteUserArgs);
            let req = InviteUser {
                email: a.email,
                role: a.role,
                name: a.name,
            };
            service(
                services
                    .accounts
                    .invite(Caller::Operator(actor), &a.customer_id, &req)
                    .await,
            )
        }
        "get_trial" => {
            let a = parse!(CustomerIdArgs);
            service(services.billing.trial(actor, &a.customer_id).await)
        }
        "start_trial" => {
            let (target, req) = parse!(CustomerIdArgs, StartTrial);
            service(
                services
                    .billing
                    .start_trial(actor, &target.customer_id, &req)
                    .await,
            )
        }
        "extend_trial" => {
            let (target, req) = parse!(CustomerIdArgs, ExtendTrial);
            service(
                services
                    .billing
                    .extend_trial(actor, &target.customer_id, &req)
                    .await,
            )
        }
        "get_subscription" => {
            let a = parse!(CustomerIdArgs);
            service(services.billing.subscription(actor, &a.customer_id).await)
        }
        "subscribe_customer" => {
            let (target, req) = parse!(CustomerIdArgs, NewSubscription);
            service(
                services
                    .billing
                    .subscribe(actor, &target.customer_id, &req)
                    .await,
            )
        }
        "preview_subscription_change" => {
            let a = parse!(PreviewArgs);
            let q = PreviewQuery {
                plan: a.plan,
                cycle: a.cycle,
            };
            service(
                services
                    .billing
                    .preview_change(actor, &a.customer_id, &q)
                    .await,
            )
        }
        "change_subscription" => {
            let (target, req) = parse!(CustomerIdArgs, ChangeSubscription);
            service(
                services
                    .billing
                    .change_subscription(actor, &target.customer_id, &req)
                    .await,
            )
        }
        "cancel_subscription" => {
            let (target, req) = parse!(CustomerIdArgs, CancelSubscription);
            service(
                services
                    .billing
                    .cancel_subscription(actor, &target.customer_id, &req)
                    .await,
            )
        }
        "unschedule_subscription" => {
            let a = parse!(CustomerIdArgs);
            service(
                services
                    .billing
                    .unschedule_subscription(actor, &a.customer_id)
                    .await,
            )
        }
        "get_usage" => {
            let a = parse!(CustomerIdArgs);
            service(services.billing.usage(actor, &a.customer_id).await)
        }
        "check_entitlement" => {
            let req = parse!(EntitlementCheck);
            service(services.billing.check_entitlement(actor, &req).await)
        }
        "record_usage" => {
            let batch = parse!(UsageBatch);
            service(
                services
                    .billing
                    .record_usage(Sender::Operator(actor), &batch)
                    .await,
            )
        }
        "advance_test_clock" => {
            let (target, req) = parse!(TestClockArgs, AdvanceTestClock);
            service(
                services
                    .billing
                    .advance_test_clock(actor, &target.test_clock_id, &req)
                    .await,
            )
        }
        other => unreachable!("tool {other} is listed but not dispatched"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_schema_with_described_fields() {
        for spec in TOOLS {
            let schema = spec.input_schema();
            assert_eq!(schema.get("type"), Some(&serde_json::json!("object")));
            let props = schema["properties"].as_object().unwrap();
            assert!(!props.is_empty(), "{} has no arguments", spec.name);
            for (field, p) in props {
                let described = p.get("description").is_some()
                    || p.get("$ref").is_some()
                    || p.get("anyOf").is_some();
                assert!(described, "{}.{field} has no description", spec.name);
            }
        }
    }

    #[test]
    fn every_output_schema_is_an_object_whose_references_resolve() {
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        for spec in TOOLS {
            let schema = spec.output_schema();
            assert_eq!(
                schema.get("type"),
                Some(&serde_json::json!("object")),
                "{}",
                spec.name
            );
            let mut found = Vec::new();
            refs(&Value::Object((*schema).clone()), &mut found);
            for r in found {
                let name = r
                    .strip_prefix("#/$defs/")
                    .unwrap_or_else(|| panic!("{}: {r}", spec.name));
                assert!(
                    schema["$defs"].get(name).is_some(),
                    "{}: {r} is not defined",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn hints_match_roles() {
        for spec in TOOLS {
            assert_eq!(spec.read_only, spec.role == Role::Viewer, "{}", spec.name);
            assert!(!(spec.read_only && spec.destructive), "{}", spec.name);
        }
    }

    #[test]
    fn flattened_requests_expose_their_fields() {
        let schema = find("onboard_customer").unwrap().input_schema();
        let props = schema["properties"].as_object().unwrap();
        for f in [
            "customer_id",
            "customer_name",
            "industry",
            "attributes",
            "idempotency_key",
        ] {
            assert!(props.contains_key(f), "onboard_customer lacks {f}");
        }
        let schema = find("offboard_customer").unwrap().input_schema();
        let required: Vec<_> = schema["required"].as_array().unwrap().iter().collect();
        assert_eq!(required, vec!["customer_id"]);
    }
}
