//! The HTTP sink that the benchmark workflows post to. It answers every request at once with
//! `200 {"ok":true}` and records when it arrived and which delivery it came from (the
//! `bench_id` the workflow forwarded), on the same clock as the load generator, so that the
//! time from sending a webhook to the workflow's request reaching the sink can be computed.
//!
//! It runs on its own thread and runtime so that the generator's work does not delay the
//! recording of arrivals.

use crate::bodies::{find_bench_id, parse_origin, Origin};
use crate::stats::{percentiles, round3, Percentiles};
use crate::wire::Conn;
use serde::Serialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One request that reached the sink.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Microseconds since the shared clock's start.
    pub at_us: u64,
    /// `None` when the body named no delivery of this run.
    pub origin: Option<Origin>,
}

pub struct Sink {
    clock: Instant,
    run: String,
    /// Requests below this index are measured; the rest are warm-up.
    measured_below: u64,
    arrivals: Mutex<Vec<Arrival>>,
    measured_arrivals: AtomicU64,
}

impl Sink {
    pub fn new(clock: Instant, run: &str, measured_below: u64) -> Arc<Sink> {
        Arc::new(Sink {
            clock,
            run: run.to_string(),
            measured_below,
            arrivals: Mutex::new(Vec::new()),
            measured_arrivals: AtomicU64::new(0),
        })
    }

    /// Records one request body arriving now.
    pub fn record(&self, body: &[u8]) {
        let at_us = self.clock.elapsed().as_micros() as u64;
        let origin = find_bench_id(body).and_then(|tag| parse_origin(tag, &self.run));
        if origin.is_some_and(|o| o.request < self.measured_below) {
            self.measured_arrivals.fetch_add(1, Ordering::Relaxed);
        }
        self.arrivals
            .lock()
            .expect("sink lock")
            .push(Arrival { at_us, origin });
    }

    /// Arrivals that came from measured (not warm-up) deliveries, duplicates included.
    pub fn measured_arrivals(&self) -> u64 {
        self.measured_arrivals.load(Ordering::Relaxed)
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().expect("sink lock").clone()
    }

    /// Binds `addr` now (so a bad address fails here) and serves on a thread of its own.
    pub fn serve(self: &Arc<Sink>, addr: SocketAddr) -> Result<(), String> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|e| format!("sink bind {addr}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let sink = self.clone();
        std::thread::Builder::new()
            .name("sink".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("sink runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("sink listener");
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => {
                                tokio::spawn(serve_connection(sink.clone(), Conn::new(stream)));
                            }
                            Err(e) => eprintln!("sink: accept: {e}"),
                        }
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Answers every request on one connection with `200 {"ok":true}` until the client closes it.
async fn serve_connection(sink: Arc<Sink>, mut conn: Conn) {
    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
    loop {
        match conn.read(false).await {
            Ok(Some(req)) => {
                sink.record(&req.body);
                if conn.write_raw(OK).await.is_err() || req.close {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                eprintln!("sink: {e}");
                return;
            }
        }
    }
}

/// What reached the sink for the measured deliveries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SinkReport {
    /// Forwarded requests the measured deliveries should cause.
    pub expected: u64,
    /// Distinct (delivery, alert) pairs that arrived.
    pub matched: u64,
    pub missing: u64,
    /// Second and later arrivals for the same pair (a retried step, for example).
    pub duplicates: u64,
    /// Arrivals that named no delivery of this run.
    pub unmatched: u64,
    /// Seconds from the clock's start to the last matched arrival.
    pub last_arrival_s: Option<f64>,
    /// From sending the delivery to its first forwarded request arriving.
    pub webhook_to_sink: Option<Percentiles>,
}

/// Pairs arrivals with the deliveries that caused them. `sent_us[i]` is when measured
/// delivery `i` was sent (microseconds on the sink's clock), `None` if it never was.
pub fn match_arrivals(arrivals: &[Arrival], sent_us: &[Option<u64>], expected: u64) -> SinkReport {
    let mut seen = HashSet::new();
    let mut latencies = Vec::new();
    let (mut duplicates, mut unmatched, mut last) = (0, 0, None::<u64>);
    for a in arrivals {
        let Some(origin) = a.origin else {
            unmatched += 1;
            continue;
        };
        let Some(sent) = sent_us.get(origin.request as usize) else {
            continue; // a warm-up delivery
        };
        let Some(sent) = *sent else {
            unmatched += 1;
            continue;
        };
        if !seen.insert(origin) {
            duplicates += 1;
            continue;
        }
        latencies.push(a.at_us.saturating_sub(sent));
        last = Some(last.map_or(a.at_us, |l| l.max(a.at_us)));
    }
    let matched = seen.len() as u64;
    SinkReport {
        expected,
        matched,
        missing: expected.saturating_sub(matched),
        duplicates,
        unmatched,
        last_arrival_s: last.map(|us| round3(us as f64 / 1e6)),
        webhook_to_sink: percentiles(latencies),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(at_us: u64, request: u64, alert: Option<u32>) -> Arrival {
        Arrival {
            at_us,
            origin: Some(Origin { request, alert }),
        }
    }

    #[test]
    fn latency_is_arrival_minus_the_sending_of_the_same_delivery() {
        let sent = vec![Some(1_000), Some(2_000), Some(3_000)];
        let arrivals = [
            arrival(9_000, 2, None),
            arrival(4_000, 0, None),
            arrival(7_000, 1, None),
        ];
        let r = match_arrivals(&arrivals, &sent, 3);
        assert_eq!(
            (r.matched, r.missing, r.duplicates, r.unmatched),
            (3, 0, 0, 0)
        );
        let l = r.webhook_to_sink.unwrap();
        // 3 ms, 5 ms and 6 ms.
        assert_eq!((l.p50_ms, l.max_ms), (5.0, 6.0));
        assert_eq!(r.last_arrival_s, Some(0.009));
    }

    #[test]
    fn per_alert_arrivals_count_once_each_and_repeats_are_duplicates() {
        let sent = vec![Some(0)];
        let arrivals = [
            arrival(1_000, 0, Some(0)),
            arrival(2_000, 0, Some(1)),
            arrival(3_000, 0, Some(1)),
        ];
        let r = match_arrivals(&arrivals, &sent, 3);
        assert_eq!((r.matched, r.missing, r.duplicates), (2, 1, 1));
        // The duplicate's later arrival does not count as a latency.
        assert_eq!(r.webhook_to_sink.unwrap().max_ms, 2.0);
    }

    #[test]
    fn warm_up_and_foreign_arrivals_are_kept_out_of_the_figures() {
        let sent = vec![Some(0), None];
        let arrivals = [
            arrival(5_000, 7, None), // warm-up: beyond the measured deliveries
            Arrival {
                at_us: 6_000,
                origin: None,
            },
            arrival(8_000, 1, None), // names a delivery that was never sent
        ];
        let r = match_arrivals(&arrivals, &sent, 1);
        assert_eq!((r.matched, r.missing, r.unmatched), (0, 1, 2));
        assert!(r.webhook_to_sink.is_none());
        assert_eq!(r.last_arrival_s, None);
    }

    #[test]
    fn the_sink_records_which_delivery_a_request_came_from() {
        let sink = Sink::new(Instant::now(), "0badcafe", 10);
        sink.record(br#"{"text":"x","bench_id":"0badcafe-3/1"}"#);
        sink.record(br#"{"bench_id":"0badcafe-12"}"#); // warm-up
        sink.record(br#"{"bench_id":"11111111-3"}"#); // another run
        sink.record(b"not json at all");
        assert_eq!(sink.measured_arrivals(), 1);
        let origins: Vec<_> = sink.arrivals().iter().map(|a| a.origin).collect();
        assert_eq!(
            origins,
            vec![
                Some(Origin {
                    request: 3,
                    alert: Some(1)
                }),
                Some(Origin {
                    request: 12,
                    alert: None
                }),
                None,
                None
            ]
        );
    }
}
