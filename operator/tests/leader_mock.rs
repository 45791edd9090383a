//! Leader election against a `tower-test` mock API server: the Lease requests the
//! elector makes, and how it reads the answers.

use std::time::Duration;

use chmcp_operator::leader::{LeaderElector, LeaseConfig};
use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/chmcp-operator";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn elector() -> (LeaderElector, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let cfg = LeaseConfig::new("chmcp-operator".into(), "ops".into(), "pod-a".into());
    (
        LeaderElector::new(Client::new(service, "default"), cfg),
        handle,
    )
}

/// Answers one request after checking method and path; returns the request body.
async fn answer(handle: &mut Handle, method: &str, path: &str, code: u16, body: Value) -> Value {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!((req.method().as_str(), req.uri().path()), (method, path));
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let sent = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    sent
}

fn lease(holder: &str, renewed: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "chmcp-operator", "namespace": "ops", "resourceVersion": "41"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed, "leaseTransitions": 1}})
}

/// The GET finds the lease of another replica, last renewed long ago: free to take.
async fn expired_lease_of_another_replica(handle: &mut Handle) {
    let long_ago = "2020-01-01T00:00:00.000000Z";
    answer(handle, "GET", LEASE, 200, lease("pod-b", long_ago)).await;
}

fn status(code: u16, reason: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": reason, "code": code, "message": reason})
}

fn now_micro() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[tokio::test]
async fn the_first_candidate_creates_the_lease() {
    let (elector, mut handle) = elector();
    let server = tokio::spawn(async move {
        answer(&mut handle, "GET", LEASE, 404, status(404, "NotFound")).await;
        let sent = answer(
            &mut handle,
            "POST",
            LEASES,
            201,
            lease("pod-a", &now_micro()),
        )
        .await;
        assert_eq!(sent["spec"]["holderIdentity"], "pod-a");
        assert_eq!(sent["spec"]["leaseDurationSeconds"], 15);
    });
    assert!(elector.try_acquire_or_renew().await.unwrap());
    server.await.unwrap();
}

#[tokio::test]
async fn a_valid_lease_of_another_replica_is_left_alone() {
    let (elector, mut handle) = elector();
    let server = tokio::spawn(async move {
        answer(&mut handle, "GET", LEASE, 200, lease("pod-b", &now_micro())).await;
    });
    assert!(!elector.try_acquire_or_renew().await.unwrap());
    server.await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_optimistic_concurrency() {
    let (elector, mut handle) = elector();
    let server = tokio::spawn(async move {
        expired_lease_of_another_replica(&mut handle).await;
        let sent = answer(&mut handle, "PUT", LEASE, 200, lease("pod-a", &now_micro())).await;
        assert_eq!(
            sent["metadata"]["resourceVersion"], "41",
            "the write is conditional"
        );
        assert_eq!(sent["spec"]["holderIdentity"], "pod-a");
        assert_eq!(sent["spec"]["leaseTransitions"], 2);
    });
    assert!(elector.try_acquire_or_renew().await.unwrap());
    server.await.unwrap();
}

#[tokio::test]
async fn losing_the_race_for_the_lease_is_not_an_error() {
    let (elector, mut handle) = elector();
    let server = tokio::spawn(async move {
        expired_lease_of_another_replica(&mut handle).await;
        answer(&mut handle, "PUT", LEASE, 409, status(409, "Conflict")).await;
    });
    assert!(!elector.try_acquire_or_renew().await.unwrap());
    server.await.unwrap();
}

#[tokio::test]
async fn release_clears_the_holder_of_our_own_lease() {
    let (elector, mut handle) = elector();
    let server = tokio::spawn(async move {
        answer(&mut handle, "GET", LEASE, 200, lease("pod-a", &now_micro())).await;
        let sent = answer(&mut handle, "PUT", LEASE, 200, lease("", &now_micro())).await;
        assert!(
            sent["spec"]
                .get("holderIdentity")
                .is_none_or(Value::is_null),
            "{sent}"
        );
    });
    tokio::time::timeout(Duration::from_secs(5), elector.release())
        .await
        .unwrap();
    server.await.unwrap();
}
