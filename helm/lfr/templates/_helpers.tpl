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

{{/* Services that may run an HPA: those whose replicas split the work (not match, whose
standbys take none). */}}
{{- define "lfr.autoscaled" -}}
{{- $v := get .root.Values .service }}
{{- if and (has .service (list "detect" "embed")) $v.autoscaling $v.autoscaling.enabled }}true{{ end }}
{{- end }}

{{- define "lfr.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* NATS ------------------------------------------------------------------------------------ */}}

{{/* The bundled NATS chart's full name (its Service and StatefulSet), as that chart derives it. */}}
{{- define "lfr.natsFullname" -}}
{{- $name := .Values.nats.nameOverride | default "nats" }}
{{- if .Values.nats.fullnameOverride }}
{{- .Values.nats.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels of the bundled NATS server pods (the NATS chart's selector labels). */}}
{{- define "lfr.natsPodLabels" -}}
app.kubernetes.io/name: {{ .Values.nats.nameOverride | default "nats" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: nats
{{- end }}

{{/* The NATS URL the services use: the bundled cluster's Service, or nats.url. */}}
{{- define "lfr.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- $scheme := ternary "tls" "nats" (.Values.nats.tls.enabled | default false) }}
{{- printf "%s://%s.%s.svc:%d" $scheme (include "lfr.natsFullname" .) .Release.Namespace (int (dig "nats" "port" 4222 .Values.nats.config)) }}
{{- else }}
{{- required "nats.url is required when nats.enabled is false" .Values.nats.url }}
{{- end }}
{{- end }}

{{/* Where a pod finds its own nkey seed and the CA certificate. */}}
{{- define "lfr.natsCredentialsDir" -}}/etc/nats/credentials{{- end }}
{{- define "lfr.natsCaPath" -}}/etc/nats/ca/ca.crt{{- end }}

{{/* The permission matrix, per identity: files/nats-permissions.json (`lfr bus permissions
--format json`; a Rust test keeps it equal to the contract). */}}
{{- define "lfr.natsPermissions" -}}
{{- $text := .Files.Get "files/nats-permissions.json" }}
{{- if not $text }}
{{- fail "files/nats-permissions.json is missing or empty: regenerate it with `lfr bus permissions --format json > helm/lfr/files/nats-permissions.json`" }}
{{- end }}
{{- $text }}
{{- end }}

{{/* The identity's settings under nats.identities: dict "root" $ "identity" "detect". */}}
{{- define "lfr.identity" -}}
{{- $id := get .root.Values.nats.identities .identity }}
{{- if not $id }}
{{- fail (printf "nats.identities.%s is missing: every lfr workload connects as its own identity" .identity) }}
{{- end }}
{{- toJson $id }}
{{- end }}

{{/* Where the CA certificate comes from: JSON {kind: secret|configMap, name, key}, or "" without
TLS. */}}
{{- define "lfr.natsCa" -}}
{{- $t := .Values.nats.tls }}
{{- if $t.enabled }}
{{- $key := $t.ca.key | default "ca.crt" }}
{{- if $t.ca.configMapName }}
{{- toJson (dict "kind" "configMap" "name" $t.ca.configMapName "key" $key) }}
{{- else if $t.ca.secretName }}
{{- toJson (dict "kind" "secret" "name" $t.ca.secretName "key" $key) }}
{{- else if and .Values.nats.enabled $t.certManager.issuerRef.name }}
{{- toJson (dict "kind" "secret" "name" .Values.nats.config.nats.tls.secretName "key" "ca.crt") }}
{{- else }}
{{- fail "nats.tls.ca: name the Secret (secretName) or ConfigMap (configMapName) holding the CA certificate of the NATS server (or set nats.tls.enabled=false for a trial against a plain NATS)" }}
{{- end }}
{{- end }}
{{- end }}

{{/* NATS connection environment of a pod: dict "root" $ "identity" "detect". */}}
{{- define "lfr.natsEnv" -}}
{{- $id := include "lfr.identity" . | fromJson }}
- name: LFR_NATS__URL
  value: {{ include "lfr.natsUrl" .root | quote }}
{{- if $id.existingSecret }}
- name: LFR_NATS__CREDENTIALS
  value: {{ printf "%s/%s.nk" (include "lfr.natsCredentialsDir" .) .identity | quote }}
{{- end }}
{{- if .root.Values.nats.tls.enabled }}
- name: LFR_NATS__CA
  value: {{ include "lfr.natsCaPath" . | quote }}
{{- end }}
{{- end }}

{{/* Volume mounts for the identity's seed and the CA: dict "root" $ "identity" "detect". */}}
{{- define "lfr.natsVolumeMounts" -}}
{{- $id := include "lfr.identity" . | fromJson }}
{{- if $id.existingSecret }}
- name: nats-credentials
  mountPath: {{ include "lfr.natsCredentialsDir" . }}
  readOnly: true
{{- end }}
{{- if .root.Values.nats.tls.enabled }}
- name: nats-ca
  mountPath: {{ dir (include "lfr.natsCaPath" .) }}
  readOnly: true
{{- end }}
{{- end }}

{{/* The volumes: this identity's Secret only (its seed as <identity>.nk), and the CA. */}}
{{- define "lfr.natsVolumes" -}}
{{- $id := include "lfr.identity" . | fromJson }}
{{- if $id.existingSecret }}
- name: nats-credentials
  secret:
    secretName: {{ $id.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $id.key | default "seed" }}
        path: {{ .identity }}.nk
{{- end }}
{{- with include "lfr.natsCa" .root }}
{{- $ca := . | fromJson }}
- name: nats-ca
  {{- if eq $ca.kind "configMap" }}
  configMap:
    name: {{ $ca.name }}
  {{- else }}
  secret:
    secretName: {{ $ca.name }}
  {{- end }}
    defaultMode: 0444
    items:
      - key: {{ $ca.key }}
        path: {{ base (include "lfr.natsCaPath" $) }}
{{- end }}
{{- end }}

{{/* A NATS configuration string literal. */}}
{{- define "lfr.natsQuote" -}}
"{{ . | replace "\\" "\\\\" | replace "\"" "\\\"" }}"
{{- end }}

{{/* The bundled NATS server's authorization block: one nkey user per identity, with the
permissions of files/nats-permissions.json. Public keys only: nothing here is secret. */}}
{{- define "lfr.natsAuthorization" -}}
{{- $perms := include "lfr.natsPermissions" . | fromJson }}
{{- $identities := .Values.nats.identities }}
# The users of the lfr NATS identities, rendered by the lfr Helm chart (release {{ .Release.Name }})
# from nats.identities.<identity>.nkey (public keys) and files/nats-permissions.json (the
# contract's permission matrix, `lfr bus permissions`). Included by the server's nats.conf.
authorization {
  users: [
{{- range $name := keys $perms | sortAlpha }}
{{- $p := get $perms $name }}
{{- $id := get $identities $name | default dict }}
{{- if $id.nkey }}
    # {{ $name }}
    {
      nkey: {{ include "lfr.natsQuote" $id.nkey }}
      permissions: {
        publish: {
          allow: [
{{- range $p.publish_allow }}
            {{ include "lfr.natsQuote" . }},
{{- end }}
          ]
          deny: [
{{- range $p.publish_deny }}
            {{ include "lfr.natsQuote" . }},
{{- end }}
          ]
        }
        subscribe: {
          allow: [
{{- range $p.subscribe_allow }}
            {{ include "lfr.natsQuote" . }},
{{- end }}
          ]
        }
{{- if $p.allow_responses }}
        allow_responses: true
{{- end }}
      }
    }
{{- end }}
{{- end }}
  ]
}
{{- end }}

{{/* The workloads' identities that must have a Secret and, with the bundled NATS, an nkey. */}}
{{- define "lfr.requiredIdentities" -}}
{{- $out := list "ingest" "detect" "embed" "match" "dispatch" "purge" "bus" }}
{{- if .Values.admin.enabled }}{{ $out = append $out "admin" }}{{ end }}
{{- toJson $out }}
{{- end }}

{{- define "lfr.validateNats" -}}
{{- $v := .Values.nats }}
{{- $perms := include "lfr.natsPermissions" . | fromJson }}
{{- range $name, $_ := $v.identities }}
{{- if not (hasKey $perms $name) }}
{{- fail (printf "nats.identities.%s: no such identity in files/nats-permissions.json (%s)" $name (keys $perms | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- range $name := include "lfr.requiredIdentities" . | fromJsonArray }}
{{- if not (hasKey $perms $name) }}
{{- fail (printf "files/nats-permissions.json has no %s identity: regenerate it with `lfr bus permissions --format json`" $name) }}
{{- end }}
{{- $id := include "lfr.identity" (dict "root" $ "identity" $name) | fromJson }}
{{- if and $v.enabled (not $id.existingSecret) }}
{{- fail (printf "nats.identities.%s.existingSecret: the bundled NATS requires every identity's credentials; name the Secret holding %s's nkey seed (helm/README.md)" $name $name) }}
{{- end }}
{{- if and $v.enabled (not $id.nkey) }}
{{- fail (printf "nats.identities.%s.nkey: the bundled NATS needs the public nkey (U...) of every identity; %s has none (it is in the nats-users.conf of `lfr bus credentials`, helm/README.md)" $name $name) }}
{{- end }}
{{- end }}
{{- range $name, $id := $v.identities }}
{{- with $id.nkey }}
{{- if hasPrefix "S" . }}
{{- fail (printf "nats.identities.%s.nkey is a seed (a secret): give the public key (U...) here and the seed in the Secret" $name) }}
{{- end }}
{{- if not (regexMatch "^U[A-Z2-7]{55}$" .) }}
{{- fail (printf "nats.identities.%s.nkey: %q is not a public user nkey (U and 55 more of A-Z 2-7)" $name .) }}
{{- end }}
{{- end }}
{{- end }}
{{- if $v.tls.enabled }}
{{- $_ := include "lfr.natsCa" . }}
{{- if not $v.enabled }}
{{- range $u := splitList "," $v.url }}
{{- if not (hasPrefix "tls://" (trim $u)) }}
{{- fail (printf "nats.url: %q is not a tls:// URL; with nats.tls.enabled every URL must be tls:// (or set nats.tls.enabled=false for a trial against a plain NATS)" (trim $u)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if $v.enabled }}
{{- if ne ($v.tls.enabled | default false) ($v.config.nats.tls.enabled | default false) }}
{{- fail "nats.tls.enabled and nats.config.nats.tls.enabled must agree: the services require TLS exactly when the bundled NATS serves it" }}
{{- end }}
{{- if and $v.tls.enabled (not $v.config.nats.tls.secretName) }}
{{- fail "nats.config.nats.tls.secretName: name the Secret with the bundled NATS's server certificate (or set nats.tls.certManager.issuerRef)" }}
{{- end }}
{{- $key := toString (($v.config.jetstream.merge | default dict).key | default "") }}
{{- if not (contains "$LFR_NATS_STORE_KEY" $key) }}
{{- fail "nats.config.jetstream.merge: the bundled NATS's store must be encrypted (cipher: chachapoly, key: << $LFR_NATS_STORE_KEY >>)" }}
{{- end }}
{{- if not (hasKey ($v.config.merge | default dict) "lfr$include") }}
{{- fail "nats.config.merge: keep `lfr$include: ../lfr-nats-auth/authorization.conf`, the users of the bundled NATS (values.yaml)" }}
{{- end }}
{{- $mounted := false }}
{{- range ($v.container.patch | default list) }}
{{- if and (eq (toString .op) "add") (eq (toString (dig "value" "name" "" .)) "lfr-nats-auth") }}{{ $mounted = true }}{{ end }}
{{- end }}
{{- $volume := false }}
{{- range ($v.podTemplate.patch | default list) }}
{{- if and (eq (toString .op) "add") (eq (toString (dig "value" "name" "" .)) "lfr-nats-auth") }}{{ $volume = true }}{{ end }}
{{- end }}
{{- if not (and $mounted $volume) }}
{{- fail "nats.container.patch and nats.podTemplate.patch must keep the entries that mount the lfr-nats-auth ConfigMap into the NATS pods (Helm replaces lists whole: copy them from values.yaml into yours)" }}
{{- end }}
{{- $env := ($v.container.env | default dict).LFR_NATS_STORE_KEY }}
{{- if or (not (and $env $env.valueFrom $env.valueFrom.secretKeyRef $env.valueFrom.secretKeyRef.name)) (and $env (hasKey $env "value")) }}
{{- fail "nats.container.env.LFR_NATS_STORE_KEY: give the JetStream store key from a Secret (valueFrom.secretKeyRef), never as a value" }}
{{- end }}
{{- end }}
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
{{- if $v.nats.tls.enabled }}
{{- $_ := set $nats "ca" (include "lfr.natsCaPath" $root) }}
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
# No secret is written here: the master key, the NATS credentials (each pod's own nkey seed,
# LFR_NATS__CREDENTIALS) and the API token come from Kubernetes Secrets.
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

{{/* The [bus] limits the services would refuse, and more copies than the bundled NATS has
servers (NATS would refuse every record stream: the bus-init Job fails). */}}
{{- define "lfr.validateBus" -}}
{{- $bus := .Values.config.bus | default dict }}
{{- $replicas := int (dig "replicas" 1 $bus) }}
{{- if or (lt $replicas 1) (gt $replicas 5) }}
{{- fail (printf "config.bus.replicas must be 1 to 5 (JetStream's limit), not %d" $replicas) }}
{{- end }}
{{- if .Values.nats.enabled }}
{{- $cluster := dig "config" "cluster" dict .Values.nats }}
{{- $servers := 1 }}
{{- if dig "enabled" false $cluster }}{{ $servers = int (dig "replicas" 1 $cluster) }}{{ end }}
{{- if gt $replicas $servers }}
{{- fail (printf "config.bus.replicas (%d) exceeds the bundled NATS's %d server(s) (nats.config.cluster.replicas): each copy needs a server of its own" $replicas $servers) }}
{{- end }}
{{- end }}
{{- if and (hasKey $bus "latency_budget") (hasKey $bus "transient_ttl") }}
{{- if gt (float64 $bus.latency_budget) (float64 $bus.transient_ttl) }}
{{- fail (printf "config.bus.latency_budget (%v s) exceeds config.bus.transient_ttl (%v s): frames would expire before they could be shed" $bus.latency_budget $bus.transient_ttl) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Checks on values that would otherwise make a release that cannot work. */}}
{{- define "lfr.validate" -}}
{{- $_ := required "masterKey.existingSecret: name the Secret holding LFR_MASTER_KEY (helm/README.md)" .Values.masterKey.existingSecret }}
{{- $_ := required "masterKey.key is required" .Values.masterKey.key }}
{{- if dig "autoscaling" "enabled" false .Values.match }}
{{- fail "match.autoscaling: match runs active/standby (docs/resilience.md): one replica takes every template and the others only wait to take over, so more pods add no throughput; set match.replicas (2: one active, one standby)" }}
{{- end }}
{{- include "lfr.validateBus" . }}
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
{{- if hasKey .Values.nats "credentials" }}
{{- fail "nats.credentials: the single shared NATS credentials file is gone; every workload has its own identity (nats.identities.<identity>.existingSecret, helm/README.md)" }}
{{- end }}
{{- include "lfr.validateNats" . }}
{{- end }}
