//! Start-up timing: polls a URL every few milliseconds until it answers the wanted status, and
//! prints how long that took since the server was started. The script that starts the server
//! passes the wall-clock time it started it (bash's `$EPOCHREALTIME`), since this program
//! starts a moment later.

use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(clap::Args, Debug)]
pub struct ReadyArgs {
    /// URL to poll, e.g. http://127.0.0.1:8080/readyz
    #[arg(long)]
    url: String,
    /// GET, or POST with an empty JSON object
    #[arg(long, default_value = "GET")]
    method: String,
    /// The status that means ready
    #[arg(long, default_value_t = 200)]
    status: u16,
    /// When the server was started: seconds since the epoch with a fraction, as $EPOCHREALTIME prints
    #[arg(long)]
    since: String,
    /// The server's process id: stop waiting as soon as it has exited
    #[arg(long)]
    pid: Option<u32>,
    /// Give up after this many seconds
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Milliseconds between polls
    #[arg(long, default_value_t = 5)]
    every_ms: u64,
}

/// Microseconds since the epoch from `SECONDS.FRACTION` (a comma is accepted too, as some
/// locales print it). `None` when it does not read as such.
pub fn parse_epoch_micros(text: &str) -> Option<u64> {
    let (secs, frac) = match text.trim().split_once(['.', ',']) {
        Some((s, f)) => (s, f),
        None => (text.trim(), ""),
    };
    let secs: u64 = secs.parse().ok()?;
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // Pad or cut the fraction to six digits.
    let micros: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    Some(secs * 1_000_000 + micros.parse::<u64>().ok()?)
}

fn now_epoch_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub fn main(args: ReadyArgs) -> Result<bool, String> {
    let since = parse_epoch_micros(&args.since)
        .ok_or_else(|| format!("--since {}: want SECONDS.FRACTION", args.since))?;
    let post = match args.method.to_ascii_uppercase().as_str() {
        "GET" => false,
        "POST" => true,
        m => return Err(format!("--method {m}: want GET or POST")),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
        let give_up = Instant::now() + Duration::from_secs_f64(args.timeout);
        loop {
            let req = if post {
                client
                    .post(&args.url)
                    .header("content-type", "application/json")
                    .body("{}")
            } else {
                client.get(&args.url)
            };
            let last = match req.send().await {
                Ok(resp) if resp.status().as_u16() == args.status => {
                    let ms = now_epoch_micros().saturating_sub(since) as f64 / 1000.0;
                    println!("{}", json!({ "ready_ms": (ms * 10.0).round() / 10.0 }));
                    return Ok(true);
                }
                Ok(resp) => format!("status {}", resp.status()),
                Err(e) => e.to_string(),
            };
            if let Some(pid) = args.pid {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    return Err(format!("process {pid} exited before it was ready"));
                }
            }
            if Instant::now() >= give_up {
                return Err(format!(
                    "{} not ready after {} s ({last})",
                    args.url, args.timeout
                ));
            }
            tokio::time::sleep(Duration::from_millis(args.every_ms)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bash_epochrealtime() {
        assert_eq!(
            parse_epoch_micros("1764000000.123456"),
            Some(1_764_000_000_123_456)
        );
        assert_eq!(
            parse_epoch_micros("1764000000,5"),
            Some(1_764_000_000_500_000)
        );
        assert_eq!(parse_epoch_micros("17"), Some(17_000_000));
        assert_eq!(parse_epoch_micros("1.1234567"), Some(1_123_456));
        assert_eq!(parse_epoch_micros("soon"), None);
        assert_eq!(parse_epoch_micros("1.2x"), None);
    }
}
