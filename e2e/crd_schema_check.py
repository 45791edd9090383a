"""Checks McpMultiCluster resources against the generated CRD the way an API server would,
without one: structural schema (JSON Schema), defaults, list-map key uniqueness, and the
CEL rules (x-kubernetes-validations) evaluated with cel-python.

The example beside the chart must pass; each known-bad variant must be rejected. The CEL
strings come from the generated CRD, so this also proves that the CEL rules and the
operator's Rust checks (operator/tests/crd_schema.rs) reject the same resources.

usage: python crd_schema_check.py CRD.yaml EXAMPLE.yaml
"""

import copy
import sys

import celpy
import jsonschema
import yaml


def to_json_schema(node):
    """OpenAPI v3 (as Kubernetes uses it) to JSON Schema: `nullable` and int-or-string."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    return out


def apply_defaults(schema, value):
    """Fills `default`s as the API server does before validation and CEL."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                apply_defaults(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(schema["items"], item)
    return value


CEL = celpy.Environment()


def k8s_rules(schema, value, path, errors):
    """List-map uniqueness and CEL rules, at every level of the schema."""
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations", []):
        program = CEL.program(CEL.compile(rule["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            errors.append(f"{path}: {rule.get('message', rule['rule'])} (CEL)")
    if isinstance(value, list):
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen = set()
            for i, item in enumerate(value):
                key = tuple(item.get(k) for k in keys)
                if key in seen:
                    errors.append(f"{path}[{i}]: Duplicate value: {dict(zip(keys, key))} (list-map)")
                seen.add(key)
        for i, item in enumerate(value):
            k8s_rules(schema.get("items", {}), item, f"{path}[{i}]", errors)
    elif isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                k8s_rules(sub, value[name], f"{path}.{name}", errors)


def check(schema, resource):
    """Every reason the API server would refuse `resource`; empty when it is accepted."""
    resource = apply_defaults(schema, copy.deepcopy(resource))
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message} (schema)"
        for e in jsonschema.Draft7Validator(to_json_schema(schema)).iter_errors(resource)
    ]
    k8s_rules(schema, resource, "", errors)
    return errors


def main():
    crd_path, example_path = sys.argv[1], sys.argv[2]
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    with open(example_path) as f:
        example = yaml.safe_load(f)

    def variant(change):
        r = copy.deepcopy(example)
        change(r["spec"])
        return r

    bad = {
        "duplicate cluster names": variant(lambda s: s["clusters"].append({"name": "otel"})),
        "a bad cluster name": variant(lambda s: s["clusters"][0].update(name="Otel_EU")),
        "a host template without {cluster}": variant(lambda s: s["clickhouse"].update(hostTemplate="clickhouse.svc")),
        "a non-https public URL": variant(lambda s: s["oauth"].update(publicUrl="http://mcp.example.com")),
        "an unparseable duration": variant(lambda s: s["catalogCache"].update(ttlFallback="15 minutes")),
        "broker mode without a signing secret": variant(lambda s: s["oauth"].pop("signingSecretRef")),
        "an enabled ingress without host": variant(lambda s: s["ingress"].update(host="")),
        "a client certificate without its key": variant(
            lambda s: s["clickhouse"]["tls"].update(clientCertSecretRef={"name": "ch-client", "key": "tls.crt"})
        ),
        "an unknown upstreamToken": variant(lambda s: s["oauth"].update(upstreamToken="refreshToken")),
        "an unknown verifier mode": variant(lambda s: s.update(verifier={"enabled": True, "mode": "daemonset"})),
        "a verifier port out of range": variant(lambda s: s.update(verifier={"enabled": True, "port": 70000})),
        "a scope setting without its scope": variant(
            lambda s: s.update(verifier={"enabled": True, "settingsFromScope": [{"settings": {"readonly": "2"}}]})
        ),
        "an unparseable ServiceMonitor interval": variant(
            lambda s: s.update(monitoring={"serviceMonitor": {"enabled": True, "interval": "every minute"}})
        ),
        "a trace sample ratio above 1": variant(
            lambda s: s.update(telemetry={"otlp": {"endpoint": "http://otel-collector:4318", "sampleRatio": 1.5}})
        ),
        "an OTLP endpoint without http(s)": variant(
            lambda s: s.update(telemetry={"otlp": {"endpoint": "otel-collector:4318"}})
        ),
        "OTLP settings without an endpoint": variant(lambda s: s.update(telemetry={"otlp": {"sampleRatio": 0.5}})),
    }
    good = {
        "the example": example,
        "mutual TLS with certificate and key": variant(
            lambda s: s["clickhouse"]["tls"].update(
                clientCertSecretRef={"name": "ch-client", "key": "tls.crt"},
                clientKeySecretRef={"name": "ch-client", "key": "tls.key"},
            )
        ),
        "a template without {cluster} when every cluster has a host": variant(
            lambda s: (s["clickhouse"].update(hostTemplate=""), [c.setdefault("host", c["name"] + ".internal") for c in s["clusters"]])
        ),
        "a service-mode verifier with identity and scope settings": variant(
            lambda s: s.update(
                verifier={
                    "enabled": True,
                    "mode": "service",
                    "port": 9100,
                    "settingsFromScope": [{"scope": "mcp:read", "settings": {"readonly": "2"}}],
                    "identity": {
                        "usernameClaim": "preferred_username",
                        "allowedEmailDomains": ["example.com"],
                        "requireEmailVerified": False,
                    },
                }
            )
        ),
        "a ServiceMonitor with interval and labels": variant(
            lambda s: s.update(monitoring={"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}}})
        ),
        "tracing to an OTLP collector with SQL in spans": variant(
            lambda s: s.update(
                telemetry={
                    "otlp": {"endpoint": "http://otel-collector.observability:4318", "sampleRatio": 0.1, "serviceName": "mcp"},
                    "includeSql": True,
                }
            )
        ),
        "the smallest resource (defaults fill the rest)": {
            "apiVersion": "chmcp.dev/v1alpha1",
            "kind": "McpMultiCluster",
            "metadata": {"name": "m"},
            "spec": {
                "clickhouse": {"hostTemplate": "{cluster}.svc"},
                "clusters": [{"name": "a"}],
                "oauth": {"broker": False, "issuer": "https://idp.example.com", "publicUrl": "https://mcp.example.com"},
            },
        },
    }

    passed = failed = 0
    for name, resource in good.items():
        errors = check(schema, resource)
        if errors:
            failed += 1
            print(f"FAIL accepts {name}: {errors}")
        else:
            passed += 1
            print(f"ok   accepts {name}")
    for name, resource in bad.items():
        errors = check(schema, resource)
        if errors:
            passed += 1
            print(f"ok   rejects {name}: {'; '.join(errors)}")
        else:
            failed += 1
            print(f"FAIL rejects {name}: accepted")
    print(f"crd-schema: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
