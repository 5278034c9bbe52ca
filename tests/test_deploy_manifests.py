"""The Helm chart and k8s/ manifests, checked offline.

The chart is rendered and linted by the real Helm (Go library, via helm-python-sdk); every object
is validated against the Kubernetes JSON schemas (kubernetes-validate, strict) or, for ray.io kinds,
against the KubeRay v1.7.0 CRD openAPIV3Schema (unknown fields refused unless the CRD says
x-kubernetes-preserve-unknown-fields). Name-length rules of the KubeRay operator are mirrored.

About 600 lines on purpose: the chart (nightly and backfill jobs, their lifecycle, the dashboard),
the raw manifests and their shared validators are one idea (what goes to the cluster is valid and
does what values.yaml says), and splitting them would duplicate the render helper, the loaders
and the validators.
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
import json  # noqa: E402

from arcray import metrics  # noqa: E402
from arcray.deploy import backfill, cronlauncher  # noqa: E402

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
    elif obj["kind"] == "PodMonitor":  # a Prometheus Operator CRD: no schema offline
        check_podmonitor(obj)
    else:
        try:
            kv.validate(obj, K8S_VERSION, strict=True)
        except kv.ValidationError as e:  # noqa: PERF203
            pytest.fail(f"{kind}/{name}: {'.'.join(map(str, e.path))}: {e.message}")
    limit = NAME_MAX.get(kind, 253)
    assert len(name) <= limit, f"{kind} name {name!r} longer than {limit}"
    pattern = DNS1035 if kind in ("RayJob", "RayCronJob", "RayCluster") else DNS1123
    assert pattern.match(name), f"{kind} name {name!r} is not a valid DNS name"


def check_podmonitor(obj: dict) -> None:
    """The fields of monitoring.coreos.com/v1 PodMonitor the chart uses, checked by hand."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(obj["spec"]) <= {"selector", "podMetricsEndpoints"}
    assert obj["spec"]["selector"]["matchLabels"]
    for ep in obj["spec"]["podMetricsEndpoints"]:
        assert set(ep) <= {"port", "interval", "relabelings"} and ep["port"] == "metrics"
        assert re.fullmatch(r"\d+(ms|s|m|h)", ep.get("interval", "30s"))


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
    "shutdown,podmonitor,fixed-backfill": {"jobs": {"cleanup": "shutdown"},
                                           "metrics": {"podMonitor": {"enabled": True}},
                                           "backfill": {"mjdMin": 60300, "mjdMax": 60310}},
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
        assert sorted(kinds) == ["ConfigMap", "PersistentVolumeClaim", "RayCronJob", "RayCronJob"]
    elif variant == "cronjob+training":
        assert sorted(kinds) == ["ConfigMap", "ConfigMap", "ConfigMap", "CronJob", "CronJob",
                                 "PersistentVolumeClaim", "RayJob", "Role", "RoleBinding",
                                 "ServiceAccount"]
    elif variant.startswith("shutdown"):
        assert sorted(kinds) == ["ConfigMap", "PersistentVolumeClaim", "PodMonitor", "RayCronJob",
                                 "RayCronJob"]
    else:
        assert sorted(kinds) == ["ConfigMap", "RayCronJob"]
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
    {"nightly": {"args": "--root '/elsewhere'"}},
    {"nightly": {"steps": ["calibrate --root {root}"]}},
    {"nightly": {"backoffLimit": -1}},
    {"jobs": {"cleanup": "never"}},
    {"jobs": {"ttlSecondsAfterFinished": 3600, "deleteJobAfterSeconds": 60}},
    {"backfill": {"mjdMin": 60300}},
    {"backfill": {"mjdMin": 60310, "mjdMax": 60300}},
    {"metrics": {"dashboard": {"labels": {"grafana_dashboard": 1}}}},
    {"image": {"tag": "latest"}},
    {"nightly": {"schedule": "every night"}},
    {"credentials": {"mailmanPassword": "hunter2"}},
])
def test_schema_refuses_bad_values(bad):
    with pytest.raises(helm.HelmError):
        chart().render(bad, name="arcray", namespace="sdss")


def _crons(values: dict | None = None) -> dict[str, dict]:
    return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o
            for o in render(values) if o["kind"] == "RayCronJob"}


def test_nightly_entrypoint_is_arcray_night_yesterday():
    """The nightly run is `jobs/night.py --root ROOT --yesterday` (= `arcray night --yesterday`)."""
    crons = _crons()
    assert crons["nightly"]["spec"]["schedule"] == "30 14 * * *"
    argv = shlex.split(crons["nightly"]["spec"]["jobTemplate"]["entrypoint"])
    assert argv[:5] == ["python", "/app/jobs/night.py", "--root", "/data/arcray", "--yesterday"]
    assert argv[5:] == ["--base-url", "https://data.sdss5.org"]
    assert (ROOT / "jobs" / "night.py").exists()
    assert 'main(["night", *sys.argv[1:]])' in (ROOT / "jobs" / "night.py").read_text()
    assert not re.search(r"(?i)password|user", crons["nightly"]["spec"]["jobTemplate"]["entrypoint"])
    # the credentials reach the driver as in every Ray pod: user env + password file from Secrets
    head = crons["nightly"]["spec"]["jobTemplate"]["rayClusterSpec"]["headGroupSpec"]["template"]
    env = {e["name"]: e for e in head["spec"]["containers"][0]["env"]}
    assert env["ARCRAY_SAS_USER"]["valueFrom"]["secretKeyRef"] == {"name": "arcray-sas", "key": "username"}
    assert env["ARCRAY_MAILMAN_PASSWORD_FILE"]["value"] == "/var/run/secrets/arcray/mailman/password"
    argv = shlex.split(_crons({"nightly": {"args": ""}})["nightly"]["spec"]["jobTemplate"]["entrypoint"])
    assert argv == ["python", "/app/jobs/night.py", "--root", "/data/arcray", "--yesterday"]


def test_backfill_entrypoint_runs_every_night_of_its_range(capsys):
    argv = shlex.split(_crons({"backfill": {"months": 2}})["backfill"]["spec"]["jobTemplate"]["entrypoint"])
    assert argv[:3] == ["python", "-m", "arcray.deploy.backfill"]
    assert argv[3:] == ["--root", "/data/arcray", "--months", "2", "--",
                        "--base-url", "https://data.sdss5.org"]
    now = dt.datetime(2024, 1, 1, 14, 30, tzinfo=dt.timezone.utc)
    assert backfill.night_range(now, mjd_min=None, mjd_max=None, months=2) == (60249, 60309)
    fixed = _crons({"backfill": {"mjdMin": 60300, "mjdMax": 60302}})["backfill"]
    argv = shlex.split(fixed["spec"]["jobTemplate"]["entrypoint"])
    assert argv[3:7] == ["--root", "/data/arcray", "--mjd-min", "60300"]
    assert backfill.main(["--dry-run", *argv[3:]]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"arcray night --root /data/arcray --mjd {n} --base-url https://data.sdss5.org"
        for n in (60300, 60301, 60302)]


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


def _has_night_command() -> bool:
    from arcray.cli.apps import app
    from arcray.cli.main import _register

    _register()
    return any((c.name or c.callback.__name__) == "night" for c in app.registered_commands)


def test_scheduled_and_k8s_entrypoints_parse_with_the_stage_clis():
    train = next(o for o in render({"training": {"enabled": True}}) if o["kind"] == "RayJob")
    argv = shlex.split(train["spec"]["entrypoint"])
    _parse_with_real_cli(["train", *argv[2:]])
    for job in (o for o in k8s_objects() if o["kind"] == "RayJob"):
        argv = shlex.split(job["spec"]["entrypoint"])
        _parse_with_real_cli([Path(argv[1]).stem, *argv[2:]])
    if not _has_night_command():
        pytest.skip("`arcray night` is not registered yet (being built in arcray/cli)")
    crons = _crons()
    argv = shlex.split(crons["nightly"]["spec"]["jobTemplate"]["entrypoint"])
    _parse_with_real_cli(["night", *argv[2:]])
    argv = shlex.split(crons["backfill"]["spec"]["jobTemplate"]["entrypoint"])
    now = dt.datetime(2024, 1, 1, 15, tzinfo=dt.timezone.utc)
    lo, hi = backfill.night_range(now, mjd_min=None, mjd_max=None, months=1)
    _parse_with_real_cli(backfill.night_commands("/data/arcray", lo, lo, argv[argv.index("--") + 1:])[0])


# ---------------------------------------------------------------- lifecycle of every RayJob
def _rayjob_specs(values: dict) -> dict[str, dict]:
    """component -> RayJob spec, from RayCronJob templates, launcher ConfigMaps and RayJobs."""
    specs = {}
    for o in render(values):
        comp = o["metadata"]["labels"].get("app.kubernetes.io/component")
        if o["kind"] == "RayCronJob":
            specs[comp] = o["spec"]["jobTemplate"]
        elif o["kind"] == "RayJob":
            specs[comp] = o["spec"]
        elif o["kind"] == "ConfigMap" and "rayjob.yaml" in o["data"]:
            specs[comp] = yaml.safe_load(o["data"]["rayjob.yaml"])["spec"]
    return specs


def check_kuberay_lifecycle_rules(spec: dict) -> None:
    """Rules of the KubeRay v1.7 operator's Go validation that the CRD schema does not carry."""
    rules = (spec.get("deletionStrategy") or {}).get("deletionRules")
    if rules:
        assert not spec.get("shutdownAfterJobFinishes"), "deletionRules with shutdownAfterJobFinishes"
        assert not spec.get("ttlSecondsAfterFinished"), "deletionRules with a global TTL"
        seen, ttl = set(), {}
        for r in rules:
            cond = tuple(sorted((k, v) for k, v in r["condition"].items() if k != "ttlSeconds"))
            assert (cond, r["policy"]) not in seen, f"duplicate rule {r}"
            seen.add((cond, r["policy"]))
            ttl[(cond, r["policy"])] = r["condition"].get("ttlSeconds", 0)
        for (cond, policy), t in ttl.items():  # cluster before the RayJob itself
            if policy == "DeleteSelf" and (cond, "DeleteCluster") in ttl:
                assert t >= ttl[(cond, "DeleteCluster")], rules
    elif spec.get("ttlSecondsAfterFinished"):
        assert spec.get("shutdownAfterJobFinishes") is True, "TTL without shutdownAfterJobFinishes"
    assert spec.get("activeDeadlineSeconds", 0) > 0 and spec.get("backoffLimit", -1) >= 0


@pytest.mark.parametrize("scheduler", ["rayCronJob", "cronJob"])
def test_every_rayjob_has_its_lifecycle_with_the_documented_defaults(scheduler):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jobs = values["jobs"]
    assert (jobs["cleanup"], jobs["ttlSecondsAfterFinished"], jobs["deleteJobAfterSeconds"]) == \
        ("rules", 3600, 604800)
    specs = _rayjob_specs({"scheduler": scheduler, "training": {"enabled": True}})
    assert set(specs) == {"nightly", "backfill", "train"}
    conditions = [{"jobStatus": "SUCCEEDED"}, {"jobStatus": "FAILED"}, {"jobDeploymentStatus": "Failed"}]
    for comp, spec in specs.items():
        window = values["training" if comp == "train" else comp]
        assert spec["activeDeadlineSeconds"] == window["activeDeadlineSeconds"]
        assert spec["backoffLimit"] == window["backoffLimit"] == 0
        assert "shutdownAfterJobFinishes" not in spec and "ttlSecondsAfterFinished" not in spec
        rules = spec["deletionStrategy"]["deletionRules"]
        expected = []
        for cond in conditions:
            expected.append({"policy": "DeleteCluster", "condition": {**cond, "ttlSeconds": 3600}})
            if comp != "train":  # Helm owns the training RayJob: it must not delete itself
                expected.append({"policy": "DeleteSelf", "condition": {**cond, "ttlSeconds": 604800}})
        assert rules == expected, comp
        check_kuberay_lifecycle_rules(spec)
    assert (values["nightly"]["activeDeadlineSeconds"], values["backfill"]["activeDeadlineSeconds"],
            values["training"]["activeDeadlineSeconds"]) == (21600, 86400, 172800)


def test_shutdown_cleanup_and_overrides():
    specs = _rayjob_specs({"jobs": {"cleanup": "shutdown", "ttlSecondsAfterFinished": 600},
                           "nightly": {"backoffLimit": 2, "activeDeadlineSeconds": 7200},
                           "training": {"enabled": True}})
    for comp, spec in specs.items():
        assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 600
        assert "deletionStrategy" not in spec
        check_kuberay_lifecycle_rules(spec)
    assert (specs["nightly"]["backoffLimit"], specs["nightly"]["activeDeadlineSeconds"]) == (2, 7200)
    spec = _rayjob_specs({"jobs": {"deleteJobAfterSeconds": 0}})["nightly"]
    assert {r["policy"] for r in spec["deletionStrategy"]["deletionRules"]} == {"DeleteCluster"}
    bad = copy.deepcopy(spec)
    bad["shutdownAfterJobFinishes"] = True
    with pytest.raises(AssertionError, match="shutdownAfterJobFinishes"):
        check_kuberay_lifecycle_rules(bad)


# ---------------------------------------------------------------- the Grafana dashboard
DASHBOARD = CHART / "dashboards" / "arcray.json"


def promql_series(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers that are not functions, labels or keywords)."""
    expr = re.sub(r'"[^"]*"', '""', expr)                   # label values
    expr = re.sub(r"\[[^\]]*\]", "", expr)                   # range selectors
    expr = re.sub(r"\{[^}]*\}", "", expr)                     # label matchers
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)   # grouping labels
    names = set(re.findall(r"[A-Za-z_:][\w:]*(?!\w*\s*\()", expr))
    return {n for n in names if not re.fullmatch(r"\w+", n) or not n.islower() or "_" in n} - {
        "sum", "max", "min", "avg", "rate", "increase", "histogram_quantile", "le"}


def test_dashboard_queries_name_only_metrics_arcray_exports():
    dash = json.loads(DASHBOARD.read_text())
    exported = metrics.exported_series()
    assert dash["uid"] and dash["panels"]
    seen = set()
    for panel in dash["panels"]:
        exprs = [t["expr"] for t in panel["targets"]]
        assert exprs, panel["title"]
        for expr in exprs:
            names = {n for n in promql_series(expr) if n.startswith("ray_")}
            assert names and names <= exported, (panel["title"], names - exported)
            seen |= names
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("calibrated by status", "download", "flags by reason", "arcs needed"):
        assert topic in titles
    for must in ("ray_arcray_calibrate_frames_total", "ray_arcray_download_bytes_total",
                 "ray_arcray_download_failures_total", "ray_arcray_flags_total",
                 "ray_arcray_arcs_needed_total"):
        assert must in seen
    assert promql_series('sum by (le) (rate(ray_x_bucket{a="b"}[5m]))') == {"ray_x_bucket"}


def test_dashboard_configmap_is_labelled_for_the_grafana_sidecar():
    cm = next(o for o in render() if o["metadata"]["name"] == "arcray-dashboard")
    validate(cm)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "arcray"}
    assert json.loads(cm["data"]["arcray.json"]) == json.loads(DASHBOARD.read_text())
    cm = next(o for o in render({"metrics": {"dashboard": {"labels": {"dash": "yes", "grafana_dashboard": None},  # null drops a default
                                                            "namespace": "monitoring",
                                                            "folder": ""}}})
              if o["metadata"]["name"] == "arcray-dashboard")
    assert cm["metadata"]["labels"]["dash"] == "yes" and "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["namespace"] == "monitoring" and "annotations" not in cm["metadata"]
    assert "arcray-dashboard" not in {o["metadata"]["name"] for o in
                                      render({"metrics": {"dashboard": {"enabled": False}}})}
