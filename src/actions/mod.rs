//! Actions: one file each, behind one trait, registered in `Registry::builtin`.

pub mod approval;
mod fail;
mod http_request;
mod transform;
pub mod wait;

use alertflow_domain::schema::{self, is_templated};
use alertflow_domain::workflow::{ActionCatalog, DocError};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a failed action reports. `output` keeps what it got (an HTTP body, say) for the record.
#[derive(Debug, Clone)]
pub struct ActionError {
    pub message: String,
    /// Worth another attempt (network error, 5xx); a 4xx or a bad input is not.
    pub retryable: bool,
    pub output: Option<Value>,
}

impl ActionError {
    pub fn permanent(message: impl Into<String>) -> Self {
        ActionError {
            message: message.into(),
            retryable: false,
            output: None,
        }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        ActionError {
            message: message.into(),
            retryable: true,
            output: None,
        }
    }
}

/// Shared clients, so connection pools are reused across runs.
#[derive(Clone)]
pub struct Clients {
    pub http: reqwest::Client,
}

/// What a running step can see besides its own input.
pub struct ActionContext<'a> {
    pub clients: &'a Clients,
    /// The template context of the step (`trigger`, `alert`, `steps`, ...), for defaults.
    pub scope: &'a Value,
}

#[async_trait]
pub trait Action: Send + Sync {
    fn name(&self) -> &'static str;
    /// Touches nothing outside alertflow, so running it twice after a crash is harmless and
    /// its start need not be committed first.
    fn is_pure(&self) -> bool {
        false
    }
    /// JSON Schema of `with`: served by `workflows schema`, drawn as a form by the UI, and
    /// checked at save time (templated strings pass until run time).
    fn inputs(&self) -> Value;
    /// JSON Schema of the output, so editors can complete `steps.ID.output...`.
    fn outputs(&self) -> Value;
    /// Rules the schema cannot say (one of two inputs, a jq program that must compile),
    /// checked on `with` as written when a workflow is saved.
    fn check(&self, _with: &Value) -> Vec<DocError> {
        vec![]
    }
    /// Runs with `input`, the step's `with` after rendering.
    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError>;
}

#[derive(Clone)]
pub struct Registry {
    actions: BTreeMap<&'static str, Arc<dyn Action>>,
}

impl Registry {
    pub fn builtin() -> Registry {
        let all: Vec<Arc<dyn Action>> = vec![
            Arc::new(http_request::HttpRequest),
            Arc::new(transform::Transform),
            Arc::new(fail::Fail),
            Arc::new(wait::Wait),
            Arc::new(approval::Approval),
        ];
        Registry {
            actions: all.into_iter().map(|a| (a.name(), a)).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Action>> {
        self.actions.get(name)
    }

    /// Every action, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Action>> {
        self.actions.values()
    }
}

impl ActionCatalog for Registry {
    fn names(&self) -> Vec<&'static str> {
        self.actions.keys().copied().collect()
    }
    fn check(&self, uses: &str, with: &Value) -> Option<Vec<DocError>> {
        self.actions.get(uses).map(|a| {
            // An absent `with` is an empty one, so `required` names the missing input.
            let empty = Value::Object(Default::default());
            let with = if with.is_null() { &empty } else { with };
            let mut problems = schema::check(&a.inputs(), with);
            problems.extend(a.check(with));
            problems
        })
    }
}

// Helpers shared by the actions' `check`.

fn problem(path: &str, message: impl Into<String>) -> DocError {
    DocError {
        path: path.to_string(),
        message: message.into(),
    }
}
