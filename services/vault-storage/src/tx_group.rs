//! PostgreSQL's hot writes: concurrent [`WriteUnit`]s committed together in one transaction.
//!
//! On PostgreSQL every operation of a unit is a round trip, and a unit that appends to the
//! access trail holds the trail's advisory lock from its append until its COMMIT has been
//! flushed: one unit at a time, each paying for its own lock, commit and WAL flush. Here one
//! task takes the units that arrived while the last group was written and runs them as one
//! group ([`commit_units_in_tx`]): their checks, then their writes, one lock, one COMMIT.
//!
//! A group whose write is refused by a constraint (another replica sealed the same person
//! a moment before) is rolled back as a whole and its units are then applied one by one, so
//! one unit's conflict never becomes another's failure. A group that fails because the
//! database did (unreachable, restarted) fails every unit in it: nothing is acknowledged
//! that was not committed.
//!
//! One task, so one group at a time per process. A second one overlapping the next group's
//! inserts with this group's COMMIT was measured at 3,022 against 2,912 seals/s (32
//! connections, the machine's CPU already saturated) and would let two groups of one
//! process lock records in opposite orders: not worth it.

use tokio::sync::mpsc;
use vault_domain::ports::{
    Store, StoreError, UnitOutcome, WriteUnit, commit_unit_in_tx, commit_units_in_tx,
};

use crate::SqlStore;
use crate::unit_writer::{Reply, hand_off};

/// Units in one group at most: bounds how long one COMMIT keeps the others waiting.
const MAX_GROUP: usize = 64;
/// Units waiting for the task at most; beyond that a caller waits to enqueue.
const QUEUE: usize = 1024;

/// The handle requests use; the task ends when every handle is gone.
#[derive(Clone)]
pub(crate) struct TxGroupWriter {
    queue: mpsc::Sender<(WriteUnit, Reply)>,
}

impl TxGroupWriter {
    /// Starts the task over `store`, which must not itself hand units to a group writer.
    pub(crate) fn start(store: SqlStore) -> TxGroupWriter {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, rx));
        TxGroupWriter { queue }
    }

    /// Applies `unit` with the next group; also says how many units that group held.
    pub(crate) async fn commit(
        &self,
        unit: WriteUnit,
    ) -> Result<(Result<UnitOutcome, StoreError>, usize), StoreError> {
        hand_off(&self.queue, unit).await
    }
}

async fn run(store: SqlStore, mut rx: mpsc::Receiver<(WriteUnit, Reply)>) {
    let mut group: Vec<(WriteUnit, Reply)> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.recv().await {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let size = group.len();
        let units: Vec<&WriteUnit> = group.iter().map(|(u, _)| u).collect();
        let results = write_group(&store, &units).await;
        for ((_, reply), result) in group.drain(..).zip(results) {
            let _ = reply.send((result, size));
        }
    }
}

/// Every unit gets exactly one result.
async fn write_group(
    store: &SqlStore,
    units: &[&WriteUnit],
) -> Vec<Result<UnitOutcome, StoreError>> {
    if units.len() > 1 && units.iter().all(|u| u.checks_first()) {
        let together = match store.begin().await {
            Ok(tx) => commit_units_in_tx(tx, units).await,
            Err(e) => Err(e),
        };
        match together {
            Ok(outcomes) => return outcomes.into_iter().map(Ok).collect(),
            // One unit's conflict: the rest must not fail with it.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return units.iter().map(|_| Err(e.clone())).collect(),
        }
    }
    let mut results = Vec::with_capacity(units.len());
    for unit in units {
        results.push(match store.begin().await {
            Ok(tx) => commit_unit_in_tx(tx, unit).await,
            Err(e) => Err(e),
        });
    }
    results
}
