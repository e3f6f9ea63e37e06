"""Local OCI registries and a fault-injecting proxy for the `imgtool pull` integration tests.

Standard library only, plus external programs from Debian packages (see PACKAGES):

  Registry    Debian's docker-registry (CNCF distribution 2.8) on 127.0.0.1:<free port>, plain
              HTTP or TLS (a throw-away CA), no auth, htpasswd basic auth or token auth (a token
              server of ours, run in a thread).  push() copies test images in with skopeo;
              push_blob() / push_raw_manifest() / request() talk to it directly (doing the
              basic/token auth dance themselves) so tests can plant hand-made content.
  FaultProxy  a threaded plain-HTTP reverse proxy in front of a Registry that logs every request
              and, on rules the test sets, drops, stalls, corrupts, redirects or answers by itself.

Everything started here is stopped by close() / the context managers, and by an atexit hook as a
safety net, so a failed test leaves no registry process behind.  The registry always runs as the
user running the test code (root in ctest); its files live in a work directory the caller gives.

Things distribution 2.8 refuses on push (serve them through FaultProxy.status(200, body=...)):
blobs whose bytes do not match their digest, manifests or indexes referencing blobs/manifests it
does not hold, unsigned schema1 manifests, a Content-Type that does not match the manifest's
mediaType, manifest bodies over 4 MiB.  It does NOT check descriptor sizes: a pushed manifest
may lie about a layer's size.  Quirk: a blob GET with an unsatisfiable Range gets 416 with
Content-Length = the blob's size but a 33-byte text body (the proxy passes that on, then closes).

Run this file directly for a self-check of every mode and every proxy rule.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import hashlib
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections import namedtuple
from dataclasses import dataclass

import harness

# Debian package providing each external program used here.
PACKAGES = {
    "docker-registry": "docker-registry",
    "htpasswd": "apache2-utils",
    "openssl": "openssl",
    "skopeo": "skopeo",
}

DEFAULT_USERS = {"alice": "wonderland"}
TOKEN_SERVICE = "imgtool-test-registry"
TOKEN_ISSUER = "imgtool-test-token-issuer"
TOKEN_LIFETIME = 300
HARNESS_AGENT = "imgtool-test-harness"

_live: set = set()  # started Registry / FaultProxy objects, closed at exit if the test did not


@atexit.register
def _close_all() -> None:
    for obj in list(_live):
        with contextlib.suppress(Exception):
            obj.close()


def require_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise harness.SetupError(f"{name} not found in PATH: install the Debian package "
                                 f"{PACKAGES.get(name, name)} (tools/test.sh installs it)")
    return path


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the child when the test process dies (even by SIGKILL from ctest's
    timeout, when atexit does not run).  Linux ties this to the thread that started the child:
    start registries from the test's main thread."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _run(argv: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=kwargs.pop("stdin", subprocess.DEVNULL),
                          timeout=kwargs.pop("timeout", 120), **kwargs)
    if proc.returncode != 0:
        err = proc.stderr
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({proc.returncode}): {err}")
    return proc


class RegistryError(AssertionError):
    """The registry (or token server) answered a harness request with an unexpected status."""


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)


# --------------------------------------------------------------------------
# Certificates and keys (openssl CLI: python3 may lack the `cryptography` module)

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = imgtool test
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_signer]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyCertSign
subjectKeyIdentifier = hash
"""


def make_tls_files(d: str) -> dict:
    """CA (ca.crt/ca.key) and a server cert for 127.0.0.1 + localhost signed by it, in d."""
    openssl = require_program("openssl")
    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w") as fh:
        fh.write(_OPENSSL_CNF)
    p = {k: os.path.join(d, k)
         for k in ("ca.crt", "ca.key", "server.crt", "server.key", "server.csr")}
    _run([openssl, "req", "-x509", "-config", cnf, "-extensions", "v3_ca", "-newkey", "rsa:2048",
          "-nodes", "-keyout", p["ca.key"], "-out", p["ca.crt"], "-days", "7",
          "-subj", "/CN=imgtool test CA"])
    _run([openssl, "req", "-new", "-config", cnf, "-newkey", "rsa:2048", "-nodes",
          "-keyout", p["server.key"], "-out", p["server.csr"], "-subj", "/CN=localhost"])
    _run([openssl, "x509", "-req", "-in", p["server.csr"],
          "-CA", p["ca.crt"], "-CAkey", p["ca.key"],
          "-set_serial", "0x" + secrets.token_hex(8), "-days", "7", "-extfile", cnf,
          "-extensions", "v3_server", "-out", p["server.crt"]])
    return p


def make_client_pair(d: str, tls_files: dict, name: str = "client") -> tuple:
    """(NAME.cert, NAME.key) in d: a client certificate signed by the test CA of tls_files."""
    openssl = require_program("openssl")
    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w") as fh:
        fh.write(_OPENSSL_CNF)
    cert, key, csr = (os.path.join(d, name + ext) for ext in (".cert", ".key", ".csr"))
    _run([openssl, "req", "-new", "-config", cnf, "-newkey", "rsa:2048", "-nodes",
          "-keyout", key, "-out", csr, "-subj", "/CN=imgtool test client"])
    _run([openssl, "x509", "-req", "-in", csr, "-CA", tls_files["ca.crt"], "-CAkey", tls_files["ca.key"],
          "-set_serial", "0x" + secrets.token_hex(8), "-days", "7", "-extfile", cnf,
          "-extensions", "v3_client", "-out", cert])
    return cert, key


def make_signing_cert(d: str) -> tuple:
    """Self-signed RSA cert + key for signing tokens (also the registry's rootcertbundle)."""
    openssl = require_program("openssl")
    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w") as fh:
        fh.write(_OPENSSL_CNF)
    crt, key = os.path.join(d, "token-signer.crt"), os.path.join(d, "token-signer.key")
    _run([openssl, "req", "-x509", "-config", cnf, "-extensions", "v3_signer",
          "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "7",
          "-subj", "/CN=imgtool test token signer"])
    return crt, key


# --------------------------------------------------------------------------
# Token server (Docker registry token protocol, JWT signed RS256 by `openssl dgst`)


class _TokenServer:
    """GET /token?service=S&scope=repository:NAME:pull,push[&scope=...] -> {"token": JWT, ...}.
    Credentials: optional HTTP basic auth checked against registry.users; bad ones get 401.
    Anonymous requests get pull-only tokens if registry.anonymous_pull, else 401.
    Users get every action they ask for among pull, push, delete, * (registry.token_policy may
    narrow it: policy(user_or_None, type, name, actions) -> actions).  POST (OAuth2) answers 404,
    which makes Docker-style clients fall back to GET."""

    def __init__(self, registry: "Registry", work: str, tls_files: dict | None = None):
        self.registry = registry
        self.cert, self.key = make_signing_cert(work)
        with open(self.cert) as fh:
            self.x5c = base64.b64encode(ssl.PEM_cert_to_DER_cert(fh.read())).decode()
        self.lock = threading.Lock()
        ts = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                ts.handle(self)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                ts.reply(self, 404, {"details": "POST (OAuth2) not supported: use GET"})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        scheme = "http"
        if tls_files:  # served with the registry's own certificate (same test CA)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls_files["server.crt"], tls_files["server.key"])
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.realm = f"{scheme}://127.0.0.1:{self.port}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="token-server",
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def reply(h, code: int, obj: dict, extra: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def sign(self, signing_input: bytes) -> bytes:
        return _run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input,
                    stdin=None).stdout

    def make_jwt(self, subject: str, access: list) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": TOKEN_ISSUER, "sub": subject, "aud": TOKEN_SERVICE,
                  "exp": now + TOKEN_LIFETIME,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(16), "access": access}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode())).encode()
        return signing_input.decode() + "." + b64url(self.sign(signing_input))

    def handle(self, h) -> None:
        reg = self.registry
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query)
        scopes = [s for param in query.get("scope", []) for s in param.split(" ") if s]
        user = None
        authz = h.headers.get("Authorization", "")
        challenge = {"WWW-Authenticate": 'Basic realm="imgtool-test-token"'}
        if authz:
            try:
                kind, blob = authz.split(" ", 1)
                user, _, password = base64.b64decode(blob.strip()).decode().partition(":")
                ok = kind.lower() == "basic" and reg.users.get(user) == password
            except (ValueError, UnicodeDecodeError):
                ok = False
            if not ok:
                with self.lock:
                    reg.token_denied += 1
                return self.reply(h, 401, {"details": "invalid credentials"}, challenge)
        elif not reg.anonymous_pull:
            with self.lock:
                reg.token_denied += 1
            return self.reply(h, 401, {"details": "authentication required"}, challenge)
        if query.get("service", [TOKEN_SERVICE])[0] != TOKEN_SERVICE:
            return self.reply(h, 400, {"details": "unknown service"})
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            typ, name, wanted = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            allowed = {"pull", "push", "delete", "*"} if user is not None else {"pull"}
            actions = [a for a in wanted if a in allowed]
            if reg.token_policy is not None:
                actions = list(reg.token_policy(user, typ, name, actions))
            if actions:
                access.append({"type": typ, "name": name, "actions": actions})
        token = self.make_jwt(user or "", access)
        with self.lock:
            reg.token_requests += 1
            reg.token_scopes.append(scopes)
            reg.token_log.append({"user": user, "scopes": scopes, "access": access,
                                  "user_agent": h.headers.get("User-Agent", "")})
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.reply(h, 200, {"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME,
                            "issued_at": issued})


# --------------------------------------------------------------------------
# Registry


def _parse_challenge(value: str) -> tuple:
    """'Bearer realm="x",service="y",scope="z"' -> ("bearer", {"realm": "x", ...})."""
    scheme, _, rest = value.strip().partition(" ")
    params = dict((k.lower(), v) for k, v in re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class Registry:
    """docker-registry (distribution 2.8) on 127.0.0.1:<free port>.

    Registry(workdir=None, tls=False, auth=None|"basic"|"token", users=None, anonymous_pull=False,
             token_policy=None, start_timeout=30)

    workdir: where config.yml, storage/, registry.log, certs go (default: a fresh directory under
    IMGTOOL_TEST_TMP, removed by close()).  users: {name: password} for basic and token auth
    (default {"alice": "wonderland"}).  anonymous_pull: token mode only, anonymous token requests
    get pull access.  Attributes: host ("127.0.0.1:PORT"), url, log_path, users, ca_cert (TLS),
    token_realm, token_requests / token_denied (counts), token_scopes (list of the scope lists asked
    for, one per issued token), token_log (dicts: user, scopes, access, user_agent).
    The harness's own helpers (push, push_blob, request...) get tokens too: call reset_counters()
    after setting up content and before the operation under test."""

    def __init__(self, workdir: str | None = None, *, tls: bool = False, auth: str | None = None,
                 users: dict | None = None, anonymous_pull: bool = False, token_policy=None,
                 start_timeout: float = 30, token_tls: bool = False, client_certs: bool = False):
        if auth not in (None, "basic", "token"):
            raise ValueError(f"auth must be None, 'basic' or 'token', not {auth!r}")
        self.binary = require_program("docker-registry")
        self.tls, self.auth = tls, auth
        if token_tls and not tls:
            raise ValueError("token_tls needs tls=True (the token server uses the registry's certificate)")
        self.token_tls = token_tls
        if client_certs and not tls:
            raise ValueError("client_certs needs tls=True")
        self.client_certs = client_certs
        self.client_pair = None
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.anonymous_pull, self.token_policy = anonymous_pull, token_policy
        self.token_requests = self.token_denied = 0
        self.token_scopes, self.token_log = [], []
        self.proc = None
        self._token_server = None
        self._own_workdir = workdir is None
        if workdir is None:
            os.makedirs(TEST_WORK, exist_ok=True)
            workdir = tempfile.mkdtemp(prefix="registry-", dir=TEST_WORK)
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.storage = os.path.join(self.workdir, "storage")
        self.config_path = os.path.join(self.workdir, "config.yml")
        self.log_path = os.path.join(self.workdir, "registry.log")
        self.ca_cert = None
        self.token_realm = None
        _live.add(self)
        try:
            self._prepare()
            self._start(start_timeout)
        except BaseException:
            self.close()
            raise

    # -- lifecycle

    def _prepare(self) -> None:
        self._auth_section = {}
        if self.tls:
            d = os.path.join(self.workdir, "tls")
            os.makedirs(d, exist_ok=True)
            self._tls_files = make_tls_files(d)
            self.ca_cert = self._tls_files["ca.crt"]
            if self.client_certs:
                self.client_pair = make_client_pair(d, self._tls_files)
        if self.auth == "basic":
            htpasswd = require_program("htpasswd")
            path = os.path.join(self.workdir, "htpasswd")
            lines = [_run([htpasswd, "-Bbn", u, p], text=True).stdout.strip()
                     for u, p in self.users.items()]
            with open(path, "w") as fh:
                fh.write("".join(line + "\n" for line in lines))
            self._auth_section = {"htpasswd": {"realm": "imgtool-test", "path": path}}
        elif self.auth == "token":
            d = os.path.join(self.workdir, "token")
            os.makedirs(d, exist_ok=True)
            self._token_server = _TokenServer(self, d, self._tls_files if self.token_tls else None)
            self.token_realm = self._token_server.realm
            self._auth_section = {"token": {"realm": self.token_realm, "service": TOKEN_SERVICE,
                                            "issuer": TOKEN_ISSUER,
                                            "rootcertbundle": self._token_server.cert}}

    def _write_config(self, port: int) -> None:
        http_section = {"addr": f"127.0.0.1:{port}", "secret": "imgtool-test-secret",
                        "headers": {"X-Content-Type-Options": ["nosniff"]}}
        if self.tls:
            http_section["tls"] = {"certificate": self._tls_files["server.crt"],
                                   "key": self._tls_files["server.key"]}
            if self.client_certs:  # distribution then demands a client certificate signed by these
                http_section["tls"]["clientcas"] = [self._tls_files["ca.crt"]]
        config = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": self.storage},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": http_section,
        }
        if self._auth_section:
            config["auth"] = self._auth_section
        with open(self.config_path, "w") as fh:  # JSON is YAML
            json.dump(config, fh, indent=2)

    def _start(self, timeout: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        for attempt in range(8):
            self.port = free_port()
            self.host = f"127.0.0.1:{self.port}"
            self.url = ("https://" if self.tls else "http://") + self.host
            self._write_config(self.port)
            log_start = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([self.binary, "serve", self.config_path],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             env=env, start_new_session=True,
                                             preexec_fn=_die_with_parent)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if self._raw("GET", "/v2/", timeout=2).status in (200, 401):
                        return
                time.sleep(0.05)
            log_text = self.log()[log_start:]
            lost_port = "address already in use" in log_text
            if self.proc.poll() is not None and lost_port and attempt < 7:
                continue  # lost the race for the port: try another
            self._stop_process()
            raise harness.SetupError(
                f"docker-registry did not answer GET {self.url}/v2/ within {timeout}s "
                f"(exit status {self.proc.returncode}); config {self.config_path}; "
                f"log {self.log_path}:\n{log_text[-4000:]}")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def _stop_process(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        """Stops the registry and the token server; removes the work dir if we made it.
        Idempotent."""
        self._stop_process()
        if self._token_server is not None:
            self._token_server.close()
            self._token_server = None
        if self._own_workdir and not os.environ.get("IMGTOOL_TEST_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        _live.discard(self)

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reset_counters(self) -> None:
        if self._token_server is not None:
            with self._token_server.lock:
                self.token_requests = self.token_denied = 0
                self.token_scopes, self.token_log = [], []

    def cert_dir(self, client_pair: bool = True) -> str:
        """A directory laid out like /etc/containers/certs.d/HOST:PORT: ca.crt, and with client_certs
        (unless client_pair=False) client.cert + client.key. skopeo --cert-dir / --dest-cert-dir take
        it as is."""
        if not self.tls:
            raise ValueError("cert_dir() is only for a TLS registry")
        d = os.path.join(self.workdir, "certs.d" if client_pair else "certs.d-ca-only", self.host)
        os.makedirs(d, exist_ok=True)
        shutil.copyfile(self.ca_cert, os.path.join(d, "ca.crt"))
        if self.client_pair and client_pair:
            shutil.copyfile(self.client_pair[0], os.path.join(d, "client.cert"))
            shutil.copyfile(self.client_pair[1], os.path.join(d, "client.key"))
        return d

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.ca_cert)
        if self.client_pair:
            ctx.load_cert_chain(*self.client_pair)
        return ctx

    # -- raw HTTP, with the auth dance

    def _connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.ssl_context())
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def _raw(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             timeout: float = 60) -> Response:
        conn = self._connection(timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            try:
                body = resp.read()
            except http.client.IncompleteRead as e:  # distribution's 416 claims the blob's length
                body = e.partial
            return Response(resp.status, resp.headers, body)
        finally:
            conn.close()

    def default_creds(self):
        """(user, password) the harness uses: the first user, or None without auth."""
        if self.auth is None or not self.users:
            return None
        return next(iter(self.users.items()))

    def authorization(self, challenge: str, creds="default") -> str:
        """Authorization header value answering a WWW-Authenticate challenge (basic, or bearer:
        fetches a token from the realm with creds, default default_creds(), None = anonymous)."""
        if creds == "default":
            creds = self.default_creds()
        scheme, params = _parse_challenge(challenge)
        basic = ("Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
                 if creds else None)
        if scheme == "basic":
            if basic is None:
                raise RegistryError(f"{self.url} wants basic auth and no credentials were given")
            return basic
        if scheme != "bearer":
            raise RegistryError(f"unknown auth challenge {challenge!r}")
        query = [("service", params.get("service", ""))]
        query += [("scope", s) for s in params.get("scope", "").split(" ") if s]
        url = urllib.parse.urlsplit(params["realm"])
        conn = (http.client.HTTPSConnection(url.hostname, url.port, timeout=30,
                                            context=self.ssl_context())
                if url.scheme == "https" else http.client.HTTPConnection(url.hostname, url.port,
                                                                        timeout=30))
        try:
            hdrs = {"User-Agent": HARNESS_AGENT}
            if basic:
                hdrs["Authorization"] = basic
            conn.request("GET", url.path + "?" + urllib.parse.urlencode(query), headers=hdrs)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RegistryError(f"token server {params['realm']} answered {resp.status}: {body!r}")
        reply = json.loads(body)
        return "Bearer " + (reply.get("token") or reply["access_token"])

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, *, creds="default", timeout: float = 60) -> Response:
        """One request to the registry (path like /v2/...), answering a 401 challenge once with
        creds (default default_creds(); None = anonymous).  Returns whatever status comes back."""
        hdrs = {"User-Agent": HARNESS_AGENT, **(headers or {})}
        resp = self._raw(method, path, body, hdrs, timeout)
        if resp.status == 401 and "WWW-Authenticate" in resp.headers and (
                creds is not None or self.auth == "token"):
            hdrs["Authorization"] = self.authorization(resp.headers["WWW-Authenticate"], creds)
            resp = self._raw(method, path, body, hdrs, timeout)
        return resp

    def _check(self, resp: Response, what: str, *ok) -> Response:
        if resp.status not in ok:
            raise RegistryError(f"{what}: HTTP {resp.status}: {resp.body[:2000]!r}")
        return resp

    def push_blob(self, repo: str, data: bytes, digest: str | None = None, *,
                  creds="default") -> str:
        """Monolithic upload (POST /v2/REPO/blobs/uploads/, then PUT LOCATION?digest=); returns
        the digest.  The registry checks the digest: a wrong one gets RegistryError."""
        digest = digest or sha256_digest(data)
        resp = self._check(self.request("POST", f"/v2/{repo}/blobs/uploads/", b"",
                                        {"Content-Length": "0"}, creds=creds),
                           f"POST /v2/{repo}/blobs/uploads/", 202)
        loc = urllib.parse.urlsplit(resp.headers["Location"])
        sep = "&" if loc.query else ""
        target = loc.path + "?" + loc.query + sep + urllib.parse.urlencode({"digest": digest})
        self._check(self.request("PUT", target, data, {"Content-Type": "application/octet-stream",
                                                       "Content-Length": str(len(data))},
                                 creds=creds), f"PUT blob {digest} to {repo}", 201)
        return digest

    def push_raw_manifest(self, repo: str, reference: str, data: bytes, media_type: str, *,
                          creds="default") -> str:
        """PUT /v2/REPO/manifests/REFERENCE with exactly these bytes; returns the digest the
        registry reports (Docker-Content-Digest)."""
        resp = self._check(self.request("PUT", f"/v2/{repo}/manifests/{reference}", data,
                                        {"Content-Type": media_type,
                                         "Content-Length": str(len(data))}, creds=creds),
                           f"PUT manifest {repo}:{reference}", 201)
        return resp.headers.get("Docker-Content-Digest") or sha256_digest(data)

    def get_manifest(self, repo: str, reference: str, accept: str | None = None, *,
                     creds="default") -> Response:
        accept = accept or ", ".join(MANIFEST_TYPES)
        return self._check(self.request("GET", f"/v2/{repo}/manifests/{reference}",
                                        headers={"Accept": accept}, creds=creds),
                           f"GET manifest {repo}:{reference}", 200)

    def get_blob(self, repo: str, digest: str, *, creds="default") -> bytes:
        return self._check(self.request("GET", f"/v2/{repo}/blobs/{digest}", creds=creds),
                           f"GET blob {repo}@{digest}", 200).body

    # -- skopeo

    def skopeo_dest_args(self, creds="default") -> list:
        if creds == "default":
            creds = self.default_creds()
        args = ["--dest-authfile", os.path.join(self.workdir, "no-auth.json")]
        if self.tls:
            args += ["--dest-cert-dir", self.cert_dir(), "--dest-tls-verify=true"]
        else:
            args += ["--dest-tls-verify=false"]
        if creds:
            args += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
        return args

    def push(self, src: str, dest_repo_tag: str, creds="default", *, fmt: str | None = None,
             all_platforms: bool = False, timeout: float = 300) -> str:
        """skopeo copy SRC docker://HOST/DEST_REPO_TAG; returns the pushed manifest digest.
        src in skopeo transport syntax (docker-archive:P, oci:DIR:TAG, oci-archive:P).
        creds: (user, password), default default_creds(), None = none.  fmt: skopeo --format
        (v2s2, oci; default: skopeo keeps the source's).  all_platforms: --all (whole index)."""
        digestfile = os.path.join(self.workdir, f"digest-{secrets.token_hex(4)}")
        argv = [*harness.skopeo_argv(), "--insecure-policy", "copy", "-q", "--digestfile", digestfile]
        argv += self.skopeo_dest_args(creds)
        if fmt:
            argv += ["--format", fmt]
        if all_platforms:
            argv += ["--all"]
        argv += [src, f"docker://{self.host}/{dest_repo_tag}"]
        _run(argv, text=True, timeout=timeout)
        with open(digestfile) as fh:
            digest = fh.read().strip()
        os.unlink(digestfile)
        return digest


MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MT_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
TEST_WORK = os.path.join(harness.TEST_TMP, "work")


# --------------------------------------------------------------------------
# Fault-injecting reverse proxy

ProxyRequest = namedtuple("ProxyRequest", "method path range status bytes_sent")
ProxyRequest.__doc__ = """One request the proxy answered: bytes_sent counts body bytes only
(-1 when the client went away before the answer); range is the Range header or None."""


class Rule:
    """A fault applied to the next `times` requests (None = every one) whose method equals
    `method` (None = any) and whose path (with query) matches re.search(path)."""

    def __init__(self, kind: str, path: str, method: str | None, times: int | None, **params):
        self.kind, self.path_re, self.method, self.remaining = kind, re.compile(path), method, times
        self.params, self.hits = params, 0

    def __repr__(self) -> str:
        return f"Rule({self.kind}, {self.path_re.pattern!r}, {self.method}, {self.params})"


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
               "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
               "content-length", "host", "expect"}
CDN_PREFIX = "/_cdn"


class FaultProxy:
    """Plain-HTTP reverse proxy on 127.0.0.1:<free port> in front of `upstream` (a Registry).

    FaultProxy(upstream, keep_alive=True)

    Threaded (one thread per connection).  HTTP/1.1 keep-alive works: every answer carries a
    Content-Length (chunked upstream answers are read whole and re-sent with one), and a
    connection is closed only after a drop/stall rule or when keep_alive=False (then every answer
    says Connection: close).  Requests go upstream verbatim (method, path, query, body, headers
    incl. Authorization and Range) except Host (rewritten) and hop-by-hop headers; Location
    headers pointing at the upstream are rewritten to point back at the proxy.

    Rules (each returns its Rule; .hits counts how often it fired), matched in the order added;
    `path` is a regex searched in the request path, `method` the exact method (None = any),
    `times` how many matching requests it applies to (None = all):
      drop_after(path, nbytes, reset=False, flip=None)
                                               headers + nbytes of the body, then close (FIN, or
                                               RST with reset=True); no effect if the body is
                                               shorter than nbytes (a HEAD: close after headers);
                                               flip=N also corrupts body byte N
      stall(path, seconds, after_bytes=0)      headers + after_bytes, silence for seconds (cut
                                               short by close()), then close
      status(path, code, retry_after=None, body=b"", headers=None)
                                               answer alone (upstream not contacted); also a way
                                               to serve content the registry would refuse
      corrupt(path, offset)                    forward, flipping (xor 0xff) body byte `offset`
                                               (offset within the body as sent, e.g. a 206 part)
      redirect(path, to="upstream", code=307)  Location: upstream.url + path (no auth carried:
                                               use with an auth-less registry), or to="cdn":
                                               http://127.0.0.1:CDN_PORT/_cdn + path, a second
                                               listener of this proxy that needs no credentials
                                               and fetches from upstream with the harness's own
                                               (like a presigned S3/CDN URL)
    Log: .requests (ProxyRequest(method, path, range, status, bytes_sent), in completion order;
    CDN requests appear with their /_cdn path), .request_headers (the http.client.HTTPMessage of
    each, same order: .get_all("Accept") keeps repeated headers),
    bytes_served(path_re), ranges(path_re), clear_log()."""

    def __init__(self, upstream: Registry, *, keep_alive: bool = True):
        self.upstream, self.keep_alive = upstream, keep_alive
        self.rules: list = []
        self.requests: list = []
        self.request_headers: list = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._conns: set = set()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with proxy.lock:
                    proxy._conns.add(self.connection)

            def finish(self):
                with contextlib.suppress(OSError):
                    super().finish()
                with proxy.lock:
                    proxy._conns.discard(self.connection)

            def handle_one_request(self):
                if proxy.stopping.is_set():
                    self.close_connection = True
                    return
                super().handle_one_request()

            def _any(self):
                proxy._serve(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.cdn_httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        for srv in (self.httpd, self.cdn_httpd):
            srv.daemon_threads = True
            srv.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = "http://" + self.host
        self.cdn_host = f"127.0.0.1:{self.cdn_httpd.server_address[1]}"
        self._threads = [threading.Thread(target=srv.serve_forever, name="fault-proxy", daemon=True)
                         for srv in (self.httpd, self.cdn_httpd)]
        for t in self._threads:
            t.start()
        _live.add(self)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stops both listeners, aborts stalls, shuts every open client connection.  Idempotent."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        for srv in (self.httpd, self.cdn_httpd):
            srv.shutdown()
            srv.server_close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        _live.discard(self)

    # -- rules

    def _add(self, kind, path, method, times, **params) -> Rule:
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        rule = Rule(kind, path, method.upper() if method else None, times, **params)
        with self.lock:
            self.rules.append(rule)
        return rule

    def drop_after(self, path: str, nbytes: int, *, reset: bool = False, method: str | None = "GET",
                   times: int | None = 1, flip: int | None = None) -> Rule:
        """flip: also corrupt (xor 0xff) body byte `flip` before the cut."""
        return self._add("drop", path, method, times, nbytes=nbytes, reset=reset, offset=flip)

    def stall(self, path: str, seconds: float, *, after_bytes: int = 0, method: str | None = "GET",
              times: int | None = 1) -> Rule:
        return self._add("stall", path, method, times, seconds=seconds, after_bytes=after_bytes)

    def status(self, path: str, code: int, *, retry_after=None, body: bytes = b"",
               headers: dict | None = None, method: str | None = "GET",
               times: int | None = 1) -> Rule:
        return self._add("status", path, method, times, code=code, retry_after=retry_after,
                         body=body, headers=dict(headers or {}))

    def corrupt(self, path: str, offset: int, *, method: str | None = "GET",
                times: int | None = 1) -> Rule:
        return self._add("corrupt", path, method, times, offset=offset)

    def redirect(self, path: str, *, to: str = "upstream", code: int = 307,
                 method: str | None = "GET", times: int | None = 1) -> Rule:
        if to not in ("upstream", "cdn"):
            raise ValueError("redirect(to=...) is 'upstream' or 'cdn'")
        return self._add("redirect", path, method, times, to=to, code=code)

    def clear_rules(self) -> None:
        with self.lock:
            self.rules.clear()

    def _match(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if (rule.method is None or rule.method == method) and rule.path_re.search(path):
                    rule.hits += 1
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self.rules.remove(rule)
                    return rule
        return None

    # -- log helpers

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()
            self.request_headers.clear()

    def matching(self, path_re: str, method: str | None = None) -> list:
        rx = re.compile(path_re)
        with self.lock:
            return [r for r in self.requests
                    if rx.search(r.path) and (method is None or r.method == method)]

    def bytes_served(self, path_re: str) -> int:
        """Body bytes sent for requests whose path matches path_re (any method)."""
        return sum(max(r.bytes_sent, 0) for r in self.matching(path_re))

    def ranges(self, path_re: str) -> list:
        """Range header (or None) of each GET whose path matches path_re, in log order: after a
        drop at offset N of blob D, a resuming client shows [None, 'bytes=N-']."""
        return [r.range for r in self.matching(path_re, "GET")]

    # -- serving

    def _log(self, h, status: int, sent: int) -> None:
        with self.lock:
            self.requests.append(ProxyRequest(h.command, h.path, h.headers.get("Range"), status,
                                              sent))
            self.request_headers.append(h.headers)

    def _read_request_body(self, h) -> bytes | None:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += h.rfile.read(size)
                h.rfile.readline()
        n = h.headers.get("Content-Length")
        return h.rfile.read(int(n)) if n is not None else None

    def _send_head(self, h, code: int, headers: list, length: int | None) -> None:
        h.send_response_only(code)
        for k, v in headers:
            if k.lower() not in _HOP_BY_HOP:
                h.send_header(k, v)
        if length is not None:
            h.send_header("Content-Length", str(length))
        if not self.keep_alive:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()

    def _serve(self, h) -> None:
        sent, status = -1, 0
        try:
            body = self._read_request_body(h)
            is_cdn = h.server is self.cdn_httpd
            rule = self._match(h.command, h.path)
            if rule is not None and rule.kind == "status":
                p = rule.params
                extra = list(p["headers"].items())
                if p["retry_after"] is not None:
                    extra.append(("Retry-After", str(p["retry_after"])))
                if not any(k.lower() == "content-type" for k, _ in extra) and p["body"]:
                    extra.append(("Content-Type", "application/json"))
                status = p["code"]
                self._send_head(h, status, extra, len(p["body"]))
                if h.command != "HEAD":
                    h.wfile.write(p["body"])
                sent = len(p["body"]) if h.command != "HEAD" else 0
                return
            if rule is not None and rule.kind == "redirect":
                if rule.params["to"] == "cdn":
                    loc = f"http://{self.cdn_host}{CDN_PREFIX}{h.path}"
                else:
                    loc = self.upstream.url + h.path
                status = rule.params["code"]
                self._send_head(h, status, [("Location", loc)], 0)
                sent = 0
                return
            status, sent = self._forward(h, body, rule, is_cdn)
        except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
            h.close_connection = True
            if not status:
                status = 502 if isinstance(e, socket.timeout) else 0
        finally:
            self._log(h, status, sent)

    def _upstream_request(self, h, body: bytes | None, is_cdn: bool):
        path = h.path[len(CDN_PREFIX):] if is_cdn and h.path.startswith(CDN_PREFIX) else h.path
        up = self.upstream
        headers = [(k, v) for k, v in h.headers.items() if k.lower() not in _HOP_BY_HOP]
        if is_cdn:  # the CDN needs no credentials: it fetches with the harness's own
            headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
        for attempt in range(2):
            conn = up._connection(timeout=60)
            conn.putrequest(h.command, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", up.host)
            for k, v in headers:
                conn.putheader(k, v)
            if body is not None or h.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            if is_cdn and attempt == 0 and resp.status == 401 and up.auth:
                challenge = resp.getheader("WWW-Authenticate", "")
                resp.read()
                conn.close()
                headers.append(("Authorization", up.authorization(challenge)))
                continue
            return conn, resp
        return conn, resp

    def _forward(self, h, body: bytes | None, rule: Rule | None, is_cdn: bool) -> tuple:
        try:
            conn, resp = self._upstream_request(h, body, is_cdn)
        except (OSError, http.client.HTTPException) as e:
            msg = f"fault proxy: upstream {self.upstream.url} failed: {e}\n".encode()
            self._send_head(h, 502, [("Content-Type", "text/plain")], len(msg))
            h.wfile.write(msg)
            return 502, len(msg)
        try:
            headers = []
            for k, v in resp.getheaders():
                if k.lower() == "location" and v.startswith(self.upstream.url):
                    v = self.url + v[len(self.upstream.url):]
                headers.append((k, v))
            no_body = h.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
            kind = rule.kind if rule is not None else None
            if no_body:
                length = resp.getheader("Content-Length")
                resp.read()
                self._send_head(h, resp.status, headers, int(length) if length is not None else 0)
                if kind in ("drop", "stall"):  # nothing to cut: stall (if asked), then close
                    h.wfile.flush()
                    if kind == "stall":
                        self.stopping.wait(rule.params["seconds"])
                    h.close_connection = True
                    with contextlib.suppress(OSError):
                        h.connection.shutdown(socket.SHUT_RDWR)
                return resp.status, 0
            truncated = []
            if resp.chunked or resp.length is None:
                data = resp.read()
                length, chunks = len(data), iter([data])
            else:
                length = resp.length

                def read_chunks():
                    while True:
                        try:
                            chunk = resp.read(64 * 1024)
                        except http.client.IncompleteRead as e:
                            # upstream sent less than its Content-Length (distribution does on
                            # 416): pass on what came, then close like upstream did
                            truncated.append(True)
                            chunk = e.partial
                        if not chunk:
                            return
                        yield chunk
                        if truncated:
                            return
                chunks = read_chunks()
            limit = {"drop": rule.params["nbytes"] if kind == "drop" else None,
                     "stall": rule.params["after_bytes"] if kind == "stall" else None}.get(kind)
            self._send_head(h, resp.status, headers, length)
            sent = 0
            for chunk in chunks:
                if kind == "corrupt" or (kind == "drop" and rule.params.get("offset") is not None):
                    off = rule.params["offset"] - sent
                    if 0 <= off < len(chunk):
                        chunk = chunk[:off] + bytes([chunk[off] ^ 0xFF]) + chunk[off + 1:]
                if limit is not None and sent + len(chunk) >= limit:
                    chunk = chunk[:limit - sent]
                    h.wfile.write(chunk)
                    sent += len(chunk)
                    break
                h.wfile.write(chunk)
                sent += len(chunk)
            else:
                if truncated or sent < length:  # upstream sent less than announced: close as it did
                    h.close_connection = True
                    with contextlib.suppress(OSError):
                        h.connection.shutdown(socket.SHUT_RDWR)
                    return resp.status, sent
                if limit is None or sent < limit:
                    return resp.status, sent
            # a drop or stall rule cut the body at `limit`
            h.wfile.flush()
            if kind == "stall":
                self.stopping.wait(rule.params["seconds"])
            h.close_connection = True
            if kind == "drop" and rule.params["reset"]:
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                h.connection.close()
            else:
                with contextlib.suppress(OSError):
                    h.connection.shutdown(socket.SHUT_RDWR)
            return resp.status, sent
        finally:
            conn.close()


# --------------------------------------------------------------------------
# Self-check: python3 tests/integration/registry.py


def _curl(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)


def _self_check() -> None:
    import unittest

    src = "docker-archive:" + os.path.join(harness.SOURCE_DIR, "testdata", "skopeo.docker.tar")

    class SelfCheck(unittest.TestCase):
        def check_pull_back(self, reg, repo="t/img", tag="v1", creds="default"):
            m = reg.get_manifest(repo, tag, creds=creds)
            doc = m.json()
            self.assertIn(doc["mediaType"], MANIFEST_TYPES)
            blob = reg.get_blob(repo, doc["config"]["digest"], creds=creds)
            self.assertEqual(sha256_digest(blob), doc["config"]["digest"])
            return doc

        def test_plain(self):
            with Registry(harness.scratch_dir(self, "reg-")) as reg:
                digest = reg.push(src, "t/img:v1")
                self.assertTrue(digest.startswith("sha256:"))
                self.check_pull_back(reg)
                # Range on blob GETs: 206 + Content-Range
                doc = reg.get_manifest("t/img", "v1").json()
                layer = doc["layers"][0]
                r = reg.request("GET", f"/v2/t/img/blobs/{layer['digest']}",
                                headers={"Range": "bytes=10-"})
                self.assertEqual(r.status, 206)
                self.assertEqual(r.headers["Content-Range"],
                                 f"bytes 10-{layer['size'] - 1}/{layer['size']}")
                # raw blob + manifest
                config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}'
                cfg = reg.push_blob("raw/x", config)
                man = json.dumps({
                    "schemaVersion": 2, "mediaType": MANIFEST_TYPES[1], "layers": [],
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": cfg, "size": len(config)}}).encode()
                d = reg.push_raw_manifest("raw/x", "latest", man, MANIFEST_TYPES[1])
                self.assertEqual(d, sha256_digest(man))
                self.assertEqual(reg.get_manifest("raw/x", "latest").body, man)
                with self.assertRaises(RegistryError):
                    reg.push_blob("raw/x", b"abc", digest=sha256_digest(b"abd"))

        def test_tls_basic(self):
            with Registry(harness.scratch_dir(self, "reg-"), tls=True, auth="basic") as reg:
                self.assertTrue(reg.url.startswith("https://"))
                self.assertTrue(os.path.isfile(os.path.join(reg.cert_dir(), "ca.crt")))
                reg.push(src, "t/img:v1", fmt="oci")
                doc = self.check_pull_back(reg)
                self.assertEqual(doc["mediaType"], MANIFEST_TYPES[1])
                anon = reg.request("GET", "/v2/t/img/manifests/v1", creds=None)
                self.assertEqual(anon.status, 401)
                self.assertEqual(reg.request("GET", "/v2/", creds=("alice", "wrong")).status, 401)
                p = _curl("--cacert", reg.ca_cert, "-u", "alice:wonderland", "-o", "/dev/null",
                          "-w", "%{http_code}", f"https://localhost:{reg.port}/v2/")
                self.assertEqual(p.stdout, b"200", p.stderr)

        def test_token(self):
            with Registry(harness.scratch_dir(self, "reg-"), auth="token",
                          users={"bob": "builder", "alice": "wonderland"}) as reg:
                reg.push(src, "t/img:v1", creds=("bob", "builder"))
                self.assertGreater(reg.token_requests, 0)
                self.assertTrue(any("repository:t/img:pull,push" in s for s in reg.token_scopes),
                                reg.token_scopes)
                reg.reset_counters()
                self.check_pull_back(reg)
                self.assertEqual(reg.token_requests, 2)  # one per harness request: no caching
                self.assertEqual(reg.token_scopes[0], ["repository:t/img:pull"])
                with self.assertRaises(RegistryError):  # no anonymous pull
                    reg.get_manifest("t/img", "v1", creds=None)
                with self.assertRaises(RegistryError):
                    reg.get_manifest("t/img", "v1", creds=("alice", "bad"))
                self.assertEqual(reg.token_denied, 2)
                self.assertIn("Bearer realm=", reg._raw("GET", "/v2/").headers["WWW-Authenticate"])

        def test_token_anonymous_pull(self):
            with Registry(harness.scratch_dir(self, "reg-"), tls=True, auth="token",
                          anonymous_pull=True) as reg:
                reg.push(src, "t/img:v1")
                self.check_pull_back(reg, creds=None)
                self.assertEqual(reg.token_log[-1]["user"], None)
                with self.assertRaises(RegistryError):  # anonymous push is refused by the registry
                    reg.push_blob("t/img", b"x", creds=None)

        def test_proxy_rules(self):
            with Registry(harness.scratch_dir(self, "reg-")) as reg, FaultProxy(reg) as px:
                reg.push(src, "t/img:v1")
                doc = reg.get_manifest("t/img", "v1").json()
                layer = doc["layers"][0]
                size, dg = layer["size"], layer["digest"]
                blob = reg.get_blob("t/img", dg)
                bpath = f"/v2/t/img/blobs/{dg}"
                url = px.url + bpath
                # clean pass-through, keep-alive: two requests on one connection
                conn = http.client.HTTPConnection("127.0.0.1", px.port, timeout=10)
                for _ in range(2):
                    conn.request("GET", bpath)
                    self.assertEqual(conn.getresponse().read(), blob)
                conn.close()
                # drop_after: curl sees a short body, then resumes with Range
                px.clear_log()
                px.drop_after("/blobs/", 100)
                p = _curl("-o", "/dev/null", url)
                self.assertEqual(p.returncode, 18, p.stderr)  # CURLE_PARTIAL_FILE
                p = _curl("-H", "Range: bytes=100-", url)
                self.assertEqual(p.stdout, blob[100:])
                self.assertEqual(px.ranges("/blobs/"), [None, "bytes=100-"])
                self.assertEqual([r.status for r in px.requests], [200, 206])
                self.assertEqual(px.bytes_served("/blobs/"), size)
                # drop with RST
                px.drop_after("/blobs/", 10, reset=True)
                p = _curl("-o", "/dev/null", url)
                self.assertIn(p.returncode, (18, 56), p.stderr)
                # stall: the client times out
                px.stall("/blobs/", 3, after_bytes=5)
                t0 = time.monotonic()
                p = _curl("-o", "/dev/null", "--max-time", "1", url)
                self.assertEqual(p.returncode, 28, p.stderr)
                self.assertLess(time.monotonic() - t0, 2.5)
                # status 429 + Retry-After, then normal again
                px.status("/manifests/", 429, retry_after=1, method=None, times=2)
                p = _curl("-i", px.url + "/v2/t/img/manifests/v1")
                self.assertIn(b"429", p.stdout.split(b"\r\n")[0])
                self.assertIn(b"Retry-After: 1", p.stdout)
                p = _curl("-I", px.url + "/v2/t/img/manifests/v1")
                self.assertIn(b"429", p.stdout.split(b"\r\n")[0])
                p = _curl("-o", "/dev/null", "-w", "%{http_code}",
                          px.url + "/v2/t/img/manifests/v1")
                self.assertEqual(p.stdout, b"200")
                # status as a way to serve hostile content
                px.status("/manifests/evil", 200, body=b'{"schemaVersion":1}',
                          headers={"Content-Type": MT_SCHEMA1_SIGNED})
                p = _curl("-i", px.url + "/v2/t/img/manifests/evil")
                self.assertTrue(p.stdout.endswith(b'{"schemaVersion":1}'))
                self.assertIn(b"manifest.v1+prettyjws", p.stdout)
                # corrupt
                px.corrupt("/blobs/", 7)
                p = _curl(url)
                self.assertEqual(len(p.stdout), size)
                self.assertEqual([i for i in range(size) if p.stdout[i] != blob[i]], [7])
                # redirect to upstream (curl -L follows)
                px.redirect("/blobs/")
                p = _curl("-L", "-w", "\n%{url_effective} %{num_redirects}", url)
                self.assertTrue(p.stdout.startswith(blob))
                self.assertIn(f"{reg.url}{bpath} 1".encode(), p.stdout)
                # distribution's 416 says Content-Length: SIZE but sends a short text: passed on
                p = _curl("-H", f"Range: bytes={size}-", url)
                self.assertEqual(p.returncode, 18, p.stderr)
                self.assertEqual(px.requests[-1].status, 416)
                # HEAD keeps the upstream Content-Length, sends no body
                p = _curl("-I", url)
                self.assertIn(f"Content-Length: {size}".encode(), p.stdout)
                # uploads through the proxy (POST, chunked PATCH, PUT; Location rewritten)
                px.clear_log()
                _run([*harness.skopeo_argv(), "--insecure-policy", "copy", "-q", "--dest-tls-verify=false", src,
                      f"docker://{px.host}/t/copy:v1"])
                self.assertIn("PATCH", {r.method for r in px.requests})
                self.assertEqual(reg.get_manifest("t/copy", "v1").body,
                                 reg.get_manifest("t/img", "v1").body)
                # concurrency: parallel downloads
                results = []
                def fetch():
                    c = http.client.HTTPConnection("127.0.0.1", px.port, timeout=10)
                    c.request("GET", bpath)
                    results.append(c.getresponse().read() == blob)
                    c.close()
                threads = [threading.Thread(target=fetch) for _ in range(6)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                self.assertEqual(results, [True] * 6)

        def test_proxy_token_cdn(self):
            with Registry(harness.scratch_dir(self, "reg-"), auth="token", tls=True) as reg, \
                    FaultProxy(reg) as px:
                reg.push(src, "t/img:v1")
                # the client side of the dance, through the proxy (Authorization forwarded)
                r = _curl("-i", px.url + "/v2/")
                self.assertIn(b"401", r.stdout.split(b"\r\n")[0])
                challenge = reg._raw("GET", "/v2/t/img/manifests/v1").headers["WWW-Authenticate"]
                auth = reg.authorization(challenge)
                p = _curl("-H", f"Authorization: {auth}",
                          "-H", "Accept: " + ",".join(MANIFEST_TYPES),
                          px.url + "/v2/t/img/manifests/v1")
                doc = json.loads(p.stdout)
                dg = doc["config"]["digest"]
                px.redirect("/blobs/", to="cdn")
                p = _curl("-L", "-H", f"Authorization: {auth}", px.url + f"/v2/t/img/blobs/{dg}")
                self.assertEqual(sha256_digest(p.stdout), dg)
                self.assertEqual([r.status for r in px.requests[-2:]], [307, 200])
                self.assertTrue(px.requests[-1].path.startswith(CDN_PREFIX))
                # curl drops Authorization when redirected to another port
                self.assertNotIn("Authorization", px.request_headers[-1])

    suite = unittest.defaultTestLoader.loadTestsFromTestCase(SelfCheck)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    leftover = [o for o in _live]
    if leftover:
        print(f"LEFTOVER: {leftover}")
    raise SystemExit(0 if result.wasSuccessful() and not leftover else 1)


if __name__ == "__main__":
    _self_check()
