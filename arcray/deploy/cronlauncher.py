"""The CronJob -> RayJob alternative to KubeRay's alpha RayCronJob.

A plain Kubernetes CronJob runs ``python -m arcray.deploy.cronlauncher --template FILE``: it reads a
RayJob manifest (mounted from a ConfigMap), names it ``<base>-<unix minutes>`` as RayCronJob would,
creates it with the in-cluster service account, and deletes the oldest finished RayJobs of the same
schedule beyond ``--keep``. RBAC needed: ``rayjobs`` create, list, delete in its own namespace.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import sys

from arcray.errors import ClusterError, ConfigError

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"
SCHEDULE_LABEL = "arcray.io/schedule"
RAYJOB_NAME_MAX = 47
NS_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def child_name(base: str, now: dt.datetime) -> str:
    """``<base>-<minutes since the Unix epoch>``, checked against RayJob's 47-character limit."""
    name = f"{base}-{int(now.timestamp() // 60)}"
    if len(name) > RAYJOB_NAME_MAX:
        raise ConfigError(f"RayJob name {name!r} is longer than {RAYJOB_NAME_MAX} characters")
    return name


def build(template: dict, base: str, now: dt.datetime) -> dict:
    """A new RayJob from ``template`` (not modified) for the run at ``now``."""
    if template.get("kind") != "RayJob" or template.get("apiVersion") != f"{GROUP}/{VERSION}":
        raise ConfigError("the template must be a ray.io/v1 RayJob")
    job = copy.deepcopy(template)
    meta = job.setdefault("metadata", {})
    meta.pop("namespace", None)
    meta["name"] = child_name(base, now)
    meta.setdefault("labels", {})[SCHEDULE_LABEL] = base
    meta.setdefault("annotations", {})["arcray.io/scheduled-at"] = now.strftime("%Y-%m-%dT%H:%MZ")
    return job


def finished_to_delete(items: list[dict], keep: int) -> list[str]:
    """Names of finished RayJobs (oldest first) beyond the ``keep`` most recent ones."""
    done = [i for i in items
            if (i.get("status") or {}).get("jobDeploymentStatus") in ("Complete", "Failed")]
    done.sort(key=lambda i: i["metadata"].get("creationTimestamp", ""))
    return [i["metadata"]["name"] for i in done[: max(0, len(done) - keep)]]


def launch(api, namespace: str, template: dict, base: str, now: dt.datetime, keep: int) -> str:
    """Create this run's RayJob, then prune old finished ones. ``api``: CustomObjectsApi."""
    job = build(template, base, now)
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, job)
        listed = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                   label_selector=f"{SCHEDULE_LABEL}={base}")
        for name in finished_to_delete(listed.get("items", []), keep):
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except Exception as exc:  # noqa: BLE001 - kubernetes ApiException and connection errors
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise ClusterError(f"creating RayJob {job['metadata']['name']} failed: {reason}") from None
    return job["metadata"]["name"]


def main(argv: list[str] | None = None) -> int:
    import yaml

    p = argparse.ArgumentParser(prog="python -m arcray.deploy.cronlauncher")
    p.add_argument("--template", required=True, help="RayJob manifest (YAML)")
    p.add_argument("--name", required=True, help="base name of the created RayJobs")
    p.add_argument("--keep", type=int, default=5, help="finished RayJobs to keep")
    p.add_argument("--namespace", help="default: the pod's own namespace")
    a = p.parse_args(argv)
    try:
        with open(a.template, encoding="utf-8") as f:
            try:
                template = yaml.safe_load(f)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{a.template} is not one YAML document: "
                                  f"{str(exc).splitlines()[0]}") from None
        build(template, a.name, dt.datetime.now(dt.timezone.utc))  # check before any API call
        namespace = a.namespace or open(NS_FILE, encoding="utf-8").read().strip()
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException as exc:
            raise ClusterError(f"not running in a Kubernetes pod: {exc}") from None
        name = launch(client.CustomObjectsApi(), namespace, template, a.name,
                      dt.datetime.now(dt.timezone.utc), a.keep)
    except (ConfigError, ClusterError) as exc:
        print(f"arcray: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"arcray: error: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"created RayJob {namespace}/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
