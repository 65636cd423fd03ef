//! Fuzz target for the unary gRPC codec (issue #13): `GrpcKv` and `Kv` over a tower
//! service whose responses are arbitrary. Random `:status`, `content-type` present, absent
//! or wrong, `grpc-status` valid, invalid or missing, in the headers or the trailers; bodies
//! made of valid `RangeResponse`/`PutResponse` messages with their 5-byte prefix, cut at
//! random points into DATA chunks (empty ones and not-ready polls among them), sometimes
//! mutated, sometimes failing midway.
//!
//! Invariants: no panic, no hang; the request is a well-formed gRPC request for what was
//! asked; the outcome is exactly what a model of the protocol says: a value when the
//! response is a success and its body is one prefixed message, equal to what `prost`
//! decodes from the body gathered in one buffer (so, unmutated, what was encoded), and a
//! typed error otherwise. Runs for 2 s under `cargo test`; `ETCD_FUZZ_SECONDS` for longer.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use etcd_core::grpc::GrpcKv;
use etcd_core::{Error, Kv};
use etcd_fuzz::{Case, Rng, clip, hex, mutate, run};
use etcd_proto::etcdserverpb as pb;
use etcd_proto::mvccpb;
use http::HeaderMap;
use http_body::Frame;
use prost::Message;
use tower::ServiceExt;

/// One step of a response body.
#[derive(Clone, Debug)]
enum Step {
    Data(Bytes),
    /// A poll that is not ready yet (woken at once).
    Pending,
    Trailers(HeaderMap),
    Error,
}

/// A response body that plays its steps.
struct Scripted(VecDeque<Step>);

impl http_body::Body for Scripted {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(match self.0.pop_front() {
            None => None,
            Some(Step::Data(data)) => Some(Ok(Frame::data(data))),
            Some(Step::Trailers(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Some(Step::Error) => Some(Err("the connection broke".into())),
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        })
    }
}

/// What the server answers: a transport failure, or a response.
#[derive(Clone, Debug)]
struct Script {
    fail: bool,
    status: u16,
    headers: HeaderMap,
    steps: Vec<Step>,
}

/// The call's kind and what it should send and get back.
#[derive(Clone, Debug)]
enum Op {
    Range(pb::RangeResponse),
    Put(pb::PutResponse),
}

impl Op {
    fn path(&self) -> &'static str {
        match self {
            Op::Range(_) => "/etcdserverpb.KV/Range",
            Op::Put(_) => "/etcdserverpb.KV/Put",
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Op::Range(m) => m.encode_to_vec(),
            Op::Put(m) => m.encode_to_vec(),
        }
    }

    /// What `prost` makes of `message`, as the facade shows it (`Debug`).
    fn reference(&self, message: &[u8]) -> Option<String> {
        match self {
            Op::Range(_) => pb::RangeResponse::decode(message)
                .ok()
                .map(|m| format!("{:?}", etcd_core::kv::GetResponse::from(m))),
            Op::Put(_) => pb::PutResponse::decode(message)
                .ok()
                .map(|m| format!("{:?}", etcd_core::kv::PutResponse::from(m))),
        }
    }
}

fn key_value(rng: &mut Rng) -> mvccpb::KeyValue {
    let key_len = rng.size(40);
    let max = if rng.one_in(8) { 40_000 } else { 64 };
    let value_len = rng.size(max);
    mvccpb::KeyValue {
        key: rng.bytes(key_len).into(),
        create_revision: rng.edgy(63) as i64,
        mod_revision: rng.edgy(63) as i64,
        version: rng.edgy(63) as i64,
        value: rng.bytes(value_len).into(),
        lease: rng.edgy(63) as i64,
    }
}

fn response_header(rng: &mut Rng) -> Option<pb::ResponseHeader> {
    rng.one_in(8).then_some(()).map_or_else(
        || {
            Some(pb::ResponseHeader {
                cluster_id: rng.edgy(64),
                member_id: rng.edgy(64),
                revision: rng.edgy(63) as i64,
                raft_term: rng.edgy(64),
            })
        },
        |()| None,
    )
}

fn op(rng: &mut Rng) -> Op {
    if rng.bool() {
        let max = if rng.one_in(16) { 3000 } else { 8 };
        let count = rng.size(max);
        Op::Range(pb::RangeResponse {
            header: response_header(rng),
            kvs: (0..count).map(|_| key_value(rng)).collect(),
            more: rng.bool(),
            count: rng.edgy(63) as i64,
        })
    } else {
        Op::Put(pb::PutResponse {
            header: response_header(rng),
            prev_kv: rng.bool().then(|| key_value(rng)),
        })
    }
}

/// A `grpc-status` value: mostly 0, else a real failure code or something malformed.
fn grpc_status(rng: &mut Rng) -> &'static str {
    let choices: &[&'static str] = match rng.below(8) {
        0..=4 => &["0"],
        5 | 6 => &["1", "2", "4", "5", "9", "13", "14", "16"],
        _ => &["", "abc", "17", "-1", "1x", "99999999999"],
    };
    let choice: &&str = rng.pick(choices);
    choice
}

fn headers_with_status(rng: &mut Rng, status: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("grpc-status", status.parse().unwrap());
    if status != "0" && rng.bool() {
        headers.insert(
            "grpc-message",
            "etcdserver: %E2%9C%93 failed".parse().unwrap(),
        );
    }
    headers
}

/// The body: the message with its prefix, maybe mutated, cut into chunks, then trailers.
fn script(rng: &mut Rng, message: &[u8]) -> (Script, Vec<u8>) {
    let mut body = BytesMut::new();
    body.put_u8(u8::from(rng.one_in(32)));
    let len = if rng.one_in(32) {
        rng.edgy(32) as u32
    } else {
        message.len() as u32
    };
    body.put_u32(len);
    body.put_slice(message);
    if rng.one_in(32) {
        body.put_slice(&body.clone()); // two messages
    }
    let mut body = body.to_vec();
    if rng.one_in(4) {
        mutate(rng, &mut body, 1 << 20);
    }
    let mut steps = Vec::new();
    let mut rest = &body[..];
    while !rest.is_empty() {
        let take = match rng.below(4) {
            0 => rng.size(8),
            1 => rng.size(rest.len()),
            _ => rest.len(),
        }
        .min(rest.len());
        steps.push(Step::Data(Bytes::copy_from_slice(&rest[..take])));
        rest = &rest[take..];
        if rng.one_in(4) {
            steps.push(if rng.bool() {
                Step::Pending
            } else {
                Step::Data(Bytes::new())
            });
        }
    }
    if rng.one_in(16) {
        let at = rng.below(steps.len() + 1);
        steps.insert(at, Step::Error);
    }
    if !rng.one_in(16) {
        let status = grpc_status(rng);
        let trailers = if rng.one_in(16) {
            HeaderMap::new()
        } else {
            headers_with_status(rng, status)
        };
        steps.push(Step::Trailers(trailers));
    }
    if rng.one_in(8) {
        steps.push(Step::Data(Bytes::from_static(b"after the trailers")));
    }
    let mut headers = HeaderMap::new();
    match rng.below(6) {
        0 => {}
        1 => {
            headers.insert("content-type", "text/html".parse().unwrap());
        }
        2 => {
            headers.insert("content-type", "application/grpc+proto".parse().unwrap());
        }
        _ => {
            headers.insert("content-type", "application/grpc".parse().unwrap());
        }
    }
    if rng.one_in(10) {
        let status = grpc_status(rng);
        headers.extend(headers_with_status(rng, status));
    }
    let status = match rng.below(10) {
        0 => *rng.pick(&[204, 400, 401, 403, 404, 429, 500, 502, 503, 504]),
        1 => rng.between(100, 599) as u16,
        _ => 200,
    };
    let script = Script {
        fail: rng.one_in(32),
        status,
        headers,
        steps,
    };
    (script, body)
}

/// What the codec must make of `script`: the value's `Debug` when it must succeed, `None`
/// when it must fail. Whatever follows the trailers or a body error is never read.
fn model(op: &Op, script: &Script) -> Option<String> {
    let grpc = script.headers.get("content-type").is_some_and(|v| {
        v.as_bytes()
            .strip_prefix(b"application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
    });
    if script.fail || script.headers.contains_key("grpc-status") || script.status != 200 || !grpc {
        return None;
    }
    let mut body = Vec::new();
    for step in &script.steps {
        match step {
            Step::Data(data) => body.extend_from_slice(data),
            Step::Pending => {}
            Step::Error => return None,
            Step::Trailers(trailers) => {
                if trailers.get("grpc-status")? != "0" {
                    return None;
                }
                let mut prefix = body.get(..5)?;
                let (compressed, len) = (prefix.get_u8(), prefix.get_u32());
                if compressed != 0 || len as usize != body.len() - 5 {
                    return None;
                }
                return op.reference(&body[5..]);
            }
        }
    }
    None
}

/// The request as the server saw it: path, headers and message.
type Seen = Arc<Mutex<Option<Result<(String, Vec<u8>), String>>>>;

/// A transport that checks the request, records it and answers with `script`.
async fn serve(
    request: http::Request<tonic::body::Body>,
    script: Script,
    seen: Seen,
) -> Result<http::Response<Scripted>, Box<dyn std::error::Error + Send + Sync>> {
    let checked = check_request(request).await;
    *seen.lock().unwrap() = Some(checked);
    if script.fail {
        return Err("connection refused".into());
    }
    let mut response = http::Response::new(Scripted(script.steps.into()));
    *response.status_mut() = http::StatusCode::from_u16(script.status).unwrap();
    *response.headers_mut() = script.headers;
    Ok(response)
}

/// The path and message of a request, checked to be a well-formed gRPC request.
async fn check_request(
    request: http::Request<tonic::body::Body>,
) -> Result<(String, Vec<u8>), String> {
    let (head, body) = request.into_parts();
    if head.method != http::Method::POST
        || head
            .headers
            .get("content-type")
            .is_none_or(|v| v != "application/grpc")
        || head.headers.get("te").is_none_or(|v| v != "trailers")
    {
        return Err(format!("not a gRPC request: {head:?}"));
    }
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(frame) = poll_fn(|cx| http_body::Body::poll_frame(body.as_mut(), cx)).await {
        let frame = frame.map_err(|e| format!("the request body failed: {e}"))?;
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    let message = match bytes.split_first_chunk::<5>() {
        Some(([0, len @ ..], message)) if u32::from_be_bytes(*len) as usize == message.len() => {
            message.to_vec()
        }
        _ => return Err(format!("a malformed request body: {}", hex(&bytes))),
    };
    Ok((head.uri.path().to_owned(), message))
}

/// Runs the call of `op` over a transport answering with `script`, through the adapter or
/// the `Kv` facade; the outcome as the facade shows it (`Debug`).
async fn call(
    op: &Op,
    script: Script,
    facade: bool,
    key: Bytes,
    seen: Seen,
) -> Result<String, Error> {
    let transport = tower::service_fn(move |request| serve(request, script.clone(), seen.clone()));
    let adapter = GrpcKv::new(transport);
    match (op, facade) {
        (Op::Range(_), false) => {
            let request = pb::RangeRequest {
                key,
                ..Default::default()
            };
            let response = adapter.oneshot(request).await?;
            Ok(format!("{:?}", etcd_core::kv::GetResponse::from(response)))
        }
        (Op::Put(_), false) => {
            let request = pb::PutRequest {
                key,
                value: Bytes::from_static(b"v"),
                ..Default::default()
            };
            let response = adapter.oneshot(request).await?;
            Ok(format!("{:?}", etcd_core::kv::PutResponse::from(response)))
        }
        (Op::Range(_), true) => Ok(format!("{:?}", Kv::new(adapter).get(key).await?)),
        (Op::Put(_), true) => Ok(format!("{:?}", Kv::new(adapter).put(key, "v").await?)),
    }
}

/// The request message the call must have sent.
fn expected_request(op: &Op, key: &Bytes) -> Vec<u8> {
    match op {
        Op::Range(_) => pb::RangeRequest {
            key: key.clone(),
            ..Default::default()
        }
        .encode_to_vec(),
        Op::Put(_) => pb::PutRequest {
            key: key.clone(),
            value: Bytes::from_static(b"v"),
            ..Default::default()
        }
        .encode_to_vec(),
    }
}

/// Runs one case.
fn one_case(runtime: &tokio::runtime::Runtime, case: &mut Case) -> Result<(), String> {
    let rng = &mut case.rng;
    let op = op(rng);
    let message = op.encode();
    let (script, body) = script(rng, &message);
    let facade = rng.bool();
    let key_len = rng.between(1, 16);
    let key = Bytes::from(rng.bytes(key_len));
    let expected = model(&op, &script);
    case.note(format!(
        "{} via {}",
        op.path(),
        if facade { "Kv" } else { "GrpcKv" }
    ));
    case.note(format!(
        "fail: {}, :status {}, headers {:?}",
        script.fail, script.status, script.headers
    ));
    case.note(format!("body ({} bytes): {}", body.len(), short_hex(&body)));
    case.note(format!("steps: {}", describe(&script.steps)));
    let seen = Seen::default();
    let outcome = runtime
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                call(&op, script, facade, key.clone(), seen.clone()),
            )
            .await
        })
        .map_err(|_| "the call hung".to_owned())?;
    let (path, sent) = seen
        .lock()
        .unwrap()
        .take()
        .ok_or("the call sent nothing")??;
    if path != op.path() || sent != expected_request(&op, &key) {
        return Err(format!("the request was {path} {}", hex(&sent)));
    }
    match (outcome, expected) {
        (Ok(got), Some(want)) if got == want => Ok(()),
        (Err(_), None) => Ok(()),
        (got, want) => Err(format!(
            "the call gave {} where {} was due",
            clip(&format!("{got:?}"), 600),
            clip(&format!("{want:?}"), 600)
        )),
    }
}

fn short_hex(data: &[u8]) -> String {
    match data.len() {
        0..=512 => hex(data),
        n => format!("{}… ({n} bytes)", hex(&data[..512])),
    }
}

fn describe(steps: &[Step]) -> String {
    let parts: Vec<String> = steps
        .iter()
        .map(|step| match step {
            Step::Data(data) => format!("data {}", data.len()),
            Step::Pending => "pending".into(),
            Step::Trailers(trailers) => format!("trailers {trailers:?}"),
            Step::Error => "error".into(),
        })
        .collect();
    parts.join(", ")
}

#[test]
fn fuzz_unary() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    run("unary", Duration::from_secs(2), |case| {
        one_case(&runtime, case)
    });
}
