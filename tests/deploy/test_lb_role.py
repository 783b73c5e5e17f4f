"""The Ansible role in ansible/roles/lb: its variables are documented, the nginx site it renders
passes the real `nginx -t`, and that nginx, run with the rendered site in front of two stand-in
web nodes, spreads requests over both, redirects plain HTTP, tells the nodes the client and the
scheme, streams events unbuffered, passes a stopped node over and refuses oversized bodies.

Ansible runs from this interpreter against localhost; nginx (Debian's package, from
scripts/install-test-deps.sh) runs as the current user with its pid, logs and temp files under
tmp_path, on free ports. Nothing here needs a box.
"""

from __future__ import annotations

import contextlib
import datetime
import grp
import ipaddress
import itertools
import json
import os
import pwd
import re
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from deploy_support import LB_ROLE_DIR, ROLE_DIR, Ansible, load_yaml, task_defined_names
from server_support import wait_for

NGINX = Path(os.environ.get("APPLIANCE_TEST_NGINX", "/usr/sbin/nginx"))
VAR = re.compile(r"\blb_[a-z0-9_]+\b")
#: How long a test waits for nginx to start or for an event it must see: a bound on start-up
#: and on a deadlock (a buffered stream never arrives), never a verdict about speed.
BOUND_S = 30.0


# --- the role's variables, as the appliance role's tests hold its own ---------------------------


def _jinja(text: str) -> str:
    """What Ansible evaluates: {{ }}, {% %} and the bare conditionals (`when:`, `that:`)."""
    parts = re.findall(r"\{\{.*?\}\}|\{%.*?%\}", text, flags=re.S)
    parts += re.findall(r"^\s*-?\s*(?:when|that|until)\s*:(.*)$", text, flags=re.M)
    parts += re.findall(r"^\s+- (.*)$", text, flags=re.M)  # `that:` lists
    return "\n".join(parts)


@pytest.fixture(scope="module")
def lb_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = load_yaml(LB_ROLE_DIR / "defaults" / "main.yml")
    return defaults


@pytest.fixture(scope="module")
def lb_vars() -> dict[str, Any]:
    fixed: dict[str, Any] = load_yaml(LB_ROLE_DIR / "vars" / "main.yml")
    return fixed


def _role_files() -> list[Path]:
    return sorted([*LB_ROLE_DIR.glob("tasks/*.yml"), *LB_ROLE_DIR.glob("handlers/*.yml"),
                   *LB_ROLE_DIR.glob("templates/*.j2")])


def test_it_prefixes_every_variable_with_the_role_name(
        lb_defaults: dict[str, Any], lb_vars: dict[str, Any]) -> None:
    registered = {task["register"] for path in LB_ROLE_DIR.glob("tasks/*.yml")
                  for task in load_yaml(path) if "register" in task}
    names = [*lb_defaults, *lb_vars, *registered]
    assert [name for name in names if not name.startswith("lb_")] == []


def test_it_documents_every_default_with_a_comment() -> None:
    lines = (LB_ROLE_DIR / "defaults" / "main.yml").read_text().splitlines()
    undocumented = [line.split(":")[0] for previous, line in itertools.pairwise(lines)
                    if re.match(r"^lb_\w+:", line) and not previous.startswith("# ")]
    assert undocumented == []


def test_it_uses_every_default_and_defines_every_variable_it_uses(
        lb_defaults: dict[str, Any], lb_vars: dict[str, Any]) -> None:
    used = {name for path in _role_files() for name in VAR.findall(_jinja(path.read_text()))}
    assert sorted(set(lb_defaults) - used) == []
    assert sorted(used - set(lb_defaults) - set(lb_vars) - task_defined_names(LB_ROLE_DIR)) == []


def test_it_declares_every_default_in_the_argument_specs(lb_defaults: dict[str, Any]) -> None:
    specs = load_yaml(LB_ROLE_DIR / "meta" / "argument_specs.yml")
    options = specs["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(lb_defaults)
    for name, option in options.items():
        assert option.get("description") and option.get("type"), name


def test_it_starts_every_template_with_the_ansible_managed_comment() -> None:
    for template in LB_ROLE_DIR.glob("templates/*.j2"):
        assert template.read_text().splitlines()[0] == "{{ ansible_managed | comment }}"


def test_it_splits_tasks_into_check_install_configure_and_service_with_tags() -> None:
    main = load_yaml(LB_ROLE_DIR / "tasks" / "main.yml")
    imported = {task["ansible.builtin.import_tasks"]: set(task["tags"]) for task in main}
    assert imported == {
        "check.yml": {"lb", "lb_install", "lb_configure"},
        "install.yml": {"lb", "lb_install"},
        "configure.yml": {"lb", "lb_configure"},
        "service.yml": {"lb", "lb_service"},
    }


def test_its_body_limit_is_the_appliances(lb_defaults: dict[str, Any]) -> None:
    from appliance.config import Settings

    appliance = load_yaml(ROLE_DIR / "defaults" / "main.yml")["appliance_max_request_bytes"]
    assert lb_defaults["lb_max_request_bytes"] == appliance == Settings().max_request_bytes


# --- the inventory checks (tasks/check.yml), before anything on the box changes ------------------


def _check(ansible: Ansible, tmp_path: Path, web_hosts: str,
           **settings: Any) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"[web]\n{web_hosts}\n")
    playbook = tmp_path / "check.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.import_role:\n"
        f"        name: {LB_ROLE_DIR}\n"
        "        tasks_from: check.yml\n"
    )
    tls = {"lb_tls_certificate_src": "/srv/tls/lb.crt", "lb_tls_key_src": "/srv/tls/lb.key"}
    return ansible.run("playbook", "-i", str(inventory), "--connection", "local",
                       "-e", json.dumps({**tls, **settings}), str(playbook))


def test_the_inventory_check_passes_web_nodes_the_load_balancer_reaches(
        ansible: Ansible, tmp_path: Path) -> None:
    result = _check(ansible, tmp_path, "web-a appliance_bind=0.0.0.0:8080\n"
                                       "web-b appliance_bind=10.0.0.2:8080")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_web_node_on_loopback_stops_the_play(ansible: Ansible, tmp_path: Path) -> None:
    # appliance_bind's default, 127.0.0.1:8080, is out of nginx's reach on another box.
    result = _check(ansible, tmp_path, "web-a appliance_bind=0.0.0.0:8080\nweb-b")
    assert result.returncode != 0
    assert "web-b binds the appliance to 127.0.0.1:8080" in result.stdout


def test_a_body_limit_other_than_the_nodes_stops_the_play(
        ansible: Ansible, tmp_path: Path) -> None:
    result = _check(ansible, tmp_path,
                    "web-a appliance_bind=0.0.0.0:8080 appliance_max_request_bytes=131072")
    assert result.returncode != 0
    assert "web-a accepts request bodies up to 131072 bytes" in result.stdout


# --- the rendered site, checked and run by the real nginx --------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # nginx listens on every address
        port: int = sock.getsockname()[1]
        return port


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (the operator brings a real one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "switchboard.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crt, pem = directory / "lb.crt", directory / "lb.key"
    crt.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    pem.chmod(0o600)
    return crt, pem


class WebNode:
    """A stand-in for one web node: answers with its name and the forwarding headers it got,
    echoes a POST's body length, and streams /v1/conversations/c1/events in two events, the
    second once the test has read the first (`release`), or says it was never released."""

    def __init__(self, name: str, port: int) -> None:
        self.name, self.port = name, port
        self.release = threading.Event()
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, body: dict[str, Any]) -> None:
                data = json.dumps({"node": node.name, **body}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.endswith("/events"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self.wfile.write(b"event: message\ndata: first\n\n")
                    released = node.release.wait(BOUND_S)
                    self.wfile.write(b"event: message\ndata: %s\n\n"
                                     % (b"second" if released else b"never released"))
                    return
                self._json({"path": self.path,
                            "forwarded_for": self.headers.get("X-Forwarded-For"),
                            "forwarded_proto": self.headers.get("X-Forwarded-Proto")})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._json({"received": len(self.rfile.read(length))})

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop listening: a connection to the port is refused from now on."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _main_config(directory: Path, site: Path) -> Path:
    """An nginx.conf like Debian's (its http block includes the site), with every path the
    current user can write under `directory`."""
    user = ""
    if os.geteuid() == 0:  # workers would drop to nobody, who cannot write under tmp_path
        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    config = directory / "nginx.conf"
    config.write_text(f"""{user}
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{ worker_connections 128; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_prefer_server_ciphers on;
    gzip on;
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {site};
}}
""")
    return config


def _nginx(config: Path, *args: str) -> list[str]:
    if not NGINX.is_file():
        pytest.fail(f"nginx not found at {NGINX} (scripts/install-test-deps.sh installs it)")
    return [str(NGINX), "-p", f"{config.parent}/", "-c", str(config),
            "-e", str(config.parent / "error.log"), *args]


class Site:
    """The role's rendered site for two web nodes on 127.0.0.1, and where nginx serves it."""

    def __init__(self, ansible: Ansible, directory: Path, **settings: Any) -> None:
        self.directory = directory
        self.node_ports = {"web-a": _free_port(), "web-b": _free_port()}
        self.https_port, self.http_port = _free_port(), _free_port()
        self.certificate, key = _certificate(directory)
        inventory = directory / "inventory.ini"
        inventory.write_text("[web]\n" + "".join(
            f"{name} ansible_host=127.0.0.1 appliance_bind=0.0.0.0:{port}\n"
            for name, port in self.node_ports.items()))
        self.path = directory / "switchboard.conf"
        self.text = ansible.render("switchboard.conf.j2", self.path, {
            "lb_https_port": self.https_port, "lb_http_port": self.http_port,
            "lb_tls_certificate": str(self.certificate), "lb_tls_key": str(key), **settings,
        }, role=LB_ROLE_DIR, inventory=inventory)
        self.config = _main_config(directory, self.path)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def client(self) -> httpx.Client:
        # Longer than a node waits for `release`: a buffered stream arrives whole, not never.
        context = ssl.create_default_context(cafile=str(self.certificate))
        return httpx.Client(base_url=self.url, verify=context, timeout=2 * BOUND_S)


@pytest.fixture(scope="module")
def site(ansible: Ansible, tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(ansible, tmp_path_factory.mktemp("lb"))


@contextlib.contextmanager
def _running_nginx(site: Site) -> Iterator[None]:
    proc = subprocess.Popen(_nginx(site.config, "-g", "daemon off;"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", site.https_port)) == 0

    try:
        if not wait_for(lambda: proc.poll() is not None or listening(), BOUND_S) \
                or proc.poll() is not None:
            proc.kill()
            output = proc.communicate()[0]
            raise RuntimeError(f"nginx did not start: {output}")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=BOUND_S)


@pytest.fixture
def nodes(site: Site) -> Iterator[dict[str, WebNode]]:
    started = {name: WebNode(name, port) for name, port in site.node_ports.items()}
    try:
        yield started
    finally:
        for node in started.values():
            with contextlib.suppress(OSError):
                node.stop()


@pytest.fixture
def lb(site: Site, nodes: dict[str, WebNode]) -> Iterator[Site]:
    with _running_nginx(site):
        yield site


@pytest.mark.parametrize("balance", ["least_conn", "round_robin"])
def test_nginx_accepts_the_rendered_site(
        ansible: Ansible, tmp_path: Path, balance: str) -> None:
    site = Site(ansible, tmp_path, lb_balance=balance)
    result = subprocess.run(_nginx(site.config, "-t"), capture_output=True, text=True,
                            timeout=BOUND_S)
    assert result.returncode == 0, result.stderr
    assert f"server 127.0.0.1:{site.node_ports['web-a']} max_fails=3 fail_timeout=10s;" \
        in site.text
    assert ("least_conn;" in site.text) == (balance == "least_conn")
    assert "sticky" not in site.text and "ip_hash" not in site.text and "hash " not in site.text


def test_it_spreads_requests_over_every_web_node(lb: Site) -> None:
    with lb.client() as client:
        answers = [client.get("/readyz") for _ in range(8)]
    assert {answer.status_code for answer in answers} == {200}
    # One client, one TLS connection, and still every node: nothing ties it to one of them.
    assert {answer.json()["node"] for answer in answers} == {"web-a", "web-b"}


def test_it_tells_the_node_the_client_and_the_scheme(lb: Site) -> None:
    with lb.client() as client:
        seen = client.get("/v1/conversations", headers={"X-Forwarded-For": "203.0.113.9"}).json()
    # Exactly one hop, the address that connected: what the client wrote itself is dropped.
    assert seen["forwarded_for"] == "127.0.0.1"
    assert seen["forwarded_proto"] == "https"


def test_it_redirects_plain_http_to_https(lb: Site) -> None:
    answer = httpx.get(f"http://127.0.0.1:{lb.http_port}/admin/login?next=%2Fadmin",
                       timeout=BOUND_S)
    assert answer.status_code == 301
    assert answer.headers["location"] == f"{lb.url}/admin/login?next=%2Fadmin"


def test_it_passes_each_event_on_as_the_node_writes_it(
        lb: Site, nodes: dict[str, WebNode]) -> None:
    # The node sends its second event only once the first has reached the client: a stream
    # nginx buffered would reach it whole, once the node gave up waiting, "never released".
    with lb.client() as client, client.stream("GET", "/v1/conversations/c1/events") as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: message"
        assert next(lines) == "data: first"
        for node in nodes.values():
            node.release.set()
        rest = [line for line in lines if line]
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert rest == ["event: message", "data: second"]


def test_it_passes_a_stopped_node_over(lb: Site, nodes: dict[str, WebNode]) -> None:
    nodes["web-b"].stop()
    with lb.client() as client:
        answers = [client.get("/readyz") for _ in range(6)]
        # A turn too: refused before it was sent, it goes to the next node.
        turn = client.post("/v1/conversations/c1/messages", json={"text": "hello"})
    assert [(a.status_code, a.json()["node"]) for a in answers] == [(200, "web-a")] * 6
    assert (turn.status_code, turn.json()["node"]) == (200, "web-a")


def test_no_node_left_answers_in_the_appliances_error_shape(
        lb: Site, nodes: dict[str, WebNode]) -> None:
    for node in nodes.values():
        node.stop()
    with lb.client() as client:
        answer = client.get("/v1/conversations")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["error"]["code"] == "unavailable"


def test_it_takes_bodies_up_to_the_appliances_limit_and_refuses_larger(lb: Site) -> None:
    limit = 65536
    with lb.client() as client:
        taken = client.post("/v1/conversations/c1/messages", content=b"x" * limit)
        refused = client.post("/v1/conversations/c1/messages", content=b"x" * (limit + 1))
    assert taken.status_code == 200 and taken.json()["received"] == limit
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"


# --- a configuration nginx refuses (tasks/configure.yml) -------------------------------------


def _configure(ansible: Ansible, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The role's configure tasks on this machine, every path under tmp_path, with an `nginx`
    first on PATH whose `-t` refuses the site (the real `nginx -t` reads /etc/nginx: the
    rendered site's own check is test_nginx_accepts_the_rendered_site)."""
    etc = tmp_path / "etc"
    (tmp_path / "bin").mkdir(exist_ok=True)
    refusing = tmp_path / "bin" / "nginx"
    refusing.write_text('#!/bin/sh\necho "nginx: [emerg] invalid port in upstream" >&2\nexit 1\n')
    refusing.chmod(0o755)
    (tmp_path / "new.crt").write_text("new certificate\n")
    (tmp_path / "new.key").write_text("new key\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[web]\nweb-a appliance_bind=0.0.0.0:8080\n")
    playbook = tmp_path / "configure.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.import_role:\n"
        f"        name: {LB_ROLE_DIR}\n        tasks_from: configure.yml\n"
    )
    paths = {"lb_tls_certificate_src": str(tmp_path / "new.crt"),
             "lb_tls_key_src": str(tmp_path / "new.key"),
             "lb_tls_dir": str(etc / "tls"), "lb_tls_certificate": str(etc / "tls" / "lb.crt"),
             "lb_tls_key": str(etc / "tls" / "lb.key"),
             "lb_site_file": str(etc / "conf.d" / "switchboard.conf"),
             "lb_default_site": str(etc / "sites-enabled" / "default")}
    (etc / "conf.d").mkdir(parents=True, exist_ok=True)
    # root:root as the role sets them: this test runs as root where the role does (make test).
    ansible.env["PATH"] = f"{tmp_path / 'bin'}:{os.environ['PATH']}"
    return ansible.run("playbook", "-i", str(inventory), "--connection", "local",
                       "-e", json.dumps(paths), str(playbook))


@pytest.mark.skipif(os.geteuid() != 0, reason="the role writes its files as root:root")
def test_a_configuration_nginx_refuses_puts_the_previous_one_back(
        ansible: Ansible, tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "tls").mkdir(parents=True)
    (etc / "conf.d").mkdir()
    (etc / "tls" / "lb.crt").write_text("previous certificate\n")
    (etc / "tls" / "lb.key").write_text("previous key\n")
    (etc / "conf.d" / "switchboard.conf").write_text("# the previous site\n")

    result = _configure(ansible, tmp_path)

    assert result.returncode != 0
    assert "nginx -t refused the new configuration" in result.stdout
    assert "invalid port in upstream" in result.stdout
    assert (etc / "conf.d" / "switchboard.conf").read_text() == "# the previous site\n"
    assert (etc / "tls" / "lb.crt").read_text() == "previous certificate\n"
    assert (etc / "tls" / "lb.key").read_text() == "previous key\n"
    assert sorted(p.name for p in etc.rglob("*") if p.is_file()) == [
        "lb.crt", "lb.key", "switchboard.conf"], "no backup is left behind"


@pytest.mark.skipif(os.geteuid() != 0, reason="the role writes its files as root:root")
def test_a_first_configuration_nginx_refuses_is_removed(ansible: Ansible, tmp_path: Path) -> None:
    result = _configure(ansible, tmp_path)

    assert result.returncode != 0
    assert "nginx -t refused the new configuration" in result.stdout
    assert [p for p in (tmp_path / "etc").rglob("*") if p.is_file()] == []
