#!/usr/bin/python3
"""A real gRPC server and client (grpcio, no protobuf) for meshgate-proxy's h2 tests.

Service meshgate.test.Echo, messages are raw bytes (generic handlers, no serializers):

  Unary         request r        -> NAME + b":" + r
  ServerStream  request b"n"     -> n messages b"NAME:0" .. b"NAME:<n-1>"
  ClientStream  requests r1..rk  -> str(len(r1) + ... + len(rk)).encode()
  Fail          request b"code:message" -> aborts with grpc status <code> and <message>,
                                   trailing metadata x-meshgate-test: trailer-value

Every method except Fail first sends initial metadata x-meshgate-server: NAME plus, echoed
back, every request metadata entry whose key starts with "x-echo-". Fail sends no initial
metadata, so its answer is a trailers-only response (one HEADERS frame with END_STREAM).

  grpc_echo.py server --port P --name NAME
      Serves plaintext h2c on 127.0.0.1:P (0 = any free port) and prints "READY <port>"
      on stdout once serving. SIGTERM or SIGINT stops it (exit 0).
  grpc_echo.py client --target HOST:PORT --method M [--data STR] [--count N]
                      [--timeout S] [--metadata K=V ...]
      One call over an insecure channel (prior-knowledge h2c, e.g. to the proxy's
      listener); prints one JSON object: code, details, responses, initial_metadata,
      trailing_metadata. Exit 0 whenever the call completed, OK or not; 2 on usage errors.

Needs /usr/bin/python3 with the Debian package python3-grpcio.
"""

import argparse
import json
import signal
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "meshgate.test.Echo"
METHODS = ("Unary", "ServerStream", "ClientStream", "Fail")


# -- server -------------------------------------------------------------------------


class Echo:
    """The four handlers; requests and responses are bytes."""

    def __init__(self, name):
        self.name = name.encode()

    def _greet(self, context):
        echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo-")]
        context.send_initial_metadata([("x-meshgate-server", self.name.decode())] + echoed)

    def unary(self, request, context):
        self._greet(context)
        return self.name + b":" + request

    def server_stream(self, request, context):
        try:
            count = int(request.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request must be an ASCII count")
        self._greet(context)
        for i in range(count):
            yield self.name + b":" + str(i).encode()

    def client_stream(self, request_iterator, context):
        self._greet(context)
        return str(sum(len(r) for r in request_iterator)).encode()

    def fail(self, request, context):
        code_text, _, message = request.decode("utf-8", "replace").partition(":")
        code = status_from_number(code_text)
        if code is None or code == grpc.StatusCode.OK:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Fail wants 'code:message' with a non-OK code, got {code_text!r}")
        context.set_trailing_metadata((("x-meshgate-test", "trailer-value"),))
        context.abort(code, message)


def status_from_number(text):
    """"14" -> grpc.StatusCode.UNAVAILABLE; None if it is not a status number."""
    try:
        number = int(text)
    except ValueError:
        return None
    return next((c for c in grpc.StatusCode if c.value[0] == number), None)


def run_server(args):
    echo = Echo(args.name)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(echo.unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(echo.server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(echo.client_stream),
        "Fail": grpc.unary_unary_rpc_method_handler(echo.fail),
    }
    # so_reuseport is on by default in grpcio: two servers could then share a port
    # silently. Off, a taken port is an error.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers),
                         handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)],
                         options=[("grpc.so_reuseport", 0)])
    try:
        port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    except RuntimeError:  # grpcio >= 1.4x raises on a failed bind, older returns 0
        port = 0
    if port == 0:
        print(f"grpc_echo: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"READY {port}", flush=True)
    stop.wait()  # the signal handlers run on this (main) thread and wake it
    server.stop(grace=1).wait()  # in-flight calls get up to 1 s to finish
    return 0


# -- client -------------------------------------------------------------------------


def call(args, metadata):
    """Runs one RPC; returns (call object for status/metadata, [response bytes])."""
    channel = grpc.insecure_channel(args.target)
    path = f"/{SERVICE}/{args.method}"
    data = args.data.encode()
    responses = []
    try:
        if args.method in ("Unary", "Fail"):
            stub = channel.unary_unary(path)
            try:
                response, rpc = stub.with_call(data, timeout=args.timeout, metadata=metadata)
                responses.append(response)
            except grpc.RpcError as e:
                rpc = e
        elif args.method == "ServerStream":
            if args.count is not None:
                data = str(args.count).encode()
            rpc = channel.unary_stream(path)(data, timeout=args.timeout, metadata=metadata)
            try:
                for response in rpc:
                    responses.append(response)
            except grpc.RpcError:
                pass  # the status is on rpc itself
        else:  # ClientStream
            count = 1 if args.count is None else args.count
            stub = channel.stream_unary(path)
            try:
                response, rpc = stub.with_call(iter([data] * count), timeout=args.timeout,
                                               metadata=metadata)
                responses.append(response)
            except grpc.RpcError as e:
                rpc = e
        report = {
            "code": rpc.code().name,
            "details": rpc.details(),
            "responses": [r.decode("utf-8", "backslashreplace") for r in responses],
            "initial_metadata": metadata_pairs(rpc.initial_metadata()),
            "trailing_metadata": metadata_pairs(rpc.trailing_metadata()),
        }
    finally:
        channel.close()
    return report


def metadata_pairs(metadata):
    pairs = []
    for key, value in metadata or ():
        if isinstance(value, bytes):  # "-bin" keys
            value = value.decode("utf-8", "backslashreplace")
        pairs.append([key, value])
    return pairs


def run_client(args):
    metadata = []
    for item in args.metadata or []:
        key, found, value = item.partition("=")
        if not found or not key:
            print(f"grpc_echo: --metadata must look like key=value, got {item!r}",
                  file=sys.stderr)
            return 2
        metadata.append((key.lower(), value))
    if args.count is not None and args.count < 0:
        print("grpc_echo: --count must be >= 0", file=sys.stderr)
        return 2
    print(json.dumps(call(args, metadata)), flush=True)
    return 0


# -- command line -------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("server", help="serve meshgate.test.Echo on 127.0.0.1")
    s.add_argument("--port", type=int, required=True, help="0 = any free port")
    s.add_argument("--name", required=True, help="identifies this backend in answers")
    s.add_argument("--workers", type=int, default=16)
    s.set_defaults(func=run_server)

    c = sub.add_parser("client", help="make one call and print it as JSON")
    c.add_argument("--target", required=True, help="host:port")
    c.add_argument("--method", required=True, choices=METHODS)
    c.add_argument("--data", default="", help="request message (Fail: 'code:message')")
    c.add_argument("--count", type=int,
                   help="ServerStream: messages to ask for (sent as the request, "
                        "overrides --data); ClientStream: times --data is sent (default 1)")
    c.add_argument("--timeout", type=float, default=10.0, help="call deadline, seconds")
    c.add_argument("--metadata", action="append", metavar="KEY=VALUE")
    c.set_defaults(func=run_client)

    args = p.parse_args(argv)  # exits 2 on usage errors
    if args.command == "server" and not 0 <= args.port < 65536:
        print("grpc_echo: --port must be in 0..65535", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
