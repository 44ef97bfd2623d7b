//! The execution state machine: given a workflow and the state of its steps, what happens next.
//! The engine persists each decision before acting on it, so a restart resumes from here.

use crate::workflow::{dependencies, OnError, Workflow};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! status_enum {
    ($name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(format!("unknown {} {s:?} (one of: {})", stringify!($name),
                        [$($text),*].join(", "))),
                }
            }
        }
    };
}

status_enum!(ExecutionStatus {
    Pending => "pending", Running => "running", Waiting => "waiting", Succeeded => "succeeded",
    Failed => "failed", Cancelled => "cancelled", TimedOut => "timed_out",
});

status_enum!(StepStatus {
    Pending => "pending", Running => "running", Waiting => "waiting", Succeeded => "succeeded",
    Failed => "failed", Skipped => "skipped", Cancelled => "cancelled",
});

impl ExecutionStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::TimedOut
        )
    }
}

impl StepStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }
}

/// The engine's next move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run this step (evaluate its `if` first).
    Run(usize),
    /// Skip this step without running it, for the reason given.
    Skip(usize, &'static str),
    /// Every step is final; the execution ends with this status.
    Finish(ExecutionStatus),
}

/// Decides what to do next. `statuses[i]` is the status of `wf.steps[i]`.
///
/// A failed step (without `on_error: continue`) ends the run: what has not started is skipped.
/// A step skipped by its `if` also skips the steps that name it in `needs` and need nothing that
/// ran; the implicit "after the step before" order does not carry skips.
pub fn next(wf: &Workflow, statuses: &[StepStatus]) -> Next {
    let deps = dependencies(wf);
    let failed = wf
        .steps
        .iter()
        .zip(statuses)
        .any(|(s, st)| *st == StepStatus::Failed && s.on_error == OnError::Fail);
    for (i, st) in statuses.iter().enumerate() {
        // A waiting step (a wait, an approval, a retry's backoff) resumes where it stopped.
        if *st == StepStatus::Waiting {
            return Next::Run(i);
        }
        if *st != StepStatus::Pending {
            continue;
        }
        if failed {
            return Next::Skip(i, "an earlier step failed");
        }
        if !deps[i].iter().all(|&d| statuses[d].is_final()) {
            continue;
        }
        let explicit = wf.steps[i].needs.as_ref().is_some_and(|n| !n.is_empty());
        if explicit && deps[i].iter().all(|&d| statuses[d] == StepStatus::Skipped) {
            return Next::Skip(i, "every step it needs was skipped");
        }
        return Next::Run(i);
    }
    if statuses.iter().any(|s| !s.is_final()) {
        // Nothing is ready yet something has not ended: only a cycle in `needs` does this, and
        // validation rejects cycles. End the run rather than spin.
        return Next::Finish(ExecutionStatus::Failed);
    }
    Next::Finish(if failed {
        ExecutionStatus::Failed
    } else {
        ExecutionStatus::Succeeded
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{ActionCatalog, DocError};
    use serde_json::Value;
    use StepStatus::*;

    struct Any;
    impl ActionCatalog for Any {
        fn names(&self) -> Vec<&'static str> {
            vec![]
        }
        fn check(&self, _: &str, _: &Value) -> Option<Vec<DocError>> {
            Some(vec![])
        }
    }

    fn wf(steps: &str) -> Workflow {
        let doc = format!("name: t\ntrigger: {{type: manual}}\nsteps:\n{steps}");
        crate::workflow::parse(&doc, &Any).unwrap()
    }

    #[test]
    fn runs_in_order_then_succeeds() {
        let w = wf("  - {id: a, uses: x}\n  - {id: b, uses: x}\n");
        assert_eq!(next(&w, &[Pending, Pending]), Next::Run(0));
        assert_eq!(next(&w, &[Succeeded, Pending]), Next::Run(1));
        assert_eq!(
            next(&w, &[Succeeded, Succeeded]),
            Next::Finish(ExecutionStatus::Succeeded)
        );
    }

    #[test]
    fn a_failure_skips_the_rest_unless_continue() {
        let w = wf("  - {id: a, uses: x}\n  - {id: b, uses: x}\n");
        assert_eq!(
            next(&w, &[Failed, Pending]),
            Next::Skip(1, "an earlier step failed")
        );
        assert_eq!(
            next(&w, &[Failed, Skipped]),
            Next::Finish(ExecutionStatus::Failed)
        );
        let w = wf("  - {id: a, uses: x, on_error: continue}\n  - {id: b, uses: x}\n");
        assert_eq!(next(&w, &[Failed, Pending]), Next::Run(1));
        assert_eq!(
            next(&w, &[Failed, Succeeded]),
            Next::Finish(ExecutionStatus::Succeeded)
        );
    }

    #[test]
    fn skips_propagate_through_needs_only() {
        let w =
            wf("  - {id: a, uses: x}\n  - {id: b, uses: x, needs: [a]}\n  - {id: c, uses: x}\n");
        assert_eq!(
            next(&w, &[Skipped, Pending, Pending]),
            Next::Skip(1, "every step it needs was skipped")
        );
        assert_eq!(next(&w, &[Skipped, Skipped, Pending]), Next::Run(2));
    }

    #[test]
    fn a_waiting_step_resumes_first() {
        let w = wf("  - {id: a, uses: x}\n  - {id: b, uses: x, needs: []}\n");
        assert_eq!(next(&w, &[Waiting, Pending]), Next::Run(0));
    }

    #[test]
    fn waits_for_all_needs() {
        let w = wf("  - {id: a, uses: x}\n  - {id: b, uses: x, needs: []}\n  - {id: c, uses: x, needs: [a, b]}\n");
        assert_eq!(next(&w, &[Succeeded, Pending, Pending]), Next::Run(1));
        assert_eq!(next(&w, &[Succeeded, Skipped, Pending]), Next::Run(2));
    }
}
