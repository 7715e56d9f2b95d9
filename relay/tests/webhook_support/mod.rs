//! A real webhook receiver for the tests: an HTTP/1.1 server on 127.0.0.1:0 that checks every
//! request's signature, logs it, and answers as the test scripts it (fail, hang past the
//! relay's timeout, 500 then 200).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// What the receiver answers to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Status(u16),
    /// Holds the request this long before answering 200 (past the relay's timeout, it counts
    /// as failed there).
    Hang(Duration),
}

/// One request as the receiver logged it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub kind: String,
    pub room: String,
    pub body: Value,
    pub signature_ok: bool,
    pub key_id: String,
    pub answered: Answer,
}

type Script = dyn Fn(&Value, usize) -> Answer + Send + Sync;

struct State {
    secret: Vec<u8>,
    log: Mutex<Vec<Delivery>>,
    attempts: Mutex<HashMap<String, usize>>,
    script: Mutex<Arc<Script>>,
}

/// The receiver; its URL is [`Receiver::url`].
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts a receiver that checks signatures with `secret` and answers 200.
    pub async fn start(secret: &str) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            secret: secret.as_bytes().to_vec(),
            log: Mutex::new(Vec::new()),
            attempts: Mutex::new(HashMap::new()),
            script: Mutex::new(Arc::new(|_: &Value, _: usize| Answer::Ok)),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Receiver { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How to answer: given the event body and the attempt number of its id (1-based).
    pub fn script(&self, f: impl Fn(&Value, usize) -> Answer + Send + Sync + 'static) {
        *self.state.script.lock().expect("lock") = Arc::new(f);
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Delivery> {
        self.state.log.lock().expect("lock").clone()
    }

    /// What an integrator keeps: the first accepted (2xx) delivery of each id, in the order
    /// they were accepted.
    pub fn accepted(&self) -> Vec<Delivery> {
        let mut seen = std::collections::HashSet::new();
        self.log()
            .into_iter()
            .filter(|d| d.answered == Answer::Ok && seen.insert(d.id.clone()))
            .collect()
    }

    /// Waits (bounded) until `done` holds for the accepted deliveries.
    pub async fn await_accepted(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.accepted();
            if done(&got) {
                return got;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{what}: never came; accepted so far: {:#?}", summary(&got));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `type sub` per delivery, for messages.
pub fn summary(d: &[Delivery]) -> Vec<String> {
    d.iter()
        .map(|d| {
            let sub = d.body["data"]["sub"].as_str().unwrap_or("");
            format!("{} {} {sub}", d.room, d.kind).trim().to_owned()
        })
        .collect()
}

async fn handle(
    st: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, ts, sig, key_id) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        header("webhook-key-id"),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let ts: u64 = ts.parse().unwrap_or(0);
    let signature_ok = assist_relay::webhook::sign::verify(&st.secret, ts, &body, &sig);
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let attempt = {
        let mut a = st.attempts.lock().expect("lock");
        let n = a.entry(id.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let script = st.script.lock().expect("lock").clone();
    let answer = if signature_ok {
        script(&json, attempt)
    } else {
        Answer::Status(401)
    };
    st.log.lock().expect("lock").push(Delivery {
        id,
        kind: json["type"].as_str().unwrap_or("").to_owned(),
        room: json["room"].as_str().unwrap_or("").to_owned(),
        body: json,
        signature_ok,
        key_id,
        answered: answer,
    });
    let status = match answer {
        Answer::Ok => 200,
        Answer::Status(s) => s,
        Answer::Hang(d) => {
            tokio::time::sleep(d).await;
            200
        }
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(b"")));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    Ok(resp)
}
