//! Open-loop HTTP load at a fixed rate, for `make bench-proxy`: what a proxy adds to latency at a
//! given traffic, where wrk measures it at saturation.
//!
//! `cargo bench --bench rate -- URL RATE SECONDS CONNECTIONS [BODY_FILE]` sends RATE requests a
//! second for SECONDS over CONNECTIONS keep-alive HTTP/1.1 connections (a POST of BODY_FILE as
//! JSON, else a GET), on one thread, as `wrk -t 1` does. Request `k` is due at `k / RATE` seconds;
//! its latency is counted from when it was due, not from when it could be sent, so a server that
//! falls behind pays for the queue it causes (no coordinated omission). Prints one line:
//! `achieved_requests_per_s p50_ms p99_ms p999_ms errors`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// A copy of `request` (a `Request` is not `Clone`).
fn copy(request: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut r = Request::builder().method(request.method()).uri(request.uri());
    for (name, value) in request.headers() {
        r = r.header(name, value);
    }
    r.body(request.body().clone()).expect("a valid request")
}

/// Sends the requests due to connection `lane` of `lanes` and returns their latencies (µs) and
/// the number of failed ones.
async fn lane(
    addr: String,
    request: Request<Full<Bytes>>,
    lane: u64,
    lanes: u64,
    interval: Duration,
    start: tokio::time::Instant,
    total: u64,
) -> (Vec<u32>, u64) {
    let stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let (mut latencies, mut errors) = (Vec::new(), 0);
    let mut k = lane;
    while k < total {
        let due = start + interval * k as u32;
        tokio::time::sleep_until(due).await;
        match sender.send_request(copy(&request)).await {
            Ok(response) => {
                let ok = response.status().is_success();
                if response.into_body().collect().await.is_err() || !ok {
                    errors += 1;
                }
            }
            Err(_) => errors += 1,
        }
        latencies.push(due.elapsed().as_micros().min(u32::MAX as u128) as u32);
        k += lanes;
    }
    (latencies, errors)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [url, rate, seconds, connections, body @ ..] = args.as_slice() else {
        eprintln!("usage: rate URL RATE SECONDS CONNECTIONS [BODY_FILE]");
        std::process::exit(2);
    };
    let uri: hyper::Uri = url.parse().expect("URL");
    let rate: f64 = rate.parse().expect("RATE is requests per second");
    let seconds: f64 = seconds.parse().expect("SECONDS");
    let lanes: u64 = connections.parse().expect("CONNECTIONS");
    let authority = uri.authority().expect("URL has a host").to_string();
    let builder = Request::builder().uri(uri.path_and_query().map_or("/", |p| p.as_str())).header("host", &authority);
    let request = match body.first() {
        Some(file) => builder
            .method("POST")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(std::fs::read(file).expect("BODY_FILE"))))
            .expect("a valid request"),
        None => builder.method("GET").body(Full::new(Bytes::new())).expect("a valid request"),
    };
    let total = (rate * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (mut latencies, errors, elapsed) = rt.block_on(async {
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let began = Instant::now();
        let tasks: Vec<_> = (0..lanes)
            .map(|l| tokio::spawn(lane(authority.clone(), copy(&request), l, lanes, interval, start, total)))
            .collect();
        let (mut all, mut errors) = (Vec::new(), 0);
        for t in tasks {
            let (l, e) = t.await.expect("lane");
            all.extend(l);
            errors += e;
        }
        (all, errors, began.elapsed().as_secs_f64() - 0.1)
    });
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)] as f64 / 1000.0;
    println!("{:.0} {:.3} {:.3} {:.3} {errors}", latencies.len() as f64 / elapsed, at(0.5), at(0.99), at(0.999));
}
