#!/usr/bin/python3
"""An HTTP/2 cleartext (prior knowledge) origin with scripted misbehaviour, for testing how
meshgate-proxy's HTTP/2 upstream side copes.

  h2_backend.py --port 0 [--name NAME] [--refuse-first N] [--fail-first N]
                [--hold-body] [--early-response] [--goaway-after N] [--log FILE]
                [--garbage | --silent | --cut-body] [--reset-body N]

Answers every request 200 with the body it received (GET: "NAME") and a trailer
"x-backend: NAME". Scripted behaviour:
  --refuse-first N    the first N streams (counted over all connections) get
                      RST_STREAM(REFUSED_STREAM) instead of an answer
  --fail-first N      the first N answers are 503 with the body "unavailable"
  --hold-body         never send WINDOW_UPDATE for request body: an upload stalls once
                      it has filled the stream's window
  --early-response    answer as soon as the request head arrives (body "early"), without
                      waiting for the request body; the request side stays open
  --goaway-after N    after answering N streams on a connection, send GOAWAY with the last
                      of them as last_stream_id (NO_ERROR) and close once they are done
  --garbage           answer the client's preface with bytes that are not HTTP/2 (an
                      HTTP/1.1 response), then read until the peer closes
  --silent            accept, read, never send a byte (not even SETTINGS)
  --cut-body          answer each request with content-length 100000 and 1000 bytes of
                      body, then close the TCP connection
  --reset-body N      answer a request whose path starts with /reset with a head and N
                      bytes of body (no more than the flow-control windows let out),
                      then RST_STREAM(INTERNAL_ERROR); the connection stays up

Prints "READY <port>" once listening. With --log FILE, appends one line per event:
"headers <connection> <stream> <path>", "rst <connection> <stream> <code>",
"xff <connection> <stream> <x-forwarded-for>", "forwarded <connection> <stream>
<forwarded> <x-real-ip>" ("-" when absent), "end <connection> <stream>" (the request
ended), "goaway <connection> <last>", "reset-body <connection> <stream> <bytes sent>".
Stops on SIGTERM. Needs /usr/bin/python3 with python3-h2.
"""

import argparse
import signal
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events


class Backend:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.refused = 0
        self.failed = 0
        self.connections = 0
        self.log_file = open(args.log, "a", buffering=1) if args.log else None

    def log(self, line):
        if self.log_file:
            with self.lock:
                self.log_file.write(line + "\n")

    def should_refuse(self):
        with self.lock:
            if self.refused < self.args.refuse_first:
                self.refused += 1
                return True
            return False

    def status(self):
        with self.lock:
            if self.failed < self.args.fail_first:
                self.failed += 1
                return 503
            return 200

    def serve(self, sock):
        with self.lock:
            self.connections += 1
            conn_id = self.connections
        if self.args.garbage or self.args.silent:
            try:
                first = True
                while sock.recv(65536):
                    if first and self.args.garbage:
                        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    first = False
            except OSError:
                pass
            sock.close()
            return
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        bodies = {}
        paths = {}
        answered = 0
        going_away = False
        open_streams = set()
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        sid = event.stream_id
                        headers = dict(event.headers)
                        self.log(f"headers {conn_id} {sid} {headers.get(':path', '')}")
                        self.log(f"xff {conn_id} {sid} {headers.get('x-forwarded-for', '-')}")
                        self.log(f"forwarded {conn_id} {sid} {headers.get('forwarded', '-')} "
                                 f"{headers.get('x-real-ip', '-')}")
                        if self.should_refuse():
                            conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                            continue
                        bodies[sid] = bytearray()
                        paths[sid] = headers.get(':path', '')
                        open_streams.add(sid)
                        if self.args.early_response:
                            self.answer(conn, sid, b"early")
                            answered += 1
                    elif isinstance(event, h2.events.DataReceived):
                        if not self.args.hold_body:
                            conn.acknowledge_received_data(event.flow_controlled_length,
                                                           event.stream_id)
                        if event.stream_id in bodies:
                            bodies[event.stream_id] += event.data
                    elif isinstance(event, h2.events.StreamEnded):
                        sid = event.stream_id
                        self.log(f"end {conn_id} {sid}")
                        if sid in bodies and self.args.cut_body:
                            conn.send_headers(sid, [(":status", "200"),
                                                    ("content-length", "100000")])
                            conn.send_data(sid, b"c" * 1000)
                            sock.sendall(conn.data_to_send())
                            return  # closes the connection mid-body
                        if (sid in bodies and self.args.reset_body
                                and paths.get(sid, '').startswith('/reset')):
                            bodies.pop(sid)
                            conn.send_headers(sid, [(":status", "200")])
                            n = min(self.args.reset_body, conn.local_flow_control_window(sid))
                            step = conn.max_outbound_frame_size
                            for i in range(0, n, step):
                                conn.send_data(sid, b"r" * min(step, n - i))
                            conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                            self.log(f"reset-body {conn_id} {sid} {n}")
                        if sid in bodies and not self.args.early_response:
                            body = bytes(bodies.pop(sid)) or self.args.name.encode()
                            self.answer(conn, sid, body)
                            answered += 1
                        open_streams.discard(sid)
                    elif isinstance(event, h2.events.StreamReset):
                        self.log(f"rst {conn_id} {event.stream_id} {int(event.error_code)}")
                        open_streams.discard(event.stream_id)
                    if (self.args.goaway_after and answered >= self.args.goaway_after
                            and not going_away):
                        going_away = True
                        last = conn.highest_inbound_stream_id
                        conn.close_connection(last_stream_id=last)
                        self.log(f"goaway {conn_id} {last}")
                sock.sendall(conn.data_to_send())
                if going_away and not open_streams:
                    return
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            sock.close()

    def answer(self, conn, sid, body):
        status = self.status()
        if status != 200:
            body = b"unavailable"  # an error page, not the echo
        conn.send_headers(sid, [(":status", str(status)), ("content-length", str(len(body))),
                                ("x-served-by", self.args.name)])
        # In frames the peer accepts. The window is not watched: an echo larger than the
        # proxy's stream window (its buffer_bytes) would fail and drop the connection.
        step = conn.max_outbound_frame_size
        for i in range(0, len(body), step):
            conn.send_data(sid, body[i:i + step])
        conn.send_headers(sid, [("x-backend", self.args.name)], end_stream=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", default="h2-backend")
    p.add_argument("--refuse-first", type=int, default=0)
    p.add_argument("--early-response", action="store_true")
    p.add_argument("--hold-body", action="store_true",
                   help="never acknowledge request body: the windows stay shut once full")
    p.add_argument("--fail-first", type=int, default=0, help="answer 503 to the first N requests")
    p.add_argument("--goaway-after", type=int, default=0)
    p.add_argument("--log")
    p.add_argument("--garbage", action="store_true")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--cut-body", action="store_true")
    p.add_argument("--reset-body", type=int, default=0)
    args = p.parse_args()
    backend = Backend(args)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", args.port))
    except OSError as e:
        print(f"h2_backend: bind 127.0.0.1:{args.port}: {e}", file=sys.stderr)
        return 2
    listener.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"READY {listener.getsockname()[1]}", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=backend.serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
