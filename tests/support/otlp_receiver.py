"""An OTLP/HTTP trace receiver for the tests (a real decoder, not a double of one).

Every POST body is parsed as an `ExportTraceServiceRequest` with the official
`opentelemetry-proto` messages (PyPI), so what the gateway hand-encodes is read by the
same code a collector uses. `GET /spans` returns what arrived, as JSON: each span with
hex ids, name, kind, attributes and status, and each POST's path, content type, header
names and whether re-encoding the parsed message gives back the same bytes (so a field
the official schema does not know, or a wrong wire type, shows).

Usage: otlp_receiver.py PORT   (prints `ready` when listening)
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

LOCK = threading.Lock()
SPANS = []
POSTS = []


def any_value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        req = ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except Exception as e:  # a body the official decoder refuses is a test failure
            with LOCK:
                POSTS.append({"path": self.path, "error": str(e)})
            self.send_response(400)
            self.end_headers()
            return
        decoded = []
        for rs in req.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    decoded.append({
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "attributes": attributes(s.attributes),
                        "status_code": s.status.code,
                        "status_message": s.status.message,
                        "resource": resource,
                        "scope": ss.scope.name,
                    })
        with LOCK:
            SPANS.extend(decoded)
            POSTS.append({
                "path": self.path,
                "content_type": self.headers.get("content-type"),
                "header_names": sorted(k.lower() for k in self.headers.keys()),
                "round_trips": req.SerializeToString() == body,
            })
        out = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self):
        with LOCK:
            out = json.dumps({"spans": SPANS, "posts": POSTS}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", flush=True)
server.serve_forever()
