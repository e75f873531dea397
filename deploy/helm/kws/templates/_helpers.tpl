{{/*
Names. The full name is cut to 38 characters so that the longest derived name
("<full>-edge-headless", 52) stays a valid Service name and the StatefulSet
name stays under 52 (its pods' controller-revision-hash label must fit 63).
*/}}
{{- define "kws.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 38 | trimSuffix "-" -}}
{{- end }}

{{- define "kws.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 38 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 38 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 38 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{- define "kws.routerName" -}}{{ include "kws.fullname" . }}-router{{- end }}
{{- define "kws.edgeName" -}}{{ include "kws.fullname" . }}-edge{{- end }}
{{- define "kws.edgeHeadlessName" -}}{{ include "kws.fullname" . }}-edge-headless{{- end }}

{{- define "kws.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kws.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/*
The DNS name routers resolve to find every ready edge (the headless Service),
with the edge port: ROUTER_EDGES_DNS.
*/}}
{{- define "kws.edgesDNS" -}}
{{- printf "%s.%s.svc.%s:%d" (include "kws.edgeHeadlessName" .) .Release.Namespace .Values.clusterDomain (int .Values.edge.port) -}}
{{- end }}

{{/*
Labels. Call with (dict "ctx" $ "component" "router"); component may be "".
*/}}
{{- define "kws.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kws.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{- define "kws.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kws.selectorLabels" . }}
app.kubernetes.io/version: {{ include "kws.imageTag" .ctx | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kws
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kws.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end }}

{{- define "kws.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "kws.imageTag" .) -}}
{{- end -}}
{{- end }}

{{/*
A scalar as the binaries read it: whole numbers without an exponent (YAML
numbers reach templates as float64, and 1000000 would print as 1e+06).
*/}}
{{- define "kws.str" -}}
{{- if kindIs "float64" . -}}
{{- if eq (float64 (int64 .)) . -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end }}

{{/*
EDGE_KAFKA_PROPS: the non-secret properties (sorted), then one
"property=$(KWS_KAFKA_SECRET_<i>)" per secretProps entry, then the whole list
from propsSecret. The kubelet expands $(VAR) from the variables defined before
it in the container's env (see kws.kafkaSecretEnv). The edge splits the list
on commas, so no value may contain one.
*/}}
{{- define "kws.kafkaProps" -}}
{{- $parts := list -}}
{{- range $k := keys .Values.kafka.props | sortAlpha -}}
{{- $v := include "kws.str" (index $.Values.kafka.props $k) -}}
{{- if or (contains "," $v) (contains "," $k) (contains "=" $k) -}}
{{- fail (printf "kafka.props.%s: keys and values may not contain ',' (and keys not '='): EDGE_KAFKA_PROPS is a comma-separated key=value list" $k) -}}
{{- end -}}
{{- $parts = append $parts (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- range $i, $p := .Values.kafka.secretProps -}}
{{- $parts = append $parts (printf "%s=$(KWS_KAFKA_SECRET_%d)" $p.property $i) -}}
{{- end -}}
{{- if .Values.kafka.propsSecret.name -}}
{{- $parts = append $parts "$(KWS_KAFKA_PROPS_SECRET)" -}}
{{- end -}}
{{- join "," $parts -}}
{{- end }}

{{- define "kws.kafkaSecretEnv" -}}
{{- range $i, $p := .Values.kafka.secretProps }}
- name: KWS_KAFKA_SECRET_{{ $i }}
  valueFrom:
    secretKeyRef:
      name: {{ $p.secretName }}
      key: {{ $p.secretKey }}
{{- end }}
{{- with .Values.kafka.propsSecret }}
{{- if .name }}
- name: KWS_KAFKA_PROPS_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ required "kafka.propsSecret.key is required with kafka.propsSecret.name" .key }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Secret holding the admin token, or "" when there is none.
*/}}
{{- define "kws.adminTokenSecret" -}}
{{- if .Values.admin.token.existingSecret -}}
{{- .Values.admin.token.existingSecret -}}
{{- else if .Values.admin.token.create -}}
{{- include "kws.fullname" . }}-admin-token
{{- end -}}
{{- end }}

{{/*
Identity settings of the router, as ConfigMap entries (router --help, README
"Trust"). Everything else in the chart refers to the auth block only through
this helper and kws.authVolume*.
*/}}
{{- define "kws.authEnv" -}}
{{- $a := .Values.auth -}}
ROUTER_AUTH: {{ $a.mode | quote }}
{{- if eq $a.mode "header-from-proxies" }}
ROUTER_TRUSTED_PROXIES: {{ join "," $a.trustedProxies | quote }}
{{- else if eq $a.mode "jwt" }}
ROUTER_JWT_KEYS: {{ $a.jwt.mountPath | quote }}
ROUTER_JWT_CLAIM: {{ $a.jwt.claim | quote }}
ROUTER_JWT_ISSUER: {{ $a.jwt.issuer | quote }}
ROUTER_JWT_AUDIENCE: {{ $a.jwt.audience | quote }}
ROUTER_JWT_LEEWAY_S: {{ include "kws.str" $a.jwt.leewaySeconds | quote }}
ROUTER_TOKEN_IN_ID_HEADER: {{ $a.jwt.tokenInIdHeader | quote }}
ROUTER_TOKEN_IN_QUERY: {{ $a.jwt.tokenInQuery | quote }}
{{- end }}
{{- end }}

{{/*
Checks of combinations the schema cannot express; included by every workload.
*/}}
{{- define "kws.validate" -}}
{{- $_ := required "kafka.bootstrap is required: the Kafka bootstrap servers, host:port[,host:port...]" .Values.kafka.bootstrap -}}
{{- if and (eq .Values.auth.mode "header-from-proxies") (empty .Values.auth.trustedProxies) -}}
{{- fail "auth.mode header-from-proxies needs auth.trustedProxies (the CIDRs of the proxies that set the id header)" -}}
{{- end -}}
{{- if and (eq .Values.auth.mode "jwt") (empty .Values.auth.jwt.keysSecret) -}}
{{- fail "auth.mode jwt needs auth.jwt.keysSecret (an existing Secret with the verification keys)" -}}
{{- end -}}
{{- with .Values.router.autoscaling -}}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) -}}
{{- fail "router.autoscaling.minReplicas is above maxReplicas" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.lifecycle.nativeSleep (semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "lifecycle.nativeSleep needs Kubernetes 1.30 or later (the preStop sleep action); this is %s" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) .Values.automountServiceAccountToken -}}
{{- fail "automountServiceAccountToken with the namespace's default ServiceAccount: set serviceAccount.name" -}}
{{- end -}}
{{- end }}

{{/*
Grace period: preStop sleep + drain timeout (rounded up) + margin.
*/}}
{{- define "kws.terminationGrace" -}}
{{- with .Values.lifecycle -}}
{{- add (int .preStopSleepSeconds) (div (add (int64 .drainTimeoutMs) 999) 1000) (int .terminationMarginSeconds) -}}
{{- end -}}
{{- end }}

{{- define "kws.preStop" -}}
{{- with .Values.lifecycle -}}
{{- if gt (int .preStopSleepSeconds) 0 -}}
lifecycle:
  preStop:
    {{- if .nativeSleep }}
    sleep:
      seconds: {{ int .preStopSleepSeconds }}
    {{- else }}
    exec:
      command: ["/bin/sleep", "{{ int .preStopSleepSeconds }}"]
    {{- end }}
{{- end }}
{{- end -}}
{{- end }}

{{/*
Default affinity: prefer one pod of a component per node.
(dict "ctx" $ "component" "edge" "affinity" .Values.edge.affinity)
*/}}
{{- define "kws.affinity" -}}
{{- if .affinity -}}
{{ toYaml .affinity }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "kws.selectorLabels" . | nindent 12 }}
{{- end -}}
{{- end }}

{{/*
Probes on the admin port. (dict "path" "/healthz" "settings" .Values.router.livenessProbe)
*/}}
{{- define "kws.probe" -}}
httpGet:
  path: {{ .path }}
  port: admin
  scheme: HTTP
{{- range $k, $v := .settings }}
{{ $k }}: {{ int $v }}
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by both workloads. (dict "ctx" $ "c" .Values.router)
*/}}
{{- define "kws.podSpecCommon" -}}
{{- $ := .ctx -}}
serviceAccountName: {{ include "kws.serviceAccountName" $ }}
automountServiceAccountToken: {{ $.Values.automountServiceAccountToken }}
enableServiceLinks: false
terminationGracePeriodSeconds: {{ include "kws.terminationGrace" $ }}
securityContext:
  {{- toYaml $.Values.podSecurityContext | nindent 2 }}
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Egress to DNS (port 53), to networkPolicy.dns.to or anywhere.
*/}}
{{- define "kws.dnsEgress" -}}
- ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
  {{- with .Values.networkPolicy.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
