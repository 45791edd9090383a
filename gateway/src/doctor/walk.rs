//! The HTTP walk: the requests claude.ai, ChatGPT and Claude Code send, in their order,
//! each answer handed to its judge (`judge.rs`). The only I/O of the doctor's checks.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, ORIGIN};
use reqwest::{Method, RequestBuilder};
use serde_json::Value;

use super::judge::{self, Fetched, MetadataForm, Outcome, BROWSER_ORIGIN, KNOWN_CLIENTS};
use super::report::{Check, Report};
use super::DoctorError;
use crate::error_chain::error_chain;
use crate::net::{parse_http_url, Url};

/// One request may take this long: clients give up sooner than people do.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Metadata and error bodies are small; a server that streams more is cut off here.
const BODY_CAP: usize = 256 * 1024;

pub(super) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

pub(super) fn http_client() -> Result<reqwest::Client, DoctorError> {
    reqwest::Client::builder()
        // Clients do not follow redirects during discovery; neither does the doctor,
        // so a redirect is reported instead of hidden.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .tls_info(true)
        .user_agent(concat!("chmcp-gateway-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DoctorError::Client(error_chain(&e)))
}

/// A response as the judges see it, and the server's certificate when there was TLS.
pub(super) struct Answer {
    pub outcome: Outcome,
    pub peer_certificate: Option<Vec<u8>>,
    /// This machine's clock when the answer arrived.
    pub at: i64,
}

pub(super) async fn send(req: RequestBuilder) -> Answer {
    let response = req.send().await;
    let at = now_unix();
    let mut response = match response {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                outcome: Err(error_chain(&e)),
                peer_certificate: None,
                at,
            }
        }
    };
    let peer_certificate = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .map(<[u8]>::to_vec);
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > BODY_CAP {
                    body.truncate(BODY_CAP);
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                return Answer {
                    outcome: Err(error_chain(&e)),
                    peer_certificate,
                    at,
                }
            }
        }
    }
    Answer {
        outcome: Ok(Fetched {
            status,
            headers,
            body,
        }),
        peer_certificate,
        at,
    }
}

fn initialize(client: &reqwest::Client, url: &Url) -> RequestBuilder {
    client
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(judge::initialize_request().to_string())
}

/// GETs, each URL at most once per run.
struct Fetcher<'a> {
    client: &'a reqwest::Client,
    seen: HashMap<String, Outcome>,
}

impl Fetcher<'_> {
    async fn get(&mut self, url: &str) -> Outcome {
        if let Some(o) = self.seen.get(url) {
            return o.clone();
        }
        let o = send(self.client.get(url).header(ACCEPT, "application/json"))
            .await
            .outcome;
        self.seen.insert(url.to_string(), o.clone());
        o
    }
}

/// What the walk learnt that `--login` needs.
pub(super) struct Discovered {
    pub resource: String,
    pub scopes: Vec<String>,
    pub auth_server: Value,
}

/// Runs every check against `pasted` (the URL exactly as the person gave it).
pub(super) async fn walk(
    pasted: &str,
    origin: Option<&str>,
) -> Result<(Report, Option<Discovered>), DoctorError> {
    let url = parse_http_url(pasted).map_err(|e| DoctorError::Url(e.to_string()))?;
    let client = http_client()?;
    let mut checks = Vec::new();
    let first = send(initialize(&client, &url)).await;
    let (challenge, challenge_url) = judge::challenge(&first.outcome, pasted);
    checks.push(challenge);
    if let Err(e) = &first.outcome {
        // Nothing else can be reached; say whether TLS was the reason.
        for id in checks_after_challenge() {
            checks.push(Check::blocked(id, "a connection to the server"));
        }
        checks.push(if judge::is_tls_error(e) {
            judge::tls_failure(pasted, e)
        } else {
            Check::blocked("tls", "a connection to the server")
        });
        checks.push(Check::blocked("clock", "a connection to the server"));
        return Ok((report(pasted, checks), None));
    }

    // 2. Protected-resource metadata: the challenge's URL, then the two well-known forms.
    let mut fetcher = Fetcher {
        client: &client,
        seen: HashMap::new(),
    };
    let (inserted, root) = judge::resource_metadata_urls(&url);
    let mut path_check = None;
    let mut path_doc = None;
    if let Some(u) = &inserted {
        let o = fetcher.get(u.as_str()).await;
        let (c, d) =
            judge::resource_metadata(MetadataForm::PathInserted, u.as_str(), &o, pasted, false);
        path_check = Some(c);
        path_doc = d.map(|d| (u.to_string(), d));
    }
    let (challenge_check, challenge_doc) = match &challenge_url {
        Some(u) => {
            let o = fetcher.get(u).await;
            let (c, d) = judge::resource_metadata(MetadataForm::Challenge, u, &o, pasted, false);
            (c, d.map(|d| (u.clone(), d)))
        }
        None => (
            Check::skip(
                MetadataForm::Challenge.id(),
                "the challenge names no metadata URL",
            ),
            None,
        ),
    };
    let root_outcome = fetcher.get(root.as_str()).await;
    let (root_check, root_doc) = judge::resource_metadata(
        MetadataForm::Root,
        root.as_str(),
        &root_outcome,
        pasted,
        path_doc.is_some(),
    );
    checks.push(challenge_check);
    checks.push(path_check.unwrap_or_else(|| {
        Check::skip(
            MetadataForm::PathInserted.id(),
            "the URL has no path: the root form is the one",
        )
    }));
    checks.push(root_check);
    // The document a client goes on with: the challenge's, else the path form, else root.
    let chosen = challenge_doc
        .or(path_doc)
        .or_else(|| root_doc.map(|d| (root.to_string(), d)));

    // 3-5. Authorization-server metadata, PKCE, registration.
    let mut as_doc_url = None;
    let mut as_doc = None;
    match &chosen {
        None => {
            for id in auth_server_ids() {
                checks.push(Check::blocked(id, "protected-resource metadata"));
            }
        }
        Some((_, prm)) => {
            let issuer = prm
                .authorization_servers
                .first()
                .cloned()
                .unwrap_or_default();
            match Url::parse(&issuer) {
                Err(e) => {
                    checks.push(Check::fail(
                        "auth_server_metadata",
                        format!("authorization server \"{issuer}\""),
                        format!("not an absolute URL: {e}"),
                        "list the authorization server's issuer URL in `authorization_servers`",
                    ));
                    for id in auth_server_ids().skip(1) {
                        checks.push(Check::blocked(id, "authorization-server metadata"));
                    }
                }
                Ok(issuer_url) => {
                    let mut tried = Vec::new();
                    for (variant, u) in judge::auth_server_metadata_urls(&issuer_url) {
                        let o = fetcher.get(u.as_str()).await;
                        let found = matches!(&o, Ok(r) if r.status == 200);
                        tried.push((variant, u.to_string(), o));
                        if found {
                            break;
                        }
                    }
                    let (c, doc) = judge::auth_server_metadata(&issuer, &tried);
                    checks.push(c);
                    as_doc_url = tried.last().map(|(_, u, _)| u.clone());
                    match doc {
                        None => {
                            for id in auth_server_ids().skip(1) {
                                checks.push(Check::blocked(id, "authorization-server metadata"));
                            }
                        }
                        Some(doc) => {
                            checks.push(judge::pkce(&doc));
                            checks.extend(registrations(&client, &doc).await);
                            as_doc = Some(doc);
                        }
                    }
                }
            }
        }
    }

    // 6. CORS, as a browser client sends it: a hard check only for an origin named with
    // --origin, else a note (judge::as_note).
    let cors_origin = origin.unwrap_or(BROWSER_ORIGIN);
    let judged = |c: Check| {
        if origin.is_some() {
            c
        } else {
            judge::as_note(c)
        }
    };
    let preflight = send(
        client
            .request(Method::OPTIONS, url.clone())
            .header(ORIGIN, cors_origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                HeaderValue::from_static("authorization,content-type,mcp-protocol-version"),
            ),
    )
    .await;
    checks.push(judged(judge::preflight(
        pasted,
        cors_origin,
        &preflight.outcome,
    )));
    let cross = send(initialize(&client, &url).header(ORIGIN, cors_origin)).await;
    checks.push(judged(judge::cross_origin_challenge(
        pasted,
        cors_origin,
        &cross.outcome,
    )));
    for (id, doc_url, needs) in [
        (
            "cors.resource_metadata",
            chosen.as_ref().map(|(u, _)| u.clone()),
            "protected-resource metadata",
        ),
        (
            "cors.auth_server_metadata",
            as_doc.as_ref().and(as_doc_url),
            "authorization-server metadata",
        ),
    ] {
        checks.push(match doc_url {
            Some(u) => {
                let o = send(client.get(&u).header(ORIGIN, cors_origin))
                    .await
                    .outcome;
                judged(judge::metadata_cors(id, &u, cors_origin, &o))
            }
            None => Check::blocked(id, needs),
        });
    }

    // 7-8. TLS and clock, from the first answer.
    checks.push(judge::tls(
        &url,
        first.peer_certificate.as_deref(),
        first.at,
    ));
    let date = match &first.outcome {
        Ok(r) => r
            .headers
            .get("date")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        Err(_) => None,
    };
    checks.push(judge::clock(date.as_deref(), first.at));

    let discovered = match (chosen, as_doc) {
        (Some((_, prm)), Some(doc)) => Some(Discovered {
            resource: prm.resource,
            scopes: prm.scopes,
            auth_server: doc,
        }),
        _ => None,
    };
    Ok((report(pasted, checks), discovered))
}

/// What the authorization-server metadata leads to, in report order: the document, PKCE,
/// then registration, advertised and as each known client.
fn auth_server_ids() -> impl Iterator<Item = &'static str> {
    ["auth_server_metadata", "pkce", "registration"]
        .into_iter()
        .chain(KNOWN_CLIENTS.iter().map(|c| c.id))
}

/// The ids of the sign-in checks after `challenge`, in report order (`tls` and `clock`,
/// about the connection, follow them). One list, so a check added to the walk is also
/// blocked when the server cannot be reached, and the tests see it.
pub fn checks_after_challenge() -> impl Iterator<Item = &'static str> {
    [
        MetadataForm::Challenge.id(),
        MetadataForm::PathInserted.id(),
        MetadataForm::Root.id(),
    ]
    .into_iter()
    .chain(auth_server_ids())
    .chain([
        "cors.preflight",
        "cors.challenge",
        "cors.resource_metadata",
        "cors.auth_server_metadata",
    ])
}

/// The registration checks: advertised, then one throwaway registration per known client.
async fn registrations(client: &reqwest::Client, doc: &Value) -> Vec<Check> {
    let (advertised, endpoint) = judge::registration(doc);
    let failed = !advertised.level.ok();
    let mut out = vec![advertised];
    for known in &KNOWN_CLIENTS {
        out.push(match &endpoint {
            _ if failed => Check::blocked(known.id, "a way to register"),
            None => Check::skip(
                known.id,
                format!(
                    "no dynamic registration: {} uses a client ID metadata document",
                    known.name
                ),
            ),
            Some(e) => {
                let o = send(
                    client
                        .post(e)
                        .header(CONTENT_TYPE, "application/json")
                        .body(judge::registration_request(known).to_string()),
                )
                .await
                .outcome;
                judge::registered(known, e, &o)
            }
        });
    }
    out
}

fn report(pasted: &str, checks: Vec<Check>) -> Report {
    Report {
        url: pasted.to_string(),
        checks,
        notes: Vec::new(),
    }
}
