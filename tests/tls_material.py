"""A throwaway certificate authority, a broker certificate and a client certificate,
made with the `openssl` command for a test's secured broker."""

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsMaterial:
    ca_cert: Path  # what clients trust (KAFKA_SSL_CAFILE) and the broker checks client certificates against
    broker_keystore: Path  # the broker's PKCS#8 key, then its certificate: Kafka's PEM keystore
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def _signed(directory: Path, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
    key, csr, cert, ext = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "pem", "ext"))
    # OpenSSL 3 writes unencrypted keys as PKCS#8 ("BEGIN PRIVATE KEY"), the form Kafka's PEM keystore reads.
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key.name, "-out", csr.name, "-subj", subject, cwd=directory
    )
    ext.write_text(extensions)
    _openssl(
        "x509", "-req", "-in", csr.name, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-sha256", "-extfile", ext.name, "-out", cert.name,
        cwd=directory,
    )  # fmt: skip
    return key, cert


def make_tls_material(directory: Path) -> TlsMaterial:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=CareSignal test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    broker_key, broker_cert = _signed(
        directory,
        "broker",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    keystore = directory / "broker-keystore.pem"
    keystore.write_text(broker_key.read_text() + broker_cert.read_text())
    keystore.chmod(0o600)
    client_key, client_cert = _signed(directory, "client", "/CN=caresignal-client", "extendedKeyUsage=clientAuth\n")
    return TlsMaterial(
        ca_cert=directory / "ca.pem", broker_keystore=keystore, client_cert=client_cert, client_key=client_key
    )
