"""Secured local nodes: TLS from a CA made here, users and least-privilege roles.

``start_node(engine, secure=True)`` runs one; this module does the parts that differ from a plain node.

OpenSearch (the security plugin):

* :func:`install_secure_distribution` copies the plain distribution (with its modules and k-NN plugin) into a
  sibling home, installs ``org.opensearch.plugin:opensearch-security`` of the same version from Maven Central,
  makes a certificate authority with a node and an admin certificate (:func:`make_certificates`), and writes
  the security settings into ``config/opensearch.yml``. The plugin's demo users (with their published
  passwords) are removed: the node starts with no user at all.
* :func:`bootstrap_security` runs once the node answers: through the security REST API, authenticated by
  the admin certificate (never by a password), it creates the roles ``colsplade_ingest`` and
  ``colsplade_search`` and the users ``admin``, ``colsplade-ingest`` and ``colsplade-search`` with random
  passwords, kept in a ``credentials.json`` readable by the owner only.

Elasticsearch (``x-pack-security``, which the integ-test zip ships):

* :func:`install_secure_distribution` copies the plain distribution into ``elasticsearch-{version}-secured``
  with a CA of its own and the settings of :func:`elasticsearch_security_settings` (HTTPS, the file realm
  only, no built-in users) in ``config/elasticsearch.yml``.
* each node runs on a configuration directory of its own (``ES_PATH_CONF``), where
  :func:`bootstrap_file_realm` writes the same roles and users into the file realm's files before the JVM
  starts (:mod:`colsplade.local._file_realm`); no REST call, since the ``.security`` index cannot be
  created on this distribution (no native users, roles or API keys; see that module).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import secrets
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colsplade.exceptions import EngineStartError, MissingExtraError
from colsplade.local._distribution import (
    check_engine,
    engines_home,
    find_java,
    install_distribution,
    install_plugin,
    mvn_fetch,
    required_java,
)
from colsplade.local._file_realm import RELOAD_INTERVAL, write_local_users
from colsplade.local._http import json_request
from colsplade.local._system import hand_over
from colsplade.mappings import ROLE_NAMES, role_body

logger = logging.getLogger(__name__)

__all__ = [
    "ADMIN_USER",
    "TLSFiles",
    "bootstrap_file_realm",
    "bootstrap_security",
    "elasticsearch_security_settings",
    "install_secure_distribution",
    "local_users",
    "make_certificates",
]

SECURITY_PLUGIN = "org.opensearch.plugin:opensearch-security"
ADMIN_USER = "admin"
#: Users made on a local secured OpenSearch node, and the security roles each one gets.
LOCAL_USERS: dict[str, tuple[str, ...]] = {
    ADMIN_USER: ("all_access", "security_rest_api_access"),
    "colsplade-ingest": ("colsplade_ingest",),
    "colsplade-search": ("colsplade_search",),
}
#: The same users on a local secured Elasticsearch node (``superuser`` is Elasticsearch's built-in role).
_ELASTICSEARCH_ADMIN_ROLES = ("superuser",)


def local_users(engine: str) -> dict[str, tuple[str, ...]]:
    """The users of a local secured node of ``engine`` and the roles each one holds."""
    if engine == "elasticsearch":
        return {**LOCAL_USERS, ADMIN_USER: _ELASTICSEARCH_ADMIN_ROLES}
    return dict(LOCAL_USERS)


# DNs without commas: the plugin reads these settings as comma-separated lists.
_ADMIN_DN = "CN=colsplade-admin"
_NODE_DN = "CN=colsplade-node"
_TLS_DIR = "colsplade-tls"


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a certificate authority and the certificates it signed (keys are unencrypted PKCS#8)."""

    ca_certs: Path
    ca_key: Path
    node_cert: Path
    node_key: Path
    admin_cert: Path
    admin_key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> TLSFiles:
        return cls(
            ca_certs=directory / "root-ca.pem",
            ca_key=directory / "root-ca-key.pem",
            node_cert=directory / "node.pem",
            node_key=directory / "node-key.pem",
            admin_cert=directory / "admin.pem",
            admin_key=directory / "admin-key.pem",
        )

    def admin_context(self) -> ssl.SSLContext:
        """An SSL context that trusts the CA and presents the admin certificate (the plugin's super user)."""
        context = ssl.create_default_context(cafile=str(self.ca_certs))
        context.load_cert_chain(str(self.admin_cert), str(self.admin_key))
        return context


def _crypto() -> Any:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:
        raise MissingExtraError("cryptography", "secure") from exc
    return x509, hashes, serialization, rsa, ExtendedKeyUsageOID, NameOID


def make_certificates(
    directory: str | os.PathLike[str],
    *,
    hosts: tuple[str, ...] = ("localhost",),
    ips: tuple[str, ...] = ("127.0.0.1",),
    days: int = 825,
    ca_name: str = "colsplade local CA",
) -> TLSFiles:
    """Make a new CA and, signed by it, a node certificate (``hosts``/``ips`` as subject alternative
    names, server + client use) and an admin client certificate, as PEM files in ``directory``.

    Tests use it for their own CA, and a second call gives a CA the node does not know (a wrong CA).
    Needs the ``cryptography`` package (``pip install 'colsplade[secure]'``).
    """
    x509, hashes, serialization, rsa, eku, name_oid = _crypto()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = TLSFiles.in_directory(out)
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    def name(common_name: str) -> Any:
        return x509.Name([x509.NameAttribute(name_oid.COMMON_NAME, common_name)])

    def write(path: Path, key: Any, cert: Any) -> None:
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path = path.with_name(path.stem + "-key.pem")
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)

    def certificate(subject: Any, issuer: Any, public_key: Any, ca: bool) -> Any:
        """What the CA and the certificates it signs share: names, key, validity, basic constraints."""
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_cert = (
        certificate(name(ca_name), name(ca_name), ca_key.public_key(), ca=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write(files.ca_certs, ca_key, ca_cert)
    ca_key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())

    def issue(path: Path, dn: str, sans: list[Any] | None) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        builder = (
            certificate(x509.Name.from_rfc4514_string(dn), ca_cert.subject, key.public_key(), ca=False)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([eku.SERVER_AUTH, eku.CLIENT_AUTH]), critical=False)
            .add_extension(ca_key_id, critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        write(path, key, builder.sign(ca_key, hashes.SHA256()))

    sans = [x509.DNSName(h) for h in hosts] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    issue(files.node_cert, _NODE_DN, sans)
    issue(files.admin_cert, _ADMIN_DN, None)
    return files


def _security_settings() -> str:
    tls = {
        "pemcert_filepath": f"{_TLS_DIR}/node.pem",
        "pemkey_filepath": f"{_TLS_DIR}/node-key.pem",
        "pemtrustedcas_filepath": f"{_TLS_DIR}/root-ca.pem",
    }
    lines = ["", "# colsplade: security plugin (TLS on HTTP and transport, internal users, no demo users)"]
    for layer in ("transport", "http"):
        lines += [f"plugins.security.ssl.{layer}.{key}: {value}" for key, value in tls.items()]
    lines += [
        "plugins.security.ssl.http.enabled: true",
        "plugins.security.ssl.transport.enforce_hostname_verification: false",
        "plugins.security.allow_default_init_securityindex: true",
        f'plugins.security.authcz.admin_dn: ["{_ADMIN_DN}"]',
        f'plugins.security.nodes_dn: ["{_NODE_DN}"]',
        'plugins.security.restapi.roles_enabled: ["all_access", "security_rest_api_access"]',
        "plugins.security.system_indices.enabled: true",
        # Audit events would go to an index on this same small node; a dev node does without.
        "plugins.security.audit.type: noop",
        "",
    ]
    return "\n".join(lines)


def _strip_demo_users(security_config: Path) -> None:
    """No demo users (their passwords are published): users are made by :func:`bootstrap_security`."""
    (security_config / "internal_users.yml").write_text(
        '---\n_meta:\n  type: "internalusers"\n  config_version: 2\n'
    )
    (security_config / "roles_mapping.yml").write_text(
        '---\n_meta:\n  type: "rolesmapping"\n  config_version: 2\n'
    )


def elasticsearch_security_settings() -> str:
    """The lines a secured local Elasticsearch adds to ``config/elasticsearch.yml``.

    HTTPS with the CA's node certificate; the file realm alone (native realm, reserved users such as
    ``elastic``, API keys and tokens off: all of them need the ``.security`` index); the security files
    re-read every second. Transport TLS is not needed: a single node on 127.0.0.1 runs in development mode,
    where Elasticsearch does not enforce it (and there is no other node to talk to).
    """
    tls = f"{_TLS_DIR}/"
    lines = [
        "",
        "# colsplade: security (HTTPS from a CA of its own, users and roles in files, no built-in users)",
        "xpack.security.enabled: true",
        "xpack.security.http.ssl.enabled: true",
        f"xpack.security.http.ssl.certificate: {tls}node.pem",
        f"xpack.security.http.ssl.key: {tls}node-key.pem",
        f'xpack.security.http.ssl.certificate_authorities: ["{tls}root-ca.pem"]',
        "xpack.security.authc.realms.file.colsplade_file.order: 0",
        "xpack.security.authc.realms.native.native1.enabled: false",
        "xpack.security.authc.reserved_realm.enabled: false",
        "xpack.security.authc.api_key.enabled: false",
        "xpack.security.authc.token.enabled: false",
        # A user added by a test authenticates within about a second (default 5 s).
        f"resource.reload.interval.high: {RELOAD_INTERVAL}",
        "",
    ]
    return "\n".join(lines)


def install_secure_distribution(version: str | None = None, engine: str = "opensearch") -> Path:
    """A secured distribution of ``engine`` (made once; later calls reuse it). Returns its home.

    OpenSearch gets the security plugin and a local CA; Elasticsearch a local CA and the settings of
    :func:`elasticsearch_security_settings` (its security module ships in the integ-test zip).

    Raises:
        EngineStartError: the plugin of this version is not served, or its installation failed.
    """
    if engine == "elasticsearch":
        return _install_secure_elasticsearch(check_engine(engine, version))
    version = check_engine("opensearch", version)
    root = engines_home()
    home = root / "dist" / f"opensearch-{version}-security"
    if (home / ".colsplade-installed").is_file():
        return home
    _crypto()  # fail before any download when cryptography is missing
    base = install_distribution("opensearch", version)
    plugin_zip = mvn_fetch(f"{SECURITY_PLUGIN}:{version}.0:zip", root / "downloads")
    java_home = find_java(required_java("opensearch", version))

    def add_plugin(unpacked: Path) -> None:
        install_plugin(unpacked, plugin_zip, java_home, "security plugin")
        config = unpacked / "config"
        _strip_demo_users(config / "opensearch-security")
        make_certificates(config / _TLS_DIR)
        with open(config / "opensearch.yml", "a") as yml:
            yml.write(_security_settings())
        notes = json.loads((unpacked / ".colsplade-installed").read_text())
        notes["plugins"].append(f"opensearch-security {version}.0")
        (unpacked / ".colsplade-installed").write_text(json.dumps(notes, indent=2))

    return _install_changed_copy(base, home, add_plugin)


def _install_changed_copy(base: Path, home: Path, change: Callable[[Path], None]) -> Path:
    """Copy the plain distribution ``base``, let ``change`` make it the secured one, and move it to
    ``home`` in one rename: an install that fails or is interrupted leaves no half-made home behind."""
    staging = Path(tempfile.mkdtemp(prefix=f"{home.name}-", dir=home.parent.parent))
    try:
        unpacked = staging / "home"
        shutil.copytree(base, unpacked, symlinks=True)
        change(unpacked)
        if home.exists():
            shutil.rmtree(home)
        unpacked.rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    hand_over(home)
    return home


def _install_secure_elasticsearch(version: str) -> Path:
    root = engines_home()
    home = root / "dist" / f"elasticsearch-{version}-secured"
    if (home / ".colsplade-installed").is_file():
        return home
    _crypto()
    base = install_distribution("elasticsearch", version)
    if not (base / "modules" / "x-pack-security").is_dir():
        raise EngineStartError(
            f"the Elasticsearch {version} distribution at {base} has no x-pack-security module"
        )

    def configure(unpacked: Path) -> None:
        config = unpacked / "config"
        # A keystore a plain node made here would carry its seed over; each node makes its own.
        (config / "elasticsearch.keystore").unlink(missing_ok=True)
        make_certificates(config / _TLS_DIR)
        with open(config / "elasticsearch.yml", "a") as yml:
            yml.write(elasticsearch_security_settings())
        notes = json.loads((unpacked / ".colsplade-installed").read_text())
        notes["security"] = "x-pack-security, file realm, HTTPS"
        (unpacked / ".colsplade-installed").write_text(json.dumps(notes, indent=2))

    return _install_changed_copy(base, home, configure)


#: Files of a node's own configuration directory that belong to the node (its users, its keystore) and are
#: not refreshed from the distribution's ``config`` on a restart.
_NODE_OWNED = ("users", "users_roles", "roles.yml", "role_mapping.yml", "elasticsearch.keystore")


def node_config_dir(home: Path, node_dir: Path) -> Path:
    """``<node_dir>/config``: the distribution's ``config`` copied (refreshed on each start, except the
    node's own users, roles and keystore), the node's ``ES_PATH_CONF``."""
    source, config = home / "config", node_dir / "config"
    config.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        target = config / entry.name
        if entry.name in _NODE_OWNED and target.exists():
            continue
        if entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(entry, target)
    return config


def bootstrap_file_realm(config: Path, credentials_file: Path) -> dict[str, str]:
    """Write colsplade's roles and the local users (random passwords, or those already in
    ``credentials_file``) into the file realm of the node configuration directory ``config``, before the
    node starts; returns the credentials, also kept in ``credentials_file`` (owner only)."""
    known: dict[str, str] = {}
    if credentials_file.is_file():
        known = json.loads(credentials_file.read_text())
    credentials = {user: known.get(user) or secrets.token_urlsafe(18) for user in LOCAL_USERS}
    write_local_users(
        config,
        {role: role_body(role, "elasticsearch") for role in ROLE_NAMES},
        {user: (credentials[user], roles) for user, roles in local_users("elasticsearch").items()},
    )
    _keep_credentials(credentials_file, credentials)
    return credentials


def _keep_credentials(credentials_file: Path, credentials: dict[str, str]) -> None:
    credentials_file.touch(mode=0o600, exist_ok=True)
    credentials_file.chmod(0o600)
    credentials_file.write_text(json.dumps(credentials, indent=2))
    logger.info("secured node: users %s (passwords in %s)", ", ".join(credentials), credentials_file)


def tls_files(home: str | os.PathLike[str]) -> TLSFiles:
    """The CA and certificates of a secured distribution home."""
    return TLSFiles.in_directory(Path(home) / "config" / _TLS_DIR)


def bootstrap_security(
    base_url: str, files: TLSFiles, credentials_file: Path, *, timeout: float = 120.0
) -> dict[str, str]:
    """Make colsplade's roles and the local users on a just-started secured node; returns the credentials.

    Idempotent: a node restarted on the same data keeps its users, and the passwords already in
    ``credentials_file`` are reused. Authenticates with the admin certificate only.
    """
    context = files.admin_context()
    api = f"{base_url}/_plugins/_security/api"
    deadline = time.monotonic() + timeout
    while True:  # the security index is initialised a little after the cluster turns yellow
        status, answer = json_request(f"{api}/roles/all_access", context, "GET")
        if status == 200:
            break
        if time.monotonic() > deadline:
            raise EngineStartError(f"the security plugin did not initialise within {timeout:.0f} s: {answer}")
        time.sleep(1.0)
    for role in ROLE_NAMES:
        _checked(json_request(f"{api}/roles/{role}", context, "PUT", role_body(role, "opensearch")), role)
    known: dict[str, str] = {}
    if credentials_file.is_file():
        known = json.loads(credentials_file.read_text())
    credentials = {}
    for user, roles in LOCAL_USERS.items():
        password = known.get(user) or secrets.token_urlsafe(18)
        body = {"password": password, "opendistro_security_roles": list(roles)}
        _checked(json_request(f"{api}/internalusers/{user}", context, "PUT", body), user)
        credentials[user] = password
    _keep_credentials(credentials_file, credentials)
    return credentials


def _checked(result: tuple[int, Any], what: str) -> None:
    status, answer = result
    if status not in (200, 201):
        raise EngineStartError(f"the security REST API refused {what!r} (HTTP {status}): {answer}")
