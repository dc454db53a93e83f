{{/* The pod template of the lfr workloads that are not services: the bus-init Job, the
bus-keeper and the admin pod. The same image, lfr.toml, restricted profile, in-memory /tmp and
scheduling defaults as the services; the NATS identity given, and no Service or probe (they serve
no HTTP). . is dict:
  root      $
  component app.kubernetes.io/component (bus-init, bus-keeper, admin)
  identity  the NATS identity (nats.identities.<identity>)
  command   the container's command (a list)
  restartPolicy  optional (Never for the Job)
  tmpSize   size limit of /tmp
  resources the container's resources
  admin     true: the master key and the models too (the `lfr` CLI's needs)
  env       extra environment (a list) */}}
{{- define "lfr.toolPod" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $ctx := dict "root" $root "w" (dict "service" .component "shard" "") }}
metadata:
  labels:
    {{- include "lfr.workloadSelectorLabels" $ctx | nindent 4 }}
    app.kubernetes.io/part-of: lfr
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/config.yaml") $root | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "lfr.serviceAccountName" $root }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with .restartPolicy }}
  restartPolicy: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ int $v.terminationGracePeriodSeconds }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "lfr.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: {{ toJson .command }}
      env:
        # The NATS identity of this pod: its own seed, the URL and the CA.
        {{- include "lfr.natsEnv" (dict "root" $root "identity" .identity) | nindent 8 }}
        {{- with $v.config.log.format }}
        - name: LFR_LOG__FORMAT
          value: {{ . | quote }}
        {{- end }}
        {{- if .admin }}
        - name: LFR_MODELS_DIR
          value: {{ $v.models.path | quote }}
        - name: LFR_MASTER_KEY
          valueFrom:
            secretKeyRef:
              name: {{ $v.masterKey.existingSecret }}
              key: {{ $v.masterKey.key }}
        {{- end }}
        {{- with .env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      resources:
        {{- required (printf "%s: resources are required" .component) .resources | toYaml | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/lfr
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- include "lfr.natsVolumeMounts" (dict "root" $root "identity" .identity) | nindent 8 }}
        {{- if and .admin (eq $v.models.source "volume") }}
        - name: models
          mountPath: {{ $v.models.path }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      {{- if $v.configInSecret }}
      secret:
        secretName: {{ include "lfr.fullname" $root }}-config
        defaultMode: 0440
      {{- else }}
      configMap:
        name: {{ include "lfr.fullname" $root }}-config
      {{- end }}
        items:
          - key: lfr.toml
            path: lfr.toml
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: {{ .tmpSize }}
    {{- include "lfr.natsVolumes" (dict "root" $root "identity" .identity) | nindent 4 }}
    {{- if and .admin (eq $v.models.source "volume") }}
    - name: models
      {{- toYaml $v.models.volume | nindent 6 }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
