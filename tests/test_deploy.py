"""Deployment files checked without Docker or a cluster: instance configs against Dagster's own
schemas, the Helm values against the instance the run pods see, the Kubernetes Job the
K8sRunLauncher would create, the Dockerfile against the repository and Dagster's CLI, and the
code location loaded with the container's settings (served for real on request)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY, K8S = ROOT / "deploy", ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent
INSTANCE_FILES = ["dagster.yaml", "dagster-postgres.yaml", "k8s/dagster-instance.yaml"]
PG_ENV = {
    "DAGSTER_PG_HOST": "db.example",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "unused",
    "DAGSTER_PG_DB": "dagster",
}


def load(rel: str) -> dict:
    return yaml.safe_load((DEPLOY / rel).read_text())


def manifests() -> dict[tuple[str, str], dict]:
    """Every object of the plain manifests, by (kind, name)."""
    objs = {}
    for f in (K8S / "lifecycle.yaml", K8S / "secrets.template.yaml"):
        for doc in yaml.safe_load_all(f.read_text()):
            objs[(doc["kind"], doc["metadata"]["name"])] = doc
    return objs


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def instance_ref(rel: str, tmp_path: Path):
    """Dagster's own loader (the one DagsterInstance.get uses) on the real file."""
    from dagster._core.instance.ref import InstanceRef

    home = tmp_path / rel.replace("/", "_")
    home.mkdir()
    (home / "dagster.yaml").symlink_to(DEPLOY / rel)
    return InstanceRef.from_dir(str(home))


def class_configs(ref) -> dict[str, tuple[type, dict]]:
    from dagster._serdes.config_class import ConfigurableClassData, class_from_code_pointer

    out = {}
    for field in ref._fields:
        data = getattr(ref, field)
        if isinstance(data, ConfigurableClassData):
            klass = class_from_code_pointer(data.module_name, data.class_name)
            out[field] = (klass, data.config_dict)
    return out


def test_every_yaml_parses():
    files = sorted(DEPLOY.glob("*.yaml")) + sorted(K8S.glob("*.yaml"))
    assert len(files) >= 6
    for f in files:
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
        assert docs and all(isinstance(d, dict) for d in docs), f


@pytest.mark.parametrize("rel", INSTANCE_FILES)
def test_instance_config_validates(rel, tmp_path, monkeypatch):
    from dagster._config import process_config

    for var, value in PG_ENV.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # always set where an instance loads
    configs = class_configs(instance_ref(rel, tmp_path))
    for field, (klass, config) in configs.items():
        result = process_config(klass.config_type(), config)
        assert result.success, (rel, field, result.errors)
    # the validation is not vacuous: a misspelt key is refused
    klass, config = configs["run_launcher_data" if "k8s" in rel else "run_coordinator_data"]
    assert not process_config(klass.config_type(), {**config, "max_concurent": 1}).success
    shipped = load(rel)
    for other in INSTANCE_FILES:  # one concurrency policy everywhere
        assert load(other)["concurrency"] == shipped["concurrency"]
        assert load(other)["run_coordinator"] == shipped["run_coordinator"]
        assert load(other)["telemetry"] == {"enabled": False}


def test_postgres_instance_reads_credentials_from_environment(tmp_path, monkeypatch):
    from dagster._config import process_config

    pg = load("dagster-postgres.yaml")["storage"]["postgres"]["postgres_db"]
    fields = {"hostname": "HOST", "port": "PORT", "username": "USER", "password": "PASSWORD"}
    for field, suffix in {**fields, "db_name": "DB"}.items():
        assert pg[field] == {"env": f"DAGSTER_PG_{suffix}"}
    for var, value in PG_ENV.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("DAGSTER_PG_PORT", "not-a-port")
    klass, config = class_configs(instance_ref("dagster-postgres.yaml", tmp_path))["storage_data"]
    assert not process_config(klass.config_type(), config).success


def test_helm_values_render_the_instance_file():
    """The parts of the chart's instance template our values feed, against the reference."""
    values, inst = load("k8s/values.yaml"), load("k8s/dagster-instance.yaml")
    pg, k8s = values["postgresql"], values["runLauncher"]["config"]["k8sRunLauncher"]
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        assert inst[storage]["config"]["postgres_db"] == {
            "username": pg["postgresqlUsername"],
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": pg["postgresqlHost"],
            "db_name": pg["postgresqlDatabase"],
            "port": pg["service"]["port"],
            "params": pg["postgresqlParams"],
            "scheme": pg["postgresqlScheme"],
        }
    launcher = inst["run_launcher"]
    assert (launcher["module"], launcher["class"], values["runLauncher"]["type"]) == (
        "dagster_k8s",
        "K8sRunLauncher",
        "K8sRunLauncher",
    )
    run_k8s = {"container_config": "containerConfig", "pod_spec_config": "podSpecConfig"}
    run_k8s["job_spec_config"] = "jobSpecConfig"
    assert launcher["config"]["run_k8s_config"] == {
        ours: k8s["runK8sConfig"][theirs] for ours, theirs in run_k8s.items()
    }
    assert (
        launcher["config"]["postgres_password_secret"] == values["global"]["postgresqlSecretName"]
    )
    assert launcher["config"]["dagster_home"] == values["global"]["dagsterHome"]
    assert launcher["config"]["image_pull_policy"] == k8s["imagePullPolicy"]
    assert launcher["config"]["fail_pod_on_run_failure"] is k8s["failPodOnRunFailure"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == inst["run_coordinator"]["class"]
    conc = values["concurrency"]
    assert conc["enabled"] and inst["concurrency"] == {
        "pools": {"default_limit": conc["pools"]["defaultLimit"]},
        "runs": {"max_concurrent_runs": conc["runs"]["maxConcurrentRuns"]},
    }
    assert inst["telemetry"]["enabled"] is values["telemetry"]["enabled"]


def chart_container_context(deployment: dict, namespace: str) -> dict:
    """What the chart passes to runs for a user deployment (includeConfigInLaunchedRuns)."""
    return {
        "k8s": {
            "image_pull_policy": deployment["image"]["pullPolicy"],
            "env_config_maps": [f"dagster-{deployment['name']}-user-env"]
            + [c["name"] for c in deployment["envConfigMaps"]],
            "env_secrets": [s["name"] for s in deployment["envSecrets"]],
            "volume_mounts": deployment["volumeMounts"],
            "volumes": deployment["volumes"],
            "namespace": namespace,
            "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
        }
    }


def test_run_pod_the_launcher_would_create(tmp_path, monkeypatch):
    """dagster-k8s builds the Job of a run from the instance file and the code location's
    container context: every name it references must exist and match the image."""
    from dagster._config import process_config
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import construct_dagster_k8s_job

    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused")
    klass, config = class_configs(instance_ref("k8s/dagster-instance.yaml", tmp_path))[
        "run_launcher_data"
    ]
    kubeconfig = tmp_path / "kubeconfig"  # in-cluster config replaced by a local one
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: c, cluster: "
        "{server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]"
        "\nusers: [{name: u, user: {token: t}}]\n"
    )
    local = {**config, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    launcher = klass.from_config_value(None, process_config(klass.config_type(), local).value)
    deployment = load("k8s/values.yaml")["dagster-user-deployments"]["deployments"][0]
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    origin = RepositoryPythonOrigin(
        executable_path="python",
        code_pointer=ModuleCodePointer("orchestration.definitions", "defs", str(ROOT)),
        container_image=image,
        container_context=chart_container_context(deployment, launcher.job_namespace),
    )
    run = DagsterRun(job_name="nightly", job_code_origin=JobPythonOrigin("nightly", origin))
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
    job = construct_dagster_k8s_job(
        context.get_k8s_job_config(job_image=image, run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name="dagster-run-test",
        user_defined_k8s_config=context.run_k8s_config,
    )
    pod = job.spec.template.spec
    (container,) = pod.containers
    objs = manifests()
    uid = int(dict(dockerfile())["USER"].split(":")[0])
    assert container.image == image and pod.security_context.run_as_user == uid
    assert pod.security_context.fs_group == uid and pod.security_context.run_as_non_root
    claims = {v.persistent_volume_claim.claim_name for v in pod.volumes}
    assert claims and all(("PersistentVolumeClaim", c) in objs for c in claims)
    assert {m.mount_path for m in container.volume_mounts} == {"/data"}
    env_from = {(e.config_map_ref or e.secret_ref).name for e in container.env_from}
    assert {"lifecycle-env", "lifecycle-secrets"} <= env_from
    assert ("ConfigMap", "lifecycle-env") in objs and ("Secret", "lifecycle-secrets") in objs
    env = {e.name: e for e in container.env}
    ref = env["DAGSTER_PG_PASSWORD"].value_from.secret_key_ref
    assert "postgresql-password" in objs[("Secret", ref.name)]["data"]
    assert (
        env["DAGSTER_HOME"].value == re.search(r"DAGSTER_HOME=(\S+)", dict(dockerfile())["ENV"])[1]
    )
    assert container.resources.limits["memory"] and job.spec.ttl_seconds_after_finished > 0


def test_manifests_are_valid_and_hold_no_secret():
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
    from kubernetes import client

    settings_code = "\n".join(
        p.read_text()
        for p in [*ROOT.glob("orchestration/**/*.py"), ROOT / "dbt_project/profiles.yml"]
    )
    for (kind, name), obj in manifests().items():
        model = getattr(client, f"V1{kind}")
        k8s_model_from_dict(model, k8s_snake_case_dict(model, obj))  # unknown fields raise
        if kind == "Secret":
            assert all(v.startswith("<") for v in obj["data"].values()), name  # placeholders
        if kind == "ConfigMap":
            for key in obj["data"]:  # every setting is one the code reads (no typos)
                assert key in settings_code or key.startswith("DAGSTER_"), key


def test_dockerfile_matches_the_repository():
    steps = dockerfile()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.11-slim")
    assert "<3.12" in project["project"]["requires-python"]
    ignored = [p.strip().rstrip("/") for p in (ROOT / ".dockerignore").read_text().splitlines()]
    ignored = [p for p in ignored if p and not p.startswith("#")]
    assert {"data", ".venv", ".git", "dbt_project/target"} <= set(ignored)
    for kind, args in steps:
        if kind == "COPY":
            for src in args.split()[:-1]:
                assert (ROOT / src).exists(), src
                assert not any(src.rstrip("/") == p or src.startswith(p + "/") for p in ignored)
    runs = [args for kind, args in steps if kind == "RUN"]
    assert any(re.search(r'pip install .*"uv==\d+\.\d+\.\d+"', r) for r in runs)
    sync = [r for r in runs if r.startswith("uv sync")]
    assert sync and all("--frozen" in r and "--no-dev" in r for r in sync)
    groups = set(re.findall(r"--group (\S+)", sync[-1]))
    assert groups and groups <= set(project["dependency-groups"])
    export = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-hashes", *[f"--group={g}" for g in groups]],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    packages = {line.split("==")[0] for line in export.splitlines() if "==" in line}
    assert {"dagster-k8s", "dagster-postgres", "psycopg2-binary", "dbt-duckdb"} <= packages
    assert not {"pytest", "ruff", "playwright"} & packages
    parse = next(r for r in runs if "dbt parse" in r)
    for flag, needed in (("--project-dir", "dbt_project.yml"), ("--profiles-dir", "profiles.yml")):
        assert (ROOT / re.search(rf"{flag} (\S+)", parse)[1] / needed).is_file(), flag
    env = dict(re.findall(r"(\w+)=(\S+)", dict(steps)["ENV"]))
    assert env["PATH"].startswith(f"{env['UV_PROJECT_ENVIRONMENT']}/bin:")  # dagster, dbt
    user = dict(steps)["USER"].split(":")[0]
    assert user not in ("root", "0") and [k for k, _ in steps].index("USER") > max(
        i for i, (k, _) in enumerate(steps) if k == "RUN"
    )
    cmd = json.loads(dict(steps)["CMD"])
    assert cmd[:3] == ["dagster", "code-server", "start"] and find_spec(cmd[cmd.index("-m") + 1])
    # dg names the project after its folder: the location name must be the WORKDIR's name
    assert cmd[cmd.index("--location-name") + 1] == Path(dict(steps)["WORKDIR"]).name
    deployment = load("k8s/values.yaml")["dagster-user-deployments"]["deployments"][0]
    assert cmd[cmd.index("-p") + 2 :] == deployment["codeServerArgs"]  # the chart adds -h/-p
    assert cmd[cmd.index("-p") + 1] == dict(steps)["EXPOSE"] == str(deployment["port"])


def production_env(tmp_path: Path) -> dict[str, str]:
    """The container's environment: the ConfigMap's settings, /data under tmp_path."""
    data = manifests()[("ConfigMap", "lifecycle-env")]["data"]
    env = {**os.environ, **{k: v.replace("/data", str(tmp_path / "data")) for k, v in data.items()}}
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env["DAGSTER_HOME"] = str(home)
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # as the image's ENV PATH: dbt is found
    return env


def test_dg_check_defs_with_production_settings(tmp_path):
    done = subprocess.run(
        [str(BIN / "dg"), "check", "defs"],
        cwd=ROOT, env=production_env(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def dagster_cli_parse(argv: list[str]) -> dict:
    """Parse ``dagster ...`` with the real click command tree (unknown options raise)."""
    import click
    from dagster._cli import cli

    assert argv[0] == "dagster"
    command, args = cli, argv[1:]
    while isinstance(command, click.Group):
        command, args = command.commands[args[0]], args[1:]
    return command.make_context(argv[-1], list(args)).params


def test_image_commands_parse_with_the_dagster_cli():
    steps = dict(dockerfile())
    cmd = json.loads(steps["CMD"])
    params = dagster_cli_parse(cmd)
    assert (params["host"], params["port"]) == ("0.0.0.0", int(steps["EXPOSE"]))
    assert find_spec(params["module_name"]) and params["location_name"] == "lifecycle"
    health = json.loads(steps["HEALTHCHECK"].split("CMD", 1)[1])
    assert dagster_cli_parse(health)["port"] == params["port"]
    with pytest.raises(Exception, match="No such option"):
        dagster_cli_parse([*cmd, "--no-such-flag"])


@pytest.mark.skipif(
    not os.environ.get("LIFECYCLE_DEPLOY_SERVE_TEST"),
    reason="~30-90 s: set LIFECYCLE_DEPLOY_SERVE_TEST=1 to start the code server for real",
)
def test_image_command_serves_the_code_location(tmp_path):
    """The Dockerfile's CMD (host and port made local) answers Dagster's gRPC health check."""
    cmd = json.loads(dict(dockerfile())["CMD"])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    cmd[cmd.index("-h") + 1], cmd[cmd.index("-p") + 1] = "127.0.0.1", port
    log = tmp_path / "code-server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(BIN / cmd[0]), *cmd[1:]],
            cwd=ROOT, env=production_env(tmp_path), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            check = subprocess.run(
                [str(BIN / "dagster"), "api", "grpc-health-check", "-p", port],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if check.returncode == 0:
                break
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(2)
        assert "Started Dagster code server for module orchestration.definitions" in log.read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the child it spawned
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
