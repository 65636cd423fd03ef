//! A minimal HTTP/1.1 client over a tokio `TcpStream`, for etcd's `/health`
//! and its JSON gateway.
//!
//! The kit uses it to probe etcd's `/health` endpoint and, for
//! [`EtcdCluster`](crate::EtcdCluster), to find the leader and change the
//! membership. Tests can use it to look at etcd through its JSON gateway
//! ([`kv_put`], [`kv_get`], or any `/v3/...` path with [`post`]) without going
//! through the client under test: an independent view of the data. Both etcd
//! 3.4 and 3.5 serve these on the client URL.
//!
//! Only plain `http://` URLs are supported (no TLS). Requests are sent with
//! `Connection: close` and the response is read to the end; `Content-Length`
//! and chunked bodies are both understood.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use etcd_testkit::{http, shared_server, unique_prefix};
//!
//! let url = shared_server().client_url();
//! let key = format!("{}config", unique_prefix("http_example"));
//! assert_eq!(http::kv_get(&url, key.as_bytes()).await.unwrap(), None);
//! http::kv_put(&url, key.as_bytes(), b"on").await.unwrap();
//! assert_eq!(http::kv_get(&url, key.as_bytes()).await.unwrap(), Some(b"on".to_vec()));
//!
//! // Any other gateway call, e.g. the member's status (64-bit numbers come as strings).
//! let status = http::post(&url, "/v3/maintenance/status", "{}", Duration::from_secs(2))
//!     .await
//!     .unwrap();
//! assert_eq!(status.status, 200);
//! assert!(status.body.contains(r#""leader":""#), "{}", status.body);
//! # }
//! ```

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Timeout used by [`kv_put`] and [`kv_get`].
pub const GATEWAY_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. `200`.
    pub status: u16,
    /// Body, decoded as UTF-8 (lossily).
    pub body: String,
}

/// Sends `GET <path>` to `url` (`http://host:port`), giving up after
/// `timeout` in total.
pub async fn get(url: &str, path: &str, timeout: Duration) -> io::Result<Response> {
    request(url, "GET", path, None, timeout).await
}

/// Sends `POST <path>` with a JSON `body` to `url` (`http://host:port`),
/// giving up after `timeout` in total.
pub async fn post(url: &str, path: &str, body: &str, timeout: Duration) -> io::Result<Response> {
    request(url, "POST", path, Some(body), timeout).await
}

/// Whether `GET /health` on `url` answers `"health":"true"` within
/// `timeout`. Errors and timeouts count as unhealthy.
pub async fn is_healthy(url: &str, timeout: Duration) -> bool {
    match get(url, "/health", timeout).await {
        Ok(resp) => resp.status == 200 && resp.body.contains(r#""health":"true""#),
        Err(_) => false,
    }
}

/// Puts `key = value` through etcd's JSON gateway (`POST /v3/kv/put`).
pub async fn kv_put(url: &str, key: &[u8], value: &[u8]) -> io::Result<()> {
    let body = format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        base64_encode(key),
        base64_encode(value)
    );
    let resp = post(url, "/v3/kv/put", &body, GATEWAY_TIMEOUT).await?;
    if resp.status != 200 {
        return Err(io::Error::other(format!(
            "kv put failed: {} {}",
            resp.status, resp.body
        )));
    }
    Ok(())
}

/// Reads `key` through etcd's JSON gateway (`POST /v3/kv/range`, a
/// linearizable read). Returns `None` when the key does not exist.
pub async fn kv_get(url: &str, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let body = format!(r#"{{"key":"{}"}}"#, base64_encode(key));
    let resp = post(url, "/v3/kv/range", &body, GATEWAY_TIMEOUT).await?;
    if resp.status != 200 {
        return Err(io::Error::other(format!(
            "kv range failed: {} {}",
            resp.status, resp.body
        )));
    }
    if !resp.body.contains(r#""kvs""#) {
        return Ok(None);
    }
    // The gateway omits empty values, so a present key with an empty value
    // has no "value" field.
    let Some(start) = resp.body.find(r#""value":""#) else {
        return Ok(Some(Vec::new()));
    };
    let rest = &resp.body[start + r#""value":""#.len()..];
    let encoded = &rest[..rest.find('"').unwrap_or(rest.len())];
    base64_decode(encoded)
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("bad base64 in gateway reply: {}", resp.body)))
}

fn host_port(url: &str) -> io::Result<&str> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not an http:// URL: {url}"),
        )
    })?;
    Ok(rest.split('/').next().unwrap_or(rest))
}

async fn request(
    url: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<Response> {
    let host = host_port(url)?;
    let fut = async {
        let mut stream = TcpStream::connect(host).await?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        if let Some(body) = body {
            req.push_str("Content-Type: application/json\r\n");
            req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        } else {
            req.push_str("\r\n");
        }
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw)
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{method} {url}{path} timed out after {timeout:?}"),
        )
    })?
}

fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("HTTP response without end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("HTTP response without a status line"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("malformed chunked body"))?
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_line = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b""), "");
        for len in 0..20 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
        }
    }

    #[test]
    fn parses_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"health\":\"true\"}";
        let r = parse_response(plain).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, r#"{"health":"true"}"#);
        let chunked =
            b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse_response(chunked).unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, "abcde"));
    }
}
