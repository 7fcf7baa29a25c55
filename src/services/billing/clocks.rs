//! Test clocks: a simulated time for the customers attached to one at onboarding, moved only
//! forward; advancing one does all its customers' billing work that falls due on the way, in
//! time order, before it answers. Outside production only.

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Billing, BillingError};
use crate::domain::events::{EventBody, TestClockChanged};
use crate::domain::text::display_text;
use crate::domain::{FieldError, Invalid, NewEvent, Role};
use crate::services::Actor;
use crate::store::billing::TestClockRecord;

/// The furthest one advance may move a clock.
const MAX_ADVANCE_DAYS: i64 = 5 * 366;
/// The most pieces of work one advance does before it stops with an error (a runaway guard).
const MAX_STEPS: usize = 100_000;

/// `POST /api/v1/test-clocks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTestClock {
    /// The time it starts at (RFC 3339, such as `2026-02-12T10:00:00Z`).
    #[serde(default)]
    pub frozen_time: Option<String>,
    /// A name for people (`policycortex replay`).
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /api/v1/test-clocks/{id}/advance`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceTestClock {
    /// The time to move it to (RFC 3339), not before its current time and at most five years
    /// on (its current time: nothing moves, what is due and not done yet is done).
    #[serde(default)]
    pub to: Option<String>,
}

/// A test clock.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestClockView {
    /// Its id (`tc_...`), for `test_clock_id` when onboarding a customer.
    pub test_clock_id: String,
    /// Its name.
    pub name: String,
    /// The time it shows.
    pub frozen_time: DateTime<Utc>,
    /// When it was made (real time).
    pub created_at: DateTime<Utc>,
    /// When it last moved (real time).
    pub updated_at: DateTime<Utc>,
    /// Pieces of billing work the request that answered did (an advance's).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub work_done: Option<usize>,
}

/// The test clocks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestClockList {
    /// Newest first.
    pub items: Vec<TestClockView>,
}

fn view(c: &TestClockRecord) -> TestClockView {
    TestClockView {
        test_clock_id: c.test_clock_id.clone(),
        name: c.name.clone(),
        frozen_time: c.frozen_time,
        created_at: c.created_at,
        updated_at: c.updated_at,
        work_done: None,
    }
}

/// A time from a request: RFC 3339, from the year 2000 to 2200, to the second.
fn parse_time(field: &str, value: Option<&str>) -> Result<DateTime<Utc>, FieldError> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(Invalid::new("required", format!("{field} is required")).at(field));
    };
    let t = DateTime::parse_from_rfc3339(text).map_err(|_| {
        Invalid::new(
            "invalid_time",
            format!("{field} must be an RFC 3339 time such as 2026-02-12T10:00:00Z"),
        )
        .at(field)
    })?;
    // The year as written (its offset aside), as the API's schema states it.
    if !(2000..=2199).contains(&t.year()) {
        return Err(Invalid::new(
            "out_of_range",
            format!("{field} must be from the year 2000 to 2199"),
        )
        .at(field));
    }
    Ok(t.with_timezone(&Utc))
}

impl Billing {
    fn clocks_on(&self) -> Result<(), BillingError> {
        if self.test_clocks {
            Ok(())
        } else {
            Err(BillingError::TestClocksOff)
        }
    }

    /// Checks that `id` names a test clock a customer may be attached to (the onboarding
    /// request's `test_clock_id`).
    pub async fn check_test_clock(&self, id: &str) -> Result<(), BillingError> {
        self.clocks_on()?;
        self.store
            .get_test_clock(id)
            .await?
            .map(|_| ())
            .ok_or_else(|| BillingError::TestClockNotFound(id.to_owned()))
    }

    /// Makes a test clock (operators).
    pub async fn create_test_clock(
        &self,
        actor: &Actor,
        req: &NewTestClock,
    ) -> Result<TestClockView, BillingError> {
        actor.may(Role::Operator)?;
        self.clocks_on()?;
        let mut errors = Vec::new();
        let frozen_time = parse_time("frozen_time", req.frozen_time.as_deref())
            .map_err(|e| errors.push(e))
            .ok();
        let name = display_text("name", req.name.as_deref().unwrap_or(""), 100, true)
            .map_err(|e| errors.push(e.at("name")))
            .ok();
        let (Some(frozen_time), Some(name)) = (frozen_time, name) else {
            return Err(BillingError::Invalid(errors));
        };
        let now = self.clock.now();
        let record = TestClockRecord {
            test_clock_id: format!("tc_{}", uuid::Uuid::new_v4().simple()),
            name,
            frozen_time,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let event = NewEvent {
            body: EventBody::TestClockCreated(TestClockChanged {
                test_clock_id: record.test_clock_id.clone(),
                frozen_time,
                from: None,
            }),
            actor: actor.name.clone(),
            customer_id: None,
            occurred_at: now,
            request_id: actor.request_id.clone(),
        };
        self.store.insert_test_clock(&record, event).await?;
        Ok(view(&record))
    }

    /// The test clocks, newest first.
    pub async fn test_clocks(&self, _actor: &Actor) -> Result<TestClockList, BillingError> {
        self.clocks_on()?;
        Ok(TestClockList {
            items: self
                .store
                .list_test_clocks(1000)
                .await?
                .iter()
                .map(view)
                .collect(),
        })
    }

    /// One test clock.
    pub async fn test_clock(
        &self,
        _actor: &Actor,
        id: &str,
    ) -> Result<TestClockView, BillingError> {
        self.clocks_on()?;
        let c = self
            .store
            .get_test_clock(id)
            .await?
            .ok_or_else(|| BillingError::TestClockNotFound(id.to_owned()))?;
        Ok(view(&c))
    }

    /// Moves a test clock forward to `to`, doing every piece of its customers' billing work
    /// that falls due up to then, earliest first, each at its own time (operators). `to` equal
    /// to the clock's time moves nothing and does what is due and not done yet.
    pub async fn advance_test_clock(
        &self,
        actor: &Actor,
        id: &str,
        req: &AdvanceTestClock,
    ) -> Result<TestClockView, BillingError> {
        actor.may(Role::Operator)?;
        self.clocks_on()?;
        let to = parse_time("to", req.to.as_deref()).map_err(|e| BillingError::Invalid(vec![e]))?;
        // The clock moves first, then its work is done: an advance that comes meanwhile starts
        // from `to` (an earlier target is refused as not forward), so no work is ever done past
        // the clock's time; two advances at once each do pieces of work, each saved against the
        // version it read, so none is done twice. Should this request fail midway, what is left
        // is done by the next advance, or by a view of the trial or subscription it concerns.
        let mut attempts = 0;
        let moved = loop {
            let clock = self
                .store
                .get_test_clock(id)
                .await?
                .ok_or_else(|| BillingError::TestClockNotFound(id.to_owned()))?;
            if to < clock.frozen_time {
                return Err(BillingError::Invalid(vec![Invalid::new(
                    "not_forward",
                    format!(
                        "to must not be before the clock's time ({}): test clocks only move forward",
                        clock.frozen_time.to_rfc3339()
                    ),
                )
                .at("to")]));
            }
            if to == clock.frozen_time {
                // The clock stays; what is due by its time and not done yet (an advance that
                // failed midway) is done below.
                break clock;
            }
            if to - clock.frozen_time > Duration::days(MAX_ADVANCE_DAYS) {
                return Err(BillingError::Invalid(vec![Invalid::new(
                    "too_far",
                    "to must be at most five years after the clock's time; advance in steps",
                )
                .at("to")]));
            }
            let now = self.clock.now();
            let moved = TestClockRecord {
                frozen_time: to,
                updated_at: now,
                version: clock.version + 1,
                ..clock.clone()
            };
            let event = NewEvent {
                body: EventBody::TestClockAdvanced(TestClockChanged {
                    test_clock_id: id.to_owned(),
                    frozen_time: to,
                    from: Some(clock.frozen_time),
                }),
                actor: actor.name.clone(),
                customer_id: None,
                occurred_at: now,
                request_id: actor.request_id.clone(),
            };
            match self
                .store
                .update_test_clock(&moved, clock.version, event)
                .await
                .map_err(BillingError::from)
            {
                Ok(_) => break moved,
                // Another advance moved it first: read it again.
                Err(BillingError::Changed(_)) if attempts < 5 => attempts += 1,
                Err(e) => return Err(e),
            }
        };
        self.pending_in_line().await?;
        let (mut done, mut tries) = (0usize, 0usize);
        loop {
            match self.next_on_clock(id, to).await {
                Ok(true) => done += 1,
                Ok(false) => break,
                // Another advance or a view did that piece first.
                Err(BillingError::Changed(_)) => {}
                Err(e) => return Err(e),
            }
            tries += 1;
            if tries >= MAX_STEPS {
                return Err(BillingError::Internal(format!(
                    "advancing test clock '{id}' did {MAX_STEPS} pieces of work without reaching {to}"
                )));
            }
        }
        Ok(TestClockView {
            work_done: Some(done),
            ..view(&moved)
        })
    }
}
