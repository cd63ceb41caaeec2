//! The kernels, one function per catalog entry (see [`crate::CATALOG`] for parameters).

use crate::params::{object, uint};
use crate::util::{adler32, crc32, text, Fnv, Rng};
use crate::{Error, Result};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// `noop`: no parameters, returns `{}`.
pub fn noop(params: &Value) -> Result<Value> {
    object(params, &[])?;
    Ok(json!({}))
}

/// `echo`: returns its parameters (a JSON object; missing parameters give `{}`).
pub fn echo(params: &Value) -> Result<Value> {
    match params {
        Value::Null => Ok(json!({})),
        Value::Object(_) => Ok(params.clone()),
        _ => Err(Error::new("parameters must be a JSON object")),
    }
}

/// `float_operation` (FunctionBench): `n` iterations of `sin(i) + cos(i) + sqrt(i)`.
/// Result: `{n, sum}`.
pub fn float_operation(params: &Value) -> Result<Value> {
    let m = object(params, &["n"])?;
    let n = uint(m, "n", 100_000, 0..=100_000_000)?;
    let mut sum = 0.0f64;
    for i in 0..n {
        let x = i as f64;
        sum += libm::sin(x) + libm::cos(x) + x.sqrt();
    }
    Ok(json!({ "n": n, "sum": sum }))
}

fn random_matrix(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n * n).map(|_| rng.next_f64() - 0.5).collect()
}

/// `matmul`: C = A·B for deterministic n×n matrices with entries in [-0.5, 0.5).
/// Result: `{n, checksum (sum of C), trace, c_first, c_last}`.
pub fn matmul(params: &Value) -> Result<Value> {
    let m = object(params, &["n"])?;
    let n = uint(m, "n", 200, 1..=1024)? as usize;
    let mut rng = Rng::new(0x6d61_746d_756c);
    let a = random_matrix(n, &mut rng);
    let b = random_matrix(n, &mut rng);
    let mut c = vec![0.0f64; n * n];
    for i in 0..n {
        let row = &mut c[i * n..(i + 1) * n];
        for k in 0..n {
            let aik = a[i * n + k];
            for (cij, bkj) in row.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                *cij += aik * bkj;
            }
        }
    }
    let checksum: f64 = c.iter().sum();
    let trace: f64 = (0..n).map(|i| c[i * n + i]).sum();
    Ok(json!({
        "n": n,
        "checksum": checksum,
        "trace": trace,
        "c_first": c[0],
        "c_last": c[n * n - 1],
    }))
}

/// `linpack` (FunctionBench): solve A·x = b by LU decomposition with partial pivoting, for a
/// deterministic n×n A with entries in [-0.5, 0.5) and b = A·1 (so x ≈ 1).
/// Result: `{n, residual (max |A·x - b|), max_error (max |x - 1|), checksum (sum of x)}`.
pub fn linpack(params: &Value) -> Result<Value> {
    let m = object(params, &["n"])?;
    let n = uint(m, "n", 300, 1..=1024)? as usize;
    let mut rng = Rng::new(0x6c69_6e70_616b);
    let a0 = random_matrix(n, &mut rng);
    let b0: Vec<f64> = (0..n)
        .map(|i| a0[i * n..(i + 1) * n].iter().sum())
        .collect();
    let mut a = a0.clone();
    let mut x = b0.clone();
    // Forward elimination with partial pivoting, applied to the right-hand side as we go.
    for k in 0..n {
        let p = (k..n)
            .max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs()))
            .unwrap_or(k);
        if a[p * n + k] == 0.0 {
            return Err(Error::new("the matrix is singular"));
        }
        if p != k {
            for j in 0..n {
                a.swap(k * n + j, p * n + j);
            }
            x.swap(k, p);
        }
        let (top, bottom) = a.split_at_mut((k + 1) * n);
        let pivot_row = &top[k * n..];
        let pivot = pivot_row[k];
        for (r, row) in bottom.chunks_exact_mut(n).enumerate() {
            let f = row[k] / pivot;
            if f != 0.0 {
                for (aij, akj) in row[k..].iter_mut().zip(&pivot_row[k..]) {
                    *aij -= f * akj;
                }
                x[k + 1 + r] -= f * x[k];
            }
        }
    }
    // Back substitution.
    for k in (0..n).rev() {
        let s: f64 = (k + 1..n).map(|j| a[k * n + j] * x[j]).sum();
        x[k] = (x[k] - s) / a[k * n + k];
    }
    let residual = (0..n)
        .map(|i| {
            let ax: f64 = a0[i * n..(i + 1) * n]
                .iter()
                .zip(&x)
                .map(|(a, x)| a * x)
                .sum();
            (ax - b0[i]).abs()
        })
        .fold(0.0f64, f64::max);
    let max_error = x.iter().map(|v| (v - 1.0).abs()).fold(0.0f64, f64::max);
    let checksum: f64 = x.iter().sum();
    Ok(json!({ "n": n, "residual": residual, "max_error": max_error, "checksum": checksum }))
}

/// `aes` (FunctionBench pyaes): `iterations` rounds of AES-128-CTR encryption and decryption
/// of a deterministic `length`-byte message, with a fresh counter block per round.
/// Result: `{length, iterations, checksum (FNV-1a of all ciphertexts, hex), verified}`.
pub fn aes(params: &Value) -> Result<Value> {
    use aes::cipher::{KeyIvInit, StreamCipher};
    type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

    let m = object(params, &["length", "iterations"])?;
    let length = uint(m, "length", 16384, 1..=8 * MIB)? as usize;
    let iterations = uint(m, "iterations", 16, 1..=100_000)?;
    if length as u64 * iterations > 1 << 32 {
        return Err(Error::new("length * iterations must be at most 4 GiB"));
    }
    let key: [u8; 16] = *b"ditto-aes-key-01";
    let message = text(length, 0x0061_6573);
    let mut fnv = Fnv::new();
    let mut buf = vec![0u8; length];
    let mut verified = true;
    for i in 0..iterations {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&i.to_be_bytes());
        buf.copy_from_slice(&message);
        Aes128Ctr::new(&key.into(), &iv.into()).apply_keystream(&mut buf);
        fnv.update(&buf);
        Aes128Ctr::new(&key.into(), &iv.into()).apply_keystream(&mut buf);
        verified &= buf == message;
    }
    if !verified {
        return Err(Error::new("decryption did not give back the message"));
    }
    Ok(json!({
        "length": length,
        "iterations": iterations,
        "checksum": fnv.hex(),
        "verified": verified,
    }))
}

/// The built-in document for `json`: 40 user records with nested objects and arrays
/// (only exactly representable floats, so a round trip gives back an equal value).
fn json_document() -> Value {
    let mut rng = Rng::new(0x6a73_6f6e);
    let cities = ["Zurich", "Berlin", "Lisbon", "Seoul", "Austin", "Nairobi"];
    let tags = ["admin", "beta", "ops", "dev", "ml", "sre", "qa", "pm"];
    let users: Vec<Value> = (0..40)
        .map(|i| {
            let t: Vec<&str> = (0..1 + rng.below(4))
                .map(|_| tags[rng.below(tags.len())])
                .collect();
            json!({
                "id": i,
                "name": format!("user-{i:04}"),
                "email": format!("user{i}@example.org"),
                "active": rng.below(2) == 1,
                "score": rng.below(8000) as f64 / 8.0,
                "tags": t,
                "address": {
                    "street": format!("{} Main St", 1 + rng.below(999)),
                    "city": cities[rng.below(cities.len())],
                    "zip": format!("{:05}", rng.below(100_000)),
                },
                "history": (0..3).map(|_| rng.below(1000)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "version": 3,
        "generator": "ditto-functions",
        "escaped": "quote \" backslash \\ tab \t unicode \u{e9}\u{1F980}",
        "users": users,
    })
}

fn count_nodes(v: &Value) -> u64 {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// `json` (FunctionBench json_dumps_loads): `rounds` serialise+parse round trips of a built-in
/// document. Result: `{rounds, bytes (document size), nodes, checksum (FNV-1a, hex)}`.
pub fn json(params: &Value) -> Result<Value> {
    let m = object(params, &["rounds"])?;
    let rounds = uint(m, "rounds", 100, 1..=100_000)?;
    let doc = json_document();
    let mut text = String::new();
    let mut nodes = 0;
    for _ in 0..rounds {
        text = serde_json::to_string(black_box(&doc)).map_err(|e| Error::new(e.to_string()))?;
        let back: Value = serde_json::from_str(&text).map_err(|e| Error::new(e.to_string()))?;
        nodes = count_nodes(&back);
        if back != doc {
            return Err(Error::new("the round trip changed the document"));
        }
    }
    let mut fnv = Fnv::new();
    fnv.update(text.as_bytes());
    Ok(json!({ "rounds": rounds, "bytes": text.len(), "nodes": nodes, "checksum": fnv.hex() }))
}

/// `compress` (FunctionBench compression): deflate (level 6) then inflate `size` bytes of
/// generated text with `miniz_oxide`. Result: `{size, compressed_size, adler32 (of the
/// input), crc32 (of the compressed stream)}`.
pub fn compress(params: &Value) -> Result<Value> {
    let m = object(params, &["size"])?;
    let size = uint(m, "size", 128 * 1024, 1..=16 * MIB)? as usize;
    let data = text(size, 0x7a6c_6962);
    let compressed = miniz_oxide::deflate::compress_to_vec(&data, 6);
    let back = miniz_oxide::inflate::decompress_to_vec_with_limit(&compressed, size)
        .map_err(|e| Error::new(format!("inflate failed: {e}")))?;
    if back != data {
        return Err(Error::new("inflate did not give back the input"));
    }
    Ok(json!({
        "size": size,
        "compressed_size": compressed.len(),
        "adler32": adler32(&data),
        "crc32": crc32(&compressed),
    }))
}

fn escape_into(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `html_template` (FunctionBench chameleon): render a `rows`×`cols` HTML table with escaped
/// cell text into a string. Result: `{rows, cols, length, checksum (FNV-1a, hex)}`.
pub fn html_template(params: &Value) -> Result<Value> {
    let m = object(params, &["rows", "cols"])?;
    let rows = uint(m, "rows", 1000, 1..=100_000)?;
    let cols = uint(m, "cols", 10, 1..=1000)?;
    if rows * cols > 250_000 {
        return Err(Error::new("rows * cols must be at most 250000"));
    }
    let mut html = String::with_capacity((rows * cols * 48) as usize + 512);
    let mut cell = String::new();
    html.push_str("<!DOCTYPE html>\n<html><head><title>Ditto &amp; friends</title></head><body>\n");
    html.push_str("<table class=\"data\">\n<thead><tr>");
    for c in 0..cols {
        // Writing into a String cannot fail.
        let _ = write!(html, "<th>col {c}</th>");
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for r in 0..rows {
        let _ = write!(
            html,
            "<tr class=\"{}\">",
            if r % 2 == 0 { "even" } else { "odd" }
        );
        for c in 0..cols {
            cell.clear();
            let _ = write!(cell, "r{r}c{c} <{}> & \"{}\"", r * cols + c, (r ^ c) % 7);
            html.push_str("<td>");
            escape_into(&mut html, &cell);
            html.push_str("</td>");
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n</body></html>\n");
    let mut fnv = Fnv::new();
    fnv.update(html.as_bytes());
    Ok(json!({ "rows": rows, "cols": cols, "length": html.len(), "checksum": fnv.hex() }))
}

fn fib_rec(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib_rec(n - 1) + fib_rec(n - 2)
    }
}

/// `fib`: naive recursive Fibonacci. Result: `{n, fib}`.
pub fn fib(params: &Value) -> Result<Value> {
    let m = object(params, &["n"])?;
    let n = uint(m, "n", 30, 0..=40)? as u32;
    Ok(json!({ "n": n, "fib": fib_rec(black_box(n)) }))
}

/// `spin`: busy work (xorshift steps in batches of 1024) until `ms` milliseconds have passed
/// on the monotonic clock. Result: `{ms, iterations, elapsed_us}`; only this kernel depends
/// on time.
pub fn spin(params: &Value) -> Result<Value> {
    let m = object(params, &["ms"])?;
    let ms = uint(m, "ms", 10, 0..=60_000)?;
    let target = Duration::from_millis(ms);
    let start = Instant::now();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut iterations = 0u64;
    loop {
        for _ in 0..1024 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        x = black_box(x);
        iterations += 1024;
        if start.elapsed() >= target {
            break;
        }
    }
    Ok(json!({
        "ms": ms,
        "iterations": iterations,
        "elapsed_us": start.elapsed().as_micros() as u64,
    }))
}
