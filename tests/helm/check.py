"""Renders, lints and validates helm/reporter-vault with every value set in tests/helm/values,
and lints the Dockerfile. Run through tests/helm/run, which provides the pinned tools.

Value sets named ok-*.yaml must lint clean, render, pass yamllint, validate against the
Kubernetes schemas and pass the security assertions below. Sets named fail-*.yaml must be
refused at render time with the message in their first line (`# expect-error: …`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml
from dockerfile_parse import DockerfileParser
from yamllint import linter as yamllint_linter
from yamllint.config import YamlLintConfig

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "reporter-vault"
HERE = ROOT / "tests" / "helm"
VALUES = HERE / "values"
CRD_SCHEMAS = HERE / "crd-schemas"

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema
# set kubernetes-validate ships: every manifest must validate against both.
KUBE_VERSIONS = ("1.30.0", "1.37.0")
RELEASE = "rv"
NAMESPACE = "vault"
SECRETS_DIR = "/run/secrets/reporter-vault/"
# Variables that would carry a secret value; the chart may only set their *_FILE forms.
SECRET_VARS = {
    "RV_DATABASE_URL",
    "RV_KEYRING_PASSPHRASE",
    "RV_NOTIFY_WEBHOOK_SECRET",
    "RV_PKCS11_PIN",
}
SECRET_FILE_VARS = {v + "_FILE" for v in SECRET_VARS}

# What each passing value set must render, by kind (beyond the always-present ones).
ALWAYS = {"Deployment", "Service", "ServiceAccount"}
EXPECT_KINDS = {
    "ok-default.yaml": ALWAYS | {"Job", "PodDisruptionBudget", "PersistentVolumeClaim"},
    "ok-cnpg.yaml": ALWAYS
    | {"Job", "PodDisruptionBudget", "PersistentVolumeClaim", "Cluster", "ConfigMap"},
    "ok-pkcs11.yaml": ALWAYS | {"Job", "PodDisruptionBudget", "PersistentVolumeClaim"},
    "ok-full.yaml": ALWAYS
    | {"Job", "PodDisruptionBudget", "PersistentVolumeClaim", "HorizontalPodAutoscaler"}
    | {"NetworkPolicy", "ServiceMonitor"},
    "ok-dev-sqlite.yaml": ALWAYS | {"PersistentVolumeClaim"},
}


class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def check(self, name: str, fn) -> object:
        try:
            out = fn()
        except AssertionError as e:
            self.failed.append(name)
            print(f"FAIL {name}: {e}")
            return None
        except Exception as e:  # noqa: BLE001 - a crash in one check must not hide the others
            self.failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            traceback.print_exc(limit=3)
            return None
        self.passed += 1
        print(f"ok   {name}")
        return out


def load_values(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def expected_error(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    m = re.match(r"#\s*expect-error:\s*(.+)$", first)
    assert m, f"{path.name}: first line must be '# expect-error: MESSAGE'"
    return m.group(1).strip()


def render(chart: helm.Chart, values: dict) -> dict[str, str]:
    return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def join_manifests(rendered: dict[str, str]) -> str:
    """The same stream `helm template` prints: one `# Source:` document per template."""
    parts = []
    for path in sorted(rendered):
        body = rendered[path]
        if path.endswith("NOTES.txt") or not body.strip():
            continue
        for doc in re.split(r"(?m)^---\s*$", body):
            if doc.strip():
                parts.append(f"---\n# Source: {path}\n{doc.strip()}\n")
    return "".join(parts)


def yamllint_text(text: str, conf: YamlLintConfig, label: str) -> None:
    problems = [p for p in yamllint_linter.run(text, conf) if p.level == "error"]
    assert not problems, f"{label}: " + "; ".join(
        f"line {p.line}: {p.desc} ({p.rule})" for p in problems[:10]
    )


def crd_schema(doc: dict) -> dict | None:
    group_version = doc["apiVersion"].replace("/", "_")
    path = CRD_SCHEMAS / f"{group_version}_{doc['kind']}.json"
    return json.loads(path.read_text()) if path.exists() else None


def validate_docs(docs: list[dict]) -> dict[str, int]:
    """kubernetes-validate (strict) for built-in kinds at every KUBE_VERSION; the loose
    hand-written schemas in crd-schemas/ for custom resources. Any other kind fails."""
    counts = {"kubernetes": 0, "crd-loose": 0}
    for doc in docs:
        ident = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        schema = crd_schema(doc)
        if schema is not None:
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
            assert not errors, f"{ident}: " + "; ".join(
                f"{e.json_path}: {e.message}" for e in errors[:5]
            )
            counts["crd-loose"] += 1
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                raise AssertionError(
                    f"{ident} against Kubernetes {version}: {e.json_path}: {e.message}"
                ) from None
            except kubernetes_validate.SchemaNotFoundError as e:
                raise AssertionError(f"{ident}: {e.message}, and no schema in crd-schemas/") from None
        counts["kubernetes"] += 1
    return counts


# ---- security and wiring assertions on the rendered objects ----


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def check_container_security(c: dict, where: str) -> None:
    sc = c.get("securityContext") or {}
    assert sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot is not true"
    assert sc.get("runAsUser", 1) != 0, f"{where}: runAsUser 0"
    assert sc.get("readOnlyRootFilesystem") is True, f"{where}: root filesystem is writable"
    assert sc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation allowed"
    assert not sc.get("privileged"), f"{where}: privileged"
    caps = sc.get("capabilities") or {}
    assert caps.get("drop") == ["ALL"], f"{where}: capabilities.drop is {caps.get('drop')}, not [ALL]"
    assert not caps.get("add"), f"{where}: adds capabilities {caps.get('add')}"
    assert (sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{where}: seccomp"
    res = c.get("resources") or {}
    assert (res.get("requests") or {}).get("memory"), f"{where}: no memory request"
    assert (res.get("limits") or {}).get("memory"), f"{where}: no memory limit"
    image = c.get("image", "")
    assert image and not image.endswith(":latest") and ":" in image, f"{where}: image {image!r}"


def check_env(c: dict, pod: dict, where: str) -> None:
    """Secrets reach the service only as private files copied from Secret volumes."""
    env = c.get("env") or []
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), f"{where}: duplicate env names"
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for e in env:
        name = e["name"]
        assert name not in SECRET_VARS, f"{where}: {name} carries a secret in the environment"
        vf = e.get("valueFrom") or {}
        assert "secretKeyRef" not in vf, f"{where}: {name} reads a Secret into the environment"
        if name in SECRET_FILE_VARS:
            path = e.get("value", "")
            assert path.startswith(SECRETS_DIR), f"{where}: {name}={path} outside {SECRETS_DIR}"
            m = mounts.get(SECRETS_DIR.rstrip("/"))
            assert m and m.get("readOnly") is True, f"{where}: {SECRETS_DIR} not mounted read-only"
            vol = volumes[m["name"]]
            assert (vol.get("emptyDir") or {}).get("medium") == "Memory", (
                f"{where}: secret files not on a memory-backed emptyDir"
            )
            script = " ".join(
                " ".join(ic.get("command") or []) for ic in pod.get("initContainers") or []
            )
            assert re.search(rf'install -m 0400 "\S+" "{re.escape(path)}"', script), (
                f"{where}: {path} is not installed with mode 0400 by an init container"
            )
        elif "value" in e:
            v = str(e["value"])
            assert not re.search(r"(?i)postgres(ql)?://[^/\s]*:[^@/\s]*@", v), (
                f"{where}: {name} holds a database URL with credentials"
            )


def check_pod(pod: dict, where: str, values: dict) -> None:
    psc = pod.get("securityContext") or {}
    assert psc.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot is not true"
    assert psc.get("runAsUser") == 65532 or values.get("securityContext"), f"{where}: runAsUser"
    assert (psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{where}: pod seccomp"
    assert pod.get("automountServiceAccountToken") is False, f"{where}: token automounted"
    assert pod.get("enableServiceLinks") is False, f"{where}: service links injected"
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for v in pod.get("volumes") or []:
        assert "hostPath" not in v, f"{where}: hostPath volume {v['name']}"
    for c in pod.get("initContainers") or []:
        check_container_security(c, f"{where} init {c['name']}")
    for c in pod.get("containers") or []:
        check_container_security(c, f"{where} container {c['name']}")
        check_env(c, pod, f"{where} container {c['name']}")
        tmp = [m for m in c.get("volumeMounts") or [] if m["mountPath"] == "/tmp"]
        assert tmp, f"{where}: no /tmp mount"
        vol = {v["name"]: v for v in pod["volumes"]}[tmp[0]["name"]]
        assert "emptyDir" in vol, f"{where}: /tmp is not an emptyDir"


def check_deployment(docs: list[dict], values: dict, name: str) -> None:
    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    check_pod(pod, "Deployment", values)
    c = next(c for c in pod["containers"] if c["name"] == "reporter-vault")
    assert c.get("args") == ["serve"], f"args {c.get('args')}"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports.get("http") == 8700, f"http port {ports}"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        got = (c.get(probe) or {}).get("httpGet") or {}
        assert got.get("path") == path and got.get("port") == "http", f"{probe} {got}"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env.get("RV_LISTEN") == "0.0.0.0:8700", f"RV_LISTEN {env.get('RV_LISTEN')}"
    assert env.get("RV_LOG_FORMAT") in ("json", "text")
    assert env.get("RV_DATA_DIR") == "/var/lib/reporter-vault"
    data = [m for m in c["volumeMounts"] if m["mountPath"] == env["RV_DATA_DIR"]]
    assert data, "the data directory is not a volume"
    data_vol = {v["name"]: v for v in pod["volumes"]}[data[0]["name"]]
    # Graceful shutdown: endpoints drop during preStop, the drain fits in the grace period.
    pre = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod["terminationGracePeriodSeconds"]
    drain = (values.get("lifecycle") or {}).get("drainSeconds", 30)
    assert grace > pre + drain, f"grace {grace} <= preStop {pre} + drain {drain}"
    spread = pod.get("topologySpreadConstraints") or []
    anti = (pod.get("affinity") or {}).get("podAntiAffinity")
    assert spread or anti, "no topology spread and no anti-affinity"
    sel = dep["spec"]["selector"]["matchLabels"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in sel.items()), "selector does not match pod labels"
    # Key provider wiring.
    provider = (values.get("keys") or {}).get("provider", "local")
    assert env.get("RV_KEY_PROVIDER") == provider
    if provider == "pkcs11":
        for var in ("RV_PKCS11_MODULE", "RV_PKCS11_TOKEN_LABEL", "RV_PKCS11_PIN_FILE"):
            assert env.get(var), f"{var} missing"
    # Database wiring.
    db = values.get("database") or {}
    if (db.get("cloudnativepg") or {}).get("enabled") or (db.get("external") or {}).get(
        "existingSecret"
    ):
        assert env.get("RV_DATABASE_URL_FILE"), "PostgreSQL without RV_DATABASE_URL_FILE"
        assert "RV_SQLITE_SYNCHRONOUS" not in env
        # The keyring (rewritten by rotation) and the erasure ledger outlive the pod, and
        # replicas share them.
        claim = (data_vol.get("persistentVolumeClaim") or {}).get("claimName")
        assert claim, "PostgreSQL with the data directory on an emptyDir"
        pvcs = {p["metadata"]["name"]: p for p in by_kind(docs, "PersistentVolumeClaim")}
        modes = pvcs[claim]["spec"]["accessModes"] if claim in pvcs else []
        several = dep["spec"].get("replicas", 2) > 1
        if several:
            assert "ReadWriteMany" in modes, f"replicas share a {modes} data volume"
        want_strategy = "RollingUpdate" if "ReadWriteMany" in modes else "Recreate"
        assert dep["spec"]["strategy"]["type"] == want_strategy, dep["spec"]["strategy"]
        if provider == "local":
            assert env.get("RV_KEYRING_PASSPHRASE_FILE"), "PostgreSQL without a passphrase file"
            script = " ".join(" ".join(ic["command"]) for ic in pod["initContainers"])
            ring = "/var/lib/reporter-vault/keyring.age"
            assert re.search(rf'\[ -e "{ring}" \] \|\| install -m 0600 "\S+" "{ring}"', script), (
                "the keyring on the data volume is not seeded once (rotations would be overwritten)"
            )
            assert f'rm -f "{ring}"' not in script, "the keyring on the data volume is replaced"
    else:
        assert "RV_DATABASE_URL_FILE" not in env
        assert dep["spec"].get("replicas", 1) == 1, "SQLite with more than one replica"
    # Replicas: the HPA owns them when enabled.
    if (values.get("autoscaling") or {}).get("enabled"):
        assert "replicas" not in dep["spec"], "replicas set although the HPA owns them"
    # Policies: image or ConfigMap, with a checksum annotation for the latter.
    if (values.get("policies") or {}).get("fromImage", True):
        assert env["RV_POLICIES"] == "/app/policies"
    else:
        cm = one(docs, "ConfigMap")
        ann = dep["spec"]["template"]["metadata"].get("annotations") or {}
        assert re.fullmatch(r"[0-9a-f]{64}", ann.get("checksum/policies", "")), "no checksum"
        mount = [m for m in c["volumeMounts"] if m["mountPath"] == env["RV_POLICIES"]]
        assert mount and mount[0]["readOnly"], "policies ConfigMap not mounted read-only"
        assert all(k.endswith(".toml") for k in cm["data"]), "non-TOML policy file"


def check_migration_job(docs: list[dict], values: dict) -> None:
    db = values.get("database") or {}
    cnpg = (db.get("cloudnativepg") or {}).get("enabled")
    jobs = by_kind(docs, "Job")
    if not (cnpg or (db.get("external") or {}).get("existingSecret")):
        assert not jobs, "a migration Job on SQLite (serve migrates its own file)"
        return
    job = one(docs, "Job")
    ann = job["metadata"]["annotations"]
    want = "post-install,pre-upgrade" if cnpg else "pre-install,pre-upgrade"
    assert ann.get("helm.sh/hook") == want, f"hook {ann.get('helm.sh/hook')}, want {want}"
    assert ann.get("helm.sh/hook-delete-policy") == "before-hook-creation,hook-succeeded"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    check_pod(pod, "migration Job", values)
    c = pod["containers"][0]
    assert c.get("args") == ["migrate"], f"Job args {c.get('args')}"
    dep = one(docs, "Deployment")
    dep_c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == dep_c["image"], "the Job runs another image"
    assert {e["name"] for e in c["env"]} == {e["name"] for e in dep_c["env"]}, "env differs"
    # Its ServiceAccount must exist before it: a hook with a lower weight.
    sa_name = pod["serviceAccountName"]
    sa = next(s for s in by_kind(docs, "ServiceAccount") if s["metadata"]["name"] == sa_name)
    sa_ann = sa["metadata"].get("annotations") or {}
    assert sa_ann.get("helm.sh/hook") == want, "the Job's ServiceAccount is not a hook"
    assert int(sa_ann["helm.sh/hook-weight"]) < int(ann.get("helm.sh/hook-weight", "0"))
    assert sa.get("automountServiceAccountToken") is False
    # A pre-install hook runs before the release's own objects exist: its pod may not need
    # any of them (ServiceAccount, ConfigMap, PVC, or a Secret the release causes to exist).
    if "pre-install" in want:
        release_objects = {
            (d["kind"], d["metadata"]["name"])
            for d in docs
            if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})
        }
        needs = {("ServiceAccount", sa_name)}
        for v in pod.get("volumes") or []:
            if "configMap" in v:
                needs.add(("ConfigMap", v["configMap"]["name"]))
            if "persistentVolumeClaim" in v:
                needs.add(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]))
        clash = needs & release_objects
        assert not clash, f"the pre-install Job needs objects created after it: {sorted(clash)}"


def check_other_objects(docs: list[dict], values: dict, name: str) -> None:
    kinds = {d["kind"] for d in docs}
    want = EXPECT_KINDS.get(name)
    assert want is None or kinds == want, f"kinds {sorted(kinds)}, want {sorted(want)}"
    assert "Secret" not in kinds, "the chart must not create Secrets"
    for sa in by_kind(docs, "ServiceAccount"):
        assert sa.get("automountServiceAccountToken") is False, "ServiceAccount automounts"
    svc = one(docs, "Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert {"name": "http", "port": 8700, "targetPort": "http", "protocol": "TCP"} in svc["spec"][
        "ports"
    ]
    assert svc["spec"]["selector"].get("app.kubernetes.io/component") == "server", (
        "Service would also select migration pods"
    )
    dep = one(docs, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    matches = lambda sel: all(pod_labels.get(k) == v for k, v in sel.items())  # noqa: E731
    assert matches(svc["spec"]["selector"])
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        assert matches(pdb["spec"]["selector"]["matchLabels"]), "PDB selects nothing"
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    for np_ in by_kind(docs, "NetworkPolicy"):
        assert matches(np_["spec"]["podSelector"]["matchLabels"]), "NetworkPolicy selects nothing"
        assert set(np_["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        for rule in np_["spec"]["ingress"]:
            assert rule.get("from"), "an ingress rule open to every source"
            assert {p["port"] for p in rule["ports"]} <= {"http", "metrics"}
        for rule in np_["spec"]["egress"]:
            assert rule.get("to"), "an egress rule open to every destination"
    for sm in by_kind(docs, "ServiceMonitor"):
        port_names = {p["name"] for p in svc["spec"]["ports"]}
        assert sm["spec"]["endpoints"][0]["port"] in port_names, "ServiceMonitor port"
        assert all(
            svc["metadata"]["labels"].get(k) == v
            for k, v in sm["spec"]["selector"]["matchLabels"].items()
        ), "ServiceMonitor does not select the Service"
    for cl in by_kind(docs, "Cluster"):
        env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "RV_DATABASE_URL_FILE" in env
        sources = [
            s["secret"]
            for v in dep["spec"]["template"]["spec"]["volumes"]
            if "projected" in v
            for s in v["projected"]["sources"]
        ]
        assert {"name": f"{cl['metadata']['name']}-app", "items": [
            {"key": "uri", "path": "database-url"}]} in sources, "CNPG app secret not wired"
        assert cl["metadata"]["annotations"].get("helm.sh/resource-policy") == "keep"


def policy_check(docs: list[dict], binary: Path | None, work: Path, name: str) -> str:
    cms = by_kind(docs, "ConfigMap")
    if not cms:
        return "no inline policies"
    if binary is None:
        return "skipped: no reporter-vault binary built"
    d = work / "policies" / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for fname, body in cms[0]["data"].items():
        (d / fname).write_text(body)
    p = subprocess.run(
        [str(binary), "policy", "check", str(d)], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, f"policy check: {p.stdout}{p.stderr}"
    return f"{len(cms[0]['data'])} file(s) valid"


def find_binary() -> Path | None:
    if os.environ.get("RV_BINARY"):
        return Path(os.environ["RV_BINARY"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    for profile in ("dist", "release", "debug"):
        b = target / profile / "reporter-vault"
        if b.exists():
            return b
    return None


# ---- Dockerfile ----


def check_dockerfile(hadolint: Path) -> str:
    path = ROOT / "Dockerfile"
    p = subprocess.run([str(hadolint), "--no-color", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, f"hadolint:\n{p.stdout}{p.stderr}"
    dfp = DockerfileParser(path=str(path))
    instrs = dfp.structure
    froms = [i for i in instrs if i["instruction"] == "FROM"]
    assert len(froms) >= 2, "not a multi-stage build"
    args = {
        m.group(1): m.group(2)
        for i in instrs
        if i["instruction"] == "ARG"
        for m in [re.match(r"(\w+)=(\S+)", i["value"])]
        if m
    }
    final_from = froms[-1]["value"].split()[0]
    final_image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), final_from)
    assert re.fullmatch(r"gcr\.io/distroless/cc-debian12:nonroot(@sha256:[0-9a-f]{64})?", final_image), (
        f"runtime stage is {final_image}, not distroless cc nonroot"
    )
    build_image = re.sub(
        r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), froms[0]["value"].split()[0]
    )
    assert build_image.startswith("rust:1.95-slim-bookworm"), f"build stage is {build_image}"
    final_start = froms[-1]["startline"]
    final = [i for i in instrs if i["startline"] > final_start]
    runs = [i for i in final if i["instruction"] == "RUN"]
    assert not runs, "the runtime stage runs commands (it has no shell)"
    users = [i["value"].strip() for i in final if i["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] == "65532", f"USER {users}"
    assert users[-1].split(":")[0] not in ("0", "root")
    run_cmds = " ".join(i["value"] for i in instrs if i["instruction"] == "RUN")
    assert "cargo build --profile dist --locked -p vault-service --bin reporter-vault" in run_cmds
    expose = [i["value"] for i in final if i["instruction"] == "EXPOSE"]
    assert expose == ["8700"], f"EXPOSE {expose}"
    ep = [json.loads(i["value"]) for i in final if i["instruction"] == "ENTRYPOINT"]
    cmd = [json.loads(i["value"]) for i in final if i["instruction"] == "CMD"]
    assert ep == [["/app/reporter-vault"]], f"ENTRYPOINT {ep}"
    assert cmd == [["serve"]], f"CMD {cmd}"
    copies = " | ".join(i["value"] for i in final if i["instruction"] == "COPY")
    assert "/app/reporter-vault" in copies and "/app/policies" in copies, copies
    ignore = (ROOT / ".dockerignore").read_text().split()
    for must in ("target", "data", ".git", "*.age"):
        assert must in ignore, f".dockerignore does not exclude {must}"
    return f"{len(froms)} stages, runtime {final_image}, USER {users[-1]}"


def self_test(docs: list[dict], values: dict) -> str:
    """The assertions must bite: each mutation of a good rendering has to be caught."""
    import copy

    def main_c(d):
        return one(d, "Deployment")["spec"]["template"]["spec"]["containers"][0]

    def pod(d):
        return one(d, "Deployment")["spec"]["template"]["spec"]

    def job_ann(d):
        return one(d, "Job")["metadata"]["annotations"]

    mutations = {
        "writable root filesystem": lambda d: main_c(d)["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
        "capabilities kept": lambda d: main_c(d)["securityContext"].update(capabilities={}),
        "seccomp unconfined": lambda d: main_c(d)["securityContext"].update(
            seccompProfile={"type": "Unconfined"}
        ),
        "runs as root": lambda d: pod(d)["securityContext"].update(runAsNonRoot=False),
        "passphrase in env": lambda d: main_c(d)["env"].append(
            {"name": "RV_KEYRING_PASSPHRASE", "value": "x"}
        ),
        "secretKeyRef in env": lambda d: main_c(d)["env"].append(
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
        ),
        "URL with password in env": lambda d: main_c(d)["env"].append(
            {"name": "X", "value": "postgres://u:p@h/db"}
        ),
        "no readiness probe": lambda d: main_c(d).pop("readinessProbe"),
        "data on an emptyDir": lambda d: [
            v.update({"emptyDir": {}}) or v.pop("persistentVolumeClaim")
            for v in pod(d)["volumes"]
            if v["name"] == "data"
        ],
        "keyring overwritten at start": lambda d: pod(d)["initContainers"][0]["command"].__setitem__(
            2,
            re.sub(
                r'\[ -e "(\S+)" \] \|\| ',
                r'rm -f "\1"\n',
                pod(d)["initContainers"][0]["command"][2],
            ),
        ),
        "secret copy not 0400": lambda d: pod(d)["initContainers"][0]["command"].__setitem__(
            2, pod(d)["initContainers"][0]["command"][2].replace("-m 0400", "-m 0440")
        ),
        "grace period too short": lambda d: pod(d).update(terminationGracePeriodSeconds=5),
        "no hook delete policy": lambda d: job_ann(d).pop("helm.sh/hook-delete-policy"),
        "hook only post-upgrade": lambda d: job_ann(d).update({"helm.sh/hook": "post-upgrade"}),
        "Job mounts the release's PVC": lambda d: [
            v.update({"persistentVolumeClaim": {"claimName": "rv-reporter-vault-data"}})
            or v.pop("emptyDir")
            for v in one(d, "Job")["spec"]["template"]["spec"]["volumes"]
            if v["name"] == "data"
        ],
        "a Secret rendered": lambda d: d.append(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
        ),
    }
    for what, mutate in mutations.items():
        d = copy.deepcopy(docs)
        mutate(d)
        try:
            check_deployment(d, values, "self-test")
            check_migration_job(d, values)
            check_other_objects(d, values, "self-test")
        except AssertionError:
            continue
        raise AssertionError(f"mutation not caught: {what}")
    d = copy.deepcopy(docs)
    main_c(d)["securityContex"] = {}
    try:
        validate_docs([one(d, "Deployment")])
    except AssertionError:
        pass
    else:
        raise AssertionError("strict schema validation missed a misspelt field")
    return f"{len(mutations) + 1} mutations caught"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--hadolint", required=True, type=Path)
    args = ap.parse_args()
    work: Path = args.work
    rendered_dir = work / "rendered"
    shutil.rmtree(rendered_dir, ignore_errors=True)
    rendered_dir.mkdir(parents=True)
    started = time.monotonic()
    helm.disable_logging()
    print(
        f"helm SDK {helm.helm_sdk_version()} (helm-c {helm.helm_c_version()}), "
        f"kubernetes-validate {kubernetes_validate.__version__}, Kubernetes {', '.join(KUBE_VERSIONS)}"
    )
    r = Results()
    conf = YamlLintConfig(file=str(HERE / "yamllint.yaml"))
    chart = helm.Chart.load(CHART)
    binary = find_binary()

    def chart_meta() -> None:
        md = chart.metadata
        assert md.get("apiVersion") == "v2" and md.get("appVersion") == "0.1.0", str(md)

    r.check("Chart.yaml: apiVersion v2, appVersion 0.1.0", chart_meta)
    r.check(
        "values.schema.json is a valid draft-07 schema and accepts values.yaml",
        lambda: (
            jsonschema.Draft7Validator.check_schema(chart.schema),
            jsonschema.Draft7Validator(chart.schema).validate(chart.values),
        ),
    )
    for f in [CHART / "Chart.yaml", CHART / "values.yaml", *sorted(VALUES.glob("*.yaml"))]:
        r.check(
            f"yamllint {f.relative_to(ROOT)}",
            lambda f=f: yamllint_text(f.read_text(), conf, str(f.relative_to(ROOT))),
        )
    r.check(
        "chart defaults refuse to render (two replicas need a database)",
        lambda: expect_failure(chart, {}, "SQLite is not for replicas"),
    )

    for f in sorted(VALUES.glob("ok-*.yaml")):
        values = load_values(f)
        n = f.name

        def lint(values=values):
            rep = helm.lint(
                CHART, values, strict=True, namespace=NAMESPACE, kube_version="v" + KUBE_VERSIONS[0]
            )
            bad = [m for m in rep["messages"] if m["severity"] >= 2] + [
                {"error": e} for e in rep["errors"]
            ]
            assert not bad, "; ".join(m["error"].strip() for m in bad)

        r.check(f"{n}: helm lint --strict (kube {KUBE_VERSIONS[0]})", lint)
        rendered = r.check(f"{n}: helm template", lambda values=values: render(chart, values))
        if rendered is None:
            continue
        text = join_manifests(rendered)
        (rendered_dir / n).write_text(text)
        r.check(f"{n}: yamllint rendered output", lambda text=text: yamllint_text(text, conf, n))
        docs = [d for d in yaml.safe_load_all(text) if d]
        r.check(
            f"{n}: schema-valid ({len(docs)} objects)",
            lambda docs=docs: print(f"     {validate_docs(docs)}"),
        )
        r.check(f"{n}: Deployment security and wiring", lambda docs=docs, values=values: check_deployment(docs, values, n))
        r.check(f"{n}: migration Job hook", lambda docs=docs, values=values: check_migration_job(docs, values))
        r.check(f"{n}: Service/PDB/HPA/NetworkPolicy/monitoring/CNPG", lambda docs=docs, values=values: check_other_objects(docs, values, n))
        r.check(
            f"{n}: inline policies: `reporter-vault policy check` (when a binary is built)",
            lambda docs=docs: print(f"     {policy_check(docs, binary, work, n)}"),
        )

    ok_default = rendered_dir / "ok-default.yaml"
    if ok_default.exists():
        docs = [d for d in yaml.safe_load_all(ok_default.read_text()) if d]
        values = load_values(VALUES / "ok-default.yaml")
        r.check(
            "self-test: the assertions catch broken renderings",
            lambda: print("     " + self_test(docs, values)),
        )

    for f in sorted(VALUES.glob("fail-*.yaml")):
        values = load_values(f)
        want = expected_error(f)
        r.check(
            f"{f.name}: refused with '{want}'",
            lambda values=values, want=want: expect_failure(chart, values, want),
        )

    r.check("Dockerfile: hadolint, multi-stage, distroless nonroot", lambda: print("     " + check_dockerfile(args.hadolint)))

    elapsed = time.monotonic() - started
    print(f"\nrendered manifests: {rendered_dir}")
    print(f"helm chart checks ({elapsed:.1f} s):")
    print(f"{r.passed} passed, {len(r.failed)} failed")
    for name in r.failed:
        print(f"  failed: {name}")
    return 1 if r.failed else 0


def expect_failure(chart: helm.Chart, values: dict, want: str) -> None:
    try:
        render(chart, values)
    except helm.HelmError as e:
        msg = str(e)
        assert want in msg, f"refused, but with: {msg.strip()}"
        return
    raise AssertionError("rendered, but must be refused")


if __name__ == "__main__":
    sys.exit(main())
