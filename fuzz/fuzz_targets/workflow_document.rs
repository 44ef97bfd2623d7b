//! Any text as a workflow document: parsed and validated (with every action name accepted),
//! never a panic; a valid one survives a round trip through its JSON form.
#![no_main]
use alertflow_domain::workflow::{self, ActionCatalog, DocError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct AnyAction;
impl ActionCatalog for AnyAction {
    fn names(&self) -> Vec<&'static str> {
        vec![]
    }
    fn check(&self, _: &str, _: &Value) -> Option<Vec<DocError>> {
        Some(vec![])
    }
}

fuzz_target!(|text: &str| {
    if let Ok(wf) = workflow::parse(text, &AnyAction) {
        let json = serde_json::to_string(&wf).expect("a parsed workflow serializes");
        let again = workflow::parse(&json, &AnyAction).expect("its JSON form parses again");
        assert_eq!(wf, again);
    }
});
