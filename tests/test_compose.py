"""docker-compose.yml is honest, without a Docker engine to run it: it runs the commands
the README documents (and the CLI parses), sets only real settings, shares no volume
between the API and the workers, runs nothing `privileged`, gives the workers only the
capabilities and security options the README and the file itself write down, builds
the GPU worker with the CUDA build of torch, and checks every worker's health. Then the
sandbox's attack suite runs under exactly the workers' capabilities and seccomp profile
(setpriv for the capabilities, tests/support/compose_limits.py for the profile)."""

from __future__ import annotations

import ctypes.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import build_parser
from core.settings import Settings
from tests.support.isolation import (
    EXPECT_VARIABLE,
    full_isolation_expected,
    layer_missing,
    require_root,
)
from tests.support.paths import ROOT
from worker.sandbox import seccomp

COMPOSE = ROOT / "docker-compose.yml"
README = ROOT / "README.md"
DOCKERFILE = ROOT / "Dockerfile"
WORKERS = ("worker-cpu", "worker-gpu")
#: What the workers' sandboxes use (docker-compose.yml says why for each).
WORKER_CAPS = {"SYS_ADMIN", "SETUID", "SETGID", "KILL", "SETFCAP"}
#: Syscalls the zygote makes to build each sandbox: the profile must not deny them.
ZYGOTE_NEEDS = {
    "unshare",
    "mount",
    "umount2",
    "pivot_root",
    "sethostname",
    "clone",
    "seccomp",
    "prctl",
    "capset",
    "setresuid",
    "setresgid",
    "setgroups",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def readme_commands() -> list[list[str]]:
    """The `autograder ...` lines of the README's distributed-deployment section."""
    text = README.read_text()
    section = text.split("## Distributed deployment", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "the distributed section has no sh block"
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [shlex.split(line) for line in lines if line.startswith("autograder ")]


def autograder_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in services(compose).items()
        if str(s.get("image", "")).startswith("dlp-autograder")
    }


@pytest.mark.fast
def test_every_service_runs_a_documented_command(compose: dict[str, Any]) -> None:
    documented = readme_commands()
    parser = build_parser()
    ours = autograder_services(compose)
    assert set(ours) == {"migrate", "api", *WORKERS}
    for name, service in ours.items():
        command = service["command"]
        assert command in documented, f"{name}: {command} is not in the README"
        parser.parse_args(command[1:])  # a command the CLI really has
        health = service.get("healthcheck", {}).get("test")
        if health:
            assert health[0] == "CMD" and health[1] == "autograder", name
            parser.parse_args(health[2:])
            assert [w for w in health[1:] if not w.startswith("http")][:3] in [
                c[:3] for c in documented
            ], f"{name}: healthcheck {health} is not documented"
    for command in documented:
        parser.parse_args(command[1:])


@pytest.mark.fast
def test_only_real_settings_and_no_shared_volume(compose: dict[str, Any]) -> None:
    fields = {f"AUTOGRADER_{name.upper()}" for name in Settings.model_fields}
    ours = autograder_services(compose)
    for name, service in ours.items():
        for key in service.get("environment", {}):
            assert key in fields, f"{name}: {key} is not a setting"
        assert service["environment"]["AUTOGRADER_DATABASE_URL"].startswith("postgresql")
        assert service["environment"]["AUTOGRADER_BROKER_URL"].startswith("redis://")
    mounts = {
        name: {str(v).split(":", 1)[0] for v in service.get("volumes", [])}
        for name, service in ours.items()
    }
    for worker in WORKERS:
        assert not mounts[worker] & mounts["api"], f"{worker} shares a volume with the api"
        assert not mounts[worker], f"{worker} mounts {mounts[worker]}: nothing is shared"
    assert not mounts["api"] and not mounts["migrate"]


@pytest.mark.fast
def test_nothing_privileged_and_workers_get_what_the_sandbox_uses(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        assert not service.get("privileged"), f"{name} is privileged"
        assert "pid" not in service and "network_mode" not in service, name
        assert not any("/var/run/docker.sock" in str(v) for v in service.get("volumes", []))
    text = COMPOSE.read_text()
    for worker in WORKERS:
        service = services(compose)[worker]
        assert service["cap_drop"] == ["ALL"], worker
        assert set(service["cap_add"]) == WORKER_CAPS, worker
        for cap in WORKER_CAPS:  # each one is written down with its reason
            assert re.search(rf"#\s+{cap}\b|#.*\b{cap}\b", text), f"{cap}: no reason given"
            assert f"`{cap}`" in README.read_text(), f"{cap}: not in the README"
        options = service["security_opt"]
        assert "apparmor=unconfined" in options and "no-new-privileges:true" in options
        profile = [o for o in options if o.startswith("seccomp=")]
        assert profile and (ROOT / profile[0].split("=", 1)[1]).is_file(), options
        assert service["cgroup"] == "private", worker
        assert service["entrypoint"] == ["/app/scripts/worker-entrypoint"]
        assert (ROOT / "scripts" / "worker-entrypoint").stat().st_mode & 0o111
        assert service["healthcheck"]["test"][1:4] == ["autograder", "healthcheck", "worker"]
    for name in ("api", "migrate"):  # trusted code only: no extra capability, no opt-out
        assert "cap_add" not in services(compose)[name]
        assert "security_opt" not in services(compose)[name]


@pytest.mark.fast
def test_gpu_worker_has_the_cuda_build_and_a_gpu(compose: dict[str, Any]) -> None:
    cpu, gpu = (services(compose)[w] for w in WORKERS)
    assert (
        cpu["command"][2:4] == ["--queues", "cpu"] and cpu["build"]["args"]["TORCH_INDEX"] == "cpu"
    )
    assert gpu["command"][2:4] == ["--queues", "gpu"]
    assert gpu["build"]["args"]["TORCH_INDEX"].startswith("cu")
    assert gpu["image"] != cpu["image"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    dockerfile = DOCKERFILE.read_text()
    assert "ARG TORCH_INDEX=cpu" in dockerfile
    assert "download.pytorch.org/whl/${TORCH_INDEX}" in dockerfile
    for path in ("scripts/worker-entrypoint", "scripts/seccomp-worker.json"):
        assert path.split("/")[0] in dockerfile and Path(path).name in dockerfile


@pytest.mark.fast
def test_seccomp_profile_denies_the_risky_and_keeps_what_the_zygote_needs() -> None:
    profile = json.loads((ROOT / "scripts" / "seccomp-worker.json").read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = {
        n
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ERRNO"
        for n in rule["names"]
    }
    assert not denied & ZYGOTE_NEEDS, denied & ZYGOTE_NEEDS
    # Everything the sandbox denies its children, the container denies the worker,
    # except what the zygote needs to build them.
    assert set(seccomp.DENIED) - ZYGOTE_NEEDS <= denied
    assert {"kexec_load", "init_module", "bpf", "open_by_handle_at", "keyctl"} <= denied


def test_sandbox_attack_suite_passes_under_the_workers_limits(compose: dict[str, Any]) -> None:
    require_root()
    setpriv = shutil.which("setpriv")
    if not setpriv or not ctypes.util.find_library("seccomp"):
        layer_missing("needs setpriv (util-linux) and libseccomp")
    worker = services(compose)["worker-cpu"]
    caps = ",".join(f"+{c.lower()}" for c in sorted(worker["cap_add"]))
    profile = next(o for o in worker["security_opt"] if o.startswith("seccomp=")).split("=", 1)[1]
    argv = [
        setpriv,
        f"--bounding-set=-all,{caps}",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        sys.executable,
        str(ROOT / "tests" / "support" / "compose_limits.py"),
        str(ROOT / profile),
        "--",
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/sandbox/test_attacks.py",
        "tests/sandbox/test_layers.py::test_isolation_string_names_every_layer",
        "tests/sandbox/test_layers.py::test_deadline_kills_the_whole_sandbox",
        "tests/sandbox/test_layers.py::test_degraded_mode_still_guards",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    if full_isolation_expected():  # the inner run fails on a missing layer too
        env[EXPECT_VARIABLE] = "1"
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert "no_new_privs=1" in out, out[-3000:]
    assert done.returncode == 0, out[-6000:]
    assert re.search(r"\b\d+ passed\b", out) and " failed" not in out, out[-3000:]
