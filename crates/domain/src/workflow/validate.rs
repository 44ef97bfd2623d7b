//! Whole-document validation: every problem at once, each with its path.

use super::*;
use crate::template::referenced_names;

/// Context names a template may read.
const ROOTS: &[&str] = &[
    "trigger",
    "execution",
    "secrets",
    "memory",
    "steps",
    "alert",
    "item",
    "index",
    "approvals",
];

/// What a template at some place in the document may read.
struct Scope<'a> {
    /// Steps by id (a step may read any step; order is checked by `needs` at run time).
    steps: &'a BTreeMap<&'a str, usize>,
    /// `alert` is bound: `split: per_alert`, or inside a `foreach`.
    alert: bool,
    /// `item` and `index` are bound: inside a `foreach`.
    item: bool,
    /// `memory` is bound: the run has one alert (`split: per_alert`).
    memory: bool,
}

pub fn validate(wf: &Workflow, actions: &dyn ActionCatalog) -> Vec<DocError> {
    let mut out = Vec::new();
    validate_trigger(&wf.trigger, &mut out);
    if wf.steps.is_empty() {
        out.push(err("steps", "a workflow needs at least one step"));
    }
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, step) in wf.steps.iter().enumerate() {
        if !is_identifier(&step.id) {
            out.push(err(
                format!("steps[{i}].id"),
                format!("invalid step id {:?}: use letters, digits and '_', not starting with a digit, so templates can say steps.ID", step.id),
            ));
        }
        if let Some(&first) = first_index.get(step.id.as_str()) {
            out.push(err(
                format!("steps[{i}].id"),
                format!(
                    "duplicate step id {:?} (first used at steps[{first}])",
                    step.id
                ),
            ));
        } else {
            first_index.insert(&step.id, i);
        }
    }
    let per_alert = wf.trigger.split() == Split::PerAlert;
    for (i, step) in wf.steps.iter().enumerate() {
        validate_step(i, step, actions, &first_index, per_alert, &mut out);
    }
    if out.iter().all(|e| !e.message.contains("unknown step")) {
        if let Some(cycle) = find_cycle(wf) {
            let idx = first_index[cycle[0].as_str()];
            out.push(err(
                format!("steps[{idx}].needs"),
                format!(
                    "cycle in needs: {} (a step without needs follows the one before it)",
                    cycle.join(" -> ")
                ),
            ));
        }
    }
    out
}

fn validate_step(
    i: usize,
    step: &Step,
    actions: &dyn ActionCatalog,
    steps: &BTreeMap<&str, usize>,
    per_alert: bool,
    out: &mut Vec<DocError>,
) {
    for (j, need) in step.needs.iter().flatten().enumerate() {
        if need == &step.id {
            out.push(err(
                format!("steps[{i}].needs[{j}]"),
                "a step cannot need itself",
            ));
        } else if !steps.contains_key(need.as_str()) {
            out.push(err(
                format!("steps[{i}].needs[{j}]"),
                format!("unknown step {need:?}"),
            ));
        }
    }
    match actions.check(&step.uses, &step.with) {
        None => out.push(err(
            format!("steps[{i}].uses"),
            format!(
                "unknown action {:?} (known: {})",
                step.uses,
                actions.names().join(", ")
            ),
        )),
        Some(problems) => out.extend(
            problems
                .into_iter()
                .map(|p| err(format!("steps[{i}].with.{}", p.path), p.message)),
        ),
    }
    if !step.with.is_null() && !step.with.is_object() {
        out.push(err(
            format!("steps[{i}].with"),
            "must be a mapping of inputs",
        ));
    }
    if let Some(r) = &step.retry {
        if r.attempts == 0 {
            out.push(err(
                format!("steps[{i}].retry.attempts"),
                "must be at least 1",
            ));
        }
    }
    match &step.foreach {
        None if step.concurrency.is_some() => out.push(err(
            format!("steps[{i}].concurrency"),
            "only a step with foreach runs items concurrently",
        )),
        Some(Value::Array(_)) | None => {}
        Some(Value::String(s)) if crate::template::is_template(s) => {}
        Some(_) => out.push(err(
            format!("steps[{i}].foreach"),
            "must be a list, or a template that gives one (such as \"{{ trigger.alerts }}\")",
        )),
    }
    if step.concurrency == Some(0) {
        out.push(err(format!("steps[{i}].concurrency"), "must be at least 1"));
    }
    if step.remember.is_some() && !per_alert {
        out.push(err(
            format!("steps[{i}].remember"),
            "alert memory is kept per alert: it needs `split: per_alert` on the trigger",
        ));
    }
    let outer = Scope {
        steps,
        alert: per_alert,
        item: false,
        memory: per_alert,
    };
    let inner = Scope {
        alert: per_alert || step.foreach.is_some(),
        item: step.foreach.is_some(),
        ..outer
    };
    if let Some(cond) = &step.condition {
        check_template(cond, true, &format!("steps[{i}].if"), &outer, out);
    }
    if let Some(list) = &step.foreach {
        check_templates_in(list, &format!("steps[{i}].foreach"), &outer, out);
    }
    check_templates_in(&step.with, &format!("steps[{i}].with"), &inner, out);
    if let Some(remember) = &step.remember {
        for (k, v) in remember {
            check_templates_in(v, &format!("steps[{i}].remember.{k}"), &outer, out);
        }
    }
}

fn validate_trigger(t: &Trigger, out: &mut Vec<DocError>) {
    let kind = t.kind;
    if kind != TriggerType::Prometheus {
        let only_prometheus = [
            ("trigger.split", t.split.is_some(), "splits per alert"),
            (
                "trigger.dedupe_window",
                t.dedupe_window.is_some(),
                "deduplicates",
            ),
            (
                "trigger.concurrency",
                t.concurrency.is_some(),
                "locks per alert",
            ),
        ];
        for (path, set, what) in only_prometheus {
            if set {
                out.push(err(path, format!("only a prometheus trigger {what}")));
            }
        }
    }
    if matches!(kind, TriggerType::Manual | TriggerType::Schedule) {
        if !t.api_keys.is_empty() {
            out.push(err(
                "trigger.api_keys",
                format!("a {} trigger takes no API keys", kind.as_str()),
            ));
        }
        if t.when.is_some() {
            out.push(err(
                "trigger.when",
                format!("a {} trigger has no filter", kind.as_str()),
            ));
        }
    }
    if kind == TriggerType::Schedule {
        if let Err((path, message)) = crate::schedule::Schedule::of(t) {
            out.push(err(path, message));
        }
    } else {
        for (path, set) in [
            ("trigger.cron", t.cron.is_some()),
            ("trigger.every", t.every.is_some()),
            ("trigger.timezone", t.timezone.is_some()),
        ] {
            if set {
                out.push(err(path, "only a schedule trigger has this"));
            }
        }
    }
    if let Some(m) = &t.max_runs {
        if m.count == 0 {
            out.push(err("trigger.max_runs.count", "must be at least 1"));
        }
        if m.per.as_std().is_zero() {
            out.push(err("trigger.max_runs.per", "must be longer than 0s"));
        }
    }
    for (i, k) in t.api_keys.iter().enumerate() {
        if k.trim().is_empty() {
            out.push(err(format!("trigger.api_keys[{i}]"), "empty key name"));
        }
    }
    if let Some(when) = &t.when {
        let none = BTreeMap::new();
        let per_alert = t.split() == Split::PerAlert;
        let scope = Scope {
            steps: &none,
            alert: per_alert,
            item: false,
            memory: false,
        };
        check_template(when, true, "trigger.when", &scope, out);
    }
}

fn check_templates_in(v: &Value, path: &str, scope: &Scope, out: &mut Vec<DocError>) {
    match v {
        Value::String(s) => check_template(s, false, path, scope, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_templates_in(item, &format!("{path}[{i}]"), scope, out);
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                check_templates_in(item, &format!("{path}.{k}"), scope, out);
            }
        }
        _ => {}
    }
}

fn check_template(
    src: &str,
    as_condition: bool,
    path: &str,
    scope: &Scope,
    out: &mut Vec<DocError>,
) {
    let names = match referenced_names(src, as_condition) {
        Ok(n) => n,
        Err(e) => return out.push(err(path, format!("template does not parse: {e}"))),
    };
    for name in names {
        let mut parts = name.split('.');
        let root = parts.next().unwrap_or_default();
        let problem = match root {
            r if !ROOTS.contains(&r) => Some(format!("unknown name `{r}` (known: {})", ROOTS.join(", "))),
            "alert" if !scope.alert => {
                Some("`alert` is only defined with `split: per_alert` or in a foreach; use trigger.alerts".into())
            }
            "item" | "index" if !scope.item => Some(format!("`{root}` is only defined in a step with foreach")),
            "memory" if !scope.memory => {
                Some("`memory` is kept per alert: it needs `split: per_alert` on the trigger".into())
            }
            "steps" | "approvals" => parts
                .next()
                .filter(|id| !scope.steps.contains_key(id))
                .map(|id| format!("unknown step `{id}` in `{name}`")),
            _ => None,
        };
        if let Some(message) = problem {
            out.push(err(path, message));
        }
    }
}

/// Every `secrets.NAME` the document reads, with where: the server refuses a workflow that
/// names a secret it does not have.
pub fn template_names(wf: &Workflow, root: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut visit = |src: &str, as_condition: bool, path: String| {
        for name in referenced_names(src, as_condition).unwrap_or_default() {
            let mut parts = name.splitn(3, '.');
            if parts.next() == Some(root) {
                if let Some(field) = parts.next() {
                    found.push((path.clone(), field.to_string()));
                }
            }
        }
    };
    fn strings<'v>(v: &'v Value, path: String, out: &mut Vec<(String, &'v str)>) {
        match v {
            Value::String(s) => out.push((path, s)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    strings(item, format!("{path}[{i}]"), out);
                }
            }
            Value::Object(m) => {
                for (k, item) in m {
                    strings(item, format!("{path}.{k}"), out);
                }
            }
            _ => {}
        }
    }
    if let Some(when) = &wf.trigger.when {
        visit(when, true, "trigger.when".into());
    }
    for (i, step) in wf.steps.iter().enumerate() {
        if let Some(cond) = &step.condition {
            visit(cond, true, format!("steps[{i}].if"));
        }
        let mut all = Vec::new();
        strings(&step.with, format!("steps[{i}].with"), &mut all);
        if let Some(list) = &step.foreach {
            strings(list, format!("steps[{i}].foreach"), &mut all);
        }
        for (k, v) in step.remember.iter().flatten() {
            strings(v, format!("steps[{i}].remember.{k}"), &mut all);
        }
        for (path, src) in all {
            visit(src, false, path);
        }
    }
    found
}

fn find_cycle(wf: &Workflow) -> Option<Vec<String>> {
    let deps = dependencies(wf);
    // 0 = unvisited, 1 = on the current path, 2 = done
    let mut state = vec![0u8; deps.len()];
    let mut path = Vec::new();
    fn visit(
        n: usize,
        deps: &[Vec<usize>],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[n] = 1;
        path.push(n);
        for &d in &deps[n] {
            if state[d] == 1 {
                let start = path.iter().position(|&p| p == d).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(d);
                return Some(cycle);
            }
            if state[d] == 0 {
                if let Some(c) = visit(d, deps, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state[n] = 2;
        None
    }
    for n in 0..deps.len() {
        if state[n] == 0 {
            if let Some(mut c) = visit(n, &deps, &mut state, &mut path) {
                // visit follows needs backwards; print in run order
                c.reverse();
                return Some(c.into_iter().map(|i| wf.steps[i].id.clone()).collect());
            }
        }
    }
    None
}

/// Letters, digits and `_`, not starting with a digit: a name templates can write after a dot
/// (`steps.ID`, `secrets.NAME`).
pub fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
