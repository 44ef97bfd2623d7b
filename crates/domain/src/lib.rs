//! The alertflow domain: workflow documents, Alertmanager notifications, templates and the
//! execution state machine. Nothing in this crate does I/O, so all of it is tested in-memory.

pub mod alertmanager;
pub mod duration;
pub mod execution;
pub mod schedule;
pub mod schema;
pub mod template;
pub mod workflow;

pub use duration::Duration;
