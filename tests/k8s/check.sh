#!/usr/bin/env bash
# Validates the Kubernetes packaging offline (no cluster, no Docker):
#   1. helm lint --strict the chart (deploy/helm/kws) with every value set in
#      tests/k8s/values/;
#   2. helm template each set and decode EVERY rendered object strictly into the
#      Kubernetes API's Go types (tests/k8s/validate: unknown, misspelled,
#      duplicate or mistyped fields fail), plus semantic checks (named ports,
#      probes, resources, securityContext, cross-references, grace periods);
#      the kinds rendered must equal the "# expect:" line of the value file;
#   3. negative tests: values and manifests with known mistakes must FAIL;
#      NOTES.txt warns about idle edges exactly when it should;
#   4. deploy/Dockerfile: its structure, its runtime packages exist in Debian 12,
#      and they provide every shared library the built binaries need.
#
#   tests/k8s/check.sh [--router PATH --edge PATH]   (meson passes the binaries)
#
# The first run builds helm (helm.sh/helm/v3 from the Go module proxy) and the
# validator, cached under ~/.cache/kws-tools (KWS_TOOLS_CACHE overrides); later
# runs reuse them. Without Go it exits 77 (skipped), or fails when $CI is set.
set -euo pipefail

HELM_VERSION=v3.22.0
# helm v3.22.0 is built against k8s.io/client-go v0.37: its default
# Capabilities.KubeVersion and lint deprecation checks follow 1.37.
HELM_K8S_MAJOR=1
HELM_K8S_MINOR=37
# The API version the validator decodes against (k8s.io/api in validate/go.mod),
# and the oldest release the chart supports (Chart.yaml kubeVersion).
KUBE_VERSION=1.37.0
MIN_KUBE_VERSION=1.25.0
NAMESPACE=kws-test
RELEASE=kws

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/tests/k8s"
chart="$top/deploy/helm/kws"
cache=${KWS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kws-tools}
router_bin=""
edge_bin=""
while [ $# -gt 0 ]; do
	case "$1" in
	--router) router_bin=$2; shift 2 ;;
	--edge) edge_bin=$2; shift 2 ;;
	-h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "check.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done

skip() {
	if [ -n "${CI:-}" ]; then
		echo "FAIL: $* (CI is set, so this is not skipped)"
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}

failures=0
passes=0
pass() { passes=$((passes + 1)); echo "  ok    $*"; }
fail() { failures=$((failures + 1)); echo "  FAIL  $*"; }
section() { printf '\n== %s ==\n' "$*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kws-k8s.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- tools ---------------------------------------------------------------

command -v go >/dev/null 2>&1 || skip "Go is not installed: it builds helm and the validator (Go >= 1.21; it fetches the newer toolchain they ask for through the Go module proxy)"
gover=$(go env GOVERSION 2>/dev/null || true)
case "$gover" in
go1.2[1-9]*|go1.[3-9][0-9]*|go[2-9]*) ;;
*) skip "Go $gover is too old: Go >= 1.21 is needed (it fetches the toolchain helm and the validator ask for)" ;;
esac

mkdir -p "$cache/bin"
# Our own flags only: a GOFLAGS such as -mod=vendor from the environment would break these builds.
export GOFLAGS=-buildvcs=false CGO_ENABLED=0

helm="$cache/bin/helm-$HELM_VERSION"
t0=$(date +%s)
if [ ! -x "$helm" ]; then
	echo "building helm $HELM_VERSION into $cache/bin (first run only; a few minutes)..."
	ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
	ld="$ld -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$HELM_K8S_MAJOR"
	ld="$ld -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
	ld="$ld -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$HELM_K8S_MAJOR"
	ld="$ld -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"
	if ! GOBIN="$work/gobin" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$work/helm-build.log" 2>&1; then
		tail -20 "$work/helm-build.log"
		skip "could not build helm $HELM_VERSION through the Go module proxy (see above)"
	fi
	mv "$work/gobin/helm" "$helm.tmp.$$" && mv -f "$helm.tmp.$$" "$helm"
fi

vsrc="$here/validate"
vhash=$(cat "$vsrc/go.mod" "$vsrc/go.sum" "$vsrc"/*.go | sha256sum | cut -c1-16)
validator="$cache/bin/kws-k8s-validate-$vhash"
if [ ! -x "$validator" ]; then
	echo "building the validator (tests/k8s/validate) into $cache/bin..."
	if ! (cd "$vsrc" && GOFLAGS="$GOFLAGS -mod=readonly" go build -trimpath -o "$validator.tmp.$$" .) >"$work/validate-build.log" 2>&1; then
		cat "$work/validate-build.log"
		if grep -q -e 'dial tcp' -e 'proxy.golang.org' -e 'no such host' "$work/validate-build.log"; then
			skip "could not fetch the validator's modules through the Go module proxy"
		fi
		echo "FAIL: the validator does not build"
		exit 1
	fi
	mv -f "$validator.tmp.$$" "$validator"
	# Drop validators built from older sources.
	find "$cache/bin" -maxdepth 1 -name 'kws-k8s-validate-*' ! -name "kws-k8s-validate-$vhash" ! -name '*.tmp.*' -delete
fi
echo "tools: $("$helm" version --template '{{.Version}}') ($helm), validator $validator, $gover ($(($(date +%s) - t0))s)"

H() { "$helm" "$@"; }

# ---- 1 and 2: lint, render, validate every value set -----------------------

section "helm lint --strict and strict validation of every rendered object (Kubernetes $KUBE_VERSION types)"
summary=()
for values in "$here"/values/*.yaml; do
	name=$(basename "$values" .yaml)
	if H lint --strict --quiet --kube-version "$KUBE_VERSION" "$chart" -f "$values" >"$work/lint.log" 2>&1; then
		pass "$name: helm lint --strict"
	else
		cat "$work/lint.log"
		fail "$name: helm lint --strict"
		continue
	fi
	out="$work/$name.yaml"
	if ! H template "$RELEASE" "$chart" -n "$NAMESPACE" -f "$values" --kube-version "$KUBE_VERSION" >"$out" 2>"$work/template.log"; then
		cat "$work/template.log"
		fail "$name: helm template"
		continue
	fi
	if "$validator" -namespace "$NAMESPACE" -label "$name" "$out" >"$work/validate.log" 2>&1; then
		counts=$(sed -n 's/^OK .*objects: //p' "$work/validate.log")
		nobj=$(sed -n 's/^OK .*: \([0-9]*\) objects:.*/\1/p' "$work/validate.log")
		pass "$name: $nobj objects decoded strictly and checked"
		summary+=("$(printf '%-16s %3s objects: %s' "$name" "$nobj" "$counts")")
		expect=$(sed -n 's/^# expect: //p' "$values" | head -1)
		if [ -z "$expect" ]; then
			fail "$name: the value file has no '# expect:' line"
		elif [ "$expect" = "$counts" ]; then
			pass "$name: rendered kinds are as expected"
		else
			fail "$name: rendered kinds: $counts; expected: $expect"
		fi
	else
		cat "$work/validate.log"
		fail "$name: validation"
	fi
done

# The oldest supported Kubernetes renders too; an older one is refused.
if H template "$RELEASE" "$chart" -n "$NAMESPACE" -f "$here/values/defaults.yaml" --kube-version "$MIN_KUBE_VERSION" >"$work/min.yaml" 2>&1 &&
	"$validator" -namespace "$NAMESPACE" -label "defaults@$MIN_KUBE_VERSION" "$work/min.yaml" >/dev/null; then
	pass "defaults render and validate for Kubernetes $MIN_KUBE_VERSION (the oldest supported)"
else
	fail "defaults for Kubernetes $MIN_KUBE_VERSION"
fi

# ---- 3a: helm must refuse bad values ------------------------------------------

section "bad values are refused by the chart (schema and template checks)"
refuse() { # description, expected message (grep -E), helm template arguments...
	local what=$1 want=$2
	shift 2
	if H template "$RELEASE" "$chart" -n "$NAMESPACE" --kube-version "$KUBE_VERSION" "$@" >"$work/neg.log" 2>&1; then
		fail "$what: helm template accepted it"
	elif grep -Eq -- "$want" "$work/neg.log"; then
		pass "$what: refused ($(grep -Eo -- "$want" "$work/neg.log" | head -1))"
	else
		cat "$work/neg.log"
		fail "$what: refused, but without the expected message /$want/"
	fi
}
refuse "no kafka.bootstrap" "kafka.bootstrap is required"
refuse "misspelled value key kafka.bootstrp" "bootstrp" \
	--set kafka.bootstrap=k:9092 --set kafka.bootstrp=k:9092
refuse "misspelled top-level key rotuer" "rotuer" \
	--set kafka.bootstrap=k:9092 --set rotuer.replicas=3
refuse "unknown partitioner" "partitioner" \
	--set kafka.bootstrap=k:9092 --set kafka.partitioner=random
refuse "size without a known unit" "queueBytes" \
	--set kafka.bootstrap=k:9092 --set limits.queueBytes=1MB
refuse "a comma in a Kafka property value" "may not contain ','" \
	--set kafka.bootstrap=k:9092 --set-string 'kafka.props.sasl\.mechanisms=PLAIN\,SCRAM-SHA-256'
refuse "jwt auth without a keys Secret" "auth.jwt.keysSecret" \
	--set kafka.bootstrap=k:9092 --set auth.mode=jwt
refuse "header-from-proxies without proxies" "trustedProxies" \
	--set kafka.bootstrap=k:9092 --set auth.mode=header-from-proxies
refuse "the native preStop sleep on Kubernetes 1.29" "nativeSleep needs Kubernetes 1.30" \
	--set kafka.bootstrap=k:9092 --set lifecycle.nativeSleep=true --kube-version 1.29.0
refuse "Kubernetes older than the chart supports" "kubeVersion|incompatible" \
	-f "$here/values/defaults.yaml" --kube-version 1.22.0

# ---- 3b: NOTES.txt (helm template does not print it: render it through a copy
# of the chart with one more template that includes it) ---------------------

section "NOTES.txt"
cp -r "$chart" "$work/notes-chart"
printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata: {name: notes}' 'data:' '  notes: |' \
	'{{ include "kws/templates/NOTES.txt" . | indent 4 }}' >"$work/notes-chart/templates/zz-notes.yaml"
notes() { H template "$RELEASE" "$work/notes-chart" -n "$NAMESPACE" --show-only templates/zz-notes.yaml "$@"; }
if notes -f "$here/values/kafka-tls-sasl.yaml" --set edge.replicas=14 >"$work/notes.txt" 2>&1 &&
	grep -F 'edge.replicas (14) is above kafka.partitions (12)' "$work/notes.txt" >/dev/null &&
	grep -F 'own nothing and sit idle' "$work/notes.txt" >/dev/null; then
	pass "NOTES explains idle edges and warns when edge.replicas (14) > kafka.partitions (12)"
else
	cat "$work/notes.txt"
	fail "NOTES: no warning for edge.replicas above kafka.partitions"
fi
if notes -f "$here/values/kafka-tls-sasl.yaml" >"$work/notes.txt" 2>&1 &&
	! grep -F 'is above kafka.partitions' "$work/notes.txt" >/dev/null; then
	pass "NOTES does not warn when edge.replicas (6) <= kafka.partitions (12)"
else
	fail "NOTES warns about idle edges without cause"
fi

# ---- 3c: the validator must refuse broken manifests ----------------------------

section "broken manifests are refused by the validator (proof of strictness)"
base="$work/defaults.yaml"
tls="$work/kafka-tls-sasl.yaml"
reject() { # description, expected message (grep -F), source manifest, sed program
	local what=$1 want=$2 src=$3 prog=$4
	local bad="$work/bad.yaml"
	if [ ! -s "$src" ]; then
		fail "$what: no rendered manifest to break"
		return
	fi
	sed -e "$prog" "$src" >"$bad"
	if cmp -s "$src" "$bad"; then
		fail "$what: the edit '$prog' changed nothing (the chart changed?)"
		return
	fi
	if "$validator" -namespace "$NAMESPACE" -label broken "$bad" >"$work/neg.log" 2>&1; then
		fail "$what: the validator accepted it"
	elif grep -Fq -- "$want" "$work/neg.log"; then
		pass "$what: rejected: $(grep -F -- "$want" "$work/neg.log" | head -1 | sed 's/^ *- [^:]*: //' | cut -c1-110)"
	else
		cat "$work/neg.log"
		fail "$what: rejected, but not for '$want'"
	fi
}
reject "misspelled field 'contianers'" 'unknown field "spec.template.spec.contianers"' \
	"$base" '0,/^      containers:/s//      contianers:/'
reject "field with the wrong case 'Containers'" 'unknown field "spec.template.spec.Containers"' \
	"$base" '0,/^      containers:/s//      Containers:/'
reject "misspelled nested field 'readinesProbe'" 'unknown field "spec.template.spec.containers[0].readinesProbe"' \
	"$base" '0,/readinessProbe:/s//readinesProbe:/'
reject "misspelled Service field 'publishNotReadyAdresses'" 'unknown field "spec.publishNotReadyAdresses"' \
	"$base" 's/publishNotReadyAddresses:/publishNotReadyAdresses:/'
reject "a string where an integer belongs" 'replicas' \
	"$base" 's/^  replicas: 2$/  replicas: "two"/'
reject "a duplicate key" 'already set in map' \
	"$base" 's/^  replicas: 2$/  replicas: 2\n  replicas: 3/'
reject "an unknown kind" 'unsupported apiVersion/kind apps/v1/Deploymnet' \
	"$base" 's/^kind: Deployment$/kind: Deploymnet/'
reject "an API version that does not serve the kind" 'unsupported apiVersion/kind policy/v1beta1/PodDisruptionBudget' \
	"$base" 's#^apiVersion: policy/v1$#apiVersion: policy/v1beta1#'
reject "an invalid quantity" 'quantities must match' \
	"$base" '0,/memory: 256Mi/s//memory: 256MB-ish/'
reject "runAsNonRoot false" 'runAsNonRoot is not true' \
	"$base" 's/runAsNonRoot: true/runAsNonRoot: false/'
reject "writable root filesystem" 'readOnlyRootFilesystem is not true' \
	"$base" '0,/readOnlyRootFilesystem: true/s//readOnlyRootFilesystem: false/'
reject "an unnamed container port" 'has no name' \
	"$base" '0,/- name: ws$/s//- name: ""/'
reject "a Service targeting a port no pod has" 'targets wss' \
	"$base" 's/targetPort: ws$/targetPort: wss/'
reject "a probe on a port the container lacks" 'livenessProbe port metrics' \
	"$base" '0,/^              port: admin$/s//              port: metrics/'
reject "a grace period shorter than preStop + drain" 'terminationGracePeriodSeconds 20 does not exceed' \
	"$base" 's/terminationGracePeriodSeconds: 45/terminationGracePeriodSeconds: 20/'
reject "a headless Service that is not headless" 'is not headless' \
	"$base" 's/^  clusterIP: None$/  clusterIP: ""/'
reject "a selector that misses the pod labels" 'does not match the pod template' \
	"$base" '/^kind: Deployment$/,/^  template:$/s/^      app.kubernetes.io\/component: router$/      app.kubernetes.io\/component: routr/'
# shellcheck disable=SC2016 # $(VAR) is Kubernetes syntax, literal here
reject "an env reference to an undefined variable" 'refers to $(KWS_KAFKA_SECRET_7)' \
	"$tls" 's/$(KWS_KAFKA_SECRET_1)/$(KWS_KAFKA_SECRET_7)/'
reject "no resources" 'resources.requests.cpu is not set' \
	"$base" '0,/cpu: 250m/s//gpu: 250m/'

# ---- 4: the Dockerfile -----------------------------------------------------

section "deploy/Dockerfile (docker build cannot run here: static checks)"
df="$top/deploy/Dockerfile"
want_line() { # description, extended regex a line of the Dockerfile must match
	if grep -Eq -- "$2" "$df"; then pass "$1"; else fail "$1: no line matches /$2/"; fi
}
want_line "build stage on debian:12" '^FROM debian:12(@sha256:[0-9a-f]+)? AS build$'
want_line "runtime stage on debian:12-slim" '^FROM debian:12-slim(@sha256:[0-9a-f]+)?( AS [a-z]+)?$'
want_line "the project's own deploy/install-deps.sh" 'deploy/install-deps\.sh'
want_line "a release build" 'buildtype=release'
want_line "non-root user 10001" '^USER 10001(:10001)?$'
want_line "router in /usr/local/bin" '/usr/local/bin/router'
want_line "edge in /usr/local/bin" '/usr/local/bin/edge'
# With the repository root as the context, BuildKit reads the ignore file
# beside the Dockerfile (deploy/Dockerfile.dockerignore).
if [ -f "$top/deploy/Dockerfile.dockerignore" ] && grep -qx -- '.git' "$top/deploy/Dockerfile.dockerignore"; then
	pass "deploy/Dockerfile.dockerignore keeps .git and build trees out of the context"
else
	fail "deploy/Dockerfile.dockerignore is missing or does not exclude .git"
fi

# The Debian package that ships a library; dpkg knows each file under one of
# its merged-/usr names only.
pkg_of() {
	local f cand out
	f=$(readlink -f "$1")
	for cand in "$1" "$f" "/usr${1#/usr}" "/usr${f#/usr}" "${1#/usr}" "${f#/usr}"; do
		out=$(dpkg -S "$cand" 2>/dev/null | head -1 | cut -d: -f1 || true)
		if [ -n "$out" ]; then
			echo "$out"
			return 0
		fi
	done
}

# Prints " lib(package)" for each library router or edge loads that neither
# the given packages nor their dependencies (recursively) provide. Sanitizer
# runtimes (ASan/UBSan test builds) are not part of a release image.
lib_gaps() {
	local closure bin lib pkg
	closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances "$@" 2>/dev/null | grep -E '^[a-z0-9]' | sort -u)
	for bin in "$router_bin" "$edge_bin"; do
		for lib in $(ldd "$bin" | awk '$3 ~ /^\// {print $3}'); do
			case "$lib" in *libasan*|*libubsan*|*liblsan*|*libtsan*|*clang_rt*) continue ;; esac
			pkg=$(pkg_of "$lib")
			if [ -z "$pkg" ]; then
				printf ' %s(no-package)' "$(basename "$lib")"
			elif ! grep -qx -- "$pkg" <<<"$closure"; then
				printf ' %s(%s)' "$(basename "$lib")" "$pkg"
			fi
		done
	done | tr ' ' '\n' | sort -u | tr '\n' ' ' | sed 's/^ */ /; s/ *$//'
}

# The runtime packages: the one apt-get install command of the final stage.
# Words of that command, one a line; package names are the bare lower-case ones.
mapfile -t runtime_pkgs < <(awk '/^FROM debian:12-slim/{rt=1} rt' "$df" |
	sed -n '/apt-get install/,/[^\\]$/p' | tr -s ' \t\134' '\n' |
	grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vxE 'apt-get|install|rm|update' | sort -u)
if [ "${#runtime_pkgs[@]}" -eq 0 ]; then
	fail "no apt-get install line in the runtime stage"
elif ! apt-cache policy libc6 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null; then
	echo "  note  apt has no package lists here (apt-get update): package checks skipped"
else
	missing=""
	for p in "${runtime_pkgs[@]}"; do
		apt-cache show "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -z "$missing" ]; then
		pass "runtime packages exist in this Debian's archive: ${runtime_pkgs[*]}"
	else
		fail "runtime packages unknown to apt:$missing"
	fi
	if [ -n "$router_bin" ] && [ -n "$edge_bin" ] && command -v ldd >/dev/null && command -v dpkg >/dev/null; then
		gaps=$(lib_gaps "${runtime_pkgs[@]}")
		if [ -z "$gaps" ]; then
			pass "the runtime packages provide every library router and edge load (ldd, apt dependencies)"
		else
			fail "libraries the image would lack:$gaps"
		fi
		# The same check must notice a missing package.
		mapfile -t fewer < <(printf '%s\n' "${runtime_pkgs[@]}" | grep -vx librdkafka1)
		gaps=$(lib_gaps "${fewer[@]}")
		case "$gaps" in
		*librdkafka*) pass "without librdkafka1 the check reports:$gaps" ;;
		*) fail "without librdkafka1 the library check noticed nothing" ;;
		esac
	else
		echo "  note  no --router/--edge binaries given: library coverage not checked"
	fi
fi

# ---- summary ---------------------------------------------------------------

section "validated (objects per kind, per value set; release '$RELEASE', namespace '$NAMESPACE')"
for line in "${summary[@]}"; do echo "  $line"; done
echo
echo "k8s: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
