#!/usr/bin/env python3
"""The container image, built and run here (issue 16).

1. deploy/image/build builds the image from deploy/Dockerfile (mmdebstrap +
   buildah, no Docker engine) and exports the OCI archive; cached after the
   first run.
2. The archive is unpacked as a container runtime would (its manifest's layers
   in order, whiteouts applied) and its config checked: non-root user, OCI
   labels (revision = this commit, version = meson.build's), the binaries'
   digests as the build printed them.
3. Two edges and a router are started from the image's root filesystem, as the
   chart runs them: its command (/usr/local/bin/edge, /usr/local/bin/router),
   the chart's default environment (helm template of deploy/helm/kws, or
   values.yaml when helm is not built here), as the image's user, each in a
   private mount namespace with the root filesystem read-only, /tmp a small
   tmpfs and /etc/hosts mounted over (as the kubelet does). The router finds
   the edges through ROUTER_EDGES_DNS, a name that /etc/hosts resolves to the
   two edges' loopback addresses (the headless Service). The chroot shares the
   host's network namespace, so Kafka (a real broker, tests/kafka/kafkafix.py;
   KWS_KAFKA=mock for librdkafka's mock cluster) is on loopback.
4. The chart's probes answer (/healthz, /readyz on the admin port; the
   router's /readyz is 503 until the edges own every partition), keyed records
   reach WebSocket clients with 0 lost/duplicated/reordered/foreign, the
   preStop command exists in the image, and SIGTERM ends both daemons with 0.

Skipped (exit 77) when not root or when buildah/mmdebstrap cannot be
installed, unless $CI is set.
"""

import asyncio
import glob
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

import harness as h

SOURCE = h.SOURCE
PARTITIONS = 4
CLIENTS = 20
RECORDS = 30  # per client id
IMAGE_USER = "10001:10001"
RELEASE, NAMESPACE = "kws", "default"


def skip(reason):
    if os.environ.get("CI"):
        print(f"FAIL (CI is set, so no skipping): {reason}")
        sys.exit(1)
    print(f"SKIP: {reason}")
    sys.exit(77)


# ---- 1. build --------------------------------------------------------------

def build(out):
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(SOURCE, "deploy", "image", "build"), "--out", out],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(r.stdout, flush=True)
    if r.returncode == 77:
        skip("buildah or mmdebstrap cannot be installed here")
    assert r.returncode == 0, f"deploy/image/build failed ({r.returncode})"
    h.log(f"build: {time.monotonic() - t0:.0f}s")


# ---- 2. unpack the OCI archive ----------------------------------------------

def blob(oci, digest):
    algo, hexd = digest.split(":")
    data = oci.extractfile(f"blobs/{algo}/{hexd}").read()
    assert hashlib.sha256(data).hexdigest() == hexd, f"blob {digest} is corrupt"
    return data


def apply_layer(data, root):
    """Extracts one layer over root, honouring OCI whiteouts."""
    opener = gzip.open if data[:2] == b"\x1f\x8b" else None
    import io
    f = opener(io.BytesIO(data)) if opener else io.BytesIO(data)
    with tarfile.open(fileobj=f, mode="r|") as t:
        for m in t:
            path = os.path.normpath(m.name.lstrip("/"))
            assert not path.startswith(".."), f"layer member escapes: {m.name}"
            d, base = os.path.split(path)
            if base == ".wh..wh..opq":
                target = os.path.join(root, d)
                for e in os.listdir(target) if os.path.isdir(target) else ():
                    p = os.path.join(target, e)
                    shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
                continue
            if base.startswith(".wh."):
                p = os.path.join(root, d, base[4:])
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                elif os.path.lexists(p):
                    os.unlink(p)
                continue
            p = os.path.join(root, path)
            if os.path.lexists(p) and not (m.isdir() and os.path.isdir(p)):
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
            t.extract(m, root, numeric_owner=True)


def check_chart_image(ref):
    """The chart's default image (image.repository, image.tag or else the
    chart's appVersion) is what the build produced."""
    import yaml
    chart = os.path.join(SOURCE, "deploy", "helm", "kws")
    with open(os.path.join(chart, "values.yaml")) as f:
        img = yaml.safe_load(f)["image"]
    with open(os.path.join(chart, "Chart.yaml")) as f:
        app = yaml.safe_load(f)["appVersion"]
    want = f"{img['repository']}:{img['tag'] or app}"
    assert ref == want, f"the archive holds {ref!r}; the chart deploys {want!r} by default"
    h.log(f"image {ref}: the chart's default image.repository:tag")


def unpack(archive, root):
    """Unpacks the OCI archive's image into root; returns its config."""
    with tarfile.open(archive) as oci:
        index = json.loads(oci.extractfile("index.json").read())
        assert len(index["manifests"]) == 1, index
        ref = index["manifests"][0].get("annotations", {}).get("org.opencontainers.image.ref.name")
        check_chart_image(ref)
        manifest = json.loads(blob(oci, index["manifests"][0]["digest"]))
        config = json.loads(blob(oci, manifest["config"]["digest"]))
        os.makedirs(root)
        for layer in manifest["layers"]:
            apply_layer(blob(oci, layer["digest"]), root)
    h.log(f"unpacked {len(manifest['layers'])} layers of {archive}")
    return config


def source_revision():
    """The revision the build labels the image with: this commit, "-dirty"
    with uncommitted changes. Read before the build, so a commit made while
    the image builds does not change what the label must say."""
    git = lambda *a: subprocess.run(["git", "-C", SOURCE] + list(a), capture_output=True,  # noqa: E731
                                    text=True, check=True).stdout.strip()
    return git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain") else "")


def check_config(config, archive, root, revision):
    c = config["config"]
    assert c.get("User") == IMAGE_USER, f"image user is {c.get('User')!r}, not {IMAGE_USER}"
    uid, gid = (int(x) for x in IMAGE_USER.split(":"))
    with open(os.path.join(root, "etc", "passwd")) as f:
        assert any(line.split(":")[2:4] == [str(uid), str(gid)] for line in f), \
            f"no /etc/passwd entry for {IMAGE_USER} in the image"
    labels = c.get("Labels") or {}
    with open(os.path.join(SOURCE, "meson.build")) as f:
        version = re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)
    for k in ("source", "revision", "version"):
        assert labels.get(f"org.opencontainers.image.{k}"), f"label .{k} missing: {labels}"
    assert labels["org.opencontainers.image.revision"] == revision, (revision, labels)
    assert labels["org.opencontainers.image.version"] == version, labels
    h.log(f"config: user {c['User']}, labels "
          + ", ".join(f"{k.rsplit('.', 1)[1]}={v}" for k, v in sorted(labels.items())
                      if k.startswith("org.opencontainers.image.")))
    # The binaries are the ones the build reported.
    with open(archive + ".sha256") as f:
        for line in f:
            digest, path = line.split()
            with open(os.path.join(root, path), "rb") as b:
                assert hashlib.sha256(b.read()).hexdigest() == digest, f"{path} differs"
            h.log(f"  {digest}  /{path}")
    return dict(e.split("=", 1) for e in c.get("Env", []))


# ---- 3. the chart's environment --------------------------------------------

def chart_env_from_values():
    """The chart's ConfigMaps at their defaults, from values.yaml (the same
    mapping as templates/router-configmap.yaml and edge-configmap.yaml)."""
    import yaml
    with open(os.path.join(SOURCE, "deploy", "helm", "kws", "values.yaml")) as f:
        v = yaml.safe_load(f)
    s = lambda x: str(x).lower() if isinstance(x, bool) else str(x)  # noqa: E731
    lim, k = v["limits"], v["kafka"]
    router = {
        "ROUTER_ID_HEADER": v["idHeader"], "ROUTER_PARTITIONER": k["partitioner"],
        "ROUTER_MESSAGE_TYPE": v["messageType"], "ROUTER_MAX_ID_BYTES": lim["maxIdBytes"],
        "ROUTER_MAX_FRAME_BYTES": lim["maxFrameBytes"], "ROUTER_QUEUE_BYTES": lim["queueBytes"],
        "ROUTER_STALL_TIMEOUT_MS": lim["stallTimeoutMs"], "ROUTER_HANDOVER_MS": lim["handoverMs"],
        "ROUTER_DRAIN_TIMEOUT_MS": v["lifecycle"]["drainTimeoutMs"],
        "ROUTER_LOG_LEVEL": v["logging"]["level"], "ROUTER_LOG_JSON": v["logging"]["json"],
        "ROUTER_AUTH": v["auth"]["mode"], "ROUTER_WORKERS": v["router"]["workers"],
    }
    edge = {
        "EDGE_BOOTSTRAP": k["bootstrap"], "EDGE_TOPIC": k["topic"], "EDGE_GROUP": k["group"],
        "EDGE_INBOUND_TOPIC": k["inboundTopic"], "EDGE_BATCH_BYTES": lim["batchBytes"],
        "EDGE_TAIL_BYTES": lim["tailBytes"], "EDGE_REPLAY_TIMEOUT_MS": lim["replayTimeoutMs"],
        "EDGE_METADATA_TIMEOUT_MS": lim["metadataTimeoutMs"],
        "EDGE_DRAIN_TIMEOUT_MS": v["lifecycle"]["drainTimeoutMs"],
        "EDGE_LOG_LEVEL": v["logging"]["level"], "EDGE_LOG_JSON": v["logging"]["json"],
    }
    return ({x: s(y) for x, y in router.items()}, {x: s(y) for x, y in edge.items()},
            v["admin"]["port"], v["router"]["port"], v["edge"]["port"])


def chart_env(bootstrap):
    """(router env, edge env, wiring) of the chart at its defaults, with
    kafka.bootstrap set. With helm (built by the k8s suite) the ConfigMaps are
    rendered and must equal the values.yaml mapping, which is used otherwise."""
    router, edge, admin_port, router_port, edge_port = chart_env_from_values()
    edge["EDGE_BOOTSTRAP"] = bootstrap
    helms = sorted(glob.glob(os.path.expanduser("~/.cache/kws-tools/bin/helm-*")))
    wiring = {}
    if helms:
        import yaml
        r = subprocess.run([helms[-1], "template", RELEASE, os.path.join(SOURCE, "deploy", "helm", "kws"),
                            "--namespace", NAMESPACE, "--set", f"kafka.bootstrap={bootstrap}"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
        cms = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
        assert cms[f"{RELEASE}-router"] == router, (cms[f"{RELEASE}-router"], router)
        assert cms[f"{RELEASE}-edge"] == edge, (cms[f"{RELEASE}-edge"], edge)
        for d in docs:
            if d["kind"] in ("Deployment", "StatefulSet"):
                c = d["spec"]["template"]["spec"]["containers"][0]
                wiring[c["name"]] = {
                    "command": c["command"],
                    "env": {e["name"]: e.get("value") for e in c["env"]},
                    "probes": {p: c[p]["httpGet"]["path"] for p in
                               ("livenessProbe", "readinessProbe", "startupProbe")},
                    "preStop": c["lifecycle"]["preStop"]["exec"]["command"],
                }
        h.log(f"chart env: helm template ({helms[-1]}) equals values.yaml")
    else:
        h.log("chart env: values.yaml (no helm in ~/.cache/kws-tools: the k8s suite builds it)")
    return router, edge, wiring, admin_port, router_port, edge_port


# ---- running a daemon from the image ---------------------------------------

# In a private mount namespace: the root filesystem read-only, /tmp a tmpfs
# (the chart's emptyDir), /proc, /dev, and /etc/hosts mounted over; then the
# command as the image's user. exec all the way: the daemon is the child.
IN_IMAGE = r'''set -e
root=$1 hosts=$2 user=$3; shift 3
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount -t tmpfs -o size=16m,mode=1777 tmpfs "$root/tmp"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --bind "$hosts" "$root/etc/hosts"
exec chroot --userspec="$user" "$root" "$@"
'''


def in_image(root, hosts, cmd):
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", IN_IMAGE,
            "sh", root, hosts, IMAGE_USER] + cmd


def get(port, path, host="127.0.0.1"):
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_status(port, path, want, timeout, proc):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert proc.alive(), f"{proc.name} exited ({proc.p.returncode})"
        try:
            last = get(port, path)
            if last[0] == want:
                return last
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{proc.name} {path}: not {want} within {timeout}s (last: {last})")


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def mapped_libs(pid):
    libs = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            p = line.split()[-1]
            if ".so" in p:
                libs.add(p)
    return sorted(libs)


async def run(env, root, image_env):
    kafka = env.start_kafka({"deliveries": PARTITIONS})
    router_cm, edge_cm, wiring, admin_port, router_port, edge_port = chart_env(kafka.bootstrap)

    # The headless Service: one name, the two edges' addresses, one port.
    dns = f"{RELEASE}-edge-headless.{NAMESPACE}.svc.cluster.local"
    edge_addrs = ["127.0.0.2", "127.0.0.3"]
    nng_port = h.free_port()
    hosts = os.path.join(env.dir, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1\tlocalhost\n")
        for a in edge_addrs:
            f.write(f"{a}\t{dns}\n")

    def wire(component, chart_defaults):
        w = wiring.get(component)
        if w:  # what the chart renders, with the fieldRef variables as the pod gets them
            assert w["command"] == [f"/usr/local/bin/{component}"], w["command"]
            for p, path in w["probes"].items():
                assert path in ("/healthz", "/readyz"), (p, path)
            missing = set(w["env"]) - set(chart_defaults)
            assert not missing, f"{component}: chart env {missing} not wired by this test"
            for k, v in w["env"].items():
                if v is not None and k not in ("EDGE_LISTEN", "EDGE_ADMIN_LISTEN",
                                               "ROUTER_LISTEN", "ROUTER_ADMIN_LISTEN"):
                    assert chart_defaults[k] == v, (k, v, chart_defaults[k])

    # Ports: the chart's (admin 9090, router 8080, edge 7100) could be taken
    # on a shared machine; free ones, in the chart's form.
    edges = []
    for i, addr in enumerate(edge_addrs):
        name = f"{RELEASE}-edge-{i}"
        admin = h.free_port()
        e = dict(image_env, **edge_cm, EDGE_INSTANCE_ID=name, EDGE_ID=name,
                 EDGE_LISTEN=f"tcp://{addr}:{nng_port}", EDGE_ADMIN_LISTEN=f"0.0.0.0:{admin}")
        wire("edge", dict(e, EDGE_LISTEN=f"tcp://0.0.0.0:{edge_port}",
                          EDGE_ADMIN_LISTEN=f"0.0.0.0:{admin_port}"))
        edges.append((name, admin, e))

    router_admin, router_ws = h.free_port(), h.free_port()
    renv = dict(image_env, **router_cm, ROUTER_ID=f"{RELEASE}-router-0",
                ROUTER_LISTEN=f"0.0.0.0:{router_ws}", ROUTER_ADMIN_LISTEN=f"0.0.0.0:{router_admin}",
                ROUTER_EDGES_DNS=f"{dns}:{nng_port}")
    wire("router", dict(renv, ROUTER_EDGES_DNS=f"{dns}:{edge_port}"))

    # Router first: alive, not ready (no edge has reported the partitions).
    router = env.spawn("router", in_image(root, hosts, ["/usr/local/bin/router"]), env=renv)
    wait_status(router_admin, "/healthz", 200, 30, router)
    code, body = get(router_admin, "/readyz")
    assert code == 503, f"router /readyz before any edge: {code} {body}"
    h.log(f"router: /healthz 200, /readyz {code} {body.strip()} (no edge yet)")

    eprocs = []
    for name, admin, e in edges:
        p = env.spawn(name, in_image(root, hosts, ["/usr/local/bin/edge"]), env=e)
        p.admin_port = admin
        eprocs.append(p)
    for p in eprocs:
        wait_status(p.admin_port, "/healthz", 200, 60, p)
        wait_status(p.admin_port, "/readyz", 200, 90, p)
    wait_status(router_admin, "/readyz", 200, 90, router)
    h.log("probes: /healthz and /readyz answer 200 on the admin ports of router and both edges")

    # Who runs, and what it loaded: the image's user, the image's libraries.
    for p in [router] + eprocs:
        st = proc_status(p.p.pid)
        uids, gids = st["Uid"].split(), st["Gid"].split()
        assert set(uids) == {"10001"} and set(gids) == {"10001"}, (p.name, uids, gids)
        assert st["CapEff"] == "0000000000000000", (p.name, st["CapEff"])
        root_of = os.readlink(f"/proc/{p.p.pid}/root")
        assert os.path.samefile(root_of, root), (p.name, root_of)
        libs = mapped_libs(p.p.pid)
        h.log(f"{p.name}: pid {p.p.pid} uid/gid 10001, no capabilities, root {root_of}, "
              f"{len(libs)} libraries mapped: {' '.join(os.path.basename(x) for x in libs)}")
    parts = h.http_json(router_admin, "/api/v1/partitions")
    owners = {}
    for x in parts if isinstance(parts, list) else parts.get("partitions", []):
        owners.setdefault(json.dumps(x.get("owner"), sort_keys=True), []).append(x["partition"])
    h.log(f"router: partitions by owner {owners}")

    ids = [f"user-{i}" for i in range(CLIENTS)]
    ws_url = f"ws://127.0.0.1:{router_ws}/ws"
    clients = [h.Collector(ws_url, i) for i in ids]
    await asyncio.gather(*(c.connect() for c in clients))
    await h.warm_up(env, clients)
    out = env.produce("deliveries", ids, RECORDS, tag="main")
    h.log(out.strip())
    await h.wait_until(lambda: all(len(c.records("main")) >= RECORDS for c in clients),
                       60, "every record")
    await asyncio.sleep(0.5)
    lost, dup, reordered, foreign = h.check_streams(clients, RECORDS, "main")
    received = sum(len(c.records("main")) for c in clients)
    h.log(f"produced {RECORDS * CLIENTS} records for {CLIENTS} ids; received {received}; "
          f"lost {lost}, duplicated {dup}, reordered {reordered}, foreign {foreign}")
    assert (lost, dup, reordered, foreign) == (0, 0, 0, 0)
    assert received == RECORDS * CLIENTS
    await asyncio.gather(*(c.close() for c in clients))

    # The preStop hook (exec /bin/sleep N) must exist in the image.
    pre = wiring.get("router", {}).get("preStop", ["/bin/sleep", "5"])
    r = subprocess.run(in_image(root, hosts, [pre[0], "0"]), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, f"preStop {pre[0]} in the image: {r.returncode} {r.stderr}"
    h.log(f"preStop: {pre[0]} runs in the image")

    # SIGTERM (what the kubelet sends after preStop): drain and exit 0.
    for p in [router] + eprocs:
        t0 = time.monotonic()
        rc = p.stop(timeout=45)
        assert rc == 0, f"{p.name} exited with {rc} on SIGTERM"
        h.log(f"{p.name}: SIGTERM, exit 0 in {time.monotonic() - t0:.1f}s")


def main():
    t0 = time.monotonic()
    if os.geteuid() != 0:
        skip("needs root (mmdebstrap, buildah's chroot isolation, chroot into the image)")
    for tool in ("unshare", "chroot", "mount"):
        if not shutil.which(tool):
            skip(f"{tool} is missing")
    os.environ.setdefault("KWS_KAFKA", "real")
    out_dir = os.path.join(h.BUILD, "image")
    os.makedirs(out_dir, exist_ok=True)
    archive = os.path.join(out_dir, "kws.oci.tar")
    revision = source_revision()
    build(archive)
    with h.Env("image") as env:
        root = os.path.join(env.dir, "rootfs")
        config = unpack(archive, root)
        image_env = check_config(config, archive, root, revision)
        asyncio.run(run(env, root, image_env))
    h.log(f"image test: {time.monotonic() - t0:.0f}s in all")
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
