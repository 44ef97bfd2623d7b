//! Settings for `serve`: one struct that is both the clap flags (each with an `ALERTFLOW_*`
//! variable) and the TOML of `--config FILE`. Flags and variables win over the file.

use alertflow_domain::Duration;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "ALERTFLOW_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Database: sqlite://PATH or postgres://... [default: SQLite in the data dir]
    #[arg(long, env = "ALERTFLOW_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Base of the webhook URLs shown to users, e.g. https://alertflow.example.com [default: http://LISTEN]
    #[arg(long, env = "ALERTFLOW_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Largest webhook body accepted, in bytes [default: 10485760]
    #[arg(long, env = "ALERTFLOW_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Concurrent executions on this node; 0 runs no workers (ingress and API only) [default: 256]
    #[arg(long, env = "ALERTFLOW_WORKERS")]
    pub workers: Option<usize>,
    /// How long a claimed job stays with its worker without a heartbeat [default: 30s]
    #[arg(long, env = "ALERTFLOW_JOB_LEASE")]
    pub job_lease: Option<Duration>,
    /// Allow workflows to run commands on this host with shell.exec [default: false]
    #[arg(long, env = "ALERTFLOW_ALLOW_SHELL", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_shell: Option<bool>,
    /// Networks actions may send requests to, comma-separated (10.0.0.0/8, 192.0.2.7)
    /// [default: anywhere but link-local 169.254.0.0/16 and fe80::/10]
    #[arg(long, env = "ALERTFLOW_ALLOWED_DESTINATIONS")]
    pub allowed_destinations: Option<String>,
    /// Deliveries per second accepted per API key, in bursts of twice that; more are answered
    /// 503 with Retry-After; 0 is no limit [default: 1000]
    #[arg(long, env = "ALERTFLOW_INGRESS_RATE_PER_KEY")]
    pub ingress_rate_per_key: Option<u32>,
    /// Deliveries per second accepted per source address, as above [default: 1000]
    #[arg(long, env = "ALERTFLOW_INGRESS_RATE_PER_SOURCE")]
    pub ingress_rate_per_source: Option<u32>,
    /// Management API requests per second per user (token or session), in bursts of twice
    /// that; more are answered 429; 0 is no limit [default: 100]
    #[arg(long, env = "ALERTFLOW_API_RATE_PER_USER")]
    pub api_rate_per_user: Option<u32>,
    /// Master key for secrets at rest (64 hex digits) [default: DATA_DIR/master.key, created on first start]
    #[arg(long, env = "ALERTFLOW_MASTER_KEY", hide_env_values = true)]
    #[serde(skip)]
    pub master_key: Option<String>,
}

/// The resolved configuration `run` starts from.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    pub workers: usize,
    pub job_lease: std::time::Duration,
    pub master_key: Option<String>,
    /// Whether `shell.exec` may be saved and run.
    pub allow_shell: bool,
    pub rate_limits: RateLimits,
    pub destinations: crate::actions::destinations::Destinations,
    /// Serve the REST API and UI; off for an ingress-only node.
    pub api: bool,
    /// Serve `POST /hooks/...`.
    pub ingress: bool,
    /// The alertflow binary, which also runs the jq workers; tests point it at the built one.
    pub jq_worker_exe: PathBuf,
    /// The engine's clock; tests move it forward instead of sleeping.
    pub clock: crate::clock::Clock,
}

/// Requests per second, each 0 for no limit.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub deliveries_per_key: u32,
    pub deliveries_per_source: u32,
    pub api_per_user: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    #[serde(flatten)]
    serve: ServeArgs,
}

impl Config {
    pub fn resolve(
        args: ServeArgs,
        data_dir: Option<PathBuf>,
        file: Option<&Path>,
    ) -> anyhow::Result<Config> {
        let from_file: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let f = from_file.serve;
        let data_dir = data_dir
            .or(from_file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let mut cfg = Config::with_data_dir(data_dir);
        if let Some(v) = args.listen.or(f.listen) {
            cfg.listen = v;
        }
        if let Some(v) = args.database_url.or(f.database_url) {
            cfg.database_url = v;
        }
        cfg.public_url = args.public_url.or(f.public_url);
        if let Some(v) = args.max_body_bytes.or(f.max_body_bytes) {
            cfg.max_body_bytes = v;
        }
        if let Some(v) = args.workers.or(f.workers) {
            cfg.workers = v;
        }
        if let Some(v) = args.job_lease.or(f.job_lease) {
            cfg.job_lease = v.as_std();
        }
        if let Some(v) = args.allow_shell.or(f.allow_shell) {
            cfg.allow_shell = v;
        }
        if let Some(list) = args.allowed_destinations.or(f.allowed_destinations) {
            cfg.destinations = crate::actions::destinations::Destinations::parse(&list)
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        let limits = &mut cfg.rate_limits;
        if let Some(v) = args.ingress_rate_per_key.or(f.ingress_rate_per_key) {
            limits.deliveries_per_key = v;
        }
        if let Some(v) = args.ingress_rate_per_source.or(f.ingress_rate_per_source) {
            limits.deliveries_per_source = v;
        }
        if let Some(v) = args.api_rate_per_user.or(f.api_rate_per_user) {
            limits.api_per_user = v;
        }
        cfg.master_key = args.master_key;
        Ok(cfg)
    }

    /// Defaults, with everything kept under `data_dir`.
    pub fn with_data_dir(data_dir: PathBuf) -> Config {
        let database_url = format!("sqlite://{}", data_dir.join("alertflow.db").display());
        Config {
            listen: ([127, 0, 0, 1], 8080).into(),
            data_dir,
            database_url,
            public_url: None,
            max_body_bytes: 10 * 1024 * 1024,
            workers: 256,
            job_lease: std::time::Duration::from_secs(30),
            master_key: None,
            jq_worker_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("alertflow")),
            rate_limits: RateLimits {
                deliveries_per_key: 1000,
                deliveries_per_source: 1000,
                api_per_user: 100,
            },
            allow_shell: false,
            destinations: Default::default(),
            api: true,
            ingress: true,
            clock: Default::default(),
        }
    }

    /// The base of webhook URLs: the configured public URL, else the address listened on.
    pub fn public_base(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{bound}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alertflow.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/af\"\nlisten = \"0.0.0.0:9000\"\nworkers = 8\njob_lease = \"1m\"\n",
        )
        .unwrap();
        let flags = ServeArgs {
            workers: Some(2),
            ..Default::default()
        };
        let cfg = Config::resolve(flags, None, Some(&file)).unwrap();
        assert_eq!(cfg.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(cfg.workers, 2);
        assert_eq!(cfg.job_lease, std::time::Duration::from_secs(60));
        assert_eq!(cfg.database_url, "sqlite:///srv/af/alertflow.db");
        assert_eq!(cfg.public_base(cfg.listen), "http://0.0.0.0:9000");
        assert!(!cfg.allow_shell, "shell actions are off unless asked for");

        std::fs::write(&file, "allow_shell = true\n").unwrap();
        let cfg = Config::resolve(ServeArgs::default(), None, Some(&file)).unwrap();
        assert!(cfg.allow_shell);

        std::fs::write(&file, "listen_addr = \"x\"\n").unwrap();
        let err = Config::resolve(ServeArgs::default(), None, Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_addr"), "{err}");
    }

    #[test]
    fn allow_shell_as_a_bare_flag_or_a_boolish_value() {
        use clap::Parser;
        let parse = |args: &[&str]| match crate::cli::Cli::try_parse_from(args).unwrap().command {
            crate::cli::Command::Serve(a) => a.allow_shell,
            _ => unreachable!(),
        };
        assert_eq!(parse(&["alertflow", "serve"]), None);
        assert_eq!(parse(&["alertflow", "serve", "--allow-shell"]), Some(true));
        assert_eq!(
            parse(&["alertflow", "serve", "--allow-shell=no"]),
            Some(false)
        );
        assert_eq!(
            parse(&["alertflow", "serve", "--allow-shell", "1"]),
            Some(true)
        );
    }
}
