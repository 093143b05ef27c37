"""Settings (runtime/config.py): defaults < file < CREDIT_GATEWAY_* variables < the caller's
overrides, and every value validated before the server binds a port, in one line that names it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit_gateway.crypto.notes import COSIGNATURE_V1, ED25519, Signer
from credit_gateway.devpki import pki
from credit_gateway.errors import ConfigError
from credit_gateway.runtime.config import Settings, WitnessPeer, split_address

# Integer settings with a range of their own; every other one must be positive.
RANGED = {"clock_skew_seconds", "shutdown_grace_seconds"}
POSITIVE = [
    f.name for f in dataclasses.fields(Settings) if f.type == "int" and f.name not in RANGED
]


def load(toml: str | None = None, tmp: Path | None = None, **kwargs: Any) -> Settings:
    """Settings from `toml` (written to a file under `tmp`) and `environ` (empty by default)."""
    file = None
    if toml is not None:
        assert tmp is not None
        file = tmp / "gateway.toml"
        file.write_text(toml)
    return Settings.load(file, environ=kwargs.pop("environ", {}), **kwargs)


def refused(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(**kwargs)
    assert "\n" not in caught.value.message  # the CLI prints it as one line
    return caught.value.message


# --- defaults and precedence -------------------------------------------------------------------


def test_the_defaults_are_a_valid_local_gateway() -> None:
    settings = load()
    assert settings == Settings()
    assert settings.effective_database_url == "sqlite:///var/gateway.db"
    assert settings.effective_issuer == "https://127.0.0.1:50444"
    assert (settings.ca_cert, settings.server_cert, settings.server_key) == (
        Path("certs/ca.pem"),
        Path("certs/server.pem"),
        Path("certs/server.key"),
    )
    assert (settings.master_key_file, settings.operator_key_file) == (
        Path("var/master.key"),
        Path("var/operator.key"),
    )


def test_file_beats_defaults_environment_beats_file_overrides_beat_all(tmp_path: Path) -> None:
    toml = 'grpc_address = "0.0.0.0:7000"\noauth_address = "0.0.0.0:7001"\ndb_threads = 4\n'
    environ = {"CREDIT_GATEWAY_OAUTH_ADDRESS": "0.0.0.0:8001", "CREDIT_GATEWAY_DB_THREADS": "6"}
    settings = load(toml, tmp_path, environ=environ, db_threads=12, log_level=None)
    assert settings.grpc_address == "0.0.0.0:7000"  # the file's
    assert settings.oauth_address == "0.0.0.0:8001"  # the environment's
    assert settings.db_threads == 12  # the override's
    assert settings.log_level == "INFO"  # an override of None is no override


def test_the_environment_may_name_the_file(tmp_path: Path) -> None:
    named = tmp_path / "named.toml"
    named.write_text("processes = 3\ngrpc_address = '127.0.0.1:7000'\n")
    assert load(environ={"CREDIT_GATEWAY_CONFIG": str(named)}).processes == 3
    # A file the caller names wins over the environment's.
    own = load(
        "processes = 2\ngrpc_address = '127.0.0.1:7000'\n",
        tmp_path,
        environ={"CREDIT_GATEWAY_CONFIG": str(named)},
    )
    assert own.processes == 2


def test_environment_values_are_coerced_to_the_settings_types() -> None:
    settings = load(
        environ={
            "CREDIT_GATEWAY_HOME": "/srv/gateway",
            "CREDIT_GATEWAY_STREAMS_TOTAL": "42",
            "CREDIT_GATEWAY_ISSUER": "https://gateway.example",
        }
    )
    assert settings.home == Path("/srv/gateway")
    assert settings.streams_total == 42
    assert settings.effective_issuer == "https://gateway.example"
    assert settings.master_key_file == Path("/srv/gateway/master.key")


def test_other_variables_with_the_prefix_are_not_settings() -> None:
    # The test suite's own CREDIT_GATEWAY_TEST_DATABASES, say: only named settings are read.
    assert load(environ={"CREDIT_GATEWAY_TEST_DATABASES": "sqlite"}) == Settings()


# --- every refusal -----------------------------------------------------------------------------


def test_an_unknown_setting_is_named(tmp_path: Path) -> None:
    assert refused(toml="grpc_adress = '127.0.0.1:1'\n", tmp=tmp_path) == (
        "unknown setting 'grpc_adress'"
    )
    assert refused(colour="blue") == "unknown setting 'colour'"


def test_an_unreadable_or_malformed_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.toml: No such file"):
        Settings.load(missing, environ={})
    message = refused(toml="processes = \n", tmp=tmp_path)
    assert message.startswith(f"config file {tmp_path / 'gateway.toml'} is not valid TOML: ")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CREDIT_GATEWAY_PROCESSES": "two"}, "setting processes must be int, got 'two'"),
        ({"CREDIT_GATEWAY_DB_THREADS": "1.5"}, "setting db_threads must be int, got '1.5'"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(environ: dict[str, str], message: str) -> None:
    assert refused(environ=environ) == message


def test_a_toml_value_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    assert refused(toml="home = 5\n", tmp=tmp_path) == "setting home must be Path, got 5"


@pytest.mark.parametrize("value", ["2.5", "true"], ids=["float", "bool"])
def test_a_toml_float_or_boolean_is_not_taken_for_an_integer(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="must be int"):
        load(f"shutdown_grace_seconds = {value}\n", tmp_path)


@pytest.mark.parametrize("name", ["grpc_address", "oauth_address", "metrics_address"])
@pytest.mark.parametrize("address", ["localhost", ":50443", "host:", "host:port", "host:65536"])
def test_an_address_is_host_colon_port(name: str, address: str) -> None:
    assert refused(**{name: address}) == f"{name} must be HOST:PORT, got {address!r}"


def test_a_database_url_that_is_not_one_is_named() -> None:
    assert refused(database_url="not a url") == ("database_url is not a database URL: 'not a url'")


def test_a_driver_the_gateway_does_not_support_is_named() -> None:
    assert refused(database_url="oracle://scott@db/orcl") == (
        "database_url driver 'oracle' is not supported (use one of mariadb+pymysql, "
        "mysql+pymysql, postgresql, postgresql+psycopg, sqlite)"
    )


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/gateway.db",
        "postgresql+psycopg://cg@db/gateway",
        "postgresql://cg@db/gateway",
        "mariadb+pymysql://cg@db/gateway",
        "mysql+pymysql://cg@db/gateway",
    ],
)
def test_the_supported_drivers_are_accepted(url: str) -> None:
    assert load(database_url=url).effective_database_url == url


@pytest.mark.parametrize("name", POSITIVE)
@pytest.mark.parametrize("value", [0, -1])
def test_counts_and_durations_must_be_positive(name: str, value: int) -> None:
    assert refused(**{name: value}) == f"{name} must be positive"


def test_processes_are_at_most_64_and_share_a_fixed_port() -> None:
    assert refused(processes=65) == "processes must be between 1 and 64"
    assert refused(processes=2, grpc_address="127.0.0.1:0") == (
        "processes > 1 needs a fixed grpc_address port to share"
    )
    assert load(processes=64, grpc_address="127.0.0.1:7000").processes == 64
    assert load(processes=1, grpc_address="127.0.0.1:0").processes == 1


def test_metrics_are_off_unless_an_address_is_given() -> None:
    assert Settings().metrics_address == ""
    assert load(environ={"CREDIT_GATEWAY_METRICS_ADDRESS": "127.0.0.1:9464"}).metrics_address == (
        "127.0.0.1:9464"
    )
    assert load(metrics_address="127.0.0.1:0").metrics_address == "127.0.0.1:0"


def test_each_process_has_a_metrics_port_of_its_own() -> None:
    settings = load(processes=3, grpc_address="127.0.0.1:7000", metrics_address="127.0.0.1:9464")
    assert [settings.for_process(i).metrics_address for i in range(3)] == [
        "127.0.0.1:9464",
        "127.0.0.1:9465",
        "127.0.0.1:9466",
    ]
    # Everything else is the same settings; no metrics, nothing to change.
    assert dataclasses.replace(settings.for_process(2), metrics_address="") == (
        dataclasses.replace(settings, metrics_address="")
    )
    assert load(processes=2, grpc_address="127.0.0.1:7000").for_process(1).metrics_address == ""
    ipv6 = load(processes=2, grpc_address="[::1]:7000", metrics_address="[::1]:9464")
    assert ipv6.for_process(1).metrics_address == "[::1]:9465"
    assert split_address(ipv6.for_process(1).metrics_address) == ("::1", 9465)


def test_metrics_ports_must_be_fixed_in_range_and_clear_of_the_others() -> None:
    many = {"processes": 4, "grpc_address": "127.0.0.1:7000"}
    assert refused(**many, metrics_address="127.0.0.1:0") == (
        "processes > 1 needs a fixed metrics_address port (one per process)"
    )
    assert refused(**many, metrics_address="127.0.0.1:65534") == (
        "metrics_address port + processes - 1 must be at most 65535"
    )
    assert refused(**many, metrics_address="127.0.0.1:6998") == (
        "metrics_address ports 6998-7001 include grpc_address's"
    )
    assert refused(metrics_address="127.0.0.1:50444") == (
        "metrics_address ports 50444-50444 include oauth_address's"
    )
    assert load(**many, metrics_address="127.0.0.1:7001", oauth_address="127.0.0.1:7100")


def test_shutdown_grace_may_be_zero_not_negative() -> None:
    assert load(shutdown_grace_seconds=0).shutdown_grace_seconds == 0
    assert refused(shutdown_grace_seconds=-1) == "shutdown_grace_seconds must not be negative"


@pytest.mark.parametrize("value", [-1, 301])
def test_clock_skew_is_between_0_and_300_seconds(value: int) -> None:
    assert refused(clock_skew_seconds=value) == "clock_skew_seconds must be between 0 and 300"
    assert load(clock_skew_seconds=0).clock_skew_seconds == 0
    assert load(clock_skew_seconds=300).clock_skew_seconds == 300


# --- replaced and check_files ------------------------------------------------------------------


def test_replaced_changes_a_copy_and_validates_it_again() -> None:
    settings = load()
    changed = settings.replaced(grpc_address="0.0.0.0:9000", processes=2)
    assert (changed.grpc_address, changed.processes) == ("0.0.0.0:9000", 2)
    assert settings == Settings()
    with pytest.raises(ConfigError, match="processes > 1 needs a fixed grpc_address port"):
        changed.replaced(grpc_address="0.0.0.0:0")
    with pytest.raises(ConfigError, match="db_threads must be positive"):
        settings.replaced(db_threads=0)


def test_check_files_names_the_first_file_missing(tmp_path: Path) -> None:
    settings = load(home=tmp_path / "var", certs_dir=tmp_path / "certs")
    with pytest.raises(ConfigError) as caught:
        settings.check_files()
    assert caught.value.message == (
        f"CA certificate not found at {tmp_path / 'certs' / 'ca.pem'} (run `credit-gateway init`)"
    )
    (tmp_path / "certs").mkdir()
    for name in ("ca.pem", "server.pem", "server.key"):
        (tmp_path / "certs" / name).write_text("x")
    with pytest.raises(ConfigError, match="master key not found at"):
        settings.check_files()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "master.key").write_text("x")
    settings.check_files()


@pytest.mark.parametrize(
    ("address", "parts"),
    [("127.0.0.1:50443", ("127.0.0.1", 50443)), ("[::1]:0", ("::1", 0)), ("h:65535", ("h", 65535))],
)
def test_split_address(address: str, parts: tuple[str, int]) -> None:
    assert split_address(address) == parts


# --- witnesses -----------------------------------------------------------------------------------

LOG_VKEY = Signer("log.test/audit", ED25519, Ed25519PrivateKey.generate()).verifier.vkey()
WITNESS_VKEY = Signer("w.test/w1", COSIGNATURE_V1, Ed25519PrivateKey.generate()).verifier.vkey()


def test_witness_settings_from_a_file_and_from_the_environment(tmp_path: Path) -> None:
    toml = (
        f'witnessed_logs = ["{LOG_VKEY}"]\n'
        f'[[witnesses]]\nurl = "https://b.test:50444/"\nvkey = "{WITNESS_VKEY}"\nca = "b.pem"\n'
    )
    settings = load(toml, tmp_path)
    assert settings.witnesses == (WitnessPeer("https://b.test:50444", WITNESS_VKEY, Path("b.pem")),)
    assert list(settings.witnessed_log_keys) == ["log.test/audit"]
    assert settings.effective_witness_name == "127.0.0.1:50444/witness"
    peers = f'[{{"url": "https://b.test", "vkey": "{WITNESS_VKEY}"}}]'
    environ = {
        "CREDIT_GATEWAY_WITNESSED_LOGS": f"{LOG_VKEY}, {LOG_VKEY.replace('log.test', 'x')}",
        "CREDIT_GATEWAY_WITNESSES": peers,
    }
    with pytest.raises(ConfigError, match=r"witnessed_logs\[1\]"):  # its id no longer matches
        load(environ=environ)
    environ["CREDIT_GATEWAY_WITNESSED_LOGS"] = LOG_VKEY
    settings = load(environ=environ)
    assert settings.witnesses == (WitnessPeer("https://b.test", WITNESS_VKEY),)
    assert settings.witnessed_logs == (LOG_VKEY,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"witnessed_logs": ["nonsense"]}, "witnessed_logs[0]: not a verifier key"),
        ({"witnessed_logs": [WITNESS_VKEY]}, "witnessed_logs[0] must be a log's Ed25519 (0x01)"),
        ({"witnessed_logs": [LOG_VKEY, LOG_VKEY]}, "a second key for the log 'log.test/audit'"),
        ({"witnessed_logs": 3}, "witnessed_logs must be a list of strings"),
        ({"witnesses": [{"url": "https://b"}]}, "witnesses[0] must be a table of url, vkey"),
        ({"witnesses": [{"url": "https://b", "vkey": LOG_VKEY}]}, "a cosignature (0x04) key"),
        ({"witnesses": [{"url": "http://b", "vkey": WITNESS_VKEY}]}, "must be an https:// URL"),
        ({"witnesses": [{"url": "https://b", "vkey": WITNESS_VKEY, "ca": 1}]}, "non-empty strings"),
        ({"witnesses": [{"url": "https://b", "vkey": WITNESS_VKEY}] * 2}, "is named twice"),
        ({"witnesses": "[nope"}, "witnesses must be a JSON list of tables"),
        ({"witnesses": {"url": "https://b"}}, "witnesses must be a list of tables"),
        ({"witness_name": "a b"}, "witness_name 'a b' may hold no spaces"),
        ({"witness_timeout_seconds": 0}, "witness_timeout_seconds must be positive"),
    ],
)
def test_bad_witness_settings_are_named(kwargs: dict[str, Any], message: str) -> None:
    assert message in refused(**kwargs)


def test_check_files_names_a_witness_ca_missing(tmp_path: Path) -> None:
    pki.init_pki(tmp_path / "certs")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "master.key").write_text("x")
    peer = {"url": "https://b.test", "vkey": WITNESS_VKEY, "ca": str(tmp_path / "b.pem")}
    settings = load(home=tmp_path / "var", certs_dir=tmp_path / "certs", witnesses=[peer])
    with pytest.raises(ConfigError, match=r"witnesses\[0\].ca not found at .*b\.pem"):
        settings.check_files()
