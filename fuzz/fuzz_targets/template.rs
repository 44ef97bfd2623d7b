//! Any text as a template and as a condition, against a small context: rendered or refused
//! with an error, bounded by fuel, never a panic or a hang.
#![no_main]
use alertflow_domain::template::{eval_condition, referenced_names, render_value};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(
    // minijinja's lexer panics on some inputs (`}}{`); alertflow catches those and answers a
    // syntax error. libfuzzer-sys's own hook would abort on any panic, caught or not, so it is
    // replaced: a panic that escapes still aborts the run (libfuzzer-sys checks for that).
    init: std::panic::set_hook(Box::new(|_| {})),
    |src: &str| {
    let ctx = json!({
        "trigger": {"status": "firing", "alerts": [{"labels": {"a": "b"}}, {"labels": {}}]},
        "alert": {"labels": {"instance": "db1"}, "fingerprint": "abc"},
        "steps": {"x": {"output": {"n": 1, "list": [1, 2, 3]}, "status": "succeeded"}},
    });
    let _ = referenced_names(src, false);
    let _ = render_value(&Value::String(src.to_string()), &ctx, "with.f");
    let _ = eval_condition(src, &ctx, "if");
});
