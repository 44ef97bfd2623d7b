//! Jinja templates in workflow fields (minijinja, strict undefined, bounded by fuel).
//!
//! A field whose whole value is one `{{ expression }}` keeps the expression's JSON type, so
//! `count: "{{ trigger.alerts | length }}"` is a number. Any other string renders to a string.

/// A value as templates see it.
pub use minijinja::Value as JinjaValue;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;
use std::collections::BTreeSet;

/// Enough for any sane template, small enough that a runaway loop stops quickly.
const FUEL: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TemplateError {
    /// Where the template sits, e.g. `with.url` or `if`.
    pub field: String,
    pub message: String,
}

fn environment<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

/// One environment for every render: building one registers all the filters, which costs more
/// than rendering a short template. Fuel is counted per render.
fn shared() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(environment)
}

type Compiled = std::sync::Arc<minijinja::Expression<'static, 'static>>;

/// Expressions compiled once: a workflow's fields are rendered for every run, and compiling
/// cost about as much as evaluating. Bounded; cleared when full.
fn compiled(src: &str) -> Result<Compiled, minijinja::Error> {
    const CAPACITY: usize = 4096;
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Compiled>>,
    > = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(expr) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(src) {
        return Ok(expr.clone());
    }
    let expr = std::sync::Arc::new(guarded(|| {
        shared().compile_expression_owned(src.to_string())
    })?);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= CAPACITY {
        cache.clear();
    }
    cache.insert(src.to_string(), expr.clone());
    Ok(expr)
}

/// The names a template reads, for error messages (a cold path, so it parses again).
fn template_names(src: &str) -> BTreeSet<String> {
    let env = environment();
    guarded(|| env.template_from_str(src))
        .map(|t| t.undeclared_variables(true).into_iter().collect())
        .unwrap_or_default()
}

/// The longest template (or condition) a field may hold. minijinja's parser and evaluator
/// recurse along a chain such as `a.b.c...` or `x|f|f...`; past this length a chain could
/// overflow the stack of the thread evaluating it (the server runs with 32 MiB stacks).
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

fn check_length(src: &str) -> Result<(), minijinja::Error> {
    if src.len() > MAX_TEMPLATE_BYTES {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "the template is {} bytes; the limit is {MAX_TEMPLATE_BYTES}",
                src.len()
            ),
        ));
    }
    Ok(())
}

/// Runs a minijinja call, turning a panic inside it into a syntax error: some malformed
/// inputs (found by fuzzing: `}}{` as an expression) make its lexer panic, and a workflow
/// document must get an error back, not take down the request or the run.
fn guarded<T>(f: impl FnOnce() -> Result<T, minijinja::Error>) -> Result<T, minijinja::Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(minijinja::Error::new(
            minijinja::ErrorKind::SyntaxError,
            "the template engine could not read this",
        ))
    })
}

/// The expression inside a string that is exactly one `{{ ... }}`, if it is.
fn lone_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// A template context, converted for minijinja. A part that is the same for every step of a
/// run, or for every run of one delivery (the trigger body, which may be megabytes), is
/// converted once with [`convert`] and shared, instead of once per template.
#[derive(Debug, Clone)]
pub struct Scope {
    root: JinjaValue,
}

/// A JSON value as minijinja sees it; cheap to clone and share.
pub fn convert(v: &Value) -> JinjaValue {
    JinjaValue::from_serialize(v)
}

/// JSON text read straight into the value templates see: the same value as [`convert`] of
/// the parsed text, without building the JSON tree first (for a run's trigger body, which
/// templates read and little else does).
pub fn parse_json(text: &[u8]) -> Result<JinjaValue, serde_json::Error> {
    serde_json::from_slice(text)
}

impl Scope {
    /// The names in `vars` (an object), plus `trigger` if given already converted.
    pub fn new(vars: &Value, trigger: Option<&JinjaValue>) -> Scope {
        let mut entries: Vec<(String, JinjaValue)> = vars
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), convert(v))).collect())
            .unwrap_or_default();
        if let Some(t) = trigger {
            entries.push(("trigger".to_string(), t.clone()));
        }
        Scope {
            root: JinjaValue::from_iter(entries),
        }
    }

    /// Every name from one JSON object (`trigger` included, if it has one).
    pub fn from_json(ctx: &Value) -> Scope {
        Scope { root: convert(ctx) }
    }
}

/// Renders every template string inside `value`; `field` names where `value` sits.
pub fn render_value(value: &Value, ctx: &Value, field: &str) -> Result<Value, TemplateError> {
    render_in_scope(value, &Scope::from_json(ctx), field)
}

/// [`render_value`] with a prepared scope.
pub fn render_in_scope(value: &Value, scope: &Scope, field: &str) -> Result<Value, TemplateError> {
    render_in(value, &scope.root, field)
}

fn render_in(value: &Value, jctx: &JinjaValue, field: &str) -> Result<Value, TemplateError> {
    match value {
        Value::String(s) if is_template(s) => render_string(s, jctx, field),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| render_in(v, jctx, &format!("{field}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), render_in(v, jctx, &format!("{field}.{k}"))?)))
            .collect::<Result<serde_json::Map<_, _>, _>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

fn render_string(src: &str, jctx: &JinjaValue, field: &str) -> Result<Value, TemplateError> {
    let fail = |e: minijinja::Error, vars: BTreeSet<String>| TemplateError {
        field: field.to_string(),
        message: explain(&e, &vars, jctx),
    };
    check_length(src).map_err(|e| fail(e, BTreeSet::new()))?;
    if let Some(expr_src) = lone_expression(src) {
        let expr = compiled(expr_src).map_err(|e| fail(e, BTreeSet::new()))?;
        let vars = || expr.undeclared_variables(true).into_iter().collect();
        let out = expr.eval(jctx).map_err(|e| fail(e, vars()))?;
        if out.is_undefined() {
            let e = minijinja::Error::new(minijinja::ErrorKind::UndefinedError, "undefined value");
            return Err(fail(e, vars()));
        }
        return serde_json::to_value(&out).map_err(|e| TemplateError {
            field: field.to_string(),
            message: format!("result is not JSON: {e}"),
        });
    }
    render_text(src, jctx)
        .map(Value::String)
        .map_err(|e| fail(e, template_names(src)))
}

/// Text templates (anything but a lone expression) compiled once, in an environment of their
/// own: compiling one cost more than rendering it. Each is named by a random key, so that an
/// `{% include %}` cannot reach another workflow's template by naming its text. Bounded;
/// cleared when full.
struct TextTemplates {
    env: Environment<'static>,
    /// Source text to its name in `env`.
    names: std::collections::HashMap<String, String>,
}

fn text_templates() -> &'static std::sync::RwLock<TextTemplates> {
    static CACHE: std::sync::OnceLock<std::sync::RwLock<TextTemplates>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(|| {
        std::sync::RwLock::new(TextTemplates {
            env: environment(),
            names: Default::default(),
        })
    })
}

/// A name no template text can guess: 128 random bits (the standard library's hash keys are
/// random per process).
fn unguessable_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

fn render_text(src: &str, jctx: &JinjaValue) -> Result<String, minijinja::Error> {
    const CAPACITY: usize = 4096;
    let cache = text_templates();
    {
        let cached = cache.read().unwrap_or_else(|p| p.into_inner());
        if let Some(name) = cached.names.get(src) {
            let template = cached.env.get_template(name)?;
            return guarded(|| template.render(jctx));
        }
    }
    let mut cached = cache.write().unwrap_or_else(|p| p.into_inner());
    if cached.names.len() >= CAPACITY {
        cached.env.clear_templates();
        cached.names.clear();
    }
    let name = unguessable_name();
    guarded(|| cached.env.add_template_owned(name.clone(), src.to_string()))?;
    cached.names.insert(src.to_string(), name.clone());
    let template = cached.env.get_template(&name)?;
    guarded(|| template.render(jctx))
}

/// Evaluates a condition (`if`, `when`): a bare Jinja expression, or one `{{ ... }}`.
pub fn eval_condition(src: &str, ctx: &Value, field: &str) -> Result<bool, TemplateError> {
    condition_in_scope(src, &Scope::from_json(ctx), field)
}

/// [`eval_condition`] with a prepared scope.
pub fn condition_in_scope(src: &str, scope: &Scope, field: &str) -> Result<bool, TemplateError> {
    let src = lone_expression(src).unwrap_or(src);
    let jctx = &scope.root;
    let fail = |e: minijinja::Error, vars: BTreeSet<String>| TemplateError {
        field: field.to_string(),
        message: explain(&e, &vars, jctx),
    };
    check_length(src).map_err(|e| fail(e, BTreeSet::new()))?;
    let expr = compiled(src).map_err(|e| fail(e, BTreeSet::new()))?;
    let vars = || expr.undeclared_variables(true).into_iter().collect();
    let out = expr.eval(jctx).map_err(|e| fail(e, vars()))?;
    if out.is_undefined() {
        let e = minijinja::Error::new(minijinja::ErrorKind::UndefinedError, "undefined value");
        return Err(fail(e, vars()));
    }
    Ok(out.is_true())
}

/// Names the first variable the template uses that the context lacks, so that an error says
/// `undefined name alert.labels.team` rather than only `undefined value`.
fn explain(e: &minijinja::Error, vars: &BTreeSet<String>, ctx: &JinjaValue) -> String {
    if e.kind() == minijinja::ErrorKind::UndefinedError {
        if let Some(missing) = vars.iter().find(|v| !resolves(ctx, v)) {
            let missing = first_missing_prefix(ctx, missing);
            return format!("undefined name `{missing}` (use default() to make it optional)");
        }
    }
    if e.kind() == minijinja::ErrorKind::OutOfFuel {
        return format!(
            "the template ran too long (over {FUEL} steps); loops in templates must be short"
        );
    }
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    format!("{}{detail}", e.kind())
}

fn resolves(ctx: &JinjaValue, dotted: &str) -> bool {
    let mut cur = ctx.clone();
    for part in dotted.split('.') {
        match cur.get_attr(part) {
            Ok(v) if !v.is_undefined() => cur = v,
            _ => return false,
        }
    }
    true
}

fn first_missing_prefix(ctx: &JinjaValue, dotted: &str) -> String {
    let parts: Vec<&str> = dotted.split('.').collect();
    for n in 1..=parts.len() {
        let prefix = parts[..n].join(".");
        if !resolves(ctx, &prefix) {
            return prefix;
        }
    }
    dotted.to_string()
}

/// Checks a template's syntax and returns the variables it reads (dotted, e.g. `steps.a.output`),
/// so that validation can reject unknown names at save time.
pub fn referenced_names(src: &str, as_condition: bool) -> Result<BTreeSet<String>, String> {
    let env = environment();
    let names = names_read(&env, src, as_condition)?;
    // Functions such as `range` and `dict` are the environment's own, not data.
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    Ok(names
        .into_iter()
        .filter(|n| !globals.contains(n.split('.').next().unwrap_or_default()))
        .collect())
}

fn names_read(
    env: &Environment<'_>,
    src: &str,
    as_condition: bool,
) -> Result<BTreeSet<String>, String> {
    let fmt = |e: minijinja::Error| {
        let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
        format!("{}{detail}", e.kind())
    };
    check_length(src).map_err(fmt)?;
    if as_condition {
        let src = lone_expression(src).unwrap_or(src);
        let expr = guarded(|| env.compile_expression(src)).map_err(fmt)?;
        return Ok(expr.undeclared_variables(true).into_iter().collect());
    }
    if !is_template(src) {
        return Ok(BTreeSet::new());
    }
    if let Some(e) = lone_expression(src) {
        let expr = guarded(|| env.compile_expression(e)).map_err(fmt)?;
        return Ok(expr.undeclared_variables(true).into_iter().collect());
    }
    let tmpl = guarded(|| env.template_from_str(src)).map_err(fmt)?;
    Ok(tmpl.undeclared_variables(true).into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({"alert": {"labels": {"instance": "db1", "severity": "critical"}},
               "trigger": {"alerts": [1, 2, 3]}})
    }

    #[test]
    fn lone_expression_keeps_its_type() {
        let v = json!({"n": "{{ trigger.alerts | length }}", "l": "{{ trigger.alerts }}",
                       "s": "host {{ alert.labels.instance }}", "plain": 5});
        let out = render_value(&v, &ctx(), "with").unwrap();
        assert_eq!(
            out,
            json!({"n": 3, "l": [1, 2, 3], "s": "host db1", "plain": 5})
        );
    }

    #[test]
    fn undefined_names_are_errors_that_name_them() {
        let err =
            render_value(&json!({"u": "x {{ alert.labels.team }}"}), &ctx(), "with").unwrap_err();
        assert_eq!(err.field, "with.u");
        assert!(err.message.contains("alert.labels.team"), "{}", err.message);
        let err = render_value(&json!("{{ nope }}"), &ctx(), "with.x").unwrap_err();
        assert!(err.message.contains("`nope`"), "{}", err.message);
        let ok = render_value(
            &json!("{{ alert.labels.team | default('none') }}"),
            &ctx(),
            "w",
        )
        .unwrap();
        assert_eq!(ok, json!("none"));
    }

    #[test]
    fn json_read_straight_in_equals_json_converted() {
        let text =
            br#"{"b": [1, -2, 3.5, 18446744073709551615, null, true], "a": {"z": "x", "y": {}},
            "a": {"dup": "last wins"}, "s": "\u00e9\n"}"#;
        let direct = parse_json(text).unwrap();
        let via_tree = convert(&serde_json::from_slice(text).unwrap());
        assert_eq!(direct, via_tree);
        // The same keys in the same order, as a template iterating over them sees.
        let keys = |v: &JinjaValue| {
            v.try_iter()
                .unwrap()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&direct), keys(&via_tree));
        assert_eq!(keys(&direct), ["a", "b", "s"]);
        assert!(parse_json(b"{not json").is_err());
    }

    #[test]
    fn a_text_template_compiled_once_renders_each_context_and_cannot_be_included() {
        let src = json!("host {{ alert.labels.instance }} is {{ alert.labels.severity }}");
        let first = render_value(&src, &ctx(), "with.text").unwrap();
        assert_eq!(first, json!("host db1 is critical"));
        let other = json!({"alert": {"labels": {"instance": "db2", "severity": "page"}}});
        assert_eq!(
            render_value(&src, &other, "with.text").unwrap(),
            json!("host db2 is page")
        );
        // Another workflow's template, cached under its text, is not found by that text.
        let include = format!("x {{% include {} %}}", json!(src.as_str().unwrap()));
        let e = render_value(&json!(include), &ctx(), "with.text").unwrap_err();
        assert!(e.message.contains("not found"), "{e}");
        // A syntax error is still an error, every time.
        for _ in 0..2 {
            let e = render_value(&json!("x {{ alert. }}"), &ctx(), "with.text").unwrap_err();
            assert_eq!(e.field, "with.text");
        }
    }

    #[test]
    fn conditions() {
        assert!(eval_condition("alert.labels.severity == 'critical'", &ctx(), "if").unwrap());
        assert!(!eval_condition("{{ trigger.alerts | length > 5 }}", &ctx(), "if").unwrap());
        assert!(eval_condition("alert.labels.x == 1", &ctx(), "when").is_err());
    }

    #[test]
    fn referenced_names_for_validation() {
        let names = referenced_names("{{ steps.a.output.x }} {{ alert.labels.y }}", false).unwrap();
        assert!(names.iter().any(|n| n.starts_with("steps.a")), "{names:?}");
        assert!(referenced_names("{{ oops(", false).is_err());
        let names = referenced_names("{% for i in range(3) %}{{ dict(a=i) }}{% endfor %}", false);
        assert!(names.unwrap().is_empty(), "globals are not names to check");
    }

    #[test]
    fn a_template_that_loops_forever_is_stopped_with_a_clear_error() {
        let src = json!(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
        );
        let e = render_value(&src, &json!({}), "with.text").unwrap_err();
        assert_eq!(e.field, "with.text");
        assert!(e.message.contains("ran too long"), "{e}");
    }

    #[test]
    fn a_template_over_the_length_limit_is_refused_unread() {
        let long = format!("{{{{ trigger{} }}}}", ".a".repeat(MAX_TEMPLATE_BYTES));
        let e = referenced_names(&long, false).unwrap_err();
        assert!(e.contains("the limit is 16384"), "{e}");
        let e = render_value(&json!(long), &json!({}), "with.text").unwrap_err();
        assert!(e.message.contains("the limit is 16384"), "{e}");
        let e = eval_condition(&long, &json!({}), "if").unwrap_err();
        assert!(e.message.contains("the limit is 16384"), "{e}");
    }

    #[test]
    fn inputs_that_make_minijinja_panic_are_errors() {
        // Found by the template fuzz target.
        for src in ["}}{\u{f}", "}}{"] {
            assert!(referenced_names(src, true).is_err());
            assert!(eval_condition(src, &json!({}), "if").is_err());
        }
    }
}
