{{/* Names ----------------------------------------------------------------------------------- */}}

{{- define "lfr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-lfr, or the release name when it already contains "lfr". Workloads add "-<name>". */}}
{{- define "lfr.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lfr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "lfr.labels" -}}
helm.sh/chart: {{ include "lfr.chart" . }}
{{ include "lfr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lfr
{{- end }}

{{/* Labels that select every lfr pod of this release (and nothing else: the NATS chart's pods
are app.kubernetes.io/name=nats). */}}
{{- define "lfr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lfr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of one workload: . is dict "root" $ "w" <workload>. */}}
{{- define "lfr.workloadSelectorLabels" -}}
{{ include "lfr.selectorLabels" .root }}
app.kubernetes.io/component: {{ .w.service }}
{{- if ne .w.shard "" }}
lfr.shard: {{ .w.shard | quote }}
{{- end }}
{{- end }}

{{- define "lfr.workloadLabels" -}}
{{ include "lfr.labels" .root }}
app.kubernetes.io/component: {{ .w.service }}
{{- if ne .w.shard "" }}
lfr.shard: {{ .w.shard | quote }}
{{- end }}
{{- end }}

{{- define "lfr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lfr.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The workloads: one per service, ingest once per shard. A JSON list of
{name, service, port, shard, configKey}. */}}
{{- define "lfr.workloads" -}}
{{- $ports := dict "ingest" 9101 "detect" 9102 "embed" 9103 "match" 9104 "dispatch" 9105 "purge" 9106 }}
{{- $fullname := include "lfr.fullname" . }}
{{- $out := list }}
{{- $shards := int .Values.ingest.shards }}
{{- if lt $shards 1 }}
{{- fail "ingest.shards must be at least 1" }}
{{- end }}
{{- if eq $shards 1 }}
{{- $out = append $out (dict "name" (printf "%s-ingest" $fullname) "service" "ingest" "port" 9101 "shard" "" "configKey" "lfr.toml") }}
{{- else }}
{{- range $i := until $shards }}
{{- $out = append $out (dict "name" (printf "%s-ingest-%d" $fullname $i) "service" "ingest" "port" 9101 "shard" (toString $i) "configKey" (printf "ingest-%d.toml" $i)) }}
{{- end }}
{{- end }}
{{- range $s := list "detect" "embed" "match" "dispatch" "purge" }}
{{- $out = append $out (dict "name" (printf "%s-%s" $fullname $s) "service" $s "port" (get $ports $s) "shard" "" "configKey" "lfr.toml") }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* Services that read [models]. */}}
{{- define "lfr.usesModels" -}}
{{- if has . (list "detect" "embed" "dispatch") }}true{{ end }}
{{- end }}

{{/* Services that need the master key. */}}
{{- define "lfr.usesMasterKey" -}}
{{- if has . (list "match" "dispatch") }}true{{ end }}
{{- end }}

{{/* Services that may run an HPA. */}}
{{- define "lfr.autoscaled" -}}
{{- $v := get .root.Values .service }}
{{- if and (has .service (list "detect" "embed" "match")) $v.autoscaling $v.autoscaling.enabled }}true{{ end }}
{{- end }}

{{- define "lfr.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The NATS URL the services use: the bundled cluster's Service, or nats.url. */}}
{{- define "lfr.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- $name := "nats" }}
{{- if .Values.nats.fullnameOverride }}
{{- $name = .Values.nats.fullnameOverride }}
{{- else if contains "nats" .Release.Name }}
{{- $name = .Release.Name }}
{{- else }}
{{- $name = printf "%s-nats" .Release.Name }}
{{- end }}
{{- printf "nats://%s.%s.svc:4222" ($name | trunc 63 | trimSuffix "-") .Release.Namespace }}
{{- else }}
{{- required "nats.url is required when nats.enabled is false" .Values.nats.url }}
{{- end }}
{{- end }}

{{- define "lfr.natsCredentialsPath" -}}
{{- printf "%s/lfr.creds" (trimSuffix "/" .Values.nats.credentials.mountPath) }}
{{- end }}

{{/* TOML ------------------------------------------------------------------------------------
lfr.toml is written from values with a small renderer: scalars and arrays of scalars as
`key = <JSON>` (a JSON string, number, boolean or array is valid TOML; whole numbers stay
integers), maps as [sub.tables], lists of maps as [[arrays.of.tables]]. Null values are left out,
so lfr's default applies. */}}

{{- define "lfr.toml.isTable" -}}
{{- if kindIs "map" . }}true{{ end }}
{{- end }}

{{- define "lfr.toml.isTableArray" -}}
{{- if kindIs "slice" . }}{{ if gt (len .) 0 }}{{ if kindIs "map" (first .) }}true{{ end }}{{ end }}{{ end }}
{{- end }}

{{/* . is dict "path" "a.b" "header" "[a.b]" "table" <map> */}}
{{- define "lfr.toml.table" -}}
{{ .header }}
{{- $path := .path }}
{{- range $k, $v := .table }}
{{- if not (regexMatch "^[A-Za-z0-9_-]+$" $k) }}
{{- fail (printf "lfr.toml: %s.%s is not a valid key" $path $k) }}
{{- end }}
{{- if and (not (kindIs "invalid" $v)) (not (include "lfr.toml.isTable" $v)) (not (include "lfr.toml.isTableArray" $v)) }}
{{ $k }} = {{ toJson $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .table }}
{{- if include "lfr.toml.isTable" $v }}

{{ include "lfr.toml.table" (dict "path" (printf "%s.%s" $path $k) "header" (printf "[%s.%s]" $path $k) "table" $v) }}
{{- else if include "lfr.toml.isTableArray" $v }}
{{- range $item := $v }}

{{ include "lfr.toml.table" (dict "path" (printf "%s.%s" $path $k) "header" (printf "[[%s.%s]]" $path $k) "table" $item) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* A section: dict "name" "ingest" "table" <map> */}}
{{- define "lfr.toml.section" -}}
{{ include "lfr.toml.table" (dict "path" .name "header" (printf "[%s]" .name) "table" .table) }}
{{- end }}

{{/* Validate the cameras and return them, all of them or one shard's: dict "root" $ "shard" n
("" for all). JSON list. */}}
{{- define "lfr.cameras" -}}
{{- $shards := int .root.Values.ingest.shards }}
{{- $seen := dict }}
{{- $out := list }}
{{- range $i, $cam := .root.Values.ingest.cameras }}
{{- $id := required (printf "ingest.cameras[%d] needs an id" $i) $cam.id | toString }}
{{- if not (regexMatch "^[A-Za-z0-9_-]{1,64}$" $id) }}
{{- fail (printf "ingest.cameras[%d]: id %q must be 1-64 of A-Z a-z 0-9 - _" $i $id) }}
{{- end }}
{{- if hasKey $seen $id }}
{{- fail (printf "ingest.cameras: id %q is used twice" $id) }}
{{- end }}
{{- $_ := set $seen $id true }}
{{- $_ := required (printf "ingest.cameras[%d] (%s) needs a source" $i $id) $cam.source }}
{{- if or (eq $.shard "") (eq (mod $i $shards) (int $.shard)) }}
{{- $out = append $out $cam }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The whole lfr.toml: dict "root" $ "shard" "" (every camera) or the shard's number. */}}
{{- define "lfr.toml" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $nats := deepCopy ($v.config.nats | default dict) }}
{{- $_ := set $nats "url" (include "lfr.natsUrl" $root) }}
{{- if $v.nats.credentials.existingSecret }}
{{- $_ := set $nats "credentials" (include "lfr.natsCredentialsPath" $root) }}
{{- end }}
{{- $ingest := deepCopy ($v.ingest.config | default dict) }}
{{- $_ := set $ingest "http_addr" "0.0.0.0:9101" }}
{{- $_ := set $ingest "cameras" (include "lfr.cameras" (dict "root" $root "shard" .shard) | fromJsonArray) }}
{{- $detect := deepCopy ($v.detect.config | default dict) }}
{{- $_ := set $detect "http_addr" "0.0.0.0:9102" }}
{{- $embed := deepCopy ($v.embed.config | default dict) }}
{{- $_ := set $embed "http_addr" "0.0.0.0:9103" }}
{{- $models := deepCopy ($v.models.config | default dict) }}
{{- $_ := set $models "dir" $v.models.path }}
{{- $match := deepCopy ($v.match.config | default dict) }}
{{- $_ := set $match "http_addr" "0.0.0.0:9104" }}
{{- $dispatch := deepCopy ($v.dispatch.config | default dict) }}
{{- $_ := set $dispatch "http_addr" "0.0.0.0:9105" }}
{{- $_ := set $dispatch "console_addr" "0.0.0.0:8080" }}
{{- if hasKey $dispatch "api_token" }}
{{- fail "dispatch.config.api_token: the API token is a secret; give it with dispatch.apiToken.existingSecret" }}
{{- end }}
{{- $purge := deepCopy ($v.purge.config | default dict) }}
{{- $_ := set $purge "http_addr" "0.0.0.0:9106" }}
# lfr configuration, rendered by the lfr Helm chart (release {{ $root.Release.Name }}).
# Every service reads the sections it needs; docs/configuration.md describes each key.
# No secret is written here: the master key, the NATS credentials and the API token come from
# Kubernetes Secrets.
{{- if ne .shard "" }}
# Ingest shard {{ .shard }} of {{ $v.ingest.shards }}: only this shard's cameras.
{{- end }}

{{ include "lfr.toml.section" (dict "name" "nats" "table" $nats) }}

{{ include "lfr.toml.section" (dict "name" "bus" "table" ($v.config.bus | default dict)) }}

{{ include "lfr.toml.section" (dict "name" "log" "table" ($v.config.log | default dict)) }}

{{ include "lfr.toml.section" (dict "name" "ingest" "table" $ingest) }}

{{ include "lfr.toml.section" (dict "name" "detect" "table" $detect) }}

{{ include "lfr.toml.section" (dict "name" "embed" "table" $embed) }}

{{ include "lfr.toml.section" (dict "name" "models" "table" $models) }}

{{ include "lfr.toml.section" (dict "name" "match" "table" $match) }}

{{ include "lfr.toml.section" (dict "name" "dispatch" "table" $dispatch) }}

{{ include "lfr.toml.section" (dict "name" "purge" "table" $purge) }}
{{- end }}

{{/* Checks on values that would otherwise make a release that cannot work. */}}
{{- define "lfr.validate" -}}
{{- $_ := required "masterKey.existingSecret: name the Secret holding LFR_MASTER_KEY (helm/README.md)" .Values.masterKey.existingSecret }}
{{- $_ := required "masterKey.key is required" .Values.masterKey.key }}
{{- if and (not .Values.match.allowMultipleReplicas) (or (gt (int .Values.match.replicas) 1) .Values.match.autoscaling.enabled) }}
{{- fail "match: more than one replica splits every track's frames between replicas and weakens corroboration (docs/matching.md); keep match.replicas 1, or set match.allowMultipleReplicas=true to accept it" }}
{{- end }}
{{- if hasKey .Values.ingest "replicas" }}
{{- fail "ingest.replicas: every ingest pod opens every camera of its shard; use ingest.shards to spread cameras" }}
{{- end }}
{{- if not (has .Values.models.source (list "image" "volume")) }}
{{- fail "models.source must be \"image\" or \"volume\"" }}
{{- end }}
{{- if and (eq .Values.models.source "volume") (hasKey .Values.models.volume "hostPath") }}
{{- fail "models.volume: hostPath is not allowed by the restricted Pod Security Standard; use a PersistentVolumeClaim" }}
{{- end }}
{{- if and .Values.dispatch.ingress.enabled .Values.dispatch.ingress.tls.enabled }}
{{- $_ := required "dispatch.ingress.tls.secretName is required with TLS on" .Values.dispatch.ingress.tls.secretName }}
{{- end }}
{{- end }}
