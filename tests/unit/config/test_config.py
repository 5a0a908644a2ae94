"""Configuration loading: defaults, unknown keys with line numbers, secrets, paths, the taxonomy."""

import textwrap
from pathlib import Path

import pytest

from seamline.config import SeamlineConfig, load_config
from seamline.config.loader import parse_yaml
from seamline.config.secrets import Secret
from seamline.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def _write(tmp_path: Path, text: str, name: str = "seamline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_shipped_example_is_valid():
    config = load_config(REPO / "deploy/config/seamline.yaml")
    assert config.site.line_id == "line1"
    assert config.mqtt.port == 1883 and config.mqtt.host == "127.0.0.1"
    assert len(config.load_taxonomy().types) == 12


def test_empty_file_gives_laptop_defaults(tmp_path):
    config = load_config(_write(tmp_path, "{}\n"))
    assert config == SeamlineConfig.model_validate({"storage": {"data_dir": str(tmp_path / "data")}})
    assert config.grpc.cloud_address == "127.0.0.1:50051"


@pytest.mark.parametrize(
    "text, protocol", [("{}", "5"), ("{protocol: 5}", "5"), ("{protocol: 3.1.1}", "3.1.1")]
)
def test_mqtt_protocol_defaults_to_5_and_reads_as_yaml_writes_it(tmp_path, text, protocol, monkeypatch):
    monkeypatch.delenv("SEAMLINE_MQTT_PROTOCOL", raising=False)
    assert load_config(_write(tmp_path, f"mqtt: {text}\n")).mqtt.protocol == protocol


def test_mqtt_protocol_unset_in_the_file_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAMLINE_MQTT_PROTOCOL", "3.1.1")
    assert load_config(_write(tmp_path, "mqtt: {}\n")).mqtt.protocol == "3.1.1"
    assert load_config(_write(tmp_path, "mqtt: {protocol: 5}\n")).mqtt.protocol == "5"


def test_misspelt_key_is_named_with_its_line(tmp_path):
    path = _write(
        tmp_path,
        """
        site:
          site_id: s1
        mqtt:
          url: mqtt://broker:1883
          topic_roott: seamline
        """,
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems == [
        f"{path}:5: mqtt.topic_roott: unknown key (check the spelling; see `seamline validate-config --help`)"
    ]


def test_every_problem_is_reported_with_its_own_line(tmp_path):
    path = _write(
        tmp_path,
        """
        site:
          site_id: Bad Site
        grpc:
          cloud_address: no-port
          max_message_bytes: 10
        """,
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = sorted(p.split(": ")[0] for p in err.value.problems)
    assert lines == [f"{path}:2", f"{path}:4", f"{path}:5"]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("mqtt: [1, 2]\n", "mqtt"),
        ("mqtt:\n  url: http://x\n", "mqtt://host:port"),
        ("mqtt:\n  url: mqtt://x:99999\n", "port"),
        ("mqtt:\n  protocol: 3.1\n", "mqtt.protocol"),
        ("site:\n  site_id: a\n  site_id: b\n", "duplicate key"),
        ("site: {\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("mqtt:\n  password: hunter2\n", "mqtt.password"),
        ("mqtt:\n  password: {env: A, file: /b}\n", "exactly one"),
        ("grpc:\n  tls: {cert_file: a.pem}\n", "go together"),
    ],
)
def test_malformed_files_give_precise_errors(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert fragment in str(err.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_relative_paths_are_relative_to_the_file(tmp_path):
    sub = tmp_path / "conf"
    sub.mkdir()
    path = _write(sub, "storage:\n  data_dir: state\n")
    assert load_config(path).storage.data_dir == sub / "state"


def test_secrets_come_from_env_or_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAMLINE_TEST_SECRET", "s3cret")
    assert Secret(env="SEAMLINE_TEST_SECRET").resolve().get_secret_value() == "s3cret"
    f = tmp_path / "pw"
    f.write_text("from-file\n")
    assert Secret(file=f).resolve().get_secret_value() == "from-file"
    monkeypatch.delenv("SEAMLINE_TEST_SECRET")
    with pytest.raises(ConfigError, match="SEAMLINE_TEST_SECRET is not set"):
        Secret(env="SEAMLINE_TEST_SECRET").resolve()


def test_line_map_covers_nested_keys():
    _, lines = parse_yaml("a:\n  b:\n    - x\n    - c: 1\n")
    assert lines[("a",)] == 1 and lines[("a", "b")] == 2 and lines[("a", "b", 1, "c")] == 4


def test_every_config_field_is_titled_and_described():
    from pydantic import BaseModel

    seen = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            assert field.title, f"{model.__name__}.{name} has no title"
            assert field.description or model.__name__ in ("LocalizedNames",), (
                f"{model.__name__}.{name} has no description"
            )
            for arg in getattr(field.annotation, "__args__", (field.annotation,)):
                for inner in getattr(arg, "__args__", (arg,)):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        walk(inner)

    walk(SeamlineConfig)
    assert len(seen) > 5


def test_a_station_id_the_cloud_would_refuse_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="station_id"):
        load_config(_write(tmp_path, f"site: {{station_id: {'s' * 65}}}\n"))


@pytest.mark.parametrize(
    "address, ok",
    [
        ("cloud.plant1:50051", True),
        ("dns:///cloud.plant1:50051", True),
        ("ipv4:10.0.0.5:50051,10.0.0.6:50051", True),
        ("ipv6:[::1]:50051", True),
        ("ipv4:10.0.0.5:50051,10.0.0.6", False),  # every listed address needs its port
        ("10.0.0.5,10.0.0.6:50051", False),  # a list needs the ipv4: scheme
        ("dns:///cloud.plant1", False),
        ("cloud.plant1", False),
    ],
)
def test_the_cloud_address_is_a_host_port_or_a_grpc_target(address, ok):
    data = {"grpc": {"cloud_address": address}}
    if ok:
        assert SeamlineConfig.model_validate(data).grpc.cloud_address == address
    else:
        with pytest.raises(ValueError, match="must be host:port, dns:///host:port, or ipv4:"):
            SeamlineConfig.model_validate(data)
