//! jq, through jaq: compiling a program (refusing the functions a workflow must not have) and
//! running it on a value. Running happens only in the sandbox's worker process
//! (`jq_sandbox.rs`): a program can loop forever or recurse until the stack overflows, which
//! jaq cannot bound.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Native, RcIter};
use jaq_json::Val;
use serde_json::Value;

type Filter = jaq_core::Filter<Native<Val>>;

/// jq functions a workflow must not have: reading the server's environment (where the master
/// key may be), stopping the server, or writing to its log around the redaction of secrets.
const DENIED: &[&str] = &[
    "env",
    "halt",
    "halt_error",
    "debug",
    "stderr",
    "input",
    "inputs",
];

/// The first denied function the program calls, if any. Object keys (`.env`) and strings are
/// not calls; `$__loc__`-style variables are not functions.
fn denied_call(program: &str) -> Option<&'static str> {
    let bytes = program.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let after_dot_or_dollar = start > 0 && matches!(bytes[start - 1], b'.' | b'$');
                let is_key = program[i..].trim_start().starts_with(':');
                if !after_dot_or_dollar && !is_key {
                    if let Some(d) = DENIED.iter().find(|d| **d == &program[start..i]) {
                        return Some(d);
                    }
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Just past the string literal that opens at `open` (its escapes skipped).
fn string_end(bytes: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    while i < bytes.len() && bytes[i] != b'"' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// The longest jq program and the deepest nesting a workflow may have: jaq's parser recurses,
/// and a program past these could overflow the stack of the thread that compiles it (which
/// would abort the process). Real programs are far inside both.
const MAX_PROGRAM_BYTES: usize = 16 * 1024;
const MAX_NESTING: usize = 128;
/// Stack for the threads that compile (and, in the worker, run) programs.
pub const STACK: usize = 64 << 20;

/// How deep brackets, parentheses and braces nest, outside strings.
fn nesting(program: &str) -> usize {
    let bytes = program.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(bytes, i);
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Whether `program` compiles, on a thread with room for jaq's parser: for checking a
/// workflow in the server, where a parser overflowing its stack would take the server down.
pub fn check(program: &str) -> Result<(), String> {
    let program = program.to_string();
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || compile(&program).map(|_| ()))
        .map_err(|e| format!("jq: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("jq program could not be compiled".into()))
}

pub fn compile(program: &str) -> Result<Filter, String> {
    if program.len() > MAX_PROGRAM_BYTES {
        return Err(format!(
            "jq program is {} bytes; the limit is {MAX_PROGRAM_BYTES}",
            program.len()
        ));
    }
    if nesting(program) > MAX_NESTING {
        return Err(format!(
            "jq program nests brackets more than {MAX_NESTING} deep"
        ));
    }
    if let Some(name) = denied_call(program) {
        return Err(format!(
            "jq function `{name}` is not available in alertflow"
        ));
    }
    let loader = Loader::new(jaq_std::defs().chain(jaq_json::defs()));
    let arena = Arena::default();
    let modules = loader
        .load(
            &arena,
            File {
                code: program,
                path: (),
            },
        )
        .map_err(|errs| format!("jq program does not parse ({} error(s))", errs.len()))?;
    Compiler::default()
        .with_funs(jaq_std::funs().chain(jaq_json::funs()))
        .compile(modules)
        .map_err(|errs| {
            let names: Vec<String> = errs
                .into_iter()
                .flat_map(|(_, es)| es.into_iter().map(|(name, _)| name.to_string()))
                .collect();
            format!(
                "jq program does not compile: undefined {}",
                names.join(", ")
            )
        })
}

thread_local! {
    /// Compiled programs, per thread (jaq's values are not `Send`). Compiling a program costs
    /// far more than running it on one alert, and a workflow runs the same program each time.
    static COMPILED: std::cell::RefCell<std::collections::HashMap<String, std::rc::Rc<Filter>>> =
        Default::default();
}

fn compiled(program: &str) -> Result<std::rc::Rc<Filter>, String> {
    COMPILED.with(|cache| {
        if let Some(f) = cache.borrow().get(program) {
            return Ok(f.clone());
        }
        let f = std::rc::Rc::new(compile(program)?);
        let mut cache = cache.borrow_mut();
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(program.to_string(), f.clone());
        Ok(f)
    })
}

/// One output stays a value; several become a list; none is null.
pub fn run_jq(program: &str, input: Value) -> Result<Value, String> {
    let filter = compiled(program)?;
    let inputs = RcIter::new(core::iter::empty());
    let mut out = Vec::new();
    for v in filter.run((Ctx::new([], &inputs), Val::from(input))) {
        out.push(Value::from(v.map_err(|e| format!("jq: {e}"))?));
    }
    Ok(match out.len() {
        0 => Value::Null,
        1 => out.pop().unwrap_or_default(),
        _ => Value::Array(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jq_programs() {
        let input = json!({"alerts": [{"labels": {"a": "x"}}, {"labels": {"a": "y"}}]});
        assert_eq!(
            run_jq("[.alerts[].labels.a]", input.clone()).unwrap(),
            json!(["x", "y"])
        );
        assert_eq!(
            run_jq(".alerts[].labels.a", input.clone()).unwrap(),
            json!(["x", "y"])
        );
        assert_eq!(run_jq(".alerts | length", input).unwrap(), json!(2));
        assert!(compile(".[").is_err());
        assert!(compile("nosuchfn(1)").err().unwrap().contains("nosuchfn"));
        // Nothing that reads the server's environment or stops the process.
        for unsafe_fn in ["env", "halt", "halt_error(1)", "debug", "stderr", "input"] {
            assert!(compile(unsafe_fn).is_err(), "{unsafe_fn} compiles");
        }
        assert!(
            compile(r#"{env: .env, s: "halt \" env"}"#).is_ok(),
            "keys and strings are not calls"
        );
    }

    #[test]
    fn programs_too_long_or_too_deep_for_the_parser_are_refused_before_it_runs() {
        let deep = format!("{}1{}", "[".repeat(129), "]".repeat(129));
        assert!(check(&deep).unwrap_err().contains("more than 128 deep"));
        let fine = format!("{}1{}", "[".repeat(128), "]".repeat(128));
        assert!(check(&fine).is_ok());
        assert!(
            check(&format!("\"{}\"", "[".repeat(1000))).is_ok(),
            "strings do not nest"
        );
        let long = vec![".a"; 8000].join(" | ");
        assert!(check(&long).unwrap_err().contains("the limit is 16384"));
    }
}
