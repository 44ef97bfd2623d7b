//! Workflow versions, parsed once and shared by the webhook and the engine. A version never
//! changes once saved, so an entry never goes stale; the cache is only bounded.

use crate::store::{Store, StoreError, WorkflowRecord};
use alertflow_domain::workflow::{template_names, Split, Workflow};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Parsed versions kept in memory.
const CAPACITY: usize = 1024;

/// A workflow version, parsed, with what its runs need to load besides their input.
pub struct Plan {
    pub wf: Workflow,
    /// The `secrets.NAME` its templates read.
    pub secrets: Vec<String>,
    /// Runs read and write alert memory (`split: per_alert`).
    pub memory: bool,
    /// Runs may wait `until_resolved`, so a resolve must find them by alert.
    pub watches_resolution: bool,
}

impl Plan {
    fn parse(record: &WorkflowRecord) -> Result<Plan, StoreError> {
        let wf: Workflow = serde_json::from_str(&record.document).map_err(|e| {
            StoreError::Unavailable(format!(
                "stored workflow {} v{} unreadable: {e}",
                record.id, record.version
            ))
        })?;
        let mut secrets: Vec<String> = template_names(&wf, "secrets")
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        secrets.sort();
        secrets.dedup();
        let memory = wf.trigger.split() == Split::PerAlert;
        let watches_resolution = wf.may_wait_until_resolved();
        Ok(Plan {
            wf,
            secrets,
            memory,
            watches_resolution,
        })
    }
}

#[derive(Default)]
pub struct Plans {
    cache: Mutex<HashMap<(String, i64), Arc<Plan>>>,
}

impl Plans {
    fn cached(&self, id: &str, version: i64) -> Option<Arc<Plan>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&(id.to_string(), version)).cloned()
    }

    fn keep(&self, record: &WorkflowRecord, plan: Plan) -> Arc<Plan> {
        let plan = Arc::new(plan);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert((record.id.clone(), record.version), plan.clone());
        plan
    }

    /// The plan of a record already read.
    pub fn of(&self, record: &WorkflowRecord) -> Result<Arc<Plan>, StoreError> {
        match self.cached(&record.id, record.version) {
            Some(plan) => Ok(plan),
            None => Ok(self.keep(record, Plan::parse(record)?)),
        }
    }

    /// The plan of a version, read from the store when not in memory.
    pub async fn load(
        &self,
        store: &dyn Store,
        id: &str,
        version: i64,
    ) -> Result<Arc<Plan>, StoreError> {
        if let Some(plan) = self.cached(id, version) {
            return Ok(plan);
        }
        let record = store.get_workflow(id, Some(version)).await?;
        self.of(&record)
    }
}
