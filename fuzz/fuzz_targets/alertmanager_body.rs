//! Any bytes as a webhook body: the parser answers Ok or an error naming a field, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(n) = alertflow_domain::alertmanager::Notification::parse(body) {
        let _ = n.dedupe_key();
    }
});
