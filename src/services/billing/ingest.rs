//! Usage writes of concurrent requests, committed together. Each request queues its records
//! and then takes the writer's turn; whoever holds the turn takes everything queued (its own
//! records and those of requests still waiting) and writes it in one transaction, then hands
//! each request its own outcomes. Under load, a commit serves many requests, so single-event
//! requests cost a share of a transaction each instead of one; alone, a request writes its own
//! records at once, as before. A request answered by another's write returns without waiting
//! for the turn; a write holds the turn on its own task until it ends, so a request dropped
//! mid-write (its client gone) stops neither that write nor the answers of the others in it,
//! and a request dropped before its turn leaves its records queued for the next request to
//! write. A failed shared write is retried request by request, so each gets its own answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

use super::usage::Context;
use super::{Billing, BillingError};
use crate::store::billing::{UsageOutcome, UsageRecord, UsageTotal};

/// Records written in one transaction at most (the rest wait for the next turn).
const MAX_RECORDS: usize = 5_000;

/// What one request's write answered.
type Written = Result<Vec<UsageOutcome>, BillingError>;

struct Pending {
    records: Vec<UsageRecord>,
    contexts: HashMap<String, Option<Context>>,
    reply: oneshot::Sender<Written>,
}

/// The queue of writes waiting and the writer's turn.
#[derive(Default)]
pub(super) struct Ingest {
    queue: Mutex<Vec<Pending>>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Billing {
    /// Writes `records` (with the contexts of their customers, for the alerts), coalesced with
    /// the writes of concurrent requests; the outcomes in order.
    pub(super) async fn write_usage(
        &self,
        records: Vec<UsageRecord>,
        contexts: HashMap<String, Option<Context>>,
    ) -> Written {
        let (reply, answer) = oneshot::channel();
        self.ingest
            .queue
            .lock()
            .map_err(|_| BillingError::Internal("the usage queue is poisoned".into()))?
            .push(Pending {
                records,
                contexts,
                reply,
            });
        let mut answer = answer;
        loop {
            tokio::select! {
                biased;
                // Written by another request's turn.
                written = &mut answer => {
                    return written.map_err(|_| {
                        BillingError::Internal("the usage write ended without an answer".into())
                    })?;
                }
                turn = self.ingest.turn.clone().lock_owned() => {
                    match answer.try_recv() {
                        Ok(written) => return written,
                        Err(oneshot::error::TryRecvError::Closed) => {
                            return Err(BillingError::Internal(
                                "the usage write ended without an answer".into(),
                            ))
                        }
                        Err(oneshot::error::TryRecvError::Empty) => {}
                    }
                    let batch = self.take_queued()?;
                    if batch.is_empty() {
                        // Taken by a write that has ended (each holds the turn until it does),
                        // so its answer is in, or its sender is gone.
                        drop(turn);
                        return answer.await.map_err(|_| {
                            BillingError::Internal("the usage write ended without an answer".into())
                        })?;
                    }
                    // The write holds the turn on its own task until it ends: a request
                    // dropped meanwhile neither stops it nor lets another write start beside it.
                    let billing = self.clone();
                    let flush = tokio::spawn(async move {
                        let _turn = turn;
                        billing.flush(batch).await;
                    });
                    if let Err(e) = flush.await {
                        tracing::error!(error = %e, "a usage write task failed");
                    }
                }
            }
        }
    }

    /// The queued writes, oldest first, up to [`MAX_RECORDS`] records (always at least one).
    fn take_queued(&self) -> Result<Vec<Pending>, BillingError> {
        let mut queue = self
            .ingest
            .queue
            .lock()
            .map_err(|_| BillingError::Internal("the usage queue is poisoned".into()))?;
        let mut n = 0;
        let mut records = 0;
        while n < queue.len() && (n == 0 || records + queue[n].records.len() <= MAX_RECORDS) {
            records += queue[n].records.len();
            n += 1;
        }
        Ok(queue.drain(..n).collect())
    }

    /// Writes `batch` in one transaction and answers each request; should that fail, each
    /// request's records alone.
    async fn flush(&self, mut batch: Vec<Pending>) {
        if batch.len() > 1 {
            let sizes: Vec<usize> = batch.iter().map(|p| p.records.len()).collect();
            let mut records = Vec::with_capacity(sizes.iter().sum());
            let mut contexts = HashMap::new();
            for p in &mut batch {
                records.append(&mut p.records);
                contexts.extend(p.contexts.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            match self.write_now(&records, &contexts).await {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    for (p, n) in batch.into_iter().zip(sizes) {
                        let _ = p.reply.send(Ok(outcomes.by_ref().take(n).collect()));
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(requests = batch.len(), events = records.len(), error = %e, "a shared usage write failed; writing each request's events alone");
                    // Each request's records back, in order.
                    let mut rest = records.into_iter();
                    for (p, n) in batch.iter_mut().zip(sizes) {
                        p.records = rest.by_ref().take(n).collect();
                    }
                }
            }
        }
        for p in batch {
            let written = self.write_now(&p.records, &p.contexts).await;
            let _ = p.reply.send(written);
        }
    }

    /// One transaction: the records and the alerts their totals call for.
    async fn write_now(
        &self,
        records: &[UsageRecord],
        contexts: &HashMap<String, Option<Context>>,
    ) -> Written {
        let asked = Mutex::new(Vec::new());
        let alerts_for = |totals: &[UsageTotal]| {
            let alerts = self.alerts(contexts, totals);
            if let Ok(mut asked) = asked.lock() {
                asked.extend(alerts.iter().map(|(a, _)| {
                    (
                        a.customer_id.clone(),
                        a.metric.clone(),
                        a.period_start,
                        a.kind,
                    )
                }));
            }
            alerts
        };
        let (outcomes, _) = self
            .store
            .record_usage(records, self.clock.now(), &alerts_for)
            .await?;
        // Recorded with the usage: remembered so the next batch does not ask again.
        self.alerted
            .remember(asked.into_inner().unwrap_or_default().into_iter());
        Ok(outcomes)
    }
}
