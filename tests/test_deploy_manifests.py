"""The Helm chart and k8s/ manifests, checked offline.

The chart is rendered and linted by the real Helm (Go library, via helm-python-sdk); every object
is validated against the Kubernetes JSON schemas (kubernetes-validate, strict) or, for ray.io kinds,
against the KubeRay v1.7.0 CRD openAPIV3Schema (unknown fields refused unless the CRD says
x-kubernetes-preserve-unknown-fields). Name-length rules of the KubeRay operator are mirrored.

About 400 lines on purpose: the chart, the raw manifests and their shared validators are one idea
(what goes to the cluster is valid), and splitting them would duplicate the loaders and validators.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import gzip
import re
import shlex
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

helm = pytest.importorskip("helm_python")
kv = pytest.importorskip("kubernetes_validate")

import arcray  # noqa: E402
from arcray.deploy import cronlauncher, recurring  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "arcray"
# The KubeRay v1.7.0 CRDs (shared/data/kuberay-crds-v1.7.0), vendored gzipped so a clone tests alone.
CRDS = ROOT / "tests" / "data" / "kuberay-crds-v1.7.0"
K8S_VERSION = "1.33"
NAME_MAX = {"RayJob": 47, "RayCronJob": 36, "RayCluster": 63, "CronJob": 52}
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# ---------------------------------------------------------------- schema validation helpers
def _strict(node):
    """CRD structural schema -> JSON schema: int-or-string, no unknown fields."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (node.get("type") == "object" and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    fname = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayCronJob": "raycronjobs"}[kind]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on 25k lines
    text = gzip.decompress((CRDS / f"ray.io_{fname}.yaml.gz").read_bytes()).decode()
    crd = yaml.load(text, Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


def validate(obj: dict) -> None:
    kind, name = obj["kind"], obj["metadata"]["name"]
    if obj["apiVersion"].startswith("ray.io/"):
        errors = sorted(crd_validator(kind).iter_errors(obj), key=lambda e: list(e.path))
        assert not errors, f"{kind}/{name}: " + "; ".join(
            f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5])
    else:
        try:
            kv.validate(obj, K8S_VERSION, strict=True)
        except kv.ValidationError as e:  # noqa: PERF203
            pytest.fail(f"{kind}/{name}: {'.'.join(map(str, e.path))}: {e.message}")
    limit = NAME_MAX.get(kind, 253)
    assert len(name) <= limit, f"{kind} name {name!r} longer than {limit}"
    pattern = DNS1035 if kind in ("RayJob", "RayCronJob", "RayCluster") else DNS1123
    assert pattern.match(name), f"{kind} name {name!r} is not a valid DNS name"


def walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def check_security(obj: dict) -> None:
    """runAsNonRoot on every pod, requests+limits on every container, no literal secret values."""
    pods = [n for n in walk(obj) if isinstance(n, dict) and "containers" in n]
    for pod in pods:
        assert pod.get("securityContext", {}).get("runAsNonRoot") is True, obj["metadata"]["name"]
        for c in pod["containers"]:
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(part, {})), c["name"]
            assert c.get("securityContext", {}).get("allowPrivilegeEscalation") is False
            for env in c.get("env", []):
                secretish = re.search(r"PASSWORD|TOKEN|SECRET", env["name"])
                if secretish and not env["name"].endswith("_FILE"):
                    assert "value" not in env, f"{env['name']} has a literal value"
    if obj.get("kind") != "Secret":
        text = yaml.safe_dump(obj)
        assert not re.search(r"(?i)password\s*[:=]\s*[^\s/]", text.replace("_FILE", "")), \
            "a literal password in a manifest"


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


@functools.cache
def chart():
    return helm.Chart.load(str(CHART))


def render(values: dict | None = None, name: str = "arcray") -> list[dict]:
    out = chart().render(values or {}, name=name, namespace="sdss")
    objs = []
    for path, text in sorted(out.items()):
        if not path.endswith("NOTES.txt"):
            objs += docs(text)
    return objs


def rendered_notes(values: dict | None = None) -> str:
    return chart().render(values or {}, name="arcray", namespace="sdss")["arcray/templates/NOTES.txt"]


VARIANTS = {
    "default": {},
    "cronjob+training": {"scheduler": "cronJob", "training": {"enabled": True}},
    "existing-claim,no-auth": {"storage": {"create": False, "existingClaim": "shared-nfs"},
                               "rayAuthMode": "disabled", "backfill": {"enabled": False},
                               "imagePullSecrets": ["regcred"]},
}


# ---------------------------------------------------------------- the chart
def test_lint_is_clean():
    report = helm.lint(str(CHART), strict=True, namespace="sdss")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendered_object_validates(variant):
    objs = render(VARIANTS[variant])
    kinds = [o["kind"] for o in objs]
    for obj in objs:
        validate(obj)
        check_security(obj)
        if obj["kind"] == "ConfigMap" and "rayjob.yaml" in obj.get("data", {}):
            job = yaml.safe_load(obj["data"]["rayjob.yaml"])
            validate(job)
            check_security(job)
    assert "Secret" not in kinds  # credentials are referenced by name only
    if variant == "default":
        assert sorted(kinds) == ["PersistentVolumeClaim", "RayCronJob", "RayCronJob"]
    elif variant == "cronjob+training":
        assert sorted(kinds) == ["ConfigMap", "ConfigMap", "CronJob", "CronJob",
                                 "PersistentVolumeClaim", "RayJob", "Role", "RoleBinding",
                                 "ServiceAccount"]
    else:
        assert sorted(kinds) == ["RayCronJob"]
        pvc = [n for n in walk(objs) if isinstance(n, dict) and "persistentVolumeClaim" in n]
        assert {v["persistentVolumeClaim"]["claimName"] for v in pvc} == {"shared-nfs"}


def test_long_release_names_are_cut_to_kuberay_limits():
    name = "a-very-long-release-name-for-the-sdss-boss-arc-ingestion-pipeline"[:53]
    objs = render({"scheduler": "rayCronJob", "training": {"enabled": True}}, name=name)
    lengths = {o["kind"]: len(o["metadata"]["name"]) for o in objs}
    assert lengths["RayCronJob"] <= 36 and lengths["RayJob"] <= 47
    for obj in objs:
        validate(obj)
    # A child RayJob is "<cron name>-<unix minutes>": 36 + 1 + 8 digits fits 47.
    cron = next(o for o in objs if o["kind"] == "RayCronJob")
    child = cronlauncher.child_name(cron["metadata"]["name"], dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    assert len(child) <= 47


def test_gpu_worker_group_only_in_training_with_gpu_and_toleration():
    objs = render({"training": {"enabled": True}, "gpuWorkers": {"gpus": 2}})
    train = next(o for o in objs if o["kind"] == "RayJob")
    groups = {g["groupName"]: g for g in train["spec"]["rayClusterSpec"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    pod = groups["gpu"]["template"]["spec"]
    res = pod["containers"][0]["resources"]
    assert res["requests"]["nvidia.com/gpu"] == 2 and res["limits"]["nvidia.com/gpu"] == 2
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    for cron in (o for o in objs if o["kind"] == "RayCronJob"):
        names = [g["groupName"] for g in cron["spec"]["jobTemplate"]["rayClusterSpec"]["workerGroupSpecs"]]
        assert names == ["cpu"]


@pytest.mark.parametrize("bad", [
    {"scheduler": "cron"},
    {"podSecurityContext": {"runAsNonRoot": False}},
    {"nightly": {"steps": ["scrape --root '{root}'"]}},
    {"image": {"tag": "latest"}},
    {"nightly": {"schedule": "every night"}},
    {"credentials": {"mailmanPassword": "hunter2"}},
])
def test_schema_refuses_bad_values(bad):
    with pytest.raises(helm.HelmError):
        chart().render(bad, name="arcray", namespace="sdss")


def test_scheduled_entrypoints_run_the_right_nights():
    """The rendered entrypoint is a real command line for arcray.deploy.recurring."""
    objs = render({"backfill": {"months": 2}})
    crons = {o["metadata"]["labels"]["app.kubernetes.io/component"]: o
             for o in objs if o["kind"] == "RayCronJob"}
    assert crons["nightly"]["spec"]["schedule"] == "30 14 * * *"
    argv = shlex.split(crons["nightly"]["spec"]["jobTemplate"]["entrypoint"])
    assert argv[:3] == ["python", "-m", "arcray.deploy.recurring"]
    now = dt.datetime(2024, 1, 1, 14, 30, tzinfo=dt.timezone.utc)  # MJD 60310.604
    ctx = recurring.context(argv[3], now, root="/data/arcray")
    steps = [recurring.fill(s, ctx) for s in argv[argv.index("--step") + 1::2]]
    assert steps[0] == ["scrape", "--root", "/data/arcray", "--months", "2024-01"]
    assert steps[1][-4:] == ["--mjd-min", "60310", "--mjd-max", "60310"]  # night ended 2024-01-01
    assert steps[2] == ["calibrate", "--root", "/data/arcray"]
    argv = shlex.split(crons["backfill"]["spec"]["jobTemplate"]["entrypoint"])
    assert argv[argv.index("--backfill-months") + 1] == "2"
    ctx = recurring.context("backfill", now, backfill_months=2)
    assert ctx["months"] == "2023-11..2023-12"
    assert (ctx["mjd_min"], ctx["mjd_max"]) == ("60249", "60309")  # 2023-11-01 .. 2023-12-31


def test_notes_tell_how_to_see_the_next_run_and_its_logs():
    notes = rendered_notes()
    assert "RayCronJob" in notes and "feature" in notes.lower()
    assert "kubectl -n sdss get raycronjobs" in notes and "logs -f job/" in notes
    assert '"30 14 * * *"' in notes and "arcray-nightly-<unix minutes>" in notes
    notes = rendered_notes({"scheduler": "cronJob"})
    assert "kubectl -n sdss get cronjobs" in notes and "create job --from=cronjob/arcray-nightly" in notes


def test_every_values_key_is_documented():
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if not m:
            continue
        j = i - 1
        block = []
        while j >= 0 and lines[j].strip().startswith("#"):
            block.append(lines[j])
            j -= 1
        if not any("# --" in b for b in block):
            undocumented.append(m.group(2))
    assert undocumented == []
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert not re.search(r"(?i)password|token:", yaml.safe_dump(values).replace("rayAuthMode", ""))


# ---------------------------------------------------------------- the CronJob -> RayJob launcher
class FakeCustomObjects:
    """Stands in for the Kubernetes API server (none can run here)."""

    def __init__(self, existing):
        self.items, self.created, self.deleted = list(existing), [], []

    def create_namespaced_custom_object(self, group, version, ns, plural, body):
        assert (group, version, plural) == ("ray.io", "v1", "rayjobs")
        self.created.append((ns, body))

    def list_namespaced_custom_object(self, group, version, ns, plural, label_selector):
        key, val = label_selector.split("=")
        return {"items": [i for i in self.items if i["metadata"]["labels"].get(key) == val]}

    def delete_namespaced_custom_object(self, group, version, ns, plural, name):
        self.deleted.append(name)


def _job(name, ts, state):
    return {"metadata": {"name": name, "creationTimestamp": ts,
                         "labels": {cronlauncher.SCHEDULE_LABEL: "arcray-nightly"}},
            "status": {"jobDeploymentStatus": state}}


def test_launcher_creates_a_valid_rayjob_and_prunes_old_ones():
    objs = render({"scheduler": "cronJob"})
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and "nightly" in o["metadata"]["name"])
    template = yaml.safe_load(cm["data"]["rayjob.yaml"])
    existing = [_job(f"arcray-nightly-{k}", f"2024-01-0{k}T14:30:00Z", s) for k, s in
                [(1, "Complete"), (2, "Failed"), (3, "Complete"), (4, "Running")]]
    api = FakeCustomObjects(existing)
    now = dt.datetime(2024, 1, 5, 14, 30, tzinfo=dt.timezone.utc)
    name = cronlauncher.launch(api, "sdss", template, "arcray-nightly", now, keep=1)
    assert name == f"arcray-nightly-{int(now.timestamp()) // 60}" == "arcray-nightly-28407750"
    ns, body = api.created[0]
    validate(body)
    assert ns == "sdss" and body["spec"] == template["spec"]
    assert api.deleted == ["arcray-nightly-1", "arcray-nightly-2"]  # oldest finished, keep 1


# ---------------------------------------------------------------- k8s/ and version agreement
def k8s_objects() -> list[dict]:
    objs = []
    for path in sorted((ROOT / "k8s").glob("*.yaml")):
        objs += docs(path.read_text())
    return objs


def test_k8s_manifests_validate():
    objs = k8s_objects()
    for obj in objs:
        validate(obj)
        check_security(obj)
    kinds = sorted({o["kind"] for o in objs})
    assert kinds == ["PersistentVolumeClaim", "RayCluster", "RayJob", "Secret"]
    stages = {o["metadata"]["name"].removeprefix("arcray-") for o in objs if o["kind"] == "RayJob"}
    assert {"scrape", "download", "calibrate", "train", "embed", "report"} <= stages
    for job in (o for o in objs if o["kind"] == "RayJob"):
        script = shlex.split(job["spec"]["entrypoint"])[1]
        assert (ROOT / script.removeprefix("/app/")).exists(), script
    cluster = next(o for o in objs if o["kind"] == "RayCluster")
    gpu = next(g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu")
    gpu_pod = gpu["template"]["spec"]
    assert gpu_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu_pod["tolerations"])
    for secret in (o for o in objs if o["kind"] == "Secret"):
        assert set(secret["stringData"].values()) == {"REPLACE_ME"}


def test_one_ray_version_and_image_tag_everywhere():
    ray = arcray.RAY_VERSION
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [d for d in deps if re.match(r"ray\[", d)] == [f"ray[default,train,tune]=={ray}"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^ARG RAY_BASE=(\S+)", dockerfile, re.M)
    assert bases == [f"rayproject/ray:{ray}-py311-gpu"]
    assert f'io.ray.version="{ray}"' in dockerfile
    assert f'org.opencontainers.image.version="{arcray.__version__}"' in dockerfile
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    tag = f"{arcray.__version__}-ray{ray}"
    assert meta["annotations"]["arcray.io/ray-version"] == values["rayVersion"] == ray
    assert meta["appVersion"] == arcray.__version__ and values["image"]["tag"] == tag
    image = f"{values['image']['repository']}:{tag}"
    assert f"docker build -t {image} ." in dockerfile
    for obj in k8s_objects() + render({"training": {"enabled": True}}):
        for node in walk(obj):
            if isinstance(node, dict):
                if "image" in node and isinstance(node["image"], str):
                    assert node["image"] == image, node["image"]
                if "rayVersion" in node:
                    assert node["rayVersion"] == ray


def test_strict_crd_validation_catches_mistakes():
    """The validator itself: an unknown field and a wrong type are refused."""
    job = copy.deepcopy(next(o for o in k8s_objects() if o["kind"] == "RayJob"))
    job["spec"]["entrypont"] = "typo"
    with pytest.raises(AssertionError, match="entrypont"):
        validate(job)
    cluster = copy.deepcopy(next(o for o in k8s_objects() if o["kind"] == "RayCluster"))
    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    with pytest.raises(AssertionError, match="replicas"):
        validate(cluster)
    long_job = copy.deepcopy(job)
    del long_job["spec"]["entrypont"]
    long_job["metadata"]["name"] = "x" * 48
    with pytest.raises(AssertionError, match="longer than 47"):
        validate(long_job)
    pvc = copy.deepcopy(next(o for o in k8s_objects() if o["kind"] == "PersistentVolumeClaim"))
    pvc["spec"]["storageSize"] = "1Gi"
    with pytest.raises(BaseException, match="storageSize"):
        validate(pvc)


def _parse_with_real_cli(argv: list[str]) -> None:
    """Parse (never run) ``arcray <argv>`` with the stage's real Click command."""
    import typer

    from arcray.cli.apps import app
    from arcray.cli.main import _register

    _register()
    group = typer.main.get_command(app)
    cmd = group.get_command(group.make_context("arcray", ["--help"], resilient_parsing=True), argv[0])
    assert cmd is not None, f"no arcray command {argv[0]!r}"
    cmd.make_context(argv[0], list(argv[1:]))  # raises click.UsageError on unknown/missing options


def test_default_steps_and_k8s_entrypoints_parse_with_the_stage_clis():
    now = dt.datetime(2024, 1, 1, 15, tzinfo=dt.timezone.utc)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for window in ("nightly", "backfill"):
        ctx = recurring.context(window, now, root="/data/arcray")
        for step in values[window]["steps"]:
            _parse_with_real_cli(recurring.fill(step, ctx))
    train = next(o for o in render({"training": {"enabled": True}}) if o["kind"] == "RayJob")
    argv = shlex.split(train["spec"]["entrypoint"])
    _parse_with_real_cli(["train", *argv[2:]])
    for job in (o for o in k8s_objects() if o["kind"] == "RayJob"):
        argv = shlex.split(job["spec"]["entrypoint"])
        _parse_with_real_cli([Path(argv[1]).stem, *argv[2:]])
