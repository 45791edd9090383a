//! stdio transport (local use): newline-delimited JSON-RPC on stdin/stdout, logs on
//! stderr. Requests run concurrently so `notifications/cancelled` can stop one.

use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::dispatch::RpcError;
use super::protocol::{self, Era};
use super::run::{answer_request, contain_panics, run_cancellable};
use super::{classify_message, Incoming};
use crate::app::App;
use crate::telemetry::trace;

const STDIO_SCOPE: &str = "stdio";

pub async fn run(app: Arc<App>) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<String>(64);
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(mut line) = rx.recv().await {
            line.push('\n');
            if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                break;
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let _ = tx
                    .send(
                        RpcError::new(protocol::PARSE_ERROR, format!("Parse error: {e}"))
                            .to_json(&Value::Null)
                            .to_string(),
                    )
                    .await;
                continue;
            }
        };
        match classify_message(value) {
            Err(e) => {
                let _ = tx
                    .send(
                        RpcError::new(protocol::INVALID_REQUEST, format!("Invalid Request: {e}"))
                            .to_json(&Value::Null)
                            .to_string(),
                    )
                    .await;
            }
            Ok(Incoming::Response) => {}
            Ok(Incoming::Notification { method, params }) => {
                if method == "notifications/cancelled" {
                    if let Some(rid) = params.as_ref().and_then(|p| p.get("requestId")) {
                        app.inflight.cancel(Some(STDIO_SCOPE), &rid.to_string());
                    }
                }
            }
            Ok(Incoming::Request { id, method, params }) => {
                let (app, tx) = (app.clone(), tx.clone());
                tokio::spawn(async move {
                    let generation = app.generation();
                    let identity = generation.static_identity.clone();
                    let era = if params
                        .as_ref()
                        .and_then(|p| p.get("_meta"))
                        .and_then(|m| m.get(protocol::META_PROTOCOL_VERSION))
                        .is_some()
                    {
                        Era::Stateless
                    } else {
                        Era::Initialize
                    };
                    let work = trace::in_request(
                        app.tracer.as_ref(),
                        trace::meta_context(params.as_ref()),
                        || trace::request_span(&id, &method, params.as_ref()),
                        contain_panics(
                            &app.metrics,
                            answer_request(&app, &generation, &identity, era, &method, &params),
                        ),
                    );
                    let run = run_cancellable(&app.inflight, Some(STDIO_SCOPE), &id, work);
                    let token = (method == "tools/call")
                        .then(|| crate::cost::progress::requested_token(params.as_ref()))
                        .flatten();
                    let result = match token {
                        // Progress notifications go out on stdout before the answer.
                        Some(token) => {
                            let (reporter, mut notes) = crate::cost::progress::Reporter::new(token);
                            let out = tx.clone();
                            let forward = tokio::spawn(async move {
                                while let Some(n) = notes.recv().await {
                                    if out.send(n.to_string()).await.is_err() {
                                        break;
                                    }
                                }
                            });
                            let run: std::pin::Pin<
                                Box<dyn std::future::Future<Output = _> + Send + '_>,
                            > = Box::pin(run);
                            let result = reporter.scope(run).await;
                            let _ = forward.await;
                            result
                        }
                        None => run.await,
                    };
                    let answer = match result {
                        Ok(answer) => answer.response_text(&id),
                        Err(e) => e.to_json(&id).to_string(),
                    };
                    let _ = tx.send(answer).await;
                });
            }
        }
    }
    // stdin closed: the client is gone. Let answers in flight drain briefly.
    drop(tx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
    Ok(())
}
