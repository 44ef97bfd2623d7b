//! The command line: `serve`, and client commands that talk to a server over the REST API.

mod client;
mod commands;
pub(crate) mod language;
mod output;
mod people;

use crate::config::ServeArgs;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub use commands::main;

#[derive(Parser)]
#[command(
    name = "alertflow",
    version,
    about = "Workflow automation for Prometheus Alertmanager notifications",
    long_about = "Workflow automation for Prometheus Alertmanager notifications.\n\n\
        Start the server with `alertflow serve`. The other commands talk to it over its REST API; \
        beside a local server they need no flags (they read DATA_DIR/admin-token)."
)]
pub struct Cli {
    /// Read serve settings from this TOML file (same names as the flags, with underscores)
    #[arg(long, global = true, env = "ALERTFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory: the SQLite store, master.key and admin-token [default: ./data]
    #[arg(long, global = true, env = "ALERTFLOW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Server the client commands talk to
    #[arg(
        long,
        global = true,
        env = "ALERTFLOW_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// Admin token [default: read from DATA_DIR/admin-token]
    #[arg(long, global = true, env = "ALERTFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format: text for people, json (the API's JSON) for scripts, yaml for documents
    #[arg(short = 'o', long, global = true, value_enum, env = "ALERTFLOW_OUTPUT")]
    pub output: Option<Format>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Yaml,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server: API, webhook ingress and workers
    Serve(ServeArgs),
    /// Bring the database schema up to this version and exit (serve also does it on start)
    Migrate(ServeArgs),
    /// API keys that webhook senders (Alertmanager) present
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Workflow documents: apply, list, inspect, validate
    #[command(subcommand)]
    Workflows(WorkflowsCmd),
    /// Start a workflow by hand
    Run {
        /// Workflow id
        id: String,
        /// Input JSON from a file, or - for stdin [default: {}]
        #[arg(long)]
        input: Option<String>,
        /// Follow the run step by step; exit non-zero if it does not succeed
        #[arg(long)]
        wait: bool,
    },
    /// Runs of workflows: what came in and what every step did
    #[command(subcommand)]
    Executions(ExecutionsCmd),
    /// Webhook deliveries received and what became of each
    #[command(subcommand)]
    Events(EventsCmd),
    /// Secrets that templates read as {{ secrets.NAME }}; stored encrypted, redacted from records
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Users and their roles (admin, editor, viewer); admins only
    #[command(subcommand)]
    Users(UsersCmd),
    /// Your API tokens, for the CLI and scripts (--token or ALERTFLOW_TOKEN)
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// Print the Alertmanager receiver block for a workflow, with its URL and key filled in
    AlertmanagerConfig {
        /// Workflow id
        id: String,
        /// Name of the API key to put in the URL
        #[arg(long)]
        key: String,
    },
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Create a key and print its value
    Create { name: String },
    /// List keys (names and use, not values)
    List,
    /// Print a key's value
    Reveal { name: String },
    /// Delete a key; senders using it get 401 from then on
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum WorkflowsCmd {
    /// Create a workflow from a document, or save a new version of it
    Apply {
        /// YAML or JSON document, or - for stdin
        #[arg(short = 'f', long = "file")]
        file: String,
    },
    /// List workflows
    List,
    /// Print a workflow's document (YAML by default)
    Get {
        id: String,
        /// A past version instead of the current one
        #[arg(long)]
        version: Option<i64>,
    },
    /// List a workflow's versions
    Versions { id: String },
    /// Delete a workflow (its executions stay)
    Delete { id: String },
    /// Check a document offline, without a server; every problem is printed with its path
    Validate {
        #[arg(short = 'f', long = "file")]
        file: String,
    },
    /// Print the JSON Schema of the workflow document, with every action's inputs and outputs
    Schema,
    /// Print the next fire times of a schedule trigger
    Schedule { id: String },
}

#[derive(Subcommand)]
pub enum UsersCmd {
    /// Create a user; the password is read from stdin
    Create {
        name: String,
        /// admin, editor or viewer
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    List,
    /// Change a user's role
    SetRole {
        name: String,
        role: String,
    },
    /// Set a new password (read from stdin); the user's sessions end
    ResetPassword {
        name: String,
    },
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum TokensCmd {
    /// Create a token and print its value (shown once)
    Create {
        name: String,
    },
    List,
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum SecretsCmd {
    /// Set a secret from stdin (one trailing newline is dropped)
    Set { name: String },
    /// List secret names (values are never shown)
    List,
    /// Delete a secret
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum ExecutionsCmd {
    /// List executions, newest first
    List {
        #[arg(long)]
        workflow: Option<String>,
        /// pending, running, waiting, succeeded, failed, cancelled or timed_out
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show an execution: its input as received and every step's input, output and status
    Get { id: String },
    /// Stop a run: a queued or waiting one at once, a running one at its current step
    Cancel { id: String },
    /// Run the recorded input again, against the current version or the recorded one
    Replay {
        id: String,
        /// Use the version the run used instead of the current one
        #[arg(long)]
        recorded_version: bool,
    },
    /// Approve a waiting approval step
    Approve {
        id: String,
        /// The approval step (needed only when several wait)
        #[arg(long)]
        step: Option<String>,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Deny a waiting approval step
    Deny {
        id: String,
        #[arg(long)]
        step: Option<String>,
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum EventsCmd {
    /// List deliveries, newest first
    List {
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}
