//! The event log's records and its hash chain.
//!
//! Every mutation appends an event in the same transaction as the change. Events are chained
//! per customer (operator-level events form a chain of their own, [`OPERATOR_CHAIN`]): each
//! carries the SHA-256 of its canonical form, which includes the hash of the event before it in
//! the same chain. Editing, inserting or deleting an event breaks the chain at that point, and
//! [`ChainVerifier`] names the first broken link.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use super::events::EventBody;
use super::CustomerId;

/// The chain that holds events about no single customer (tokens, imports).
pub const OPERATOR_CHAIN: &str = "@operator";

/// The `prev_hash` of the first event in every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Which chain an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainKey {
    /// The chain of one customer's events.
    Customer(CustomerId),
    /// The operator-level chain.
    Operator,
}

impl ChainKey {
    /// The chain's name as stored: the customer id, or [`OPERATOR_CHAIN`].
    pub fn as_str(&self) -> &str {
        match self {
            ChainKey::Customer(id) => id.as_str(),
            ChainKey::Operator => OPERATOR_CHAIN,
        }
    }
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What happened: its type and typed payload, from the catalog.
    pub body: EventBody,
    /// Who did it: `token:<id>` for an API token, `cli:<user>` for the CLI.
    pub actor: String,
    /// The customer it concerns; also decides the chain.
    pub customer_id: Option<CustomerId>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The request that caused it, when there was one.
    pub request_id: Option<String>,
}

impl NewEvent {
    /// The chain this event goes into.
    pub fn chain(&self) -> ChainKey {
        match &self.customer_id {
            Some(id) => ChainKey::Customer(id.clone()),
            None => ChainKey::Operator,
        }
    }

    /// Fixes the event's place in its chain: its sequence number and the previous event's hash.
    pub fn seal(self, chain_seq: i64, prev_hash: String) -> SealedEvent {
        let payload = self.body.to_json().to_string();
        let event_type = self.body.event_type().as_str().to_owned();
        let occurred_at = format_time(self.occurred_at);
        let chain = self.chain().as_str().to_owned();
        let customer_id = self.customer_id.map(|c| c.as_str().to_owned());
        let hash = event_hash(&HashInput {
            chain: &chain,
            chain_seq,
            prev_hash: &prev_hash,
            event_type: &event_type,
            actor: &self.actor,
            customer_id: customer_id.as_deref(),
            occurred_at: &occurred_at,
            request_id: self.request_id.as_deref(),
            payload: &payload,
        });
        SealedEvent {
            chain,
            chain_seq,
            event_type,
            actor: self.actor,
            customer_id,
            payload,
            occurred_at,
            request_id: self.request_id,
            prev_hash,
            hash,
        }
    }
}

/// Seals events of one chain in order after the chain's head (`seq`, `hash`), each linked to the
/// one before; returns them and the new head.
pub fn seal_chain(
    events: Vec<NewEvent>,
    seq: i64,
    hash: String,
) -> (Vec<SealedEvent>, i64, String) {
    let (mut seq, mut prev) = (seq, hash);
    let sealed = events
        .into_iter()
        .map(|e| {
            seq += 1;
            let s = e.seal(seq, prev.clone());
            prev = s.hash.clone();
            s
        })
        .collect();
    (sealed, seq, prev)
}

/// Splits events into runs of consecutive events of the same chain, keeping their order.
pub fn group_by_chain(events: Vec<NewEvent>) -> Vec<(String, Vec<NewEvent>)> {
    let mut groups: Vec<(String, Vec<NewEvent>)> = Vec::new();
    for e in events {
        let chain = e.chain().as_str().to_owned();
        match groups.last_mut() {
            Some((c, batch)) if *c == chain => batch.push(e),
            _ => groups.push((chain, vec![e])),
        }
    }
    groups
}

/// An event with its place in the chain fixed, ready to insert. Text fields are stored exactly
/// as they were hashed.
#[derive(Debug, Clone)]
pub struct SealedEvent {
    /// Chain name.
    pub chain: String,
    /// Position in the chain, from 1.
    pub chain_seq: i64,
    /// Dotted type.
    pub event_type: String,
    /// Who did it.
    pub actor: String,
    /// The customer it concerns.
    pub customer_id: Option<String>,
    /// Payload as compact JSON text.
    pub payload: String,
    /// Time in the canonical form of [`format_time`].
    pub occurred_at: String,
    /// Request id.
    pub request_id: Option<String>,
    /// The previous event's hash in this chain ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

/// An event as stored, with its global sequence number.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// Global, increasing sequence number.
    pub id: i64,
    /// Chain name: the customer id, or `@operator`.
    pub chain: String,
    /// Position in the chain, from 1.
    pub chain_seq: i64,
    /// Dotted type, such as `customer.registered`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who did it.
    pub actor: String,
    /// The customer it concerns.
    pub customer_id: Option<String>,
    /// What happened.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Payload exactly as hashed.
    #[serde(skip)]
    pub payload_text: String,
    /// When it happened (RFC 3339, microseconds, UTC).
    pub occurred_at: String,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// Hash of the previous event in the chain.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

impl Event {
    /// The event's payload, typed by the catalog.
    pub fn body(&self) -> Result<EventBody, super::events::DecodeError> {
        EventBody::decode(&self.event_type, &self.payload_text)
    }

    /// Recomputes this event's hash from its stored fields.
    pub fn computed_hash(&self) -> String {
        event_hash(&HashInput {
            chain: &self.chain,
            chain_seq: self.chain_seq,
            prev_hash: &self.prev_hash,
            event_type: &self.event_type,
            actor: &self.actor,
            customer_id: self.customer_id.as_deref(),
            occurred_at: &self.occurred_at,
            request_id: self.request_id.as_deref(),
            payload: &self.payload_text,
        })
    }
}

/// Formats a time the one way the event log stores and hashes it.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[derive(Serialize)]
struct HashInput<'a> {
    chain: &'a str,
    chain_seq: i64,
    prev_hash: &'a str,
    event_type: &'a str,
    actor: &'a str,
    customer_id: Option<&'a str>,
    occurred_at: &'a str,
    request_id: Option<&'a str>,
    payload: &'a str,
}

fn event_hash(input: &HashInput<'_>) -> String {
    // A JSON array of fixed field order is unambiguous: no field can bleed into the next.
    let canonical = serde_json::to_vec(input).expect("hash input serialises");
    hex::encode(Sha256::digest(canonical))
}

/// Where and why a chain stopped verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// The chain.
    pub chain: String,
    /// The event's position in its chain.
    pub chain_seq: i64,
    /// The event's global id.
    pub event_id: Option<i64>,
    /// What is wrong.
    pub reason: String,
}

/// Checks events chain by chain. Feed it every event ordered by chain, then by position.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    last: Option<(String, i64, String)>,
    tails: HashMap<String, (i64, String)>,
    /// How many events were checked.
    pub events_checked: u64,
}

impl ChainVerifier {
    /// Checks the next event.
    pub fn push(&mut self, event: &Event) -> Result<(), BrokenLink> {
        let broken = |reason: String| BrokenLink {
            chain: event.chain.clone(),
            chain_seq: event.chain_seq,
            event_id: Some(event.id),
            reason,
        };
        let (expected_seq, expected_prev) = match &self.last {
            Some((chain, seq, hash)) if *chain == event.chain => (seq + 1, hash.clone()),
            _ => (1, GENESIS_HASH.to_owned()),
        };
        if event.chain_seq != expected_seq {
            return Err(broken(format!(
                "expected position {expected_seq} but found {} (an event is missing or was inserted)",
                event.chain_seq
            )));
        }
        if event.prev_hash != expected_prev {
            return Err(broken(
                "prev_hash does not match the hash of the event before it".into(),
            ));
        }
        if event.computed_hash() != event.hash {
            return Err(broken(
                "the event's content does not match its hash (it was edited)".into(),
            ));
        }
        let expected_chain = event.customer_id.as_deref().unwrap_or(OPERATOR_CHAIN);
        if expected_chain != event.chain {
            return Err(broken("the event is in another customer's chain".into()));
        }
        self.tails
            .insert(event.chain.clone(), (event.chain_seq, event.hash.clone()));
        self.last = Some((event.chain.clone(), event.chain_seq, event.hash.clone()));
        self.events_checked += 1;
        Ok(())
    }

    /// Compares the last event seen in each chain with the recorded chain heads, which catches
    /// events deleted from the end of a chain (and whole chains deleted).
    pub fn finish<'a>(
        self,
        heads: impl IntoIterator<Item = (&'a str, i64, &'a str)>,
    ) -> Result<u64, BrokenLink> {
        for (chain, seq, hash) in heads {
            match self.tails.get(chain) {
                Some((s, h)) if *s == seq && h == hash => {}
                found => {
                    return Err(BrokenLink {
                        chain: chain.to_owned(),
                        chain_seq: found.map_or(0, |(s, _)| *s) + 1,
                        event_id: None,
                        reason: format!(
                            "the chain head records {seq} events but the log holds {}",
                            found.map_or(0, |(s, _)| *s)
                        ),
                    })
                }
            }
        }
        Ok(self.events_checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::ChecklistCompleted;
    use crate::domain::{CustomerId, CustomerIdRule};

    fn new_event(customer: Option<&str>, n: i64) -> NewEvent {
        NewEvent {
            body: EventBody::ChecklistCompleted(ChecklistCompleted {
                item: format!("item-{n}"),
            }),
            actor: "cli:ops".into(),
            customer_id: customer
                .map(|c| CustomerId::parse(c, &CustomerIdRule::default()).unwrap()),
            occurred_at: DateTime::from_timestamp(1_700_000_000 + n, 123_456_000).unwrap(),
            request_id: None,
        }
    }

    fn stored(chain_len: i64, customer: Option<&str>) -> Vec<Event> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=chain_len)
            .map(|seq| {
                let s = new_event(customer, seq).seal(seq, prev.clone());
                prev = s.hash.clone();
                Event {
                    id: seq,
                    chain: s.chain,
                    chain_seq: s.chain_seq,
                    event_type: s.event_type,
                    actor: s.actor,
                    customer_id: s.customer_id,
                    payload: serde_json::from_str(&s.payload).unwrap(),
                    payload_text: s.payload,
                    occurred_at: s.occurred_at,
                    request_id: s.request_id,
                    prev_hash: s.prev_hash,
                    hash: s.hash,
                }
            })
            .collect()
    }

    fn verify(events: &[Event]) -> Result<u64, BrokenLink> {
        let mut v = ChainVerifier::default();
        for e in events {
            v.push(e)?;
        }
        let last = events.last().unwrap();
        v.finish([(last.chain.as_str(), last.chain_seq, last.hash.as_str())])
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify(&stored(5, Some("acme"))), Ok(5));
        assert_eq!(verify(&stored(2, None)), Ok(2));
    }

    #[test]
    fn an_edited_payload_is_named_as_the_first_broken_link() {
        let mut events = stored(5, Some("acme"));
        events[2].payload_text = r#"{"n":99}"#.into();
        let err = verify(&events).unwrap_err();
        assert_eq!((err.chain.as_str(), err.chain_seq), ("acme", 3));
        assert!(err.reason.contains("edited"));
    }

    #[test]
    fn a_removed_event_is_caught_in_the_middle_and_at_the_end() {
        let mut events = stored(5, Some("acme"));
        events.remove(1);
        assert_eq!(verify(&events).unwrap_err().chain_seq, 3);

        let events = stored(5, Some("acme"));
        let mut v = ChainVerifier::default();
        for e in &events[..4] {
            v.push(e).unwrap();
        }
        let err = v
            .finish([("acme", 5, events[4].hash.as_str())])
            .unwrap_err();
        assert_eq!(err.chain_seq, 5);
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let mut events = stored(3, Some("acme"));
        events[0].payload_text = r#"{"n":42}"#.into();
        events[0].hash = events[0].computed_hash();
        let err = verify(&events).unwrap_err();
        assert_eq!(err.chain_seq, 2);
        assert!(err.reason.contains("prev_hash"));
    }

    #[test]
    fn a_batch_is_grouped_by_chain_and_sealed_in_order() {
        let events = vec![
            new_event(Some("acme"), 1),
            new_event(Some("acme"), 2),
            new_event(None, 3),
            new_event(Some("acme"), 4),
        ];
        let groups = group_by_chain(events);
        let shape: Vec<_> = groups.iter().map(|(c, b)| (c.as_str(), b.len())).collect();
        assert_eq!(shape, [("acme", 2), (OPERATOR_CHAIN, 1), ("acme", 1)]);
        let (batch, head_seq, head_hash) =
            seal_chain(groups.into_iter().next().unwrap().1, 7, "ab".repeat(32));
        assert_eq!(
            (batch[0].chain_seq, batch[1].chain_seq, head_seq),
            (8, 9, 9)
        );
        assert_eq!(batch[0].prev_hash, "ab".repeat(32));
        assert_eq!(batch[1].prev_hash, batch[0].hash);
        assert_eq!(head_hash, batch[1].hash);
    }

    #[test]
    fn times_are_formatted_with_microseconds_in_utc() {
        let t = DateTime::from_timestamp(0, 1_000).unwrap();
        assert_eq!(format_time(t), "1970-01-01T00:00:00.000001Z");
    }
}
