//! `foreach`: a step once per item of a list, `concurrency` at a time. Each item's result is
//! committed as it ends, so a restart runs only the items that had not finished. Retries of
//! an item wait inside its worker (items are short; a long wait belongs in a `wait` step).

use super::step::{backoff, fail, one_attempt, render_input, StepOutcome, StepRun};
use crate::store::{stored_json, StepRecord, StoreError};
use alertflow_domain::execution::StepStatus;
use alertflow_domain::workflow::Step;
use futures_util::StreamExt;
use serde_json::{json, Value};

pub async fn run(
    sr: &StepRun<'_>,
    step: &Step,
    rec: &mut StepRecord,
    ctx: &Value,
) -> Result<StepOutcome, StoreError> {
    let list = step.foreach.as_ref().expect("foreach step");
    let list = match sr.render(list, ctx, "foreach") {
        Ok(Value::Array(items)) => items,
        Ok(other) => {
            let kind = match other {
                Value::Null => "null",
                Value::Object(_) => "a mapping",
                Value::String(_) => "a string",
                _ => "a scalar",
            };
            let msg = format!("step {:?}: foreach: expected a list, got {kind}", step.id);
            return Ok(fail(rec, sr.now(), msg));
        }
        Err(e) => return Ok(fail(rec, sr.now(), format!("step {:?}: {e}", step.id))),
    };
    let Some(action) = sr.engine.registry.get(&step.uses).cloned() else {
        let msg = format!("step {:?}: unknown action {:?}", step.id, step.uses);
        return Ok(fail(rec, sr.now(), msg));
    };
    // Items already ended (before a restart) keep their result.
    let mut items: Vec<Value> = stored_json(&rec.items)
        .as_array()
        .cloned()
        .unwrap_or_default();
    items.resize(list.len(), json!({"status": "pending"}));
    let mut inputs: Vec<Value> = vec![Value::Null; list.len()];
    let mut todo = Vec::new();
    for (index, item) in list.into_iter().enumerate() {
        let mut scope = ctx.clone();
        // Alerts are the common list: each item is then also `alert`.
        if item.get("fingerprint").is_some() && item.get("labels").is_some() {
            scope["alert"] = item.clone();
        }
        scope["item"] = item;
        scope["index"] = json!(index);
        let input = match render_input(sr, step, rec, &scope) {
            Ok(v) => v,
            Err(out) => {
                rec.error = rec.error.take().map(|e| format!("item {index}: {e}"));
                return Ok(out);
            }
        };
        inputs[index] = sr.redactor.value(&input);
        let done = matches!(
            items[index]["status"].as_str(),
            Some("succeeded" | "failed")
        );
        if !done {
            todo.push((index, input, scope));
        }
    }
    rec.input = Some(Value::Array(inputs).to_string());
    rec.status = StepStatus::Running.as_str().into();
    rec.attempts += 1;
    if !action.is_pure() {
        sr.save(rec).await?;
    }

    let (deadline, _) = sr.step_deadline(step, rec);
    let max_attempts = step.retry.as_ref().map(|r| r.attempts).unwrap_or(1);
    let concurrency = step.concurrency.unwrap_or(1).max(1) as usize;
    let action = action.as_ref();
    let mut results =
        futures_util::stream::iter(todo.into_iter().map(|(index, input, scope)| async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let result = one_attempt(sr, action, input.clone(), &scope, deadline).await;
                match result {
                    Some(Err(e)) if e.retryable && attempt < max_attempts => {
                        let delay = backoff(step, attempt).max(e.retry_after.unwrap_or_default());
                        if sr.now() + delay.as_millis() as i64 >= deadline {
                            return (index, attempt, Some(Err(e)));
                        }
                        tokio::time::sleep(delay).await;
                    }
                    other => return (index, attempt, other),
                }
            }
        }))
        .buffer_unordered(concurrency);
    while let Some((index, attempts, result)) = results.next().await {
        items[index] = match result {
            None => {
                rec.status = StepStatus::Cancelled.as_str().into();
                rec.items = Some(Value::Array(items).to_string());
                rec.finished_at = Some(sr.now());
                return Ok(StepOutcome::Cancelled("cancelled".into()));
            }
            Some(Ok(output)) => json!({
                "index": index, "status": "succeeded", "attempts": attempts,
                "output": sr.redactor.value(&output),
            }),
            Some(Err(e)) => json!({
                "index": index, "status": "failed", "attempts": attempts,
                "output": e.output.as_ref().map(|o| sr.redactor.value(o)),
                "error": sr.redactor.text(&e.message),
            }),
        };
        rec.items = Some(Value::Array(items.clone()).to_string());
        sr.save(rec).await?;
    }
    drop(results);

    let failed: Vec<String> = items
        .iter()
        .filter(|i| i["status"] == "failed")
        .map(|i| format!("item {}: {}", i["index"], i["error"].as_str().unwrap_or("")))
        .collect();
    let outputs: Vec<Value> = items.iter().map(|i| i["output"].clone()).collect();
    rec.output = Some(Value::Array(outputs).to_string());
    let now = sr.now();
    if failed.is_empty() {
        rec.status = StepStatus::Succeeded.as_str().into();
        rec.error = None;
        rec.finished_at = Some(now);
        Ok(StepOutcome::Done(StepStatus::Succeeded))
    } else {
        let msg = format!(
            "{} of {} items failed; {}",
            failed.len(),
            items.len(),
            failed.join("; ")
        );
        Ok(fail(rec, now, msg))
    }
}
