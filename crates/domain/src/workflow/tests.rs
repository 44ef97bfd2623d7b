use super::*;

struct Catalog;
impl ActionCatalog for Catalog {
    fn names(&self) -> Vec<&'static str> {
        vec!["fail", "transform"]
    }
    fn check(&self, uses: &str, with: &Value) -> Option<Vec<DocError>> {
        match uses {
            "transform" => Some(vec![]),
            "fail" if with.get("message").is_none() => Some(vec![err("message", "required")]),
            "fail" => Some(vec![]),
            _ => None,
        }
    }
}

fn problems(doc: &str) -> Vec<String> {
    match parse(doc, &Catalog) {
        Ok(_) => vec![],
        Err(es) => es.iter().map(|e| e.to_string()).collect(),
    }
}

const OK: &str = "
name: disk-full
trigger: {type: prometheus, api_keys: [ops], split: per_alert, when: alert.labels.severity == 'critical', dedupe_window: 5m}
steps:
  - id: a
    uses: transform
    with: {value: '{{ alert.labels.instance }}'}
  - id: b
    needs: [a]
    if: steps.a.output == 'x'
    uses: transform
";

#[test]
fn a_valid_document_parses_from_yaml_and_json() {
    let wf = parse(OK, &Catalog).unwrap();
    assert_eq!(wf.name.as_str(), "disk-full");
    assert_eq!(wf.trigger.dedupe_window(), Duration::from_secs(300));
    let json = serde_json::to_string(&wf).unwrap();
    assert_eq!(parse(&json, &Catalog).unwrap(), wf);
}

#[test]
fn syntax_errors_name_the_path() {
    let p = problems(&OK.replace("uses: transform\n    with", "uses: transform\n    wiht"));
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("steps[0].wiht: unknown field `wiht`"),
        "{p:?}"
    );
    assert!(p[0].ends_with("(line 7, column 5)"), "{p:?}");
    let p = problems(&OK.replace("dedupe_window: 5m", "dedupe_window: soon"));
    assert!(p[0].starts_with("trigger.dedupe_window:"), "{p:?}");
    let p = problems(&OK.replace("disk-full", "Disk Full"));
    assert!(p[0].starts_with("name:"), "{p:?}");
}

#[test]
fn semantic_errors_are_all_reported_with_paths() {
    let doc = "
name: x
trigger: {type: webhook}
steps:
  - {id: a, uses: transform}
  - {id: a, uses: nope}
  - {id: c, uses: fail, needs: [zz]}
";
    let p = problems(doc);
    assert!(
        p.contains(&"steps[1].id: duplicate step id \"a\" (first used at steps[0])".to_string()),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|e| e.starts_with("steps[1].uses: unknown action \"nope\"")),
        "{p:?}"
    );
    assert!(
        p.contains(&"steps[2].needs[0]: unknown step \"zz\"".to_string()),
        "{p:?}"
    );
    assert!(
        p.contains(&"steps[2].with.message: required".to_string()),
        "{p:?}"
    );
}

#[test]
fn cycles_are_rejected() {
    let doc = "
name: x
trigger: {type: manual}
steps:
  - {id: a, uses: transform, needs: [c]}
  - {id: b, uses: transform, needs: [a]}
  - {id: c, uses: transform, needs: [b]}
";
    let p = problems(doc);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("cycle in needs: a -> b -> c -> a"), "{p:?}");
}

#[test]
fn templates_are_checked_at_save_time() {
    let doc = "
name: x
trigger: {type: prometheus}
steps:
  - {id: a, uses: transform, with: {value: '{{ alert.labels.x }}'}}
  - {id: b, uses: transform, with: {value: '{{ steps.zz.output }}', other: '{{ bogus }}', bad: '{{ a( }}'}}
";
    let p = problems(doc);
    assert!(
        p.iter().any(|e| e
            .starts_with("steps[0].with.value: `alert` is only defined with `split: per_alert`")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|e| e.starts_with("steps[1].with.value: unknown step `zz`")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|e| e.starts_with("steps[1].with.other: unknown name `bogus`")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|e| e.starts_with("steps[1].with.bad: template does not parse")),
        "{p:?}"
    );
}

#[test]
fn implicit_dependencies_follow_document_order() {
    let wf = parse(OK, &Catalog).unwrap();
    assert_eq!(dependencies(&wf), vec![vec![], vec![0]]);
}

#[test]
fn language_mistakes_are_named_at_save_time() {
    let doc = "
name: x
trigger: {type: prometheus, max_runs: {count: 0, per: 1h}, cron: '* * * * *'}
steps:
  - {id: a, uses: transform, foreach: {not: a list}, with: {value: 1}}
  - {id: b, uses: transform, concurrency: 2, with: {value: '{{ item }}'}}
  - {id: c, uses: transform, remember: {t: x}, with: {value: '{{ memory.t }}'}}
  - {id: d, uses: transform, foreach: [1], concurrency: 0, with: {value: '{{ item }} {{ index }} {{ alert.labels.x }}'}}
";
    let p = problems(doc);
    let expected = [
        "trigger.cron: only a schedule trigger has this",
        "trigger.max_runs.count: must be at least 1",
        "steps[0].foreach: must be a list, or a template",
        "steps[1].concurrency: only a step with foreach runs items concurrently",
        "steps[1].with.value: `item` is only defined in a step with foreach",
        "steps[2].remember: alert memory is kept per alert",
        "steps[2].with.value: `memory` is kept per alert",
        "steps[3].concurrency: must be at least 1",
    ];
    for e in expected {
        assert!(
            p.iter().any(|m| m.starts_with(e)),
            "missing {e:?} in {p:#?}"
        );
    }
    assert_eq!(p.len(), expected.len(), "{p:#?}");
}

#[test]
fn schedule_triggers_are_checked() {
    let p = problems("name: s\ntrigger: {type: schedule, cron: '0 25 * * *', api_keys: [a]}\nsteps: [{id: a, uses: transform}]\n");
    assert!(
        p.iter()
            .any(|m| m.starts_with("trigger.cron: \"0 25 * * *\" does not parse")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("trigger.api_keys: a schedule trigger takes no API keys")),
        "{p:?}"
    );
    let p = problems("name: s\ntrigger: {type: schedule, every: 5m, split: per_alert}\nsteps: [{id: a, uses: transform}]\n");
    assert_eq!(
        p,
        ["trigger.split: only a prometheus trigger splits per alert"]
    );
    assert!(problems("name: s\ntrigger: {type: schedule, cron: '*/5 * * * *', timezone: Europe/Berlin}\nsteps: [{id: a, uses: transform}]\n").is_empty());
    let p = problems("name: s\ntrigger: {type: manual}\nsteps: [{id: a, uses: transform, retry: {attempts: 2, backoff: soon}}]\n");
    assert!(
        p[0].starts_with("steps[0].retry.backoff: invalid duration \"soon\""),
        "{p:?}"
    );
}

#[test]
fn secret_references_are_listed_with_their_place() {
    let wf = parse("name: s\ntrigger: {type: manual}\nsteps:\n  - {id: a, uses: transform, with: {value: {h: 'Bearer {{ secrets.TOKEN }}'}}}\n  - {id: b, uses: transform, if: secrets.OTHER == 'x'}\n", &Catalog).unwrap();
    assert_eq!(
        template_names(&wf, "secrets"),
        [
            ("steps[0].with.value.h".to_string(), "TOKEN".to_string()),
            ("steps[1].if".to_string(), "OTHER".to_string()),
        ]
    );
}

#[test]
fn a_wait_until_resolved_is_found_literal_or_templated() {
    let with = |w: &str| -> Workflow {
        let doc = format!("name: w\ntrigger: {{type: prometheus}}\nsteps:\n  - {{id: a, uses: transform}}\n  - {{id: b, uses: wait, with: {w}}}\n");
        serde_yaml::from_str(&doc).unwrap()
    };
    assert!(with("{duration: 5m, until_resolved: true}").may_wait_until_resolved());
    assert!(
        with("{duration: 5m, until_resolved: '{{ alert.labels.page }}'}").may_wait_until_resolved()
    );
    assert!(!with("{duration: 5m, until_resolved: false}").may_wait_until_resolved());
    assert!(!with("{duration: 5m}").may_wait_until_resolved());
}
