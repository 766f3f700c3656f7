//! Load generator for the benchmarks: POSTs one multipart form to a URL from
//! N concurrent clients for a fixed time and prints requests/s and latency.
//! Every reply must be 200 with a non-empty body, or the run fails.
//!
//! `cargo run --release -p gateway --example post_load -- URL SECONDS CONCURRENCY name=value name=@file ...`

use std::sync::Arc;
use std::time::{Duration, Instant};

/// A form field's value: text, or a file's name and contents (`@path`).
enum FieldValue {
    Text(String),
    File { name: String, bytes: Vec<u8> },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: post_load URL SECONDS CONCURRENCY field=value|field=@file ...".into());
    }
    let url = args[0].clone();
    let seconds: f64 = args[1].parse()?;
    let concurrency: usize = args[2].parse()?;
    let mut fields: Vec<(String, FieldValue)> = Vec::new();
    for field in &args[3..] {
        let (name, value) = field.split_once('=').ok_or("fields are name=value")?;
        let value = match value.strip_prefix('@') {
            Some(path) => FieldValue::File {
                name: path.rsplit('/').next().unwrap().to_string(),
                bytes: std::fs::read(path)?,
            },
            None => FieldValue::Text(value.to_string()),
        };
        fields.push((name.to_string(), value));
    }
    let fields = Arc::new(fields);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, fields) = (client.clone(), url.clone(), fields.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let mut form = reqwest::multipart::Form::new();
                for (name, value) in fields.iter() {
                    form = match value {
                        FieldValue::Text(text) => form.text(name.clone(), text.clone()),
                        FieldValue::File { name: file, bytes } => form.part(
                            name.clone(),
                            reqwest::multipart::Part::bytes(bytes.clone())
                                .file_name(file.clone())
                                .mime_str("application/octet-stream")
                                .unwrap(),
                        ),
                    };
                }
                let t0 = Instant::now();
                let reply = client.post(&url).multipart(form).send().await?;
                let status = reply.status();
                let body = reply.bytes().await?;
                if status != 200 || body.is_empty() {
                    return Err(format!("{status}: {}", String::from_utf8_lossy(&body)).into());
                }
                latencies.push(t0.elapsed());
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "requests={} seconds={elapsed:.2} rps={:.0} p50_ms={:.2} p99_ms={:.2}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
