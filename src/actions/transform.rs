//! `transform`: returns `value` (its templates already rendered), or the result of a jq program
//! (through jaq) applied to `input`, which defaults to the trigger body.

use super::*;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Native, RcIter};
use jaq_json::Val;

pub struct Transform;

type Filter = jaq_core::Filter<Native<Val>>;

fn compile(program: &str) -> Result<Filter, String> {
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
fn run_jq(program: &str, input: Value) -> Result<Value, String> {
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

#[async_trait]
impl Action for Transform {
    fn name(&self) -> &'static str {
        "transform"
    }

    fn is_pure(&self) -> bool {
        true
    }

    fn inputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "value": {"description": "Any structure; its templates are rendered and it becomes the output."},
                "jq": {"type": "string", "description": "A jq program (run by jaq); its result is the output."},
                "input": {"description": "What the jq program reads (default: the trigger body)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        serde_json::json!({"description": "The value, or the jq result (several results become a list)."})
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        let mut out = Vec::new();
        match (with.get("value"), with.get("jq")) {
            (Some(_), Some(_)) => out.push(problem("jq", "give either value or jq, not both")),
            (None, None) => out.push(problem("value", "required (or jq)")),
            (None, Some(Value::String(src))) if !is_templated(&with["jq"]) => {
                out.extend(compile(src).err().map(|e| problem("jq", e)))
            }
            _ => {}
        }
        out
    }

    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
        if let Some(program) = input.get("jq") {
            let program = program
                .as_str()
                .ok_or_else(|| ActionError::permanent("jq must be a string"))?;
            let data = match input.get("input") {
                Some(v) => v.clone(),
                None => ctx.scope.get("trigger").cloned().unwrap_or(Value::Null),
            };
            return run_jq(program, data).map_err(ActionError::permanent);
        }
        Ok(input.get("value").cloned().unwrap_or(Value::Null))
    }
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
    }
}
