//! The domain: identifiers and values that parse or refuse, the customer record, its status
//! machine and the event log's hash chain. Pure types and rules: no I/O, no async.

pub mod account;
pub mod attribute;
pub mod credential;
pub mod customer;
pub mod dataset;
pub mod email;
pub mod envelope;
pub mod event;
pub mod events;
pub mod integration_key;
pub mod job;
pub mod money;
pub mod plan;
pub mod query;
pub mod refusal;
pub mod risk;
pub mod role;
pub mod run;
pub mod signup;
pub mod status;
pub mod subscription;
pub mod text;
pub mod trial;
pub mod upload;
pub mod values;

pub use attribute::{AttributeFormat, AttributeValue};
pub use customer::{Contact, Customer};
pub use event::{ChainKey, Event, NewEvent, OPERATOR_CHAIN};
pub use events::{EventBody, EventType};
pub use refusal::{FieldError, Invalid};
pub use role::Role;
pub use status::{CustomerStatus, InvalidTransition};
pub use values::{CustomerId, CustomerIdRule, CustomerName, Email, Tag, Tags};
