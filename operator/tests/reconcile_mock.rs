//! The reconciler against kube's `Client` over a `tower-test` mock API server: every
//! request is checked (method, path, field manager, body) and every response scripted.
//! No real API server is involved; what only a real one shows is listed in
//! docs/operator.md.

use std::sync::Arc;
use std::time::Duration;

use chmcp_operator::crd::McpMultiCluster;
use chmcp_operator::reconcile::{reconcile, Context};
use chmcp_operator::render::{render, SecretVersions, CONFIG_HASH_ANNOTATION};
use chmcp_operator::telemetry::Metrics;
use chmcp_operator::validate::validate;
use http::{Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::oneshot;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NS: &str = "mcp";
const IMAGE: &str = "registry.test/chmcp-gateway:test";
const SECRETS: &str = "/api/v1/namespaces/mcp/secrets";
const CONFIGMAP: &str = "/api/v1/namespaces/mcp/configmaps/analytics-gateway";
const SERVICE: &str = "/api/v1/namespaces/mcp/services/analytics-gateway";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/mcp/deployments/analytics-gateway";
const INGRESSES: &str = "/apis/networking.k8s.io/v1/namespaces/mcp/ingresses";
const PDBS: &str = "/apis/policy/v1/namespaces/mcp/poddisruptionbudgets";
const STATUS: &str = "/apis/chmcp.dev/v1alpha1/namespaces/mcp/mcpmulticlusters/analytics/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/mcp/events";

const RESOURCE: &str = r#"
apiVersion: chmcp.dev/v1alpha1
kind: McpMultiCluster
metadata: {name: analytics, namespace: mcp, uid: 0b9e-uid, generation: 1, resourceVersion: "100"}
spec:
  replicas: 2
  clickhouse:
    hostTemplate: "chi-{cluster}-{cluster}-0-0.clickhouse.svc"
    tls: {enabled: true, caSecretRef: {name: ch-ca, key: ca.crt}}
  clusters: [{name: otel}, {name: antalya, host: ch-antalya.internal}, {name: logs}]
  oauth:
    issuer: https://accounts.google.com
    audience: https://mcp.example.com/
    publicUrl: https://mcp.example.com
    clientId: client.apps.googleusercontent.com
    clientSecretRef: {name: mcp-oauth, key: client-secret}
    signingSecretRef: {name: mcp-oauth, key: signing-secret}
  ingress: {enabled: true, className: nginx, host: mcp.example.com, tlsSecretName: mcp-tls}
"#;

fn resource() -> McpMultiCluster {
    serde_yaml_ng::from_str(RESOURCE).unwrap()
}

/// One request as the mock API server saw it.
#[derive(Debug)]
struct Call {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

impl Call {
    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }

    fn assert_applied_by_the_operator(&self) {
        assert_eq!(self.method, "PATCH", "{} {}", self.method, self.path);
        assert_eq!(
            self.content_type, "application/apply-patch+yaml",
            "server-side apply for {}",
            self.path
        );
        assert!(
            self.query.contains("fieldManager=chmcp-operator"),
            "one field manager: {}",
            self.query
        );
        assert!(self.query.contains("force=true"), "{}", self.query);
    }
}

/// A scripted step: checks the request and answers it.
type Step = Box<dyn FnOnce(&Call) -> (u16, Value) + Send>;

fn step(
    method: &'static str,
    path: impl Into<String>,
    respond: impl FnOnce(&Call) -> (u16, Value) + Send + 'static,
) -> Step {
    let path = path.into();
    Box::new(move |call: &Call| {
        assert!(
            call.is(method, &path),
            "expected {method} {path}, got {} {}?{}",
            call.method,
            call.path,
            call.query
        );
        respond(call)
    })
}

fn secret(name: &str, version: &str, keys: &[&str]) -> Value {
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| (k.to_string(), json!("c2VjcmV0")))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": NS, "resourceVersion": version}, "data": data})
}

fn not_found(what: &str) -> (u16, Value) {
    (
        404,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                 "message": format!("{what} not found")}),
    )
}

fn echo() -> impl FnOnce(&Call) -> (u16, Value) + Send {
    |c: &Call| (200, c.body.clone())
}

fn apply(path: &'static str) -> Step {
    step("PATCH", path, echo())
}

/// The Deployment as the API server returns it, with `ready` pods of the latest template.
fn apply_deployment(ready: i32) -> Step {
    step("PATCH", DEPLOYMENT, move |c: &Call| {
        let mut d = c.body.clone();
        d["metadata"]["generation"] = json!(2);
        d["status"] = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": ready,
                              "updatedReplicas": ready, "availableReplicas": ready});
        (200, d)
    })
}

/// The gateway's own objects, applied in order: ConfigMap, Service, Deployment (with
/// `ready` replicas), Ingress, PodDisruptionBudget.
fn gateway_applied(ready: i32) -> [Step; 5] {
    [
        apply(CONFIGMAP),
        apply(SERVICE),
        apply_deployment(ready),
        apply("/apis/networking.k8s.io/v1/namespaces/mcp/ingresses/analytics-gateway"),
        apply("/apis/policy/v1/namespaces/mcp/poddisruptionbudgets/analytics-gateway"),
    ]
}

fn status_patch() -> Step {
    step("PATCH", STATUS, |c: &Call| {
        let mut obj = serde_json::to_value(resource()).unwrap();
        obj["status"] = c.body["status"].clone();
        (200, obj)
    })
}

fn event() -> Step {
    step("POST", EVENTS, echo())
}

async fn serve(mut handle: Handle, steps: Vec<Step>, mut done: oneshot::Receiver<()>) -> Vec<Call> {
    let mut calls = Vec::new();
    let total = steps.len();
    for (i, step) in steps.into_iter().enumerate() {
        let (req, send) = tokio::select! {
            r = handle.next_request() => r.expect("the client is alive"),
            _ = &mut done => panic!("reconcile finished after {i} of {total} scripted requests"),
        };
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let call = Call {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
            body: if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            },
        };
        let (code, answer) = step(&call);
        let response = Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap();
        send.send_response(response);
        calls.push(call);
    }
    tokio::select! {
        r = handle.next_request() => {
            if let Some((req, _)) = r {
                panic!("unexpected request after the script: {} {}", req.method(), req.uri());
            }
        }
        _ = done => {}
    }
    calls
}

async fn run(
    mc: McpMultiCluster,
    steps: Vec<Step>,
) -> (
    Result<Action, chmcp_operator::error::Error>,
    Vec<Call>,
    Arc<Metrics>,
) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(client, metrics.clone(), IMAGE.into()));
    let (done_tx, done_rx) = oneshot::channel();
    let server = tokio::spawn(serve(handle, steps, done_rx));
    let result = tokio::time::timeout(Duration::from_secs(20), reconcile(Arc::new(mc), ctx))
        .await
        .expect("reconcile finishes");
    let _ = done_tx.send(());
    let calls = server
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    (result, calls, metrics)
}

fn condition<'a>(status_body: &'a Value, type_: &str) -> &'a Value {
    status_body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status_body}"))
}

fn versions(oauth_version: &str) -> SecretVersions {
    [
        ("ch-ca".to_string(), "7".to_string()),
        ("mcp-oauth".to_string(), oauth_version.to_string()),
    ]
    .into()
}

/// The configuration hash the controller should write: validate, then render, offline.
fn hash_of(mc: &McpMultiCluster, oauth_version: &str) -> String {
    let validated = validate(mc).expect("the fixture is valid");
    render(&validated, &versions(oauth_version), IMAGE)
        .expect("a validated fixture renders")
        .config_hash
}

fn pod_hash(deployment_body: &Value) -> String {
    deployment_body["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        .as_str()
        .unwrap()
        .to_string()
}

fn routes(ingress_body: &Value) -> Vec<String> {
    ingress_body["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect()
}

fn secrets_present(oauth_version: &'static str) -> Vec<Step> {
    vec![
        step("GET", format!("{SECRETS}/ch-ca"), |_: &Call| {
            (200, secret("ch-ca", "7", &["ca.crt"]))
        }),
        step("GET", format!("{SECRETS}/mcp-oauth"), move |_: &Call| {
            (
                200,
                secret(
                    "mcp-oauth",
                    oauth_version,
                    &["client-secret", "signing-secret"],
                ),
            )
        }),
    ]
}

#[tokio::test]
async fn first_apply_creates_every_object_then_reports_progress() {
    let mut steps = secrets_present("11");
    steps.extend(gateway_applied(0));
    steps.extend([status_patch(), event()]);
    let (result, calls, metrics) = run(resource(), steps).await;
    let action = result.unwrap();
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(15)),
        "rollout in progress: look again soon"
    );

    for c in &calls[2..8] {
        c.assert_applied_by_the_operator();
        let owner = &c.body["metadata"]["ownerReferences"][0];
        if !c.path.ends_with("/status") {
            assert_eq!(
                (
                    owner["kind"].as_str(),
                    owner["uid"].as_str(),
                    owner["controller"].as_bool()
                ),
                (Some("McpMultiCluster"), Some("0b9e-uid"), Some(true))
            );
            assert_eq!(
                c.body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "chmcp-operator"
            );
        }
    }

    let config = calls[2].body["data"]["config.yaml"].as_str().unwrap();
    let parsed = chmcp_gateway::config::parse_document(config).unwrap();
    assert_eq!(
        parsed.multicluster.cluster_allowlist,
        vec!["otel", "antalya", "logs"]
    );
    assert!(
        parsed.server.oauth.client_secret.is_empty()
            && parsed.server.oauth.signing_secret.is_empty(),
        "no secret in the ConfigMap"
    );

    let expected_hash = hash_of(&resource(), "11");
    assert_eq!(pod_hash(&calls[4].body), expected_hash);
    assert_eq!(
        calls[4].body["spec"]["template"]["spec"]["containers"][0]["image"],
        IMAGE
    );
    assert_eq!(
        routes(&calls[5].body).len(),
        16,
        "3 clusters x 4 routes + 4 shared"
    );
    assert_eq!(calls[6].body["spec"]["maxUnavailable"], 1);

    let status = &calls[7].body;
    assert_eq!(status["apiVersion"], "chmcp.dev/v1alpha1");
    assert_eq!(status["status"]["observedGeneration"], 1);
    assert_eq!(status["status"]["configHash"], expected_hash.as_str());
    assert_eq!(status["status"]["clusters"], 3);
    assert_eq!(status["status"]["readyReplicas"], 0);
    assert_eq!(
        status["status"]["endpoints"],
        json!([{"cluster": "otel", "url": "https://mcp.example.com/mcp/otel"},
               {"cluster": "antalya", "url": "https://mcp.example.com/mcp/antalya"},
               {"cluster": "logs", "url": "https://mcp.example.com/mcp/logs"}])
    );
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert_eq!(condition(status, "Progressing")["status"], "True");
    assert_eq!(condition(status, "Degraded")["status"], "False");

    assert_eq!(calls[8].body["reason"], "ConfigApplied");
    assert_eq!(calls[8].body["type"], "Normal");
    assert!(metrics
        .render()
        .contains("chmcp_operator_reconciliations_total 1"));
}

#[tokio::test]
async fn a_new_secret_version_and_a_removed_cluster_roll_the_pods_and_drop_routes() {
    let mut mc = resource();
    let old_hash = hash_of(&mc, "11");
    mc.status = Some(chmcp_operator::crd::McpMultiClusterStatus {
        config_hash: Some(old_hash.clone()),
        ..Default::default()
    });
    mc.spec.clusters.retain(|c| c.name != "antalya");
    mc.metadata.generation = Some(2);

    let mut steps = secrets_present("12");
    steps.extend(gateway_applied(2));
    steps.extend([status_patch(), event()]);
    let (result, calls, _) = run(mc.clone(), steps).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));

    let new_hash = pod_hash(&calls[4].body);
    assert_ne!(new_hash, old_hash, "the pods roll");
    assert_eq!(new_hash, hash_of(&mc, "12"));
    let routes = routes(&calls[5].body);
    assert!(routes.iter().all(|r| !r.contains("antalya")), "{routes:?}");
    assert_eq!(routes.len(), 12, "2 clusters x 4 routes + 4 shared");

    let status = &calls[7].body;
    assert_eq!(status["status"]["observedGeneration"], 2);
    assert_eq!(status["status"]["configHash"], new_hash.as_str());
    assert_eq!(status["status"]["readyReplicas"], 2);
    assert_eq!(status["status"]["endpoints"].as_array().unwrap().len(), 2);
    assert_eq!(condition(status, "Ready")["status"], "True");
    assert_eq!(condition(status, "Ready")["reason"], "Available");
    assert!(calls[8].body["note"]
        .as_str()
        .unwrap()
        .contains("rolling pods"));
}

#[tokio::test]
async fn a_missing_secret_degrades_and_applies_nothing() {
    let steps = vec![
        step("GET", format!("{SECRETS}/ch-ca"), |_: &Call| {
            (200, secret("ch-ca", "7", &["ca.crt"]))
        }),
        step("GET", format!("{SECRETS}/mcp-oauth"), |_: &Call| {
            not_found("secrets \"mcp-oauth\"")
        }),
        status_patch(),
        event(),
    ];
    let (result, calls, metrics) = run(resource(), steps).await;
    result.unwrap();
    // The strict script proves no ConfigMap, Deployment or other object was written.
    assert_eq!(calls.len(), 4);
    let status = &calls[2].body;
    calls[2].assert_applied_by_the_operator();
    let degraded = condition(status, "Degraded");
    assert_eq!(
        (degraded["status"].as_str(), degraded["reason"].as_str()),
        (Some("True"), Some("SecretMissing"))
    );
    assert_eq!(
        degraded["message"],
        "spec.oauth.clientSecretRef: Secret mcp/mcp-oauth not found"
    );
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert!(
        status["status"].get("configHash").is_none(),
        "nothing was applied, so no hash"
    );
    assert_eq!(calls[3].body["type"], "Warning");
    assert_eq!(calls[3].body["reason"], "SecretMissing");
    assert!(calls[3].body["note"]
        .as_str()
        .unwrap()
        .contains("spec.oauth.clientSecretRef"));
    assert!(metrics.render().contains("reason=\"SecretMissing\""));
}

#[tokio::test]
async fn a_secret_without_the_key_names_the_key() {
    let steps = vec![
        step("GET", format!("{SECRETS}/ch-ca"), |_: &Call| {
            (200, secret("ch-ca", "7", &["tls.crt"]))
        }),
        status_patch(),
        event(),
    ];
    let (result, calls, _) = run(resource(), steps).await;
    result.unwrap();
    let degraded = condition(&calls[1].body, "Degraded");
    assert_eq!(
        degraded["message"],
        "spec.clickhouse.tls.caSecretRef: Secret mcp/ch-ca has no key `ca.crt`"
    );
}

#[tokio::test]
async fn an_invalid_spec_degrades_without_reading_or_writing_objects() {
    let mut mc = resource();
    mc.spec.clusters[1].name = "Bad_Name".into();
    mc.spec.clickhouse.host_template = "ch.svc".into();
    let (result, calls, metrics) = run(mc, vec![status_patch(), event()]).await;
    result.unwrap();
    let degraded = condition(&calls[0].body, "Degraded");
    assert_eq!(degraded["reason"], "InvalidSpec");
    let message = degraded["message"].as_str().unwrap();
    assert!(
        message.contains("spec.clusters[1].name: `Bad_Name`"),
        "{message}"
    );
    assert!(
        message.contains("spec.clickhouse.hostTemplate"),
        "{message}"
    );
    assert_eq!(calls[1].body["reason"], "InvalidSpec");
    assert!(metrics.render().contains("reason=\"InvalidSpec\""));
}

#[tokio::test]
async fn scaling_to_one_and_disabling_the_ingress_removes_them_by_label() {
    let mut mc = resource();
    mc.spec.replicas = 1;
    mc.spec.ingress.enabled = false;
    let list = |kind: &str| {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {},
               "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                          "metadata": {"name": "analytics-gateway", "namespace": NS, "labels": {"kind": kind}}}]})
    };
    let deleted =
        || json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 200});
    let selector = |c: &Call| {
        assert!(c.query.contains("labelSelector=app.kubernetes.io%2Finstance%3Danalytics%2Capp.kubernetes.io%2Fmanaged-by%3Dchmcp-operator"), "{}", c.query);
    };
    let mut steps = secrets_present("11");
    steps.extend([
        apply(CONFIGMAP),
        apply(SERVICE),
        apply_deployment(1),
        step("GET", INGRESSES, move |c: &Call| {
            selector(c);
            (200, list("Ingress"))
        }),
        step(
            "DELETE",
            format!("{INGRESSES}/analytics-gateway"),
            move |_: &Call| (200, deleted()),
        ),
        step("GET", PDBS, move |c: &Call| {
            selector(c);
            (200, list("PodDisruptionBudget"))
        }),
        // Someone else removed it meanwhile: still fine.
        step("DELETE", format!("{PDBS}/analytics-gateway"), |_: &Call| {
            not_found("poddisruptionbudgets \"analytics-gateway\"")
        }),
        status_patch(),
        event(),
    ]);
    let (result, calls, _) = run(mc, steps).await;
    result.unwrap();
    assert_eq!(calls[4].body["spec"]["replicas"], 1);
    assert_eq!(calls.len(), 11);
}

#[tokio::test]
async fn a_resource_being_deleted_is_left_to_the_garbage_collector() {
    let mut mc = resource();
    mc.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    let (result, calls, _) = run(mc, vec![]).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert!(calls.is_empty());
}

#[tokio::test]
async fn an_api_error_on_apply_is_an_apply_error() {
    let mut steps = secrets_present("11");
    steps.push(step("PATCH", CONFIGMAP, |_: &Call| {
        (422, json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422, "message": "bad"}))
    }));
    let (result, _, metrics) = run(resource(), steps).await;
    let err = result.unwrap_err();
    assert_eq!(err.reason(), "ApplyFailed");
    assert!(
        err.to_string()
            .starts_with("apply: ConfigMap analytics-gateway"),
        "{err}"
    );
    assert!(metrics.render().contains("reason=\"ApplyFailed\""));
}

const VERIFY_CONFIGMAP: &str = "/api/v1/namespaces/mcp/configmaps/analytics-verify";
const VERIFY_SERVICE: &str = "/api/v1/namespaces/mcp/services/analytics-verify";
const VERIFY_DEPLOYMENT: &str = "/apis/apps/v1/namespaces/mcp/deployments/analytics-verify";
const SERVICE_MONITORS: &str = "/apis/monitoring.coreos.com/v1/namespaces/mcp/servicemonitors";

#[tokio::test]
async fn service_mode_verifier_is_applied_and_a_missing_service_monitor_crd_only_warns() {
    let mut mc = resource();
    mc.spec.verifier.enabled = true;
    mc.spec.verifier.mode = chmcp_operator::crd::VerifierMode::Service;
    mc.spec.monitoring.service_monitor.enabled = true;
    let mut steps = secrets_present("11");
    steps.extend(gateway_applied(2));
    steps.extend([
        apply(VERIFY_CONFIGMAP),
        apply(VERIFY_SERVICE),
        apply(VERIFY_DEPLOYMENT),
        // The Prometheus Operator is not installed: the API server does not serve the kind.
        step(
            "PATCH",
            format!("{SERVICE_MONITORS}/analytics-gateway"),
            |_: &Call| not_found("the server could not find the requested resource"),
        ),
        event(),
        status_patch(),
        event(),
    ]);
    let (result, calls, _) = run(mc, steps).await;
    result.expect("a missing ServiceMonitor CRD does not fail the reconcile");
    for c in &calls[7..=10] {
        c.assert_applied_by_the_operator();
    }
    let cm = &calls[7].body;
    assert!(cm["data"]["clickhouse-http-auth.xml"]
        .as_str()
        .unwrap()
        .contains("<uri>http://analytics-verify.mcp.svc:9999/verify</uri>"));
    assert_eq!(
        calls[9].body["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["verify", "--config", "/etc/chmcp/verify.yaml"])
    );
    assert_eq!(calls[10].body["kind"], "ServiceMonitor");
    assert_eq!(calls[11].body["type"], "Warning");
    assert_eq!(calls[11].body["reason"], "ServiceMonitorCRDMissing");
    let status = &calls[12].body;
    let warning = condition(status, "Warning");
    assert_eq!(
        (warning["status"].as_str(), warning["reason"].as_str()),
        (Some("True"), Some("ServiceMonitorCRDMissing"))
    );
    assert_eq!(condition(status, "Ready")["status"], "True");
    assert_eq!(condition(status, "Degraded")["status"], "False");
    assert_eq!(
        status["status"]["verifier"],
        json!({"mode": "service", "configMap": "analytics-verify", "configKey": "verify.yaml",
               "clickhouseConfigKey": "clickhouse-http-auth.xml", "mountPath": "/etc/chmcp",
               "verifyUrl": "http://analytics-verify.mcp.svc:9999/verify"})
    );
    assert!(status["status"].get("serviceMonitor").is_none());
}

#[tokio::test]
async fn disabling_the_verifier_and_service_monitor_removes_them_by_label() {
    let mut mc = resource();
    // The last status recorded a service-mode verifier and an applied ServiceMonitor.
    mc.status = Some(
        serde_json::from_value(json!({
            "verifier": {"mode": "service", "configMap": "analytics-verify",
                         "configKey": "verify.yaml", "clickhouseConfigKey": "clickhouse-http-auth.xml",
                         "mountPath": "/etc/chmcp", "verifyUrl": "http://analytics-verify.mcp.svc:9999/verify"},
            "serviceMonitor": "analytics-gateway",
        }))
        .unwrap(),
    );
    let list = |name: &'static str| {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {},
               "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                          "metadata": {"name": name, "namespace": NS}}]})
    };
    let deleted =
        || json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 200});
    // Only the verifier's objects: never the gateway's ConfigMap, Service or Deployment.
    let verifier_selector = |c: &Call| {
        assert!(
            c.query.contains("app.kubernetes.io%2Fcomponent%3Dverifier"),
            "{}",
            c.query
        );
    };
    let list_step = move |path: &'static str, name: &'static str, check: bool| {
        step("GET", path, move |c: &Call| {
            if check {
                verifier_selector(c);
            }
            (200, list(name))
        })
    };
    let delete = move |path: String| step("DELETE", path, move |_: &Call| (200, deleted()));
    let mut steps = secrets_present("11");
    steps.extend(gateway_applied(2));
    steps.extend([
        list_step(
            "/api/v1/namespaces/mcp/configmaps",
            "analytics-verify",
            true,
        ),
        delete(VERIFY_CONFIGMAP.into()),
        list_step("/api/v1/namespaces/mcp/services", "analytics-verify", true),
        delete(VERIFY_SERVICE.into()),
        list_step(
            "/apis/apps/v1/namespaces/mcp/deployments",
            "analytics-verify",
            true,
        ),
        delete(VERIFY_DEPLOYMENT.into()),
        list_step(SERVICE_MONITORS, "analytics-gateway", false),
        delete(format!("{SERVICE_MONITORS}/analytics-gateway")),
        status_patch(),
        event(),
    ]);
    let (result, calls, _) = run(mc, steps).await;
    result.unwrap();
    let status = &calls[calls.len() - 2].body["status"];
    assert!(status.get("verifier").is_none(), "{status}");
    assert!(status.get("serviceMonitor").is_none(), "{status}");
}
