//! One integration-test binary (faster to link than one per file). `common` starts the whole
//! server in-process on port 0 with its own data directory.

mod alertmanager_e2e;
mod common;
mod engine;
mod ingress;
mod language;
mod restart;
mod secrets;
mod users;
mod web_e2e;
mod workflows;
