//! One integration-test binary (faster to link than one per file). `common` starts the whole
//! server in-process on port 0 with its own data directory; `standin` fakes the services
//! actions call.

mod actions_chat;
mod actions_email;
mod actions_errors;
mod actions_jira;
mod actions_paging;
mod actions_prometheus;
mod actions_shell;
mod alertmanager_e2e;
mod audit;
mod cluster;
mod common;
mod disk;
mod engine;
mod examples;
mod faults;
mod hostile;
mod ingress;
mod language;
mod pg_outage;
mod restart;
mod secrets;
mod standin;
mod users;
mod web_e2e;
mod workflows;
